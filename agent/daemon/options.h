#pragma once

// The one place the agent's Config becomes each component's own options:
// a component reads only what its struct holds, and a test builds one from
// a Config the same way the daemon does.

#include "core/config.h"
#include "lifecycle/options.h"
#include "proxy/router.h"
#include "reaper/reaper.h"

namespace qabox {

LifecycleOptions lifecycleOptions(const Config& config);
ReaperOptions reaperOptions(const Config& config);
// Without the wake hook: the daemon sets it to the lifecycle's Waker.
RouterOptions routerOptions(const Config& config);

}  // namespace qabox
