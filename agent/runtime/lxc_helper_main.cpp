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
//                     SECCOMP_PROFILE|- LOWERS|- IMAGE_BASE:OWN_BASE|-
//                     (LOWERS: the layers, topmost first, ':'-separated; -: the image's rootfs)
//   qabox-lxc start   LXCPATH NAME TIMEOUT_SECONDS
//   qabox-lxc stop    LXCPATH NAME
//   qabox-lxc destroy LXCPATH NAME
//   qabox-lxc idmap-check DIR BASE   can clones' rootfs be mounted in DIR?
//   qabox-lxc layer-mount MERGED UPPER WORK IDBASE|- LOWER...   (topmost first)
//   qabox-lxc layer-umount MERGED
//   qabox-lxc mount-entries LXCPATH NAME PREFIX [ENTRY ...]
//                     the container's lxc.mount.entry lines whose source starts with
//                     PREFIX replaced by the ENTRY lines (its data snapshots)
//   qabox-lxc attach  LXCPATH NAME CWD -- PROGRAM [ARG ...]
//                     the command's variables in our environment, as
//                     QABOX_ATTACH_ENV_<n>=KEY=VALUE (runtime/helper_protocol.h)
//   qabox-lxc place   LXCPATH NAME
//                     the files framed on stdin (runtime/helper_protocol.h) written
//                     into the running container by its root, inside its namespaces
//
// Exit 0 on success; on failure a message on stderr and exit 125. attach
// exits with the command's own exit code (128+N when killed by signal N).
#include <fcntl.h>
#include <lxc/attach_options.h>
#include <lxc/lxccontainer.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "runtime/helper_mounts.h"
#include "runtime/helper_protocol.h"

extern char** environ;

using qabox::badLayerPath;
using qabox::idmapLayers;
using qabox::isMountRoot;
using qabox::mountOverlay;
using qabox::pathExists;
using qabox::unmountAll;

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
// clone of an image reads the image's layers, owned by the image's ids.
// liblxc 5.0's overlay backend cannot idmap its lower layers (it passes
// idmap=container to overlayfs, which refuses it), so the helper mounts the
// clone's rootfs itself and gives liblxc a dir rootfs:
//   <container>/lower     the image's topmost layer, idmapped: image ids -> own ids
//   <container>/lower.N   the N-th layer below it (an image built on others), idmapped so
//   <container>/rootfs    overlay of the lowers and overlay/delta (the clone's writes)
// <container>/idmap holds "TOP_LAYER IMAGE_BASE OWN_BASE" on its first line and
// each further layer on a line of its own, for later starts.
struct Idmapped {
  std::string dir, merged;
  std::vector<std::string> layers;  // topmost first
  unsigned long from = 0, to = 0;
  std::string mountPoint(size_t i) const {
    return dir + (i == 0 ? "/lower" : "/lower." + std::to_string(i));
  }
  std::vector<std::string> mountPoints() const {
    std::vector<std::string> out;
    for (size_t i = 0; i < layers.size(); ++i) out.push_back(mountPoint(i));
    return out;
  }
};

std::string containerDir(const char* lxcpath, const char* name) {
  return std::string(lxcpath) + "/" + name;
}

std::optional<Idmapped> readIdmapped(const std::string& dir) {
  std::ifstream in(dir + "/idmap");
  Idmapped m;
  std::string top;
  if (!(in >> top >> m.from >> m.to)) return std::nullopt;
  m.layers.push_back(top);
  in.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) m.layers.push_back(line);
  }
  m.dir = dir;
  m.merged = dir + "/rootfs";
  return m;
}

std::string mountRootfs(const Idmapped& m) {
  if (isMountRoot(m.merged)) return "";
  for (const std::string& layer : m.layers) {
    if (std::string bad = badLayerPath(layer); !bad.empty()) return m.dir + "/idmap: " + bad;
  }
  std::string error = idmapLayers(m.layers, m.mountPoints(), m.from, m.to);
  if (!error.empty()) return error;
  return mountOverlay(m.merged, m.mountPoints(), m.dir + "/overlay/delta", m.dir + "/overlay/work",
                      true);
}

// Every mount gone, or an error: liblxc's destroy removes the container's
// directory, and must never descend into a layer through a lower mount
// (an idmapped mount is on the layer's own device). Mount points past what
// the idmap file names are unmounted too.
std::string unmountRootfs(const Idmapped& m) {
  std::vector<std::string> paths{m.merged};
  for (size_t i = 0; i < m.layers.size() || pathExists(m.mountPoint(i)); ++i) {
    paths.push_back(m.mountPoint(i));
  }
  return unmountAll(paths);
}

// The clone's own ids (IMAGE_BASE:OWN_BASE) and the rootfs that gives it
// the image's layers under them; "" or what failed.
std::string isolateIds(lxc_container* clone, const std::vector<std::string>& layers,
                       const char* lxcpath, const char* name, const char* bases) {
  Idmapped m;
  m.dir = containerDir(lxcpath, name);
  m.merged = m.dir + "/rootfs";
  m.layers = layers;
  char* colon = nullptr;
  m.from = std::strtoul(bases, &colon, 10);
  m.to = colon && *colon == ':' ? std::strtoul(colon + 1, nullptr, 10) : 0;
  if (m.to == 0) return std::string("bad id bases ") + bases;
  std::ofstream idmap(m.dir + "/idmap");
  idmap << m.layers[0] << " " << m.from << " " << m.to << "\n";
  for (size_t i = 1; i < m.layers.size(); ++i) idmap << m.layers[i] << "\n";
  if (!idmap.flush()) return "writing " + m.dir + "/idmap failed";
  std::vector<std::pair<std::string, int>> dirs;
  for (const std::string& lower : m.mountPoints()) dirs.emplace_back(lower, 0700);
  dirs.emplace_back(m.dir + "/overlay/work", 0700);
  dirs.emplace_back(m.merged, 0755);
  for (const auto& [dir, mode] : dirs) {
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

// A clone's layers, topmost first, from LOWERS (':'-separated, "-": the
// image's rootfs alone); "" or why they are refused.
std::string cloneLayers(const char* lowers, const char* imagePath, const char* image,
                        std::vector<std::string>& layers) {
  if (std::strcmp(lowers, "-") == 0) {
    layers = {std::string(imagePath) + "/" + image + "/rootfs"};
    return "";
  }
  std::string_view rest = lowers;
  while (!rest.empty()) {
    size_t colon = rest.find(':');
    layers.emplace_back(rest.substr(0, colon));
    rest = colon == std::string_view::npos ? "" : rest.substr(colon + 1);
  }
  for (const std::string& layer : layers) {
    if (std::string bad = badLayerPath(layer); !bad.empty()) return bad;
  }
  return layers.empty() ? "no layers" : "";
}

// A clone whose ids are the image's (privileged, or unprivileged with the
// images' ids): liblxc's overlay backend mounts its rootfs at every start,
// and takes several lower layers as overlay:L1:L2:...:DELTA.
std::string overlayLayers(lxc_container* clone, const std::vector<std::string>& layers) {
  if (layers.size() == 1) return "";  // the image's rootfs, as liblxc's clone set it
  char path[4096];
  int n = clone->get_config_item(clone, "lxc.rootfs.path", path, sizeof path);
  const char* delta =
      n > 0 && n < static_cast<int>(sizeof path) ? std::strrchr(path, ':') : nullptr;
  if (!delta || std::strncmp(path, "overlay:", 8) != 0) {
    return "the clone's rootfs is no overlay: " + std::string(n > 0 ? path : "");
  }
  std::string rootfs = "overlay";
  for (const std::string& layer : layers) rootfs += ":" + layer;
  rootfs += delta;
  if (!clone->set_config_item(clone, "lxc.rootfs.path", rootfs.c_str())) {
    return "setting lxc.rootfs.path failed";
  }
  return "";
}

// liblxc's overlay destroy removes what follows the FIRST ':' of
// overlay:L1:L2:...:DELTA as the delta: with several lowers it is shown the
// top one alone (in memory only: the container's directory goes next).
bool showOneLower(lxc_container* c) {
  char path[4096];
  int n = c->get_config_item(c, "lxc.rootfs.path", path, sizeof path);
  if (n <= 0 || n >= static_cast<int>(sizeof path) || std::strncmp(path, "overlay:", 8) != 0) {
    return true;
  }
  const char* first = std::strchr(path + 8, ':');
  const char* last = std::strrchr(path, ':');
  if (first == last) return true;
  const std::string rootfs = std::string(path, static_cast<size_t>(first - path)) + last;
  return c->set_config_item(c, "lxc.rootfs.path", rootfs.c_str());
}

lxc_container* makeClone(lxc_container* src, const char* name, const char* lxcpath) {
  // KEEPNAME: the clone's hostname comes from lxc.uts.name below, so liblxc
  // need not mount the new rootfs to edit /etc/hostname.
  return src->clone(src, name, lxcpath, LXC_CLONE_SNAPSHOT | LXC_CLONE_KEEPNAME, "overlay", nullptr,
                    0, nullptr);
}

int cloneCmd(char** a) {
  const char *imagePath = a[0], *image = a[1], *lxcpath = a[2], *name = a[3], *bridge = a[4],
             *address = a[5], *gateway = a[6], *veth = a[10], *mac = a[11], *bases = a[14];
  auto items = limitItems(a[7], a[8], a[9]);
  // Read by liblxc at every start: the file must stay where it is.
  if (std::strcmp(a[12], "-") != 0) items.emplace_back("lxc.seccomp.profile", a[12]);
  std::vector<std::string> layers;
  if (std::string bad = cloneLayers(a[13], imagePath, image, layers); !bad.empty()) {
    return fail("clone " + std::string(name) + ": " + bad);
  }
  Container src(image, imagePath);
  if (!src.c || !src.c->is_defined(src.c)) {
    return fail(std::string("image container ") + image + " not found in " + imagePath);
  }
  Container existing(name, lxcpath);
  if (existing.c && existing.c->is_defined(existing.c)) {
    return fail(std::string("container ") + name + " already exists");
  }
  lxc_container* clone = makeClone(src.c, name, lxcpath);
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
  if (ok) {
    idError = std::strcmp(bases, "-") != 0 ? isolateIds(clone, layers, lxcpath, name, bases)
                                           : overlayLayers(clone, layers);
  }
  ok = ok && idError.empty();
  ok = ok && clone->save_config(clone, nullptr);
  if (!ok) {
    std::string why = idError.empty() ? "" : ": " + idError;
    if (!showOneLower(clone) || !clone->destroy(clone))
      why += "; destroying the half-made clone failed too";
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
    if (!error.empty()) {
      // Nothing is left half-mounted: a stopped clone holds no mounts.
      if (std::string undo = unmountRootfs(*m); !undo.empty()) error += "; undoing: " + undo;
      return fail("starting " + std::string(a[1]) + ": " + error);
    }
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
  if (!showOneLower(c.c) || !c.c->destroy(c.c))
    return fail(std::string("destroying ") + a[1] + " failed");
  return 0;
}

// What every start of an isolated clone does, on scratch directories in
// DIR (on the state dir's filesystem): an idmapped mount and an overlay on
// it. Filesystems without idmapped mounts (NFS, tmpfs before Linux 6.3) and
// kernels before 5.19 fail here, at agent start, not at every deploy.
int idmapCheckCmd(char** a) {
  Idmapped m;
  m.dir = std::string(a[0]) + "/idmap-check";
  m.merged = m.dir + "/rootfs";
  m.layers = {m.dir + "/image"};
  m.from = std::strtoul(a[1], nullptr, 10);
  m.to = m.from + 65536;
  std::string error;
  for (const std::string& dir : {m.dir, m.mountPoint(0), m.merged, m.layers[0], m.dir + "/overlay",
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
        m.dir + "/overlay", m.layers[0], m.merged, m.mountPoint(0), m.dir}) {
    rmdir(dir.c_str());
  }
  return error.empty() ? 0 : fail(error);
}

// The mount points of a host-side layer mount's idmapped lowers, beside
// MERGED: MERGED.lower.0, MERGED.lower.1, ...
std::string layerMountPoint(const std::string& merged, size_t i) {
  return merged + ".lower." + std::to_string(i);
}

// MERGED and every lower mount beside it gone, their mount points removed
// (each one that is a directory: a symlink there is named, never followed);
// "" or what failed. Nothing mounted is fine.
std::string unmountLayers(const std::string& merged) {
  std::vector<std::string> paths{merged};
  for (size_t i = 0; pathExists(layerMountPoint(merged, i)); ++i) {
    paths.push_back(layerMountPoint(merged, i));
  }
  std::string error = unmountAll(paths);
  if (!error.empty()) return error;
  for (size_t i = 1; i < paths.size(); ++i) {
    if (rmdir(paths[i].c_str()) != 0 && error.empty()) {
      error = "removing " + paths[i] + ": " + std::strerror(errno);
    }
  }
  return error;
}

int layerUmountCmd(char** a) {
  if (std::string bad = badLayerPath(a[0]); !bad.empty()) return fail("layer-umount: " + bad);
  if (std::string error = unmountLayers(a[0]); !error.empty()) {
    return fail("layer-umount: " + error);
  }
  return 0;
}

// layer-mount MERGED UPPER WORK IDBASE|- LOWER...: an overlay of the lowers
// (topmost first) and UPPER at MERGED. With IDBASE every lower is mounted
// idmapped beside MERGED first (host ids IDBASE.. show as 0..), and the
// overlay's opaque directories and whiteouts are user.overlay.*, as a
// clone's overlay (mounted in its user namespace) reads them.
int layerMountCmd(int n, char** a) {
  const std::string merged = a[0], upper = a[1], work = a[2];
  std::vector<std::string> lowers(a + 4, a + n);
  std::vector<std::string> all{merged, upper, work};
  all.insert(all.end(), lowers.begin(), lowers.end());
  for (const std::string& path : all) {
    if (std::string bad = badLayerPath(path); !bad.empty()) return fail("layer-mount: " + bad);
  }
  if (isMountRoot(merged)) return fail("layer-mount: " + merged + " is mounted already");
  const bool idmapped = std::strcmp(a[3], "-") != 0;
  std::vector<std::string> points = lowers;
  std::string error;
  if (idmapped) {
    const unsigned long base = std::strtoul(a[3], nullptr, 10);
    if (base == 0) return fail(std::string("layer-mount: bad id base ") + a[3]);
    for (size_t i = 0; i < lowers.size() && error.empty(); ++i) {
      points[i] = layerMountPoint(merged, i);
      if (mkdir(points[i].c_str(), 0700) != 0 && errno != EEXIST) {
        error = "mkdir " + points[i] + ": " + std::strerror(errno);
      } else if (isMountRoot(points[i])) {
        error = points[i] + " is mounted already";
      }
    }
    if (error.empty()) error = idmapLayers(lowers, points, base, 0);
  }
  if (error.empty()) error = mountOverlay(merged, points, upper, work, idmapped);
  if (error.empty()) return 0;
  if (std::string undo = unmountLayers(merged); !undo.empty()) error += "; undoing: " + undo;
  return fail("layer-mount: " + error);
}

int mountEntriesCmd(int n, char** a) {
  Container c(a[1], a[0]);
  if (!c.c || !c.c->is_defined(c.c)) return fail(std::string("container ") + a[1] + " not found");
  if (c.c->is_running(c.c)) return fail(std::string("container ") + a[1] + " is running");
  const std::string_view prefix = a[2];
  std::vector<std::string> keep;
  int len = c.c->get_config_item(c.c, "lxc.mount.entry", nullptr, 0);
  if (len > 0) {
    std::string all(static_cast<size_t>(len) + 1, '\0');
    c.c->get_config_item(c.c, "lxc.mount.entry", all.data(), len + 1);
    all.resize(static_cast<size_t>(len));
    std::string_view rest = all;
    while (!rest.empty()) {
      size_t nl = rest.find('\n');
      std::string_view line = rest.substr(0, nl);
      rest = nl == std::string_view::npos ? "" : rest.substr(nl + 1);
      if (!line.empty() && line.substr(0, prefix.size()) != prefix) keep.emplace_back(line);
    }
  }
  for (int i = 3; i < n; ++i) keep.emplace_back(a[i]);
  bool ok = c.c->clear_config_item(c.c, "lxc.mount.entry");
  for (const std::string& entry : keep) {
    ok = ok && c.c->set_config_item(c.c, "lxc.mount.entry", entry.c_str());
  }
  if (!ok || !c.c->save_config(c.c, nullptr)) {
    return fail(std::string("writing the mount entries of ") + a[1] + " failed");
  }
  return 0;
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
  errno = 0;
  int status = c.c->attach_run_wait(c.c, &options, program[0], program);
  if (status < 0) {
    const int err = errno;
    // The usual cause: the container stopped (slept, redeployed, deleted)
    // between the check above and the attach.
    if (!c.c->is_running(c.c)) {
      return fail(std::string("container ") + a[1] +
                  " stopped while the command was being attached to it");
    }
    return fail(std::string("attaching to ") + a[1] +
                " failed: " + (err != 0 ? std::strerror(err) : "liblxc gave no reason"));
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return kHelperFailed;
}

// Runs in the container's mount and user namespaces, as its root: every
// path resolves in the container's own mount namespace, so no file of the
// host's can be reached, whatever links the container holds.
int placeInside(void* payload) {
  const auto& frames = *static_cast<const std::vector<qabox::PlaceFrame>*>(payload);
  umask(0);
  for (const qabox::PlaceFrame& f : frames) {
    if (f.remove) {
      if (unlink(f.path.c_str()) != 0 && errno != ENOENT) {
        std::fprintf(stderr, "qabox-lxc: removing %s: %s\n", f.path.c_str(), std::strerror(errno));
        return kHelperFailed;
      }
      continue;
    }
    // A temporary beside it, renamed over it: a link or FIFO at the path
    // is replaced, never opened; O_EXCL and O_NOFOLLOW for the temporary.
    const std::string tmp = f.path + ".qabox-place";
    unlink(tmp.c_str());
    int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                  static_cast<mode_t>(f.mode));
    if (fd < 0) {
      std::fprintf(stderr, "qabox-lxc: creating %s: %s\n", tmp.c_str(), std::strerror(errno));
      return kHelperFailed;
    }
    size_t done = 0;
    while (done < f.content.size()) {
      ssize_t n = write(fd, f.content.data() + done, f.content.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        std::fprintf(stderr, "qabox-lxc: writing %s: %s\n", tmp.c_str(), std::strerror(errno));
        close(fd);
        unlink(tmp.c_str());
        return kHelperFailed;
      }
      done += static_cast<size_t>(n);
    }
    if (close(fd) != 0 || rename(tmp.c_str(), f.path.c_str()) != 0) {
      std::fprintf(stderr, "qabox-lxc: placing %s: %s\n", f.path.c_str(), std::strerror(errno));
      unlink(tmp.c_str());
      return kHelperFailed;
    }
  }
  return 0;
}

// The parent of `pid` (from /proc/PID/stat), or 0.
pid_t parentOf(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  char state = 0;
  int ppid = 0;
  if (std::sscanf(stat.c_str() + close + 1, " %c %d", &state, &ppid) != 2) return 0;
  return ppid;
}

void normalPriority(pid_t pid) {
  sched_param normal{};
  sched_setscheduler(pid, SCHED_OTHER, &normal);
  setpriority(PRIO_PROCESS, static_cast<id_t>(pid), 0);
}

int placeCmd(char** a) {
  std::string in;
  char buf[65536];
  for (;;) {
    ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail(std::string("place: reading stdin: ") + std::strerror(errno));
    if (n == 0) break;
    in.append(buf, static_cast<size_t>(n));
    if (in.size() > qabox::kPlaceMaxBytes) return fail("place: more files than it takes");
  }
  std::string error;
  const auto frames = qabox::parsePlaceFrames(in, error);
  if (!error.empty()) return fail("place: " + error);
  Container c(a[1], a[0]);
  if (!c.c || !c.c->is_running(c.c))
    return fail(std::string("container ") + a[1] + " is not running");
  // A pooled container started at the pool's lower priority: its init and
  // its monitor run at the normal one before anything is placed, so what
  // init starts once it sees the files inherits the normal one.
  const pid_t init = c.c->init_pid(c.c);
  if (init > 0) {
    normalPriority(init);
    if (pid_t monitor = parentOf(init); monitor > 1) normalPriority(monitor);
  }
  // Only what resolving and owning files needs: the container's mount and
  // user namespaces (so its root writes, its links resolve inside it). The
  // code run is placeInside alone, for milliseconds: no cgroup, LSM or
  // capability set of the container's is needed to contain it.
  lxc_attach_options_t options = LXC_ATTACH_OPTIONS_DEFAULT;
  options.env_policy = LXC_ATTACH_CLEAR_ENV;
  options.namespaces = CLONE_NEWNS | CLONE_NEWUSER;
  options.attach_flags = LXC_ATTACH_SET_PERSONALITY;
  pid_t pid = -1;
  auto* payload = const_cast<std::vector<qabox::PlaceFrame>*>(&frames);
  if (c.c->attach(c.c, placeInside, payload, &options, &pid) != 0 || pid <= 0) {
    return fail(std::string("attaching to ") + a[1] + " failed");
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return fail(std::string("place: waitpid: ") + std::strerror(errno));
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return kHelperFailed;  // it said why
  // Wakes an init that waits for what was placed (the busybox image's waits
  // for USR1 while pooled). An init without a handler never gets it: a
  // namespace's init only gets the signals it handles.
  if (init > 0) kill(init, SIGUSR1);
  return 0;
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
  if (argc < 2)
    return fail(
        "usage: qabox-lxc clone|start|stop|destroy|attach|place|layer-mount|layer-umount ...");
  std::string cmd = argv[1];
  int n = argc - 2;
  char** a = argv + 2;
  if (cmd == "clone" && n == 15) return cloneCmd(a);
  if (cmd == "start" && n == 3) return startCmd(a);
  if (cmd == "stop" && n == 2) return stopCmd(a);
  if (cmd == "destroy" && n == 2) return destroyCmd(a);
  if (cmd == "attach" && n >= 5) return attachCmd(a);
  if (cmd == "place" && n == 2) return placeCmd(a);
  if (cmd == "mount-entries" && n >= 3) return mountEntriesCmd(n, a);
  if (cmd == "idmap-check" && n == 2) return idmapCheckCmd(a);
  if (cmd == "layer-mount" && n >= 5) return layerMountCmd(n, a);
  if (cmd == "layer-umount" && n == 1) return layerUmountCmd(a);
  return fail("bad arguments for " + cmd);
}
