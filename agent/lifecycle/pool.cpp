// The warm pool: containers cloned, addressed and started ahead of any
// deploy, per image version, which a deploy claims (DeployRun::reserve)
// instead of cloning. Each is a row of the store's pool table holding its
// lease, never an environment: no ticket, no route, not listed.
#include <spdlog/spdlog.h>

#include "core/failpoint.h"
#include "init/contract.h"
#include "lifecycle/host_facts.h"
#include "lifecycle/input_check.h"
#include "lifecycle/internal.h"
#include "lifecycle/manager.h"
#include "lifecycle/periodic.h"
#include "store/ipam.h"
#include "store/paths.h"
#include "sys/disk_usage.h"
#include "sys/idshift.h"
#include "sys/process.h"
#include "sys/safe_path.h"

namespace qabox {

bool EnvironmentManager::poolWanted() const {
  if (config_.pool.size > 0) return true;
  for (const auto& [image, n] : config_.pool.images) {
    if (n > 0) return true;
  }
  return false;
}

std::string EnvironmentManager::poolPressure() const {
  const auto& pool = config_.pool;
  const uint64_t minMemory = parseMemorySize(pool.minFreeMemory).value_or(0);
  const uint64_t minDisk = parseMemorySize(pool.minFreeDisk).value_or(0);
  std::optional<uint64_t> mem;
  if (auto facts = readMeminfo()) mem = facts->availableBytes;
  if (mem && *mem < minMemory) {
    return "memory available " + formatBytes(*mem) + " is below pool.min_free_memory " +
           pool.minFreeMemory;
  }
  if (auto space = fsSpace(config_.stateDir); space && space->available < minDisk) {
    return "disk free " + formatBytes(space->available) + " is below pool.min_free_disk " +
           pool.minFreeDisk;
  }
  return "";
}

bool EnvironmentManager::tendPool() {
  if (stopping_) return false;
  auto pooled = store_.listPooled();
  auto images = store_.listImages();
  if (!pooled || !images) {
    spdlog::warn("pool: reading the store: {}",
                 (!pooled ? pooled.status() : images.status()).toString());
    return false;
  }
  std::map<std::string, uint32_t> current;  // image -> its current version
  for (const auto& im : *images) {
    if (im.current) current[im.name] = im.version;
  }
  // What no deploy may claim goes first, one per pass.
  std::map<std::string, std::optional<ResourceLimits>> limits;  // image -> what a deploy gets
  std::map<std::string, uint32_t> kept;                         // image -> claimable so far
  for (const auto& p : *pooled) {
    auto it = current.find(p.image);
    std::string why;
    if (!limits.count(p.image)) {
      auto l = poolLimits(p.image);
      limits[p.image] = l ? std::optional<ResourceLimits>(*l) : std::nullopt;
    }
    if (it == current.end() || it->second != p.imageVersion) {
      why = "its image version " + p.image + " v" + std::to_string(p.imageVersion) +
            " is no longer current";
    } else if (kept[p.image] >= config_.pool.sizeOf(p.image)) {
      why = "the pool keeps " + std::to_string(config_.pool.sizeOf(p.image)) + " of " + p.image;
    } else if (limits[p.image] && *limits[p.image] != p.limits) {
      why = "its limits are no longer what a deploy of " + p.image + " gets";
    } else if (p.state == PoolState::kReady) {
      auto st = runtime_.state(p.container);
      if (st && *st != ContainerState::kRunning) why = "it is no longer running";
    }
    if (why.empty()) {
      ++kept[p.image];
      continue;
    }
    // One that will not go is tried again next pass; the rest go on.
    if (dropPooled(p, why)) return true;
  }
  if (std::string pressure = poolPressure(); !pressure.empty()) {
    if (pooled->empty()) return false;
    // The newest goes: the oldest are the next to be claimed.
    return dropPooled(pooled->back(), pressure);
  }
  // Fills wait for a moment without calls in flight: a deploy never shares
  // the host (the store's connection, the disk, the helpers) with a fill.
  // The deploy's end pokes the pool.
  if (!inFlight().empty()) return false;
  for (const auto& [image, version] : current) {
    if (kept[image] >= config_.pool.sizeOf(image)) continue;
    if (Status s = fillPool(image, version); !s.isOk()) {
      // Short of addresses or id ranges, deploys come first: each would
      // take the fill back (poolGivesWay), so the pool waits quietly.
      const auto level =
          s.code() == Code::kResourceExhausted ? spdlog::level::debug : spdlog::level::warn;
      spdlog::log(level, "pool: filling with {} v{}: {}", image, version, s.toString());
      return false;  // the next pass, one interval on, tries again
    }
    return true;
  }
  return false;
}

bool EnvironmentManager::dropPooled(const PooledContainer& p, const std::string& why) {
  // Marked first, from the state it was read in: a deploy claiming a ready
  // one at the same moment gets it whole, or not at all. The mark stays
  // until the container is gone, so a failed destroy is retried and the
  // checker still knows it for the agent's.
  auto marked = store_.setPoolState(p.container, p.state, PoolState::kDropping);
  if (!marked || !*marked) return false;
  spdlog::info("pool: {} goes: {}", p.container, why);
  if (Status d = runtime_.destroy(p.container); !d.isOk()) {
    spdlog::warn("pool: destroying {}: {} (retried)", p.container, d.toString());
    return false;
  }
  if (Status gone = forgetPooled(p.container); !gone.isOk()) {
    spdlog::warn("pool: forgetting {}: {}", p.container, gone.toString());
    return false;
  }
  return true;
}

Status EnvironmentManager::forgetPooled(const std::string& container) {
  return store_.transaction([&]() -> Status {
    QABOX_RETURN_IF_ERROR(store_.releaseAddressesOf(container));
    return store_.deletePooled(container);
  });
}

bool EnvironmentManager::poolGivesWay(const std::string& why) {
  auto pooled = store_.listPooled();
  if (!pooled) return false;
  // Ready ones only: a filling one is the keeper's to finish or drop.
  for (auto p = pooled->rbegin(); p != pooled->rend(); ++p) {
    if (p->state == PoolState::kReady && dropPooled(*p, why)) return true;
  }
  return false;
}

Result<ResourceLimits> EnvironmentManager::poolLimits(const std::string& image) const {
  // What a deploy asking for no limits of its own gets: the only ones a
  // claim matches.
  QABOX_ASSIGN_OR_RETURN(ImageManifest im, images_.manifest(image));
  return effectiveLimits({}, {im.memory, im.cpus, im.pids}, image, config_.limits);
}

Status EnvironmentManager::fillPool(const std::string& image, uint32_t version) {
  QABOX_RETURN_IF_ERROR(refuseWhenDiskFull(config_.stateDir, "pool fill"));
  QABOX_ASSIGN_OR_RETURN(ResourceLimits limits, poolLimits(image));
  QABOX_ASSIGN_OR_RETURN(Subnet subnet, parseSubnet(config_.network.subnet));
  PooledContainer p;
  p.container = poolContainerName(++poolSeq_);
  p.image = image;
  p.imageVersion = version;
  p.limits = limits;
  p.state = PoolState::kFilling;
  p.createdAt = time_.now();
  // The lease and the entry together: a crash leaves a filling entry that
  // recovery destroys, with its lease.
  QABOX_RETURN_IF_ERROR(store_.transaction([&]() -> Status {
    QABOX_ASSIGN_OR_RETURN(p.ip, store_.leaseAddress(config_.network.subnet, p.container));
    return store_.putPooled(p);
  }));
  Status s = [&]() -> Status {
    QABOX_ASSIGN_OR_RETURN(auto lowers, images_.lowerDirs(image, version));
    QABOX_FAILPOINT("pool.clone.before");
    QABOX_RETURN_IF_ERROR(
        cloneImage(runtime_, config_, subnet, image, version, p.container, p.ip, lowers, limits));
    // qabox-init waits while this is there (init/contract.h); a deploy's
    // claim removes it once its files are in.
    const std::string upper = runtime_.upperDir(p.container);
    QABOX_RETURN_IF_ERROR(writeFileBeneath(upper, supervise::kPooledFile, "", 0644));
    if (auto root = runtime_.mappedRoot(p.container)) {
      QABOX_RETURN_IF_ERROR(shiftOwnership(upper, *root));
    }
    QABOX_RETURN_IF_ERROR(bridge_.forgetNeighbor(config_.network.bridge, p.ip));
    QABOX_RETURN_IF_ERROR(runtime_.start(p.container));
    QABOX_FAILPOINT("pool.start.after");
    p.state = PoolState::kReady;
    return store_.putPooled(p);
  }();
  if (!s.isOk()) {
    // Short of an id range, the clone made nothing: the lease and the entry
    // go without a destroy or a word, as every pass would repeat them.
    auto made = runtime_.state(p.container);
    if (s.code() == Code::kResourceExhausted && made && *made == ContainerState::kMissing &&
        forgetPooled(p.container).isOk()) {
      return s;
    }
    PooledContainer failed = p;
    failed.state = PoolState::kFilling;
    dropPooled(failed, "its fill failed");
    return s;
  }
  spdlog::info("pool: {} ready ({} v{} at {})", p.container, image, version, p.ip);
  return Status::ok();
}

Status EnvironmentManager::recoverPool() {
  QABOX_ASSIGN_OR_RETURN(auto pooled, store_.listPooled());
  QABOX_ASSIGN_OR_RETURN(auto listed, runtime_.list());
  uint64_t highest = 0;
  auto note = [&](const std::string& name) {
    if (!isPoolContainer(name)) return;
    highest = std::max<uint64_t>(highest, std::stoull(name.substr(name.find('-') + 1)));
  };
  for (const auto& name : listed) note(name);
  for (const auto& p : pooled) note(p.container);
  // Every name the journal ever recorded too: one a deploy claimed is never
  // given again, even once it is gone, so no audit line means two things.
  QABOX_ASSIGN_OR_RETURN(auto journaled, store_.journalContainers());
  for (const auto& name : journaled) note(name);
  poolSeq_ = highest;
  for (const auto& p : pooled) {
    // A fill the agent did not see through, or a container that stopped
    // while it was down: gone, with its lease. A ready, running one stays.
    std::string why;
    if (p.state == PoolState::kFilling) {
      why = "its fill was interrupted by an agent restart";
    } else if (p.state == PoolState::kDropping) {
      why = "it was going when the agent stopped";
    } else if (auto st = runtime_.state(p.container); !st || *st != ContainerState::kRunning) {
      why = "it was not running at agent start";
    }
    if (!why.empty()) dropPooled(p, why);
  }
  return Status::ok();
}

std::unique_ptr<Periodic> EnvironmentManager::makePoolKeeper() {
  if (!poolWanted()) return nullptr;
  return std::make_unique<Periodic>("pool", config_.pool.interval, [this] {
    // The clones, starts and destroys it spawns run at nice 19 (and the
    // containers it starts, until a claim); the thread itself does not, as
    // it takes the store's and the runtime's locks that deploys wait for.
    IdleSpawns idle;
    // Until there is nothing left to do, one container a pass.
    while (!stopping_ && tendPool()) {
    }
  });
}

void EnvironmentManager::startPool() {
  if (!pool_) return;
  pool_->start();
  pool_->poke();  // the first fill at once, not a period on
}

void EnvironmentManager::stopPool() {
  if (pool_) pool_->stop();
}

void EnvironmentManager::pokePool() {
  if (pool_) pool_->poke();
}

}  // namespace qabox
