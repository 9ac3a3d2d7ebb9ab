#include "lifecycle/env_record.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>

namespace qabox {
namespace {

using ::testing::HasSubstr;

const std::string kSubnet = "10.44.0.0/24";

Environment sample() {
  Environment e;
  e.ticket = "EXMP-7";
  e.slug = "exmp-7";
  e.state = EnvState::kSleeping;
  e.ip = "10.44.0.7";
  e.container = "qabox-exmp-7_2";
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
  e.depsLayer = std::string(64, 'd');
  e.dataLayer = std::string(63, 'a') + "7";
  return e;
}

TEST(EnvRecord, HoldsWhatTheRowNeedsAndRoundTrips) {
  const Environment e = sample();
  const std::string text = envRecordJson(e);
  EXPECT_THAT(text, HasSubstr("\"API_KEY\""));
  auto back = parseEnvRecord(text, kSubnet);
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
  EXPECT_EQ(back->depsLayer, e.depsLayer);
  EXPECT_EQ(back->dataLayer, e.dataLayer);
}

TEST(EnvRecord, RefusesWhatIsNotARecord) {
  for (const char* text :
       {"", "garbage", "[]", "{\"version\": 99}", "{\"version\": 1, \"ticket\": \"X\"}"}) {
    auto r = parseEnvRecord(text, kSubnet);
    EXPECT_FALSE(r.isOk()) << text;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << text;
  }
  std::string bad = envRecordJson(sample());
  bad.replace(bad.find("SLEEPING"), 8, "NAPPING!");
  EXPECT_FALSE(parseEnvRecord(bad, kSubnet).isOk());
}

// One field of a sample record changed; the parse must refuse it, naming
// the field.
void expectRefused(const std::function<void(Environment&)>& change, const std::string& field) {
  Environment e = sample();
  change(e);
  auto r = parseEnvRecord(envRecordJson(e), kSubnet);
  ASSERT_FALSE(r.isOk()) << field;
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << field;
  EXPECT_THAT(r.status().message(), HasSubstr(field));
}

TEST(EnvRecord, RefusesFieldsThisAgentNeverWrites) {
  expectRefused([](Environment& e) { e.slug = "exmp-8"; }, "slug");
  expectRefused([](Environment& e) { e.ticket = "not a ticket"; }, "ticket");
  for (const char* name : {"qabox-exmp-8", "other-exmp-7", "qabox-exmp-7_", "qabox-exmp-7_x",
                           "qabox-exmp-7_01", "../qabox-exmp-7", "qabox-exmp-7/x"}) {
    expectRefused([&](Environment& e) { e.container = name; }, "container");
  }
  for (const char* ip : {"10.44.0.07", "10.44.0.0", "10.44.0.1", "10.44.0.255", "10.45.0.7",
                         "010.44.0.7", "10.44.0.7 ", "::1", "10.44.0"}) {
    expectRefused([&](Environment& e) { e.ip = ip; }, "ip");
  }
  expectRefused([](Environment& e) { e.port = 0; }, "port");
  expectRefused([](Environment& e) { e.port = 65536; }, "port");
  for (const std::string& hash :
       {std::string("../.."), std::string("d3e5"), std::string(64, 'D'), std::string(65, 'd'),
        std::string(62, 'd') + "/.", std::string(63, 'd') + "g"}) {
    expectRefused([&](Environment& e) { e.depsLayer = hash; }, "deps_layer");
    expectRefused([&](Environment& e) { e.dataLayer = hash; }, "data_layer");
  }
  expectRefused([](Environment& e) { e.imageVersion = 0; }, "image_version");
}

TEST(EnvRecord, AcceptsTheNamesAndAddressesDeploysGive) {
  for (const char* name : {"qabox-exmp-7", "qabox-exmp-7_1", "qabox-exmp-7_12"}) {
    Environment e = sample();
    e.container = name;
    EXPECT_TRUE(parseEnvRecord(envRecordJson(e), kSubnet).isOk()) << name;
  }
  for (const char* ip : {"10.44.0.2", "10.44.0.254"}) {
    Environment e = sample();
    e.ip = ip;
    EXPECT_TRUE(parseEnvRecord(envRecordJson(e), kSubnet).isOk()) << ip;
  }
  Environment e = sample();
  e.depsLayer.clear();
  e.dataLayer.clear();
  EXPECT_TRUE(parseEnvRecord(envRecordJson(e), kSubnet).isOk());
}

class RecordFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("qabox-env-record-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_ / "lxc" / "qabox-exmp-7_2");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string record() const { return (dir_ / "lxc" / "qabox-exmp-7_2" / "qabox.json").string(); }
  std::filesystem::path dir_;
};

TEST_F(RecordFile, FailedAndBrokenAreWrittenAndReadBack) {
  for (EnvState state : {EnvState::kFailed, EnvState::kBroken, EnvState::kReady}) {
    Environment e = sample();
    e.state = state;
    e.message = "disk limit";
    ASSERT_TRUE(writeEnvRecord(dir_.string(), e).isOk());
    auto back = readEnvRecord(dir_.string(), e.container, kSubnet);
    ASSERT_TRUE(back.isOk()) << back.status().message();
    EXPECT_EQ(back->state, state);
    EXPECT_EQ(back->message, "disk limit");
  }
}

TEST_F(RecordFile, RefusesLinksOtherFilesHugeOnesAndAnotherContainersRecord) {
  Environment e = sample();
  ASSERT_TRUE(writeEnvRecord(dir_.string(), e).isOk());
  EXPECT_FALSE(readEnvRecord(dir_.string(), "qabox-exmp-7", kSubnet).isOk());  // none there
  std::filesystem::create_directories(dir_ / "lxc" / "qabox-exmp-7");
  std::filesystem::copy_file(record(), dir_ / "lxc" / "qabox-exmp-7" / "qabox.json");
  auto other = readEnvRecord(dir_.string(), "qabox-exmp-7", kSubnet);
  ASSERT_FALSE(other.isOk());
  EXPECT_THAT(other.status().message(), HasSubstr("names container qabox-exmp-7_2"));

  const std::string real = (dir_ / "real.json").string();
  std::filesystem::rename(record(), real);
  std::filesystem::create_symlink(real, record());
  EXPECT_FALSE(readRecordFile(record()).isOk());
  std::filesystem::remove(record());

  ASSERT_EQ(::mkfifo(record().c_str(), 0600), 0);  // would block a plain open
  auto fifo = readRecordFile(record());
  EXPECT_FALSE(fifo.isOk());
  EXPECT_THAT(fifo.status().message(), HasSubstr("not a regular file"));
  std::filesystem::remove(record());

  std::ofstream(record()) << std::string(kMaxRecordBytes + 1, ' ');
  auto huge = readRecordFile(record());
  EXPECT_FALSE(huge.isOk());
  EXPECT_THAT(huge.status().message(), HasSubstr("larger than"));
}

}  // namespace
}  // namespace qabox
