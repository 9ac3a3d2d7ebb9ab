#include "lifecycle/env_record.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace qabox {
namespace {

using ::testing::HasSubstr;

Environment sample() {
  Environment e;
  e.ticket = "EXMP-7";
  e.slug = "exmp-7";
  e.state = EnvState::kSleeping;
  e.ip = "10.44.0.7";
  e.container = "qabox-exmp-7-2";
  e.port = 8080;
  e.imageVersion = 3;
  e.spec.image = "python";
  e.spec.repo = "shop";
  e.spec.sourceBranch = "feature/EXMP-7";
  e.spec.targetBranch = "develop";
  e.spec.env = {{"COLOUR", "blue"}};
  e.spec.secretKeys = {"API_KEY"};
  e.spec.ttl = std::chrono::hours(2);
  e.commit = "c0ffee";
  e.sourceCommit = "50aace";
  e.targetCommit = "7a4e7";
  e.pinned = true;
  e.createdAt = fromUnixMillis(1'700'000'000'000);
  e.deployedAt = fromUnixMillis(1'700'000'001'000);
  e.updatedAt = fromUnixMillis(1'700'000'002'000);
  e.expiresAt = fromUnixMillis(1'700'007'201'000);
  e.limits = {"512M", 2, 100};
  e.depsLayer = "d3e5";
  e.dataLayer = "da7a";
  return e;
}

TEST(EnvRecord, HoldsWhatTheRowNeedsAndRoundTrips) {
  const Environment e = sample();
  const std::string text = envRecordJson(e);
  EXPECT_THAT(text, HasSubstr("\"API_KEY\""));
  auto back = parseEnvRecord(text);
  ASSERT_TRUE(back.isOk()) << back.status().message();
  EXPECT_EQ(back->ticket, e.ticket);
  EXPECT_EQ(back->slug, e.slug);
  EXPECT_EQ(back->state, EnvState::kSleeping);
  EXPECT_EQ(back->ip, e.ip);
  EXPECT_EQ(back->container, e.container);
  EXPECT_EQ(back->port, 8080u);
  EXPECT_EQ(back->imageVersion, 3u);
  EXPECT_EQ(back->spec, e.spec);
  EXPECT_EQ(back->commit, e.commit);
  EXPECT_EQ(back->sourceCommit, e.sourceCommit);
  EXPECT_EQ(back->targetCommit, e.targetCommit);
  EXPECT_TRUE(back->pinned);
  EXPECT_EQ(back->createdAt, e.createdAt);
  EXPECT_EQ(back->deployedAt, e.deployedAt);
  EXPECT_EQ(back->updatedAt, e.updatedAt);
  EXPECT_EQ(back->expiresAt, e.expiresAt);
  EXPECT_EQ(back->limits, e.limits);
  EXPECT_EQ(back->depsLayer, "d3e5");
  EXPECT_EQ(back->dataLayer, "da7a");
}

TEST(EnvRecord, RefusesWhatIsNotARecord) {
  for (const char* text :
       {"", "garbage", "[]", "{\"version\": 99}", "{\"version\": 1, \"ticket\": \"X\"}"}) {
    auto r = parseEnvRecord(text);
    EXPECT_FALSE(r.isOk()) << text;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << text;
  }
  std::string bad = envRecordJson(sample());
  bad.replace(bad.find("SLEEPING"), 8, "NAPPING!");
  EXPECT_FALSE(parseEnvRecord(bad).isOk());
}

}  // namespace
}  // namespace qabox
