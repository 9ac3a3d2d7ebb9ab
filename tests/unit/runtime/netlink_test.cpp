// The rtnetlink calls the bridge is made with, on interfaces of a network
// namespace each test makes for itself (no root needed where user
// namespaces are allowed), and their errors, which name the operation and
// the interface.
#include "runtime/netlink.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "fresh_netns.h"
#include "unit/contains.h"

namespace qabox {
namespace {

bool isUp(const std::string& name) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ifreq req{};
  std::strncpy(req.ifr_name, name.c_str(), IFNAMSIZ - 1);
  bool up = fd >= 0 && ioctl(fd, SIOCGIFFLAGS, &req) == 0 && (req.ifr_flags & IFF_UP);
  if (fd >= 0) close(fd);
  return up;
}

uint32_t network(const char* ip) {
  in_addr a{};
  inet_pton(AF_INET, ip, &a);
  return ntohl(a.s_addr);
}

bool hasRoute(const std::vector<netlink::Route4>& routes, const char* net, int prefix,
              const std::string& dev) {
  return std::any_of(routes.begin(), routes.end(), [&](const netlink::Route4& r) {
    return r.network == network(net) && r.prefix == prefix && r.unicast && !r.viaGateway &&
           r.devices == std::vector<std::string>{dev};
  });
}

TEST(Netlink, ABridgeIsMadeAddressedBroughtUpAndDeletedAndEachStepCanBeRepeated) {
  RUN_IN_FRESH_NETNS([] {
    testing::Checks c;
    c.ok(netlink::createBridge("qbt0"), "create");
    c.expect(if_nametoindex("qbt0") != 0, "no qbt0 after create");
    c.ok(netlink::createBridge("qbt0"), "create again");
    c.ok(netlink::addAddress("qbt0", "10.77.0.1/24"), "address");
    c.ok(netlink::addAddress("qbt0", "10.77.0.1/24"), "address again");
    c.expect(!isUp("qbt0"), "up before setUp");
    c.ok(netlink::setUp("qbt0"), "up");
    c.expect(isUp("qbt0"), "not up after setUp");
    auto routes = netlink::mainRoutes4();
    c.ok(routes.status(), "routes");
    if (routes) c.expect(hasRoute(*routes, "10.77.0.0", 24, "qbt0"), "no route to 10.77.0.0/24");
    // No entry for the address: what forgetting wants too.
    c.ok(netlink::deleteNeighbor("qbt0", "10.77.0.9"), "neighbour");
    c.ok(netlink::deleteLink("qbt0"), "delete");
    c.expect(if_nametoindex("qbt0") == 0, "qbt0 still there after delete");
    c.ok(netlink::deleteLink("qbt0"), "delete again");
    return c.result();
  });
}

std::string macOf(const std::string& name) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ifreq req{};
  std::strncpy(req.ifr_name, name.c_str(), IFNAMSIZ - 1);
  std::string out;
  if (fd >= 0 && ioctl(fd, SIOCGIFHWADDR, &req) == 0) {
    out.assign(req.ifr_hwaddr.sa_data, 6);
  }
  if (fd >= 0) close(fd);
  return out;
}

// A port with a lower MAC than the bridge's, added and removed, would move
// the bridge's own MAC twice; a pinned one stays.
TEST(Netlink, APinnedBridgeKeepsItsMacWhilePortsComeAndGo) {
  RUN_IN_FRESH_NETNS([] {
    testing::Checks c;
    c.ok(netlink::createBridge("qbt2"), "create");
    c.ok(netlink::pinAddress("qbt2"), "pin");
    c.ok(netlink::pinAddress("qbt2"), "pin again");
    const std::string mac = macOf("qbt2");
    c.expect(mac.size() == 6, "no MAC read");
    c.expect(std::system("ip link add qbv0 address 00:00:00:00:00:01 type veth peer name qbv1 && "
                         "ip link set qbv0 master qbt2") == 0,
             "cannot add a port");
    c.expect(macOf("qbt2") == mac, "the bridge took its new port's MAC");
    c.ok(netlink::deleteLink("qbv0"), "remove the port");
    c.expect(macOf("qbt2") == mac, "the bridge's MAC moved when its port went");
    c.ok(netlink::deleteLink("qbt2"), "delete");
    c.expect(!netlink::pinAddress("qbt2").isOk(), "pinning a missing bridge did not fail");
    return c.result();
  });
}

TEST(Netlink, ADumpLongerThanOneBufferIsReadToItsEnd) {
  RUN_IN_FRESH_NETNS([] {
    testing::Checks c;
    c.ok(netlink::createBridge("qbt1"), "create");
    c.ok(netlink::setUp("qbt1"), "up");
    // 300 connected routes: some 20 kB of answers, several reads.
    for (int i = 0; i < 300; ++i) {
      c.ok(netlink::addAddress("qbt1", "10." + std::to_string(100 + i / 250) + "." +
                                           std::to_string(i % 250) + ".1/24"),
           "address " + std::to_string(i));
    }
    auto routes = netlink::mainRoutes4();
    c.ok(routes.status(), "routes");
    if (routes) {
      c.expect(routes->size() >= 300, "only " + std::to_string(routes->size()) + " routes");
      c.expect(hasRoute(*routes, "10.100.0.0", 24, "qbt1"), "no first route");
      c.expect(hasRoute(*routes, "10.101.49.0", 24, "qbt1"), "no last route");
    }
    return c.result();
  });
}

TEST(Netlink, ErrorsNameTheOperationAndTheInterface) {
  Status s = netlink::setUp("qbt-missing");
  EXPECT_EQ(s.code(), Code::kNotFound) << s.toString();
  EXPECT_TRUE(contains(s.message(), "bringing qbt-missing up")) << s.message();
  s = netlink::deleteNeighbor("qbt-missing", "10.77.0.9");
  EXPECT_EQ(s.code(), Code::kNotFound) << s.toString();
  EXPECT_TRUE(contains(s.message(), "10.77.0.9 on qbt-missing")) << s.message();
  s = netlink::deleteNeighbor("lo", "not an address");
  EXPECT_EQ(s.code(), Code::kInvalidArgument) << s.toString();
  s = netlink::addAddress("lo", "10.77.0.1");
  EXPECT_EQ(s.code(), Code::kInvalidArgument) << s.toString();
  s = netlink::addAddress("lo", "10.77.0.1/33");
  EXPECT_EQ(s.code(), Code::kInvalidArgument) << s.toString();
  EXPECT_TRUE(netlink::deleteLink("qbt-missing").isOk());

  // What the kernel refuses: its errno, after the operation and the name.
  RUN_IN_FRESH_NETNS([] {
    testing::Checks c;
    Status bad = netlink::createBridge("qbt-name-far-too-long");
    c.expect(!bad.isOk(), "a 21-character interface name was taken");
    c.expect(contains(bad.message(), "creating bridge qbt-name-far-too-long: "), bad.message());
    return c.result();
  });
}

TEST(Netlink, TheHostsRoutesCanBeReadWithoutPrivilege) {
  auto routes = netlink::mainRoutes4();
  ASSERT_TRUE(routes.isOk()) << routes.status().toString();
  for (const auto& r : *routes) EXPECT_LE(r.prefix, 32);
}

}  // namespace
}  // namespace qabox
