#include "core/endpoint.h"

#include <gtest/gtest.h>

namespace qabox {
namespace {

TEST(ParseHostPort, TakesTheFormsListenAddressesAreWrittenIn) {
  auto a = parseHostPort("127.0.0.1:8080", "routing.listen");
  ASSERT_TRUE(a.isOk());
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 8080);
  auto b = parseHostPort("[::1]:50051", "api.listen");
  ASSERT_TRUE(b.isOk());
  EXPECT_EQ(b->host, "::1");
  EXPECT_EQ(b->port, 50051);
  auto c = parseHostPort(":80", "routing.listen");
  ASSERT_TRUE(c.isOk());
  EXPECT_EQ(c->host, "");
  EXPECT_EQ(c->port, 80);
  auto d = parseHostPort("localhost:0", "x");
  ASSERT_TRUE(d.isOk());
  EXPECT_EQ(d->port, 0);
}

TEST(ParseHostPort, NamesTheFieldAndTheRuleOfABadOne) {
  struct Case {
    const char* text;
    const char* rule;
  };
  for (const Case& c :
       {Case{"127.0.0.1", "use host:port"}, Case{"host:", "use host:port"},
        Case{"", "use host:port"}, Case{"::1:80", "brackets"},
        Case{"h:8o", "the port must be a number"}, Case{"h:-1", "the port must be a number"},
        Case{"h:65536", "between 0 and 65535"},
        Case{"h:99999999999999999999", "between 0 and 65535"}}) {
    auto r = parseHostPort(c.text, "routing.listen");
    ASSERT_FALSE(r.isOk()) << c.text;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
    EXPECT_NE(r.status().message().find("routing.listen \"" + std::string(c.text) + "\""),
              std::string::npos)
        << r.status().message();
    EXPECT_NE(r.status().message().find(c.rule), std::string::npos) << r.status().message();
  }
}

TEST(PortOfListen, IsThePortOfATcpListenAndNothingElse) {
  EXPECT_EQ(portOfListen("127.0.0.1:50051"), 50051);
  EXPECT_EQ(portOfListen("unix:///run/qabox/qabox.sock"), std::nullopt);
  EXPECT_EQ(portOfListen("nonsense"), std::nullopt);
}

}  // namespace
}  // namespace qabox
