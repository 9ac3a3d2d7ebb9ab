#pragma once

// The lifecycle's own background work, beside the calls it answers:
//  - LifecycleSchedule: idle environments go to sleep (reaper.sleep_after;
//    0 turns it off), and running ones are measured against limits.max_disk
//    and limits.max_files every limits.disk_check_interval;
//  - Waker: the router's wake hook, each wake run on a thread pool the
//    Waker owns, so shutdown waits for the wakes in flight by joining it.

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include <boost/asio/thread_pool.hpp>

#include "core/clock.h"
#include "lifecycle/manager.h"
#include "lifecycle/periodic.h"

namespace qabox {

class LifecycleSchedule {
 public:
  // `envs` and `time` must outlive the schedule; its periods are the
  // manager's options.
  explicit LifecycleSchedule(EnvironmentManager& envs, const TimeSource& time = systemTime());

  // How often idle environments are looked for: a quarter of sleep_after,
  // between 1 s and 60 s.
  static std::chrono::milliseconds sleepCheckEvery(std::chrono::milliseconds sleepAfter);

  void start();
  // Waits for a round in progress. Safe to call twice.
  void stop();

  // One round of each, as the schedule runs them.
  void sleepIdleOnce();
  void enforceDiskLimitsOnce();

 private:
  EnvironmentManager& envs_;
  const TimeSource& time_;
  std::unique_ptr<Periodic> sleeper_;  // null when sleep_after is 0
  Periodic diskWatch_;
};

class Waker {
 public:
  // Wakes of different environments run side by side, up to this many at
  // once; more wait for a thread. The router asks once per environment
  // however many requests wait for it.
  static constexpr size_t kThreads = 16;

  explicit Waker(EnvironmentManager& envs) : envs_(envs), pool_(kThreads) {}
  ~Waker() { stop(); }
  Waker(const Waker&) = delete;
  Waker& operator=(const Waker&) = delete;

  // RouterOptions::wake: wakes the environment of `slug` on the pool, then
  // calls done with the outcome. After stop(), done gets UNAVAILABLE at once.
  void wake(const std::string& slug, std::function<void(Status)> done);
  // Waits for every wake asked for so far. Safe to call twice.
  void stop();

 private:
  EnvironmentManager& envs_;
  boost::asio::thread_pool pool_;
  std::atomic<bool> stopped_{false};
};

}  // namespace qabox
