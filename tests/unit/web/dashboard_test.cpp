// The dashboard's rules, request by request: sign-in, sessions, CSRF and
// origin checks, roles from kRpcAccess, revocation, the preview grant.
#include <gtest/gtest.h>

#include "unit/web/dashboard_fixture.h"
#include "web/html.h"

namespace qabox::web {
namespace {

using testing::csrfOf;

class DashboardTest : public ::testing::Test, public testing::DashboardFixture {
 protected:
  void SetUp() override {
    ASSERT_TRUE(deploy("EXMP-1").isOk());
    qa_ = token("alice", "qa");
    ops_ = token("olga", "ops");
    viewer_ = token("vic", "viewer");
  }
  std::string body(const Reply& r) { return r.res.body(); }
  int status(const Reply& r) { return static_cast<int>(r.res.result_int()); }
  std::string location(const Reply& r) { return std::string(r.res[http::field::location]); }

  std::string qa_, ops_, viewer_;
};

TEST_F(DashboardTest, SignedOutGoesToTheLoginAndBack) {
  Reply r = get("/env/EXMP-1?x=1");
  EXPECT_EQ(status(r), 303);
  EXPECT_EQ(location(r), "/login?next=%2Fenv%2FEXMP-1%3Fx%3D1");
  EXPECT_EQ(status(get("/fragment/rows")), 401);
  EXPECT_EQ(status(get("/events")), 401);
  EXPECT_EQ(status(get("/login")), 200);
  EXPECT_EQ(status(get("/assets/app.css")), 200);
}

TEST_F(DashboardTest, AssetPathsAreExactNamesNeverFiles) {
  std::string cookie = signIn(viewer_);
  for (const char* path :
       {"/assets/../../etc/passwd", "/assets/app.css/../../x", "/assets/%2e%2e/x",
        "/assets/app.css%00", "/assets/", "/env/..%2F..%2Fetc/log",
        "/env/EXMP-1/log?which=app&process=..%2F..%2Fetc%2Fshadow"}) {
    Reply r = get(path, cookie);
    EXPECT_TRUE(status(r) == 404 || status(r) == 400) << path << " " << status(r);
    EXPECT_EQ(body(r).find("root:"), std::string::npos) << path;
  }
}

TEST_F(DashboardTest, OnlyTheDashboardsHostIsServed) {
  Request req = request(http::verb::get, "/login");
  req.set("X-Forwarded-Host", "exmp-1.qa.test");
  EXPECT_EQ(static_cast<int>(dashboard_->handle(req).res.result_int()), 421);
}

TEST_F(DashboardTest, ASignInMakesANewHttpOnlySessionAndNeverReusesOne) {
  Reply bad = post("/login", "", "token=qbx_" + std::string(64, '0'));
  EXPECT_EQ(status(bad), 401);
  EXPECT_NE(body(bad).find("not valid"), std::string::npos);
  Reply r = dashboard_->handle(request(http::verb::post, "/login", "qabox_session=planted",
                                       "token=" + qa_ + "&next=%2Fhost"));
  EXPECT_EQ(status(r), 303);
  EXPECT_EQ(location(r), "/host");
  std::string set(r.res[http::field::set_cookie]);
  EXPECT_EQ(set.rfind("qabox_session=", 0), 0u) << set;
  EXPECT_NE(set.find("HttpOnly"), std::string::npos);
  EXPECT_NE(set.find("SameSite=Lax"), std::string::npos);
  EXPECT_EQ(set.find("planted"), std::string::npos);
  EXPECT_EQ(set.find(qa_), std::string::npos);  // never the token itself
  // Over TLS: the __Host- name, Secure.
  Reply tls =
      dashboard_->handle(request(http::verb::post, "/login", "", "token=" + qa_, /*tls=*/true));
  std::string tset(tls.res[http::field::set_cookie]);
  EXPECT_EQ(tset.rfind("__Host-qabox_session=", 0), 0u) << tset;
  EXPECT_NE(tset.find("Secure"), std::string::npos);
  // A next that is another host is not followed.
  Reply off = post("/login", "", "token=" + qa_ + "&next=%2F%2Fevil.example");
  EXPECT_EQ(location(off), "/");
}

TEST_F(DashboardTest, TheListShowsEveryEnvironmentEscaped) {
  std::string cookie = signIn(viewer_);
  Reply r = get("/", cookie);
  EXPECT_EQ(status(r), 200);
  EXPECT_NE(body(r).find("EXMP-1"), std::string::npos);
  EXPECT_NE(body(r).find("READY"), std::string::npos);
  EXPECT_NE(body(r).find("http://exmp-1.qa.test"), std::string::npos);
  EXPECT_EQ(body(get("/?state=FAILED", cookie)).find("data-ticket=\"EXMP-1\""), std::string::npos);
}

TEST_F(DashboardTest, ActionsNeedTheRoleCsrfAndTheDashboardsOrigin) {
  std::string cookie = signIn(qa_);
  std::string page = body(get("/env/EXMP-1", cookie));
  std::string csrf = csrfOf(page);
  ASSERT_FALSE(csrf.empty());
  EXPECT_EQ(page.find("/delete"), std::string::npos);  // qa may not delete
  // No CSRF token, a wrong one, another origin: refused, nothing done.
  EXPECT_EQ(status(post("/env/EXMP-1/pin", cookie, "")), 403);
  EXPECT_EQ(status(post("/env/EXMP-1/pin", cookie, "csrf=x" + csrf)), 403);
  Request evil = request(http::verb::post, "/env/EXMP-1/pin", cookie, "csrf=" + urlEncode(csrf));
  evil.set(http::field::origin, "http://evil.example");
  EXPECT_EQ(static_cast<int>(dashboard_->handle(evil).res.result_int()), 403);
  EXPECT_FALSE(envs_->get("EXMP-1")->pinned);
  // The right one: done, as the person.
  Reply ok = post("/env/EXMP-1/pin", cookie, "csrf=" + urlEncode(csrf));
  EXPECT_EQ(status(ok), 303);
  EXPECT_TRUE(envs_->get("EXMP-1")->pinned);
  auto events = store_->listEvents("EXMP-1", 10);
  ASSERT_TRUE(events.isOk());
  EXPECT_EQ(events->front().actor, "token:alice");
  // qa deleting: 403 naming the role it needs; the environment stays.
  Reply del = post("/env/EXMP-1/delete", cookie, "csrf=" + urlEncode(csrf) + "&confirm=EXMP-1");
  EXPECT_EQ(status(del), 403);
  EXPECT_NE(body(del).find("ops"), std::string::npos);
  EXPECT_TRUE(envs_->get("EXMP-1").isOk());
  EXPECT_EQ(status(get("/env/EXMP-1/delete", cookie)), 403);
}

TEST_F(DashboardTest, ADeleteNeedsTheTicketTypedAgain) {
  std::string cookie = signIn(ops_);
  std::string csrf = csrfOf(body(get("/env/EXMP-1", cookie)));
  Reply wrong = post("/env/EXMP-1/delete", cookie, "csrf=" + urlEncode(csrf) + "&confirm=EXMP-2");
  EXPECT_EQ(status(wrong), 400);
  EXPECT_TRUE(envs_->get("EXMP-1").isOk());
  Reply r = post("/env/EXMP-1/delete", cookie, "csrf=" + urlEncode(csrf) + "&confirm=EXMP-1");
  EXPECT_EQ(status(r), 303);
  dashboard_.reset();  // waits for the delete
  EXPECT_FALSE(envs_->get("EXMP-1").isOk());
}

TEST_F(DashboardTest, ARevokedTokensSessionEndsAtTheNextRequest) {
  std::string cookie = signIn(qa_);
  EXPECT_EQ(status(get("/", cookie)), 200);
  Reply stream = get("/events", cookie);
  ASSERT_TRUE(stream.stream);
  ASSERT_TRUE(store_->revokeToken("alice", time_.now()).isOk());
  ASSERT_TRUE(tokens_->reload().isOk());
  EXPECT_EQ(status(get("/", cookie)), 303);
  auto last = stream.stream();
  ASSERT_TRUE(last.has_value());
  EXPECT_NE(last->find("signedout"), std::string::npos);
  EXPECT_FALSE(stream.stream().has_value());
}

TEST_F(DashboardTest, ReadingALogNeverWakesAnEnvironment) {
  ASSERT_TRUE(envs_->sleep("EXMP-1", "token:olga").isOk());
  std::string cookie = signIn(viewer_);
  Reply r = get("/env/EXMP-1/log?which=app", cookie);
  EXPECT_EQ(status(r), 409);
  EXPECT_NE(body(r).find("asleep"), std::string::npos);
  EXPECT_EQ(status(get("/env/EXMP-1/log/stream?which=app", cookie)), 404);
  EXPECT_EQ(envs_->get("EXMP-1")->state, EnvState::kSleeping);
}

TEST_F(DashboardTest, TwoSessionCookiesAreNoSession) {
  std::string cookie = signIn(qa_);
  EXPECT_EQ(status(get("/", cookie + "; " + cookie)), 303);
}

TEST_F(DashboardTest, TheChangeStreamSaysWhenSomethingChanged) {
  std::string cookie = signIn(viewer_);
  Reply r = get("/events", cookie);
  ASSERT_TRUE(r.stream);
  EXPECT_EQ(*r.stream(), "retry: 2000\n\n");
  EXPECT_EQ(*r.stream(), "");
  stamp_ += 1;
  std::this_thread::sleep_for(std::chrono::milliseconds(250));
  EXPECT_NE(r.stream()->find("event: change"), std::string::npos);
}

TEST_F(DashboardTest, APreviewGrantIsForThatPreviewsHostAlone) {
  std::string to = urlEncode("http://exmp-1.qa.test:8080/priority?x=1");
  Reply out = get("/auth/preview?to=" + to);
  EXPECT_EQ(status(out), 303);
  EXPECT_EQ(location(out).rfind("/login?next=", 0), 0u);
  std::string cookie = signIn(viewer_);
  Reply r = get("/auth/preview?to=" + to, cookie);
  EXPECT_EQ(status(r), 302);
  EXPECT_EQ(std::string(r.res["Referrer-Policy"]), "no-referrer");
  std::string loc = location(r);
  std::string prefix = "http://exmp-1.qa.test:8080/.qabox/auth?grant=";
  ASSERT_EQ(loc.rfind(prefix, 0), 0u) << loc;
  std::string grant = loc.substr(prefix.size(), loc.find('&') - prefix.size());
  EXPECT_TRUE(codec_->open(*urlDecode(grant), SessionKind::kGrant, "exmp-1", time_.now()));
  EXPECT_FALSE(codec_->open(*urlDecode(grant), SessionKind::kGrant, "exmp-2", time_.now()));
  EXPECT_NE(loc.find("&next=%2Fpriority%3Fx%3D1"), std::string::npos);
  for (const char* bad : {"http://evil.example/", "http://qabox.qa.test/", "/relative"}) {
    EXPECT_EQ(status(get("/auth/preview?to=" + urlEncode(bad), cookie)), 400) << bad;
  }
}

}  // namespace
}  // namespace qabox::web
