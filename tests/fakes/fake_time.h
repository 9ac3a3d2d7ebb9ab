#pragma once

// A clock a test sets and advances; both its wall and monotonic time move
// together, and only when the test says so.

#include <atomic>
#include <chrono>

#include "core/clock.h"

namespace qabox {

class FakeTime final : public TimeSource {
 public:
  explicit FakeTime(TimePoint start = TimePoint(std::chrono::hours(24 * 365 * 56)))
      : wall_(start.time_since_epoch()) {}

  TimePoint now() const override { return TimePoint(wall_.load()); }
  std::chrono::steady_clock::time_point steadyNow() const override {
    return std::chrono::steady_clock::time_point(steady_.load());
  }

  void advance(std::chrono::milliseconds by) {
    wall_ = wall_.load() + std::chrono::duration_cast<TimePoint::duration>(by);
    steady_ = steady_.load() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(by);
  }
  void set(TimePoint t) { wall_ = t.time_since_epoch(); }

 private:
  std::atomic<TimePoint::duration> wall_;
  std::atomic<std::chrono::steady_clock::duration> steady_{};
};

}  // namespace qabox
