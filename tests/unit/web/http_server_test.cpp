// The dashboard's HTTP server against a hostile client: every limit is
// reached and answered (or the connection closed), and the server still
// answers the next, well-behaved client at once.
#include "web/http_server.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "unit/web/raw_client.h"

namespace qabox::web {
namespace {

using namespace std::chrono_literals;
using testing::Raw;
using testing::statusOf;

class HttpServerTest : public ::testing::Test {
 protected:
  void start(HttpServerOptions o = {}) {
    server_ = std::make_unique<HttpServer>(o, [this](const Request& req) {
      ++served_;
      if (req.target() == "/stream") {
        Reply r = makeReply(http::status::ok, "", "text/event-stream");
        auto n = std::make_shared<int>(0);
        r.stream = [n]() -> std::optional<std::string> {
          if (++*n > 3) return std::nullopt;
          return "data: " + std::to_string(*n) + "\n\n";
        };
        return r;
      }
      if (req.target() == "/forever") {
        Reply r = makeReply(http::status::ok, "", "text/event-stream");
        r.stream = []() -> std::optional<std::string> { return std::string(); };
        return r;
      }
      if (req.target() == "/throw") throw std::runtime_error("boom");
      return makeReply(http::status::ok, "hello " + std::string(req.target()) + "\n");
    });
    ASSERT_TRUE(server_->start().isOk());
  }
  void TearDown() override {
    if (server_) server_->stop();
  }
  // A plain GET on a fresh connection: the server still serves.
  int healthy() {
    Raw c(server_->port());
    c.send("GET /ok HTTP/1.1\r\nHost: qabox.qa.test\r\nConnection: close\r\n\r\n");
    return statusOf(c.readAll());
  }

  std::unique_ptr<HttpServer> server_;
  std::atomic<int> served_{0};
};

TEST_F(HttpServerTest, ServesAndSetsTheSecurityHeaders) {
  start();
  Raw c(server_->port());
  c.send("GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  std::string r = c.readAll();
  EXPECT_EQ(statusOf(r), 200);
  EXPECT_NE(r.find("Content-Security-Policy: default-src 'self'"), std::string::npos);
  EXPECT_NE(r.find("X-Frame-Options: DENY"), std::string::npos);
  EXPECT_NE(r.find("X-Content-Type-Options: nosniff"), std::string::npos);
  EXPECT_NE(r.find("hello /x"), std::string::npos);
}

TEST_F(HttpServerTest, KeepAliveServesTwoRequestsOnOneConnection) {
  start();
  Raw c(server_->port());
  c.send(
      "GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  std::string r = c.readAll();
  EXPECT_NE(r.find("hello /a"), std::string::npos);
  EXPECT_NE(r.find("hello /b"), std::string::npos);
}

TEST_F(HttpServerTest, AnOversizedHeadIs431AndClosed) {
  start();
  Raw c(server_->port());
  c.send("GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + std::string(64 * 1024, 'a') + "\r\n\r\n");
  std::string r = c.readAll();
  EXPECT_EQ(statusOf(r), 431);
  EXPECT_EQ(served_, 0);
  EXPECT_EQ(healthy(), 200);
}

TEST_F(HttpServerTest, TooManyHeaderFieldsIs431) {
  start();
  std::string head = "GET / HTTP/1.1\r\nHost: a\r\n";
  for (int i = 0; i < 150; ++i) head += "X-" + std::to_string(i) + ": v\r\n";
  Raw c(server_->port());
  c.send(head + "\r\n");
  EXPECT_EQ(statusOf(c.readAll()), 431);
  EXPECT_EQ(served_, 0);
}

TEST_F(HttpServerTest, AHugeQueryIs414OrRefused) {
  start();
  Raw c(server_->port());
  c.send("GET /?q=" + std::string(12 * 1024, 'x') + " HTTP/1.1\r\nHost: a\r\n\r\n");
  int s = statusOf(c.readAll());
  EXPECT_TRUE(s == 414 || s == 431) << s;
  EXPECT_EQ(served_, 0);
}

TEST_F(HttpServerTest, ABodyOverTheFormLimitIs413) {
  start();
  Raw c(server_->port());
  c.send("POST /login HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n" +
         std::string(8192, 'a'));
  EXPECT_EQ(statusOf(c.readAll()), 413);
  EXPECT_EQ(served_, 0);
}

TEST_F(HttpServerTest, BadMethodsAndGarbageAreRefused) {
  start();
  {
    Raw c(server_->port());
    c.send("DELETE / HTTP/1.1\r\nHost: a\r\n\r\n");
    EXPECT_EQ(statusOf(c.readAll()), 405);
  }
  {
    Raw c(server_->port());
    c.send("BREW / HTTP/1.1\r\nHost: a\r\n\r\n");
    int s = statusOf(c.readAll());
    EXPECT_TRUE(s == 400 || s == 405) << s;
  }
  {
    Raw c(server_->port());
    c.send(std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11) + "\r\n\r\n");
    EXPECT_EQ(statusOf(c.readAll()), 400);
  }
  EXPECT_EQ(served_, 0);
  EXPECT_EQ(healthy(), 200);
}

TEST_F(HttpServerTest, ASlowLorisIsCutOffAtTheReadTimeout) {
  HttpServerOptions o;
  o.readTimeout = 300ms;
  start(o);
  Raw c(server_->port(), 3s);
  auto t0 = std::chrono::steady_clock::now();
  c.send("GET / HTTP/1.1\r\n");
  bool cut = false;
  for (int i = 0; i < 40; ++i) {
    if (!c.send("X-" + std::to_string(i) + ": a\r\n")) {
      cut = true;
      break;
    }
    std::this_thread::sleep_for(50ms);
  }
  c.readAll();
  cut = cut || c.closedByPeer();
  EXPECT_TRUE(cut);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2500ms);
  EXPECT_EQ(served_, 0);
}

TEST_F(HttpServerTest, AnIdleConnectionIsClosedAtTheIdleTimeout) {
  HttpServerOptions o;
  o.idleTimeout = 200ms;
  start(o);
  Raw c(server_->port(), 3s);
  auto t0 = std::chrono::steady_clock::now();
  c.readAll();
  EXPECT_TRUE(c.closedByPeer());
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
}

TEST_F(HttpServerTest, ConnectionsOverTheCapAreClosedAndTheServerRecovers) {
  HttpServerOptions o;
  o.maxConnections = 4;
  start(o);
  std::vector<std::unique_ptr<Raw>> held;
  for (int i = 0; i < 4; ++i) held.push_back(std::make_unique<Raw>(server_->port()));
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(server_->connections(), 4u);
  {
    Raw extra(server_->port(), 2s);
    extra.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    EXPECT_EQ(statusOf(extra.readAll()), 0);
  }
  held.clear();
  for (int i = 0; i < 50 && server_->connections() > 0; ++i) std::this_thread::sleep_for(20ms);
  EXPECT_EQ(healthy(), 200);
}

TEST_F(HttpServerTest, AHandlerThatThrowsIs500AndTheServerGoesOn) {
  start();
  Raw c(server_->port());
  c.send("GET /throw HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(statusOf(c.readAll()), 500);
  EXPECT_EQ(healthy(), 200);
}

TEST_F(HttpServerTest, AStreamIsChunkedAndEnds) {
  HttpServerOptions o;
  o.pollEvery = 10ms;
  start(o);
  Raw c(server_->port());
  c.send("GET /stream HTTP/1.1\r\nHost: a\r\n\r\n");
  std::string r = c.readAll();
  EXPECT_EQ(statusOf(r), 200);
  EXPECT_NE(r.find("Transfer-Encoding: chunked"), std::string::npos);
  EXPECT_NE(r.find("data: 3"), std::string::npos);
  EXPECT_NE(r.find("\r\n0\r\n\r\n"), std::string::npos);
}

TEST_F(HttpServerTest, StreamsAreCappedAndHeartbeat) {
  HttpServerOptions o;
  o.maxStreams = 2;
  o.pollEvery = 10ms;
  o.heartbeat = 50ms;
  start(o);
  Raw a(server_->port()), b(server_->port());
  a.send("GET /forever HTTP/1.1\r\nHost: a\r\n\r\n");
  b.send("GET /forever HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_NE(a.readUntil(": heartbeat").find(": heartbeat"), std::string::npos);
  b.readUntil(": heartbeat");
  EXPECT_EQ(server_->streams(), 2u);
  Raw c(server_->port());
  c.send("GET /forever HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_EQ(statusOf(c.readAll()), 503);
}

TEST_F(HttpServerTest, AClientThatLeavesAStreamFreesItsSlot) {
  HttpServerOptions o;
  o.maxStreams = 1;
  o.pollEvery = 10ms;
  start(o);
  {
    Raw a(server_->port());
    a.send("GET /forever HTTP/1.1\r\nHost: a\r\n\r\n");
    a.readUntil("\r\n\r\n");
  }
  for (int i = 0; i < 100 && server_->streams() > 0; ++i) std::this_thread::sleep_for(20ms);
  EXPECT_EQ(server_->streams(), 0u);
}

TEST_F(HttpServerTest, StopsWithClientsConnected) {
  start();
  Raw a(server_->port());
  Raw b(server_->port());
  b.send("GET /forever HTTP/1.1\r\nHost: a\r\n\r\n");
  server_->stop();
  SUCCEED();
}

}  // namespace
}  // namespace qabox::web
