#include "runtime/helper_mounts.h"

#include <fcntl.h>
#include <linux/mount.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace qabox {
namespace {

// A directory opened without following a symlink at its last component: what
// the mount calls take instead of its path, so a link put there cannot send
// a mount elsewhere. -1 with `error` set when it is a symlink or no directory.
int openDirNoFollow(const std::string& path, std::string& error) {
  int fd = open(path.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    struct statx st {};
    const bool link = statx(AT_FDCWD, path.c_str(), AT_SYMLINK_NOFOLLOW, STATX_TYPE, &st) == 0 &&
                      S_ISLNK(st.stx_mode);
    error = path + (link ? " is a symlink" : std::string(": ") + std::strerror(err));
  }
  return fd;
}

// A user namespace whose ids `from`.. are host ids `to`.., held by an fd:
// what an idmapped mount takes its mapping from.
int userNamespace(unsigned long from, unsigned long to, std::string& error) {
  int ready[2], done[2];
  if (pipe2(ready, O_CLOEXEC) != 0 || pipe2(done, O_CLOEXEC) != 0) {
    error = std::string("pipe: ") + std::strerror(errno);
    return -1;
  }
  pid_t child = fork();
  if (child == 0) {
    close(ready[0]);
    close(done[1]);
    char c = 0;
    if (unshare(CLONE_NEWUSER) != 0 || write(ready[1], &c, 1) != 1) _exit(1);
    (void)!read(done[0], &c, 1);
    _exit(0);
  }
  close(ready[1]);
  close(done[0]);
  int ns = -1;
  char c = 0;
  if (child > 0 && read(ready[0], &c, 1) == 1) {
    const std::string map = std::to_string(from) + " " + std::to_string(to) + " 65536\n";
    bool mapped = true;
    for (const char* file : {"uid_map", "gid_map"}) {
      std::string path = "/proc/" + std::to_string(child) + "/" + file;
      int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
      mapped = mapped && fd >= 0 &&
               write(fd, map.data(), map.size()) == static_cast<ssize_t>(map.size());
      if (fd >= 0) close(fd);
    }
    if (mapped) {
      ns = open(("/proc/" + std::to_string(child) + "/ns/user").c_str(), O_RDONLY | O_CLOEXEC);
    }
    if (ns < 0) error = std::string("mapping a user namespace: ") + std::strerror(errno);
  } else {
    error = "the user namespace helper did not start";
  }
  close(done[1]);
  close(ready[0]);
  if (child > 0) waitpid(child, nullptr, 0);
  return ns;
}

}  // namespace

bool isMountRoot(const std::string& path) {
  struct statx st {};
  if (statx(AT_FDCWD, path.c_str(), AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &st) != 0) {
    return false;
  }
  return (st.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) &&
         (st.stx_attributes & STATX_ATTR_MOUNT_ROOT);
}

std::string badLayerPath(const std::string& path) {
  if (path.empty() || path[0] != '/') return "not an absolute path: " + path;
  if (path.find_first_of(":,\n") != std::string::npos) {
    return "a layer path must not hold ':', ',' or a newline: " + path;
  }
  return "";
}

std::string idmapLayers(const std::vector<std::string>& sources,
                        const std::vector<std::string>& targets, unsigned long from,
                        unsigned long to) {
  int ns = -1;
  std::string error;
  for (size_t i = 0; i < sources.size() && error.empty(); ++i) {
    if (isMountRoot(targets[i])) continue;
    int target = openDirNoFollow(targets[i], error);
    if (target < 0) break;
    if (ns < 0 && (ns = userNamespace(from, to, error)) < 0) {
      close(target);
      break;
    }
    int tree = static_cast<int>(syscall(SYS_open_tree, AT_FDCWD, sources[i].c_str(),
                                        OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_SYMLINK_NOFOLLOW));
    mount_attr attr{};
    attr.attr_set = MOUNT_ATTR_IDMAP | MOUNT_ATTR_RDONLY;  // a layer never changes
    attr.userns_fd = static_cast<uint64_t>(ns);
    bool ok = tree >= 0 &&
              syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH, &attr, sizeof attr) == 0 &&
              syscall(SYS_move_mount, tree, "", target, "",
                      MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) == 0;
    int err = errno;
    if (tree >= 0) close(tree);
    close(target);
    if (!ok) error = "idmapping " + sources[i] + " at " + targets[i] + ": " + std::strerror(err);
  }
  if (ns >= 0) close(ns);
  return error;
}

std::string mountOverlay(const std::string& merged, const std::vector<std::string>& lowers,
                         const std::string& upper, const std::string& work, bool userxattr) {
  std::string options = "lowerdir=";
  for (size_t i = 0; i < lowers.size(); ++i) options += (i ? ":" : "") + lowers[i];
  options += ",upperdir=" + upper + ",workdir=" + work + (userxattr ? ",userxattr" : "");
  std::string error;
  int target = openDirNoFollow(merged, error);
  if (target < 0) return error;
  // The directory opened, not whatever its path names by the time of the mount.
  const std::string at = "/proc/self/fd/" + std::to_string(target);
  if (mount("overlay", at.c_str(), "overlay", 0, options.c_str()) != 0) {
    error = "mounting the overlay at " + merged + ": " + std::strerror(errno);
  }
  close(target);
  return error;
}

std::string unmountAll(const std::vector<std::string>& paths) {
  for (const std::string& path : paths) {
    if (isMountRoot(path) && umount2(path.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) != 0) {
      return "unmounting " + path + ": " + std::strerror(errno);
    }
    if (isMountRoot(path)) return path + " is still mounted";
  }
  return "";
}

bool pathExists(const std::string& path) {
  struct statx st {};
  return statx(AT_FDCWD, path.c_str(), AT_SYMLINK_NOFOLLOW, STATX_TYPE, &st) == 0;
}

}  // namespace qabox
