#include "core/ticket.h"

#include <gtest/gtest.h>

namespace qabox {
namespace {

TEST(Ticket, SlugIsLowerCasedTicket) {
  auto t = parseTicket("EXMP-113");
  ASSERT_TRUE(t.isOk()) << t.status().toString();
  EXPECT_EQ(t->name, "EXMP-113");
  EXPECT_EQ(t->slug, "exmp-113");
}

TEST(Ticket, RejectsWhatIsNotADnsLabel) {
  struct Case {
    const char* input;
    const char* rule;
  } cases[] = {
      {"", "must not be empty"},
      {"../x", "only letters, digits and '-' are allowed"},
      {"1abc", "must start with a letter"},
      {"-abc", "must start with a letter"},
      {"abc-", "must end with a letter or digit"},
      {"a b", "only letters, digits and '-' are allowed"},
      {"a_b", "only letters, digits and '-' are allowed"},
      {"a.b", "only letters, digits and '-' are allowed"},
      {"EXMP-113\n", "only letters, digits and '-' are allowed"},
  };
  for (const auto& c : cases) {
    auto t = parseTicket(c.input);
    ASSERT_FALSE(t.isOk()) << c.input;
    EXPECT_EQ(t.status().code(), Code::kInvalidArgument);
    EXPECT_NE(t.status().message().find(c.rule), std::string::npos) << t.status().message();
  }
  EXPECT_TRUE(parseTicket(std::string(63, 'a')).isOk());
  EXPECT_FALSE(parseTicket(std::string(64, 'a')).isOk());
}

TEST(Ticket, MessageNamesTheTicket) {
  auto t = parseTicket("../x");
  EXPECT_EQ(t.status().message(), "ticket \"../x\": only letters, digits and '-' are allowed");
}

TEST(Branch, FollowsGitRefRules) {
  for (const char* ok : {"develop", "feature/EXMP-113", "release/1.2", "a-b_c"}) {
    EXPECT_TRUE(checkBranchName("source_branch", ok).isOk()) << ok;
  }
  for (const char* bad :
       {"",     "-rf", "a..b", "a b", "a~1",  "a^",      "a:b",  "a?",     "a*",    "a[",
        "a\\b", "/a",  "a/",   "a.",  "a//b", ".hidden", "a/.b", "x.lock", "a@{1}", "@"}) {
    auto s = checkBranchName("source_branch", bad);
    EXPECT_EQ(s.code(), Code::kInvalidArgument) << bad;
    EXPECT_EQ(s.message().rfind("source_branch", 0), 0u) << s.message();
  }
}

TEST(ImageName, LowerCaseLetterFirst) {
  EXPECT_TRUE(checkImageName("busybox").isOk());
  EXPECT_TRUE(checkImageName("debian-12").isOk());
  EXPECT_FALSE(checkImageName("").isOk());
  EXPECT_FALSE(checkImageName("BusyBox").isOk());
  EXPECT_FALSE(checkImageName("../etc").isOk());
  EXPECT_FALSE(checkImageName("1box").isOk());
}

TEST(EnvName, ShellIdentifierRules) {
  EXPECT_TRUE(checkEnvName("DATABASE_URL").isOk());
  EXPECT_TRUE(checkEnvName("_x1").isOk());
  EXPECT_FALSE(checkEnvName("1X").isOk());
  EXPECT_FALSE(checkEnvName("A-B").isOk());
  EXPECT_FALSE(checkEnvName("A=B").isOk());
  EXPECT_FALSE(checkEnvName("").isOk());
}

}  // namespace
}  // namespace qabox

namespace qabox {
namespace {

TEST(Ticket, TheDashboardsLabelIsNoTickets) {
  for (const char* t : {"qabox", "QABOX", "QaBox"}) {
    auto r = parseTicket(t);
    ASSERT_FALSE(r.isOk()) << t;
    EXPECT_NE(r.status().message().find("dashboard"), std::string::npos);
  }
  EXPECT_TRUE(parseTicket("qabox-1").isOk());
}

}  // namespace
}  // namespace qabox
