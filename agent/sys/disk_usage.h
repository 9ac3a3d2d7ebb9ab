#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "core/status.h"

namespace qabox {

// How much of the disk a directory tree holds. The tree is a container's
// (its overlay upper layer): hostile. The walk follows no symbolic link,
// opens nothing but directories (never a FIFO or a device), stays on the
// root's filesystem and is bounded in depth, entries and time.
struct TreeUsage {
  enum class Bound { kNone, kEntries, kDepth, kTime };
  uint64_t bytes = 0;    // allocated: st_blocks * 512, each inode once (hard links, sparse files)
  uint64_t entries = 0;  // inodes seen: files, directories, links, whiteouts
  Bound bound = Bound::kNone;  // the walk stopped early at this bound; the figures are a floor
  std::string why;             // what stopped it, for messages
};

struct TreeBounds {
  uint64_t maxEntries = 1'000'000;
  unsigned maxDepth = 256;  // directory levels below the root; one descriptor each
  std::chrono::milliseconds maxTime{10'000};
};

// Fails only when `root` itself cannot be opened as a directory (NOT_FOUND
// when it does not exist).
Result<TreeUsage> measureTree(const std::string& root, const TreeBounds& bounds = {});

// The space left on the filesystem holding `path`, as an unprivileged
// writer (a container's mapped root) sees it.
struct FsSpace {
  uint64_t available = 0;
  uint64_t total = 0;
  uint64_t freeInodes = 0;
  uint64_t totalInodes = 0;
};
Result<FsSpace> fsSpace(const std::string& path);
// Full for an environment: less than 16 MiB or 1% (whichever is more) of
// blocks, or of inodes, left.
bool nearlyFull(const FsSpace& space);

// RESOURCE_EXHAUSTED when the disk holding `stateDir` is nearlyFull, naming
// `what`, the state dir and the space left: what grows the state (a deploy,
// an image build, a change of a row) is refused before it starts, so
// nothing is left half-made. OK when the disk cannot be measured.
Status refuseWhenDiskFull(const std::string& stateDir, const std::string& what);

// 1536 -> "1.5K", 10737418240 -> "10.0G": for messages.
std::string formatBytes(uint64_t bytes);

// RESOURCE_EXHAUSTED for ENOSPC and EDQUOT, naming what was written and the
// disk; INTERNAL for any other errno.
Status writeError(const std::string& what, int err);

}  // namespace qabox
