#include "store/ipam.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace qabox {
namespace {

using ::testing::HasSubstr;

TEST(Ipam, ParsesASubnet) {
  auto s = parseSubnet("10.44.0.0/24");
  ASSERT_TRUE(s.isOk()) << s.status().toString();
  EXPECT_EQ(s->network, 0x0a2c0000u);
  EXPECT_EQ(s->prefix, 24);
  EXPECT_EQ(subnetString(*s), "10.44.0.0/24");

  auto wide = parseSubnet("172.16.0.0/12");
  ASSERT_TRUE(wide.isOk()) << wide.status().toString();
  EXPECT_EQ(wide->prefix, 12);
}

TEST(Ipam, RejectsBadSubnetsNamingTheKeyAndTheRule) {
  struct Case {
    const char* text;
    const char* rule;
  };
  const Case cases[] = {
      {"", "use an IPv4 CIDR"},
      {"10.44.0.0", "use an IPv4 CIDR"},
      {"10.44.0/24", "use an IPv4 CIDR"},
      {"256.44.0.0/24", "use an IPv4 CIDR"},
      {"010.44.0.0/24", "use an IPv4 CIDR"},
      {" 10.44.0.0/24", "use an IPv4 CIDR"},
      {"10.44.0.0.0/24", "use an IPv4 CIDR"},
      {"10.44.0.0/", "prefix length must be a number"},
      {"10.44.0.0/x4", "prefix length must be a number"},
      {"10.44.0.0/24 ", "prefix length must be a number"},
      {"10.44.0.0/-1", "prefix length must be a number"},
      {"10.44.0.0/33", "prefix length must be between 8 and 30"},
      {"10.44.0.0/31", "prefix length must be between 8 and 30"},
      {"10.0.0.0/7", "prefix length must be between 8 and 30"},
      {"10.44.0.1/24", "host bits must be zero"},
      {"10.44.0.4/29", "host bits must be zero"},
  };
  for (const auto& c : cases) {
    auto s = parseSubnet(c.text);
    ASSERT_FALSE(s.isOk()) << c.text;
    EXPECT_EQ(s.status().code(), Code::kInvalidArgument) << c.text;
    EXPECT_THAT(s.status().message(),
                HasSubstr(std::string("network.subnet \"") + c.text + "\": " + c.rule))
        << c.text;
  }
}

TEST(Ipam, GatewayAndCidr) {
  auto s = parseSubnet("10.44.0.0/24");
  ASSERT_TRUE(s.isOk());
  EXPECT_EQ(gatewayOf(*s), "10.44.0.1");
  EXPECT_EQ(cidrOf(*s, "10.44.0.7"), "10.44.0.7/24");
  auto t = parseSubnet("192.168.8.0/22");
  ASSERT_TRUE(t.isOk());
  EXPECT_EQ(gatewayOf(*t), "192.168.8.1");
  EXPECT_EQ(cidrOf(*t, "192.168.9.3"), "192.168.9.3/22");
}

TEST(Ipam, HostCountLeavesOutNetworkGatewayAndBroadcast) {
  EXPECT_EQ(hostCount(*parseSubnet("10.44.0.0/30")), 1u);
  EXPECT_EQ(hostCount(*parseSubnet("10.44.0.0/29")), 5u);
  EXPECT_EQ(hostCount(*parseSubnet("10.44.0.0/24")), 253u);
  EXPECT_EQ(hostCount(*parseSubnet("10.44.0.0/16")), 65533u);
  EXPECT_EQ(hostCount(*parseSubnet("10.0.0.0/8")), 16777213u);
  EXPECT_EQ(hostCount(Subnet{0x0a000000, 31}), 0u);
}

TEST(Ipam, AddressAtAndOffsetOf) {
  auto s = *parseSubnet("10.44.0.0/16");
  EXPECT_EQ(addressAt(s, 2), "10.44.0.2");
  EXPECT_EQ(addressAt(s, 255), "10.44.0.255");
  EXPECT_EQ(addressAt(s, 256), "10.44.1.0");
  EXPECT_EQ(offsetOf(s, "10.44.1.0"), 256u);
  EXPECT_EQ(offsetOf(s, "10.44.0.2"), 2u);
  EXPECT_FALSE(offsetOf(s, "10.45.0.2").has_value());
  EXPECT_FALSE(offsetOf(s, "not an ip").has_value());
}

TEST(Ipam, Ipv4TextRoundTrips) {
  for (const char* ip : {"0.0.0.0", "10.44.0.7", "255.255.255.255", "192.168.100.1"}) {
    auto a = parseIpv4(ip);
    ASSERT_TRUE(a.has_value()) << ip;
    EXPECT_EQ(formatIpv4(*a), ip);
  }
  for (const char* bad : {"", "1.2.3", "1.2.3.4.", "1.2.3.256", "1..2.3", "01.2.3.4", "1.2.3.4x",
                          "1.2.3.-4", "1234.1.1.1"}) {
    EXPECT_FALSE(parseIpv4(bad).has_value()) << bad;
  }
}

}  // namespace
}  // namespace qabox
