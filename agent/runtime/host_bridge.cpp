#include "runtime/host_bridge.h"

#include <filesystem>
#include <fstream>
#include <set>

#include <spdlog/spdlog.h>

#include "core/failpoint.h"
#include "runtime/bridge_rules.h"
#include "runtime/netlink.h"

namespace qabox {
namespace {

// Turns IPv4 forwarding on where it is off; never off again: another agent
// or service may rely on it.
Status enableForwarding(const std::vector<std::string>& ifaces) {
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

// The host's bridges, by name.
std::set<std::string> hostBridges() {
  std::set<std::string> bridges;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/sys/class/net", ec)) {
    if (std::filesystem::exists(e.path() / "bridge")) bridges.insert(e.path().filename());
  }
  return bridges;
}

}  // namespace

Status HostBridge::ensure(const std::string& name, const std::string& gatewayCidr) {
  if (Status s = netlink::createBridge(name); !s.isOk()) {
    return failedPrecondition("network.bridge " + name + ": cannot create: " + s.message());
  }
  if (Status s = netlink::pinAddress(name); !s.isOk()) {
    return failedPrecondition("network.bridge " + name + ": " + s.message());
  }
  if (Status s = netlink::addAddress(name, gatewayCidr); !s.isOk()) {
    return failedPrecondition("network.bridge " + name + ": cannot add " + gatewayCidr + ": " +
                              s.message());
  }
  if (Status s = netlink::setUp(name); !s.isOk()) {
    return failedPrecondition("network.bridge " + name + ": cannot bring it up: " + s.message());
  }
  return Status::ok();
}

Status HostBridge::guard(const std::string& name, const BridgeGuard& guard) {
  if (Status s = firewall_.apply(bridgeRuleset(name, guard)); !s.isOk()) {
    return failedPrecondition("network.bridge " + name +
                              ": cannot install its firewall rules: " + s.message());
  }
  if (guard.egress.mode == EgressPolicy::Mode::kNone) return Status::ok();
  // Egress is routed: IPv4 forwarding on the bridge (where containers'
  // packets come in) and on the interfaces the replies come in on, rather
  // than net.ipv4.ip_forward for every interface.
  auto routes = netlink::mainRoutes4();
  if (!routes) {
    return failedPrecondition("network.egress: cannot read the host's routes: " +
                              routes.status().message());
  }
  std::vector<std::string> ifaces = {name};
  for (const auto& i : forwardingInterfaces(*routes, guard.egress, name, hostBridges())) {
    ifaces.push_back(i);
  }
  return enableForwarding(ifaces);
}

Status HostBridge::forgetNeighbor(const std::string& name, const std::string& ip) {
  // On the deploy's path: one request over rtnetlink, no process.
  QABOX_FAILPOINT("bridge.forget-neighbor.before");
  return netlink::deleteNeighbor(name, ip);
}

Status HostBridge::remove(const std::string& name) {
  if (Status s = firewall_.apply(bridgeRulesetRemoval(name)); !s.isOk()) {
    return internalError("removing the firewall rules of bridge " + name + ": " + s.message());
  }
  if (Status s = netlink::deleteLink(name); !s.isOk()) {
    return internalError("removing bridge " + name + ": " + s.message());
  }
  return Status::ok();
}

Result<std::vector<std::string>> HostBridge::ports(const std::string& name) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e :
       std::filesystem::directory_iterator("/sys/class/net/" + name + "/brif", ec)) {
    out.push_back(e.path().filename());
  }
  return out;
}

}  // namespace qabox
