#pragma once

// The router's use counters reach SQLite every routing.stats_flush_interval
// and at shutdown; the audit log is pruned by events.max_age and
// events.max_rows at start and then every minute.

#include <atomic>
#include <chrono>
#include <cstdint>

#include "core/clock.h"
#include "core/config.h"
#include "lifecycle/periodic.h"
#include "proxy/router.h"
#include "store/store.h"

namespace qabox {

// The audit log by events.max_age and events.max_rows, in batches that are
// each a short transaction of their own, so a backlog (an upgrade, a lowered
// limit) never holds the other writers up for long.
void pruneEvents(Store& store, const Config::Events& cfg, const TimeSource& time = systemTime());

class UsageRecorder {
 public:
  // `router`, `store` and `time` must outlive the recorder.
  UsageRecorder(Router& router, Store& store, const Config& config,
                const TimeSource& time = systemTime());

  // Prunes once, then starts the schedule.
  void start();
  // Stops the schedule, then records what the router counted since.
  void stop();

  // Requests routed since the start, as far as recorded.
  uint64_t requestsRouted() const { return routed_.load(); }

 private:
  void flush();
  void round();

  Router& router_;
  Store& store_;
  const Config::Events events_;
  const TimeSource& time_;
  std::atomic<uint64_t> routed_{0};
  std::chrono::steady_clock::time_point lastPrune_{};
  Periodic flusher_;
};

}  // namespace qabox
