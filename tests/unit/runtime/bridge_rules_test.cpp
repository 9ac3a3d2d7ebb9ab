#include <gtest/gtest.h>

#include "runtime/lxc_runtime.h"

namespace qabox {
namespace {

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

TEST(BridgeRules, DropsApiPortsAndTrafficBetweenContainers) {
  BridgeGuard g;
  g.subnet = "10.44.0.0/24";
  g.hostTcpPorts = {7443, 9000};
  std::string r = bridgeRuleset("qabox0", g);
  // Replaced in one transaction: declared, deleted, declared with the rules.
  EXPECT_TRUE(contains(r, "table inet qabox_qabox0\ndelete table inet qabox_qabox0\n")) << r;
  EXPECT_TRUE(contains(r, "table bridge qabox_qabox0\ndelete table bridge qabox_qabox0\n")) << r;
  EXPECT_TRUE(contains(r, "iifname \"qabox0\" tcp dport { 7443, 9000 } drop")) << r;
  EXPECT_TRUE(contains(r, "ip saddr 10.44.0.0/24 ip daddr 10.44.0.0/24 drop")) << r;
  EXPECT_TRUE(contains(r, "policy accept")) << r;
}

TEST(BridgeRules, NoPortsNoPortRuleAndIsolationCanBeTurnedOff) {
  BridgeGuard g;
  g.subnet = "10.44.0.0/24";
  g.isolate = false;
  std::string r = bridgeRuleset("qa-br.1", g);
  EXPECT_FALSE(contains(r, "dport")) << r;  // an empty set is not valid nft
  EXPECT_FALSE(contains(r, "saddr")) << r;
  // Table names keep to letters, digits and '_'; the interface name is quoted as is.
  EXPECT_TRUE(contains(r, "table inet qabox_qa_br_1 {")) << r;
}

TEST(BridgeRules, RemovalDeletesBothTablesEvenWhenAbsent) {
  EXPECT_EQ(bridgeRulesetRemoval("qabox0"),
            "table inet qabox_qabox0\ndelete table inet qabox_qabox0\n"
            "table bridge qabox_qabox0\ndelete table bridge qabox_qabox0\n");
}

}  // namespace
}  // namespace qabox
