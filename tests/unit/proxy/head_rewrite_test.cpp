#include <gtest/gtest.h>

#include <string>

#include "proxy/head_rewrite.h"

namespace qabox::proxy_internal {
namespace {

namespace http = boost::beast::http;

std::string field(const Fields& m, std::string_view name) {
  auto it = m.find(boost::beast::string_view(name.data(), name.size()));
  return it == m.end() ? std::string("<none>") : std::string(it->value());
}

TEST(RewriteRequestHead, DropsHopByHopFieldsAndAddsForwardedOnes) {
  Request m;
  m.version(10);
  m.set(http::field::host, "exmp-1.qa.test");
  m.set(http::field::connection, "keep-alive, X-Secret");
  m.set(http::field::keep_alive, "timeout=5");
  m.set(http::field::te, "trailers");
  m.set(http::field::expect, "100-continue");
  m.set(http::field::upgrade, "h2c");
  m.insert("X-Forwarded-For", "203.0.113.9");
  m.insert("x-forwarded-for", "198.51.100.2");
  rewriteRequestHead(m, false, "10.0.0.1", true);
  EXPECT_EQ(m.version(), 11);
  EXPECT_EQ(field(m, "Connection"), "<none>");
  EXPECT_EQ(field(m, "Keep-Alive"), "<none>");
  EXPECT_EQ(field(m, "TE"), "<none>");
  EXPECT_EQ(field(m, "Expect"), "<none>");
  EXPECT_EQ(field(m, "Upgrade"), "<none>");
  EXPECT_EQ(field(m, "X-Forwarded-For"), "203.0.113.9, 198.51.100.2, 10.0.0.1");
  EXPECT_EQ(field(m, "X-Forwarded-Proto"), "https");
  EXPECT_EQ(field(m, "X-Forwarded-Host"), "exmp-1.qa.test");
}

TEST(RewriteRequestHead, KeepsTheUpgradeOfAWebSocket) {
  Request m;
  m.set(http::field::host, "exmp-1.qa.test");
  m.set(http::field::upgrade, "websocket");
  m.set(http::field::connection, "upgrade, keep-alive");
  rewriteRequestHead(m, true, "10.0.0.1", false);
  EXPECT_EQ(field(m, "Upgrade"), "websocket");
  EXPECT_EQ(field(m, "Connection"), "Upgrade");
  EXPECT_EQ(field(m, "X-Forwarded-For"), "10.0.0.1");
  EXPECT_EQ(field(m, "X-Forwarded-Proto"), "http");
}

TEST(RewriteResponseHead, FramesTheBodySoTheClientsConnectionCanSurvive) {
  struct Case {
    unsigned code;
    bool chunked, hasLength, isHead, clientV10, stopping;
    bool wantNoBody, wantChunked, wantKeepAlive;
    std::string wantConnection;
  };
  for (const Case& c : {
           // HTTP/1.1 client: a body until close becomes chunked.
           Case{200, false, false, false, false, false, false, true, true, "<none>"},
           Case{200, true, false, false, false, false, false, true, true, "<none>"},
           Case{200, false, true, false, false, false, false, false, true, "<none>"},
           // HTTP/1.0 client: no chunks; a body without a length ends the connection.
           Case{200, true, false, false, true, false, false, false, false, "close"},
           Case{200, false, false, false, true, false, false, false, false, "close"},
           Case{200, false, true, false, true, false, false, false, true, "keep-alive"},
           // No body at all.
           Case{204, false, false, false, false, false, true, false, true, "<none>"},
           Case{304, false, false, false, false, false, true, false, true, "<none>"},
           Case{200, false, false, true, false, false, true, false, true, "<none>"},
           // The router is stopping: every connection ends.
           Case{200, false, true, false, false, true, false, false, false, "close"},
       }) {
    Response m;
    m.result(c.code);
    m.version(10);
    m.set(http::field::connection, "keep-alive");
    m.set(http::field::keep_alive, "timeout=5");
    m.set(http::field::upgrade, "h2c");
    if (c.chunked) m.set(http::field::transfer_encoding, "chunked");
    if (c.hasLength) m.set(http::field::content_length, "5");
    HeadFacts head;
    head.isHead = c.isHead;
    head.clientV10 = c.clientV10;
    head.keepAlive = true;
    bool noBody = rewriteResponseHead(m, c.chunked, c.hasLength, head, c.stopping);
    std::string what = std::to_string(c.code) + " chunked=" + std::to_string(c.chunked) +
                       " length=" + std::to_string(c.hasLength) +
                       " head=" + std::to_string(c.isHead) + " v10=" + std::to_string(c.clientV10) +
                       " stopping=" + std::to_string(c.stopping);
    EXPECT_EQ(noBody, c.wantNoBody) << what;
    EXPECT_EQ(m.chunked(), c.wantChunked) << what;
    EXPECT_EQ(head.keepAlive, c.wantKeepAlive) << what;
    EXPECT_EQ(field(m, "Connection"), c.wantConnection) << what;
    EXPECT_EQ(field(m, "Keep-Alive"), "<none>") << what;
    EXPECT_EQ(field(m, "Upgrade"), "<none>") << what;
    EXPECT_EQ(m.version(), 11) << what;
  }
}

}  // namespace
}  // namespace qabox::proxy_internal
