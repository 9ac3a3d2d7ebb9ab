// The warm pool with the fake runtime: filling, claiming, replacing,
// shrinking and recovery, and what never claims.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>

#include "init/contract.h"
#include "unit/lifecycle/deploy_fixture.h"

namespace qabox {
namespace {

using namespace deploy_test;  // NOLINT: the fixture's names

class PoolTest : public DeployTest {
 protected:
  void SetUp() override {
    DeployTest::SetUp();
    config_.pool.size = 1;
    config_.pool.minFreeMemory = "1";  // this machine's memory and disk never press here
    config_.pool.minFreeDisk = "1";
    makeManager();
  }
  // Passes until the pool has nothing left to do.
  void tend() {
    for (int i = 0; i < 20 && envs_->tendPool(); ++i) {
    }
  }
  std::vector<PooledContainer> pooled() {
    auto p = store_->listPooled();
    EXPECT_TRUE(p.isOk()) << p.status().toString();
    return p.isOk() ? *p : std::vector<PooledContainer>{};
  }
  // A deploy no pooled container matches: it clones.
  Result<Environment> deployWithLimitsOfItsOwn(const std::string& ticket) {
    DeployInput in;
    in.ticket = ticket;
    in.spec.limits.memory = "128M";
    return deploy(in);
  }
  size_t count(const std::string& call) const {
    return static_cast<size_t>(std::count(runtime_.calls.begin(), runtime_.calls.end(), call));
  }
};

TEST_F(PoolTest, FillsOnePerImageStartedAddressedAndMarked) {
  tend();
  auto p = pooled();
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].container, "qaboxpool-1");
  EXPECT_EQ(p[0].image, "busybox");
  EXPECT_EQ(p[0].imageVersion, 1u);
  EXPECT_EQ(p[0].state, PoolState::kReady);
  EXPECT_EQ(runtime_.containers.at("qaboxpool-1").state, ContainerState::kRunning);
  // Its lease, and qabox-init's mark in its upper dir.
  auto leases = store_->listLeases();
  ASSERT_TRUE(leases.isOk());
  ASSERT_EQ(leases->size(), 1u);
  EXPECT_EQ((*leases)[0].owner, "qaboxpool-1");
  EXPECT_EQ((*leases)[0].ip, p[0].ip);
  EXPECT_TRUE(fs::exists(runtime_.upperDir("qaboxpool-1") + supervise::kPooledFile));
  // Never an environment, never a route.
  auto envs = envs_->list();
  ASSERT_TRUE(envs.isOk());
  EXPECT_TRUE(envs->empty());
  EXPECT_TRUE(routes_.all().empty());
  // Full: another pass does nothing.
  EXPECT_FALSE(envs_->tendPool());
}

TEST_F(PoolTest, ADeployClaimsThePooledContainerInsteadOfCloning) {
  tend();
  const std::string ip = pooled().at(0).ip;
  runtime_.calls.clear();
  auto env = deploy("EXMP-113");
  ASSERT_TRUE(env.isOk()) << env.status().toString();
  EXPECT_EQ(env->container, "qaboxpool-1");
  EXPECT_EQ(env->ip, ip);
  EXPECT_EQ(env->state, EnvState::kReady);
  EXPECT_EQ(count("clone qaboxpool-1"), 0u);
  EXPECT_EQ(count("start qaboxpool-1"), 0u);
  // The deploy's files went in through the running container, the mark last.
  EXPECT_EQ(count("place qaboxpool-1 /etc/qabox/app.env /etc/qabox/app.run -/etc/qabox/pooled"),
            1u);
  EXPECT_NE(runtime_.placed["qaboxpool-1"]["/etc/qabox/app.env"].find("QABOX_TICKET='EXMP-113'"),
            std::string::npos);
  EXPECT_TRUE(pooled().empty());
  auto names = phaseNames();
  EXPECT_NE(std::find(names.begin(), names.end(), "claim"), names.end());
  EXPECT_EQ(std::find(names.begin(), names.end(), "start"), names.end());
  // The route is the environment's; the pool fills again behind it.
  ASSERT_EQ(routes_.all().size(), 1u);
  tend();
  auto p = pooled();
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].container, "qaboxpool-2");
  EXPECT_NE(p[0].ip, ip);
}

TEST_F(PoolTest, ARepoDeployUnpacksItsTreeInsideTheRunningContainer) {
  withHooks();
  tend();
  runtime_.calls.clear();
  auto env = deploy(fromRepo("EXMP-7"));
  ASSERT_TRUE(env.isOk()) << env.status().toString();
  EXPECT_EQ(env->container, "qaboxpool-1");
  EXPECT_NE(
      std::find(git_.calls.begin(), git_.calls.end(), "archiveTree shop " + std::string(40, 'c')),
      git_.calls.end());
  // Never exported on the host through its upper dir.
  EXPECT_FALSE(fs::exists(runtime_.upperDir("qaboxpool-1") + "/srv/app/index.html"));
  // With hooks the start command waits beside its name until they ran.
  EXPECT_EQ(count("place qaboxpool-1 /etc/qabox/app.env /etc/qabox/app.run.pending "
                  "-/etc/qabox/pooled"),
            1u);
  EXPECT_EQ(count("exec qaboxpool-1 make"), 1u);
}

TEST_F(PoolTest, ADeployAskingOtherLimitsOrWithoutAPoolClonesAsBefore) {
  tend();
  auto env = deployWithLimitsOfItsOwn("EXMP-1");
  ASSERT_TRUE(env.isOk()) << env.status().toString();
  EXPECT_EQ(env->container, "qabox-exmp-1");
  EXPECT_EQ(pooled().size(), 1u);  // left for a deploy it fits

  config_.pool.size = 0;
  makeManager();
  auto other = deploy("EXMP-2");
  ASSERT_TRUE(other.isOk()) << other.status().toString();
  EXPECT_EQ(other->container, "qabox-exmp-2");
}

TEST_F(PoolTest, AClaimThatFailsTakesThePooledContainerWithIt) {
  tend();
  runtime_.failOn.insert("place qaboxpool-1");
  auto env = deploy("EXMP-3");
  ASSERT_FALSE(env.isOk());
  EXPECT_EQ(runtime_.containers.count("qaboxpool-1"), 0u);
  auto leases = store_->listLeases();
  ASSERT_TRUE(leases.isOk());
  EXPECT_TRUE(leases->empty());
  auto got = store_->getEnvironment("exmp-3");
  ASSERT_TRUE(got.isOk());
  EXPECT_FALSE(got->has_value());
  EXPECT_TRUE(pooled().empty());
}

TEST_F(PoolTest, AStoppedPooledContainerIsNeverClaimed) {
  tend();
  runtime_.containers.at("qaboxpool-1").state = ContainerState::kStopped;
  auto env = deploy("EXMP-4");
  // Claimed in the intent, found stopped at once: the deploy fails whole
  // and names it; the next one clones.
  ASSERT_FALSE(env.isOk());
  EXPECT_NE(env.status().message().find("qaboxpool-1 is not running"), std::string::npos);
  auto again = deploy("EXMP-4");
  ASSERT_TRUE(again.isOk()) << again.status().toString();
  EXPECT_EQ(again->container, "qabox-exmp-4");
}

TEST_F(PoolTest, ANewImageVersionReplacesThePool) {
  tend();
  ASSERT_TRUE(store_->putImage({"busybox", 2, Clock::now(), true, ""}).isOk());
  runtime_.calls.clear();
  tend();
  EXPECT_EQ(count("destroy qaboxpool-1"), 1u);
  auto p = pooled();
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].imageVersion, 2u);
  auto env = deploy("EXMP-5");
  ASSERT_TRUE(env.isOk()) << env.status().toString();
  EXPECT_EQ(env->imageVersion, 2u);
  EXPECT_EQ(env->container, p[0].container);
}

TEST_F(PoolTest, ADestroyThatFailsIsRetriedAndNeverClaimed) {
  tend();
  runtime_.failOn.insert("destroy qaboxpool-1");
  ASSERT_TRUE(store_->putImage({"busybox", 2, Clock::now(), true, ""}).isOk());
  tend();
  auto p = pooled();
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(p[0].state, PoolState::kDropping);
  EXPECT_EQ(p[1].imageVersion, 2u);
  EXPECT_EQ(store_->listLeases()->size(), 2u) << "its lease stays until it is gone";
  runtime_.failOn.clear();
  tend();
  p = pooled();
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].imageVersion, 2u);
  EXPECT_EQ(runtime_.containers.count("qaboxpool-1"), 0u);
  EXPECT_EQ(store_->listLeases()->size(), 1u);
}

TEST_F(PoolTest, ShrinksToASmallerSizeAndReplacesOnesOfOtherLimits) {
  config_.pool.size = 3;
  makeManager();
  tend();
  ASSERT_EQ(pooled().size(), 3u);
  config_.pool.size = 1;
  makeManager();
  ASSERT_TRUE(envs_->recover().isOk());  // as at every start: the numbering goes on
  tend();
  auto p = pooled();
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].container, "qaboxpool-1") << "the oldest stay";
  // The image's limits changed: what a deploy gets is no longer what it has.
  ImageManifest m = *images_.manifest("busybox");
  m.memory = "128M";
  images_.addRecipe(m);
  tend();
  p = pooled();
  ASSERT_EQ(p.size(), 1u);
  EXPECT_NE(p[0].container, "qaboxpool-1");
  EXPECT_EQ(p[0].limits.memory, "128M");
}

TEST_F(PoolTest, ShrinksWhenMemoryRunsLow) {
  config_.pool.size = 2;
  makeManager();
  tend();
  ASSERT_EQ(pooled().size(), 2u);
  config_.pool.minFreeMemory = "1000000G";
  makeManager();
  tend();
  EXPECT_TRUE(pooled().empty());
  auto leases = store_->listLeases();
  ASSERT_TRUE(leases.isOk());
  EXPECT_TRUE(leases->empty());
}

TEST_F(PoolTest, ADeployShortOfAnAddressTakesThePoolsAndThePoolWaits) {
  config_.network.subnet = "10.9.0.0/30";  // one address for containers
  makeManager();
  tend();
  ASSERT_EQ(pooled().size(), 1u);
  // Limits of its own: it cannot claim, and the pool holds the last address.
  auto env = deployWithLimitsOfItsOwn("EXMP-1");
  ASSERT_TRUE(env.isOk()) << env.status().toString();
  EXPECT_EQ(env->state, EnvState::kReady);
  EXPECT_EQ(env->container, "qabox-exmp-1");
  EXPECT_EQ(env->ip, "10.9.0.2");
  EXPECT_TRUE(pooled().empty());
  EXPECT_EQ(runtime_.containers.count("qaboxpool-1"), 0u);
  // No address for a fill: the pool waits, and takes none from the deploy.
  EXPECT_FALSE(envs_->tendPool());
  EXPECT_TRUE(pooled().empty());
  auto leases = store_->listLeases();
  ASSERT_TRUE(leases.isOk());
  ASSERT_EQ(leases->size(), 1u);
  EXPECT_EQ((*leases)[0].owner, "qabox-exmp-1");
}

TEST_F(PoolTest, ADeployShortOfAnIdRangeTakesThePools) {
  tend();
  ASSERT_EQ(pooled().size(), 1u);
  runtime_.idRanges = 1;  // the pooled container holds the only one
  auto env = deployWithLimitsOfItsOwn("EXMP-2");
  ASSERT_TRUE(env.isOk()) << env.status().toString();
  EXPECT_EQ(env->state, EnvState::kReady);
  EXPECT_EQ(env->container, "qabox-exmp-2");
  EXPECT_TRUE(pooled().empty());
  EXPECT_EQ(runtime_.containers.count("qaboxpool-1"), 0u);
  // A fill finds no range: it makes nothing, so nothing is destroyed.
  runtime_.calls.clear();
  EXPECT_FALSE(envs_->tendPool());
  EXPECT_EQ(count("clone qaboxpool-2"), 1u);
  EXPECT_EQ(count("destroy qaboxpool-2"), 0u);
  EXPECT_TRUE(pooled().empty());
  auto leases = store_->listLeases();
  ASSERT_TRUE(leases.isOk());
  EXPECT_EQ(leases->size(), 1u);
}

TEST_F(PoolTest, ADeployShortOfAnAddressWithAnEmptyPoolFailsNamingTheSubnet) {
  config_.network.subnet = "10.9.0.0/30";
  config_.pool.size = 0;
  makeManager();
  ASSERT_TRUE(deploy("EXMP-3").isOk());
  auto r = deploy("EXMP-4");
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), Code::kResourceExhausted);
  EXPECT_NE(r.status().message().find("network.subnet 10.9.0.0/30: no free address left"),
            std::string::npos)
      << r.status().toString();
}

TEST_F(PoolTest, AFillThatFailsLeavesNothing) {
  runtime_.failOn.insert("start qaboxpool-1");
  EXPECT_FALSE(envs_->tendPool());
  EXPECT_TRUE(pooled().empty());
  EXPECT_EQ(runtime_.containers.count("qaboxpool-1"), 0u);
  auto leases = store_->listLeases();
  ASSERT_TRUE(leases.isOk());
  EXPECT_TRUE(leases->empty());
}

TEST_F(PoolTest, RecoveryKeepsReadyOnesAndDropsHalfFilledOnes) {
  tend();
  // A fill a crash cut short: its entry, lease and container.
  PooledContainer half;
  half.container = "qaboxpool-9";
  half.image = "busybox";
  half.imageVersion = 1;
  half.ip = "10.9.0.6";
  half.createdAt = Clock::now();
  ASSERT_TRUE(store_->restoreLease(half.ip, half.container).isOk());
  ASSERT_TRUE(store_->putPooled(half).isOk());
  runtime_.containers[half.container] = {ContainerState::kStopped, "busybox", {}};
  config_.pool.size = 2;
  makeManager();
  ASSERT_TRUE(envs_->recover().isOk());
  auto p = pooled();
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].container, "qaboxpool-1");
  EXPECT_EQ(runtime_.containers.count("qaboxpool-9"), 0u);
  auto leases = store_->listLeases();
  ASSERT_TRUE(leases.isOk());
  ASSERT_EQ(leases->size(), 1u);
  EXPECT_EQ((*leases)[0].owner, "qaboxpool-1");
  // The numbering goes on above every name seen at start.
  tend();
  p = pooled();
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(p[1].container, "qaboxpool-10");
  // And the checker counts them as the agent's (each with a config, as a
  // real clone has).
  for (const auto& pc : p) {
    fs::create_directories(dir_ + "/lxc/" + pc.container);
    std::ofstream(dir_ + "/lxc/" + pc.container + "/config") << "# clone\n";
  }
  auto checked = envs_->checkInvariants();
  ASSERT_TRUE(checked.isOk());
  for (const auto& v : checked->report.listed) {
    EXPECT_EQ(v.name.find("qaboxpool"), std::string::npos) << v.line();
  }
}

}  // namespace
}  // namespace qabox
