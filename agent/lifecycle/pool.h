#pragma once

// The warm pool's thread: EnvironmentManager::tendPool runs on a Periodic of
// its own at the lowest priority the host has (SCHED_IDLE, nice 19), so its
// clones never take CPU a deploy or the router wants.

namespace qabox {

// The calling thread's scheduling at its lowest (SCHED_IDLE and nice 19);
// what it spawns inherits it. False when the host refuses.
bool lowerThreadPriority();

}  // namespace qabox
