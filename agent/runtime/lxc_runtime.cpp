#include "runtime/lxc_runtime.h"

#include <lxc/lxccontainer.h>
#include <sys/stat.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string_view>
#include <thread>

#include <spdlog/spdlog.h>

#include "core/failpoint.h"
#include "runtime/bridge_rules.h"
#include "runtime/data_pool.h"
#include "runtime/helper_protocol.h"
#include "runtime/lxc_cgroups.h"
#include "sys/btrfs.h"
#include "sys/idshift.h"
#include "sys/safe_path.h"

extern char** environ;

namespace qabox {
namespace {

constexpr int kHelperFailed = 125;
// How long a failed start waits for its monitor to leave its cgroup.
constexpr std::chrono::milliseconds kFailedStartCgroupWait{3000};

std::string readText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string helperError(const ProcessResult& r) {
  std::string msg = lastLines(r.err, 3);
  if (msg.rfind("qabox-lxc: ", 0) == 0) msg = msg.substr(11);
  if (r.timedOut) return "timed out";
  if (msg.empty()) msg = "exit code " + std::to_string(r.exitCode);
  return msg;
}

// The helper's environment for an attach: ours, and the command's variables
// under kAttachEnvPrefix.
std::map<std::string, std::string> attachEnvironment(
    const std::map<std::string, std::string>& vars) {
  const std::string_view prefix = kAttachEnvPrefix;
  std::map<std::string, std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string_view entry = *e;
    size_t eq = entry.find('=');
    if (eq == std::string_view::npos || entry.substr(0, prefix.size()) == prefix) continue;
    env.emplace(entry.substr(0, eq), entry.substr(eq + 1));
  }
  size_t n = 0;
  for (const auto& [k, v] : vars) env[std::string(prefix) + std::to_string(n++)] = k + "=" + v;
  return env;
}

}  // namespace

LxcRuntime::LxcRuntime(LxcRuntimeOptions options, ProcessRunner& runner, Firewall& firewall)
    : o_(std::move(options)), runner_(runner), firewall_(firewall) {}

Status LxcRuntime::runHelper(const std::vector<std::string>& args, const std::string& what) {
  ProcessSpec spec;
  spec.argv.push_back(o_.helperPath);
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());
  spec.timeout = o_.startTimeout + std::chrono::seconds(30);
  // Every liblxc call and layer mount passes here: "lxc.clone.before", ...
  QABOX_FAILPOINT("lxc." + args.front() + ".before");
  auto r = runner_.run(spec);
  if (!r) return r.status().withContext(what);
  if (!r->ok()) return internalError(what + ": " + helperError(*r));
  QABOX_FAILPOINT("lxc." + args.front() + ".after");
  return Status::ok();
}

namespace {

// The port binding a clone's config names (lxc.net.0.*), if it has one.
std::optional<std::pair<std::string, PortBinding>> bindingInConfig(const std::string& configPath) {
  std::ifstream in(configPath);
  std::map<std::string, std::string> keys;
  for (std::string line; std::getline(in, line);) {
    size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    auto trim = [](std::string v) {
      v.erase(0, v.find_first_not_of(" \t"));
      v.erase(v.find_last_not_of(" \t") + 1);
      return v;
    };
    keys[trim(line.substr(0, eq))] = trim(line.substr(eq + 1));
  }
  std::string ip = keys["lxc.net.0.ipv4.address"];
  ip = ip.substr(0, ip.find('/'));
  PortBinding b{keys["lxc.net.0.veth.pair"], keys["lxc.net.0.hwaddr"], ip};
  if (b.port.empty() || b.mac.empty() || b.ip.empty() || keys["lxc.net.0.link"].empty()) {
    return std::nullopt;
  }
  return std::pair{keys["lxc.net.0.link"], b};
}

}  // namespace

Status LxcRuntime::bindPort(const std::string& bridge, const PortBinding& binding, bool add) {
  return firewall_.apply(bindingUpdate(bridge, binding, add));
}

uint64_t LxcRuntime::takeIdSlot() {
  // The slot is taken under the lock and held in cloning_ until the clone's
  // config records it, so clones run side by side, never sharing.
  std::lock_guard lock(idMu_);
  std::set<uint64_t> used = cloning_;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(o_.lxcPath, ec)) {
    if (auto base = mappedRootOf(readText((e.path() / "config").string()))) used.insert(*base);
  }
  for (uint64_t k = 1; k <= o_.idSlots; ++k) {
    const uint64_t base = o_.idBase + k * kMappedIds;
    if (!used.count(base)) {
      cloning_.insert(base);
      return base;
    }
  }
  return 0;
}

void LxcRuntime::releaseIdSlot(uint64_t base) {
  std::lock_guard lock(idMu_);
  cloning_.erase(base);
}

Status LxcRuntime::clone(const std::string& imageLxcPath, const std::string& image,
                         const std::string& name, const std::vector<std::string>& lowers,
                         const NetSpec& net, const ResourceLimits& limits) {
  std::string layers;
  for (const std::string& lower : lowers) {
    QABOX_RETURN_IF_ERROR(checkLayerPath(lower).withContext("clone " + name));
    layers += (layers.empty() ? "" : ":") + lower;
  }
  // A fixed veth name and MAC, bound to the address in the bridge's
  // firewall before the container first starts.
  const std::string address = net.address.substr(0, net.address.find('/'));
  PortBinding binding{vethName(net.bridge, o_.lxcPath, name), macForAddress(address), address};
  std::vector<std::string> args = {"clone",
                                   imageLxcPath,
                                   image,
                                   o_.lxcPath,
                                   name,
                                   net.bridge,
                                   net.address,
                                   net.gateway,
                                   limits.memory.empty() ? "-" : limits.memory,
                                   std::to_string(limits.cpus),
                                   std::to_string(limits.pids),
                                   binding.port,
                                   binding.mac,
                                   o_.seccompProfile.empty() ? "-" : o_.seccompProfile,
                                   layers.empty() ? "-" : layers,
                                   "-"};
  auto imageBase = mappedRootOf(readText(imageLxcPath + "/" + image + "/config"));
  uint64_t own = 0;
  if (o_.idSlots > 0 && imageBase) {
    own = takeIdSlot();
    if (own == 0) {
      return resourceExhausted("clone " + name + ": all " + std::to_string(o_.idSlots) +
                               " id ranges above containers.id_base are taken");
    }
    args.back() = std::to_string(*imageBase) + ":" + std::to_string(own);
  }
  Status cloned = runHelper(args, "clone " + name);
  if (own != 0) releaseIdSlot(own);
  QABOX_RETURN_IF_ERROR(cloned);
  if (Status s = bindPort(net.bridge, binding, true); !s.isOk()) {
    if (Status d = runHelper({"destroy", o_.lxcPath, name}, "destroy " + name); !d.isOk()) {
      spdlog::warn("clone {}: {}", name, d.message());
    }
    return internalError("clone " + name + ": binding its port " + binding.port +
                         " in the bridge's firewall: " + s.message());
  }
  return Status::ok();
}

Status LxcRuntime::start(const std::string& name) {
  auto secs = std::chrono::duration_cast<std::chrono::seconds>(o_.startTimeout).count();
  Status started =
      runHelper({"start", o_.lxcPath, name, std::to_string(secs < 1 ? 1 : secs)}, "start " + name);
  // liblxc leaves the cgroups of a start that failed behind, empty; a name
  // taken gets a suffix the next time, so they pile up start after start.
  // Its monitor may still be on its way out, inside lxc.monitor.<name>, when
  // the start returns: the directories are retried until gone, for a while.
  if (!started.isOk()) {
    size_t n = dropCgroups(name);
    const auto deadline = std::chrono::steady_clock::now() + kFailedStartCgroupWait;
    while (!containerCgroups(name, isContainerHere()).empty() &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      n += dropCgroups(name);
    }
    if (n > 0) spdlog::info("start {} failed: removed {} cgroup directories it left", name, n);
  }
  return started;
}

std::function<bool(const std::string&)> LxcRuntime::isContainerHere() const {
  return [this](const std::string& other) {
    std::error_code ec;
    return std::filesystem::exists(o_.lxcPath + "/" + other, ec);
  };
}

size_t LxcRuntime::dropCgroups(const std::string& name) {
  return removeContainerCgroups(name, isContainerHere());
}

Status LxcRuntime::stop(const std::string& name) {
  QABOX_RETURN_IF_ERROR(runHelper({"stop", o_.lxcPath, name}, "stop " + name));
  // A process that held the payload cgroup past liblxc's clean-up (an
  // attach) leaves it behind; once empty it goes here.
  dropCgroups(name);
  return Status::ok();
}

Status LxcRuntime::destroy(const std::string& name) {
  auto bound = bindingInConfig(o_.lxcPath + "/" + name + "/config");
  QABOX_RETURN_IF_ERROR(runHelper({"destroy", o_.lxcPath, name}, "destroy " + name));
  // Stopped now: nothing holds the snapshots mounted.
  if (!o_.dataPool.empty() && checkPoolName("container", name).isOk()) {
    QABOX_RETURN_IF_ERROR(deleteEnvData(o_.dataPool, name).withContext("destroy " + name));
  }
  if (bound) {
    // A stale binding would let the next container named so use this
    // address; the set is rebuilt from the store on every start anyway.
    if (Status s = bindPort(bound->first, bound->second, false); !s.isOk()) {
      spdlog::warn("destroy {}: removing the binding of port {}: {}", name, bound->second.port,
                   s.message());
    }
  }
  dropCgroups(name);
  return Status::ok();
}

Result<std::vector<std::string>> LxcRuntime::list() {
  std::vector<std::string> out;
  std::error_code ec;
  if (!std::filesystem::exists(o_.lxcPath, ec)) return out;
  char** names = nullptr;
  int n = list_defined_containers(o_.lxcPath.c_str(), &names, nullptr);
  if (n < 0) return internalError("listing containers in " + o_.lxcPath + " failed");
  for (int i = 0; i < n; ++i) {
    out.emplace_back(names[i]);
    std::free(names[i]);
  }
  std::free(names);
  // A directory left without a config (a crash inside clone) is no defined
  // container, but it is still ours to clean up.
  for (const auto& entry : std::filesystem::directory_iterator(o_.lxcPath, ec)) {
    std::string n2 = entry.path().filename();
    if (entry.is_directory() && !std::filesystem::exists(entry.path() / "config")) {
      out.push_back(n2);
    }
  }
  return out;
}

Result<ContainerState> LxcRuntime::state(const std::string& name) {
  lxc_container* c = lxc_container_new(name.c_str(), o_.lxcPath.c_str());
  if (!c) return ContainerState::kMissing;
  ContainerState s = ContainerState::kMissing;
  if (c->is_defined(c)) {
    std::string st = c->state(c) ? c->state(c) : "";
    s = st == "RUNNING"   ? ContainerState::kRunning
        : st == "STOPPED" ? ContainerState::kStopped
                          : ContainerState::kOther;
  }
  lxc_container_put(c);
  return s;
}

Result<ProcessResult> LxcRuntime::exec(const std::string& name, const ExecSpec& spec) {
  if (spec.argv.empty()) return invalidArgument("exec: argv must not be empty");
  ProcessSpec p;
  p.argv = {o_.helperPath, "attach", o_.lxcPath, name, spec.cwd, "--"};
  p.env = attachEnvironment(spec.env);
  p.argv.insert(p.argv.end(), spec.argv.begin(), spec.argv.end());
  p.stdinData = spec.stdinData;
  p.stdinFile = spec.stdinFile;
  p.timeout = spec.timeout;
  p.onOutput = spec.onOutput;
  QABOX_FAILPOINT("lxc.exec.before");
  auto r = runner_.run(p);
  if (!r) return r.status();
  QABOX_FAILPOINT("lxc.exec.after");
  if (r->exitCode == kHelperFailed && r->err.find("qabox-lxc: ") != std::string::npos) {
    return failedPrecondition("exec in " + name + ": " + helperError(*r));
  }
  return r;
}

Status LxcRuntime::place(const std::string& name, const std::vector<PlacedFile>& files,
                         const std::vector<std::string>& remove) {
  // The frames `qabox-lxc place` reads on stdin (runtime/helper_protocol.h).
  std::string frames;
  for (const auto& f : files) {
    if (std::string bad = badPlacedPath(f.path); !bad.empty()) {
      return invalidArgument("place into " + name + ": " + bad);
    }
    frames += placeWriteHeader(f.path, f.mode, f.content.size());
    frames += f.content;
  }
  for (const auto& r : remove) {
    if (std::string bad = badPlacedPath(r); !bad.empty()) {
      return invalidArgument("place into " + name + ": " + bad);
    }
    frames += placeRemoveHeader(r);
  }
  ProcessSpec p;
  p.argv = {o_.helperPath, "place", o_.lxcPath, name};
  p.stdinData = std::move(frames);
  p.timeout = std::chrono::seconds(30);
  QABOX_FAILPOINT("lxc.place.before");
  auto r = runner_.run(p);
  if (!r) return r.status().withContext("place into " + name);
  if (!r->ok()) return failedPrecondition("place into " + name + ": " + helperError(*r));
  return Status::ok();
}

namespace {

// The read-only layers under a clone's upper dir, topmost first: the idmap
// file's (isolated ids), else lxc.rootfs.path's overlay:L1:...:DELTA.
std::vector<std::string> cloneLowers(const std::string& dir) {
  std::vector<std::string> out;
  std::ifstream idmap(dir + "/idmap");
  std::string line;
  if (std::getline(idmap, line)) {
    out.push_back(line.substr(0, line.find(' ')));
    while (std::getline(idmap, line)) {
      if (!line.empty()) out.push_back(line);
    }
    return out;
  }
  std::istringstream config(readText(dir + "/config"));
  const std::string key = "lxc.rootfs.path = overlay:";
  while (std::getline(config, line)) {
    if (line.rfind(key, 0) != 0) continue;
    std::string_view rest = std::string_view(line).substr(key.size());
    while (true) {
      size_t colon = rest.find(':');
      if (colon == std::string_view::npos) break;  // the last one is the delta
      out.emplace_back(rest.substr(0, colon));
      rest = rest.substr(colon + 1);
    }
  }
  return out;
}

// Whether `target` is a directory in the clone's rootfs (its upper dir or a
// lower), reached without a symlink; an error when a symlink or a file is
// in its way.
Result<bool> dirInRootfs(const std::vector<std::string>& layers, const std::string& target) {
  for (const std::string& layer : layers) {
    auto root = openRootDir(layer);
    if (!root) continue;
    auto dir = openBeneath(root->get(), target, O_RDONLY | O_DIRECTORY, layer + target);
    if (dir) return true;
    if (dir.status().code() != Code::kNotFound) return dir.status();
  }
  return false;
}

bool mountPathChar(char ch) {
  return std::isalnum(static_cast<unsigned char>(ch)) || std::strchr("/._-+@=", ch) != nullptr;
}

// An absolute, normalized path of the characters a mount entry line takes.
Status checkDataPath(const std::string& what, const std::string& path) {
  if (path.size() < 2 || path[0] != '/' || path.back() == '/') {
    return invalidArgument(what + " \"" + path + "\": must be an absolute path below /");
  }
  for (char ch : path) {
    if (!mountPathChar(ch)) {
      return invalidArgument(what + " \"" + path +
                             "\": only letters, digits and / . _ - + @ = are allowed");
    }
  }
  // No trailing '/' (above), so every part between slashes is a name.
  std::string_view rest = std::string_view(path).substr(1);
  while (!rest.empty()) {
    const size_t slash = rest.find('/');
    const std::string_view part = rest.substr(0, slash);
    rest = slash == std::string_view::npos ? "" : rest.substr(slash + 1);
    if (part.empty() || part == "." || part == "..") {
      return invalidArgument(what + " \"" + path + "\": must be normalized (no //, . or ..)");
    }
  }
  return Status::ok();
}

}  // namespace

Result<std::string> dataMountEntry(const std::string& source, const std::string& target,
                                   bool idmapped) {
  QABOX_RETURN_IF_ERROR(checkDataPath("data source", source));
  QABOX_RETURN_IF_ERROR(checkDataPath("data target", target));
  // The target relative to the rootfs: liblxc mounts beneath it and refuses
  // a path with a symlink in it (safe_mount), so a link planted in the
  // clone's upper dir cannot move the mount out of the rootfs.
  return source + " " + target.substr(1) + " none bind,nosuid,nodev" +
         (idmapped ? ",idmap=container" : "") + " 0 0";
}

Status LxcRuntime::attachData(const std::string& name, const std::vector<DataSnapshot>& snaps,
                              uint64_t maxBytes) {
  const std::string what = "attaching data to " + name;
  if (o_.dataPool.empty()) {
    return failedPrecondition(what + ": no data pool (storage.data_pool) is set");
  }
  QABOX_RETURN_IF_ERROR(checkPoolName("container", name).withContext(what));
  auto st = state(name);
  if (!st) return st.status().withContext(what);
  if (*st != ContainerState::kStopped) {
    return failedPrecondition(what + ": the container must exist and be stopped");
  }
  const std::string dir = o_.lxcPath + "/" + name;
  std::vector<std::string> layers{upperDir(name)};
  for (const std::string& lower : cloneLowers(dir)) layers.push_back(lower);
  const std::string envDir = envDataDir(o_.dataPool, name);
  const std::string datasets = poolDatasetsDir(o_.dataPool) + "/";
  const bool idmapped = mappedRoot(name).has_value();
  std::vector<std::string> args = {"mount-entries", o_.lxcPath, name, envDir + "/"};
  for (size_t i = 0; i < snaps.size(); ++i) {
    const DataSnapshot& snap = snaps[i];
    QABOX_RETURN_IF_ERROR(checkDataPath("data source", snap.source).withContext(what));
    if (snap.source.rfind(datasets, 0) != 0) {
      return invalidArgument(what + ": " + snap.source + " is not in " + datasets);
    }
    auto sub = isSubvolume(snap.source);
    if (!sub) return sub.status().withContext(what);
    if (!*sub) return invalidArgument(what + ": " + snap.source + " is no subvolume");
    auto entry = dataMountEntry(envDir + "/" + std::to_string(i), snap.target, idmapped);
    if (!entry) return entry.status().withContext(what);
    auto there = dirInRootfs(layers, snap.target);
    if (!there) return there.status().withContext(what);
    if (!*there) {
      return failedPrecondition(what + ": " + snap.target +
                                " is no directory in the container's image");
    }
    args.push_back(*entry);
  }
  // Fresh snapshots every time: a second attach replaces the first.
  QABOX_RETURN_IF_ERROR(deleteEnvData(o_.dataPool, name).withContext(what));
  // 0711 whatever the agent's umask: the container's root, which mounts the
  // snapshots from inside its user namespace, must pass through it.
  if (::mkdir(envDir.c_str(), 0711) != 0 || ::chmod(envDir.c_str(), 0711) != 0) {
    return internalError(what + ": mkdir " + envDir + ": " + std::strerror(errno));
  }
  Status made = Status::ok();
  for (size_t i = 0; made.isOk() && i < snaps.size(); ++i) {
    const std::string snap = envDir + "/" + std::to_string(i);
    made = snapshotSubvolume(snaps[i].source, snap, false);
    if (made.isOk()) made = limitExclusiveBytes(snap, maxBytes);
  }
  made = made.isOk() ? runHelper(args, what) : made.withContext(what);
  if (!made.isOk()) {
    if (Status s = deleteEnvData(o_.dataPool, name); !s.isOk()) {
      spdlog::warn("{}: cleaning up: {}", what, s.message());
    }
  }
  return made;
}

std::string LxcRuntime::upperDir(const std::string& name) const {
  return o_.lxcPath + "/" + name + "/overlay/delta";
}

std::optional<uint32_t> LxcRuntime::mappedRoot(const std::string& name) const {
  std::ifstream in(o_.lxcPath + "/" + name + "/config");
  std::stringstream config;
  config << in.rdbuf();
  return mappedRootOf(config.str());
}

Status LxcRuntime::mountLayers(const LayerMount& mount) {
  const std::string what = "layer mount at " + mount.merged;
  if (mount.lowers.empty()) return invalidArgument(what + ": no lowers");
  std::vector<std::string> paths = {mount.merged, mount.upper, mount.work};
  paths.insert(paths.end(), mount.lowers.begin(), mount.lowers.end());
  for (const std::string& path : paths) {
    QABOX_RETURN_IF_ERROR(checkLayerPath(path).withContext(what));
  }
  std::vector<std::string> args = {"layer-mount", mount.merged, mount.upper, mount.work,
                                   mount.idBase ? std::to_string(*mount.idBase) : "-"};
  args.insert(args.end(), mount.lowers.begin(), mount.lowers.end());
  return runHelper(args, what);
}

Status LxcRuntime::unmountLayers(const std::string& merged) {
  QABOX_RETURN_IF_ERROR(checkLayerPath(merged).withContext("layer unmount"));
  return runHelper({"layer-umount", merged}, "layer unmount at " + merged);
}

Status checkLayerPath(const std::string& path) {
  if (path.empty() || path[0] != '/') return invalidArgument("not an absolute path: " + path);
  if (path.find_first_of(":,\n") != std::string::npos) {
    return invalidArgument("a layer path must not hold ':', ',' or a newline: " + path);
  }
  return Status::ok();
}

std::string seccompProfile(bool allowNestedUserns) {
  // A deny list: what is not named is allowed. errno 1 is EPERM.
  std::string p =
      "2\n"
      "denylist\n"
      "# LXC's default (common.seccomp): no forced unmounts, kexec, module\n"
      "# loading or file handles (open_by_handle_at reads any inode by number).\n"
      "reject_force_umount\n"
      "[all]\n"
      "kexec_load errno 1\n"
      "kexec_file_load errno 1\n"
      "open_by_handle_at errno 1\n"
      "init_module errno 1\n"
      "finit_module errno 1\n"
      "delete_module errno 1\n"
      "# Kernel keyrings are not per container: one could read or fill another's keys.\n"
      "keyctl errno 1\n"
      "add_key errno 1\n"
      "request_key errno 1\n"
      "# Kernel attack surface no web app needs (what Docker's default denies too):\n"
      "# eBPF programs, userfaultfd (the tool of kernel race exploits), perf events\n"
      "# (side channels) and io_uring (its own syscall path; runtimes fall back).\n"
      "bpf errno 1\n"
      "userfaultfd errno 1\n"
      "perf_event_open errno 1\n"
      "io_uring_setup errno 1\n"
      "io_uring_enter errno 1\n"
      "io_uring_register errno 1\n"
      "# Btrfs ioctls (type 0x94, in bits 8-15 of the request): a subvolume made\n"
      "# inside a data snapshot would leave its qgroup's limit, and no snapshot,\n"
      "# quota or device call is any container's to make. FICLONE and its kin\n"
      "# share the type: cp --reflink=auto falls back to copying.\n"
      "ioctl errno 1 [1,37888,SCMP_CMP_MASKED_EQ,65280]\n";
  if (!allowNestedUserns) {
    // A new user namespace gives its maker every capability inside it
    // (mounts, netfilter, ...), the kernel's widest unprivileged surface.
    // 268435456 is CLONE_NEWUSER. clone3 passes its flags in memory a filter
    // cannot read: ENOSYS (38) makes libc fall back to clone.
    p += "# New user namespaces: [containers] allow_nested_userns = true allows them.\n"
         "unshare errno 1 [0,268435456,SCMP_CMP_MASKED_EQ,268435456]\n"
         "clone errno 1 [0,268435456,SCMP_CMP_MASKED_EQ,268435456]\n"
         "clone3 errno 38\n";
  }
  return p;
}

std::string defaultLxcHelperPath() {
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    auto beside = self.parent_path() / "qabox-lxc";
    if (std::filesystem::exists(beside)) return beside;
    // In the build tree the helper sits in agent/runtime.
    for (auto dir = self.parent_path(); dir != dir.root_path(); dir = dir.parent_path()) {
      auto inBuild = dir / "agent/runtime/qabox-lxc";
      if (std::filesystem::exists(inBuild)) return inBuild;
    }
  }
  // Installed: the Debian package keeps helpers off PATH, in libexec.
  if (auto installed = std::filesystem::path(QABOX_LIBEXEC_DIR) / "qabox-lxc";
      std::filesystem::exists(installed, ec)) {
    return installed;
  }
  return "qabox-lxc";
}

}  // namespace qabox
