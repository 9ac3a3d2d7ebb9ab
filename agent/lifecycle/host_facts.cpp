#include "lifecycle/host_facts.h"

#include <spdlog/spdlog.h>
#include <sys/statvfs.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "store/ipam.h"

namespace qabox {
namespace {

void countEnvironments(const std::vector<Environment>& envs, const Config& config, HostFacts& out) {
  out.environments = static_cast<uint32_t>(envs.size());
  for (const auto& e : envs) {
    out.byState[std::string(stateName(e.state))]++;
    out.sleeping += e.state == EnvState::kSleeping;
  }
  out.maxEnvironments = config.limits.maxEnvironments;
  out.capacityLeft =
      out.environments >= out.maxEnvironments ? 0 : out.maxEnvironments - out.environments;
}

void countAddresses(Store& store, const Config& config, HostFacts& out) {
  auto subnet = parseSubnet(config.network.subnet);
  if (!subnet) return;
  auto leases = store.listLeases();
  if (!leases) spdlog::warn("host status: listing leases: {}", leases.status().toString());
  uint32_t used = leases ? static_cast<uint32_t>(leases->size()) : 0;
  uint32_t total = hostCount(*subnet);
  out.addressesLeft = used >= total ? 0 : total - used;
}

void measureDisk(const std::string& dir, HostFacts& out) {
  struct statvfs vfs {};
  if (statvfs(dir.c_str(), &vfs) != 0) {
    spdlog::warn("host status: statvfs {}: {}", dir, std::strerror(errno));
    return;
  }
  out.diskTotalBytes = static_cast<uint64_t>(vfs.f_blocks) * vfs.f_frsize;
  out.diskFreeBytes = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
}

}  // namespace

MemoryFacts parseMeminfo(std::istream& in) {
  MemoryFacts out;
  std::string key;
  uint64_t kb = 0;
  std::string unit;
  while (in >> key >> kb >> unit) {
    if (key == "MemTotal:") out.totalBytes = kb * 1024;
    if (key == "MemAvailable:") out.availableBytes = kb * 1024;
  }
  return out;
}

std::optional<MemoryFacts> readMeminfo(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  return parseMeminfo(in);
}

Result<HostFacts> hostFacts(Store& store, const Config& config, const std::string& meminfo) {
  HostFacts out;
  QABOX_ASSIGN_OR_RETURN(auto envs, store.listEnvironments());
  countEnvironments(envs, config, out);
  countAddresses(store, config, out);
  measureDisk(config.stateDir, out);
  if (auto pooled = store.listPooled()) {
    for (const auto& p : *pooled) {
      if (p.state == PoolState::kReady) ++out.poolReady[p.image];
      if (p.state == PoolState::kFilling) ++out.poolFilling[p.image];
    }
  } else {
    spdlog::warn("host status: reading the pool: {}", pooled.status().toString());
  }
  if (auto mem = readMeminfo(meminfo)) {
    out.memoryTotalBytes = mem->totalBytes;
    out.memoryAvailableBytes = mem->availableBytes;
  } else {
    spdlog::warn("host status: cannot read {}", meminfo);
  }
  return out;
}

Result<std::vector<ImageUse>> imageUses(Store& store) {
  QABOX_ASSIGN_OR_RETURN(auto images, store.listImages());
  QABOX_ASSIGN_OR_RETURN(auto envs, store.listEnvironments());
  std::vector<ImageUse> out;
  for (auto& im : images) {
    uint32_t users = 0;
    for (const auto& e : envs) users += e.spec.image == im.name && e.imageVersion == im.version;
    out.push_back({std::move(im), users});
  }
  return out;
}

}  // namespace qabox
