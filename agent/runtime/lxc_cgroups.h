#pragma once

// The cgroup directories liblxc makes for a container: lxc.monitor.<name>
// for its monitor and lxc.payload.<name> for the container, at the top of
// every hierarchy (cgroup2 alone, or each v1 controller and the unified and
// named hierarchies of a hybrid host). When a start fails liblxc leaves
// them behind, empty; so a name taken gets "-1", "-2", ... appended.

#include <cstddef>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace qabox {

// The container name a directory's name carries ("lxc.payload.qabox-x" and
// "lxc.monitor.qabox-x-1" give "qabox-x" and "qabox-x-1"); "" for any other.
std::string cgroupContainerName(const std::string& dirName);

// Whether `dirName` is liblxc's for `container`: its name exactly, or with
// a "-<digits>" suffix liblxc added when the name was taken (kept for the
// checker's table test; cgroupBelongsTo is the rule that removes).
bool isCgroupOf(const std::string& dirName, const std::string& container);

// Whether `dirName` is `container`'s: its exact name first; a suffixed
// "<container>-<digits>" only when no container is named exactly that
// (`isContainer`): slugs end in digits too, and environment foo-2's
// lxc.payload.qabox-foo-2 is never qabox-foo's.
bool cgroupBelongsTo(const std::string& dirName, const std::string& container,
                     const std::function<bool(const std::string&)>& isContainer);

// Every lxc.monitor.* and lxc.payload.* directory at the top of each
// hierarchy under `root` (cgroup2 when `root` has cgroup.controllers). Only
// lstat: a link is never followed.
std::vector<std::string> lxcCgroupDirs(const std::string& root = "/sys/fs/cgroup");

// `dirs` (one listing, lxcCgroupDirs) grouped by the container of
// `containers` each belongs to (cgroupBelongsTo); the others left out.
std::map<std::string, std::vector<std::string>> cgroupDirsByOwner(
    const std::vector<std::string>& dirs, const std::set<std::string>& containers,
    const std::function<bool(const std::string&)>& isContainer);

// The walks of a tree below a container's cgroup are bounded: a tree
// deeper or larger than this is taken as not empty and stays.
constexpr int kCgroupWalkMaxDepth = 32;
constexpr size_t kCgroupWalkMaxEntries = 10000;

// No process in `dir` or any cgroup below it, as far as a bounded walk
// could see: a walk that failed or ran out is "not empty".
bool cgroupTreeEmpty(const std::string& dir);

// Removes each of `dirs` whose tree is empty, children first; a tree that
// holds a process stays whole. Returns how many directories went.
size_t removeEmptyCgroups(const std::vector<std::string>& dirs);

// `container`'s cgroup directories (cgroupBelongsTo), from one listing.
std::vector<std::string> containerCgroups(
    const std::string& container, const std::function<bool(const std::string&)>& isContainer,
    const std::string& root = "/sys/fs/cgroup");

// Removes `container`'s empty cgroup directories (cgroupBelongsTo), from
// one listing of the hierarchies. Returns how many went.
size_t removeContainerCgroups(const std::string& container,
                              const std::function<bool(const std::string&)>& isContainer,
                              const std::string& root = "/sys/fs/cgroup");

}  // namespace qabox
