#pragma once

// The cgroup directories liblxc makes for a container: lxc.monitor.<name>
// for its monitor and lxc.payload.<name> for the container, at the top of
// every hierarchy (cgroup2 alone, or each v1 controller and the unified and
// named hierarchies of a hybrid host). When a start fails liblxc leaves
// them behind, empty; so a name taken gets "-1", "-2", ... appended.

#include <cstddef>
#include <string>
#include <vector>

namespace qabox {

// The container name a directory's name carries ("lxc.payload.qabox-x" and
// "lxc.monitor.qabox-x-1" give "qabox-x" and "qabox-x-1"); "" for any other.
std::string cgroupContainerName(const std::string& dirName);

// Whether `dirName` is liblxc's for `container`: its name exactly, or with
// a "-<digits>" suffix liblxc added when the name was taken.
bool isCgroupOf(const std::string& dirName, const std::string& container);

// Every lxc.monitor.* and lxc.payload.* directory at the top of each
// hierarchy under `root` (cgroup2 when `root` has cgroup.controllers). Only
// lstat: a link is never followed.
std::vector<std::string> lxcCgroupDirs(const std::string& root = "/sys/fs/cgroup");

// Removes `container`'s empty cgroup directories (isCgroupOf), children
// first; one that still holds a process stays. Returns how many went.
size_t removeContainerCgroups(const std::string& container,
                              const std::string& root = "/sys/fs/cgroup");

}  // namespace qabox
