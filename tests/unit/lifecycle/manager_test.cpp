// The lifecycle's decisions against a fake runtime and a real SQLite file:
// deploy, the error paths, delete, recovery after a crash, sleep and wake
// and their schedule, the options built from the config.
#include "lifecycle/manager.h"
#include "lifecycle/input_check.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <future>
#include <optional>
#include <set>
#include <thread>

#include "daemon/options.h"
#include "fakes/fake_images.h"
#include "fakes/fake_runtime.h"
#include "fakes/fake_time.h"
#include "lifecycle/env_record.h"
#include "lifecycle/periodic.h"
#include "lifecycle/schedule.h"
#include "sys/process.h"

namespace qabox {
namespace {

namespace fs = std::filesystem;

class EnvironmentsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/qabox-envs-XXXXXX";
    dir_ = mkdtemp(tmpl);
    config_.stateDir = dir_;
    config_.imagesDir = std::string(QABOX_SOURCE_DIR) + "/images";
    config_.network.subnet = "10.9.0.0/29";  // 5 addresses for containers
    config_.limits.maxEnvironments = 3;
    runtime_.upperRoot = dir_ + "/upper";
    auto s = openSqliteStore(dir_ + "/qabox.db");
    ASSERT_TRUE(s.isOk()) << s.status().toString();
    store_ = std::move(*s);
    ASSERT_TRUE(store_->putImage({"busybox", 1, Clock::now(), true, ""}).isOk());
    images_ = std::make_unique<ImageBuilder>(config_, *store_, runner_, layers_, "");
    makeManager();
  }
  void TearDown() override { fs::remove_all(dir_); }

  void makeManager() {
    envs_ = std::make_unique<EnvironmentManager>(
        lifecycleOptions(config_), *store_, runtime_, bridge_, *images_, nullptr, routes_,
        [this](const std::string&, uint16_t, const std::string&, std::chrono::milliseconds) {
          if (duringHealth_) duringHealth_();
          return healthy_ ? Status::ok() : deadlineExceeded("health check: no answer");
        });
  }

  // Whether an event of `action` by `actor` was recorded for `ticket`.
  bool recorded(const std::string& ticket, const std::string& action, const std::string& actor) {
    auto events = store_->listEvents(ticket, 0);
    bool found = false;
    for (const auto& e : events ? *events : std::vector<Event>{}) {
      found |= e.action == action && e.actor == actor;
    }
    return found;
  }

  Result<Environment> deploy(const std::string& ticket) {
    DeployInput in;
    in.ticket = ticket;
    in.actor = "test";
    return envs_->deploy(in, nullptr);
  }

  std::string dir_;
  Config config_;
  RealProcessRunner runner_;
  fakes::FakeLayerMounter layers_;
  fakes::FakeRuntime runtime_;
  fakes::FakeBridge bridge_;
  RouteTable routes_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<ImageBuilder> images_;
  std::unique_ptr<EnvironmentManager> envs_;
  bool healthy_ = true;
  std::function<void()> duringHealth_;  // runs inside a deploy, under its ticket's lock
};

TEST_F(EnvironmentsTest, DeployLeasesAnAddressClonesStartsAndRoutes) {
  auto env = deploy("EXMP-113");
  ASSERT_TRUE(env.isOk()) << env.status().toString();
  EXPECT_EQ(env->state, EnvState::kReady);
  EXPECT_EQ(env->container, "qabox-exmp-113");
  EXPECT_EQ(env->ip, "10.9.0.2");
  EXPECT_EQ(runtime_.containers.at("qabox-exmp-113").net.address, "10.9.0.2/29");
  EXPECT_EQ(runtime_.containers.at("qabox-exmp-113").net.gateway, "10.9.0.1");
  EXPECT_EQ(runtime_.containers.at("qabox-exmp-113").state, ContainerState::kRunning);
  auto route = routes_.lookup("exmp-113");
  ASSERT_TRUE(route);
  EXPECT_EQ(route->state, EnvState::kReady);
  EXPECT_EQ(route->ip, "10.9.0.2");
  // The app's start command and environment were placed before start.
  EXPECT_TRUE(fs::exists(runtime_.upperRoot + "/qabox-exmp-113/etc/qabox/app.run"));
  EXPECT_TRUE(fs::exists(runtime_.upperRoot + "/qabox-exmp-113/etc/qabox/app.env"));
}

TEST_F(EnvironmentsTest, SameSpecIsUnchanged) {
  auto a = deploy("EXMP-1");
  ASSERT_TRUE(a.isOk());
  size_t calls = runtime_.calls.size();
  auto b = deploy("EXMP-1");
  ASSERT_TRUE(b.isOk());
  EXPECT_EQ(runtime_.calls.size(), calls);
  EXPECT_EQ(a->ip, b->ip);
}

TEST_F(EnvironmentsTest, MaximumIsResourceExhaustedAndChangesNothing) {
  ASSERT_TRUE(deploy("A-1").isOk());
  ASSERT_TRUE(deploy("A-2").isOk());
  ASSERT_TRUE(deploy("A-3").isOk());
  auto r = deploy("A-4");
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), Code::kResourceExhausted);
  EXPECT_EQ(runtime_.containers.size(), 3u);
  EXPECT_EQ(store_->listLeases()->size(), 3u);
}

TEST_F(EnvironmentsTest, BadInputChangesNothing) {
  for (const char* t : {"", "../x", "1abc", "a b"}) {
    auto r = deploy(t);
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << t;
  }
  DeployInput in;
  in.ticket = "OK-1";
  in.spec.repo = "nope";
  in.spec.sourceBranch = "a";
  in.spec.targetBranch = "b";
  EXPECT_EQ(envs_->deploy(in, nullptr).status().code(), Code::kInvalidArgument);
  in.spec.repo = "";
  in.spec.env["1BAD"] = "x";
  EXPECT_EQ(envs_->deploy(in, nullptr).status().code(), Code::kInvalidArgument);
  EXPECT_TRUE(runtime_.calls.empty());
  EXPECT_TRUE(store_->listEnvironments()->empty());
}

TEST_F(EnvironmentsTest, CloneFailureRollsEverythingBack) {
  runtime_.failOn.insert("clone qabox-bad-1");
  auto r = deploy("BAD-1");
  ASSERT_FALSE(r.isOk());
  EXPECT_TRUE(store_->listEnvironments()->empty());
  EXPECT_TRUE(store_->listLeases()->empty());
  EXPECT_TRUE(store_->unfinishedOperations()->empty());
  EXPECT_FALSE(routes_.lookup("bad-1"));
}

TEST_F(EnvironmentsTest, HealthFailureLeavesAFailedEnvironmentForInspection) {
  healthy_ = false;
  auto r = deploy("SICK-1");
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r->state, EnvState::kFailed);
  EXPECT_NE(r->message.find("health failed"), std::string::npos) << r->message;
  EXPECT_TRUE(runtime_.containers.count("qabox-sick-1"));
  EXPECT_EQ(routes_.lookup("sick-1")->state, EnvState::kFailed);
  EXPECT_TRUE(store_->unfinishedOperations()->empty());
}

// Issue 12, item 9: one container recovery cannot destroy used to end
// recover() with an error, and the daemon exited (a restart loop).
TEST_F(EnvironmentsTest, RecoveryGoesOnPastAContainerItCannotDestroyAndMarksItBroken) {
  ASSERT_TRUE(deploy("STUCK-1").isOk());
  ASSERT_TRUE(deploy("KEEP-1").isOk());
  // A delete the agent was killed in the middle of, on a container stuck in D state.
  auto stuck = **store_->getEnvironment("stuck-1");
  ASSERT_TRUE(store_
                  ->beginOperation({0, "stuck-1", JournalKind::kDelete, stuck.container, stuck.ip,
                                    Clock::now(), std::nullopt, JournalOutcome::kUnfinished, ""})
                  .isOk());
  stuck.state = EnvState::kDeleting;
  ASSERT_TRUE(store_->putEnvironment(stuck).isOk());
  runtime_.failOn.insert("destroy qabox-stuck-1");
  // And an orphan that cannot be destroyed either, holding an address.
  runtime_.containers["qabox-orphan"] = {};
  ASSERT_TRUE(store_->leaseAddress(config_.network.subnet, "qabox-orphan").isOk());
  runtime_.failOn.insert("destroy qabox-orphan");

  RouteTable fresh;
  EnvironmentManager after(lifecycleOptions(config_), *store_, runtime_, bridge_, *images_, nullptr,
                           fresh, [](auto&&...) { return Status::ok(); });
  Status s = after.recover();
  ASSERT_TRUE(s.isOk()) << s.toString();

  auto broken = **store_->getEnvironment("stuck-1");
  EXPECT_EQ(broken.state, EnvState::kBroken);
  EXPECT_NE(broken.message.find("could not destroy container qabox-stuck-1"), std::string::npos)
      << broken.message;
  EXPECT_NE(broken.message.find("destroy qabox-stuck-1: injected"), std::string::npos);
  ASSERT_TRUE(fresh.lookup("stuck-1"));
  EXPECT_EQ(fresh.lookup("stuck-1")->state, EnvState::kBroken);
  EXPECT_EQ(fresh.lookup("stuck-1")->message, broken.message);
  EXPECT_EQ(fresh.lookup("keep-1")->state, EnvState::kReady);
  EXPECT_TRUE(store_->unfinishedOperations()->empty());
  // Addresses of containers that may still run are not handed out again.
  std::set<std::string> owners;
  auto leases = store_->listLeases();
  ASSERT_TRUE(leases.isOk());
  for (const auto& l : *leases) owners.insert(l.owner);
  EXPECT_TRUE(owners.count("qabox-stuck-1"));
  EXPECT_TRUE(owners.count("qabox-orphan"));
  EXPECT_TRUE(runtime_.containers.count("qabox-orphan"));
  bool recorded = false;
  auto mine = store_->listEvents("STUCK-1", 0);
  ASSERT_TRUE(mine.isOk());
  auto bySlug = store_->listEvents("stuck-1", 0);
  ASSERT_TRUE(bySlug.isOk());
  mine->insert(mine->end(), bySlug->begin(), bySlug->end());
  for (const auto& e : *mine) {
    recorded |= e.action == "recover" && e.outcome == "error";
  }
  EXPECT_TRUE(recorded);
  bool orphanRecorded = false;
  auto all = store_->listEvents("", 0);
  ASSERT_TRUE(all.isOk());
  for (const auto& e : *all) {
    orphanRecorded |= e.outcome == "error" && e.detail.find("qabox-orphan") != std::string::npos;
  }
  EXPECT_TRUE(orphanRecorded);

  // A redeploy is refused; a delete retries the destroy, and stays BROKEN while it fails.
  DeployInput in;
  in.ticket = "STUCK-1";
  in.actor = "test";
  auto redeploy = after.deploy(in, nullptr);
  EXPECT_EQ(redeploy.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(redeploy.status().message().find("BROKEN"), std::string::npos);
  size_t destroys = 0;
  for (const auto& c : runtime_.calls) destroys += c == "destroy qabox-stuck-1";
  EXPECT_FALSE(after.remove("STUCK-1", "ops").isOk());
  size_t destroysAfter = 0;
  for (const auto& c : runtime_.calls) destroysAfter += c == "destroy qabox-stuck-1";
  EXPECT_EQ(destroysAfter, destroys + 1);
  EXPECT_EQ((**store_->getEnvironment("stuck-1")).state, EnvState::kBroken);
  EXPECT_EQ(fresh.lookup("stuck-1")->state, EnvState::kBroken);
  runtime_.failOn.erase("destroy qabox-stuck-1");
  ASSERT_TRUE(after.remove("STUCK-1", "ops").isOk());
  EXPECT_FALSE(store_->getEnvironment("stuck-1")->has_value());
  EXPECT_FALSE(runtime_.containers.count("qabox-stuck-1"));
  auto leasesAfter = store_->listLeases();
  ASSERT_TRUE(leasesAfter.isOk());
  for (const auto& l : *leasesAfter) EXPECT_NE(l.owner, "qabox-stuck-1");
  EXPECT_FALSE(fresh.lookup("stuck-1"));
}

TEST_F(EnvironmentsTest, RecoveryMarksAContainerItCannotAskAboutBroken) {
  ASSERT_TRUE(deploy("ASK-1").isOk());
  ASSERT_TRUE(deploy("KEEP-1").isOk());
  runtime_.failOn.insert("state qabox-ask-1");
  RouteTable fresh;
  EnvironmentManager after(lifecycleOptions(config_), *store_, runtime_, bridge_, *images_, nullptr,
                           fresh, [](auto&&...) { return Status::ok(); });
  ASSERT_TRUE(after.recover().isOk());
  EXPECT_EQ((**store_->getEnvironment("ask-1")).state, EnvState::kBroken);
  EXPECT_EQ(fresh.lookup("ask-1")->state, EnvState::kBroken);
  EXPECT_EQ(fresh.lookup("keep-1")->state, EnvState::kReady);
}

TEST_F(EnvironmentsTest, UnfinishedCreateThatCannotBeDestroyedIsBroken) {
  ASSERT_TRUE(deploy("NEW-1").isOk());
  auto row = **store_->getEnvironment("new-1");
  row.state = EnvState::kCreating;
  ASSERT_TRUE(store_->putEnvironment(row).isOk());
  ASSERT_TRUE(store_
                  ->beginOperation({0, "new-1", JournalKind::kCreate, row.container, row.ip,
                                    Clock::now(), std::nullopt, JournalOutcome::kUnfinished, ""})
                  .isOk());
  runtime_.failOn.insert("destroy qabox-new-1");
  RouteTable fresh;
  EnvironmentManager after(lifecycleOptions(config_), *store_, runtime_, bridge_, *images_, nullptr,
                           fresh, [](auto&&...) { return Status::ok(); });
  ASSERT_TRUE(after.recover().isOk());
  EXPECT_EQ((**store_->getEnvironment("new-1")).state, EnvState::kBroken);
  EXPECT_EQ(store_->listLeases()->size(), 1u);
}

TEST_F(EnvironmentsTest, DeleteRemovesRouteContainerAndLease) {
  ASSERT_TRUE(deploy("DEL-1").isOk());
  ASSERT_TRUE(envs_->remove("DEL-1", "test").isOk());
  EXPECT_FALSE(routes_.lookup("del-1"));
  EXPECT_TRUE(runtime_.containers.empty());
  EXPECT_TRUE(store_->listLeases()->empty());
  EXPECT_EQ(envs_->remove("DEL-1", "test").code(), Code::kNotFound);
}

TEST_F(EnvironmentsTest, RecoverDestroysOrphansAndMarksMissingContainersFailed) {
  ASSERT_TRUE(deploy("KEEP-1").isOk());
  ASSERT_TRUE(deploy("GONE-1").isOk());
  runtime_.containers["qabox-orphan"] = {};
  runtime_.containers.erase("qabox-gone-1");
  ASSERT_TRUE(store_->leaseAddress(config_.network.subnet, "qabox-nobody").isOk());
  runtime_.containers["qabox-keep-1"].state = ContainerState::kStopped;

  RouteTable fresh;
  EnvironmentManager after(lifecycleOptions(config_), *store_, runtime_, bridge_, *images_, nullptr,
                           fresh, [](auto&&...) { return Status::ok(); });
  ASSERT_TRUE(after.recover().isOk());
  EXPECT_FALSE(runtime_.containers.count("qabox-orphan"));
  // Stopped by a host restart: asleep, so its first request wakes it and
  // waits for the app instead of meeting a 502 while it starts.
  EXPECT_EQ(runtime_.containers.at("qabox-keep-1").state, ContainerState::kStopped);
  EXPECT_EQ(store_->getEnvironment("keep-1")->value().state, EnvState::kSleeping);
  auto gone = store_->getEnvironment("gone-1");
  ASSERT_TRUE(gone.isOk() && gone->has_value());
  EXPECT_EQ((*gone)->state, EnvState::kFailed);
  EXPECT_NE((*gone)->message.find("is gone"), std::string::npos);
  auto leases = store_->listLeases();
  ASSERT_TRUE(leases.isOk());
  for (const auto& l : *leases) EXPECT_NE(l.owner, "qabox-nobody");
  EXPECT_EQ(fresh.lookup("keep-1")->state, EnvState::kSleeping);
  EXPECT_EQ(bridge_.ensured, config_.network.bridge + " 10.9.0.1/29");
}

TEST_F(EnvironmentsTest, RecoverGuardsTheBridgeWithEveryRowsBindingAndThePolicy) {
  ASSERT_TRUE(deploy("NET-1").isOk());
  ASSERT_TRUE(deploy("NET-2").isOk());
  config_.routing.listen = "0.0.0.0:8080";
  config_.routing.tlsListen = "0.0.0.0:8443";
  config_.api.listen = {"unix:///tmp/x.sock", "10.9.0.1:7443"};
  config_.network.egress = {EgressPolicy::Mode::kList, {{"198.51.100.0/24", 443}}};
  makeManager();
  ASSERT_TRUE(envs_->recover().isOk());
  const BridgeGuard& g = bridge_.guardSpec;
  EXPECT_EQ(bridge_.guarded, config_.network.bridge);
  EXPECT_EQ(g.gateway, "10.9.0.1");
  EXPECT_EQ(g.routerTcpPorts, (std::vector<uint16_t>{8080, 8443}));
  EXPECT_EQ(g.hostTcpPorts, (std::vector<uint16_t>{7443}));
  EXPECT_EQ(g.egress.mode, EgressPolicy::Mode::kList);
  ASSERT_EQ(g.bindings.size(), 2u);
  std::map<std::string, PortBinding> byIp;
  for (const auto& b : g.bindings) byIp[b.ip] = b;
  ASSERT_TRUE(byIp.count("10.9.0.2") && byIp.count("10.9.0.3"));
  EXPECT_EQ(byIp["10.9.0.2"].mac, "02:71:0a:09:00:02");
  EXPECT_EQ(byIp["10.9.0.2"].port, vethName(config_.network.bridge, dir_ + "/lxc", "qabox-net-1"));
}

TEST_F(EnvironmentsTest, RecoverRollsBackAnUnfinishedCreate) {
  // What a crash right after clone leaves: the row, the lease, the journal
  // entry and the container.
  Environment row;
  row.ticket = "HALF-1";
  row.slug = "half-1";
  row.state = EnvState::kCreating;
  row.container = "qabox-half-1";
  row.spec.image = "busybox";
  auto ip = store_->leaseAddress(config_.network.subnet, row.container);
  ASSERT_TRUE(ip.isOk());
  row.ip = *ip;
  ASSERT_TRUE(store_->putEnvironment(row).isOk());
  ASSERT_TRUE(store_
                  ->beginOperation({0, "half-1", JournalKind::kCreate, row.container, row.ip,
                                    Clock::now(), std::nullopt, JournalOutcome::kUnfinished, ""})
                  .isOk());
  runtime_.containers["qabox-half-1"] = {};

  ASSERT_TRUE(envs_->recover().isOk());
  EXPECT_TRUE(runtime_.containers.empty());
  EXPECT_TRUE(store_->listLeases()->empty());
  EXPECT_FALSE(store_->getEnvironment("half-1")->has_value());
  EXPECT_TRUE(store_->unfinishedOperations()->empty());
}

TEST_F(EnvironmentsTest, RecoverRollsBackAnUnfinishedRedeployAndKeepsTheOldOne) {
  ASSERT_TRUE(deploy("RE-1").isOk());
  auto ip = store_->leaseAddress(config_.network.subnet, "qabox-re-1_1");
  ASSERT_TRUE(ip.isOk());
  ASSERT_TRUE(store_
                  ->beginOperation({0, "re-1", JournalKind::kRedeploy, "qabox-re-1_1", *ip,
                                    Clock::now(), std::nullopt, JournalOutcome::kUnfinished, ""})
                  .isOk());
  runtime_.containers["qabox-re-1_1"] = {};
  auto row = *store_->getEnvironment("re-1");
  row->state = EnvState::kDeploying;
  ASSERT_TRUE(store_->putEnvironment(*row).isOk());

  ASSERT_TRUE(envs_->recover().isOk());
  EXPECT_FALSE(runtime_.containers.count("qabox-re-1_1"));
  EXPECT_TRUE(runtime_.containers.count("qabox-re-1"));
  auto after = *store_->getEnvironment("re-1");
  EXPECT_EQ(after->state, EnvState::kReady);
  EXPECT_EQ(after->container, "qabox-re-1");
  EXPECT_EQ(store_->listLeases()->size(), 1u);
}

TEST_F(EnvironmentsTest, RecoverCompletesAnUnfinishedDelete) {
  ASSERT_TRUE(deploy("GO-1").isOk());
  auto env = *store_->getEnvironment("go-1");
  ASSERT_TRUE(store_
                  ->beginOperation({0, "go-1", JournalKind::kDelete, env->container, env->ip,
                                    Clock::now(), std::nullopt, JournalOutcome::kUnfinished, ""})
                  .isOk());
  ASSERT_TRUE(envs_->recover().isOk());
  EXPECT_TRUE(runtime_.containers.empty());
  EXPECT_FALSE(store_->getEnvironment("go-1")->has_value());
  EXPECT_TRUE(store_->listLeases()->empty());
}

TEST_F(EnvironmentsTest, SleepIdlePutsOnlyIdleUnpinnedReadyEnvironmentsToSleep) {
  config_.reaper.sleepAfter = std::chrono::hours(2);
  makeManager();  // the manager copies its options
  ASSERT_TRUE(deploy("IDLE-1").isOk());
  ASSERT_TRUE(deploy("BUSY-1").isOk());
  ASSERT_TRUE(deploy("PIN-1").isOk());
  ASSERT_TRUE(envs_->setPinned("PIN-1", true, "test").isOk());
  auto now = Clock::now() + std::chrono::hours(3);
  ASSERT_TRUE(store_->recordAccess({{"busy-1", now - std::chrono::minutes(5), 1, 0, 0}}).isOk());
  auto slept = envs_->sleepIdle(now);
  ASSERT_TRUE(slept.isOk());
  EXPECT_EQ(*slept, std::vector<std::string>{"IDLE-1"});
  EXPECT_EQ(runtime_.containers.at("qabox-idle-1").state, ContainerState::kStopped);
  EXPECT_EQ(routes_.lookup("idle-1")->state, EnvState::kSleeping);
  EXPECT_EQ((*store_->getEnvironment("idle-1"))->state, EnvState::kSleeping);
  EXPECT_EQ(runtime_.containers.at("qabox-busy-1").state, ContainerState::kRunning);
  EXPECT_EQ(runtime_.containers.at("qabox-pin-1").state, ContainerState::kRunning);

  // Waking starts it again and checks its health before routing to it.
  auto woke = envs_->wake("IDLE-1", "test");
  ASSERT_TRUE(woke.isOk()) << woke.status().toString();
  EXPECT_EQ(woke->state, EnvState::kReady);
  EXPECT_EQ(routes_.lookup("idle-1")->state, EnvState::kReady);

  config_.reaper.sleepAfter = std::chrono::milliseconds(0);
  makeManager();
  EXPECT_TRUE(envs_->sleepIdle(now + std::chrono::hours(10))->empty());
}

TEST_F(EnvironmentsTest, FailedWakeSaysWhy) {
  ASSERT_TRUE(deploy("NAP-1").isOk());
  ASSERT_TRUE(envs_->sleep("NAP-1", "test").isOk());
  healthy_ = false;
  auto r = envs_->wake("NAP-1", "test");
  ASSERT_FALSE(r.isOk());
  EXPECT_NE(r.status().message().find("waking failed"), std::string::npos);
  EXPECT_EQ((*store_->getEnvironment("nap-1"))->state, EnvState::kFailed);
}

// Regression (issue 17's concurrency run): an exec racing a sleep answered
// "container ... is not running (state READY)". The command now holds the
// environment awake; the sleep says why it cannot happen yet.
TEST_F(EnvironmentsTest, ASleepDuringAnExecIsRefusedNamingTheCommand) {
  ASSERT_TRUE(deploy("RACE-1").isOk());
  std::optional<Status> slept;
  runtime_.duringExec = [&] { slept = envs_->sleep("RACE-1", "test").status(); };
  auto r = envs_->exec("RACE-1", {"true"}, {}, "", std::chrono::seconds(5), nullptr, "test");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  ASSERT_TRUE(slept.has_value());
  EXPECT_EQ(slept->code(), Code::kFailedPrecondition);
  EXPECT_NE(slept->message().find("qabox exec"), std::string::npos) << slept->message();
  EXPECT_EQ((*store_->getEnvironment("race-1"))->state, EnvState::kReady);
  // Once the command ended, the environment sleeps.
  runtime_.duringExec = nullptr;
  EXPECT_TRUE(envs_->sleep("RACE-1", "test").isOk());
}

TEST_F(EnvironmentsTest, TheSleepScheduleLeavesAnEnvironmentRunningACommandAwake) {
  config_.reaper.sleepAfter = std::chrono::hours(1);
  makeManager();
  ASSERT_TRUE(deploy("RACE-2").isOk());
  std::vector<std::string> slept;
  runtime_.duringExec = [&] {
    auto r = envs_->sleepIdle(Clock::now() + std::chrono::hours(1000));
    if (r) slept = *r;
  };
  ASSERT_TRUE(
      envs_->exec("RACE-2", {"true"}, {}, "", std::chrono::seconds(5), nullptr, "test").isOk());
  EXPECT_TRUE(slept.empty());
  EXPECT_EQ((*store_->getEnvironment("race-2"))->state, EnvState::kReady);
}

TEST_F(EnvironmentsTest, ExecWakesASleepingEnvironmentUnderItsLock) {
  ASSERT_TRUE(deploy("RACE-3").isOk());
  ASSERT_TRUE(envs_->sleep("RACE-3", "test").isOk());
  auto r = envs_->exec("RACE-3", {"true"}, {}, "", std::chrono::seconds(5), nullptr, "test");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ((*store_->getEnvironment("race-3"))->state, EnvState::kReady);
}

TEST_F(EnvironmentsTest, ExecInAStoppedContainerSaysWhatTheEnvironmentIs) {
  ASSERT_TRUE(deploy("RACE-4").isOk());
  ASSERT_TRUE(runtime_.stop("qabox-race-4").isOk());
  auto r = envs_->exec("RACE-4", {"true"}, {}, "", std::chrono::seconds(5), nullptr, "test");
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("is not running"), std::string::npos);
}

// Regression (issue 17's concurrency run): a redeploy that read the row
// before a delete took the lock deployed the ticket anew.
TEST_F(EnvironmentsTest, ARedeployOfATicketDeletedMeanwhileIsNotFoundAndMakesNothing) {
  DeployInput in;
  in.ticket = "GONE-1";
  in.actor = "test";
  in.redeploy = true;
  auto r = envs_->deploy(in, nullptr);
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), Code::kNotFound);
  EXPECT_FALSE(*store_->getEnvironment("gone-1"));
  EXPECT_TRUE(runtime_.containers.empty());
}

// Regression (issue 17's concurrency run): an exec whose container a
// delete destroyed under it answered OK with the killed command's exit.
TEST_F(EnvironmentsTest, AnExecCutShortByADeleteSaysTheEnvironmentWasDeleted) {
  ASSERT_TRUE(deploy("RACE-5").isOk());
  runtime_.execExitCode = 137;
  runtime_.duringExec = [&] { ASSERT_TRUE(envs_->remove("RACE-5", "test").isOk()); };
  auto r = envs_->exec("RACE-5", {"true"}, {}, "", std::chrono::seconds(5), nullptr, "test");
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("deleted"), std::string::npos) << r.status().message();
}

TEST_F(EnvironmentsTest, AnExecCountsAsAUseSoTheIdleSleepWaitsFromItsEnd) {
  config_.reaper.sleepAfter = std::chrono::hours(1);
  FakeTime time(Clock::now());
  envs_ = std::make_unique<EnvironmentManager>(
      lifecycleOptions(config_), *store_, runtime_, bridge_, *images_, nullptr, routes_,
      [](const std::string&, uint16_t, const std::string&, std::chrono::milliseconds) {
        return Status::ok();
      },
      time);
  ASSERT_TRUE(deploy("RACE-7").isOk());
  runtime_.duringExec = [&] { time.advance(std::chrono::minutes(50)); };  // a long command
  ASSERT_TRUE(
      envs_->exec("RACE-7", {"true"}, {}, "", std::chrono::seconds(5), nullptr, "test").isOk());
  runtime_.duringExec = nullptr;
  auto row = *store_->getEnvironment("race-7");
  ASSERT_TRUE(row->lastAccessAt.has_value());
  EXPECT_GT(*row->lastAccessAt, time.now() - std::chrono::seconds(1));  // stored in ms
  // 80 minutes after the deploy, 30 after the command ended: not idle.
  auto slept = envs_->sleepIdle(time.now() + std::chrono::minutes(30));
  ASSERT_TRUE(slept.isOk());
  EXPECT_TRUE(slept->empty());
  EXPECT_EQ((*store_->getEnvironment("race-7"))->state, EnvState::kReady);
  envs_.reset();
}

TEST(ShellQuote, SurvivesQuotesAndNewlines) {
  EXPECT_EQ(shellQuote("plain"), "'plain'");
  EXPECT_EQ(shellQuote("it's"), "'it'\\''s'");
  EXPECT_EQ(shellQuote("a\nb $HOME `x`"), "'a\nb $HOME `x`'");
}

}  // namespace
}  // namespace qabox

namespace qabox {
namespace {

TEST(EffectiveLimits, DeployThenImageThenMaximum) {
  Config::Limits max;  // 2G, no CPU maximum, 4096 pids
  auto both = effectiveLimits({"512M", 2, 0}, {"256M", 1, 256}, "busybox", max);
  ASSERT_TRUE(both.isOk()) << both.status().toString();
  EXPECT_EQ(*both, (ResourceLimits{"512M", 2, 256}));
  auto image = effectiveLimits({}, {"256M", 0, 0}, "busybox", max);
  ASSERT_TRUE(image.isOk());
  EXPECT_EQ(*image, (ResourceLimits{"256M", 0, 4096})) << "unset: the maximum, 0: none";
}

TEST(EffectiveLimits, AboveTheMaximumNamesTheFieldAndTheMaximum) {
  Config::Limits max;
  max.maxCpus = 2;
  auto memory = effectiveLimits({"3G", 0, 0}, {}, "busybox", max);
  ASSERT_FALSE(memory.isOk());
  EXPECT_EQ(memory.status().code(), Code::kInvalidArgument);
  EXPECT_EQ(memory.status().message(),
            "limits.memory \"3G\": above the agent's limits.max_memory (2G)");
  auto cpus = effectiveLimits({"", 4, 0}, {}, "busybox", max);
  ASSERT_FALSE(cpus.isOk());
  EXPECT_EQ(cpus.status().message(), "limits.cpus \"4\": above the agent's limits.max_cpus (2)");
  auto bad = effectiveLimits({"lots", 0, 0}, {}, "busybox", max);
  ASSERT_FALSE(bad.isOk());
  EXPECT_EQ(bad.status().code(), Code::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("limits.memory \"lots\": must be a size"),
            std::string::npos);
  // An image asking for more than the host allows is the image's problem.
  auto image = effectiveLimits({}, {"", 0, 9000}, "fat", max);
  ASSERT_FALSE(image.isOk());
  EXPECT_EQ(image.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(image.status().message().find("image fat: limits.pids \"9000\""), std::string::npos);
}

TEST(MemorySize, ParsesUnitsAndRefusesTheRest) {
  EXPECT_EQ(parseMemorySize("512"), 512u);
  EXPECT_EQ(parseMemorySize("4K"), 4096u);
  EXPECT_EQ(parseMemorySize("256M"), 256u << 20);
  EXPECT_EQ(parseMemorySize("2G"), 2ULL << 30);
  for (const char* bad :
       {"", "0", "0M", "M", "1.5G", "-1G", "1T", "12 M", "99999999999999999999G"}) {
    EXPECT_FALSE(parseMemorySize(bad).has_value()) << bad;
  }
}

}  // namespace
}  // namespace qabox

namespace qabox {
namespace {

TEST_F(EnvironmentsTest, ARunningEnvironmentOverMaxDiskIsFailedAndStoppedKeepingItsLease) {
  ASSERT_TRUE(deploy("A-1").isOk());
  ASSERT_TRUE(deploy("B-1").isOk());
  {
    std::ofstream big(runtime_.upperRoot + "/qabox-a-1/big", std::ios::binary);
    std::string mb(1 << 20, 'x');
    for (int i = 0; i < 3; ++i) big << mb;
  }
  config_.limits.maxDisk = "1M";
  makeManager();
  auto failed = envs_->enforceDiskLimits();
  ASSERT_TRUE(failed.isOk()) << failed.status().toString();
  EXPECT_EQ(*failed, std::vector<std::string>{"A-1"});
  auto a = envs_->get("A-1");
  ASSERT_TRUE(a.isOk());
  EXPECT_EQ(a->state, EnvState::kFailed);
  EXPECT_NE(a->message.find("limits.max_disk: its own layer uses 3."), std::string::npos)
      << a->message;
  EXPECT_NE(a->message.find("above the limit of 1M"), std::string::npos) << a->message;
  EXPECT_EQ(runtime_.containers.at("qabox-a-1").state, ContainerState::kStopped);
  EXPECT_EQ(routes_.lookup("a-1")->state, EnvState::kFailed);
  auto leases = store_->listLeases();
  ASSERT_TRUE(leases.isOk());
  EXPECT_EQ(leases->size(), 2u);  // until it is deleted
  auto b = envs_->get("B-1");
  ASSERT_TRUE(b.isOk());
  EXPECT_EQ(b->state, EnvState::kReady);
  // Stopped, it is not measured again.
  auto again = envs_->enforceDiskLimits();
  ASSERT_TRUE(again.isOk());
  EXPECT_TRUE(again->empty());
  ASSERT_TRUE(envs_->remove("A-1", "test").isOk());
  EXPECT_EQ(store_->listLeases()->size(), 1u);
}

// What each container carries about itself follows every change of its
// row: a rebuild of lost state brings FAILED and BROKEN back as they were,
// never READY.
TEST_F(EnvironmentsTest, FailedAndBrokenReachTheRecordBesideTheContainer) {
  ASSERT_TRUE(deploy("A-1").isOk());
  ASSERT_TRUE(deploy("B-1").isOk());
  for (const char* c : {"qabox-a-1", "qabox-b-1"}) fs::create_directories(dir_ + "/lxc/" + c);
  {
    std::ofstream big(runtime_.upperRoot + "/qabox-a-1/big", std::ios::binary);
    big << std::string(3 << 20, 'x');
  }
  config_.limits.maxDisk = "1M";
  makeManager();
  ASSERT_TRUE(envs_->enforceDiskLimits().isOk());
  auto a = readEnvRecord(dir_, "qabox-a-1", config_.network.subnet);
  ASSERT_TRUE(a.isOk()) << a.status().message();
  EXPECT_EQ(a->state, EnvState::kFailed);
  EXPECT_NE(a->message.find("limits.max_disk"), std::string::npos) << a->message;

  runtime_.failOn.insert("destroy qabox-b-1");
  EXPECT_FALSE(envs_->remove("B-1", "test").isOk());
  auto b = readEnvRecord(dir_, "qabox-b-1", config_.network.subnet);
  ASSERT_TRUE(b.isOk()) << b.status().message();
  EXPECT_EQ(b->state, EnvState::kBroken);
  EXPECT_NE(b->message.find("delete failed"), std::string::npos) << b->message;
}

// An orphan whose record names an environment qabox.db does not hold is
// lost state, not garbage: recovery refuses rather than destroys it.
TEST_F(EnvironmentsTest, RecoveryRefusesToDestroyAnOrphanThatCarriesARecord) {
  ASSERT_TRUE(deploy("LOST-1").isOk());
  fs::create_directories(dir_ + "/lxc/qabox-lost-1");
  auto row = **store_->getEnvironment("lost-1");
  ASSERT_TRUE(writeEnvRecord(dir_, row).isOk());
  ASSERT_TRUE(store_->deleteEnvironment("lost-1").isOk());  // the row lost
  RouteTable fresh;
  EnvironmentManager after(lifecycleOptions(config_), *store_, runtime_, bridge_, *images_, nullptr,
                           fresh, [](auto&&...) { return Status::ok(); });
  Status s = after.recover();
  EXPECT_EQ(s.code(), Code::kDataLoss) << s.toString();
  EXPECT_NE(s.message().find("qabox-lost-1"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("--rebuild-state"), std::string::npos) << s.message();
  EXPECT_TRUE(runtime_.containers.count("qabox-lost-1"));
  EXPECT_TRUE(fs::exists(dir_ + "/lxc/qabox-lost-1/qabox.json"));
}

TEST_F(EnvironmentsTest, TooManyFilesIsFailedNamingMaxFiles) {
  ASSERT_TRUE(deploy("A-1").isOk());
  config_.limits.maxFiles = 1000;
  makeManager();
  for (int i = 0; i < 1200; ++i) {
    std::ofstream(runtime_.upperRoot + "/qabox-a-1/f" + std::to_string(i)) << "";
  }
  auto failed = envs_->enforceDiskLimits();
  ASSERT_TRUE(failed.isOk());
  EXPECT_EQ(failed->size(), 1u);
  EXPECT_NE(envs_->get("A-1")->message.find("limits.max_files"), std::string::npos);
}

}  // namespace
}  // namespace qabox

namespace qabox {
namespace {

// ------------------------------------------------ the schedule and the waker

TEST_F(EnvironmentsTest, TheWakerWakesOnItsPoolAndStopWaitsForTheWakesInFlight) {
  ASSERT_TRUE(deploy("NAP-1").isOk());
  ASSERT_TRUE(envs_->sleep("NAP-1", "test").isOk());
  Waker waker(*envs_);
  std::promise<Status> woke;
  waker.wake("nap-1", [&](Status s) { woke.set_value(s); });
  waker.stop();  // waits for it
  auto f = woke.get_future();
  ASSERT_EQ(f.wait_for(std::chrono::seconds(0)), std::future_status::ready);
  EXPECT_TRUE(f.get().isOk());
  EXPECT_EQ(routes_.lookup("nap-1")->state, EnvState::kReady);
  EXPECT_TRUE(recorded("NAP-1", "wake", actors::kRouter));

  Status after = Status::ok();
  waker.wake("nap-1", [&](Status s) { after = s; });
  EXPECT_EQ(after.code(), Code::kUnavailable);
  waker.stop();
}

TEST_F(EnvironmentsTest, TheSleepScheduleAsksItsTimeSourceWhatTimeItIs) {
  config_.reaper.sleepAfter = std::chrono::hours(2);
  makeManager();
  ASSERT_TRUE(deploy("IDLE-1").isOk());
  FakeTime time(Clock::now());
  LifecycleSchedule schedule(*envs_, time);
  schedule.sleepIdleOnce();
  EXPECT_EQ((*store_->getEnvironment("idle-1"))->state, EnvState::kReady);
  time.advance(std::chrono::hours(3));
  schedule.sleepIdleOnce();
  EXPECT_EQ((*store_->getEnvironment("idle-1"))->state, EnvState::kSleeping);
  EXPECT_TRUE(recorded("IDLE-1", "sleep", actors::kSleeper));
}

TEST_F(EnvironmentsTest, TheReclaimPathIsTheReapersDeleteWithItsRecheckUnderTheLock) {
  ASSERT_TRUE(deploy("OLD-1").isOk());
  Status refused = envs_->reclaim("OLD-1", "reap by alice: idle: test", [](const Environment&) {
    return failedPrecondition("changed since the decision");
  });
  EXPECT_EQ(refused.code(), Code::kFailedPrecondition);
  EXPECT_TRUE(store_->getEnvironment("old-1")->has_value());
  ASSERT_TRUE(envs_
                  ->reclaim("OLD-1", "reap by alice: idle: test",
                            [](const Environment& e) {
                              return e.slug == "old-1" ? Status::ok() : internalError("wrong row");
                            })
                  .isOk());
  EXPECT_FALSE(store_->getEnvironment("old-1")->has_value());
  EXPECT_TRUE(recorded("OLD-1", "delete", actors::kReaper));
}

TEST(LifecycleSchedule, LooksForIdleEnvironmentsEveryQuarterOfSleepAfterWithinOneSecondAndAMinute) {
  using std::chrono::hours;
  using std::chrono::milliseconds;
  using std::chrono::seconds;
  EXPECT_EQ(LifecycleSchedule::sleepCheckEvery(seconds(2)), seconds(1));
  EXPECT_EQ(LifecycleSchedule::sleepCheckEvery(seconds(8)), seconds(2));
  EXPECT_EQ(LifecycleSchedule::sleepCheckEvery(hours(2)), seconds(60));
  EXPECT_EQ(LifecycleSchedule::sleepCheckEvery(milliseconds(1)), seconds(1));
}

TEST(Periodic, RunsEveryPeriodUntilStoppedAndStopsTwiceSafely) {
  std::atomic<int> runs{0};
  Periodic p("test", std::chrono::milliseconds(5), [&] { ++runs; });
  p.stop();  // before start: nothing to stop
  p.start();
  p.start();  // a second start is not a second thread
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (runs < 3 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  p.stop();
  int after = runs;
  EXPECT_GE(after, 3);
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  EXPECT_EQ(runs, after);
  p.stop();
}

// --------------------------------------------------------------- options

TEST(LifecycleOptions, AreBuiltFromTheConfigWithItsNames) {
  Config c;
  c.stateDir = "/srv/qabox";
  c.routing.domain = "qa.example.test";
  c.routing.listen = "0.0.0.0:8080";
  c.routing.tlsListen = "0.0.0.0:8443";
  c.api.listen = {"unix:///run/qabox.sock", "10.0.0.1:7443", "127.0.0.1:0"};
  c.repos = {{"shop", "https://git.example.test/shop.git"}};
  c.reaper.sleepAfter = std::chrono::minutes(30);
  c.limits.maxDisk = "3G";
  LifecycleOptions o = lifecycleOptions(c);
  EXPECT_EQ(o.stateDir, "/srv/qabox");
  EXPECT_EQ(o.limits.maxDisk, "3G");
  EXPECT_EQ(o.reaper.sleepAfter, std::chrono::minutes(30));
  EXPECT_EQ(o.reaper.maxAge, c.reaper.maxAge);
  EXPECT_EQ(o.urlFor("exmp-1"), c.urlFor("exmp-1"));
  EXPECT_EQ(o.urlFor("exmp-1"), "http://exmp-1.qa.example.test:8080");
  c.routing.listen = "0.0.0.0:80";
  EXPECT_EQ(lifecycleOptions(c).urlFor("exmp-1"), c.urlFor("exmp-1"));
  EXPECT_EQ(o.hostTcpPorts, (std::vector<uint16_t>{7443}));  // no unix socket, no port 0
  EXPECT_EQ(o.routerTcpPorts, (std::vector<uint16_t>{8080, 8443}));
  ASSERT_NE(o.findRepo("shop"), nullptr);
  EXPECT_EQ(o.findRepo("https://git.example.test/shop.git"), o.findRepo("shop"));
  EXPECT_EQ(o.findRepo("web"), nullptr);

  ReaperOptions r = reaperOptions(c);
  EXPECT_EQ(r.reaper.interval, c.reaper.interval);
  EXPECT_NE(r.findRepo("shop"), nullptr);
}

}  // namespace
}  // namespace qabox

namespace qabox {
namespace {

// ------------------------------------ recovery's executor, on the fake runtime

class InterruptedRedeployTest : public EnvironmentsTest {
 protected:
  void SetUp() override {
    EnvironmentsTest::SetUp();
    ASSERT_TRUE(deploy("RE-1").isOk());
    auto ip = store_->leaseAddress(config_.network.subnet, "qabox-re-1_1");
    ASSERT_TRUE(ip.isOk());
    ASSERT_TRUE(store_
                    ->beginOperation({0, "re-1", JournalKind::kRedeploy, "qabox-re-1_1", *ip,
                                      Clock::now(), std::nullopt, JournalOutcome::kUnfinished, ""})
                    .isOk());
    runtime_.containers["qabox-re-1_1"] = {};
    auto row = *store_->getEnvironment("re-1");
    row->state = EnvState::kDeploying;
    ASSERT_TRUE(store_->putEnvironment(*row).isOk());
  }
};

TEST_F(InterruptedRedeployTest, ANewContainerThatCannotGoIsLeftWithItsLeaseAndTheOldOneServes) {
  runtime_.failOn.insert("destroy qabox-re-1_1");
  ASSERT_TRUE(envs_->recover().isOk());
  auto row = **store_->getEnvironment("re-1");
  EXPECT_EQ(row.state, EnvState::kReady);
  EXPECT_EQ(row.message, "redeploy interrupted by an agent restart");
  EXPECT_EQ(routes_.lookup("re-1")->state, EnvState::kReady);
  EXPECT_TRUE(runtime_.containers.count("qabox-re-1_1"));
  EXPECT_EQ(store_->listLeases()->size(), 2u);  // the stuck one keeps its address
  EXPECT_TRUE(store_->unfinishedOperations()->empty());
  EXPECT_TRUE(recorded("re-1", "recover", actors::kAgent));
}

TEST_F(InterruptedRedeployTest, AServingContainerThatCannotBeAskedAboutIsBroken) {
  runtime_.failOn.insert("state qabox-re-1");
  ASSERT_TRUE(envs_->recover().isOk());
  auto row = **store_->getEnvironment("re-1");
  EXPECT_EQ(row.state, EnvState::kBroken);
  EXPECT_NE(row.message.find("could not read the state of container qabox-re-1"), std::string::npos)
      << row.message;
  EXPECT_FALSE(runtime_.containers.count("qabox-re-1_1"));
  EXPECT_EQ(store_->listLeases()->size(), 1u);
  EXPECT_EQ(routes_.lookup("re-1")->state, EnvState::kBroken);
  EXPECT_TRUE(store_->unfinishedOperations()->empty());
}

}  // namespace
}  // namespace qabox
