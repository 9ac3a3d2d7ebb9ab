#pragma once

// What keeps an agent from starting over lost state, and `--rebuild-state`
// from running under a live agent.

#include <string>
#include <vector>

#include "core/config.h"
#include "core/status.h"
#include "store/store.h"
#include "sys/fd.h"

namespace qabox {

// run/qaboxd.lock, held exclusively for the life of the process by the
// agent and by a rebuild: one qaboxd per state dir. FAILED_PRECONDITION
// naming the state dir and the lock file when another holds it.
Result<UniqueFd> lockStateDir(const std::string& stateDir);

// The containers (directories with an lxc config) under the agent's lxcpath.
std::vector<std::string> containersIn(const std::string& stateDir);

// FAILED_PRECONDITION when qabox.db is missing while the lxcpath holds
// containers: an empty database would make recovery destroy every one of
// them. The message says how to rebuild.
Status refuseLostDatabase(const Config& config);

// The containers whose qabox.json parses as this agent's record.
std::vector<std::string> recordedContainers(const Config& config);

// The same when qabox.db opens but holds no environment (an empty or
// emptied file) while containers carry records: lost state as well.
Status refuseEmptyDatabase(const Config& config, Store& store);

}  // namespace qabox
