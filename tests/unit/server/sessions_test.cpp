// Signed sessions, the token directory and the preview gate, played by an
// attacker: forged, tossed, replayed, expired and revoked values, against a
// real SQLite store.
#include "server/sessions.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

#include "core/cookie.h"
#include "server/preview_gate.h"
#include "unit/server/tokens.h"
#include "unit/store/temp_dir.h"

namespace qabox {
namespace {

using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using Kind = AccessAnswer::Kind;

SessionKey keyOf(unsigned char fill) {
  SessionKey k;
  k.fill(fill);
  return k;
}

TEST(SessionKeyFile, IsMadeOnceThenReadBack) {
  test::TempDir dir;
  std::string path = dir.path() + "/session.key";
  auto a = loadOrCreateSessionKey(path);
  ASSERT_TRUE(a.isOk()) << a.status().toString();
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto b = loadOrCreateSessionKey(path);
  ASSERT_TRUE(b.isOk());
  EXPECT_EQ(*a, *b);
}

TEST(SessionKeyFile, RefusesALinkAShortFileAndAReadableOne) {
  test::TempDir dir;
  std::string target = dir.path() + "/elsewhere";
  std::ofstream(target) << std::string(32, 'k');
  ::chmod(target.c_str(), 0600);
  std::string link = dir.path() + "/link.key";
  ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0);
  EXPECT_FALSE(loadOrCreateSessionKey(link).isOk());

  std::string shortKey = dir.path() + "/short.key";
  std::ofstream(shortKey) << "abc";
  ::chmod(shortKey.c_str(), 0600);
  EXPECT_THAT(loadOrCreateSessionKey(shortKey).status().message(), HasSubstr("32 bytes"));

  std::string open = dir.path() + "/open.key";
  std::ofstream(open) << std::string(32, 'k');
  ::chmod(open.c_str(), 0644);
  EXPECT_THAT(loadOrCreateSessionKey(open).status().message(), HasSubstr("readable by others"));
}

class SessionCodecTest : public ::testing::Test {
 protected:
  TimePoint now_ = fromUnixMillis(1'800'000'000'000);
  SessionCodec codec_{keyOf(7)};
  SessionClaims claims_ =
      SessionCodec::make(SessionKind::kSession, "alice", "qabox", now_, seconds(3600));
};

TEST_F(SessionCodecTest, RoundTrips) {
  auto opened = codec_.open(codec_.seal(claims_), SessionKind::kSession, "QABOX", now_);
  ASSERT_TRUE(opened);
  EXPECT_EQ(opened->token, "alice");
  EXPECT_EQ(opened->nonce, claims_.nonce);
  EXPECT_EQ(opened->nonce.size(), 32u);
  EXPECT_EQ(opened->expiresAt, now_ + seconds(3600));
}

TEST_F(SessionCodecTest, RefusesAnotherKindHostKeyOrAnExpiredOne) {
  std::string sealed = codec_.seal(claims_);
  EXPECT_FALSE(codec_.open(sealed, SessionKind::kPreview, "qabox", now_));
  EXPECT_FALSE(codec_.open(sealed, SessionKind::kGrant, "qabox", now_));
  EXPECT_FALSE(codec_.open(sealed, SessionKind::kSession, "exmp-113", now_));
  EXPECT_FALSE(codec_.open(sealed, SessionKind::kSession, "qabox", now_ + seconds(3600)));
  SessionCodec other(keyOf(8));
  EXPECT_FALSE(other.open(sealed, SessionKind::kSession, "qabox", now_));
}

TEST_F(SessionCodecTest, RefusesEveryForgery) {
  std::string sealed = codec_.seal(claims_);
  size_t dot = sealed.find('.');
  // A payload rewritten to another token, with the old MAC.
  SessionClaims bob = claims_;
  bob.token = "bob";
  std::string forged = codec_.seal(bob).substr(0, codec_.seal(bob).find('.')) + sealed.substr(dot);
  EXPECT_FALSE(codec_.open(forged, SessionKind::kSession, "qabox", now_));
  for (std::string bad :
       {std::string(), std::string("."), sealed.substr(0, dot), sealed.substr(0, dot + 1),
        sealed + "x", sealed.substr(0, sealed.size() - 1), std::string(5000, 'a') + sealed,
        std::string("!!!!.") + sealed.substr(dot + 1), sealed.substr(dot)}) {
    EXPECT_FALSE(codec_.open(bad, SessionKind::kSession, "qabox", now_)) << bad;
  }
  // One flipped bit anywhere.
  for (size_t i = 0; i < sealed.size(); ++i) {
    std::string flipped = sealed;
    flipped[i] = flipped[i] == 'A' ? 'B' : 'A';
    if (flipped == sealed) continue;
    EXPECT_FALSE(codec_.open(flipped, SessionKind::kSession, "qabox", now_)) << i;
  }
}

TEST_F(SessionCodecTest, CsrfTokensAreTheSessionsOwn) {
  std::string csrf = codec_.csrfToken(claims_);
  EXPECT_TRUE(codec_.csrfValid(claims_, csrf));
  EXPECT_FALSE(codec_.csrfValid(claims_, ""));
  EXPECT_FALSE(codec_.csrfValid(claims_, csrf.substr(1)));
  auto other = SessionCodec::make(SessionKind::kSession, "alice", "qabox", now_, seconds(60));
  EXPECT_FALSE(codec_.csrfValid(other, csrf));
}

class GateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = openSqliteStore(dir_.path() + "/qabox.db");
    ASSERT_TRUE(s.isOk()) << s.status().toString();
    store_ = std::move(s).value();
    qaSecret_ = test::putToken(*store_, "alice", "qa", now_);
    reaperSecret_ = test::putToken(*store_, "cron", "reaper", now_);
    tokens_ = std::make_unique<TokenDirectory>(*store_);
    ASSERT_TRUE(tokens_->reload().isOk());
    PreviewGateOptions o;
    o.allow = parseAllowlist({"192.0.2.0/24"});
    o.cookieTtl = hours(12);
    gate_ = std::make_unique<PreviewGate>(o, codec_, *tokens_, [this] { return now_; });
  }

  AccessAnswer ask(std::string_view target, std::string cookie = {}, std::string auth = {},
                   std::string_view method = "GET", uint32_t ip = 0x7f000001) {
    cookie_ = std::move(cookie);
    auth_ = std::move(auth);
    AccessRequest q;
    q.slug = "exmp-113";
    q.host = "exmp-113.qa.test:8080";
    q.method = method;
    q.target = target;
    q.cookie = cookie_;
    q.authorization = auth_;
    q.peerIpv4 = ip;
    return gate_->decide(q);
  }

  std::string grantFor(const std::string& token, const std::string& host) {
    return codec_.seal(
        SessionCodec::make(SessionKind::kGrant, token, host, now_, PreviewGate::kGrantTtl));
  }

  // Redeems a grant and returns the preview cookie's "name=value".
  std::string previewCookie() {
    auto a =
        ask("/.qabox/auth?grant=" + grantFor("alice", "exmp-113") + "&next=%2Forders%3Fid%3D3");
    EXPECT_EQ(a.kind, Kind::kRedirect) << a.message;
    EXPECT_EQ(a.location, "/orders?id=3");
    return a.setCookie.substr(0, a.setCookie.find(';'));
  }

  test::TempDir dir_;
  std::unique_ptr<Store> store_;
  TimePoint now_ = fromUnixMillis(1'800'000'000'000);
  SessionCodec codec_{keyOf(3)};
  std::unique_ptr<TokenDirectory> tokens_;
  std::unique_ptr<PreviewGate> gate_;
  std::string qaSecret_, reaperSecret_, cookie_, auth_;
};

TEST_F(GateTest, WithoutASessionABrowserIsSentToSignIn) {
  auto a = ask("/orders?id=3");
  ASSERT_EQ(a.kind, Kind::kRedirect);
  EXPECT_EQ(
      a.location,
      "http://qabox.qa.test:8080/auth/preview?to=http%3A%2F%2Fexmp-113.qa.test%3A8080%2Forders"
      "%3Fid%3D3");
  EXPECT_TRUE(a.setCookie.empty());
  EXPECT_EQ(ask("/", "", "", "POST").kind, Kind::kRefuse);
}

TEST_F(GateTest, AGrantBecomesTheHostsOwnCookieOnce) {
  std::string grant = grantFor("alice", "exmp-113");
  auto a = ask("/.qabox/auth?grant=" + grant + "&next=%2F");
  ASSERT_EQ(a.kind, Kind::kRedirect) << a.message;
  EXPECT_THAT(a.setCookie, StartsWith("qabox_preview="));
  EXPECT_THAT(a.setCookie, HasSubstr("HttpOnly"));
  EXPECT_THAT(a.setCookie, HasSubstr("Max-Age=43200"));
  // Replayed (it leaked into a log or a history): refused.
  EXPECT_EQ(ask("/.qabox/auth?grant=" + grant + "&next=%2F").kind, Kind::kRefuse);
  std::string cookie = a.setCookie.substr(0, a.setCookie.find(';'));
  EXPECT_EQ(ask("/anything", "theme=dark; " + cookie).kind, Kind::kAllow);
}

TEST_F(GateTest, RefusesGrantsForAnotherHostExpiredOrWithAForeignNext) {
  EXPECT_EQ(ask("/.qabox/auth?grant=" + grantFor("alice", "exmp-114") + "&next=%2F").kind,
            Kind::kRefuse);
  std::string g = grantFor("alice", "exmp-113");
  now_ += seconds(61);
  EXPECT_EQ(ask("/.qabox/auth?grant=" + g + "&next=%2F").kind, Kind::kRefuse);
  for (std::string next : {"%2F%2Fevil.example%2F", "https%3A%2F%2Fevil.example", "%2F%5Cevil",
                           "%2F%0d%0aSet-Cookie%3A%20x%3D1", ""}) {
    EXPECT_EQ(ask("/.qabox/auth?grant=" + grantFor("alice", "exmp-113") + "&next=" + next).kind,
              Kind::kRefuse)
        << next;
  }
  EXPECT_EQ(ask("/.qabox/auth?next=%2F").kind, Kind::kRefuse);
  // A session or a preview cookie is not a grant.
  auto session = codec_.seal(
      SessionCodec::make(SessionKind::kSession, "alice", "exmp-113", now_, seconds(60)));
  EXPECT_EQ(ask("/.qabox/auth?grant=" + session + "&next=%2F").kind, Kind::kRefuse);
}

TEST_F(GateTest, ForgedTossedOrForeignCookiesDoNotOpenIt) {
  std::string good = previewCookie();
  // A cookie an app under the domain tossed beside ours: two values, refused.
  std::string tossed =
      "qabox_preview=" + codec_.seal(SessionCodec::make(SessionKind::kPreview, "alice", "exmp-113",
                                                        now_, seconds(60)));
  EXPECT_NE(ask("/", good + "; " + tossed).kind, Kind::kAllow);
  // Signed for another preview, or as the dashboard's session.
  auto other = codec_.seal(
      SessionCodec::make(SessionKind::kPreview, "alice", "exmp-114", now_, seconds(60)));
  EXPECT_NE(ask("/", "qabox_preview=" + other).kind, Kind::kAllow);
  auto session =
      codec_.seal(SessionCodec::make(SessionKind::kSession, "alice", "qabox", now_, seconds(60)));
  EXPECT_NE(ask("/", "qabox_preview=" + session).kind, Kind::kAllow);
  EXPECT_NE(ask("/", "qabox_session=" + session).kind, Kind::kAllow);
  // Made with another key.
  SessionCodec mallory(keyOf(9));
  auto forged = mallory.seal(
      SessionCodec::make(SessionKind::kPreview, "alice", "exmp-113", now_, seconds(60)));
  EXPECT_NE(ask("/", "qabox_preview=" + forged).kind, Kind::kAllow);
  // Over TLS only the __Host- cookie counts.
  EXPECT_EQ(ask("/", good).kind, Kind::kAllow);
}

TEST_F(GateTest, RevokingTheTokenClosesThePreviewAtOnce) {
  std::string cookie = previewCookie();
  EXPECT_EQ(ask("/", cookie).kind, Kind::kAllow);
  EXPECT_EQ(ask("/", "", "Bearer " + qaSecret_).kind, Kind::kAllow);
  ASSERT_TRUE(store_->revokeToken("alice", now_).isOk());
  ASSERT_TRUE(tokens_->reload().isOk());
  EXPECT_NE(ask("/", cookie).kind, Kind::kAllow);
  EXPECT_EQ(ask("/", "", "Bearer " + qaSecret_).kind, Kind::kRefuse);
}

TEST_F(GateTest, BearerTokensOfRolesThatReadOnly) {
  EXPECT_EQ(ask("/api", "", "Bearer " + qaSecret_, "POST").kind, Kind::kAllow);
  EXPECT_EQ(ask("/api", "", "Bearer " + reaperSecret_).kind, Kind::kRefuse);
  EXPECT_EQ(ask("/api", "", "Bearer qbx_" + std::string(64, '0')).kind, Kind::kRefuse);
  // The app's own Authorization is not qabox's business: the browser is
  // still sent to sign in.
  EXPECT_EQ(ask("/", "", "Basic YWxhZGRpbjpvcGVuc2VzYW1l").kind, Kind::kRedirect);
}

TEST_F(GateTest, AnAllowedNetworkNeedsNoLogin) {
  EXPECT_EQ(ask("/", "", "", "POST", 0xc0000217).kind, Kind::kAllow);   // 192.0.2.23
  EXPECT_EQ(ask("/", "", "", "POST", 0xc0000317).kind, Kind::kRefuse);  // 192.0.3.23
  EXPECT_EQ(ask("/", "", "", "POST", 0).kind, Kind::kRefuse);           // IPv6
}

TEST_F(GateTest, ExpiringTokensCapThePreviewCookie) {
  test::putToken(*store_, "bob", "viewer", now_, now_ + minutes(30));
  ASSERT_TRUE(tokens_->reload().isOk());
  auto a = ask("/.qabox/auth?grant=" + grantFor("bob", "exmp-113") + "&next=%2F");
  ASSERT_EQ(a.kind, Kind::kRedirect) << a.message;
  EXPECT_THAT(a.setCookie, HasSubstr("Max-Age=1800"));
  std::string cookie = a.setCookie.substr(0, a.setCookie.find(';'));
  now_ += minutes(31);
  EXPECT_NE(ask("/", cookie).kind, Kind::kAllow);
}

}  // namespace
}  // namespace qabox
