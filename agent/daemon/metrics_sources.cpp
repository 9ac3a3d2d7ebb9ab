#include "daemon/metrics_sources.h"

#include <spdlog/spdlog.h>

#include <array>
#include <limits>
#include <string>

#include "metrics/metrics.h"

namespace qabox {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

constexpr std::array<const char*, kTrafficCodeClasses> kClasses = {"1xx", "2xx", "3xx", "4xx",
                                                                   "5xx"};

ClientMetric latencyOf(const RouteTraffic& r) {
  ClientMetric m;
  m.label = {{"environment", r.slug}};
  uint64_t cumulative = 0;
  for (size_t b = 0; b < r.latency.size(); ++b) {
    cumulative += r.latency[b];
    ClientMetric::Bucket bucket;
    bucket.cumulative_count = cumulative;
    bucket.upper_bound = b < kLatencyBoundsUs.size()
                             ? static_cast<double>(kLatencyBoundsUs[b]) / 1e6
                             : std::numeric_limits<double>::infinity();
    m.histogram.bucket.push_back(bucket);
  }
  m.histogram.sample_count = cumulative;
  m.histogram.sample_sum = static_cast<double>(r.latencySumUs) / 1e6;
  return m;
}

void addRequests(MetricFamily& f, const RouteTraffic& r) {
  for (size_t c = 0; c < kTrafficCodeClasses; ++c) {
    for (size_t m = 0; m < kTrafficMethodCount; ++m) {
      if (r.responses[c][m] == 0) continue;
      f.metric.push_back(sample({{"environment", r.slug},
                                 {"code_class", kClasses[c]},
                                 {"method", std::string(kTrafficMethods[m])}},
                                static_cast<double>(r.responses[c][m]), MetricType::Counter));
    }
  }
}

}  // namespace

std::vector<MetricFamily> routerFamilies(const std::vector<RouteTraffic>& routes,
                                         int64_t openConnections) {
  auto requests = family("qabox_router_requests_total",
                         "Requests the router answered, by environment, code class and method",
                         MetricType::Counter);
  auto latency = family("qabox_router_request_duration_seconds",
                        "From a request's head read to its response sent", MetricType::Histogram);
  auto in = family("qabox_router_received_bytes_total", "Bytes from clients, by environment",
                   MetricType::Counter);
  auto out = family("qabox_router_sent_bytes_total", "Bytes to clients, by environment",
                    MetricType::Counter);
  auto ws = family("qabox_router_websockets_total", "Websocket tunnels opened, by environment",
                   MetricType::Counter);
  auto wsOpen = family("qabox_router_open_websockets", "Websocket tunnels open, by environment",
                       MetricType::Gauge);
  auto conns =
      family("qabox_router_open_connections", "Client connections open", MetricType::Gauge);
  for (const auto& r : routes) {
    addRequests(requests, r);
    latency.metric.push_back(latencyOf(r));
    ClientMetric::Label env{"environment", r.slug};
    in.metric.push_back(sample({env}, static_cast<double>(r.bytesIn), MetricType::Counter));
    out.metric.push_back(sample({env}, static_cast<double>(r.bytesOut), MetricType::Counter));
    ws.metric.push_back(sample({env}, static_cast<double>(r.websockets), MetricType::Counter));
    wsOpen.metric.push_back(
        sample({env}, static_cast<double>(r.websocketsOpen), MetricType::Gauge));
  }
  conns.metric.push_back(sample({}, static_cast<double>(openConnections), MetricType::Gauge));
  return {std::move(requests), std::move(latency), std::move(in),   std::move(out),
          std::move(ws),       std::move(wsOpen),  std::move(conns)};
}

std::shared_ptr<prometheus::Collectable> routerSource(const RouteTable& table,
                                                      std::function<int64_t()> openConnections) {
  return sourceOf([&table, open = std::move(openConnections)] {
    return routerFamilies(table.traffic(), open ? open() : 0);
  });
}

std::vector<MetricFamily> environmentFamilies(const std::vector<Environment>& envs) {
  constexpr EnvState kAll[] = {EnvState::kCreating, EnvState::kDeploying, EnvState::kReady,
                               EnvState::kFailed,   EnvState::kDeleting,  EnvState::kSleeping,
                               EnvState::kBroken};
  auto f = family("qabox_environments", "Environments, by state", MetricType::Gauge);
  for (EnvState s : kAll) {
    size_t n = 0;
    for (const auto& e : envs) n += e.state == s ? 1 : 0;
    std::string name(stateName(s));
    for (char& c : name) c = static_cast<char>(c - 'A' + 'a');
    f.metric.push_back(sample({{"state", name}}, static_cast<double>(n), MetricType::Gauge));
  }
  return {std::move(f)};
}

std::shared_ptr<prometheus::Collectable> environmentSource(Store& store) {
  return sourceOf([&store]() -> std::vector<MetricFamily> {
    auto envs = store.listEnvironments();
    if (!envs) {
      spdlog::warn("metrics: listing the environments: {}", envs.status().toString());
      return {};
    }
    return environmentFamilies(*envs);
  });
}

}  // namespace qabox
