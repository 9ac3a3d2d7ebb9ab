#pragma once

// What the router does with a request once it knows its route: forward it,
// wake the environment, or answer with a page of its own. Pure, so the whole
// table (route state -> status and page) is tested on values; the request
// path calls decideRoute for every request, so it allocates nothing, and only
// a page's message is built as a string.

#include <cstdint>
#include <string>
#include <string_view>

#include "proxy/router.h"

namespace qabox::proxy_internal {

enum class RouteVerdict : uint8_t {
  kForward,            // READY with a valid address
  kWake,               // SLEEPING, and the router may ask for a wake
  kNoSuchEnvironment,  // no route for the name
  kDeleting,           // DELETING
  kNoAddress,          // READY, but its ip:port is not an address
  kDeploying,          // CREATING, DEPLOYING
  kFailed,             // FAILED
  kBroken,             // BROKEN
  kAsleep,             // SLEEPING, and no wake configured or already tried
  kWakeTimedOut,       // the wake did not finish within wake_timeout
  kWakeFailed,         // the wake finished with an error
  kAddressChurn,       // the route changed under the request too many times
  kUnknownState,       // a state this router does not know
  kLost,               // another host's, and that host is down
  kForwardLoop,        // another host's, and the request was forwarded here
};

// `route` is null when no route has the name; `mayWake` says whether this
// request may (still) ask for a wake.
RouteVerdict decideRoute(const Route* route, bool hasEndpoint, bool mayWake) noexcept;

// The router's answer for a verdict that is a page. status 0: not a page.
struct RoutePage {
  unsigned status = 0;
  std::string_view title;
  int retryAfter = 0;  // seconds; 0: no Retry-After
};
RoutePage routePage(RouteVerdict v) noexcept;

// The page's one sentence. `route` may be null (no route); `detail` is the
// wake's error message for kWakeFailed and the wake timeout ("60s") for
// kWakeTimedOut.
std::string routePageMessage(RouteVerdict v, std::string_view slug, const Route* route,
                             std::string_view detail = {});

// 1000 -> "1s", 1500 -> "1500ms": durations as pages and messages show them.
std::string formatMs(int64_t ms);

}  // namespace qabox::proxy_internal
