#include <arpa/inet.h>
#include <gtest/gtest.h>

#include "runtime/bridge_rules.h"
#include "unit/contains.h"

namespace qabox {
namespace {

// The text of one chain (up to its closing brace), to check what is in it.
std::string chain(const std::string& rules, const std::string& table, const std::string& name) {
  size_t t = rules.find(table + " {");
  if (t == std::string::npos) return "";
  size_t c = rules.find("chain " + name + " {", t);
  if (c == std::string::npos) return "";
  return rules.substr(c, rules.find("\n  }\n", c) - c);
}

BridgeGuard guard() {
  BridgeGuard g;
  g.subnet = "10.44.0.0/24";
  g.gateway = "10.44.0.1";
  g.hostTcpPorts = {7443, 9000};
  g.routerTcpPorts = {80, 443};
  return g;
}

TEST(BridgeRules, BothTablesAreReplacedInOneTransaction) {
  std::string r = bridgeRuleset("qabox0", guard());
  EXPECT_TRUE(contains(r, "table inet qabox_qabox0\ndelete table inet qabox_qabox0\n")) << r;
  EXPECT_TRUE(contains(r, "table bridge qabox_qabox0\ndelete table bridge qabox_qabox0\n")) << r;
}

TEST(BridgeRules, TheHostIsClosedToContainersButTheRouterAndReplies) {
  std::string r = bridgeRuleset("qabox0", guard());
  EXPECT_TRUE(contains(r, "iifname \"qabox0\" jump from_containers")) << r;
  std::string in = chain(r, "table inet qabox_qabox0", "from_containers");
  EXPECT_TRUE(contains(in, "tcp dport { 7443, 9000 } drop")) << in;
  EXPECT_TRUE(contains(in, "ct state established,related accept")) << in;
  EXPECT_TRUE(contains(in, "tcp dport { 80, 443 } accept")) << in;
  EXPECT_TRUE(contains(in, "ip daddr 10.44.0.1 icmp type echo-request accept")) << in;
  // Everything else: the last rule.
  EXPECT_EQ(in.substr(in.size() - 9), "\n    drop") << in;
}

TEST(BridgeRules, EachPortPassesOnlyIpv4AndArpOfItsBinding) {
  BridgeGuard g = guard();
  g.bindings = {{"q0123456789abcd", "02:71:0a:2c:00:02", "10.44.0.2"},
                {"q01234fedcba987", "02:71:0a:2c:00:03", "10.44.0.3"}};
  std::string r = bridgeRuleset("qabox0", g);
  EXPECT_TRUE(contains(r,
                       "set bindings {\n    type ifname . ether_addr . ipv4_addr\n"
                       "    elements = { \"q0123456789abcd\" . 02:71:0a:2c:00:02 . 10.44.0.2, "
                       "\"q01234fedcba987\" . 02:71:0a:2c:00:03 . 10.44.0.3 }\n"))
      << r;
  // Before the bridge learns the MAC, on the ports named with this bridge's prefix.
  std::string pre = chain(r, "table bridge qabox_qabox0", "prerouting");
  EXPECT_TRUE(contains(pre, "type filter hook prerouting")) << pre;
  EXPECT_TRUE(contains(pre, "iifname \"" + vethPrefix("qabox0") + "*\" jump from_port")) << pre;
  std::string port = chain(r, "table bridge qabox_qabox0", "from_port");
  EXPECT_TRUE(contains(port,
                       "ether type arp arp htype 1 arp ptype 0x0800 arp hlen 6 arp plen 4 "
                       "iifname . ether saddr . arp saddr ip @bindings "
                       "iifname . arp saddr ether . arp saddr ip @bindings accept"))
      << port;
  EXPECT_TRUE(contains(port, "ether type ip iifname . ether saddr . ip saddr @bindings accept"))
      << port;
  EXPECT_FALSE(contains(port, "ip6")) << "no IPv6 from containers at all: " << port;
  EXPECT_EQ(port.substr(port.size() - 17), "\n    counter drop") << port;
  // Without bindings the set is still declared (no empty elements list: not valid nft).
  std::string none = bridgeRuleset("qabox0", guard());
  EXPECT_TRUE(contains(none, "set bindings {\n    type ifname . ether_addr . ipv4_addr\n  }"))
      << none;
}

TEST(BridgeRules, IsolationDropsEveryFrameBetweenTwoPortsAndRoutedBackIntoTheBridge) {
  std::string r = bridgeRuleset("qabox0", guard());
  std::string fwd = chain(r, "table bridge qabox_qabox0", "forward");
  EXPECT_TRUE(contains(fwd, "iifname \"" + vethPrefix("qabox0") + "*\" drop")) << fwd;
  EXPECT_TRUE(contains(chain(r, "table inet qabox_qabox0", "egress"), "oifname \"qabox0\" drop"));

  BridgeGuard open = guard();
  open.isolate = false;
  std::string o = bridgeRuleset("qa-br.1", open);
  std::string ofwd = chain(o, "table bridge qabox_qa_br_1", "forward");
  EXPECT_FALSE(contains(ofwd, "drop")) << ofwd;
  EXPECT_TRUE(
      contains(chain(o, "table inet qabox_qa_br_1", "egress"), "oifname \"qa-br.1\" accept"))
      << o;
  // Spoofing stays impossible with isolation off.
  EXPECT_TRUE(contains(o, "jump from_port")) << o;
  // Table names keep to letters, digits and '_'; the interface name is quoted as is.
  EXPECT_TRUE(contains(o, "table inet qabox_qa_br_1 {")) << o;
}

TEST(BridgeRules, NoPortsNoPortRules) {
  BridgeGuard g = guard();
  g.hostTcpPorts.clear();
  g.routerTcpPorts.clear();
  std::string r = bridgeRuleset("qabox0", g);
  EXPECT_FALSE(contains(r, "dport {")) << r;  // an empty set is not valid nft
}

TEST(BridgeRules, EgressNoneForwardsNothingAndHasNoNat) {
  std::string r = bridgeRuleset("qabox0", guard());  // a guard's egress is none unless set
  std::string out = chain(r, "table inet qabox_qabox0", "egress");
  EXPECT_FALSE(contains(out, "accept")) << out;
  EXPECT_EQ(out.substr(out.size() - 9), "\n    drop") << out;
  EXPECT_FALSE(contains(r, "masquerade")) << r;
  // Into the bridge from elsewhere: replies only.
  std::string fwd = chain(r, "table inet qabox_qabox0", "forward");
  EXPECT_TRUE(contains(fwd, "iifname \"qabox0\" jump egress")) << fwd;
  EXPECT_TRUE(contains(fwd, "oifname \"qabox0\" ct state established,related accept")) << fwd;
  EXPECT_TRUE(contains(fwd, "oifname \"qabox0\" drop")) << fwd;
}

TEST(BridgeRules, EgressAllAndListsKeepLinkLocalAndIpv6ClosedAndMasquerade) {
  BridgeGuard all = guard();
  all.egress.mode = EgressPolicy::Mode::kAll;
  std::string r = bridgeRuleset("qabox0", all);
  std::string out = chain(r, "table inet qabox_qabox0", "egress");
  // The metadata service and IPv6 come before anything is accepted.
  size_t linkLocal = out.find("ip daddr 169.254.0.0/16 drop");
  size_t ipv6 = out.find("meta nfproto ipv6 drop");
  size_t firstAccept = out.find("accept", out.find("oifname"));
  firstAccept = out.find("accept", firstAccept + 1);
  ASSERT_NE(linkLocal, std::string::npos) << out;
  ASSERT_NE(ipv6, std::string::npos) << out;
  EXPECT_LT(linkLocal, firstAccept) << out;
  EXPECT_LT(ipv6, firstAccept) << out;
  EXPECT_TRUE(contains(out, "\n    accept\n")) << out;
  EXPECT_TRUE(contains(r, "type nat hook postrouting priority srcnat"));
  EXPECT_TRUE(contains(r, "ip saddr 10.44.0.0/24 oifname != \"qabox0\" masquerade")) << r;

  BridgeGuard list = guard();
  list.egress.mode = EgressPolicy::Mode::kList;
  list.egress.allow = {{"198.51.100.1/32", 8080}, {"10.0.0.0/8", 0}, {"169.254.0.0/16", 0}};
  std::string l = chain(bridgeRuleset("qabox0", list), "table inet qabox_qabox0", "egress");
  EXPECT_TRUE(
      contains(l, "ip daddr 198.51.100.1/32 meta l4proto { tcp, udp } th dport 8080 accept"))
      << l;
  EXPECT_TRUE(contains(l, "ip daddr 10.0.0.0/8 accept")) << l;
  EXPECT_FALSE(contains(l, "\n    accept\n")) << l;
  // An allow-list naming link-local does not open it: the drop comes first.
  EXPECT_LT(l.find("ip daddr 169.254.0.0/16 drop"), l.find("ip daddr 169.254.0.0/16 accept")) << l;
  EXPECT_EQ(l.substr(l.size() - 9), "\n    drop") << l;
}

TEST(BridgeRules, RemovalDeletesBothTablesEvenWhenAbsent) {
  EXPECT_EQ(bridgeRulesetRemoval("qabox0"),
            "table inet qabox_qabox0\ndelete table inet qabox_qabox0\n"
            "table bridge qabox_qabox0\ndelete table bridge qabox_qabox0\n");
}

TEST(BridgeRules, OneBindingIsAddedOrRemovedWithoutTouchingTheRules) {
  PortBinding b{"q0123456789abcd", "02:71:0a:2c:00:02", "10.44.0.2"};
  EXPECT_EQ(bindingUpdate("qabox0", b, true),
            "add element bridge qabox_qabox0 bindings "
            "{ \"q0123456789abcd\" . 02:71:0a:2c:00:02 . 10.44.0.2 }\n");
  // Added first, so removing one that is not there is no error either.
  EXPECT_EQ(bindingUpdate("qabox0", b, false),
            "add element bridge qabox_qabox0 bindings "
            "{ \"q0123456789abcd\" . 02:71:0a:2c:00:02 . 10.44.0.2 }\n"
            "delete element bridge qabox_qabox0 bindings "
            "{ \"q0123456789abcd\" . 02:71:0a:2c:00:02 . 10.44.0.2 }\n");
}

TEST(PortNames, VethNamesAreFixedShortAndDifferPerBridgeLxcpathAndName) {
  std::string a = vethName("qabox0", "/var/lib/qabox/lxc", "qabox-exmp-113-1");
  EXPECT_EQ(a, vethName("qabox0", "/var/lib/qabox/lxc", "qabox-exmp-113-1"));
  EXPECT_EQ(a.size(), 15u);  // IFNAMSIZ - 1
  EXPECT_EQ(a.rfind(vethPrefix("qabox0"), 0), 0u) << a;
  EXPECT_EQ(vethPrefix("qabox0").size(), 6u);
  EXPECT_NE(vethPrefix("qabox0"), vethPrefix("qabox1"));
  EXPECT_NE(a, vethName("qabox0", "/var/lib/qabox/lxc", "qabox-exmp-113-2"));
  EXPECT_NE(a, vethName("qabox0", "/srv/other/lxc", "qabox-exmp-113-1"));
  for (char c : a) EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c))) << a;
}

TEST(PortNames, MacsAreLocallyAdministeredUnicastFromTheAddress) {
  EXPECT_EQ(macForAddress("10.44.0.7"), "02:71:0a:2c:00:07");
  EXPECT_EQ(macForAddress("192.168.255.254"), "02:71:c0:a8:ff:fe");
  EXPECT_EQ(macForAddress("not an address"), "");
}

// One route of the host's main table, as rtnetlink reports it.
netlink::Route4 route(const std::string& cidr, std::vector<std::string> devices,
                      bool viaGateway = false, bool unicast = true) {
  netlink::Route4 r;
  in_addr a{};
  EXPECT_EQ(inet_pton(AF_INET, cidr.substr(0, cidr.find('/')).c_str(), &a), 1) << cidr;
  r.network = ntohl(a.s_addr);
  r.prefix = std::stoi(cidr.substr(cidr.find('/') + 1));
  r.unicast = unicast;
  r.viaGateway = viaGateway;
  r.devices = std::move(devices);
  return r;
}

constexpr bool kVia = true;

// What `ip -4 route show table main` prints as
//   default via 192.0.2.1 dev eth0
//   192.0.2.0/24 dev eth0 proto kernel scope link src 192.0.2.2
//   10.44.0.0/24 dev qabox0 proto kernel scope link src 10.44.0.1
//   10.45.0.0/24 dev qabox1 proto kernel scope link src 10.45.0.1
//   172.17.0.0/16 dev docker0 proto kernel scope link src 172.17.0.1 linkdown
//   198.51.100.0/24 dev veth9 proto kernel scope link src 198.51.100.254
//   203.0.113.0/24 via 10.9.0.1 dev br-uplink
//   blackhole 10.99.0.0/16
const std::vector<netlink::Route4> kRoutes = {
    route("0.0.0.0/0", {"eth0"}, kVia),
    route("192.0.2.0/24", {"eth0"}),
    route("10.44.0.0/24", {"qabox0"}),
    route("10.45.0.0/24", {"qabox1"}),
    route("172.17.0.0/16", {"docker0"}),
    route("198.51.100.0/24", {"veth9"}),
    route("203.0.113.0/24", {"br-uplink"}, kVia),
    route("10.99.0.0/16", {}, false, /*unicast=*/false),
};

TEST(Forwarding, TheBridgeAndTheInterfacesRepliesComeInOn) {
  const std::set<std::string> bridges = {"qabox0", "qabox1", "docker0", "br-uplink"};
  EgressPolicy none;
  EXPECT_TRUE(forwardingInterfaces(kRoutes, none, "qabox0", bridges).empty());

  EgressPolicy all{EgressPolicy::Mode::kAll, {}};
  // Not our own bridge (the agent adds it), not other containers' bridges
  // reached directly; a bridge behind a gateway is an uplink.
  EXPECT_EQ(forwardingInterfaces(kRoutes, all, "qabox0", bridges),
            (std::vector<std::string>{"eth0", "veth9", "br-uplink"}));
  // A route that leads nowhere (blackhole, unreachable, prohibit) needs none.
  EXPECT_TRUE(forwardingInterfaces({route("10.98.0.0/16", {"eth7"}, false, /*unicast=*/false)}, all,
                                   "qabox0", bridges)
                  .empty());

  EgressPolicy list{EgressPolicy::Mode::kList, {{"198.51.100.1/32", 8080}}};
  // The default route leads anywhere too.
  EXPECT_EQ(forwardingInterfaces(kRoutes, list, "qabox0", bridges),
            (std::vector<std::string>{"eth0", "veth9"}));
  EXPECT_TRUE(
      forwardingInterfaces({route("10.44.0.0/24", {"qabox0"})}, list, "qabox0", bridges).empty());
}

}  // namespace
}  // namespace qabox
