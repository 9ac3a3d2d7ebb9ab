#include "sys/disk_usage.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <unordered_set>
#include <vector>

namespace qabox {
namespace {

struct DevIno {
  dev_t dev;
  ino_t ino;
  bool operator==(const DevIno& o) const { return dev == o.dev && ino == o.ino; }
};
struct DevInoHash {
  size_t operator()(const DevIno& k) const {
    return std::hash<uint64_t>()(static_cast<uint64_t>(k.ino) * 1000003u ^
                                 static_cast<uint64_t>(k.dev));
  }
};

constexpr int kDirFlags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK;

// The root, open as a directory stream; `st` is its stat.
Result<DIR*> openTreeRoot(const std::string& root, struct stat& st) {
  int rootFd = ::open(root.c_str(), kDirFlags);
  if (rootFd < 0) {
    int err = errno;
    if (err == ENOENT) return notFound("measuring " + root + ": no such directory");
    return internalError("measuring " + root + ": " + std::strerror(err));
  }
  if (::fstat(rootFd, &st) != 0) {
    int err = errno;
    ::close(rootFd);
    return internalError("measuring " + root + ": " + std::strerror(err));
  }
  DIR* rootDir = ::fdopendir(rootFd);
  if (!rootDir) {
    int err = errno;
    ::close(rootFd);
    return internalError("measuring " + root + ": " + std::strerror(err));
  }
  return rootDir;
}

// The subdirectory `name` of `dir` that was stat'ed as `st`, or null when
// it is no longer that directory (replaced by a link or a file since the
// stat): not ours to follow.
DIR* openChildDir(DIR* dir, const char* name, const struct stat& st) {
  int fd = ::openat(::dirfd(dir), name, kDirFlags);
  if (fd < 0) return nullptr;
  struct stat opened {};
  if (::fstat(fd, &opened) != 0 || opened.st_dev != st.st_dev || opened.st_ino != st.st_ino) {
    ::close(fd);
    return nullptr;
  }
  DIR* child = ::fdopendir(fd);
  if (!child) ::close(fd);
  return child;
}

}  // namespace

Result<TreeUsage> measureTree(const std::string& root, const TreeBounds& bounds) {
  struct stat rootSt {};
  QABOX_ASSIGN_OR_RETURN(DIR * rootDir, openTreeRoot(root, rootSt));

  TreeUsage u;
  u.entries = 1;
  u.bytes = static_cast<uint64_t>(rootSt.st_blocks) * 512;
  std::unordered_set<DevIno, DevInoHash> linked;
  // One open directory per level: the walk never resolves a path, so a
  // rename or a link swapped in behind it cannot lead it out of the tree.
  std::vector<DIR*> stack = {rootDir};
  const auto deadline = std::chrono::steady_clock::now() + bounds.maxTime;
  auto stop = [&](TreeUsage::Bound b, std::string why) {
    if (u.bound == TreeUsage::Bound::kNone) {
      u.bound = b;
      u.why = std::move(why);
    }
  };

  while (!stack.empty() && u.bound == TreeUsage::Bound::kNone) {
    DIR* dir = stack.back();
    errno = 0;
    dirent* e = ::readdir(dir);
    if (!e) {
      ::closedir(dir);
      stack.pop_back();
      continue;
    }
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
    if ((u.entries & 1023) == 0 && std::chrono::steady_clock::now() > deadline) {
      stop(TreeUsage::Bound::kTime,
           "not measured whole within " + std::to_string(bounds.maxTime.count()) + " ms");
      break;
    }
    if (u.entries >= bounds.maxEntries) {
      stop(TreeUsage::Bound::kEntries, "more than " + std::to_string(bounds.maxEntries) + " files");
      break;
    }
    struct stat st {};
    if (::fstatat(::dirfd(dir), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;  // gone
    ++u.entries;
    bool seen = false;
    if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) {
      seen = !linked.insert({st.st_dev, st.st_ino}).second;
    }
    if (!seen) u.bytes += static_cast<uint64_t>(st.st_blocks) * 512;
    if (!S_ISDIR(st.st_mode) || st.st_dev != rootSt.st_dev) continue;
    if (stack.size() > bounds.maxDepth) {
      stop(TreeUsage::Bound::kDepth,
           "directories nested deeper than " + std::to_string(bounds.maxDepth) + " levels");
      break;
    }
    if (DIR* child = openChildDir(dir, e->d_name, st)) stack.push_back(child);
  }
  for (DIR* d : stack) ::closedir(d);
  return u;
}

Result<FsSpace> fsSpace(const std::string& path) {
  struct statvfs v {};
  if (::statvfs(path.c_str(), &v) != 0) {
    return internalError("statvfs " + path + ": " + std::strerror(errno));
  }
  FsSpace s;
  s.available = static_cast<uint64_t>(v.f_bavail) * v.f_frsize;
  s.total = static_cast<uint64_t>(v.f_blocks) * v.f_frsize;
  s.freeInodes = v.f_favail;
  s.totalInodes = v.f_files;
  return s;
}

bool nearlyFull(const FsSpace& s) {
  uint64_t reserve = std::max<uint64_t>(16ULL << 20, s.total / 100);
  if (s.available < reserve) return true;
  // Some filesystems have no inode count (f_files 0): only blocks then.
  return s.totalInodes > 0 && s.freeInodes < std::max<uint64_t>(64, s.totalInodes / 100);
}

Status refuseWhenDiskFull(const std::string& stateDir, const std::string& what) {
  auto space = fsSpace(stateDir);
  if (!space || !nearlyFull(*space)) return Status::ok();
  return resourceExhausted(what + ": the disk of the state dir " + stateDir + " is full (" +
                           formatBytes(space->available) + " left of " + formatBytes(space->total) +
                           ", " + std::to_string(space->freeInodes) +
                           " inodes free); free space on it and try again");
}

std::string formatBytes(uint64_t bytes) {
  static const char* kUnits[] = {"K", "M", "G", "T"};
  if (bytes < 1024) return std::to_string(bytes) + "B";
  double v = static_cast<double>(bytes) / 1024;
  size_t i = 0;
  while (v >= 1024 && i + 1 < std::size(kUnits)) {
    v /= 1024;
    ++i;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%s", v, kUnits[i]);
  return buf;
}

Status writeError(const std::string& what, int err) {
  if (err == ENOSPC || err == EDQUOT) {
    return resourceExhausted(what + ": the disk is full (" + std::strerror(err) + ")");
  }
  return internalError(what + ": " + std::strerror(err));
}

}  // namespace qabox
