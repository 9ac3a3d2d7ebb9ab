#include "runtime/bridge_rules.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <string_view>

namespace qabox {
namespace {

// nft table names: the bridge's name with anything but letters, digits and
// '_' replaced (bridge names may hold '-', '.' and more).
std::string tableName(const std::string& bridge) {
  std::string t = "qabox_";
  for (char c : bridge) t += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  return t;
}

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

std::string vethPrefix(const std::string& bridge) {
  std::string prefix = "q";
  prefix += hexDigits(fnv1a(bridge), 5);
  return prefix;
}

std::string vethName(const std::string& bridge, const std::string& lxcPath,
                     const std::string& container) {
  return vethPrefix(bridge) + hexDigits(fnv1a(lxcPath + "\n" + container), 9);
}

std::string macForAddress(const std::string& ipv4) {
  in_addr a{};
  if (inet_pton(AF_INET, ipv4.c_str(), &a) != 1) return "";
  const auto* b = reinterpret_cast<const unsigned char*>(&a.s_addr);
  std::string mac = "02:71";
  for (int i = 0; i < 4; ++i) {
    mac += ':';
    mac += hexDigits(b[i], 2);
  }
  return mac;
}

namespace {

// The inet table: what the host takes from the containers and forwards.
std::string inetTable(const std::string& bridge, const BridgeGuard& guard) {
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
  return r;
}

// The bridge table: what a container's port may send, and to whom.
std::string bridgeTable(const std::string& bridge, const BridgeGuard& guard) {
  const std::string t = tableName(bridge);
  std::string r;
  // Layer 2. No `meta ibrname` (it needs nft_meta_bridge, which not every
  // kernel has): our ports are the interfaces named with the bridge's prefix.
  const std::string ports = "\"" + vethPrefix(bridge).append("*\"");
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

}  // namespace

std::string bridgeRuleset(const std::string& bridge, const BridgeGuard& guard) {
  return inetTable(bridge, guard) + bridgeTable(bridge, guard);
}

std::string bridgeRulesetRemoval(const std::string& bridge) {
  const std::string t = tableName(bridge);
  return "table inet " + t + "\ndelete table inet " + t + "\ntable bridge " + t +
         "\ndelete table bridge " + t + "\n";
}

std::string bindingsListing(const std::string& bridge) {
  return "list set bridge " + tableName(bridge) + " bindings\n";
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

std::vector<std::string> forwardingInterfaces(const std::vector<netlink::Route4>& routes,
                                              const EgressPolicy& egress, const std::string& bridge,
                                              const std::set<std::string>& bridges) {
  std::vector<std::string> out;
  if (egress.mode == EgressPolicy::Mode::kNone) return out;
  for (const auto& route : routes) {
    if (!route.unicast) continue;  // blackhole, unreachable, prohibit, ...
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

}  // namespace qabox
