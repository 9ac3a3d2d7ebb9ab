// The warm pool: containers cloned, addressed and started ahead of any
// deploy, per image version, which a deploy claims (DeployRun::reserve)
// instead of cloning. Each is a row of the store's pool table holding its
// lease, never an environment: no ticket, no route, not listed.
#include "lifecycle/pool.h"

#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <fstream>

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
#include "sys/safe_path.h"

namespace qabox {

bool lowerThreadPriority() {
  sched_param param{};
  const bool idle = ::sched_setscheduler(0, SCHED_IDLE, &param) == 0;
  const auto tid = static_cast<id_t>(::syscall(SYS_gettid));
  const bool nice = ::setpriority(PRIO_PROCESS, tid, 19) == 0;
  return idle && nice;
}

namespace {

std::optional<uint64_t> availableMemory() {
  std::ifstream in("/proc/meminfo");
  if (!in) return std::nullopt;
  return parseMeminfo(in).availableBytes;
}

}  // namespace

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
  if (auto mem = availableMemory(); mem && *mem < minMemory) {
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
  for (const auto& p : *pooled) {
    auto it = current.find(p.image);
    std::string why;
    if (it == current.end() || it->second != p.imageVersion) {
      why = "its image version " + p.image + " v" + std::to_string(p.imageVersion) +
            " is no longer current";
    } else if (config_.pool.sizeOf(p.image) == 0) {
      why = "the pool keeps none of " + p.image;
    } else if (p.state == PoolState::kReady) {
      auto st = runtime_.state(p.container);
      if (st && *st != ContainerState::kRunning) why = "it is no longer running";
    }
    if (why.empty()) continue;
    dropPooled(p, false, why);
    return true;
  }
  std::map<std::string, uint32_t> have;  // image -> pooled at its current version
  for (const auto& p : *pooled) ++have[p.image];
  if (std::string pressure = poolPressure(); !pressure.empty()) {
    if (pooled->empty()) return false;
    // The newest goes: the oldest are the next to be claimed.
    dropPooled(pooled->back(), false, pressure);
    return true;
  }
  // Fills wait for a moment without calls in flight: a deploy never shares
  // the host (the store's connection, the disk, the helpers) with a fill.
  // The deploy's end pokes the pool.
  if (!inFlight().empty()) return false;
  for (const auto& [image, version] : current) {
    if (have[image] >= config_.pool.sizeOf(image)) continue;
    if (Status s = fillPool(image, version); !s.isOk()) {
      spdlog::warn("pool: filling with {} v{}: {}", image, version, s.toString());
      return false;  // the next pass, one interval on, tries again
    }
    return true;
  }
  return false;
}

void EnvironmentManager::dropPooled(const PooledContainer& p, bool anyState,
                                    const std::string& why) {
  // Out of the table first: a deploy claiming it at the same moment gets it
  // whole, or not at all.
  auto deleted = store_.deletePooled(p.container, anyState);
  if (!deleted || !*deleted) return;
  spdlog::info("pool: {} goes: {}", p.container, why);
  if (Status d = runtime_.destroy(p.container); !d.isOk()) {
    // The next start's orphan sweep destroys it (no row, no pool entry).
    spdlog::warn("pool: destroying {}: {}", p.container, d.toString());
    return;
  }
  if (Status r = store_.releaseAddressesOf(p.container); !r.isOk()) {
    spdlog::warn("pool: releasing the address of {}: {}", p.container, r.toString());
  }
}

Status EnvironmentManager::fillPool(const std::string& image, uint32_t version) {
  QABOX_RETURN_IF_ERROR(refuseWhenDiskFull(config_.stateDir, "pool fill"));
  QABOX_ASSIGN_OR_RETURN(ImageManifest im, images_.manifest(image));
  QABOX_ASSIGN_OR_RETURN(ResourceLimits limits,
                         effectiveLimits({}, {im.memory, im.cpus, im.pids}, image, config_.limits));
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
    NetSpec net{config_.network.bridge, cidrOf(subnet, p.ip), gatewayOf(subnet)};
    QABOX_FAILPOINT("pool.clone.before");
    QABOX_RETURN_IF_ERROR(runtime_.clone(paths::imagesLxcPath(config_.stateDir),
                                         paths::imageContainer(image, version), p.container, lowers,
                                         net, limits));
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
    dropPooled(p, true, "its fill failed");
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
    if (p.state != PoolState::kReady) {
      why = "its fill was interrupted by an agent restart";
    } else if (auto st = runtime_.state(p.container); !st || *st != ContainerState::kRunning) {
      why = "it was not running at agent start";
    }
    if (!why.empty()) dropPooled(p, true, why);
  }
  return Status::ok();
}

void EnvironmentManager::startPool() {
  if (!poolWanted() || pool_) return;
  pool_ = std::make_unique<Periodic>("pool", config_.pool.interval, [this] {
    static thread_local const bool lowered = [] {
      if (lowerThreadPriority()) return true;
      spdlog::warn("pool: cannot lower its thread's priority; it fills at the normal one");
      return false;
    }();
    (void)lowered;
    // Until there is nothing left to do, each pass one container.
    while (!stopping_ && tendPool()) {
    }
  });
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
