#include <poll.h>

#include <random>

#include <gtest/gtest.h>

#include "unit/contains.h"
#include "unit/proxy/router_fixture.h"

namespace qabox::testing {
namespace {

TEST_F(RouterTest, RoutesByHostToTwoBackends) {
  auto seenA = std::make_shared<Seen>(), seenB = std::make_shared<Seen>();
  TestBackend a(echoHandler("a", seenA)), b(echoHandler("b", seenB));
  start();
  route("alpha", EnvState::kReady, a.port());
  route("beta", EnvState::kReady, b.port());
  Client c(port());
  auto r1 = c.get("alpha.qa.test", "/one?x=1");
  EXPECT_EQ(r1.result_int(), 200);
  EXPECT_EQ(r1.body(), "a GET /one?x=1 0");
  auto r2 = c.get("BETA.QA.test:" + std::to_string(port()), "/two");
  EXPECT_EQ(r2.result_int(), 200);
  EXPECT_EQ(r2.body(), "b GET /two 0");
  EXPECT_EQ(seenA->requests.load(), 1);
  EXPECT_EQ(seenB->requests.load(), 1);
  EXPECT_EQ(str(seenB->back()[http::field::host]), "BETA.QA.test:" + std::to_string(port()));
}

// In a cluster: a route of another host's goes to that host's router (here
// the echo backend stands in for it) as it came, qabox's credentials kept
// for the owner's gate, and marked; a marked request for such a route is a
// loop and is refused; a marked one for this host's own route is served,
// the mark dropped.
TEST_F(RouterTest, AnotherHostsRouteIsForwardedOnceMarkedAndNeverBounced) {
  auto seen = std::make_shared<Seen>();
  TestBackend owner(echoHandler("owner", seen));
  RouterOptions o;
  o.self = "qa-c";
  start(o);
  Route remote;
  remote.slug = "exmp-1";
  remote.state = EnvState::kReady;
  remote.ip = "127.0.0.1";
  remote.port = owner.port();
  remote.via = "qa-a";
  table_->setRemote(remote);
  const std::string bearer = "Authorization: Bearer qbx_" + std::string(64, 'a') + "\r\n";

  Client c(port());
  c.send("GET /x HTTP/1.1\r\nHost: exmp-1.qa.test\r\n" + bearer + "\r\n");
  auto r = c.read();
  EXPECT_EQ(r.result_int(), 200);
  EXPECT_EQ(r.body(), "owner GET /x 0");
  EXPECT_EQ(str(seen->back()["X-Qabox-Forwarded"]), "qa-c");
  EXPECT_EQ(str(seen->back()[http::field::authorization]).substr(0, 11), "Bearer qbx_");
  EXPECT_EQ(str(seen->back()[http::field::host]), "exmp-1.qa.test");

  c.send("GET /x HTTP/1.1\r\nHost: exmp-1.qa.test\r\nX-Qabox-Forwarded: qa-b\r\n\r\n");
  auto loop = c.read();
  EXPECT_EQ(loop.result_int(), 508);
  EXPECT_TRUE(contains(loop.body(), "lives on host qa-a")) << loop.body();
  EXPECT_EQ(seen->requests.load(), 1);

  // The owner's own route: served, and the app never sees the mark.
  route("exmp-2", EnvState::kReady, owner.port());
  c.send("GET /y HTTP/1.1\r\nHost: exmp-2.qa.test\r\nX-Qabox-Forwarded: qa-b\r\n" + bearer +
         "\r\n");
  auto local = c.read();
  EXPECT_EQ(local.result_int(), 200);
  const auto app = seen->back();
  EXPECT_EQ(app.find("X-Qabox-Forwarded"), app.end());
  EXPECT_EQ(app.find(http::field::authorization), app.end());

  // Its host down: no address, and the page says LOST.
  remote.ip.clear();
  remote.port = 0;
  table_->setRemote(remote);
  auto lost = c.get("exmp-1.qa.test");
  EXPECT_EQ(lost.result_int(), 502);
  EXPECT_TRUE(contains(lost.body(), "lives on host qa-a, which is down (LOST)")) << lost.body();
}

// A client that asked to close, its request read to the end, sends nothing
// more: its connection is closed at once, not half-closed and held for the
// 2 s drain while it waits for the client's FIN.
TEST_F(RouterTest, AClientThatAsksToCloseIsClosedAtOnce) {
  auto seen = std::make_shared<Seen>();
  TestBackend b(echoHandler("b", seen));
  start();
  route("alpha", EnvState::kReady, b.port());
  Client c(port());
  c.send("GET /x HTTP/1.1\r\nHost: alpha.qa.test\r\nConnection: close\r\n\r\n");
  auto r = c.read();
  EXPECT_EQ(r.result_int(), 200);
  EXPECT_TRUE(c.closedByPeer());
  // The client still holds its end; the router holds nothing.
  bool gone = false;
  for (int i = 0; i < 100 && !gone; ++i) {
    gone = router_->openConnections() == 0;
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(gone) << router_->openConnections();
}

TEST_F(RouterTest, UnknownNameIs404AndKeepsTheConnection) {
  start();
  Client c(port());
  auto r = c.get("nope.qa.test");
  EXPECT_EQ(r.result_int(), 404);
  EXPECT_TRUE(contains(r.body(), "No environment named &quot;nope&quot; exists"));
  EXPECT_EQ(str(r[http::field::content_type]), "text/html; charset=utf-8");
  EXPECT_EQ(c.get("nope.qa.test").result_int(), 404);
}

TEST_F(RouterTest, DeployingIs503WithRetryAfter) {
  start();
  route("alpha", EnvState::kDeploying, 1);
  route("beta", EnvState::kCreating, 1);
  Client c(port());
  for (const char* host : {"alpha.qa.test", "beta.qa.test"}) {
    auto r = c.get(host);
    EXPECT_EQ(r.result_int(), 503);
    ASSERT_NE(r.find(http::field::retry_after), r.end());
    EXPECT_GT(std::stoi(str(r[http::field::retry_after])), 0);
    EXPECT_TRUE(contains(r.body(), "is being deployed"));
  }
}

TEST_F(RouterTest, FailedIs502WithStateAndMessage) {
  start();
  route("alpha", EnvState::kFailed, 1, 1, "hook build exited with 2 <boom>");
  Client c(port());
  auto r = c.get("alpha.qa.test");
  EXPECT_EQ(r.result_int(), 502);
  EXPECT_TRUE(contains(r.body(), "FAILED"));
  EXPECT_TRUE(contains(r.body(), "hook build exited with 2 &lt;boom&gt;"));
  EXPECT_FALSE(contains(r.body(), "<boom>"));
}

TEST_F(RouterTest, DeletingIs404) {
  start();
  route("alpha", EnvState::kDeleting, 1);
  Client c(port());
  auto r = c.get("alpha.qa.test");
  EXPECT_EQ(r.result_int(), 404);
  EXPECT_TRUE(contains(r.body(), "being deleted"));
}

TEST_F(RouterTest, SleepingWithoutWakeIs503) {
  start();
  route("alpha", EnvState::kSleeping, 1);
  Client c(port());
  auto r = c.get("alpha.qa.test");
  EXPECT_EQ(r.result_int(), 503);
  EXPECT_NE(r.find(http::field::retry_after), r.end());
  EXPECT_TRUE(contains(r.body(), "asleep"));
}

TEST_F(RouterTest, SleepingWakesOnceForAllWaitingRequests) {
  auto seen = std::make_shared<Seen>();
  TestBackend backend(echoHandler("a", seen));
  std::atomic<int> wakes{0};
  std::vector<std::thread> wakers;
  std::mutex wakersMu;
  Latch bothWaiting;
  RouterOptions o;
  o.wake = [&](const std::string& slug, std::function<void(Status)> done) {
    wakes.fetch_add(1);
    std::lock_guard lock(wakersMu);
    wakers.emplace_back([&, slug, done] {
      bothWaiting.wait();
      route(slug, EnvState::kReady, backend.port(), 2);
      done(Status::ok());
    });
  };
  start(o);
  route("alpha", EnvState::kSleeping, backend.port());
  Client c1(port()), c2(port());
  c1.send("GET /1 HTTP/1.1\r\nHost: alpha.qa.test\r\n\r\n");
  c2.send("GET /2 HTTP/1.1\r\nHost: alpha.qa.test\r\n\r\n");
  // Both requests are held: the wake hook has not finished.
  ASSERT_TRUE(eventually([&] { return wakes.load() == 1; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  bothWaiting.open();
  EXPECT_EQ(c1.read().body(), "a GET /1 0");
  EXPECT_EQ(c2.read().body(), "a GET /2 0");
  EXPECT_EQ(wakes.load(), 1);
  router_.reset();
  for (auto& t : wakers) t.join();
}

TEST_F(RouterTest, WakeFailureIs502WithItsMessage) {
  RouterOptions o;
  o.wake = [](const std::string&, std::function<void(Status)> done) {
    done(unavailable("container qabox-alpha did not start"));
  };
  start(o);
  route("alpha", EnvState::kSleeping, 1);
  Client c(port());
  auto r = c.get("alpha.qa.test");
  EXPECT_EQ(r.result_int(), 502);
  EXPECT_TRUE(contains(r.body(), "container qabox-alpha did not start"));
}

TEST_F(RouterTest, WakeNotDoneInTimeIs504) {
  std::vector<std::function<void(Status)>> pending;
  std::mutex mu;
  RouterOptions o;
  o.wakeTimeout = std::chrono::milliseconds(300);
  o.wake = [&](const std::string&, std::function<void(Status)> done) {
    std::lock_guard lock(mu);
    pending.push_back(std::move(done));
  };
  start(o);
  route("alpha", EnvState::kSleeping, 1);
  Client c(port());
  auto r = c.get("alpha.qa.test");
  EXPECT_EQ(r.result_int(), 504);
  EXPECT_TRUE(contains(r.body(), "did not wake up within 300ms"));
  // A late answer finds no one waiting, and harms nothing.
  router_.reset();
  std::lock_guard lock(mu);
  ASSERT_EQ(pending.size(), 1u);
  pending[0](Status::ok());
}

TEST_F(RouterTest, BackendRefusingIs502) {
  start();
  route("alpha", EnvState::kReady, closedPort());
  Client c(port());
  auto r = c.get("alpha.qa.test");
  EXPECT_EQ(r.result_int(), 502);
  EXPECT_TRUE(contains(r.body(), "refused the connection"));
  EXPECT_EQ(c.get("alpha.qa.test").result_int(), 502);
}

TEST_F(RouterTest, BackendNotAnsweringIs502) {
  TestBackend silent([](tcp::socket& s) {
    char b[4096];
    boost::system::error_code ec;
    while (!ec) s.read_some(asio::buffer(b), ec);
  });
  RouterOptions o;
  o.backendTimeout = std::chrono::milliseconds(300);
  start(o);
  route("alpha", EnvState::kReady, silent.port());
  Client c(port());
  auto r = c.get("alpha.qa.test");
  EXPECT_EQ(r.result_int(), 502);
  EXPECT_TRUE(contains(r.body(), "did not answer within 300ms"));
}

TEST_F(RouterTest, KeepAliveReusesOneBackendConnection) {
  auto seen = std::make_shared<Seen>();
  TestBackend backend(echoHandler("a", seen));
  RouterOptions o;
  o.threads = 1;
  start(o);
  route("alpha", EnvState::kReady, backend.port());
  {
    Client c(port());
    for (int i = 0; i < 5; ++i) {
      auto r = c.get("alpha.qa.test", "/" + std::to_string(i));
      EXPECT_EQ(r.body(), "a GET /" + std::to_string(i) + " 0");
    }
  }
  Client c2(port());
  for (int i = 0; i < 3; ++i) EXPECT_EQ(c2.get("alpha.qa.test").result_int(), 200);
  EXPECT_EQ(seen->requests.load(), 8);
  EXPECT_EQ(backend.accepts(), 1);
}

TEST_F(RouterTest, SetsForwardedHeadersAndDropsHopByHopOnes) {
  auto seen = std::make_shared<Seen>();
  TestBackend backend(echoHandler("a", seen));
  start();
  route("alpha", EnvState::kReady, backend.port());
  Client c(port());
  std::string host = "alpha.qa.test:" + std::to_string(port());
  c.send("GET /x HTTP/1.1\r\nHost: " + host +
         "\r\nX-Forwarded-For: 10.1.2.3\r\nX-Forwarded-Proto: gopher\r\n"
         "X-Forwarded-Host: evil\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n"
         "TE: trailers\r\nUpgrade: h2c\r\nProxy-Connection: keep-alive\r\n\r\n");
  EXPECT_EQ(c.read().result_int(), 200);
  auto req = seen->back();
  EXPECT_EQ(str(req["X-Forwarded-For"]), "10.1.2.3, 127.0.0.1");
  EXPECT_EQ(str(req["X-Forwarded-Proto"]), "http");
  EXPECT_EQ(str(req["X-Forwarded-Host"]), host);
  EXPECT_EQ(str(req[http::field::host]), host);
  EXPECT_EQ(req.count(http::field::connection), 0u);
  EXPECT_EQ(req.count(http::field::keep_alive), 0u);
  EXPECT_EQ(req.count(http::field::te), 0u);
  EXPECT_EQ(req.count(http::field::upgrade), 0u);
  EXPECT_EQ(req.count("Proxy-Connection"), 0u);
  EXPECT_EQ(req.count("X-Forwarded-For"), 1u);
}

TEST_F(RouterTest, PipelinedRequestsAnswerInOrder) {
  auto seen = std::make_shared<Seen>();
  TestBackend backend(echoHandler("a", seen));
  start();
  route("alpha", EnvState::kReady, backend.port());
  Client c(port());
  c.send(
      "GET /1 HTTP/1.1\r\nHost: alpha.qa.test\r\n\r\n"
      "POST /2 HTTP/1.1\r\nHost: alpha.qa.test\r\nContent-Length: 3\r\n\r\nabc"
      "GET /3 HTTP/1.1\r\nHost: nope.qa.test\r\n\r\n"
      "GET /4 HTTP/1.1\r\nHost: alpha.qa.test\r\n\r\n");
  EXPECT_EQ(c.read().body(), "a GET /1 0");
  EXPECT_EQ(c.read().body(), "a POST /2 3");
  EXPECT_EQ(c.read().result_int(), 404);
  EXPECT_EQ(c.read().body(), "a GET /4 0");
}

TEST_F(RouterTest, Http10ClientGetsACompleteBodyThenClose) {
  TestBackend backend([](tcp::socket& s) {
    beast::flat_buffer buf;
    http::request<http::string_body> req;
    http::read(s, buf, req);
    std::string chunked =
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n "
        "world\r\n0\r\n\r\n";
    asio::write(s, asio::buffer(chunked));
    char b[64];
    boost::system::error_code ec;
    while (!ec) s.read_some(asio::buffer(b), ec);
  });
  start();
  route("alpha", EnvState::kReady, backend.port());
  Client c(port());
  c.send("GET / HTTP/1.0\r\nHost: alpha.qa.test\r\n\r\n");
  std::string all = c.readAll();
  EXPECT_TRUE(all.starts_with("HTTP/1.1 200 OK\r\n")) << all;
  EXPECT_FALSE(contains(all, "chunked"));
  EXPECT_TRUE(contains(all, "Connection: close"));
  EXPECT_TRUE(all.ends_with("\r\n\r\nhello world")) << all;
}

TEST_F(RouterTest, HeadResponseHasNoBody) {
  TestBackend backend([](tcp::socket& s) {
    beast::flat_buffer buf;
    boost::system::error_code ec;
    for (;;) {
      http::request<http::string_body> req;
      http::read(s, buf, req, ec);
      if (ec) return;
      std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n";
      std::string out = req.method() == http::verb::head
                            ? head
                            : "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
      asio::write(s, asio::buffer(out), ec);
    }
  });
  start();
  route("alpha", EnvState::kReady, backend.port());
  Client c(port());
  c.send("HEAD / HTTP/1.1\r\nHost: alpha.qa.test\r\n\r\n");
  auto r = c.read(true);
  EXPECT_EQ(r.result_int(), 200);
  EXPECT_EQ(str(r[http::field::content_length]), "100");
  auto r2 = c.get("alpha.qa.test");
  EXPECT_EQ(r2.body(), "ok");
}

TEST_F(RouterTest, AnswersExpectContinueItself) {
  auto seen = std::make_shared<Seen>();
  TestBackend backend(echoHandler("a", seen));
  start();
  route("alpha", EnvState::kReady, backend.port());
  Client c(port());
  c.send(
      "POST /up HTTP/1.1\r\nHost: alpha.qa.test\r\nContent-Length: 5\r\n"
      "Expect: 100-continue\r\n\r\n");
  std::string head;
  while (!head.ends_with("\r\n\r\n")) {
    char ch;
    ASSERT_EQ(c.socket().read_some(asio::buffer(&ch, 1)), 1u);
    head += ch;
  }
  EXPECT_EQ(head, "HTTP/1.1 100 Continue\r\n\r\n");
  c.send("hello");
  EXPECT_EQ(c.read().body(), "a POST /up 5");
  EXPECT_EQ(seen->back().count(http::field::expect), 0u);
}

TEST_F(RouterTest, BodyUntilCloseReachesHttp11ClientsChunked) {
  TestBackend backend([](tcp::socket& s) {
    beast::flat_buffer buf;
    http::request<http::string_body> req;
    http::read(s, buf, req);
    asio::write(
        s, asio::buffer(std::string("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhello world")));
    s.shutdown(tcp::socket::shutdown_send);
  });
  start();
  route("alpha", EnvState::kReady, backend.port());
  Client c(port());
  for (int i = 0; i < 2; ++i) {
    auto r = c.get("alpha.qa.test");
    EXPECT_EQ(r.body(), "hello world");
    EXPECT_TRUE(r.chunked());
    EXPECT_TRUE(r.keep_alive());
  }
  EXPECT_EQ(backend.accepts(), 2);
}

// The request shapes a backend could frame differently from the router.
struct Smuggle {
  const char* name;
  std::string request;
  unsigned status;
};

TEST_F(RouterTest, RejectsSmugglingShapesBeforeAnyBackendSeesThem) {
  auto seen = std::make_shared<Seen>();
  TestBackend backend(echoHandler("a", seen));
  start();
  route("alpha", EnvState::kReady, backend.port());
  const std::string h = "Host: alpha.qa.test\r\n";
  for (const Smuggle& s : std::vector<Smuggle>{
           {"CL and TE",
            "POST / HTTP/1.1\r\n" + h +
                "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400},
           {"TE and CL",
            "POST / HTTP/1.1\r\n" + h +
                "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n",
            400},
           {"two CL differing",
            "POST / HTTP/1.1\r\n" + h + "Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400},
           {"TE chunked not last",
            "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
            400},
           {"TE not chunked", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: gzip\r\n\r\nabcd",
            400},
           {"obs-fold", "GET / HTTP/1.1\r\n" + h + "X-A: 1\r\n 2\r\n\r\n", 400},
           {"invalid name char", "GET / HTTP/1.1\r\n" + h + "X[A]: 1\r\n\r\n", 400},
           {"invalid value char", "GET / HTTP/1.1\r\n" + h + "X-A: 1\x7f\r\n\r\n", 400},
           {"bad Host", "GET / HTTP/1.1\r\nHost: alpha.qa.test.evil.test\r\n\r\n", 400},
           {"IP Host", "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 400},
           {"missing Host", "GET / HTTP/1.1\r\n\r\n", 400},
           {"two Host", "GET / HTTP/1.1\r\n" + h + h + "\r\n", 400},
           {"bare LF", "GET / HTTP/1.1\n" + std::string("Host: alpha.qa.test\n\n"), 400},
           {"bad chunk", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\nx\r\n\r\n",
            400},
       }) {
    Client c(port());
    c.send(s.request);
    std::string all = c.readAll();
    EXPECT_TRUE(all.starts_with("HTTP/1.1 " + std::to_string(s.status))) << s.name << ": " << all;
    EXPECT_TRUE(contains(all, "Connection: close")) << s.name;
  }
  EXPECT_EQ(seen->requests.load(), 0);
}

TEST_F(RouterTest, HeadTooLargeIs431) {
  start();
  Client c(port());
  c.send("GET / HTTP/1.1\r\nHost: alpha.qa.test\r\nX-Big: " + std::string(20000, 'x') + "\r\n\r\n");
  EXPECT_TRUE(c.readAll().starts_with("HTTP/1.1 431"));
}

TEST_F(RouterTest, TooManyHeaderFieldsIs431) {
  RouterOptions o;
  o.maxHeaderCount = 20;
  start(o);
  std::string req = "GET / HTTP/1.1\r\nHost: alpha.qa.test\r\n";
  for (int i = 0; i < 30; ++i) req += "X-" + std::to_string(i) + ": v\r\n";
  Client c(port());
  c.send(req + "\r\n");
  EXPECT_TRUE(c.readAll().starts_with("HTTP/1.1 431"));
}

TEST_F(RouterTest, ClientStalledMidHeadIsDisconnected) {
  RouterOptions o;
  o.headerTimeout = std::chrono::milliseconds(300);
  start(o);
  Client c(port());
  c.send("GET / HTTP/1.1\r\nHost: alp");
  EXPECT_TRUE(c.closedByPeer());
}

TEST_F(RouterTest, DribblingHeadIsCutAtTheHeaderTimeout) {
  RouterOptions o;
  o.headerTimeout = std::chrono::milliseconds(400);
  o.idleTimeout = std::chrono::milliseconds(10000);
  start(o);
  Client c(port());
  c.send("GET / HTTP/1.1\r\nHost: alpha.qa.test\r\nX-Slow: ");
  bool closed = false;
  // 400 bytes at 25 ms each would take 10 s; the router must cut it far
  // sooner, although every read brings progress.
  for (int i = 0; i < 400 && !closed; ++i) {
    boost::system::error_code ec;
    asio::write(c.socket(), asio::buffer("x", 1), ec);
    pollfd p{c.socket().native_handle(), POLLIN, 0};
    if (ec || ::poll(&p, 1, 25) > 0) closed = true;
  }
  EXPECT_TRUE(closed);
  EXPECT_TRUE(c.closedByPeer());
}

TEST_F(RouterTest, IdleKeepAliveConnectionIsClosed) {
  auto seen = std::make_shared<Seen>();
  TestBackend backend(echoHandler("a", seen));
  RouterOptions o;
  o.idleTimeout = std::chrono::milliseconds(300);
  start(o);
  route("alpha", EnvState::kReady, backend.port());
  Client c(port());
  EXPECT_EQ(c.get("alpha.qa.test").result_int(), 200);
  EXPECT_TRUE(c.closedByPeer());
}

TEST_F(RouterTest, RemovedRouteIs404AndItsBackendGetsNoNewConnection) {
  auto seen = std::make_shared<Seen>();
  TestBackend backend(echoHandler("a", seen));
  start();
  route("alpha", EnvState::kReady, backend.port());
  Client c(port());
  EXPECT_EQ(c.get("alpha.qa.test").result_int(), 200);
  table_->remove("alpha");
  EXPECT_EQ(c.get("alpha.qa.test").result_int(), 404);
  Client c2(port());
  EXPECT_EQ(c2.get("alpha.qa.test").result_int(), 404);
  EXPECT_EQ(backend.accepts(), 1);
  EXPECT_EQ(seen->requests.load(), 1);
  // The pooled connection to the removed target is closed, not kept.
  EXPECT_TRUE(eventually([&] { return seen->closed.load() == 1; }));
  EXPECT_EQ(table_->inFlight("127.0.0.1", backend.port()), 0);
}

TEST_F(RouterTest, RedeploySwitchesWithoutAFailedRequest) {
  auto seenA = std::make_shared<Seen>(), seenB = std::make_shared<Seen>();
  TestBackend a(echoHandler("a", seenA)), b(echoHandler("b", seenB));
  start();
  route("alpha", EnvState::kReady, a.port(), 1);
  // The clients keep asking until told to stop: however fast or slow the
  // machine, requests are in flight on kept-alive connections both before
  // and after the switch.
  std::atomic<int> failures{0}, done{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; ++t) {
    clients.emplace_back([&] {
      Client c(port());
      while (!stop.load()) {
        auto r = c.get("alpha.qa.test");
        if (r.result_int() != 200) failures.fetch_add(1);
        done.fetch_add(1);
      }
    });
  }
  const bool before = eventually([&] { return done.load() >= 100; });
  route("alpha", EnvState::kReady, b.port(), 2);
  int aAfterSwitch = seenA->requests.load();
  const bool after = eventually([&] { return seenB->requests.load() >= 100; });
  stop = true;
  for (auto& t : clients) t.join();
  ASSERT_TRUE(before && after) << done.load() << " requests, " << seenB->requests.load() << " at B";
  EXPECT_EQ(failures.load(), 0);
  // Requests already sent when the route changed may finish at A; no more.
  EXPECT_LE(seenA->requests.load(), aAfterSwitch + 4);
  Client c(port());
  for (int i = 0; i < 5; ++i) EXPECT_EQ(c.get("alpha.qa.test").body(), "b GET / 0");
  EXPECT_TRUE(eventually([&] { return seenA->closed.load() == a.accepts(); }));
}

TEST_F(RouterTest, CountsRequestsBytesAndLastAccess) {
  auto seen = std::make_shared<Seen>();
  TestBackend backend(echoHandler("a", seen));
  start();
  route("alpha", EnvState::kReady, backend.port());
  route("beta", EnvState::kReady, backend.port());
  auto before = Clock::now();
  Client c(port());
  std::string get = "GET /abc HTTP/1.1\r\nHost: alpha.qa.test\r\n\r\n";
  std::string post =
      "POST /p HTTP/1.1\r\nHost: alpha.qa.test\r\nContent-Length: 10\r\n\r\n0123456789";
  size_t out = 0, n = 0;
  c.send(get);
  c.read(false, &n);
  out += n;
  c.send(post);
  c.read(false, &n);
  out += n;
  c.send(get);
  c.read(false, &n);
  out += n;
  c.get("nope.qa.test");
  auto after = Clock::now();

  AccessStats total;
  ASSERT_TRUE(eventually([&] {
    for (auto& s : router_->takeStats()) {
      EXPECT_EQ(s.slug, "alpha");
      total.requests += s.requests;
      total.bytesIn += s.bytesIn;
      total.bytesOut += s.bytesOut;
      total.lastAccessAt = std::max(total.lastAccessAt, s.lastAccessAt);
    }
    return total.bytesOut >= out;
  }));
  EXPECT_EQ(total.requests, 3u);
  EXPECT_EQ(total.bytesIn, 2 * get.size() + post.size());
  EXPECT_EQ(total.bytesOut, out);
  EXPECT_GE(total.lastAccessAt, before - std::chrono::milliseconds(1));
  EXPECT_LE(total.lastAccessAt, after + std::chrono::milliseconds(1));
  EXPECT_TRUE(router_->takeStats().empty());
}

TEST_F(RouterTest, InFlightCountsRequestsUntilTheyFinish) {
  Latch release;
  TestBackend slow([&](tcp::socket& s) {
    beast::flat_buffer buf;
    http::request<http::string_body> req;
    http::read(s, buf, req);
    release.wait();
    asio::write(s, asio::buffer(std::string("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")));
  });
  start();
  route("alpha", EnvState::kReady, slow.port());
  Client c(port());
  c.send("GET / HTTP/1.1\r\nHost: alpha.qa.test\r\n\r\n");
  EXPECT_TRUE(eventually([&] { return table_->inFlight("127.0.0.1", slow.port()) == 1; }));
  // Removing the route does not cut the request already sent.
  table_->remove("alpha");
  EXPECT_EQ(table_->inFlight("127.0.0.1", slow.port()), 1);
  release.open();
  EXPECT_EQ(c.read().body(), "ok");
  EXPECT_TRUE(eventually([&] { return table_->inFlight("127.0.0.1", slow.port()) == 0; }));
}

TEST_F(RouterTest, SurvivesRandomBytesOnManyConnections) {
  auto seen = std::make_shared<Seen>();
  TestBackend backend(echoHandler("a", seen));
  RouterOptions o;
  o.maxHeaderBytes = 4096;
  start(o);
  route("alpha", EnvState::kReady, backend.port());
  const std::vector<std::string> seeds = {
      "GET / HTTP/1.1\r\nHost: alpha.qa.test\r\n\r\n",
      "POST /p HTTP/1.1\r\nHost: alpha.qa.test\r\nContent-Length: 5\r\n\r\nhello",
      "POST /c HTTP/1.1\r\nHost: alpha.qa.test\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3\r\nabc\r\n0\r\n\r\n",
      "GET /ws HTTP/1.1\r\nHost: alpha.qa.test\r\nConnection: Upgrade\r\nUpgrade: "
      "websocket\r\n\r\n",
      "GET http://alpha.qa.test/x HTTP/1.0\r\nHost: y\r\nExpect: 100-continue\r\n\r\n"};
  const std::vector<std::string> tokens = {"\r\n",
                                           "\n",
                                           "\r",
                                           " ",
                                           ":",
                                           "\r\n ",
                                           "0\r\n\r\n",
                                           "Content-Length: 3\r\n",
                                           std::string(1, '\0'),
                                           "Transfer-Encoding: chunked\r\n"};
  std::atomic<int> answered{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(static_cast<unsigned>(t + 1));
      for (int i = 0; i < 100; ++i) {
        std::string s = seeds[rng() % seeds.size()];
        for (int e = 0; e < 1 + static_cast<int>(rng() % 6); ++e) {
          size_t at = rng() % (s.size() + 1);
          switch (rng() % 4) {
            case 0: s.insert(at, tokens[rng() % tokens.size()]); break;
            case 1: s.insert(at, 1, static_cast<char>(rng())); break;
            case 2: s.erase(at, rng() % 8); break;
            case 3: s.append(s.substr(at)); break;
          }
        }
        Client c(port());
        boost::system::error_code ec;
        asio::write(c.socket(), asio::buffer(s), ec);
        // The router sees the end of the request bytes and cannot stall on
        // them: whatever it makes of them, it answers or closes.
        c.socket().shutdown(tcp::socket::shutdown_send, ec);
        if (c.readAll().starts_with("HTTP/1.1 ")) answered.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_GT(answered.load(), 0);
  Client c(port());
  EXPECT_EQ(c.get("alpha.qa.test").result_int(), 200);
}

TEST(RouterStart, RejectsBadOptions) {
  auto table = std::make_shared<RouteTable>();
  RouterOptions o;
  o.listen = "127.0.0.1:0";
  EXPECT_EQ(Router(o, table).start().code(), Code::kInvalidArgument);  // no domain
  o.domain = "qa.test";
  o.listen = "localhost:80";
  EXPECT_EQ(Router(o, table).start().code(), Code::kInvalidArgument);
  o.listen = "127.0.0.1:0";
  o.tlsListen = "127.0.0.1:0";
  EXPECT_EQ(Router(o, table).start().code(), Code::kInvalidArgument);  // no cert
  o.tlsCert = "/nonexistent/cert.pem";
  o.tlsKey = "/nonexistent/key.pem";
  Status s = Router(o, table).start();
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_NE(s.message().find("routing.tls_cert"), std::string::npos);
}

TEST(RouterStart, PortInUseIsUnavailable) {
  auto table = std::make_shared<RouteTable>();
  RouterOptions o;
  o.domain = "qa.test";
  o.listen = "127.0.0.1:0";
  Router first(o, table);
  ASSERT_TRUE(first.start().isOk());
  o.listen = "127.0.0.1:" + std::to_string(first.port());
  Router second(o, table);
  EXPECT_EQ(second.start().code(), Code::kUnavailable);
}

}  // namespace
}  // namespace qabox::testing
