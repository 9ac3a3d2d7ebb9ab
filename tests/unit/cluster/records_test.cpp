#include "cluster/records.h"

#include <gtest/gtest.h>

namespace qabox::cluster {
namespace {

HostFacts facts() {
  HostFacts h;
  h.name = "qa-1";
  h.api = "10.0.0.5:7444";
  h.router = "10.0.0.5:80";
  h.version = "0.18.0";
  h.capacity = 50;
  h.environments = 3;
  h.freeMemoryBytes = 1ULL << 34;
  h.freeDiskBytes = 1ULL << 36;
  h.images = {"busybox", "debian"};
  h.startedAtUnix = 1'700'000'000;
  return h;
}

TEST(Records, HostRoundTrips) {
  auto back = decodeHost(encodeHost(facts()));
  ASSERT_TRUE(back.isOk()) << back.status().message();
  EXPECT_EQ(back->name, "qa-1");
  EXPECT_EQ(back->api, "10.0.0.5:7444");
  EXPECT_EQ(back->capacity, 50u);
  EXPECT_EQ(back->freeDiskBytes, 1ULL << 36);
  EXPECT_EQ(back->images, (std::vector<std::string>{"busybox", "debian"}));
}

TEST(Records, TicketRoundTrips) {
  auto back = decodeTicket(encodeTicket({"EXMP-113", "qa-2", 42}));
  ASSERT_TRUE(back.isOk()) << back.status().message();
  EXPECT_EQ(back->ticket, "EXMP-113");
  EXPECT_EQ(back->host, "qa-2");
  EXPECT_EQ(back->placedAtUnix, 42);
}

// Anyone who can write to etcd writes these: each is refused, naming why.
TEST(Records, EveryBadHostRecordIsNamed) {
  struct Case {
    std::string json, why;
  };
  const std::vector<Case> cases = {
      {"", "not a JSON object"},
      {"[1]", "not a JSON object"},
      {"{\"name\":", "not a JSON object"},
      {R"({"api":"a:1","router":"a:2"})", "\"name\" is missing"},
      {R"({"name":7,"api":"a:1","router":"a:2"})", "\"name\" is not a string"},
      {R"({"name":"QA_1","api":"a:1","router":"a:2"})", "one DNS label"},
      {R"({"name":"../x","api":"a:1","router":"a:2"})", "one DNS label"},
      {R"({"name":"qa","api":"nowhere","router":"a:2"})", "host record api"},
      {R"({"name":"qa","api":"a:0","router":"a:2"})", "needs a host and a port"},
      {R"({"name":"qa","api":"a:1","router":"a:2","capacity":-1})", "\"capacity\" is negative"},
      {R"({"name":"qa","api":"a:1","router":"a:2","capacity":99999999999})", "too large"},
      {R"({"name":"qa","api":"a:1","router":"a:2","capacity":"9"})", "not a whole number"},
      {R"({"name":"qa","api":"a:1","router":"a:2","images":"busybox"})", "not a list"},
      {R"({"name":"qa","api":"a:1","router":"a:2","images":["../etc"]})", "not an image name"},
      {R"({"name":"qa","api":"a:1","router":"a:2","version":"a\u0001b"})", "control characters"},
      {R"({"name":"qa","api":"a:1","router":"a:2","version":")" + std::string(300, 'v') + "\"}",
       "over 256 bytes"},
      {std::string(70 * 1024, ' '), "over 64 KiB"},
  };
  for (const auto& c : cases) {
    auto r = decodeHost(c.json);
    ASSERT_FALSE(r.isOk()) << c.json.substr(0, 80);
    EXPECT_NE(r.status().message().find(c.why), std::string::npos)
        << c.json.substr(0, 80) << ": " << r.status().message();
  }
}

TEST(Records, EveryBadTicketRecordIsNamed) {
  struct Case {
    std::string json, why;
  };
  const std::vector<Case> cases = {
      {"null", "not a JSON object"},
      {R"({"host":"qa-1"})", "\"ticket\" is missing"},
      {R"({"ticket":"-bad-","host":"qa-1"})", "ticket record"},
      {R"({"ticket":"qabox","host":"qa-1"})", "ticket record"},
      {R"({"ticket":"EXMP-1"})", "\"host\" is missing"},
      {R"({"ticket":"EXMP-1","host":"Qa 1"})", "one DNS label"},
      {R"({"ticket":"EXMP-1","host":"qa-1","placed_at":1.5})", "not a whole number"},
  };
  for (const auto& c : cases) {
    auto r = decodeTicket(c.json);
    ASSERT_FALSE(r.isOk()) << c.json;
    EXPECT_NE(r.status().message().find(c.why), std::string::npos)
        << c.json << ": " << r.status().message();
  }
}

}  // namespace
}  // namespace qabox::cluster
