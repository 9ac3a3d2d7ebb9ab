#pragma once

// What keeps an agent from starting over lost state, and `--rebuild-state`
// from running under a live agent.

#include <string>
#include <vector>

#include "core/config.h"
#include "core/status.h"
#include "sys/fd.h"

namespace qabox {

// run/qaboxd.lock, held for the life of the process: shared by each agent,
// exclusive by a rebuild. FAILED_PRECONDITION naming the state dir when the
// other side holds it.
Result<UniqueFd> lockStateDir(const std::string& stateDir, bool exclusive);

// The containers (directories with an lxc config) under the agent's lxcpath.
std::vector<std::string> containersIn(const std::string& stateDir);

// FAILED_PRECONDITION when qabox.db is missing while the lxcpath holds
// containers: an empty database would make recovery destroy every one of
// them. The message says how to rebuild.
Status refuseLostDatabase(const Config& config);

}  // namespace qabox
