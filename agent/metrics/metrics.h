#pragma once

// The agent's Prometheus metrics: one registry, typed handles for the events
// the components report (a deploy finished, a wake, a reaper pass, an image
// build, an API call), sources read at scrape time (Collectables: the
// router's counters, environments by state, the process), and the /metrics
// listener. Every label value is a slug, a fixed enum or an RPC name the
// caller checked: bytes from a container never become one unchecked.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>

#include "core/status.h"

namespace prometheus {
class Exposer;
}

namespace qabox {

class Metrics {
 public:
  Metrics();
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // A deploy ended: outcome "ok" or "error"; `failedStep` the step it
  // failed at ("" when ok). Unknown steps count as "other".
  void deployFinished(bool ok, std::string_view failedStep, double seconds);
  // One of a deploy's progress phases took `seconds`.
  void deployPhase(std::string_view phase, double seconds);
  void wake(bool ok, double seconds);
  // A reaper pass that was not a dry run, and how many it reclaimed by policy.
  void reaperPass(const std::map<std::string, int>& reclaimedByPolicy);
  // An image build: "built", "cached" or "error".
  void imageBuild(std::string_view outcome);
  // An API call ended with gRPC `code`; `rpc` is a name from kRpcAccess or
  // "unknown" (the server checks).
  void apiCall(std::string_view rpc, int code);

  // Sources read at each scrape; each keeps its own families.
  void addSource(std::shared_ptr<prometheus::Collectable> source);

  // The whole text exposition, as /metrics answers.
  std::string scrape() const;

  // Serves /metrics on host:port (port 0: a free one, see port()).
  Status listen(const std::string& hostPort);
  uint16_t port() const { return port_; }
  // Closes the listener and waits for a scrape under way.
  void stopListening();

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  std::vector<std::shared_ptr<prometheus::Collectable>> sources_;
  prometheus::Family<prometheus::Counter>* deploys_;
  prometheus::Family<prometheus::Histogram>* deploySeconds_;
  prometheus::Family<prometheus::Histogram>* phaseSeconds_;
  prometheus::Family<prometheus::Histogram>* wakeSeconds_;
  prometheus::Counter* reaperPasses_;
  prometheus::Family<prometheus::Counter>* reclaimed_;
  prometheus::Family<prometheus::Counter>* imageBuilds_;
  prometheus::Family<prometheus::Counter>* apiCalls_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  uint16_t port_ = 0;
};

// The process itself from /proc/self: process_resident_memory_bytes,
// process_open_fds, process_threads, process_cpu_seconds_total.
std::shared_ptr<prometheus::Collectable> processSource();

// A Collectable over a function, for sources built elsewhere (daemon/).
std::shared_ptr<prometheus::Collectable> sourceOf(
    std::function<std::vector<prometheus::MetricFamily>()> collect);

// gRPC's code names, as labels: 0 "OK" .. 16 "UNAUTHENTICATED", else "UNKNOWN".
std::string_view grpcCodeName(int code);

// Families built by hand (the sources): one family, each metric with its labels.
prometheus::MetricFamily family(std::string name, std::string help, prometheus::MetricType type);
prometheus::ClientMetric sample(std::vector<prometheus::ClientMetric::Label> labels, double value,
                                prometheus::MetricType type);

}  // namespace qabox
