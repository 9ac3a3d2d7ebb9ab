#pragma once

// The one place components ask what time it is, so a test can set the time
// instead of sleeping. Components take a `const TimeSource&` (the real one is
// systemTime()); unit tests pass a FakeTime (tests/fakes/fake_time.h).

#include <chrono>

#include "core/environment.h"

namespace qabox {

class TimeSource {
 public:
  virtual ~TimeSource() = default;
  // Wall time: what rows record and schedules (ttl, idle, sleep_after) compare.
  virtual TimePoint now() const = 0;
  // Monotonic time: what durations and deadlines are measured in.
  virtual std::chrono::steady_clock::time_point steadyNow() const = 0;
};

class SystemTime final : public TimeSource {
 public:
  TimePoint now() const override { return Clock::now(); }
  std::chrono::steady_clock::time_point steadyNow() const override {
    return std::chrono::steady_clock::now();
  }
};

// The process's real clock.
inline const TimeSource& systemTime() {
  static const SystemTime kTime;
  return kTime;
}

}  // namespace qabox
