// The router's side of previews behind a login: what it asks the gate, what
// it answers for it, and what of qabox's credentials an app never sees.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <string>

#include "unit/proxy/router_fixture.h"

namespace qabox::testing {
namespace {

namespace http = boost::beast::http;
using Kind = AccessAnswer::Kind;

class RouterGateTest : public RouterTest {
 protected:
  void startGated(AccessAnswer answer) {
    RouterOptions o;
    o.gate = [this, answer](const AccessRequest& q) {
      std::lock_guard l(mu_);
      ++asked_;
      lastSlug_ = q.slug;
      lastHost_ = q.host;
      lastTarget_ = q.target;
      lastCookie_ = q.cookie;
      lastAuth_ = q.authorization;
      lastMethod_ = q.method;
      lastPeer_ = q.peerIpv4;
      return answer;
    };
    start(std::move(o));
  }

  void loginRoute(const std::string& slug, EnvState state, uint16_t port) {
    Route r;
    r.slug = slug;
    r.state = state;
    r.ip = "127.0.0.1";
    r.port = port;
    r.generation = 1;
    r.login = true;
    table_->set(r);
  }

  std::string host(const std::string& slug) { return slug + ".qa.test:" + std::to_string(port()); }

  std::mutex mu_;
  int asked_ = 0;
  std::string lastSlug_, lastHost_, lastTarget_, lastCookie_, lastAuth_, lastMethod_;
  uint32_t lastPeer_ = 0;
};

TEST_F(RouterGateTest, WithoutAGateALoginRouteIsClosedToEveryone) {
  TestBackend backend(echoHandler("app", std::make_shared<Seen>()));
  start();
  loginRoute("alpha", EnvState::kReady, backend.port());
  Client c(port());
  c.send("GET / HTTP/1.1\r\nHost: " + host("alpha") + "\r\n\r\n");
  EXPECT_EQ(c.read().result_int(), 401);
}

TEST_F(RouterGateTest, ARedirectCarriesItsLocationAndCookie) {
  AccessAnswer a;
  a.kind = Kind::kRedirect;
  a.location = "http://qabox.qa.test/auth/preview?to=x";
  a.setCookie = "qabox_preview=v; Path=/; HttpOnly";
  TestBackend backend(echoHandler("app", std::make_shared<Seen>()));
  startGated(a);
  loginRoute("alpha", EnvState::kReady, backend.port());
  Client c(port());
  c.send("GET /orders?id=3 HTTP/1.1\r\nHost: " + host("alpha") +
         "\r\nCookie: a=1; qabox_preview=old\r\nAuthorization: Basic eA==\r\n\r\n");
  auto res = c.read();
  EXPECT_EQ(res.result_int(), 302);
  EXPECT_EQ(str(res[http::field::location]), a.location);
  EXPECT_EQ(str(res[http::field::set_cookie]), a.setCookie);
  EXPECT_EQ(str(res["Referrer-Policy"]), "no-referrer");
  EXPECT_EQ(str(res[http::field::cache_control]), "no-store");
  std::lock_guard l(mu_);
  EXPECT_EQ(lastSlug_, "alpha");
  EXPECT_EQ(lastHost_, host("alpha"));
  EXPECT_EQ(lastTarget_, "/orders?id=3");
  EXPECT_EQ(lastCookie_, "a=1; qabox_preview=old");
  EXPECT_EQ(lastAuth_, "Basic eA==");
  EXPECT_EQ(lastMethod_, "GET");
  EXPECT_EQ(lastPeer_, 0x7f000001u);
}

// A request another host's router forwarded comes from that host's
// address, not its client's: a network the gate lets in without a login
// must not let in whoever reached another host (nor may a client that sends
// the mark itself gain anything by it). The gate sees no address.
TEST_F(RouterGateTest, AForwardedRequestShowsTheGateNoAddress) {
  AccessAnswer a;
  a.kind = Kind::kAllow;
  TestBackend backend(echoHandler("app", std::make_shared<Seen>()));
  startGated(a);
  loginRoute("alpha", EnvState::kReady, backend.port());
  Client c(port());
  c.send("GET / HTTP/1.1\r\nHost: " + host("alpha") + "\r\nX-Qabox-Forwarded: qa-b\r\n\r\n");
  EXPECT_EQ(c.read().result_int(), 200);
  {
    std::lock_guard l(mu_);
    EXPECT_EQ(lastPeer_, 0u);
  }
  c.send("GET / HTTP/1.1\r\nHost: " + host("alpha") + "\r\n\r\n");
  EXPECT_EQ(c.read().result_int(), 200);
  std::lock_guard l(mu_);
  EXPECT_EQ(lastPeer_, 0x7f000001u);
}

TEST_F(RouterGateTest, NothingAboutTheEnvironmentLeaksBeforeTheGate) {
  AccessAnswer a;
  a.kind = Kind::kRefuse;
  a.message = "sign in first";
  startGated(a);
  auto gated = [](const std::string& slug, EnvState state) {
    Route r;
    r.slug = slug;
    r.state = state;
    r.login = true;
    r.generation = 1;
    return r;
  };
  Route alpha = gated("alpha", EnvState::kFailed);
  alpha.message = "secret failure detail";
  table_->set(alpha);
  Route beta = gated("beta", EnvState::kSleeping);
  beta.ip = "127.0.0.1";
  table_->set(beta);
  Client c(port());
  c.send("GET / HTTP/1.1\r\nHost: " + host("alpha") + "\r\n\r\n");
  auto res = c.read();
  EXPECT_EQ(res.result_int(), 401);
  EXPECT_EQ(res.body().find("secret failure detail"), std::string::npos);
  EXPECT_NE(res.body().find("sign in first"), std::string::npos);
  c.send("POST / HTTP/1.1\r\nHost: " + host("beta") + "\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(c.read().result_int(), 401);  // and no wake
}

TEST_F(RouterGateTest, TheAppNeverSeesQaboxsCookiesOrToken) {
  auto seen = std::make_shared<Seen>();
  TestBackend backend(echoHandler("app", seen));
  AccessAnswer a;
  a.kind = Kind::kAllow;
  startGated(a);
  loginRoute("alpha", EnvState::kReady, backend.port());
  route("beta", EnvState::kReady, backend.port());  // open: stripped all the same
  Client c(port());
  c.send("GET / HTTP/1.1\r\nHost: " + host("alpha") +
         "\r\nCookie: theme=dark; qabox_preview=p; __Host-qabox_session=s\r\n"
         "Cookie: qabox_session=t; cart=7\r\nAuthorization: Bearer qbx_" +
         std::string(64, 'a') + "\r\n\r\n");
  EXPECT_EQ(c.read().result_int(), 200);
  auto req = seen->back();
  EXPECT_EQ(req.count(http::field::cookie), 1u);
  EXPECT_EQ(str(req[http::field::cookie]), "theme=dark; cart=7");
  EXPECT_EQ(req.count(http::field::authorization), 0u);

  c.send("GET / HTTP/1.1\r\nHost: " + host("beta") +
         "\r\nCookie: qabox_preview=p\r\nAuthorization: Bearer app-own-token\r\n\r\n");
  EXPECT_EQ(c.read().result_int(), 200);
  req = seen->back();
  EXPECT_EQ(req.count(http::field::cookie), 0u);
  EXPECT_EQ(str(req[http::field::authorization]), "Bearer app-own-token");
  std::lock_guard l(mu_);
  EXPECT_EQ(asked_, 1);  // an open route asks nobody
}

TEST_F(RouterGateTest, EveryRequestOfAKeptAliveConnectionIsAskedAgain) {
  TestBackend backend(echoHandler("app", std::make_shared<Seen>()));
  AccessAnswer a;
  a.kind = Kind::kAllow;
  startGated(a);
  loginRoute("alpha", EnvState::kReady, backend.port());
  Client c(port());
  for (int i = 0; i < 3; ++i) {
    c.send("GET / HTTP/1.1\r\nHost: " + host("alpha") + "\r\n\r\n");
    EXPECT_EQ(c.read().result_int(), 200);
  }
  std::lock_guard l(mu_);
  EXPECT_EQ(asked_, 3);
}

TEST_F(RouterGateTest, TheDashboardGetsItsOwnCookie) {
  auto seen = std::make_shared<Seen>();
  TestBackend backend(echoHandler("dashboard", seen));
  start();
  route("qabox", EnvState::kReady, backend.port());
  Client c(port());
  c.send("GET / HTTP/1.1\r\nHost: " + host("qabox") + "\r\nCookie: qabox_session=s\r\n\r\n");
  EXPECT_EQ(c.read().result_int(), 200);
  EXPECT_EQ(str(seen->back()[http::field::cookie]), "qabox_session=s");
}

}  // namespace
}  // namespace qabox::testing
