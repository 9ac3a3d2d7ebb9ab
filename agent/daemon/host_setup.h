#pragma once

// What the host needs before the agent opens anything: the state dir's
// tree and modes, the containers' id ranges in /etc/subuid and /etc/subgid,
// the seccomp profile, and a path the unprivileged containers can enter.

#include "core/config.h"
#include "core/status.h"

namespace qabox {

// In order: the containers can reach the state dir's parents, the dirs
// exist with their modes, the id ranges are reserved, the seccomp profile
// is written, and the containers can reach lxc/ and images/. The first
// failure is returned, for the daemon to exit with.
Status prepareHost(const Config& config);

}  // namespace qabox
