#include "runtime/lxc_runtime.h"

#include <arpa/inet.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <lxc/lxccontainer.h>
#include <net/if.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string_view>

#include "runtime/helper_protocol.h"
#include "sys/idshift.h"

extern char** environ;

namespace qabox {
namespace {

constexpr int kHelperFailed = 125;

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

LxcRuntime::LxcRuntime(std::string lxcPath, std::string helperPath, ProcessRunner& runner,
                       std::chrono::milliseconds startTimeout)
    : lxcPath_(std::move(lxcPath)),
      helperPath_(std::move(helperPath)),
      runner_(runner),
      startTimeout_(startTimeout) {}

Status LxcRuntime::runHelper(const std::vector<std::string>& args, const std::string& what) {
  ProcessSpec spec;
  spec.argv.push_back(helperPath_);
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());
  spec.timeout = startTimeout_ + std::chrono::seconds(30);
  auto r = runner_.run(spec);
  if (!r) return r.status().withContext(what);
  if (!r->ok()) return internalError(what + ": " + helperError(*r));
  return Status::ok();
}

Status LxcRuntime::clone(const std::string& imageLxcPath, const std::string& image,
                         const std::string& name, const NetSpec& net,
                         const ResourceLimits& limits) {
  std::vector<std::string> args = {"clone",
                                   imageLxcPath,
                                   image,
                                   lxcPath_,
                                   name,
                                   net.bridge,
                                   net.address,
                                   net.gateway,
                                   limits.memory.empty() ? "-" : limits.memory,
                                   std::to_string(limits.cpus),
                                   std::to_string(limits.pids),
                                   seccompProfile_.empty() ? "-" : seccompProfile_,
                                   "-"};
  std::unique_lock lock(idMu_, std::defer_lock);
  auto imageBase = mappedRootOf(readText(imageLxcPath + "/" + image + "/config"));
  if (idSlots_ > 0 && imageBase) {
    lock.lock();
    std::set<uint64_t> used;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(lxcPath_, ec)) {
      if (auto base = mappedRootOf(readText((e.path() / "config").string()))) used.insert(*base);
    }
    uint64_t own = 0;
    for (uint64_t k = 1; k <= idSlots_ && own == 0; ++k) {
      if (!used.count(idBase_ + k * kMappedIds)) own = idBase_ + k * kMappedIds;
    }
    if (own == 0) {
      return resourceExhausted("clone " + name + ": all " + std::to_string(idSlots_) +
                               " id ranges above containers.id_base are taken");
    }
    args.back() = std::to_string(*imageBase) + ":" + std::to_string(own);
  }
  return runHelper(args, "clone " + name);
}

Status LxcRuntime::start(const std::string& name) {
  auto secs = std::chrono::duration_cast<std::chrono::seconds>(startTimeout_).count();
  return runHelper({"start", lxcPath_, name, std::to_string(secs < 1 ? 1 : secs)}, "start " + name);
}

Status LxcRuntime::stop(const std::string& name) {
  return runHelper({"stop", lxcPath_, name}, "stop " + name);
}

Status LxcRuntime::destroy(const std::string& name) {
  return runHelper({"destroy", lxcPath_, name}, "destroy " + name);
}

Result<std::vector<std::string>> LxcRuntime::list() {
  std::vector<std::string> out;
  std::error_code ec;
  if (!std::filesystem::exists(lxcPath_, ec)) return out;
  char** names = nullptr;
  int n = list_defined_containers(lxcPath_.c_str(), &names, nullptr);
  if (n < 0) return internalError("listing containers in " + lxcPath_ + " failed");
  for (int i = 0; i < n; ++i) {
    out.emplace_back(names[i]);
    std::free(names[i]);
  }
  std::free(names);
  // A directory left without a config (a crash inside clone) is no defined
  // container, but it is still ours to clean up.
  for (const auto& entry : std::filesystem::directory_iterator(lxcPath_, ec)) {
    std::string n2 = entry.path().filename();
    if (entry.is_directory() && !std::filesystem::exists(entry.path() / "config")) {
      out.push_back(n2);
    }
  }
  return out;
}

Result<ContainerState> LxcRuntime::state(const std::string& name) {
  lxc_container* c = lxc_container_new(name.c_str(), lxcPath_.c_str());
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
  p.argv = {helperPath_, "attach", lxcPath_, name, spec.cwd, "--"};
  p.env = attachEnvironment(spec.env);
  p.argv.insert(p.argv.end(), spec.argv.begin(), spec.argv.end());
  p.stdinData = spec.stdinData;
  p.timeout = spec.timeout;
  p.onOutput = spec.onOutput;
  auto r = runner_.run(p);
  if (!r) return r.status();
  if (r->exitCode == kHelperFailed && r->err.find("qabox-lxc: ") != std::string::npos) {
    return failedPrecondition("exec in " + name + ": " + helperError(*r));
  }
  return r;
}

std::string LxcRuntime::upperDir(const std::string& name) const {
  return lxcPath_ + "/" + name + "/overlay/delta";
}

std::optional<uint32_t> LxcRuntime::mappedRoot(const std::string& name) const {
  std::ifstream in(lxcPath_ + "/" + name + "/config");
  std::stringstream config;
  config << in.rdbuf();
  return mappedRootOf(config.str());
}

Status IpBridge::ensure(const std::string& name, const std::string& gatewayCidr) {
  auto run = [&](std::vector<std::string> argv) -> Result<ProcessResult> {
    ProcessSpec s;
    s.argv = std::move(argv);
    s.timeout = std::chrono::seconds(10);
    return runner_.run(s);
  };
  if (!std::filesystem::exists("/sys/class/net/" + name)) {
    auto r = run({"ip", "link", "add", name, "type", "bridge"});
    if (!r) return r.status();
    if (!r->ok() && !std::filesystem::exists("/sys/class/net/" + name)) {
      return failedPrecondition("network.bridge " + name +
                                ": cannot create: " + lastLines(r->err, 2));
    }
  }
  auto addr = run({"ip", "-o", "-4", "addr", "show", "dev", name});
  if (!addr) return addr.status();
  if (addr->out.find(" " + gatewayCidr + " ") == std::string::npos) {
    auto r = run({"ip", "addr", "add", gatewayCidr, "dev", name});
    if (!r) return r.status();
    if (!r->ok() && r->err.find("File exists") == std::string::npos) {
      return failedPrecondition("network.bridge " + name + ": cannot add " + gatewayCidr + ": " +
                                lastLines(r->err, 2));
    }
  }
  auto up = run({"ip", "link", "set", name, "up"});
  if (!up) return up.status();
  if (!up->ok()) return failedPrecondition("network.bridge " + name + ": cannot bring it up");
  return Status::ok();
}

namespace {

// nft table names: the bridge's name with anything but letters, digits and
// '_' replaced (bridge names may hold '-', '.' and more).
std::string tableName(const std::string& bridge) {
  std::string t = "qabox_";
  for (char c : bridge) t += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  return t;
}

}  // namespace

std::string bridgeRuleset(const std::string& bridge, const BridgeGuard& guard) {
  const std::string t = tableName(bridge);
  std::string r;
  r += "table inet " + t + "\ndelete table inet " + t + "\n";
  r += "table inet " + t + " {\n";
  r += "  chain input {\n    type filter hook input priority filter; policy accept;\n";
  if (!guard.hostTcpPorts.empty()) {
    std::string ports;
    for (uint16_t p : guard.hostTcpPorts) ports += (ports.empty() ? "" : ", ") + std::to_string(p);
    r += "    iifname \"" + bridge + "\" tcp dport { " + ports + " } drop\n";
  }
  r += "  }\n}\n";
  r += "table bridge " + t + "\ndelete table bridge " + t + "\n";
  r += "table bridge " + t + " {\n";
  r += "  chain forward {\n    type filter hook forward priority filter; policy accept;\n";
  // Frames between two containers cross the bridge's forward hook; frames to
  // and from the host do not. Matched by the subnet's addresses rather than
  // by `meta ibrname`, which needs a kernel module not every host has.
  if (guard.isolate && !guard.subnet.empty()) {
    r += "    ip saddr " + guard.subnet + " ip daddr " + guard.subnet + " drop\n";
  }
  r += "  }\n}\n";
  return r;
}

std::string bridgeRulesetRemoval(const std::string& bridge) {
  const std::string t = tableName(bridge);
  return "table inet " + t + "\ndelete table inet " + t + "\ntable bridge " + t +
         "\ndelete table bridge " + t + "\n";
}

Status IpBridge::guard(const std::string& name, const BridgeGuard& guard) {
  ProcessSpec s;
  s.argv = {"nft", "-f", "-"};
  s.stdinData = bridgeRuleset(name, guard);
  s.timeout = std::chrono::seconds(10);
  auto r = runner_.run(s);
  if (!r) return r.status().withContext("network.bridge " + name + ": nft");
  if (!r->ok()) {
    return failedPrecondition("network.bridge " + name +
                              ": cannot install its firewall rules (nft): " + lastLines(r->err, 3));
  }
  return Status::ok();
}

Status IpBridge::forgetNeighbor(const std::string& name, const std::string& ip) {
  // One RTM_DELNEIGH over rtnetlink (what `ip neigh del` sends), on the
  // deploy's path, so no process is started for it.
  const std::string what = "forgetting the neighbour entry of " + ip + " on " + name;
  struct {
    nlmsghdr header;
    ndmsg neigh;
    rtattr dstAttr;
    in_addr dst;
  } req{};
  if (inet_pton(AF_INET, ip.c_str(), &req.dst) != 1) {
    return invalidArgument(what + ": not an IPv4 address");
  }
  req.neigh.ndm_ifindex = static_cast<int>(if_nametoindex(name.c_str()));
  if (req.neigh.ndm_ifindex == 0) return notFound(what + ": no such bridge");
  req.header.nlmsg_len = sizeof req;
  req.header.nlmsg_type = RTM_DELNEIGH;
  req.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  req.neigh.ndm_family = AF_INET;
  req.dstAttr.rta_type = NDA_DST;
  req.dstAttr.rta_len = RTA_LENGTH(sizeof req.dst);
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return internalError(what + ": netlink socket: " + std::strerror(errno));
  struct {
    nlmsghdr header;
    nlmsgerr error;
  } ack{};
  ssize_t got = -1;
  if (send(fd, &req, sizeof req, 0) == static_cast<ssize_t>(sizeof req)) {
    got = recv(fd, &ack, sizeof ack, 0);
  }
  int err = errno;
  close(fd);
  if (got < static_cast<ssize_t>(sizeof ack) || ack.header.nlmsg_type != NLMSG_ERROR) {
    return internalError(what + ": netlink: " + std::strerror(err));
  }
  // No entry (ENOENT) is what we want too.
  if (ack.error.error != 0 && ack.error.error != -ENOENT) {
    return internalError(what + ": " + std::strerror(-ack.error.error));
  }
  return Status::ok();
}

Status IpBridge::remove(const std::string& name) {
  ProcessSpec rules;
  rules.argv = {"nft", "-f", "-"};
  rules.stdinData = bridgeRulesetRemoval(name);
  rules.timeout = std::chrono::seconds(10);
  if (auto r = runner_.run(rules); !r || !r->ok()) {
    return internalError("removing the firewall rules of bridge " + name +
                         (r ? ": " + lastLines(r->err, 2) : ": " + r.status().message()));
  }
  if (!std::filesystem::exists("/sys/class/net/" + name)) return Status::ok();
  ProcessSpec s;
  s.argv = {"ip", "link", "del", name};
  s.timeout = std::chrono::seconds(10);
  auto r = runner_.run(s);
  if (!r) return r.status();
  if (!r->ok()) return internalError("removing bridge " + name + ": " + lastLines(r->err, 2));
  return Status::ok();
}

Result<std::vector<std::string>> IpBridge::ports(const std::string& name) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e :
       std::filesystem::directory_iterator("/sys/class/net/" + name + "/brif", ec)) {
    out.push_back(e.path().filename());
  }
  return out;
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
      "io_uring_register errno 1\n";
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
  return "qabox-lxc";
}

}  // namespace qabox
