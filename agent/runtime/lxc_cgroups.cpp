#include "runtime/lxc_cgroups.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace qabox {

namespace fs = std::filesystem;

namespace {

constexpr const char* kPrefixes[] = {"lxc.monitor.", "lxc.payload."};

bool isRealDir(const fs::path& p) {
  struct stat st {};
  return ::lstat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::vector<fs::path> hierarchies(const std::string& root) {
  std::vector<fs::path> out;
  if (::access((root + "/cgroup.controllers").c_str(), F_OK) == 0) {
    out.emplace_back(root);
    return out;
  }
  // v1: cpu and cpuacct are links to cpu,cpuacct; each real one once.
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root, ec)) {
    if (isRealDir(e.path())) out.push_back(e.path());
  }
  return out;
}

// A walk of a tree a container's init may have built: bounded in depth
// and in entries, and one that failed or ran out says so (never "empty").
struct Walk {
  size_t entries = 0;
  bool failed = false;
  bool enter(int depth) {
    if (depth > kCgroupWalkMaxDepth || ++entries > kCgroupWalkMaxEntries) failed = true;
    return !failed;
  }
};

// The cgroup directories right below `dir`; a listing that fails fails the walk.
std::vector<fs::path> childDirs(const fs::path& dir, Walk& w) {
  std::vector<fs::path> out;
  std::error_code ec;
  fs::directory_iterator it(dir, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    if (isRealDir(it->path())) out.push_back(it->path());
  }
  if (ec) w.failed = true;
  return out;
}

// No process in it or any cgroup below it: a running container's tree
// (whose init may have made cgroups of its own) is never touched.
bool treeEmpty(const fs::path& dir, Walk& w, int depth) {
  if (!w.enter(depth)) return false;
  std::ifstream procs(dir / "cgroup.procs");
  if (!procs) {
    w.failed = true;
    return false;
  }
  std::string pid;
  if (procs >> pid) return false;
  for (const auto& c : childDirs(dir, w)) {
    if (w.failed || !treeEmpty(c, w, depth + 1)) return false;
  }
  return !w.failed;
}

// Children first: a cgroup directory goes only once it has none.
bool removeTree(const fs::path& dir, size_t& removed, Walk& w, int depth) {
  if (!w.enter(depth)) return false;
  bool all = true;
  for (const auto& c : childDirs(dir, w))
    all = !w.failed && removeTree(c, removed, w, depth + 1) && all;
  if (!all || w.failed || ::rmdir(dir.c_str()) != 0) return false;
  ++removed;
  return true;
}

std::string baseName(const std::string& path) { return fs::path(path).filename(); }

// "qabox-x-12" gives "qabox-x"; "" when the name has no "-<digits>" suffix.
std::string unsuffixed(const std::string& name) {
  const size_t dash = name.rfind('-');
  if (dash == std::string::npos || dash == 0 || dash + 1 == name.size() ||
      name.find_first_not_of("0123456789", dash + 1) != std::string::npos) {
    return "";
  }
  return name.substr(0, dash);
}

}  // namespace

bool cgroupTreeEmpty(const std::string& dir) {
  Walk w;
  return treeEmpty(dir, w, 0);
}

size_t removeEmptyCgroups(const std::vector<std::string>& dirs) {
  size_t removed = 0;
  for (const auto& dir : dirs) {
    if (!cgroupTreeEmpty(dir)) continue;
    Walk w;
    removeTree(dir, removed, w, 0);
  }
  return removed;
}

std::string cgroupContainerName(const std::string& dirName) {
  for (const char* prefix : kPrefixes) {
    const std::string p = prefix;
    if (dirName.size() > p.size() && dirName.compare(0, p.size(), p) == 0) {
      return dirName.substr(p.size());
    }
  }
  return "";
}

bool isCgroupOf(const std::string& dirName, const std::string& container) {
  const std::string name = cgroupContainerName(dirName);
  if (container.empty() || name.size() < container.size() ||
      name.compare(0, container.size(), container) != 0) {
    return false;
  }
  if (name.size() == container.size()) return true;
  if (name[container.size()] != '-' || name.size() == container.size() + 1) return false;
  return name.find_first_not_of("0123456789", container.size() + 1) == std::string::npos;
}

std::vector<std::string> lxcCgroupDirs(const std::string& root) {
  std::vector<std::string> out;
  for (const auto& h : hierarchies(root)) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(h, ec)) {
      if (!cgroupContainerName(e.path().filename()).empty() && isRealDir(e.path())) {
        out.push_back(e.path());
      }
    }
  }
  return out;
}

bool cgroupBelongsTo(const std::string& dirName, const std::string& container,
                     const std::function<bool(const std::string&)>& isContainer) {
  const std::string name = cgroupContainerName(dirName);
  if (container.empty() || name.empty()) return false;
  if (name == container) return true;
  return unsuffixed(name) == container && !isContainer(name);
}

std::map<std::string, std::vector<std::string>> cgroupDirsByOwner(
    const std::vector<std::string>& dirs, const std::set<std::string>& containers,
    const std::function<bool(const std::string&)>& isContainer) {
  std::map<std::string, std::vector<std::string>> out;
  for (const auto& dir : dirs) {
    const std::string name = cgroupContainerName(baseName(dir));
    if (name.empty()) continue;
    if (containers.count(name) > 0) {
      out[name].push_back(dir);
    } else if (const std::string base = unsuffixed(name);
               !base.empty() && containers.count(base) > 0 && !isContainer(name)) {
      out[base].push_back(dir);
    }
  }
  return out;
}

std::vector<std::string> containerCgroups(
    const std::string& container, const std::function<bool(const std::string&)>& isContainer,
    const std::string& root) {
  std::vector<std::string> mine;
  for (const auto& dir : lxcCgroupDirs(root)) {
    if (cgroupBelongsTo(baseName(dir), container, isContainer)) mine.push_back(dir);
  }
  return mine;
}

size_t removeContainerCgroups(const std::string& container,
                              const std::function<bool(const std::string&)>& isContainer,
                              const std::string& root) {
  return removeEmptyCgroups(containerCgroups(container, isContainer, root));
}

}  // namespace qabox
