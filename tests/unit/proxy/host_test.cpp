#include <gtest/gtest.h>

#include "proxy/host.h"
#include "proxy/router.h"

namespace qabox {
namespace {

constexpr std::string_view kDomain = "qa.company.int";

std::string slugOf(std::string_view host, std::string_view domain = kDomain) {
  auto r = parseHostHeader(host, domain);
  return r.isOk() ? r.value() : "ERROR: " + r.status().message();
}

TEST(ParseHostHeader, LowerCasesTheLabel) {
  EXPECT_EQ(slugOf("EXMP-113.qa.company.int"), "exmp-113");
  EXPECT_EQ(slugOf("exmp-113.QA.Company.INT"), "exmp-113");
}

TEST(ParseHostHeader, IgnoresThePort) {
  EXPECT_EQ(slugOf("EXMP-113.qa.company.int:8080"), "exmp-113");
  EXPECT_EQ(slugOf("exmp-113.qa.company.int:"), "exmp-113");
  EXPECT_FALSE(parseHostHeader("exmp-113.qa.company.int:80x", kDomain).isOk());
  EXPECT_FALSE(parseHostHeader("exmp-113.qa.company.int:123456", kDomain).isOk());
}

TEST(ParseHostHeader, AcceptsOneTrailingDot) {
  EXPECT_EQ(slugOf("exmp-113.qa.company.int."), "exmp-113");
  EXPECT_EQ(slugOf("exmp-113.qa.company.int.:443"), "exmp-113");
  EXPECT_EQ(slugOf("exmp-113.qa.company.int", "qa.company.int."), "exmp-113");
  EXPECT_FALSE(parseHostHeader("exmp-113.qa.company.int..", kDomain).isOk());
}

TEST(ParseHostHeader, RejectsEmpty) {
  auto r = parseHostHeader("", kDomain);
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find("required"), std::string::npos);
  EXPECT_FALSE(parseHostHeader(":8080", kDomain).isOk());
}

TEST(ParseHostHeader, RejectsTwoLabels) {
  auto r = parseHostHeader("a.b.qa.company.int", kDomain);
  ASSERT_FALSE(r.isOk());
  EXPECT_NE(r.status().message().find("one label"), std::string::npos);
}

TEST(ParseHostHeader, RejectsTheBareDomain) {
  EXPECT_FALSE(parseHostHeader("qa.company.int", kDomain).isOk());
  EXPECT_FALSE(parseHostHeader(".qa.company.int", kDomain).isOk());
}

TEST(ParseHostHeader, RejectsAnotherDomain) {
  auto r = parseHostHeader("exmp-113.example.com", kDomain);
  ASSERT_FALSE(r.isOk());
  EXPECT_NE(r.status().message().find("qa.company.int"), std::string::npos);
  EXPECT_FALSE(parseHostHeader("exmp-113.xqa.company.int", kDomain).isOk());
  EXPECT_FALSE(parseHostHeader("exmp-113qa.company.int", kDomain).isOk());
  EXPECT_FALSE(parseHostHeader("company.int", kDomain).isOk());
}

TEST(ParseHostHeader, RejectsIpLiterals) {
  for (std::string_view host : {"127.0.0.1", "127.0.0.1:8080", "[::1]", "[::1]:80", "::1"}) {
    auto r = parseHostHeader(host, kDomain);
    ASSERT_FALSE(r.isOk()) << host;
    EXPECT_NE(r.status().message().find("IP address"), std::string::npos) << host;
  }
}

TEST(ParseHostHeader, RejectsBadLabels) {
  EXPECT_FALSE(parseHostHeader("-exmp.qa.company.int", kDomain).isOk());
  EXPECT_FALSE(parseHostHeader("exmp-.qa.company.int", kDomain).isOk());
  EXPECT_FALSE(parseHostHeader(std::string(64, 'a') + ".qa.company.int", kDomain).isOk());
  EXPECT_EQ(slugOf(std::string(63, 'a') + ".qa.company.int"), std::string(63, 'a'));
}

TEST(ParseHostHeader, RejectsGarbageBytes) {
  for (std::string host :
       {std::string("ex mp.qa.company.int"), std::string("ex_mp.qa.company.int"),
        std::string("exmp\r\n.qa.company.int"), std::string("ex\0mp.qa.company.int", 20),
        std::string("\xc3\xa9xmp.qa.company.int"), std::string("exmp.qa.company.int/x"),
        std::string("user@exmp.qa.company.int"), std::string(300, 'a')}) {
    auto r = parseHostHeader(host, kDomain);
    ASSERT_FALSE(r.isOk());
    // The message never echoes control bytes back.
    Status status = r.status();
    for (char c : status.message()) {
      EXPECT_GE(static_cast<unsigned char>(c), 0x20);
    }
  }
}

TEST(ParseHostHeader, NothingMatchesAnEmptyDomain) {
  EXPECT_FALSE(parseHostHeader("exmp.qa.company.int", "").isOk());
}

}  // namespace
}  // namespace qabox

namespace qabox::proxy_internal {
namespace {

TEST(Iequals, ComparesAsciiWithoutCaseAndNothingPastTheEnd) {
  EXPECT_TRUE(iequals("WebSocket", "websocket"));
  EXPECT_TRUE(iequals("", ""));
  EXPECT_FALSE(iequals("htTp:/", "http://"));
  // The views end where their bytes do: under ASan a read past them fails.
  std::string a = "htTp://";
  std::string b = "http://";
  EXPECT_TRUE(iequals(std::string_view(a.data(), a.size()), std::string_view(b.data(), b.size())));
  EXPECT_FALSE(iequals("http:/x", "http://"));
  EXPECT_FALSE(iequals("é", "É"));  // ASCII only
}

}  // namespace
}  // namespace qabox::proxy_internal
