#include <gtest/gtest.h>

#include "proxy/request_check.h"

namespace qabox::proxy_internal {
namespace {

constexpr std::string_view kDomain = "qa.test";

struct Case {
  std::string name;
  std::string request;
  unsigned status;  // 0: forwarded
};

// Every request is also fed one byte at a time and in odd pieces: the
// verdict must not depend on how the bytes arrive.
void expectVerdict(const Case& c) {
  for (size_t split : {size_t{0}, size_t{1}, size_t{7}}) {
    HeadVerdict v = inspectRequest(c.request, kDomain, 16 * 1024, 100, split);
    EXPECT_TRUE(v.complete) << c.name << " split " << split;
    EXPECT_EQ(v.status, c.status) << c.name << " split " << split << ": " << v.reason;
  }
}

TEST(RequestCheck, ForwardsOrdinaryRequests) {
  for (const Case& c : std::vector<Case>{
           {"get", "GET / HTTP/1.1\r\nHost: alpha.qa.test\r\n\r\n", 0},
           {"http10", "GET / HTTP/1.0\r\nHost: alpha.qa.test\r\n\r\n", 0},
           {"content-length",
            "POST /x HTTP/1.1\r\nHost: alpha.qa.test\r\nContent-Length: 3\r\n\r\nabc", 0},
           {"chunked",
            "POST /x HTTP/1.1\r\nHost: alpha.qa.test\r\nTransfer-Encoding: chunked\r\n\r\n"
            "3\r\nabc\r\n0\r\n\r\n",
            0},
           {"chunked any case",
            "POST / HTTP/1.1\r\nHost: a.qa.test\r\nTransfer-Encoding: Chunked\r\n\r\n0\r\n\r\n", 0},
           {"expect",
            "POST / HTTP/1.1\r\nHost: a.qa.test\r\nExpect: 100-continue\r\nContent-Length: "
            "1\r\n\r\nx",
            0},
           {"absolute-form", "GET http://alpha.qa.test/p?q HTTP/1.1\r\nHost: other\r\n\r\n", 0},
           {"options *", "OPTIONS * HTTP/1.1\r\nHost: alpha.qa.test\r\n\r\n", 0},
           {"obs-text in value", "GET / HTTP/1.1\r\nHost: a.qa.test\r\nX-Name: caf\xc3\xa9\r\n\r\n",
            0},
       }) {
    expectVerdict(c);
  }
  HeadVerdict v = inspectRequest("GET http://Alpha.qa.test/p HTTP/1.1\r\nHost: x\r\n\r\n", kDomain);
  EXPECT_EQ(v.slug, "alpha");
  v = inspectRequest(
      "POST /x HTTP/1.1\r\nHost: alpha.qa.test\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
      kDomain, 16 * 1024, 100, 1);
  EXPECT_TRUE(v.bodyDone);
  EXPECT_EQ(v.bodyBytes, 5u);
}

TEST(RequestCheck, RejectsSmugglingShapes) {
  for (const Case& c : std::vector<Case>{
           {"CL then TE",
            "POST / HTTP/1.1\r\nHost: a.qa.test\r\nContent-Length: 5\r\nTransfer-Encoding: "
            "chunked\r\n\r\n0\r\n\r\n",
            400},
           {"TE then CL",
            "POST / HTTP/1.1\r\nHost: a.qa.test\r\nTransfer-Encoding: chunked\r\nContent-Length: "
            "5\r\n\r\n0\r\n\r\n",
            400},
           {"two differing CL",
            "POST / HTTP/1.1\r\nHost: a.qa.test\r\nContent-Length: 4\r\nContent-Length: "
            "5\r\n\r\nabcd",
            400},
           {"two equal CL",
            "POST / HTTP/1.1\r\nHost: a.qa.test\r\nContent-Length: 4\r\nContent-Length: "
            "4\r\n\r\nabcd",
            400},
           {"CL list", "POST / HTTP/1.1\r\nHost: a.qa.test\r\nContent-Length: 4, 4\r\n\r\nabcd",
            400},
           {"CL sign", "POST / HTTP/1.1\r\nHost: a.qa.test\r\nContent-Length: +4\r\n\r\nabcd", 400},
           // Once read a byte past the target (found by the fuzzer, under ASan).
           {"absolute-form, mixed-case scheme, no authority",
            "GET htTp:// HTTP/1.1\r\nHost: other\r\n\r\n", 400},
           {"TE chunked not last",
            "POST / HTTP/1.1\r\nHost: a.qa.test\r\nTransfer-Encoding: chunked, "
            "gzip\r\n\r\n0\r\n\r\n",
            400},
           {"TE gzip only", "POST / HTTP/1.1\r\nHost: a.qa.test\r\nTransfer-Encoding: gzip\r\n\r\n",
            400},
           {"TE twice chunked",
            "POST / HTTP/1.1\r\nHost: a.qa.test\r\nTransfer-Encoding: chunked, "
            "chunked\r\n\r\n0\r\n\r\n",
            400},
           {"TE coding list",
            "POST / HTTP/1.1\r\nHost: a.qa.test\r\nTransfer-Encoding: gzip, "
            "chunked\r\n\r\n0\r\n\r\n",
            400},
           {"two TE fields",
            "POST / HTTP/1.1\r\nHost: a.qa.test\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: "
            "chunked\r\n\r\n0\r\n\r\n",
            400},
           {"TE xchunked",
            "POST / HTTP/1.1\r\nHost: a.qa.test\r\nTransfer-Encoding: xchunked\r\n\r\n", 400},
           {"TE in HTTP/1.0",
            "POST / HTTP/1.0\r\nHost: a.qa.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400},
           {"obs-fold", "GET / HTTP/1.1\r\nHost: a.qa.test\r\nX-A: 1\r\n 2\r\n\r\n", 400},
           {"obs-fold tab", "GET / HTTP/1.1\r\nX-A: 1\r\n\t2\r\nHost: a.qa.test\r\n\r\n", 400},
           {"obs-fold of TE",
            "POST / HTTP/1.1\r\nHost: a.qa.test\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n",
            400},
           {"space before colon", "GET / HTTP/1.1\r\nHost : a.qa.test\r\n\r\n", 400},
           {"space in name", "GET / HTTP/1.1\r\nHost: a.qa.test\r\nX A: 1\r\n\r\n", 400},
           {"control in name", "GET / HTTP/1.1\r\nHost: a.qa.test\r\nX\x01: 1\r\n\r\n", 400},
           {"control in value", "GET / HTTP/1.1\r\nHost: a.qa.test\r\nX-A: 1\x01 2\r\n\r\n", 400},
           {"NUL in value",
            std::string("GET / HTTP/1.1\r\nHost: a.qa.test\r\nX-A: 1\0 2\r\n\r\n", 46), 400},
           {"bare LF", "GET / HTTP/1.1\nHost: a.qa.test\n\n", 400},
           {"bare CR", "GET / HTTP/1.1\r\nHost: a.qa.test\rX: y\r\n\r\n", 400},
           {"missing Host", "GET / HTTP/1.1\r\n\r\n", 400},
           {"missing Host 1.0", "GET / HTTP/1.0\r\n\r\n", 400},
           {"two Host", "GET / HTTP/1.1\r\nHost: a.qa.test\r\nHost: b.qa.test\r\n\r\n", 400},
           {"empty Host", "GET / HTTP/1.1\r\nHost:\r\n\r\n", 400},
           {"IP Host", "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 400},
           {"other domain", "GET / HTTP/1.1\r\nHost: a.evil.test\r\n\r\n", 400},
           {"two labels", "GET / HTTP/1.1\r\nHost: a.b.qa.test\r\n\r\n", 400},
           {"userinfo", "GET http://u@a.qa.test/ HTTP/1.1\r\nHost: a.qa.test\r\n\r\n", 400},
           {"authority-form", "GET a.qa.test:80 HTTP/1.1\r\nHost: a.qa.test\r\n\r\n", 400},
           {"CONNECT", "CONNECT a.qa.test:443 HTTP/1.1\r\nHost: a.qa.test\r\n\r\n", 405},
           {"star not OPTIONS", "GET * HTTP/1.1\r\nHost: a.qa.test\r\n\r\n", 400},
           {"bad chunk size",
            "POST / HTTP/1.1\r\nHost: a.qa.test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400},
           {"HTTP/2.0", "GET / HTTP/2.0\r\nHost: a.qa.test\r\n\r\n", 400},
           {"bare LF in field", "GET / HTTP/1.1\r\nHost: a.qa.test\nX: 1\r\n\r\n", 400},
           {"bare CR at end", "GET / HTTP/1.1\r\nHost: a.qa.test\r\n\r\r", 400},
           {"Expect other", "GET / HTTP/1.1\r\nHost: a.qa.test\r\nExpect: magic\r\n\r\n", 417},
       }) {
    expectVerdict(c);
  }
}

TEST(RequestCheck, LimitsHeadSizeAndFieldCount) {
  std::string big =
      "GET / HTTP/1.1\r\nHost: a.qa.test\r\nX-Big: " + std::string(20000, 'x') + "\r\n\r\n";
  EXPECT_EQ(inspectRequest(big, kDomain, 16 * 1024, 100).status, 431u);
  EXPECT_EQ(inspectRequest(big, kDomain, 16 * 1024, 100, 1000).status, 431u);
  EXPECT_EQ(inspectRequest(big, kDomain, 32 * 1024, 100).status, 0u);

  std::string many = "GET / HTTP/1.1\r\nHost: a.qa.test\r\n";
  for (int i = 0; i < 150; ++i) many += "X-" + std::to_string(i) + ": v\r\n";
  many += "\r\n";
  EXPECT_EQ(inspectRequest(many, kDomain, 16 * 1024, 100).status, 431u);
  EXPECT_EQ(inspectRequest(many, kDomain, 16 * 1024, 200).status, 0u);
}

TEST(RequestCheck, IncompleteHeadIsNoVerdict) {
  HeadVerdict v = inspectRequest("GET / HTTP/1.1\r\nHost: a.qa.te", kDomain);
  EXPECT_FALSE(v.complete);
}

TEST(RequestCheck, ScannerSeesFoldsAcrossPieces) {
  HeadScanner s;
  s.feed("X: 1\r\n", 6);
  EXPECT_FALSE(s.folded());
  s.feed(" 2", 2);
  EXPECT_TRUE(s.folded());
  s.reset();
  EXPECT_FALSE(s.folded());
}

}  // namespace
}  // namespace qabox::proxy_internal
