#include "runtime/lxc_runtime.h"

#include <arpa/inet.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <lxc/lxccontainer.h>
#include <net/if.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
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

#include <spdlog/spdlog.h>

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
  ProcessSpec s;
  s.argv = {"nft", "-f", "-"};
  s.stdinData = bindingUpdate(bridge, binding, add);
  s.timeout = std::chrono::seconds(10);
  auto r = runner_.run(s);
  if (!r) return r.status();
  if (!r->ok()) return internalError("nft: " + lastLines(r->err, 2));
  return Status::ok();
}

Status LxcRuntime::clone(const std::string& imageLxcPath, const std::string& image,
                         const std::string& name, const NetSpec& net,
                         const ResourceLimits& limits) {
  // A fixed veth name and MAC, bound to the address in the bridge's
  // firewall before the container first starts.
  const std::string address = net.address.substr(0, net.address.find('/'));
  PortBinding binding{vethName(net.bridge, lxcPath_, name), macForAddress(address), address};
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
                                   binding.port,
                                   binding.mac,
                                   seccompProfile_.empty() ? "-" : seccompProfile_,
                                   "-"};
  auto imageBase = mappedRootOf(readText(imageLxcPath + "/" + image + "/config"));
  uint64_t own = 0;
  if (idSlots_ > 0 && imageBase) {
    // The slot is taken under the lock and held in cloning_ until the
    // clone's config records it, so clones run side by side, never sharing.
    std::lock_guard lock(idMu_);
    std::set<uint64_t> used = cloning_;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(lxcPath_, ec)) {
      if (auto base = mappedRootOf(readText((e.path() / "config").string()))) used.insert(*base);
    }
    for (uint64_t k = 1; k <= idSlots_ && own == 0; ++k) {
      if (!used.count(idBase_ + k * kMappedIds)) own = idBase_ + k * kMappedIds;
    }
    if (own == 0) {
      return resourceExhausted("clone " + name + ": all " + std::to_string(idSlots_) +
                               " id ranges above containers.id_base are taken");
    }
    cloning_.insert(own);
    args.back() = std::to_string(*imageBase) + ":" + std::to_string(own);
  }
  Status cloned = runHelper(args, "clone " + name);
  if (own != 0) {
    std::lock_guard lock(idMu_);
    cloning_.erase(own);
  }
  QABOX_RETURN_IF_ERROR(cloned);
  if (Status s = bindPort(net.bridge, binding, true); !s.isOk()) {
    if (Status d = runHelper({"destroy", lxcPath_, name}, "destroy " + name); !d.isOk()) {
      spdlog::warn("clone {}: {}", name, d.message());
    }
    return internalError("clone " + name + ": binding its port " + binding.port +
                         " in the bridge's firewall: " + s.message());
  }
  return Status::ok();
}

Status LxcRuntime::start(const std::string& name) {
  auto secs = std::chrono::duration_cast<std::chrono::seconds>(startTimeout_).count();
  return runHelper({"start", lxcPath_, name, std::to_string(secs < 1 ? 1 : secs)}, "start " + name);
}

Status LxcRuntime::stop(const std::string& name) {
  return runHelper({"stop", lxcPath_, name}, "stop " + name);
}

Status LxcRuntime::destroy(const std::string& name) {
  auto bound = bindingInConfig(lxcPath_ + "/" + name + "/config");
  QABOX_RETURN_IF_ERROR(runHelper({"destroy", lxcPath_, name}, "destroy " + name));
  if (bound) {
    // A stale binding would let the next container named so use this
    // address; the set is rebuilt from the store on every start anyway.
    if (Status s = bindPort(bound->first, bound->second, false); !s.isOk()) {
      spdlog::warn("destroy {}: removing the binding of port {}: {}", name, bound->second.port,
                   s.message());
    }
  }
  return Status::ok();
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

namespace {

uint64_t fnv1a(std::string_view text) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

std::string hexDigits(uint64_t value, int digits) {
  static const char* kHex = "0123456789abcdef";
  std::string out(static_cast<size_t>(digits), '0');
  for (int i = digits - 1; i >= 0; --i, value >>= 4) out[static_cast<size_t>(i)] = kHex[value & 15];
  return out;
}

std::string portList(const std::vector<uint16_t>& ports) {
  std::string out;
  for (uint16_t p : ports) out += (out.empty() ? "" : ", ") + std::to_string(p);
  return out;
}

std::string element(const PortBinding& b) { return "\"" + b.port + "\" . " + b.mac + " . " + b.ip; }

constexpr const char* kBindingsType = "type ifname . ether_addr . ipv4_addr";

}  // namespace

std::string vethPrefix(const std::string& bridge) { return "q" + hexDigits(fnv1a(bridge), 5); }

std::string vethName(const std::string& bridge, const std::string& lxcPath,
                     const std::string& container) {
  return vethPrefix(bridge) + hexDigits(fnv1a(lxcPath + "\n" + container), 9);
}

std::string macForAddress(const std::string& ipv4) {
  in_addr a{};
  if (inet_pton(AF_INET, ipv4.c_str(), &a) != 1) return "";
  const auto* b = reinterpret_cast<const unsigned char*>(&a.s_addr);
  std::string mac = "02:71";
  for (int i = 0; i < 4; ++i) mac += ":" + hexDigits(b[i], 2);
  return mac;
}

std::string bridgeRuleset(const std::string& bridge, const BridgeGuard& guard) {
  const std::string t = tableName(bridge);
  const std::string br = "\"" + bridge + "\"";
  const bool egress = guard.egress.mode != EgressPolicy::Mode::kNone;
  std::string r;
  r += "table inet " + t + "\ndelete table inet " + t + "\n";
  r += "table inet " + t + " {\n";
  r += "  chain input {\n    type filter hook input priority filter; policy accept;\n";
  r += "    iifname " + br + " jump from_containers\n  }\n";
  // The host as the containers see it: the router (an app may call another
  // environment through its URL, as QA does), ping of the gateway, and
  // replies to what the host opened; no other port on any host address.
  r += "  chain from_containers {\n";
  if (!guard.hostTcpPorts.empty()) {
    r += "    tcp dport { " + portList(guard.hostTcpPorts) + " } drop\n";
  }
  r += "    ct state established,related accept\n";
  if (!guard.routerTcpPorts.empty()) {
    r += "    tcp dport { " + portList(guard.routerTcpPorts) + " } accept\n";
  }
  if (!guard.gateway.empty()) {
    r += "    ip daddr " + guard.gateway + " icmp type echo-request accept\n";
  }
  r += "    drop\n  }\n";
  // Forwarded through the host: out of the bridge as egress allows; into it
  // only replies (the router, on the host, is the way in).
  r += "  chain forward {\n    type filter hook forward priority filter; policy accept;\n";
  r += "    iifname " + br + " jump egress\n";
  r += "    oifname " + br + " ct state established,related accept\n";
  r += "    oifname " + br + " drop\n  }\n";
  r += "  chain egress {\n";
  // Routed back into the bridge, container to container.
  r += "    oifname " + br + (guard.isolate ? " drop\n" : " accept\n");
  // Under every policy: link-local (the metadata service, 169.254.169.254)
  // and anything IPv6 (fd00:ec2::254, fe80::/10); containers have no IPv6.
  r += "    ip daddr 169.254.0.0/16 drop\n";
  r += "    meta nfproto ipv6 drop\n";
  if (egress) r += "    ct state established,related accept\n";
  if (guard.egress.mode == EgressPolicy::Mode::kAll) {
    r += "    accept\n";
  } else if (guard.egress.mode == EgressPolicy::Mode::kList) {
    for (const auto& rule : guard.egress.allow) {
      r += "    ip daddr " + rule.cidr;
      if (rule.port != 0) r += " meta l4proto { tcp, udp } th dport " + std::to_string(rule.port);
      r += " accept\n";
    }
  }
  r += "    drop\n  }\n";
  if (egress && !guard.subnet.empty()) {
    r += "  chain postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n";
    r += "    ip saddr " + guard.subnet + " oifname != " + br + " masquerade\n  }\n";
  }
  r += "}\n";

  // Layer 2. No `meta ibrname` (it needs nft_meta_bridge, which not every
  // kernel has): our ports are the interfaces named with the bridge's prefix.
  const std::string ports = "\"" + vethPrefix(bridge) + "*\"";
  r += "table bridge " + t + "\ndelete table bridge " + t + "\n";
  r += "table bridge " + t + " {\n";
  r += "  set bindings {\n    " + std::string(kBindingsType) + "\n";
  if (!guard.bindings.empty()) {
    r += "    elements = { ";
    for (size_t i = 0; i < guard.bindings.size(); ++i) {
      r += (i ? ", " : "") + element(guard.bindings[i]);
    }
    r += " }\n";
  }
  r += "  }\n";
  // Prerouting: before the bridge learns the source MAC, so a forged one
  // never moves another container's entry in its forwarding table. Static
  // addresses, no DHCP: IPv4 and ARP from the binding, nothing else (IPv6
  // neighbour discovery, multicast, VLAN tags, other ether types).
  r += "  chain prerouting {\n    type filter hook prerouting priority filter; policy accept;\n";
  r += "    iifname " + ports + " jump from_port\n  }\n";
  r += "  chain from_port {\n";
  r += "    ether type arp arp htype 1 arp ptype 0x0800 arp hlen 6 arp plen 4 "
       "iifname . ether saddr . arp saddr ip @bindings "
       "iifname . arp saddr ether . arp saddr ip @bindings accept\n";
  r += "    ether type ip iifname . ether saddr . ip saddr @bindings accept\n";
  // Counted: what a container tried and was refused shows in `nft list`.
  r += "    counter drop\n  }\n";
  // Between two ports of the bridge (a frame to another container, or a
  // copy of a broadcast); frames to and from the host do not pass here.
  r += "  chain forward {\n    type filter hook forward priority filter; policy accept;\n";
  if (guard.isolate) r += "    iifname " + ports + " drop\n";
  r += "  }\n}\n";
  return r;
}

std::string bridgeRulesetRemoval(const std::string& bridge) {
  const std::string t = tableName(bridge);
  return "table inet " + t + "\ndelete table inet " + t + "\ntable bridge " + t +
         "\ndelete table bridge " + t + "\n";
}

std::string bindingUpdate(const std::string& bridge, const PortBinding& binding, bool add) {
  const std::string set = "bridge " + tableName(bridge) + " bindings";
  // Adding an element that is there is no error; so adding it first makes
  // the removal of one that is not there none either.
  std::string r = "add element " + set + " { " + element(binding) + " }\n";
  if (!add) r += "delete element " + set + " { " + element(binding) + " }\n";
  return r;
}

namespace {

struct Route {
  uint32_t network = 0;
  int prefix = 0;
  bool viaGateway = false;
  std::vector<std::string> devices;
};

bool parseCidr4(std::string_view text, uint32_t& network, int& prefix) {
  std::string addr(text.substr(0, text.find('/')));
  prefix = 32;
  if (size_t slash = text.find('/'); slash != std::string_view::npos) {
    std::string len(text.substr(slash + 1));
    if (len.empty() || len.size() > 2 || len.find_first_not_of("0123456789") != len.npos) {
      return false;
    }
    prefix = std::stoi(len);
    if (prefix > 32) return false;
  }
  in_addr a{};
  if (inet_pton(AF_INET, addr.c_str(), &a) != 1) return false;
  network = ntohl(a.s_addr);
  return true;
}

bool overlaps(uint32_t a, int aLen, uint32_t b, int bLen) {
  int len = std::min(aLen, bLen);
  uint32_t mask = len == 0 ? 0 : ~uint32_t{0} << (32 - len);
  return (a & mask) == (b & mask);
}

}  // namespace

std::vector<std::string> forwardingInterfaces(std::string_view routes, const EgressPolicy& egress,
                                              const std::string& bridge,
                                              const std::set<std::string>& bridges) {
  std::vector<std::string> out;
  if (egress.mode == EgressPolicy::Mode::kNone) return out;
  std::istringstream lines{std::string(routes)};
  for (std::string line; std::getline(lines, line);) {
    std::istringstream words(line);
    std::vector<std::string> w;
    for (std::string word; words >> word;) w.push_back(word);
    if (w.empty()) continue;
    size_t i = 0;
    if (w[0] == "unicast") i = 1;
    if (i >= w.size()) continue;
    Route route;
    if (w[i] == "default") {
      route.prefix = 0;
    } else if (!parseCidr4(w[i], route.network, route.prefix)) {
      continue;  // blackhole, unreachable, prohibit, ...
    }
    for (size_t j = i + 1; j + 1 < w.size(); ++j) {
      if (w[j] == "via") route.viaGateway = true;
      if (w[j] == "dev") route.devices.push_back(w[j + 1]);
    }
    bool allowed = egress.mode == EgressPolicy::Mode::kAll;
    for (const auto& rule : egress.allow) {
      uint32_t net = 0;
      int len = 0;
      if (parseCidr4(rule.cidr, net, len) && overlaps(net, len, route.network, route.prefix)) {
        allowed = true;
      }
    }
    if (!allowed) continue;
    for (const auto& dev : route.devices) {
      if (dev == bridge || dev == "lo") continue;
      if (bridges.count(dev) && !route.viaGateway && route.prefix != 0) continue;
      if (std::find(out.begin(), out.end(), dev) == out.end()) out.push_back(dev);
    }
  }
  return out;
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
  if (guard.egress.mode == EgressPolicy::Mode::kNone) return Status::ok();
  // Egress is routed: IPv4 forwarding on the bridge (where containers'
  // packets come in) and on the interfaces the replies come in on, rather
  // than net.ipv4.ip_forward for every interface. Never turned off again:
  // another agent or service may rely on it.
  ProcessSpec routes;
  routes.argv = {"ip", "-4", "-o", "route", "show", "table", "main"};
  routes.timeout = std::chrono::seconds(10);
  auto table = runner_.run(routes);
  if (!table || !table->ok()) {
    return failedPrecondition("network.egress: cannot read the host's routes (ip route)");
  }
  std::set<std::string> bridges;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/sys/class/net", ec)) {
    if (std::filesystem::exists(e.path() / "bridge")) bridges.insert(e.path().filename());
  }
  std::vector<std::string> ifaces = {name};
  for (const auto& i : forwardingInterfaces(table->out, guard.egress, name, bridges)) {
    ifaces.push_back(i);
  }
  for (const auto& i : ifaces) {
    const std::string path = "/proc/sys/net/ipv4/conf/" + i + "/forwarding";
    std::ifstream in(path);
    std::string value;
    in >> value;
    if (value == "1") continue;
    std::ofstream out(path);
    out << "1\n";
    out.flush();
    if (!out) {
      return failedPrecondition("network.egress: cannot turn on IPv4 forwarding on " + i + " (" +
                                path + ")");
    }
    spdlog::info(
        "network.egress: turned on IPv4 forwarding on {} (net.ipv4.conf.{}.forwarding {} -> 1)", i,
        i, value.empty() ? "?" : value);
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
