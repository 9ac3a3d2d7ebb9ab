#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

// Before any other Beast header: see proxy/beast.h.
#include "proxy/beast.h"

#include <gtest/gtest.h>
#include <boost/asio/ssl.hpp>
#include <boost/beast/websocket.hpp>

#include "unit/proxy/router_fixture.h"

namespace qabox::testing {
namespace {

constexpr size_t kBig = 64 * 1024 * 1024;

// Resident set size of this process, which runs the router, the backend and
// the client: none of them may hold a whole body.
size_t rssBytes() {
  std::ifstream f("/proc/self/statm");
  size_t pages = 0, resident = 0;
  f >> pages >> resident;
  return resident * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

bool sanitized() {
#if defined(__SANITIZE_ADDRESS__)
  return true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
  return true;
#endif
#endif
  return false;
}

char patternByte(size_t i) { return static_cast<char>('a' + (i * 7 + i / 4096) % 26); }

void fillPattern(std::vector<char>& buf, size_t offset) {
  for (size_t i = 0; i < buf.size(); ++i) buf[i] = patternByte(offset + i);
}

TEST_F(RouterTest, LargeUploadStreamsToTheBackend) {
  Latch firstMiB;
  std::atomic<size_t> received{0};
  std::atomic<bool> intact{true};
  TestBackend backend([&](tcp::socket& s) {
    beast::flat_buffer buf;
    http::request_parser<http::buffer_body> p;
    p.body_limit(UINT64_MAX);
    http::read_header(s, buf, p);
    std::vector<char> chunk(64 * 1024);
    while (!p.is_done()) {
      p.get().body().data = chunk.data();
      p.get().body().size = chunk.size();
      boost::system::error_code ec;
      http::read(s, buf, p, ec);
      if (ec && ec != http::error::need_buffer) return;
      size_t n = chunk.size() - p.get().body().size;
      size_t at = received.load();
      for (size_t i = 0; i < n; i += 997) {
        if (chunk[i] != patternByte(at + i)) intact = false;
      }
      received += n;
      if (received.load() >= 1024 * 1024) firstMiB.open();
    }
    std::string reply = "HTTP/1.1 200 OK\r\nContent-Length: " +
                        std::to_string(std::to_string(received.load()).size()) + "\r\n\r\n" +
                        std::to_string(received.load());
    asio::write(s, asio::buffer(reply));
  });
  start();
  route("alpha", EnvState::kReady, backend.port());
  Client c(port());
  size_t rss0 = rssBytes(), rssMax = rss0;
  c.send("POST /upload HTTP/1.1\r\nHost: alpha.qa.test\r\nContent-Length: " + std::to_string(kBig) +
         "\r\n\r\n");
  std::vector<char> chunk(256 * 1024);
  size_t sent = 0;
  while (sent < kBig) {
    fillPattern(chunk, sent);
    asio::write(c.socket(), asio::buffer(chunk));
    sent += chunk.size();
    rssMax = std::max(rssMax, rssBytes());
    if (sent == 8 * 1024 * 1024) {
      // The backend has bytes long before the upload is complete.
      ASSERT_TRUE(firstMiB.wait());
    }
  }
  auto r = c.read();
  EXPECT_EQ(r.result_int(), 200);
  EXPECT_EQ(r.body(), std::to_string(kBig));
  EXPECT_TRUE(intact.load());
  if (!sanitized()) {
    EXPECT_LT(rssMax - rss0, size_t{32} * 1024 * 1024);
  }
}

TEST_F(RouterTest, LargeDownloadStreamsToTheClient) {
  Latch clientHasMiB;
  TestBackend backend([&](tcp::socket& s) {
    beast::flat_buffer buf;
    http::request<http::string_body> req;
    http::read(s, buf, req);
    std::string head = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(kBig) + "\r\n\r\n";
    asio::write(s, asio::buffer(head));
    std::vector<char> chunk(256 * 1024);
    for (size_t sent = 0; sent < kBig; sent += chunk.size()) {
      // The client sees bytes before the backend has sent the rest.
      if (sent == 8 * 1024 * 1024 && !clientHasMiB.wait()) return;
      fillPattern(chunk, sent);
      boost::system::error_code ec;
      asio::write(s, asio::buffer(chunk), ec);
      if (ec) return;
    }
  });
  start();
  route("alpha", EnvState::kReady, backend.port());
  Client c(port());
  size_t rss0 = rssBytes(), rssMax = rss0;
  c.send("GET /big HTTP/1.1\r\nHost: alpha.qa.test\r\n\r\n");
  http::response_parser<http::buffer_body> p;
  p.body_limit(UINT64_MAX);
  http::read_header(c.socket(), c.buffer(), p);
  ASSERT_EQ(p.get().result_int(), 200);
  std::vector<char> chunk(64 * 1024);
  size_t got = 0;
  bool intact = true;
  while (!p.is_done()) {
    p.get().body().data = chunk.data();
    p.get().body().size = chunk.size();
    boost::system::error_code ec;
    http::read(c.socket(), c.buffer(), p, ec);
    ASSERT_TRUE(!ec || ec == http::error::need_buffer) << ec.message();
    size_t n = chunk.size() - p.get().body().size;
    for (size_t i = 0; i < n; i += 997) intact = intact && chunk[i] == patternByte(got + i);
    got += n;
    if (got >= 1024 * 1024) clientHasMiB.open();
    rssMax = std::max(rssMax, rssBytes());
  }
  EXPECT_EQ(got, kBig);
  EXPECT_TRUE(intact);
  if (!sanitized()) {
    EXPECT_LT(rssMax - rss0, size_t{32} * 1024 * 1024);
  }
}

TEST_F(RouterTest, ChunkedBodiesPassThroughBothWays) {
  std::mutex mu;
  std::string seenTe, seenBody;
  TestBackend backend([&](tcp::socket& s) {
    beast::flat_buffer buf;
    http::request<http::string_body> req;
    http::read(s, buf, req);
    {
      std::lock_guard lock(mu);
      seenTe = str(req[http::field::transfer_encoding]);
      seenBody = req.body();
    }
    std::string reply =
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        "4\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\n\r\n";
    asio::write(s, asio::buffer(reply));
    char b[64];
    boost::system::error_code ec;
    while (!ec) s.read_some(asio::buffer(b), ec);
  });
  start();
  route("alpha", EnvState::kReady, backend.port());
  Client c(port());
  c.send(
      "POST /c HTTP/1.1\r\nHost: alpha.qa.test\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3;ext=1\r\nabc\r\n");
  c.send("a\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n");
  auto r = c.read();
  EXPECT_EQ(r.result_int(), 200);
  EXPECT_TRUE(r.chunked());
  EXPECT_EQ(r.body(), "Wikipedia in\r\n\r\nchunks.");
  std::lock_guard lock(mu);
  EXPECT_EQ(seenTe, "chunked");
  EXPECT_EQ(seenBody, "abc0123456789");
}

TEST_F(RouterTest, WebSocketUpgradeIsTunnelled) {
  namespace websocket = beast::websocket;
  auto seenUpgrade = std::make_shared<std::atomic<bool>>(false);
  TestBackend echo([seenUpgrade](tcp::socket& s) {
    websocket::stream<tcp::socket&> ws(s);
    ws.accept();
    *seenUpgrade = true;
    beast::flat_buffer buf;
    for (;;) {
      boost::system::error_code ec;
      ws.read(buf, ec);
      if (ec) return;
      ws.text(ws.got_text());
      ws.write(buf.data(), ec);
      if (ec) return;
      buf.consume(buf.size());
    }
  });
  start();
  route("alpha", EnvState::kReady, echo.port());
  asio::io_context ioc;
  websocket::stream<tcp::socket> ws(ioc);
  ws.next_layer().connect({asio::ip::make_address("127.0.0.1"), port()});
  setReceiveTimeout(ws.next_layer(), std::chrono::seconds(15));
  ws.handshake("alpha.qa.test", "/socket");
  for (std::string msg : {std::string("hello"), std::string(100000, 'w'), std::string("bye")}) {
    ws.write(asio::buffer(msg));
    beast::flat_buffer buf;
    ws.read(buf);
    EXPECT_EQ(beast::buffers_to_string(buf.data()), msg);
    EXPECT_TRUE(seenUpgrade->load());
  }
  EXPECT_EQ(table_->inFlight("127.0.0.1", echo.port()), 1);
  // The close handshake crosses the tunnel both ways, or close() throws.
  ws.close(websocket::close_code::normal);
  EXPECT_TRUE(eventually([&] { return table_->inFlight("127.0.0.1", echo.port()) == 0; }));
}

class TlsRouterTest : public RouterTest {
 protected:
  void SetUp() override {
    dir_ =
        std::filesystem::temp_directory_path() / ("qabox-proxy-tls-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    std::string cmd =
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
        "-days 1 -subj '/CN=*.qa.test' -keyout '" +
        (dir_ / "key.pem").string() + "' -out '" + (dir_ / "cert.pem").string() +
        "' >/dev/null 2>&1";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << "openssl could not make a test certificate";
  }
  void TearDown() override {
    RouterTest::TearDown();
    std::filesystem::remove_all(dir_);
  }
  std::filesystem::path dir_;
};

TEST_F(TlsRouterTest, ServesHttpsWithTheWildcardCertificate) {
  auto seen = std::make_shared<Seen>();
  TestBackend backend(echoHandler("a", seen));
  RouterOptions o;
  o.tlsListen = "127.0.0.1:0";
  o.tlsCert = (dir_ / "cert.pem").string();
  o.tlsKey = (dir_ / "key.pem").string();
  start(o);
  ASSERT_NE(router_->tlsPort(), 0);
  route("alpha", EnvState::kReady, backend.port());

  asio::io_context ioc;
  asio::ssl::context ctx(asio::ssl::context::tls_client);
  ctx.load_verify_file((dir_ / "cert.pem").string());
  ctx.set_verify_mode(asio::ssl::verify_peer);
  asio::ssl::stream<tcp::socket> tls(ioc, ctx);
  SSL_set_tlsext_host_name(tls.native_handle(), "alpha.qa.test");
  tls.set_verify_callback(asio::ssl::host_name_verification("alpha.qa.test"));
  tls.next_layer().connect({asio::ip::make_address("127.0.0.1"), router_->tlsPort()});
  setReceiveTimeout(tls.next_layer(), std::chrono::seconds(15));
  tls.handshake(asio::ssl::stream_base::client);
  for (int i = 0; i < 2; ++i) {
    http::request<http::string_body> req{http::verb::get, "/secure", 11};
    req.set(http::field::host, "alpha.qa.test");
    http::write(tls, req);
    beast::flat_buffer buf;
    http::response<http::string_body> res;
    http::read(tls, buf, res);
    EXPECT_EQ(res.result_int(), 200);
    EXPECT_EQ(res.body(), "a GET /secure 0");
  }
  EXPECT_EQ(str(seen->back()["X-Forwarded-Proto"]), "https");
  // The plain listener still serves.
  Client c(port());
  EXPECT_EQ(c.get("alpha.qa.test").result_int(), 200);
  EXPECT_EQ(str(seen->back()["X-Forwarded-Proto"]), "http");
}

TEST_F(TlsRouterTest, GarbageInsteadOfAHandshakeIsDropped) {
  RouterOptions o;
  o.tlsListen = "127.0.0.1:0";
  o.tlsCert = (dir_ / "cert.pem").string();
  o.tlsKey = (dir_ / "key.pem").string();
  start(o);
  Client c(router_->tlsPort());
  c.send("GET / HTTP/1.1\r\nHost: alpha.qa.test\r\n\r\n");
  c.readAll();
  // The router is still serving.
  Client c2(port());
  EXPECT_EQ(c2.get("nope.qa.test").result_int(), 404);
}

}  // namespace
}  // namespace qabox::testing
