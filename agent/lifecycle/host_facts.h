#pragma once

// What the host has and how much of it the environments use: what
// GetHostStatus and ListImages report. Plain values, read from the store,
// the config, statvfs(2) of the state dir and /proc/meminfo.

#include <cstdint>
#include <istream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/status.h"
#include "store/store.h"

namespace qabox {

struct HostFacts {
  uint32_t environments = 0;
  std::map<std::string, uint32_t> byState;  // "READY" -> how many (stateName)
  uint32_t sleeping = 0;
  uint32_t maxEnvironments = 0;  // limits.max_environments
  uint32_t capacityLeft = 0;     // environments that may still be made
  // Addresses of network.subnet not leased; unset when the subnet does not parse.
  std::optional<uint32_t> addressesLeft;
  // Of the state dir's file system; unset when statvfs fails.
  std::optional<uint64_t> diskTotalBytes;
  std::optional<uint64_t> diskFreeBytes;
  // From /proc/meminfo; unset when it cannot be read.
  std::optional<uint64_t> memoryTotalBytes;
  std::optional<uint64_t> memoryAvailableBytes;
  // The warm pool, by image: ready to claim, and being filled.
  std::map<std::string, uint32_t> poolReady;
  std::map<std::string, uint32_t> poolFilling;
};

struct MemoryFacts {
  std::optional<uint64_t> totalBytes;      // MemTotal
  std::optional<uint64_t> availableBytes;  // MemAvailable
};

// The MemTotal and MemAvailable lines of a /proc/meminfo text.
MemoryFacts parseMeminfo(std::istream& in);
// The same of the file at `path`; nullopt when it cannot be opened.
std::optional<MemoryFacts> readMeminfo(const std::string& path = "/proc/meminfo");

// Counts from the store and the config, disk of config.stateDir, memory
// from `meminfo`. Only the environments' list is needed: a store that
// cannot list them is the error; the rest is left unset, with a warning.
Result<HostFacts> hostFacts(Store& store, const Config& config,
                            const std::string& meminfo = "/proc/meminfo");

// One image version and the environments cloned from it.
struct ImageUse {
  ImageVersion image;
  uint32_t environments = 0;
};
Result<std::vector<ImageUse>> imageUses(Store& store);

}  // namespace qabox
