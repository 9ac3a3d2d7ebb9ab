#pragma once

// The metrics read at scrape time from the daemon's parts: the router's
// counters (one series set per route in the table: a removed route's series
// are gone) and the environments by state (from the store).

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include "proxy/router.h"
#include "store/store.h"

namespace qabox {

// qabox_router_*: requests by environment, code class and method, request
// latency, bytes in and out, websockets, and `openConnections` (the
// router's gauge; null in tests without a router).
std::vector<prometheus::MetricFamily> routerFamilies(const std::vector<RouteTraffic>& routes,
                                                     int64_t openConnections);
std::shared_ptr<prometheus::Collectable> routerSource(const RouteTable& table,
                                                      std::function<int64_t()> openConnections);

// qabox_environments{state}: every state, 0 included.
std::vector<prometheus::MetricFamily> environmentFamilies(const std::vector<Environment>& envs);
std::shared_ptr<prometheus::Collectable> environmentSource(Store& store);

}  // namespace qabox
