// Backends that answer with hostile bytes. The router runs in this process:
// an exception escaping a handler ends the test binary. Each case checks
// what the client gets (a 502, or a cut connection once the response has
// started), that the router serves another backend right after, and that
// nothing is buffered without bound.

#include <poll.h>
#include <unistd.h>

#include <fstream>

// Before any other Beast header: see proxy/beast.h.
#include "proxy/beast.h"

#include <gtest/gtest.h>
#include <boost/asio/read_until.hpp>

#include "proxy/route_internal.h"
#include "unit/contains.h"
#include "unit/proxy/router_fixture.h"

namespace qabox::testing {
namespace {

size_t rssBytes() {
  std::ifstream f("/proc/self/statm");
  size_t pages = 0, resident = 0;
  f >> pages >> resident;
  return resident * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

// Reads the request head, then writes `answer` and, unless `hold`, closes.
// A held connection stays open until the router closes it (or 10 s).
TestBackend::Handler rawAnswer(std::string answer, bool hold = true) {
  return [answer = std::move(answer), hold](tcp::socket& s) {
    std::string buf;
    boost::system::error_code ec;
    asio::read_until(s, asio::dynamic_buffer(buf), "\r\n\r\n", ec);
    if (ec) return;
    asio::write(s, asio::buffer(answer), ec);
    if (!hold) s.shutdown(tcp::socket::shutdown_both, ec);
    if (ec || !hold) return;
    setReceiveTimeout(s, std::chrono::seconds(10));
    char c[4096];
    while (!ec) s.read_some(asio::buffer(c), ec);
  };
}

// Writes `head`, then `fill` bytes forever, until the router stops reading.
// `written` counts what the kernel took.
TestBackend::Handler endless(std::string head, char fill,
                             std::shared_ptr<std::atomic<size_t>> written = nullptr) {
  return [head = std::move(head), fill, written](tcp::socket& s) {
    std::string buf;
    boost::system::error_code ec;
    asio::read_until(s, asio::dynamic_buffer(buf), "\r\n\r\n", ec);
    if (ec) return;
    asio::write(s, asio::buffer(head), ec);
    std::string block(16 * 1024, fill);
    for (int i = 0; i < 64 * 1024 && !ec; ++i) {
      size_t n = asio::write(s, asio::buffer(block), ec);
      if (written) written->fetch_add(n);
    }
  };
}

std::string repeat(std::string_view s, size_t times) {
  std::string out;
  out.reserve(s.size() * times);
  for (size_t i = 0; i < times; ++i) out += s;
  return out;
}

class HostileBackendTest : public RouterTest {
 protected:
  void SetUp() override {
    good_ = std::make_unique<TestBackend>(echoHandler("good", seen_));
    RouterOptions o;
    o.backendTimeout = std::chrono::milliseconds(3000);
    o.idleTimeout = std::chrono::milliseconds(3000);
    start(o);
    route("good", EnvState::kReady, good_->port());
    caughtBefore_ = proxy_internal::caughtExceptions();
  }
  void TearDown() override {
    // The fixes turn hostile bytes into errors: no case may need the last
    // barrier that catches exceptions.
    EXPECT_EQ(proxy_internal::caughtExceptions(), caughtBefore_);
    RouterTest::TearDown();
  }

  // Another environment answers through the router on a new connection.
  void expectOthersServed() {
    Client other(port());
    auto r = other.get("good.qa.test", "/after");
    EXPECT_EQ(r.result_int(), 200);
    EXPECT_EQ(r.body(), "good GET /after 0");
  }

  // One GET to `bad`; the response, or nullopt if the router closed the
  // connection before a whole response.
  std::optional<http::response<http::string_body>> getBad(Client& c) {
    c.send("GET /x HTTP/1.1\r\nHost: bad.qa.test\r\n\r\n");
    try {
      return c.read();
    } catch (const boost::system::system_error&) {
      return std::nullopt;
    }
  }

  void expect502(const std::string& answer, std::string_view why, bool hold = true) {
    TestBackend bad(rawAnswer(answer, hold));
    route("bad", EnvState::kReady, bad.port());
    Client c(port());
    auto r = getBad(c);
    ASSERT_TRUE(r.has_value()) << "the router cut the connection instead of answering 502";
    EXPECT_EQ(r->result_int(), 502);
    EXPECT_TRUE(contains(r->body(), why)) << r->body();
    // The same client connection goes on to another environment.
    auto next = c.get("good.qa.test", "/same-connection");
    EXPECT_EQ(next.result_int(), 200);
    expectOthersServed();
  }

  // The response head may have gone out: the client sees the connection end
  // before a whole response.
  void expectCut(const std::string& answer, bool hold = true) {
    TestBackend bad(rawAnswer(answer, hold));
    route("bad", EnvState::kReady, bad.port());
    Client c(port());
    auto start = std::chrono::steady_clock::now();
    auto r = getBad(c);
    EXPECT_FALSE(r.has_value()) << "a broken response reached the client as whole: "
                                << r->result_int();
    // Cut at once, not at a timeout.
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(2500));
    expectOthersServed();
  }

  std::shared_ptr<Seen> seen_ = std::make_shared<Seen>();
  std::unique_ptr<TestBackend> good_;
  uint64_t caughtBefore_ = 0;
};

constexpr std::string_view kChunkedHead = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";

TEST_F(HostileBackendTest, EndlessChunkExtensionIsCut) {
  // The answer from issue 12: a chunk line that never ends.
  expectCut(std::string(kChunkedHead) + "1;" + std::string(100 * 1024, 'a'));
}

TEST_F(HostileBackendTest, EndlessChunkExtensionAfterAGoodChunkIsCut) {
  expectCut(std::string(kChunkedHead) + "5\r\nhello\r\n3;x=" + std::string(200 * 1024, 'b'));
}

TEST_F(HostileBackendTest, EndlessChunkSizeDigitsAreCut) {
  expectCut(std::string(kChunkedHead) + std::string(100 * 1024, '1'));
}

TEST_F(HostileBackendTest, HugeChunkSizeIsCut) {
  expectCut(std::string(kChunkedHead) + "ffffffffffffffffffff\r\nabc");
}

TEST_F(HostileBackendTest, EndlessTrailersAreCut) {
  expectCut(std::string(kChunkedHead) + "3\r\nabc\r\n0\r\n" + repeat("X-Trailer: yes\r\n", 20000));
}

TEST_F(HostileBackendTest, OneHugeTrailerFieldIsCut) {
  // A trailer field of 70000 bytes fits the body buffer but not Beast's field
  // (at most 65533 bytes, else it throws).
  expectCut(std::string(kChunkedHead) + "3\r\nabc\r\n0\r\nX-Big: " + std::string(70000, 'v') +
            "\r\n\r\n");
}

TEST_F(HostileBackendTest, BodyShorterThanContentLengthThenCloseIsCut) {
  expectCut("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\nonly this", false);
}

TEST_F(HostileBackendTest, ChunkedBodyEndingEarlyIsCut) {
  expectCut(std::string(kChunkedHead) + "10\r\nshort", false);
}

TEST_F(HostileBackendTest, EndlessHeaderLinesAre502) {
  expect502("HTTP/1.1 200 OK\r\n" + repeat("X-Endless: yes\r\n", 20000), "response head");
}

TEST_F(HostileBackendTest, OneEndlessHeaderLineIs502) {
  expect502("HTTP/1.1 200 OK\r\nX-Long: " + std::string(200 * 1024, 'h'), "response head");
}

TEST_F(HostileBackendTest, EndlessStatusLineIs502) {
  expect502("HTTP/1.1 200 " + std::string(200 * 1024, 'O'), "response head");
}

TEST_F(HostileBackendTest, TooManyHeaderFieldsAre502) {
  expect502("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n" + repeat("a: b\r\n", 1000) + "\r\n",
            "header fields");
}

TEST_F(HostileBackendTest, InterimResponseFloodIs502) {
  expect502(repeat("HTTP/1.1 100 Continue\r\n\r\n", 1000), "interim");
}

TEST_F(HostileBackendTest, UnaskedUpgradeIs502) {
  expect502("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
            "not valid HTTP/1.1");
}

TEST_F(HostileBackendTest, GarbageStatusLinesAre502) {
  for (std::string answer :
       {std::string("HTTP/1.1 2000 OK\r\n\r\n"), std::string("ICY 200\r\n\r\n"),
        std::string("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n"
                    "Content-Length: 2\r\n\r\nab"),
        std::string("HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n"),
        std::string("\0\0\0\0\r\n\r\n", 8)}) {
    SCOPED_TRACE(answer);
    expect502(answer, "not valid HTTP/1.1");
  }
}

TEST_F(HostileBackendTest, CloseBeforeAnyAnswerIs502) {
  expect502("", "closed the connection without answering", false);
}

TEST_F(HostileBackendTest, ClientThatNeverReadsHoldsNoMoreThanTheSocketBuffers) {
  auto written = std::make_shared<std::atomic<size_t>>(0);
  TestBackend bad(endless("HTTP/1.1 200 OK\r\nContent-Length: 100000000000\r\n\r\n", 'x', written));
  route("bad", EnvState::kReady, bad.port());
  size_t before = rssBytes();
  Client c(port());
  c.send("GET /x HTTP/1.1\r\nHost: bad.qa.test\r\n\r\n");
  // The backend writes as fast as the router takes; the client reads nothing.
  size_t last = 0;
  for (int i = 0; i < 50; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(40));
    size_t now = written->load();
    if (i > 10 && now == last) break;
    last = now;
  }
  EXPECT_LT(written->load(), 64u * 1024 * 1024)
      << "the router buffers what the client does not read";
  EXPECT_LT(rssBytes(), before + 32u * 1024 * 1024);
  expectOthersServed();
}

TEST_F(HostileBackendTest, WebSocketBackendThatNeverReadsStopsTheClient) {
  // Accepts the upgrade, then never reads.
  auto done = std::make_shared<Latch>();
  TestBackend bad([done](tcp::socket& s) {
    std::string buf;
    boost::system::error_code ec;
    asio::read_until(s, asio::dynamic_buffer(buf), "\r\n\r\n", ec);
    if (ec) return;
    std::string ok =
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: x\r\n\r\n";
    asio::write(s, asio::buffer(ok), ec);
    done->wait(std::chrono::seconds(10));
  });
  route("bad", EnvState::kReady, bad.port());
  size_t before = rssBytes();
  Client c(port());
  c.send(
      "GET /ws HTTP/1.1\r\nHost: bad.qa.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
      "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n");
  std::string head;
  asio::read_until(c.socket(), asio::dynamic_buffer(head), "\r\n\r\n");
  ASSERT_TRUE(contains(head, " 101 "));
  // The client writes until the tunnel pushes back.
  c.socket().non_blocking(true);
  std::string block(64 * 1024, 'w');
  size_t sent = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (std::chrono::steady_clock::now() < deadline && sent < 512u * 1024 * 1024) {
    boost::system::error_code ec;
    size_t n = c.socket().write_some(asio::buffer(block), ec);
    sent += n;
    if (ec == asio::error::would_block) {
      pollfd p{c.socket().native_handle(), POLLOUT, 0};
      ::poll(&p, 1, 100);
    } else if (ec) {
      break;
    }
  }
  EXPECT_LT(sent, 64u * 1024 * 1024) << "the tunnel buffers what the backend does not read";
  EXPECT_LT(rssBytes(), before + 32u * 1024 * 1024);
  expectOthersServed();
  done->open();
}

TEST_F(RouterTest, HeaderValueBeyondBeastsFieldSizeIs431) {
  // Beast's fields hold at most 65533 bytes per value and throw beyond that;
  // with a larger head limit the parser must not be the one to find out.
  auto seen = std::make_shared<Seen>();
  TestBackend backend(echoHandler("a", seen));
  RouterOptions o;
  o.maxHeaderBytes = 256 * 1024;
  start(o);
  route("alpha", EnvState::kReady, backend.port());
  uint64_t caught = proxy_internal::caughtExceptions();
  Client c(port());
  c.send("GET / HTTP/1.1\r\nHost: alpha.qa.test\r\nX-Big: " + std::string(70000, 'v') + "\r\n\r\n");
  auto r = c.read();
  EXPECT_EQ(r.result_int(), 431);
  Client again(port());
  EXPECT_EQ(again.get("alpha.qa.test").result_int(), 200);
  EXPECT_EQ(proxy_internal::caughtExceptions(), caught);
}

TEST_F(RouterTest, ClientEndlessChunkExtensionOrTrailerIsRefused) {
  auto seen = std::make_shared<Seen>();
  TestBackend backend(echoHandler("a", seen));
  RouterOptions o;
  o.maxHeaderBytes = 256 * 1024;  // buffers large enough for a trailer Beast cannot hold
  start(o);
  route("alpha", EnvState::kReady, backend.port());
  uint64_t caught = proxy_internal::caughtExceptions();
  const std::string head =
      "POST /up HTTP/1.1\r\nHost: alpha.qa.test\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (std::string body : {"1;" + std::string(400 * 1024, 'a'),
                           "3\r\nabc\r\n0\r\nX-Big: " + std::string(70000, 't') + "\r\n\r\n"}) {
    Client c(port());
    c.send(head);
    boost::system::error_code ec;
    asio::write(c.socket(), asio::buffer(body), ec);  // the router may stop reading first
    http::response<http::string_body> r;
    try {
      r = c.read();
    } catch (const boost::system::system_error&) {
    }
    EXPECT_TRUE(r.result_int() == 400 || r.result_int() == 431) << r.result_int();
    Client again(port());
    EXPECT_EQ(again.get("alpha.qa.test").result_int(), 200);
  }
  EXPECT_EQ(proxy_internal::caughtExceptions(), caught);
}

}  // namespace
}  // namespace qabox::testing
