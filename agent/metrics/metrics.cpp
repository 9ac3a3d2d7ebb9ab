#include "metrics/metrics.h"

#include <prometheus/exposer.h>
#include <prometheus/text_serializer.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <exception>

#include "core/endpoint.h"

namespace qabox {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildHistogram;
using prometheus::Histogram;

// The deploy's steps and progress phases: fixed names, anything else "other".
constexpr std::array<std::string_view, 20> kSteps = {
    "check",  "merge",    "reserve", "deps",    "data",  "clone", "export",
    "start",  "services", "build",   "migrate", "seed",  "app",   "health",
    "switch", "finish",   "wake",    "ready",   "image", "other"};

std::string known(std::string_view name) {
  return std::find(kSteps.begin(), kSteps.end(), name) != kSteps.end() ? std::string(name)
                                                                       : std::string("other");
}

Histogram::BucketBoundaries secondsBuckets() {
  return {0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600};
}

class FnSource final : public prometheus::Collectable {
 public:
  explicit FnSource(std::function<std::vector<prometheus::MetricFamily>()> f) : f_(std::move(f)) {}
  std::vector<prometheus::MetricFamily> Collect() const override { return f_(); }

 private:
  std::function<std::vector<prometheus::MetricFamily>()> f_;
};

}  // namespace

Metrics::Metrics() : registry_(std::make_shared<prometheus::Registry>()) {
  auto& r = *registry_;
  deploys_ = &BuildCounter()
                  .Name("qabox_deploys_total")
                  .Help("Deploys that ended, by outcome and the step a failed one failed at")
                  .Register(r);
  deploySeconds_ = &BuildHistogram()
                        .Name("qabox_deploy_duration_seconds")
                        .Help("How long a deploy took, by outcome")
                        .Register(r);
  phaseSeconds_ = &BuildHistogram()
                       .Name("qabox_deploy_phase_duration_seconds")
                       .Help("How long each phase of a deploy took")
                       .Register(r);
  wakeSeconds_ = &BuildHistogram()
                      .Name("qabox_wake_duration_seconds")
                      .Help("From a wake asked for to the environment answering, by outcome")
                      .Register(r);
  reaperPasses_ = &BuildCounter()
                       .Name("qabox_reaper_passes_total")
                       .Help("Reaper passes that were not dry runs")
                       .Register(r)
                       .Add({});
  reclaimed_ = &BuildCounter()
                    .Name("qabox_reaper_reclaimed_total")
                    .Help("Environments the reaper reclaimed, by policy")
                    .Register(r);
  imageBuilds_ = &BuildCounter()
                      .Name("qabox_image_builds_total")
                      .Help("Image builds, by outcome (built, cached, error)")
                      .Register(r);
  apiCalls_ = &BuildCounter()
                   .Name("qabox_api_calls_total")
                   .Help("API calls, by RPC and gRPC status code")
                   .Register(r);
  for (std::string_view policy : {"merged", "ttl", "max_age", "idle"}) {
    reclaimed_->Add({{"policy", std::string(policy)}});
  }
  deploys_->Add({{"outcome", "ok"}, {"step", ""}});
  sources_.push_back(registry_);
}

Metrics::~Metrics() = default;

void Metrics::deployFinished(bool ok, std::string_view failedStep, double seconds) {
  std::string outcome = ok ? "ok" : "error";
  deploys_->Add({{"outcome", outcome}, {"step", ok ? std::string() : known(failedStep)}})
      .Increment();
  deploySeconds_->Add({{"outcome", outcome}}, secondsBuckets()).Observe(seconds);
}

void Metrics::deployPhase(std::string_view phase, double seconds) {
  phaseSeconds_->Add({{"phase", known(phase)}}, secondsBuckets()).Observe(seconds);
}

void Metrics::wake(bool ok, double seconds) {
  wakeSeconds_->Add({{"outcome", ok ? "ok" : "error"}}, secondsBuckets()).Observe(seconds);
}

void Metrics::reaperPass(const std::map<std::string, int>& reclaimedByPolicy) {
  reaperPasses_->Increment();
  for (const auto& [policy, n] : reclaimedByPolicy) {
    bool fixed = policy == "merged" || policy == "ttl" || policy == "max_age" || policy == "idle";
    reclaimed_->Add({{"policy", fixed ? policy : "other"}}).Increment(n);
  }
}

void Metrics::imageBuild(std::string_view outcome) {
  bool fixed = outcome == "built" || outcome == "cached" || outcome == "error";
  imageBuilds_->Add({{"outcome", fixed ? std::string(outcome) : "error"}}).Increment();
}

void Metrics::apiCall(std::string_view rpc, int code) {
  bool plain = !rpc.empty() && rpc.size() <= 64 && std::all_of(rpc.begin(), rpc.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
  });
  apiCalls_
      ->Add({{"rpc", plain ? std::string(rpc) : "unknown"},
             {"code", std::string(grpcCodeName(code))}})
      .Increment();
}

void Metrics::addSource(std::shared_ptr<prometheus::Collectable> source) {
  if (exposer_) exposer_->RegisterCollectable(source);
  sources_.push_back(std::move(source));
}

std::string Metrics::scrape() const {
  std::vector<prometheus::MetricFamily> all;
  for (const auto& s : sources_) {
    auto f = s->Collect();
    all.insert(all.end(), std::make_move_iterator(f.begin()), std::make_move_iterator(f.end()));
  }
  return prometheus::TextSerializer().Serialize(all);
}

Status Metrics::listen(const std::string& hostPort) {
  QABOX_ASSIGN_OR_RETURN(HostPort hp, parseHostPort(hostPort, "metrics.listen"));
  std::string bind = (hp.host.find(':') != std::string::npos ? "[" + hp.host + "]" : hp.host) +
                     ":" + std::to_string(hp.port);
  try {
    // One thread is plenty for a scraper or two; civetweb's default is more.
    exposer_ = std::make_unique<prometheus::Exposer>(bind, 2);
  } catch (const std::exception& e) {
    return failedPrecondition("metrics.listen \"" + hostPort + "\": cannot listen (" + e.what() +
                              ")");
  }
  for (const auto& s : sources_) exposer_->RegisterCollectable(s);
  auto ports = exposer_->GetListeningPorts();
  port_ = ports.empty() ? hp.port : static_cast<uint16_t>(ports.front());
  return Status::ok();
}

void Metrics::stopListening() { exposer_.reset(); }

std::shared_ptr<prometheus::Collectable> sourceOf(
    std::function<std::vector<prometheus::MetricFamily>()> collect) {
  return std::make_shared<FnSource>(std::move(collect));
}

std::string_view grpcCodeName(int code) {
  static constexpr std::array<std::string_view, 17> kNames = {"OK",
                                                              "CANCELLED",
                                                              "UNKNOWN",
                                                              "INVALID_ARGUMENT",
                                                              "DEADLINE_EXCEEDED",
                                                              "NOT_FOUND",
                                                              "ALREADY_EXISTS",
                                                              "PERMISSION_DENIED",
                                                              "RESOURCE_EXHAUSTED",
                                                              "FAILED_PRECONDITION",
                                                              "ABORTED",
                                                              "OUT_OF_RANGE",
                                                              "UNIMPLEMENTED",
                                                              "INTERNAL",
                                                              "UNAVAILABLE",
                                                              "DATA_LOSS",
                                                              "UNAUTHENTICATED"};
  return code >= 0 && code < static_cast<int>(kNames.size()) ? kNames[code] : "UNKNOWN";
}

prometheus::MetricFamily family(std::string name, std::string help, prometheus::MetricType type) {
  prometheus::MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  return f;
}

prometheus::ClientMetric sample(std::vector<prometheus::ClientMetric::Label> labels, double value,
                                prometheus::MetricType type) {
  prometheus::ClientMetric m;
  m.label = std::move(labels);
  if (type == prometheus::MetricType::Counter) {
    m.counter.value = value;
  } else {
    m.gauge.value = value;
  }
  return m;
}

}  // namespace qabox
