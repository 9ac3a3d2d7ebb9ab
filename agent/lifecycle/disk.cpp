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
std::string EnvironmentManager::diskBreach(const std::string& container) const {
  TreeBounds bounds;
  bounds.maxEntries = config_.limits.maxFiles;
  auto u = measureTree(runtime_.upperDir(container), bounds);
  if (!u) return "";  // gone, or not made yet: nothing of it to hold
  switch (u->bound) {
    case TreeUsage::Bound::kEntries:
      return "limits.max_files: its own layer holds more than " +
             std::to_string(config_.limits.maxFiles) + " files (the limit)";
    case TreeUsage::Bound::kDepth:
      return "limits.max_disk: its own layer has " + u->why + ", which the agent does not measure";
    case TreeUsage::Bound::kTime:  // the figures so far are a floor: judge on them
    case TreeUsage::Bound::kNone: break;
  }
  auto max =
      config_.limits.maxDisk.empty() ? std::nullopt : parseMemorySize(config_.limits.maxDisk);
  if (max && u->bytes > *max) {
    return "limits.max_disk: its own layer uses " + formatBytes(u->bytes) +
           " of disk, above the limit of " + config_.limits.maxDisk;
  }
  return "";
}

Result<std::vector<std::string>> EnvironmentManager::enforceDiskLimits() {
  std::vector<std::string> failed;
  if (stopping_) return failed;
  QABOX_ASSIGN_OR_RETURN(auto envs, store_.listEnvironments());
  for (const auto& candidate : envs) {
    if (candidate.state == EnvState::kSleeping || candidate.state == EnvState::kDeleting) continue;
    auto st = runtime_.state(candidate.container);
    if (!st || *st != ContainerState::kRunning) continue;
    // Measured without the lock (it only reads); acted on under it.
    std::string breach = diskBreach(candidate.container);
    if (breach.empty()) continue;
    auto lock = ticketLock(candidate.slug);
    std::unique_lock guard(*lock, std::try_to_lock);
    if (!guard.owns_lock()) continue;  // a deploy measures its own; the next round sees the rest
    auto mark = markInFlight(candidate.slug);
    QABOX_ASSIGN_OR_RETURN(auto env, store_.getEnvironment(candidate.slug));
    if (!env || env->container != candidate.container || env->state == EnvState::kSleeping ||
        env->state == EnvState::kDeleting) {
      continue;
    }
    env->state = EnvState::kFailed;
    env->message = breach + "; its container is stopped (qabox delete " + env->ticket +
                   " frees the space and the address)";
    env->updatedAt = time_.now();
    publishRoute(*env);
    drain(env->ip, static_cast<uint16_t>(env->port));
    Status s = runtime_.stop(env->container);
    if (!s.isOk()) {
      spdlog::warn("disk {}: stopping {}: {}", env->ticket, env->container, s.toString());
    }
    if (Status w = putRow(*env); !w.isOk()) {
      spdlog::warn("disk {}: recording the failure: {}", env->ticket, w.toString());
    }
    event(env->ticket, "disk", actors::kAgent, "error", env->message);
    spdlog::warn("{}: {}", env->ticket, env->message);
    failed.push_back(env->ticket);
  }
  return failed;
}
}  // namespace qabox
