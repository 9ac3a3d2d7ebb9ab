// The bridge's rule text applied through libnftables, in a network
// namespace each test makes for itself: what the kernel takes, what it then
// holds, and what an error says.
#include "runtime/nftables.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/netlink.h>
#include <sys/socket.h>

#include <filesystem>

#include "fresh_netns.h"
#include "runtime/bridge_rules.h"
#include "unit/contains.h"

namespace qabox {
namespace {

BridgeGuard loadedGuard() {
  BridgeGuard g;
  g.subnet = "10.44.0.0/24";
  g.gateway = "10.44.0.1";
  g.hostTcpPorts = {7443};
  g.routerTcpPorts = {80, 443};
  g.egress.mode = EgressPolicy::Mode::kList;
  g.egress.allow = {{"198.51.100.1/32", 8080}};
  g.bindings = {{"q0123456789abcd", "02:71:0a:2c:00:02", "10.44.0.2"}};
  return g;
}

// What the kernel holds, as `nft list ruleset` prints it.
std::string ruleset(Nftables& nft, testing::Checks& c) {
  auto listed = nft.run("list ruleset");
  c.ok(listed.status(), "list ruleset");
  return listed ? *listed : "";
}

TEST(Nftables, TheBridgesRulesAreTakenReplacedAndRemoved) {
  RUN_IN_FRESH_NETNS([] {
    testing::Checks c;
    Nftables nft;
    c.ok(nft.apply(bridgeRuleset("qbt0", loadedGuard())), "apply");
    std::string r = ruleset(nft, c);
    c.expect(contains(r, "table inet qabox_qbt0 {"), "no inet table:\n" + r);
    c.expect(contains(r, "table bridge qabox_qbt0 {"), "no bridge table:\n" + r);
    c.expect(contains(r, "\"q0123456789abcd\" . 02:71:0a:2c:00:02 . 10.44.0.2"), "no binding");
    c.expect(contains(r, "masquerade"), "no NAT with egress:\n" + r);
    // Applied again without egress: replaced, not added to.
    BridgeGuard closed = loadedGuard();
    closed.egress = {};
    c.ok(nft.apply(bridgeRuleset("qbt0", closed)), "apply again");
    r = ruleset(nft, c);
    c.expect(!contains(r, "masquerade"), "the old rules stayed:\n" + r);
    c.ok(nft.apply(bridgeRulesetRemoval("qbt0")), "remove");
    c.expect(!contains(ruleset(nft, c), "qabox_qbt0"), "tables left after removal");
    c.ok(nft.apply(bridgeRulesetRemoval("qbt0")), "remove again");
    return c.result();
  });
}

TEST(Nftables, ABindingIsAddedAndRemovedAlone) {
  RUN_IN_FRESH_NETNS([] {
    testing::Checks c;
    Nftables nft;
    c.ok(nft.apply(bridgeRuleset("qbt0", loadedGuard())), "apply");
    const PortBinding b{"q01234fedcba987", "02:71:0a:2c:00:03", "10.44.0.3"};
    const std::string element = "\"q01234fedcba987\" . 02:71:0a:2c:00:03 . 10.44.0.3";
    c.ok(nft.apply(bindingUpdate("qbt0", b, true)), "add");
    c.ok(nft.apply(bindingUpdate("qbt0", b, true)), "add again");
    std::string r = ruleset(nft, c);
    c.expect(contains(r, element), "not added:\n" + r);
    c.expect(contains(r, "\"q0123456789abcd\""), "the other binding went");
    c.ok(nft.apply(bindingUpdate("qbt0", b, false)), "remove");
    c.expect(!contains(ruleset(nft, c), element), "not removed");
    c.ok(nft.apply(bindingUpdate("qbt0", b, false)), "remove again");
    return c.result();
  });
}

TEST(Nftables, AnErrorSaysWhatNftRefused) {
  RUN_IN_FRESH_NETNS([] {
    testing::Checks c;
    Nftables nft;
    const PortBinding b{"q01234fedcba987", "02:71:0a:2c:00:03", "10.44.0.3"};
    Status s = nft.apply(bindingUpdate("qbt-none", b, true));
    c.expect(!s.isOk(), "a binding in a table that is not there was taken");
    c.expect(contains(s.message(), "nft: "), s.message());
    c.expect(contains(s.message(), "No such file or directory"), s.message());
    c.expect(contains(s.message(), "qabox_qbt_none"), s.message());
    s = nft.apply("table inet qabox_x { chain c { nonsense } }");
    c.expect(contains(s.message(), "syntax error"), s.message());
    // The context is still good after errors, and their text is not carried over.
    c.ok(nft.apply(bridgeRulesetRemoval("qbt0")), "after errors");
    auto listed = nft.run("list tables");
    c.expect(listed && !contains(*listed, "Error"), "an old error in the output");
    return c.result();
  });
}

// The netlink sockets of this process that an exec would pass on.
std::vector<int> inheritableNetlinkSockets() {
  std::vector<int> out;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
    const int fd = std::stoi(e.path().filename());
    int domain = 0;
    socklen_t len = sizeof domain;
    const int flags = fcntl(fd, F_GETFD);
    if (flags >= 0 && !(flags & FD_CLOEXEC) &&
        getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) == 0 && domain == AF_NETLINK) {
      out.push_back(fd);
    }
  }
  return out;
}

TEST(Nftables, ItsSocketDoesNotCrossExec) {
  const auto before = inheritableNetlinkSockets();
  Nftables nft;
  // Opened: what nft_ctx_new made is there to be checked.
  ASSERT_TRUE(nft.run("").isOk());
  EXPECT_EQ(inheritableNetlinkSockets(), before);
}

}  // namespace
}  // namespace qabox
