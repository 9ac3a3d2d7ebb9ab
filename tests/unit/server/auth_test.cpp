// The role table, token secrets and hashing, and every way the Authorizer
// lets a call through or refuses it, against a real SQLite store.
#include "server/auth.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <tuple>

#include <set>

#include "qabox/v1/qabox.grpc.pb.h"
#include "unit/server/tokens.h"
#include "unit/store/temp_dir.h"

namespace qabox {
namespace {

using ::testing::HasSubstr;

std::string method(std::string_view rpc) { return std::string(kServicePrefix) + std::string(rpc); }

TEST(RoleTable, CoversEveryRpcOfTheServiceAndNothingElse) {
  const auto* service = v1::DeployRequest::descriptor()->file()->FindServiceByName("Qabox");
  ASSERT_NE(service, nullptr);
  std::set<std::string> inProto;
  for (int i = 0; i < service->method_count(); ++i) inProto.insert(service->method(i)->name());
  std::set<std::string> inTable;
  for (const auto& a : kRpcAccess) {
    EXPECT_TRUE(inTable.insert(std::string(a.rpc)).second) << a.rpc << " listed twice";
    EXPECT_NE(a.roles, 0) << a.rpc << " allows nobody";
  }
  EXPECT_EQ(inProto, inTable) << "an RPC added to the proto needs a row in kRpcAccess";
}

TEST(RoleTable, CiReaperAndOpsMayCallWhatTheIssueSays) {
  for (const char* rpc :
       {"Deploy", "GetEnvironment", "ListEnvironments", "StreamLogs", "DeleteEnvironment",
        "SleepEnvironment", "WakeEnvironment", "GetHostStatus", "ListEvents"}) {
    EXPECT_TRUE(mayCall(Role::kCi, method(rpc))) << rpc;
  }
  for (const char* rpc : {"Exec", "Reap", "SetPinned", "ListImages", "BuildImage", "DeleteImage",
                          "CreateToken", "ListTokens", "RevokeToken"}) {
    EXPECT_FALSE(mayCall(Role::kCi, method(rpc))) << rpc;
  }
  for (const char* rpc : {"Reap", "ListEnvironments", "GetHostStatus", "ListEvents"}) {
    EXPECT_TRUE(mayCall(Role::kReaper, method(rpc))) << rpc;
  }
  for (const char* rpc : {"Deploy", "GetEnvironment", "DeleteEnvironment", "StreamLogs", "Exec",
                          "SetPinned", "SleepEnvironment", "BuildImage", "CreateToken"}) {
    EXPECT_FALSE(mayCall(Role::kReaper, method(rpc))) << rpc;
  }
  for (const auto& a : kRpcAccess) EXPECT_TRUE(mayCall(Role::kOps, method(a.rpc))) << a.rpc;
}

TEST(RoleTable, UnknownMethodsAreForEveryoneForbiddenAndProbesAreOpen) {
  EXPECT_FALSE(mayCall(Role::kOps, "/qabox.v1.Qabox/Shutdown"));
  EXPECT_FALSE(mayCall(Role::kOps, "/other.Service/Deploy"));
  EXPECT_FALSE(mayCall(Role::kOps, "Deploy"));
  EXPECT_TRUE(isOpenMethod("/grpc.health.v1.Health/Check"));
  EXPECT_TRUE(isOpenMethod("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"));
  EXPECT_TRUE(isOpenMethod("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"));
  EXPECT_FALSE(isOpenMethod("/qabox.v1.Qabox/GetHostStatus"));
  EXPECT_FALSE(isOpenMethod("/grpc.health.v1.HealthX/Check"));
}

TEST(Roles, ParseAndName) {
  for (Role r : {Role::kCi, Role::kReaper, Role::kOps}) EXPECT_EQ(parseRole(roleName(r)), r);
  EXPECT_FALSE(parseRole("admin"));
  EXPECT_FALSE(parseRole("OPS"));
  EXPECT_FALSE(parseRole(""));
}

TEST(TokenSecret, HashIsSha256Hex) {
  // FIPS 180-2's test vector.
  EXPECT_EQ(hashTokenSecret("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(hashTokenSecret("").size(), 64u);
}

TEST(TokenSecret, SecretsAreLongRandomAndDistinct) {
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    auto s = newTokenSecret();
    ASSERT_TRUE(s.isOk());
    ASSERT_EQ(s->size(), 4u + 64u) << *s;
    EXPECT_EQ(s->substr(0, 4), "qbx_");
    EXPECT_EQ(s->find_first_not_of("0123456789abcdef", 4), std::string::npos) << *s;
    EXPECT_TRUE(seen.insert(*s).second);
  }
}

TEST(TokenSecret, BearerParsing) {
  EXPECT_EQ(bearerSecret("Bearer qbx_1"), "qbx_1");
  EXPECT_EQ(bearerSecret("bearer  qbx_1 "), "qbx_1");
  EXPECT_FALSE(bearerSecret("Basic qbx_1"));
  EXPECT_FALSE(bearerSecret("Bearer "));
  EXPECT_FALSE(bearerSecret("qbx_1"));
  EXPECT_FALSE(bearerSecret(""));
}

TEST(TokenName, Rules) {
  EXPECT_TRUE(checkTokenName("jenkins").isOk());
  EXPECT_TRUE(checkTokenName("ci.shop_2-b").isOk());
  EXPECT_FALSE(checkTokenName("").isOk());
  EXPECT_FALSE(checkTokenName("-x").isOk());
  EXPECT_FALSE(checkTokenName("a b").isOk());
  EXPECT_FALSE(checkTokenName("a/b").isOk());
  EXPECT_FALSE(checkTokenName(std::string(65, 'a')).isOk());
  EXPECT_THAT(checkTokenName("a b").message(), HasSubstr("token name \"a b\""));
}

TEST(LocalPeers, FindsOnlyFdPeersItWasTold) {
  LocalPeers peers;
  peers.add(7, PeerCred{1, 1000, 1000, {}});
  auto p = peers.find("fd:7");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->uid, 1000u);
  EXPECT_FALSE(peers.find("fd:8"));
  EXPECT_FALSE(peers.find("ipv4:127.0.0.1:7"));
  EXPECT_FALSE(peers.find("fd:"));
  EXPECT_FALSE(peers.find("fd:7x"));
  peers.add(7, PeerCred{2, 0, 0, {}});  // the descriptor was reused
  EXPECT_EQ(peers.find("fd:7")->uid, 0u);
}

class AuthorizerTest : public ::testing::Test {
 protected:
  static constexpr gid_t kGroup = 4242;

  void SetUp() override {
    auto s = openSqliteStore(dir_.path() + "/qabox.db");
    ASSERT_TRUE(s.isOk()) << s.status().toString();
    store_ = std::move(s).value();
    auth_ = std::make_unique<Authorizer>(*store_, peers_, kGroup, [this] { return now_; });
  }

  // Creates a token and returns its secret.
  std::string token(const std::string& name, const std::string& role,
                    std::optional<TimePoint> expires = std::nullopt) {
    return test::putToken(*store_, name, role, now_, expires);
  }

  AuthDecision tcp(std::string_view rpc, std::optional<std::string> authorization) {
    return auth_->decide(
        method(rpc), "ipv4:10.0.0.9:40000",
        authorization ? std::optional<std::string_view>(*authorization) : std::nullopt);
  }

  std::vector<Event> events() {
    auto e = store_->listEvents("", 0);
    EXPECT_TRUE(e.isOk());
    return e.isOk() ? *e : std::vector<Event>{};
  }

  test::TempDir dir_;
  std::unique_ptr<Store> store_;
  LocalPeers peers_;
  TimePoint now_ = fromUnixMillis(1'700'000'000'000);
  std::unique_ptr<Authorizer> auth_;
};

// The peer listener: a certified peer speaks for the caller it forwards,
// whose role is checked here again; an uncertified one, or one that does
// not say who it forwards, is refused and recorded.
TEST_F(AuthorizerTest, APeerActsForTheCallerItForwardsAndNothingMore) {
  const std::string peer = "ipv4:10.9.0.2:41000";
  auto ok = auth_->decidePeer(method("Deploy"), peer, true, "qa-b", "token:jenkins", "ci");
  ASSERT_TRUE(ok.status.isOk()) << ok.status.toString();
  EXPECT_EQ(ok.caller.name, "token:jenkins");
  EXPECT_EQ(ok.caller.role, Role::kCi);
  EXPECT_EQ(ok.caller.via, "qa-b");

  auto denied = auth_->decidePeer(method("Exec"), peer, true, "qa-b", "token:jenkins", "ci");
  EXPECT_EQ(denied.status.code(), Code::kPermissionDenied);
  EXPECT_THAT(denied.status.message(), HasSubstr("ci token:jenkins may not call Exec"));

  for (auto [certified, via, name, role] :
       {std::tuple{false, "qa-b", "token:jenkins", "ci"}, std::tuple{true, "", "token:x", "ci"},
        std::tuple{true, "QA_B", "token:x", "ci"}, std::tuple{true, "qa-b", "", "ci"},
        std::tuple{true, "qa-b", "token:x", "root"},
        std::tuple{true, "qa-b", "token:x\nops", "ci"}}) {
    auto d = auth_->decidePeer(method("ListEnvironments"), peer, certified, via, name, role);
    EXPECT_EQ(d.status.code(), Code::kUnauthenticated) << certified << via << name << role;
  }
  auto e = events();
  EXPECT_TRUE(std::any_of(e.begin(), e.end(), [&](const Event& ev) {
    return ev.outcome == "unauthenticated" && ev.actor == "peer " + peer;
  }));
}

TEST_F(AuthorizerTest, NoTokenIsUnauthenticatedAndRecorded) {
  auto d = tcp("ListEnvironments", std::nullopt);
  EXPECT_EQ(d.status.code(), Code::kUnauthenticated);
  EXPECT_THAT(d.status.message(), HasSubstr("authorization: Bearer"));
  auto e = events();
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].action, "auth");
  EXPECT_EQ(e[0].outcome, "unauthenticated");
  EXPECT_EQ(e[0].actor, "ipv4:10.0.0.9:40000");
  EXPECT_THAT(e[0].detail, HasSubstr("ListEnvironments"));
}

// Issue 12, item 6: every refused call used to be one row in the events
// table, forever; a client in a loop filled the disk.
TEST_F(AuthorizerTest, FloodOfUnauthenticatedCallsLeavesABoundedNumberOfRows) {
  for (int i = 0; i < 10'000; ++i) {
    std::string peer = "ipv4:10.0.0.9:" + std::to_string(1024 + i % 60000);
    auto d = auth_->decide(method("ListEnvironments"), peer, std::nullopt);
    ASSERT_EQ(d.status.code(), Code::kUnauthenticated);  // refused every time, recorded or not
  }
  uint64_t rows = *store_->countEvents();
  EXPECT_GE(rows, 1u);
  EXPECT_LE(rows, 10u) << "one peer's burst";

  // A minute later the next refusal is recorded, after one summary of the rest.
  now_ += std::chrono::minutes(1);
  auto d = auth_->decide(method("Deploy"), "ipv4:10.0.0.9:50000", std::nullopt);
  EXPECT_EQ(d.status.code(), Code::kUnauthenticated);
  auto e = events();
  ASSERT_EQ(e.size(), rows + 2);
  EXPECT_EQ(e[0].outcome, "unauthenticated");
  EXPECT_THAT(e[0].detail, HasSubstr("Deploy"));
  EXPECT_EQ(e[1].outcome, "suppressed");
  EXPECT_EQ(e[1].actor, "ipv4:10.0.0.9");
  EXPECT_THAT(e[1].detail,
              HasSubstr(std::to_string(10'000 - rows) + " more refused calls from ipv4:10.0.0.9"));
}

TEST_F(AuthorizerTest, FloodFromManyPeersIsBoundedToo) {
  for (int i = 0; i < 10'000; ++i) {
    std::string peer = "ipv6:[fd00::" + std::to_string(i) + "]:443";
    (void)auth_->decide(method("ListEnvironments"), peer, std::nullopt);
    if (i % 1000 == 999) now_ += std::chrono::milliseconds(100);
  }
  EXPECT_LE(*store_->countEvents(), 102u) << "all peers share one bucket as well";
}

TEST_F(AuthorizerTest, DeniedCallsOfAValidTokenAreRateLimitedPerPeer) {
  std::string ci = token("jenkins", "ci");
  for (int i = 0; i < 500; ++i) {
    EXPECT_EQ(tcp("Exec", "Bearer " + ci).status.code(), Code::kPermissionDenied);
  }
  EXPECT_LE(*store_->countEvents(), 10u);
  // Another peer still gets its own refusals recorded.
  auto d = auth_->decide(method("Exec"), "ipv4:10.0.0.10:1", "Bearer " + ci);
  EXPECT_EQ(d.status.code(), Code::kPermissionDenied);
  EXPECT_EQ(events().at(0).actor, "token:jenkins");
  EXPECT_EQ(events().at(0).outcome, "permission_denied");
}

TEST(DenialLimiter, PeerKeyDropsThePortOnly) {
  EXPECT_EQ(DenialLimiter::peerKey("ipv4:10.0.0.9:40000"), "ipv4:10.0.0.9");
  EXPECT_EQ(DenialLimiter::peerKey("ipv6:[fd00::1]:443"), "ipv6:[fd00::1]");
  EXPECT_EQ(DenialLimiter::peerKey("fd:12"), "fd:12");
  EXPECT_EQ(DenialLimiter::peerKey("uid:1000"), "uid:1000");
  EXPECT_EQ(DenialLimiter::peerKey(std::string(1000, 'x')).size(), 200u);
}

TEST(DenialLimiter, RefillsOverTimeAndTracksABoundedNumberOfPeers) {
  DenialLimiter::Options o;
  o.perPeerBurst = 2;
  o.perPeerRefill = std::chrono::seconds(10);
  o.globalBurst = 1000;
  o.maxPeers = 4;
  DenialLimiter l(o);
  TimePoint t = fromUnixMillis(1'000'000);
  EXPECT_TRUE(l.admit("a", t).record);
  EXPECT_TRUE(l.admit("a", t).record);
  EXPECT_FALSE(l.admit("a", t).record);
  EXPECT_FALSE(l.admit("a", t).record);
  auto later = l.admit("a", t + std::chrono::seconds(10));
  EXPECT_TRUE(later.record);
  EXPECT_EQ(later.suppressed, 2u);
  EXPECT_EQ(later.since, t);
  // Beyond maxPeers, new peers share one bucket: 2 more records in all.
  int recorded = 0;
  for (int i = 0; i < 100; ++i) recorded += l.admit("p" + std::to_string(i), t).record;
  EXPECT_LE(recorded, 3 * 2 + 2);
}

TEST_F(AuthorizerTest, UnknownOrMalformedTokenIsUnauthenticated) {
  token("jenkins", "ci");
  EXPECT_EQ(tcp("Deploy", "Bearer qbx_nope").status.code(), Code::kUnauthenticated);
  EXPECT_EQ(tcp("Deploy", "Basic abc").status.code(), Code::kUnauthenticated);
  EXPECT_EQ(events().size(), 2u);
}

TEST_F(AuthorizerTest, ValidTokenActsWithItsRole) {
  std::string ci = token("jenkins", "ci");
  auto d = tcp("Deploy", "Bearer " + ci);
  EXPECT_TRUE(d.status.isOk()) << d.status.toString();
  EXPECT_EQ(d.caller.name, "token:jenkins");
  EXPECT_EQ(d.caller.role, Role::kCi);
  EXPECT_TRUE(events().empty()) << "only denials are recorded here";

  auto denied = tcp("Exec", "Bearer " + ci);
  EXPECT_EQ(denied.status.code(), Code::kPermissionDenied);
  EXPECT_THAT(denied.status.message(), HasSubstr("may not call Exec"));
  auto e = events();
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].outcome, "permission_denied");
  EXPECT_EQ(e[0].actor, "token:jenkins");
  EXPECT_THAT(e[0].detail, HasSubstr("Exec"));

  std::string reaper = token("cron", "reaper");
  EXPECT_TRUE(tcp("Reap", "Bearer " + reaper).status.isOk());
  EXPECT_EQ(tcp("DeleteEnvironment", "Bearer " + reaper).status.code(), Code::kPermissionDenied);
  std::string ops = token("alice", "ops");
  EXPECT_TRUE(tcp("Exec", "Bearer " + ops).status.isOk());
  EXPECT_TRUE(tcp("CreateToken", "Bearer " + ops).status.isOk());
}

TEST_F(AuthorizerTest, ExpiredTokenIsUnauthenticated) {
  std::string s = token("short", "ops", now_ + std::chrono::hours(1));
  EXPECT_TRUE(tcp("ListTokens", "Bearer " + s).status.isOk());
  now_ += std::chrono::hours(1);
  auto d = tcp("ListTokens", "Bearer " + s);
  EXPECT_EQ(d.status.code(), Code::kUnauthenticated);
  EXPECT_THAT(d.status.message(), HasSubstr("token short has expired"));
  EXPECT_EQ(events().at(0).actor, "token:short");
}

TEST_F(AuthorizerTest, RevokedTokenIsUnauthenticated) {
  std::string s = token("gone", "ops");
  ASSERT_TRUE(store_->revokeToken("gone", now_).isOk());
  auto d = tcp("GetHostStatus", "Bearer " + s);
  EXPECT_EQ(d.status.code(), Code::kUnauthenticated);
  EXPECT_THAT(d.status.message(), HasSubstr("token gone is revoked"));
}

TEST_F(AuthorizerTest, UseIsRecordedAtMostOnceAMinute) {
  std::string s = token("jenkins", "ci");
  ASSERT_TRUE(tcp("ListEnvironments", "Bearer " + s).status.isOk());
  EXPECT_EQ((*store_->getToken("jenkins"))->lastUsedAt, now_);
  TimePoint first = now_;
  now_ += std::chrono::seconds(30);
  ASSERT_TRUE(tcp("ListEnvironments", "Bearer " + s).status.isOk());
  EXPECT_EQ((*store_->getToken("jenkins"))->lastUsedAt, first);
  now_ += std::chrono::seconds(31);
  ASSERT_TRUE(tcp("ListEnvironments", "Bearer " + s).status.isOk());
  EXPECT_EQ((*store_->getToken("jenkins"))->lastUsedAt, now_);
}

TEST_F(AuthorizerTest, UnixPeersActAsOpsWhenRootOrInTheGroup) {
  peers_.add(10, PeerCred{100, 0, 0, {}});
  peers_.add(11, PeerCred{101, 1000, kGroup, {}});
  peers_.add(12, PeerCred{102, 1001, 1001, {27, kGroup}});
  peers_.add(13, PeerCred{103, 1002, 1002, {27}});
  for (const char* peer : {"fd:10", "fd:11", "fd:12"}) {
    auto d = auth_->decide(method("Exec"), peer, std::nullopt);
    EXPECT_TRUE(d.status.isOk()) << peer << ": " << d.status.toString();
    EXPECT_EQ(d.caller.role, Role::kOps);
  }
  EXPECT_EQ(auth_->decide(method("Exec"), "fd:10", std::nullopt).caller.name, "uid:0");
  EXPECT_EQ(auth_->decide(method("Exec"), "fd:12", std::nullopt).caller.name, "uid:1001");

  auto other = auth_->decide(method("ListEnvironments"), "fd:13", std::nullopt);
  EXPECT_EQ(other.status.code(), Code::kUnauthenticated);
  EXPECT_THAT(other.status.message(), HasSubstr("uid 1002"));
  EXPECT_EQ(events().at(0).actor, "uid:1002");
  // A token still identifies it.
  std::string s = token("jenkins", "ci");
  auto withToken = auth_->decide(method("ListEnvironments"), "fd:13", "Bearer " + s);
  EXPECT_TRUE(withToken.status.isOk());
  EXPECT_EQ(withToken.caller.name, "token:jenkins");
}

TEST_F(AuthorizerTest, NoSocketGroupMeansRootOnly) {
  Authorizer rootOnly(*store_, peers_, std::nullopt, [this] { return now_; });
  peers_.add(10, PeerCred{100, 0, 0, {}});
  peers_.add(11, PeerCred{101, 1000, kGroup, {kGroup}});
  EXPECT_TRUE(rootOnly.decide(method("Exec"), "fd:10", std::nullopt).status.isOk());
  EXPECT_EQ(rootOnly.decide(method("Exec"), "fd:11", std::nullopt).status.code(),
            Code::kUnauthenticated);
}

TEST_F(AuthorizerTest, ReflectionAndHealthAreOpen) {
  EXPECT_TRUE(
      auth_->decide("/grpc.health.v1.Health/Check", "ipv4:1.2.3.4:5", std::nullopt).status.isOk());
  EXPECT_TRUE(auth_
                  ->decide("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                           "ipv4:1.2.3.4:5", std::nullopt)
                  .status.isOk());
  EXPECT_TRUE(events().empty());
}

TEST_F(AuthorizerTest, CallsTheInterceptorNeverSawAreRefused) {
  int call = 0, other = 0;
  auto unseen = auth_->callerOf(&call);
  EXPECT_EQ(unseen.status().code(), Code::kUnauthenticated);

  std::string s = token("jenkins", "ci");
  auth_->remember(&call, tcp("Deploy", "Bearer " + s));
  auth_->remember(&other, tcp("Exec", "Bearer " + s));
  auto caller = auth_->callerOf(&call);
  ASSERT_TRUE(caller.isOk());
  EXPECT_EQ(caller->name, "token:jenkins");
  EXPECT_EQ(auth_->callerOf(&other).status().code(), Code::kPermissionDenied);
  auth_->forget(&call);
  EXPECT_EQ(auth_->callerOf(&call).status().code(), Code::kUnauthenticated);
}

}  // namespace
}  // namespace qabox
