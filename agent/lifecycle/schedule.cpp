#include "lifecycle/schedule.h"

#include "metrics/metrics.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/post.hpp>

#include "core/duration.h"

namespace qabox {

std::chrono::milliseconds LifecycleSchedule::sleepCheckEvery(std::chrono::milliseconds sleepAfter) {
  return std::clamp<std::chrono::milliseconds>(sleepAfter / 4, std::chrono::seconds(1),
                                               std::chrono::seconds(60));
}

LifecycleSchedule::LifecycleSchedule(EnvironmentManager& envs, const TimeSource& time)
    : envs_(envs),
      time_(time),
      diskWatch_("disk limits", envs.options().limits.diskCheckInterval,
                 [this] { enforceDiskLimitsOnce(); }) {
  const auto sleepAfter = envs.options().reaper.sleepAfter;
  if (sleepAfter.count() > 0) {
    sleeper_ = std::make_unique<Periodic>("sleeper", sleepCheckEvery(sleepAfter),
                                          [this] { sleepIdleOnce(); });
  }
}

void LifecycleSchedule::start() {
  if (sleeper_) sleeper_->start();
  diskWatch_.start();
}

void LifecycleSchedule::stop() {
  if (sleeper_) sleeper_->stop();
  diskWatch_.stop();
}

void LifecycleSchedule::sleepIdleOnce() {
  auto slept = envs_.sleepIdle(time_.now());
  if (!slept) {
    spdlog::warn("sleeping idle environments: {}", slept.status().toString());
    return;
  }
  for (const auto& t : *slept) {
    spdlog::info("{} is asleep: idle for {}", t, formatDuration(envs_.options().reaper.sleepAfter));
  }
}

void LifecycleSchedule::enforceDiskLimitsOnce() {
  auto failed = envs_.enforceDiskLimits();
  if (!failed) spdlog::warn("checking disk limits: {}", failed.status().toString());
}

void Waker::wake(const std::string& slug, std::function<void(Status)> done) {
  if (stopped_) {
    done(unavailable("the agent is shutting down; try again when it is back"));
    return;
  }
  boost::asio::post(pool_, [this, slug, done = std::move(done)] {
    auto started = std::chrono::steady_clock::now();
    Status s = envs_.wakeSlug(slug);
    if (Metrics* m = envs_.metrics()) {
      m->wake(s.isOk(),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    }
    done(std::move(s));
  });
}

void Waker::stop() {
  if (stopped_.exchange(true)) return;
  pool_.join();
}

}  // namespace qabox
