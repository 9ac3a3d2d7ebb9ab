// qabox-lxc: runs one liblxc call in a short-lived process of its own.
//
// liblxc's clone, start and attach fork (and clone unshares the calling
// thread's mount namespace). Doing that inside the multithreaded agent could
// copy a lock held by another thread into the child, so the agent runs them
// here instead, as LXD does with its forkstart helper.
//
//   qabox-lxc clone   IMAGE_LXCPATH IMAGE LXCPATH NAME BRIDGE ADDRESS/PREFIX GATEWAY
//                     MEMORY|- CPUS PIDS       (0 or -: no limit)
//                     VETH MAC                 (the host-side veth's name, eth0's MAC)
//                     SECCOMP_PROFILE|- IMAGE_BASE:OWN_BASE|-
//   qabox-lxc start   LXCPATH NAME TIMEOUT_SECONDS
//   qabox-lxc stop    LXCPATH NAME
//   qabox-lxc destroy LXCPATH NAME
//   qabox-lxc idmap-check DIR BASE   can clones' rootfs be mounted in DIR?
//   qabox-lxc attach  LXCPATH NAME CWD -- PROGRAM [ARG ...]
//                     the command's variables in our environment, as
//                     QABOX_ATTACH_ENV_<n>=KEY=VALUE (runtime/helper_protocol.h)
//
// Exit 0 on success; on failure a message on stderr and exit 125. attach
// exits with the command's own exit code (128+N when killed by signal N).
#include <fcntl.h>
#include <linux/mount.h>
#include <lxc/attach_options.h>
#include <lxc/lxccontainer.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "runtime/helper_protocol.h"

extern char** environ;

namespace {

constexpr int kHelperFailed = 125;

int fail(const std::string& message) {
  std::fprintf(stderr, "qabox-lxc: %s\n", message.c_str());
  return kHelperFailed;
}

struct Container {
  lxc_container* c = nullptr;
  Container(const char* name, const char* lxcpath) : c(lxc_container_new(name, lxcpath)) {}
  ~Container() {
    if (c) lxc_container_put(c);
  }
};

// The cgroup keys for the limits, in the host's hierarchy: cgroup2 when it
// is the unified one, else the v1 controllers (a hybrid host such as a
// Debian 12 VM booted with systemd.unified_cgroup_hierarchy=0).
std::vector<std::pair<std::string, std::string>> limitItems(const std::string& memory,
                                                            const std::string& cpus,
                                                            const std::string& pids) {
  const bool v2 = access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0;
  std::vector<std::pair<std::string, std::string>> items;
  if (memory != "-" && !memory.empty()) {
    items.emplace_back(v2 ? "lxc.cgroup2.memory.max" : "lxc.cgroup.memory.limit_in_bytes", memory);
  }
  long cpu = std::atol(cpus.c_str());
  if (cpu > 0) {
    std::string quota = std::to_string(cpu * 100000);
    if (v2) {
      items.emplace_back("lxc.cgroup2.cpu.max", quota + " 100000");
    } else {
      items.emplace_back("lxc.cgroup.cpu.cfs_period_us", "100000");
      items.emplace_back("lxc.cgroup.cpu.cfs_quota_us", quota);
    }
  }
  if (std::atol(pids.c_str()) > 0) {
    items.emplace_back(v2 ? "lxc.cgroup2.pids.max" : "lxc.cgroup.pids.max", pids);
  }
  return items;
}

// Isolated ids: an environment's root is host ids of its own, while every
// clone of an image reads the image's one rootfs, owned by the image's ids.
// liblxc 5.0's overlay backend cannot idmap its lower layer (it passes
// idmap=container to overlayfs, which refuses it), so the helper mounts the
// clone's rootfs itself and gives liblxc a dir rootfs:
//   <container>/lower   the image's rootfs, idmapped: image ids -> own ids
//   <container>/rootfs  overlay of lower and overlay/delta (the clone's writes)
// <container>/idmap holds "IMAGE_ROOTFS IMAGE_BASE OWN_BASE" for later starts.
struct Idmapped {
  std::string dir, lower, merged, imageRootfs;
  unsigned long from = 0, to = 0;
};

std::string containerDir(const char* lxcpath, const char* name) {
  return std::string(lxcpath) + "/" + name;
}

std::optional<Idmapped> readIdmapped(const std::string& dir) {
  std::ifstream in(dir + "/idmap");
  Idmapped m;
  if (!(in >> m.imageRootfs >> m.from >> m.to)) return std::nullopt;
  m.dir = dir;
  m.lower = dir + "/lower";
  m.merged = dir + "/rootfs";
  return m;
}

bool isMountRoot(const std::string& path) {
  struct statx st {};
  if (statx(AT_FDCWD, path.c_str(), AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &st) != 0) {
    return false;
  }
  return (st.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) &&
         (st.stx_attributes & STATX_ATTR_MOUNT_ROOT);
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

std::string mountRootfs(const Idmapped& m) {
  if (isMountRoot(m.merged)) return "";
  if (!isMountRoot(m.lower)) {
    std::string error;
    int ns = userNamespace(m.from, m.to, error);
    if (ns < 0) return error;
    int tree = static_cast<int>(syscall(SYS_open_tree, AT_FDCWD, m.imageRootfs.c_str(),
                                        OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC));
    mount_attr attr{};
    attr.attr_set = MOUNT_ATTR_IDMAP;
    attr.userns_fd = static_cast<uint64_t>(ns);
    bool ok =
        tree >= 0 && syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH, &attr, sizeof attr) == 0 &&
        syscall(SYS_move_mount, tree, "", AT_FDCWD, m.lower.c_str(), MOVE_MOUNT_F_EMPTY_PATH) == 0;
    int err = errno;
    if (tree >= 0) close(tree);
    close(ns);
    if (!ok) return "idmapping " + m.imageRootfs + " at " + m.lower + ": " + std::strerror(err);
  }
  // userxattr: opaque marks are user.overlay.*, as in a clone liblxc mounts.
  std::string options = "lowerdir=" + m.lower + ",upperdir=" + m.dir +
                        "/overlay/delta,workdir=" + m.dir + "/overlay/work,userxattr";
  if (mount("overlay", m.merged.c_str(), "overlay", 0, options.c_str()) != 0) {
    return "mounting the overlay at " + m.merged + ": " + std::strerror(errno);
  }
  return "";
}

// Both mounts gone, or an error: liblxc's destroy removes the container's
// directory, and must never descend into the image through `lower`.
std::string unmountRootfs(const Idmapped& m) {
  for (const std::string& path : {m.merged, m.lower}) {
    if (isMountRoot(path) && umount2(path.c_str(), MNT_DETACH) != 0) {
      return "unmounting " + path + ": " + std::strerror(errno);
    }
    if (isMountRoot(path)) return path + " is still mounted";
  }
  return "";
}

// The clone's own ids (IMAGE_BASE:OWN_BASE) and the rootfs that gives it
// the image's files under them; "" or what failed.
std::string isolateIds(lxc_container* clone, const char* imagePath, const char* image,
                       const char* lxcpath, const char* name, const char* bases) {
  Idmapped m;
  m.dir = containerDir(lxcpath, name);
  m.lower = m.dir + "/lower";
  m.merged = m.dir + "/rootfs";
  m.imageRootfs = std::string(imagePath) + "/" + image + "/rootfs";
  char* colon = nullptr;
  m.from = std::strtoul(bases, &colon, 10);
  m.to = colon && *colon == ':' ? std::strtoul(colon + 1, nullptr, 10) : 0;
  if (m.to == 0) return std::string("bad id bases ") + bases;
  std::ofstream idmap(m.dir + "/idmap");
  idmap << m.imageRootfs << " " << m.from << " " << m.to << "\n";
  if (!idmap.flush()) return "writing " + m.dir + "/idmap failed";
  for (const auto& [dir, mode] :
       {std::pair{m.lower, 0700}, std::pair{m.dir + "/overlay/work", 0700},
        std::pair{m.merged, 0755}}) {
    if (mkdir(dir.c_str(), static_cast<mode_t>(mode)) != 0 && errno != EEXIST) {
      return "mkdir " + dir + ": " + std::strerror(errno);
    }
  }
  std::string delta = m.dir + "/overlay/delta";
  if (chown(delta.c_str(), m.to, m.to) != 0) return "chown " + delta + ": " + std::strerror(errno);
  const std::string own = std::to_string(m.to) + " 65536";
  if (!clone->clear_config_item(clone, "lxc.idmap") ||
      !clone->set_config_item(clone, "lxc.idmap", ("u 0 " + own).c_str()) ||
      !clone->set_config_item(clone, "lxc.idmap", ("g 0 " + own).c_str())) {
    return "setting lxc.idmap failed";
  }
  if (!clone->set_config_item(clone, "lxc.rootfs.options", "") ||
      !clone->set_config_item(clone, "lxc.rootfs.path", ("dir:" + m.merged).c_str())) {
    return "setting lxc.rootfs failed";
  }
  return "";
}

int cloneCmd(char** a) {
  const char *imagePath = a[0], *image = a[1], *lxcpath = a[2], *name = a[3], *bridge = a[4],
             *address = a[5], *gateway = a[6], *veth = a[10], *mac = a[11];
  auto items = limitItems(a[7], a[8], a[9]);
  // Read by liblxc at every start: the file must stay where it is.
  if (std::strcmp(a[12], "-") != 0) items.emplace_back("lxc.seccomp.profile", a[12]);
  Container src(image, imagePath);
  if (!src.c || !src.c->is_defined(src.c)) {
    return fail(std::string("image container ") + image + " not found in " + imagePath);
  }
  Container existing(name, lxcpath);
  if (existing.c && existing.c->is_defined(existing.c)) {
    return fail(std::string("container ") + name + " already exists");
  }
  // KEEPNAME: the clone's hostname comes from lxc.uts.name below, so liblxc
  // need not mount the new rootfs to edit /etc/hostname.
  lxc_container* clone = src.c->clone(src.c, name, lxcpath, LXC_CLONE_SNAPSHOT | LXC_CLONE_KEEPNAME,
                                      "overlay", nullptr, 0, nullptr);
  if (!clone) return fail(std::string("cloning ") + image + " as " + name + " failed");
  bool ok = clone->set_config_item(clone, "lxc.uts.name", name) &&
            clone->set_config_item(clone, "lxc.net.0.link", bridge) &&
            clone->set_config_item(clone, "lxc.net.0.ipv4.address", address) &&
            clone->set_config_item(clone, "lxc.net.0.ipv4.gateway", gateway) &&
            clone->set_config_item(clone, "lxc.net.0.veth.pair", veth) &&
            clone->set_config_item(clone, "lxc.net.0.hwaddr", mac);
  for (const auto& [key, value] : items) {
    ok = ok && clone->set_config_item(clone, key.c_str(), value.c_str());
  }
  std::string idError;
  if (ok && std::strcmp(a[13], "-") != 0)
    idError = isolateIds(clone, imagePath, image, lxcpath, name, a[13]);
  ok = ok && idError.empty();
  ok = ok && clone->save_config(clone, nullptr);
  if (!ok) {
    std::string why = idError.empty() ? "" : ": " + idError;
    if (!clone->destroy(clone)) why += "; destroying the half-made clone failed too";
    lxc_container_put(clone);
    return fail(std::string("writing the network, cgroup and seccomp config of ") + name +
                " failed" + why);
  }
  lxc_container_put(clone);
  return 0;
}

// ": " and the last few lines liblxc logged, or "" when it logged nothing.
std::string lastErrors(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "re");
  if (!f) return "";
  // The first error (the cause; with newuidmap in use it comes from another
  // process, and what follows only says that one failed) and the last three.
  std::string first;
  std::vector<std::string> lines;
  char buf[1024];
  while (std::fgets(buf, sizeof buf, f)) {
    std::string line(buf);
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
    // "lxc NAME DATE ERROR    file - where - message": keep the message.
    size_t dash = line.rfind(" - ");
    if (dash != std::string::npos) line = line.substr(dash + 3);
    if (line.empty()) continue;
    if (first.empty()) {
      first = line;
      continue;
    }
    lines.push_back(line);
    if (lines.size() > 3) lines.erase(lines.begin());
  }
  std::fclose(f);
  std::string out = first.empty() ? "" : ": " + first;
  for (const auto& l : lines) out += "; " + l;
  return out;
}

int startCmd(char** a) {
  Container c(a[1], a[0]);
  if (!c.c || !c.c->is_defined(c.c)) return fail(std::string("container ") + a[1] + " not found");
  if (c.c->is_running(c.c)) return 0;
  if (auto m = readIdmapped(containerDir(a[0], a[1]))) {
    // A fresh overlay at every start: what was changed in the upper layer
    // while the container was stopped must show, and an overlay whose
    // upper layer changed underneath it is undefined.
    std::string error = unmountRootfs(*m);
    if (error.empty()) error = mountRootfs(*m);
    if (!error.empty()) return fail("starting " + std::string(a[1]) + ": " + error);
  }
  c.c->want_daemonize(c.c, true);
  // The monitor must not keep the agent's pipes open.
  c.c->want_close_all_fds(c.c, true);
  // liblxc's errors go to a file beside the config, so a failure can say
  // what went wrong: the container may be gone (rolled back) by the time a
  // person could run lxc-start by hand.
  const std::string log = std::string(a[0]) + "/" + a[1] + "/start.log";
  ::unlink(log.c_str());
  const bool logged = c.c->set_config_item(c.c, "lxc.log.file", log.c_str()) &&
                      c.c->set_config_item(c.c, "lxc.log.level", "ERROR");
  if (!c.c->start(c.c, 0, nullptr)) {
    return fail(std::string("starting ") + a[1] + " failed" +
                (logged ? lastErrors(log) : " (liblxc's log could not be set to " + log + ")"));
  }
  int timeout = std::atoi(a[2]);
  if (!c.c->wait(c.c, "RUNNING", timeout > 0 ? timeout : 30)) {
    return fail(std::string("container ") + a[1] + " did not reach RUNNING");
  }
  return 0;
}

// A clean stop first: lxc.signal.halt (SIGTERM) to PID 1, whose supervisor
// stops its processes in reverse order, each within its stop timeout; what
// is still running after this long is killed.
constexpr int kShutdownSeconds = 10;

int stopCmd(char** a) {
  Container c(a[1], a[0]);
  if (c.c && c.c->is_defined(c.c) && c.c->is_running(c.c) &&
      !c.c->shutdown(c.c, kShutdownSeconds) && c.c->is_running(c.c) && !c.c->stop(c.c)) {
    return fail(std::string("stopping ") + a[1] + " failed");
  }
  if (auto m = readIdmapped(containerDir(a[0], a[1]))) {
    if (std::string error = unmountRootfs(*m); !error.empty()) {
      return fail("stopping " + std::string(a[1]) + ": " + error);
    }
  }
  return 0;
}

int destroyCmd(char** a) {
  Container c(a[1], a[0]);
  if (c.c && c.c->is_defined(c.c) && c.c->is_running(c.c) && !c.c->stop(c.c))
    return fail(std::string("stopping ") + a[1] + " failed");
  if (auto m = readIdmapped(containerDir(a[0], a[1]))) {
    if (std::string error = unmountRootfs(*m); !error.empty()) {
      return fail("destroying " + std::string(a[1]) + ": " + error);
    }
  }
  if (!c.c || !c.c->is_defined(c.c)) return 0;
  if (!c.c->destroy(c.c)) return fail(std::string("destroying ") + a[1] + " failed");
  return 0;
}

// What every start of an isolated clone does, on scratch directories in
// DIR (on the state dir's filesystem): an idmapped mount and an overlay on
// it. Filesystems without idmapped mounts (NFS, tmpfs before Linux 6.3) and
// kernels before 5.19 fail here, at agent start, not at every deploy.
int idmapCheckCmd(char** a) {
  Idmapped m;
  m.dir = std::string(a[0]) + "/idmap-check";
  m.lower = m.dir + "/lower";
  m.merged = m.dir + "/rootfs";
  m.imageRootfs = m.dir + "/image";
  m.from = std::strtoul(a[1], nullptr, 10);
  m.to = m.from + 65536;
  std::string error;
  for (const std::string& dir : {m.dir, m.lower, m.merged, m.imageRootfs, m.dir + "/overlay",
                                 m.dir + "/overlay/delta", m.dir + "/overlay/work"}) {
    if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST && error.empty()) {
      error = "mkdir " + dir + ": " + std::strerror(errno);
    }
  }
  if (error.empty()) error = mountRootfs(m);
  std::string unmounted = unmountRootfs(m);
  if (!unmounted.empty()) return fail(unmounted);
  for (const std::string& dir :
       {m.dir + "/overlay/work/work", m.dir + "/overlay/work", m.dir + "/overlay/delta",
        m.dir + "/overlay", m.imageRootfs, m.merged, m.lower, m.dir}) {
    rmdir(dir.c_str());
  }
  return error.empty() ? 0 : fail(error);
}

int attachCmd(char** a) {
  Container c(a[1], a[0]);
  if (!c.c || !c.c->is_running(c.c))
    return fail(std::string("container ") + a[1] + " is not running");
  if (std::strcmp(a[3], "--") != 0) return fail("attach: give -- PROGRAM [ARG ...] after CWD");
  const std::string_view prefix = qabox::kAttachEnvPrefix;
  std::vector<char*> env;
  for (char** e = environ; e && *e; ++e) {
    if (std::string_view(*e).substr(0, prefix.size()) != prefix) continue;
    char* assignment = std::strchr(*e, '=');
    if (assignment) env.push_back(assignment + 1);
  }
  env.push_back(nullptr);
  lxc_attach_options_t options = LXC_ATTACH_OPTIONS_DEFAULT;
  options.env_policy = LXC_ATTACH_CLEAR_ENV;
  options.extra_env_vars = env.data();
  options.initial_cwd = a[2];
  char** program = a + 4;
  int status = c.c->attach_run_wait(c.c, &options, program[0], program);
  if (status < 0) return fail(std::string("attaching to ") + a[1] + " failed");
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return kHelperFailed;
}

}  // namespace

int main(int argc, char** argv) {
  // Dies with the agent: after a crash, recovery must not race a helper
  // that is still creating what recovery is about to clean up.
  pid_t parent = getppid();
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  // Whatever we inherited past stdio is not ours to pass on: a container
  // started or attached from here must never hold one of the agent's
  // descriptors (its listening sockets, its pipes).
  close_range(3, ~0U, 0);
  // The agent's umask is 077; what liblxc makes here (container dirs, the
  // overlay's upper dir) must be reachable by a container's mapped root, and
  // what runs in a container (init, hooks, exec) gets the usual one.
  umask(022);
  if (getppid() != parent) return fail("the agent exited before the helper started");
  if (argc < 2) return fail("usage: qabox-lxc clone|start|stop|destroy|attach ...");
  std::string cmd = argv[1];
  int n = argc - 2;
  char** a = argv + 2;
  if (cmd == "clone" && n == 14) return cloneCmd(a);
  if (cmd == "start" && n == 3) return startCmd(a);
  if (cmd == "stop" && n == 2) return stopCmd(a);
  if (cmd == "destroy" && n == 2) return destroyCmd(a);
  if (cmd == "attach" && n >= 5) return attachCmd(a);
  if (cmd == "idmap-check" && n == 2) return idmapCheckCmd(a);
  return fail("bad arguments for " + cmd);
}
