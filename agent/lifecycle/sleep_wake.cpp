#include "core/failpoint.h"
#include "lifecycle/manager.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <set>
#include <thread>

#include "core/redact.h"
#include "deploy/manifest.h"
#include "lifecycle/input_check.h"
#include "lifecycle/internal.h"
#include "store/ipam.h"
#include "store/paths.h"
#include "sys/capped_log.h"
#include "sys/disk_usage.h"
#include "sys/idshift.h"
#include "sys/safe_path.h"

namespace qabox {
Result<Environment> EnvironmentManager::sleep(const std::string& ticket, const std::string& actor) {
  QABOX_RETURN_IF_ERROR(refuseWhenStopping());
  QABOX_ASSIGN_OR_RETURN(LockedRow row, lockRow(ticket));
  const Environment& env = row.env;
  if (env.state == EnvState::kSleeping) return env;
  if (env.pinned) {
    return failedPrecondition("ticket " + row.ticket.name +
                              ": pinned environments never sleep (unpin it first)");
  }
  if (env.state != EnvState::kReady) {
    return failedPrecondition("ticket " + row.ticket.name +
                              ": only a READY environment can sleep (it is " +
                              std::string(stateName(env.state)) + ")");
  }
  if (int n = execsRunning(env.slug); n > 0) {
    return failedPrecondition("ticket " + row.ticket.name + ": " + std::to_string(n) +
                              " command(s) started by qabox exec still run in it; it can sleep "
                              "once they end");
  }
  return sleepLocked(env, actor);
}

Result<Environment> EnvironmentManager::sleepLocked(Environment env, const std::string& actor) {
  // The route says SLEEPING first: a request arriving now is held and wakes
  // the environment again instead of reaching a container going down.
  env.state = EnvState::kSleeping;
  env.updatedAt = time_.now();
  QABOX_FAILPOINT("sleep.begin");
  publishRoute(env);
  drain(env.ip, static_cast<uint16_t>(env.port));
  Status s = runtime_.stop(env.container);
  QABOX_FAILPOINT("sleep.stopped");
  if (!s.isOk()) {
    env.state = EnvState::kReady;
    publishRoute(env);
    event(env.ticket, "sleep", actor, "error", s.message());
    return s;
  }
  QABOX_RETURN_IF_ERROR(putRow(env));
  QABOX_FAILPOINT("sleep.recorded");
  event(env.ticket, "sleep", actor, "ok", env.container + " stopped");
  return env;
}

Result<Environment> EnvironmentManager::wake(const std::string& ticket, const std::string& actor) {
  QABOX_RETURN_IF_ERROR(refuseWhenStopping());
  QABOX_ASSIGN_OR_RETURN(LockedRow row, lockRow(ticket));
  return wakeLocked(row.env, actor);
}

Result<Environment> EnvironmentManager::wakeLocked(Environment env, const std::string& actor) {
  if (env.state != EnvState::kSleeping) return env;
  auto started = time_.steadyNow();
  auto fail = [&](const Status& s) -> Status {
    env.state = EnvState::kFailed;
    env.message = "waking failed: " + s.message();
    env.updatedAt = time_.now();
    if (Status w = putRow(env); !w.isOk()) {
      spdlog::warn("wake {}: recording it FAILED: {}", env.ticket, w.toString());
    }
    publishRoute(env);
    event(env.ticket, "wake", actor, "error", s.message());
    return Status(s.code(), env.message);
  };
  QABOX_ASSIGN_OR_RETURN(auto app, appManifestOf(env));
  QABOX_FAILPOINT("wake.begin");
  if (Status s = runtime_.start(env.container); !s.isOk()) return fail(s);
  QABOX_FAILPOINT("wake.started");
  auto left = config_.reaper.wakeTimeout - since(time_, started);
  if (left.count() <= 0) left = milliseconds(1);
  if (Status s = health_(env.ip, static_cast<uint16_t>(env.port),
                         app.health.empty() ? "/" : app.health, left);
      !s.isOk()) {
    return fail(s);
  }
  env.state = EnvState::kReady;
  env.message.clear();
  env.updatedAt = time_.now();
  QABOX_FAILPOINT("wake.healthy");
  QABOX_RETURN_IF_ERROR(putRow(env));
  QABOX_FAILPOINT("wake.recorded");
  publishRoute(env);
  event(env.ticket, "wake", actor, "ok",
        "awake in " + std::to_string(since(time_, started).count()) + " ms");
  return env;
}

Status EnvironmentManager::wakeSlug(const std::string& slug) {
  QABOX_ASSIGN_OR_RETURN(auto env, store_.getEnvironment(slug));
  if (!env) return notFound("no environment " + slug);
  return wake(env->ticket, actors::kRouter).status();
}

Result<std::vector<std::string>> EnvironmentManager::sleepIdle(TimePoint now) {
  std::vector<std::string> slept;
  if (config_.reaper.sleepAfter.count() <= 0 || stopping_) return slept;
  QABOX_ASSIGN_OR_RETURN(auto envs, store_.listEnvironments());
  for (const auto& candidate : envs) {
    if (candidate.state != EnvState::kReady || candidate.pinned) continue;
    auto lock = ticketLock(candidate.slug);
    std::unique_lock guard(*lock, std::try_to_lock);
    if (!guard.owns_lock()) continue;  // something is happening to it: not idle
    auto mark = markInFlight(candidate.slug);
    QABOX_ASSIGN_OR_RETURN(auto env, store_.getEnvironment(candidate.slug));
    if (!env || env->state != EnvState::kReady || env->pinned) continue;
    if (execsRunning(env->slug) > 0) continue;  // a command runs in it: not idle
    TimePoint lastUse =
        std::max({env->createdAt, env->deployedAt, env->lastAccessAt.value_or(TimePoint{})});
    if (now - lastUse < config_.reaper.sleepAfter) continue;
    auto r = sleepLocked(*env, actors::kSleeper);
    if (r) {
      slept.push_back(env->ticket);
    } else {
      spdlog::warn("sleep {}: {}", env->ticket, r.status().toString());
    }
  }
  return slept;
}
}  // namespace qabox
