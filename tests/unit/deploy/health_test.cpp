#include "deploy/health.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace qabox {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using std::chrono::milliseconds;

// Opens `acceptor` on a free loopback port; the port.
uint16_t listenOnLoopback(tcp::acceptor& acceptor) {
  tcp::endpoint ep(net::ip::make_address("127.0.0.1"), 0);
  acceptor.open(ep.protocol());
  acceptor.set_option(net::socket_base::reuse_address(true));
  acceptor.bind(ep);
  acceptor.listen();
  return acceptor.local_endpoint().port();
}

// A loopback HTTP server on port 0 answering each request with the next
// status of a script (repeating the last), or never answering at all.
class ScriptedServer {
 public:
  explicit ScriptedServer(std::vector<unsigned> statuses, bool silent = false)
      : statuses_(std::move(statuses)), silent_(silent), acceptor_(ioc_) {
    port_ = listenOnLoopback(acceptor_);
    accept();
    thread_ = std::thread([this] { ioc_.run(); });
  }
  ~ScriptedServer() {
    ioc_.stop();
    thread_.join();
  }
  uint16_t port() const { return port_; }
  size_t requests() {
    std::lock_guard lock(mu_);
    return seen_.size();
  }
  std::vector<std::pair<std::string, std::string>> seen() {
    std::lock_guard lock(mu_);
    return seen_;
  }

 private:
  struct Conn {
    explicit Conn(tcp::socket s) : stream(std::move(s)) {}
    beast::tcp_stream stream;
    beast::flat_buffer buffer;
    http::request<http::string_body> req;
    http::response<http::string_body> res;
  };

  void accept() {
    acceptor_.async_accept([this](beast::error_code ec, tcp::socket socket) {
      if (ec) return;
      auto conn = std::make_shared<Conn>(std::move(socket));
      conns_.push_back(conn);  // silent mode keeps them open
      http::async_read(
          conn->stream, conn->buffer, conn->req, [this, conn](beast::error_code rec, size_t) {
            if (rec) return;
            unsigned status;
            {
              std::lock_guard lock(mu_);
              seen_.emplace_back(std::string(conn->req.target()),
                                 std::string(conn->req[http::field::host]));
              size_t i = std::min(seen_.size() - 1, statuses_.size() - 1);
              status = statuses_[i];
            }
            if (silent_) return;
            conn->res.result(status);
            conn->res.version(11);
            conn->res.body() = "status " + std::to_string(status) + "\n";
            conn->res.prepare_payload();
            http::async_write(conn->stream, conn->res, [conn](beast::error_code, size_t) {
              beast::error_code ignored;
              conn->stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
            });
          });
      accept();
    });
  }

  std::vector<unsigned> statuses_;
  bool silent_;
  net::io_context ioc_;
  tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::pair<std::string, std::string>> seen_;
  std::vector<std::shared_ptr<Conn>> conns_;
};

// A loopback port nothing listens on: bound, then closed.
uint16_t closedPort() {
  net::io_context ioc;
  tcp::acceptor a(ioc, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
  uint16_t port = a.local_endpoint().port();
  a.close();
  return port;
}

double msSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() -
                                                               t0)
             .count() /
         1000.0;
}

TEST(Health, ErrorThenOkIsHealthy) {
  ScriptedServer server({500, 500, 200});
  auto t0 = std::chrono::steady_clock::now();
  auto s = waitHealthy("127.0.0.1", server.port(), "/healthz", milliseconds(5'000));
  double took = msSince(t0);
  ASSERT_TRUE(s.isOk()) << s.toString();
  EXPECT_EQ(server.requests(), 3u);
  for (const auto& [target, host] : server.seen()) {
    EXPECT_EQ(target, "/healthz");
    EXPECT_EQ(host, "127.0.0.1:" + std::to_string(server.port()));
  }
  // Retries are tens of milliseconds apart, not seconds.
  EXPECT_LT(took, 500.0);
}

TEST(Health, RedirectCountsAsHealthy) {
  ScriptedServer server({302});
  EXPECT_TRUE(waitHealthy("127.0.0.1", server.port(), "/", milliseconds(2'000)).isOk());
}

TEST(Health, NothingListeningIsDeadlineExceededWithConnectionRefused) {
  uint16_t port = closedPort();
  auto t0 = std::chrono::steady_clock::now();
  auto s = waitHealthy("127.0.0.1", port, "/", milliseconds(300));
  double took = msSince(t0);
  EXPECT_EQ(s.code(), Code::kDeadlineExceeded);
  EXPECT_EQ(s.message(), "health check GET http://127.0.0.1:" + std::to_string(port) +
                             "/: no 2xx/3xx answer within 300ms (last: connection refused)");
  EXPECT_GE(took, 290.0);
  EXPECT_LT(took, 1'500.0);
}

TEST(Health, PersistentErrorNamesTheLastStatus) {
  ScriptedServer server({503});
  auto s = waitHealthy("127.0.0.1", server.port(), "/", milliseconds(200));
  EXPECT_EQ(s.code(), Code::kDeadlineExceeded);
  EXPECT_NE(s.message().find("(last: HTTP 503)"), std::string::npos) << s.message();
  EXPECT_GE(server.requests(), 2u);
}

TEST(Health, SilentServerTimesOutPerAttempt) {
  ScriptedServer server({200}, /*silent=*/true);
  auto t0 = std::chrono::steady_clock::now();
  auto s = waitHealthy("127.0.0.1", server.port(), "/", milliseconds(700));
  double took = msSince(t0);
  EXPECT_EQ(s.code(), Code::kDeadlineExceeded);
  EXPECT_NE(s.message().find("(last: timed out)"), std::string::npos) << s.message();
  // One ~500 ms attempt, then a second cut short by the overall deadline.
  EXPECT_GE(server.requests(), 2u);
  EXPECT_LT(took, 1'500.0);
}

TEST(Health, CancelStopsWaiting) {
  uint16_t port = closedPort();
  std::atomic<int> asked{0};
  auto s = waitHealthy("127.0.0.1", port, "/", milliseconds(10'000), [&] { return ++asked > 3; });
  EXPECT_EQ(s.code(), Code::kCancelled);
  EXPECT_EQ(asked.load(), 4);
}

TEST(Health, BadInputIsInvalidArgument) {
  EXPECT_EQ(waitHealthy("127.0.0.1", 80, "healthz", milliseconds(100)).code(),
            Code::kInvalidArgument);
  EXPECT_EQ(waitHealthy("127.0.0.1", 80, "/a b", milliseconds(100)).code(), Code::kInvalidArgument);
  EXPECT_EQ(waitHealthy("127.0.0.1", 80, "/\r\nX: y", milliseconds(100)).code(),
            Code::kInvalidArgument);
  EXPECT_EQ(waitHealthy("not-an-ip", 80, "/", milliseconds(100)).code(), Code::kInvalidArgument);
  EXPECT_EQ(waitHealthy("127.0.0.1", 0, "/", milliseconds(100)).code(), Code::kInvalidArgument);
}

TEST(Health, ProbeReportsStatus) {
  ScriptedServer server({404});
  HealthProbe p = probeHealth("127.0.0.1", server.port(), "/x", milliseconds(1'000));
  EXPECT_FALSE(p.healthy);
  EXPECT_EQ(p.httpStatus, 404u);
  EXPECT_EQ(p.detail, "HTTP 404");
}

// Reads the request head, then writes `head` and `fill` repeated up to
// `repeats` times (endless for the probe's purposes), then closes, or with
// `hold` waits for the probe to close. Past `fullAnswers` connections it
// writes the head alone and holds.
class RawServer {
 public:
  RawServer(std::string head, std::string fill, size_t repeats, bool hold = false,
            size_t fullAnswers = SIZE_MAX)
      : head_(std::move(head)),
        fill_(std::move(fill)),
        repeats_(repeats),
        hold_(hold),
        fullAnswers_(fullAnswers),
        acceptor_(ioc_) {
    port_ = listenOnLoopback(acceptor_);
    thread_ = std::thread([this] { serve(); });
  }
  ~RawServer() {
    stopping_ = true;
    beast::error_code ec;
    tcp::socket wake(ioc_);
    wake.connect(acceptor_.local_endpoint(), ec);
    thread_.join();
  }
  uint16_t port() const { return port_; }

 private:
  void serve() {
    while (!stopping_) {
      tcp::socket s(ioc_);
      beast::error_code ec;
      acceptor_.accept(s, ec);
      if (ec || stopping_) return;
      std::string req;
      net::read_until(s, net::dynamic_buffer(req), "\r\n\r\n", ec);
      net::write(s, net::buffer(head_), ec);
      const bool full = served_++ < fullAnswers_;
      for (size_t i = 0; full && i < repeats_ && !ec && !stopping_; ++i) {
        net::write(s, net::buffer(fill_), ec);
      }
      char c[512];
      while ((hold_ || !full) && !ec && !stopping_) s.read_some(net::buffer(c), ec);
    }
  }
  std::string head_, fill_;
  size_t repeats_;
  bool hold_;
  size_t fullAnswers_, served_ = 0;
  std::atomic<bool> stopping_{false};
  net::io_context ioc_;
  tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::thread thread_;
};

TEST(Health, EndlessHeaderLinesAreUnhealthyAndBounded) {
  RawServer server("HTTP/1.1 200 OK\r\n", "X-Endless: yes\r\n", 1'000'000);
  auto t0 = std::chrono::steady_clock::now();
  HealthProbe p = probeHealth("127.0.0.1", server.port(), "/", milliseconds(2'000));
  EXPECT_FALSE(p.healthy);
  EXPECT_EQ(p.detail, "the answer's head is larger than 16 KiB");
  EXPECT_LT(msSince(t0), 1'000.0);
  auto s = waitHealthy("127.0.0.1", server.port(), "/", milliseconds(300));
  EXPECT_EQ(s.code(), Code::kDeadlineExceeded);
  EXPECT_NE(s.message().find("(last: the answer's head is larger than 16 KiB)"), std::string::npos)
      << s.message();
}

TEST(Health, EndlessBodyIsUnhealthyAndBounded) {
  RawServer server("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                   "4000\r\n" + std::string(0x4000, 'b') + "\r\n", 1'000'000);
  HealthProbe p = probeHealth("127.0.0.1", server.port(), "/", milliseconds(2'000));
  EXPECT_FALSE(p.healthy);
  EXPECT_EQ(p.httpStatus, 200u);
  EXPECT_EQ(p.detail, "HTTP 200, but the answer's body is larger than 1 MiB");
}

// On a loaded host the last attempt, cut short by the deadline, may time out
// mid-body: the reason the deploy fails with is still the earlier, telling one.
TEST(Health, AnAttemptCutShortByTheDeadlineKeepsTheEarlierReason) {
  RawServer server("HTTP/1.1 200 OK\r\n\r\n", std::string(0x4000, 'b'), 1'000'000, false, 1);
  auto s = waitHealthy("127.0.0.1", server.port(), "/", milliseconds(400));
  EXPECT_EQ(s.code(), Code::kDeadlineExceeded);
  EXPECT_NE(s.message().find("(last: HTTP 200, but the answer's body is larger than 1 MiB)"),
            std::string::npos)
      << s.message();
}

TEST(Health, BodyThatNeverEndsTimesOut) {
  RawServer server("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nsome", "", 0, true);
  HealthProbe p = probeHealth("127.0.0.1", server.port(), "/", milliseconds(300));
  EXPECT_FALSE(p.healthy);
  EXPECT_EQ(p.detail, "HTTP 200, but the answer did not end in time");
}

TEST(Health, EndlessChunkLineIsUnhealthy) {
  RawServer server("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;",
                   std::string(4096, 'a'), 100'000);
  HealthProbe p = probeHealth("127.0.0.1", server.port(), "/", milliseconds(2'000));
  EXPECT_FALSE(p.healthy);
  EXPECT_EQ(p.detail, "HTTP 200, but the answer has a chunk line or trailer larger than 64 KiB");
}

}  // namespace
}  // namespace qabox
