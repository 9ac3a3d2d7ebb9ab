#include "daemon/usage.h"

#include <spdlog/spdlog.h>

#include "core/duration.h"

namespace qabox {

void pruneEvents(Store& store, const Config::Events& cfg, const TimeSource& time) {
  constexpr uint32_t kBatch = 2000;
  constexpr int kMaxBatches = 500;
  if (cfg.maxAge.count() <= 0 && cfg.maxRows == 0) return;
  TimePoint olderThan = cfg.maxAge.count() > 0 ? time.now() - cfg.maxAge : TimePoint{};
  uint64_t total = 0;
  for (int i = 0; i < kMaxBatches; ++i) {
    auto n = store.pruneEvents(olderThan, cfg.maxRows, kBatch);
    if (!n) {
      spdlog::warn("pruning events: {}", n.status().toString());
      break;
    }
    total += *n;
    if (*n < kBatch) break;
  }
  if (total > 0) {
    spdlog::info("events: pruned {} rows (events.max_age {}, events.max_rows {})", total,
                 formatDuration(cfg.maxAge), cfg.maxRows);
  }
}

UsageRecorder::UsageRecorder(Router& router, Store& store, const Config& config,
                             const TimeSource& time)
    : router_(router),
      store_(store),
      events_(config.events),
      time_(time),
      flusher_("router use", config.routing.statsFlushInterval, [this] { round(); }) {}

void UsageRecorder::start() {
  pruneEvents(store_, events_, time_);
  lastPrune_ = time_.steadyNow();
  flusher_.start();
}

void UsageRecorder::stop() {
  flusher_.stop();
  flush();
}

void UsageRecorder::flush() {
  auto stats = router_.takeStats();
  for (const auto& s : stats) routed_ += s.requests;
  if (stats.empty()) return;
  if (auto s = store_.recordAccess(stats); !s.isOk()) {
    spdlog::warn("recording router use: {}", s.toString());
  }
}

void UsageRecorder::round() {
  flush();
  if (time_.steadyNow() - lastPrune_ >= std::chrono::minutes(1)) {
    lastPrune_ = time_.steadyNow();
    pruneEvents(store_, events_, time_);
  }
}

}  // namespace qabox
