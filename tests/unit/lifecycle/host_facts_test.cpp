// The facts GetHostStatus reports: counts from the store and the config,
// memory from a meminfo text, disk of the state dir.
#include "lifecycle/host_facts.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "unit/store/temp_dir.h"

namespace qabox {
namespace {

class HostFactsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = openSqliteStore(dir_.path() + "/qabox.db");
    ASSERT_TRUE(s.isOk()) << s.status().toString();
    store_ = std::move(*s);
    config_.stateDir = dir_.path();
    config_.network.subnet = "10.9.0.0/29";
    config_.limits.maxEnvironments = 3;
    meminfo_ = dir_.path() + "/meminfo";
    std::ofstream(meminfo_) << "MemTotal:        2048 kB\nMemFree:          512 kB\n"
                               "MemAvailable:     1024 kB\n";
  }

  void put(const std::string& slug, EnvState state, const std::string& image = "busybox",
           uint32_t version = 1) {
    Environment e;
    e.ticket = slug;
    e.slug = slug;
    e.state = state;
    e.container = "qabox-" + slug;
    e.spec.image = image;
    e.imageVersion = version;
    ASSERT_TRUE(store_->putEnvironment(e).isOk());
  }

  test::TempDir dir_;
  std::unique_ptr<Store> store_;
  Config config_;
  std::string meminfo_;
};

TEST(Meminfo, TotalAndAvailableInBytes) {
  std::istringstream in("MemTotal:       16314800 kB\nMemFree:  1 kB\nMemAvailable:   9000 kB\n");
  auto m = parseMeminfo(in);
  EXPECT_EQ(m.totalBytes, uint64_t{16314800} * 1024);
  EXPECT_EQ(m.availableBytes, uint64_t{9000} * 1024);
  std::istringstream none("garbage\n");
  EXPECT_FALSE(parseMeminfo(none).totalBytes);
}

TEST_F(HostFactsTest, AnEmptyHost) {
  auto f = hostFacts(*store_, config_, meminfo_);
  ASSERT_TRUE(f.isOk()) << f.status().toString();
  EXPECT_EQ(f->environments, 0u);
  EXPECT_TRUE(f->byState.empty());
  EXPECT_EQ(f->maxEnvironments, 3u);
  EXPECT_EQ(f->capacityLeft, 3u);
  EXPECT_EQ(f->addressesLeft, 5u);
  EXPECT_EQ(f->memoryTotalBytes, 2048u * 1024);
  EXPECT_EQ(f->memoryAvailableBytes, 1024u * 1024);
  ASSERT_TRUE(f->diskTotalBytes);
  EXPECT_GT(*f->diskTotalBytes, 0u);
  EXPECT_LE(*f->diskFreeBytes, *f->diskTotalBytes);
}

TEST_F(HostFactsTest, CountsByStateAndWhatIsLeft) {
  put("a-1", EnvState::kReady);
  put("a-2", EnvState::kSleeping);
  put("a-3", EnvState::kSleeping);
  put("a-4", EnvState::kFailed);
  ASSERT_TRUE(store_->leaseAddress(config_.network.subnet, "qabox-a-1").isOk());
  auto f = hostFacts(*store_, config_, meminfo_);
  ASSERT_TRUE(f.isOk());
  EXPECT_EQ(f->environments, 4u);
  EXPECT_EQ(f->byState.at("READY"), 1u);
  EXPECT_EQ(f->byState.at("SLEEPING"), 2u);
  EXPECT_EQ(f->byState.at("FAILED"), 1u);
  EXPECT_EQ(f->sleeping, 2u);
  EXPECT_EQ(f->capacityLeft, 0u);  // over the maximum is none left, not a wrap
  EXPECT_EQ(f->addressesLeft, 4u);
}

TEST_F(HostFactsTest, WhatCannotBeReadIsLeftUnset) {
  config_.network.subnet = "not a subnet";
  config_.stateDir = dir_.path() + "/missing";
  auto f = hostFacts(*store_, config_, dir_.path() + "/no-meminfo");
  ASSERT_TRUE(f.isOk());
  EXPECT_FALSE(f->addressesLeft);
  EXPECT_FALSE(f->diskTotalBytes);
  EXPECT_FALSE(f->diskFreeBytes);
  EXPECT_FALSE(f->memoryTotalBytes);
  EXPECT_FALSE(f->memoryAvailableBytes);
}

TEST_F(HostFactsTest, ImageUsesCountTheEnvironmentsOfEachVersion) {
  ASSERT_TRUE(store_->putImage({"busybox", 1, Clock::now(), false, ""}).isOk());
  ASSERT_TRUE(store_->putImage({"busybox", 2, Clock::now(), true, ""}).isOk());
  ASSERT_TRUE(store_->putImage({"debian", 1, Clock::now(), true, ""}).isOk());
  put("b-1", EnvState::kReady, "busybox", 2);
  put("b-2", EnvState::kSleeping, "busybox", 2);
  put("b-3", EnvState::kReady, "busybox", 1);
  auto uses = imageUses(*store_);
  ASSERT_TRUE(uses.isOk());
  std::map<std::string, uint32_t> n;
  for (const auto& u : *uses)
    n[u.image.name + "/" + std::to_string(u.image.version)] = u.environments;
  EXPECT_EQ(n.at("busybox/1"), 1u);
  EXPECT_EQ(n.at("busybox/2"), 2u);
  EXPECT_EQ(n.at("debian/1"), 0u);
}

}  // namespace
}  // namespace qabox
