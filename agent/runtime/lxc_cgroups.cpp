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

// No process in it or any cgroup below it: a running container's tree
// (whose init may have made cgroups of its own) is never touched.
bool treeEmpty(const fs::path& dir) {
  std::ifstream procs(dir / "cgroup.procs");
  std::string pid;
  if (procs >> pid) return false;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (isRealDir(e.path()) && !treeEmpty(e.path())) return false;
  }
  return true;
}

// Children first: a cgroup directory goes only once it has none.
bool removeTree(const fs::path& dir, size_t& removed) {
  std::error_code ec;
  std::vector<fs::path> children;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (isRealDir(e.path())) children.push_back(e.path());
  }
  bool all = true;
  for (const auto& c : children) all = removeTree(c, removed) && all;
  if (!all || ::rmdir(dir.c_str()) != 0) return false;
  ++removed;
  return true;
}

}  // namespace

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

size_t removeContainerCgroups(const std::string& container, const std::string& root) {
  size_t removed = 0;
  for (const auto& dir : lxcCgroupDirs(root)) {
    if (isCgroupOf(fs::path(dir).filename(), container) && treeEmpty(dir)) removeTree(dir, removed);
  }
  return removed;
}

}  // namespace qabox
