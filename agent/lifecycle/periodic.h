#pragma once

// A task that runs every `period` on a thread of its own until stopped: the
// first run one period after start(), the next one period after that run
// ends, or as soon as poke() asks. stop() wakes the wait at once and joins;
// a run in progress finishes.

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <utility>

#include <spdlog/spdlog.h>

namespace qabox {

class Periodic {
 public:
  Periodic(std::string name, std::chrono::milliseconds period, std::function<void()> run)
      : name_(std::move(name)), period_(period), run_(std::move(run)) {}
  ~Periodic() { stop(); }
  Periodic(const Periodic&) = delete;
  Periodic& operator=(const Periodic&) = delete;

  // Does nothing when it already runs.
  void start() {
    std::lock_guard l(mu_);
    if (thread_.joinable()) return;
    stopping_ = false;
    try {
      thread_ = std::thread([this] { loop(); });
    } catch (const std::system_error& e) {
      spdlog::error("{}: cannot start its thread: {}", name_, e.what());
    }
  }
  // Safe to call twice, and without start().
  void stop() {
    std::thread t;
    {
      std::lock_guard l(mu_);
      stopping_ = true;
      t = std::move(thread_);
    }
    cv_.notify_all();
    if (t.joinable()) t.join();
  }
  // The next run now (or right after the one in progress), not a period on.
  void poke() {
    {
      std::lock_guard l(mu_);
      poked_ = true;
    }
    cv_.notify_all();
  }

 private:
  void loop() {
    std::unique_lock l(mu_);
    while (true) {
      cv_.wait_for(l, period_, [&] { return stopping_ || poked_; });
      if (stopping_) return;
      poked_ = false;
      l.unlock();
      run_();
      l.lock();
    }
  }

  const std::string name_;
  const std::chrono::milliseconds period_;
  const std::function<void()> run_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  bool poked_ = false;
  std::thread thread_;
};

}  // namespace qabox
