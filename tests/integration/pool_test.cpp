// The warm pool on real LXC: containers started ahead of deploys, claimed by
// them, never routed or listed, kept across a restart, replaced on a new
// image version, and what a crash in a claim or a fill leaves (nothing).
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include <google/protobuf/util/json_util.h>

#include "harness.h"
#include "init/contract.h"
#include "supervised_recipe.h"

namespace qabox::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr const char* kAppToml = R"([app]
start = "exec httpd -f -p 8080 -h /srv/app/www"
port = 8080
health = "/health.txt"
[hooks]
build = "mkdir -p www && echo ok > www/health.txt && echo \"$QABOX_TICKET\" > www/index.html"
)";

class LxcPool : public ::testing::Test {
 protected:
  void SetUp() override {
    QABOX_REQUIRE_LXC();
    host_ = std::make_unique<TestHost>();
    git_ = std::make_unique<GitFixture>(host_->stateDir() + "/src");
    git_->write("qabox.toml", kAppToml);
    git_->write("www/page.txt", "from the repo\n");
    git_->commit("app");
    git_->push("develop");
    git_->checkout("feature/x", true);
    git_->write("www/feature.txt", "from the feature\n");
    git_->commit("feature");
    git_->push("feature/x");
    options_.repos = {{"shop", git_->bare()}};
    options_.healthTimeout = "10s";
    options_.extraToml =
        "[pool]\nsize = 1\ninterval = \"200ms\"\n"
        "min_free_memory = \"64M\"\nmin_free_disk = \"64M\"\n";
    host_->writeConfig(options_);
    host_->startDaemon();
    ASSERT_EQ(host_->cli({"image", "build", "busybox"}).exitCode, 0);
  }

  // The pool's containers in the lxcpath.
  std::vector<std::string> pooledContainers() {
    std::vector<std::string> out;
    for (const auto& c : host_->containers()) {
      if (c.rfind("qaboxpool-", 0) == 0) out.push_back(c);
    }
    return out;
  }

  // Until `qabox status` says the pool holds `ready` of busybox, ready.
  v1::HostStatus waitForPool(uint32_t ready) {
    v1::HostStatus status;
    for (int i = 0; i < 300; ++i) {
      auto r = host_->cli({"status", "-o", "json"});
      if (r.exitCode == 0) {
        auto parsed = google::protobuf::util::JsonStringToMessage(r.out, &status);
        if (parsed.ok()) {
          auto it = status.pool_ready().find("busybox");
          uint32_t n = it == status.pool_ready().end() ? 0 : it->second;
          if (n == ready && status.pool_filling().empty()) return status;
        }
      }
      std::this_thread::sleep_for(50ms);
    }
    ADD_FAILURE() << "the pool never held " << ready << " ready:\n" << host_->logText();
    return status;
  }

  HttpReply viaRouter(const std::string& slug, const std::string& path) {
    return httpGet("127.0.0.1", host_->routerPort(), path, slug + "." + host_->domain());
  }

  TestHost::Options options_;
  std::unique_ptr<TestHost> host_;
  std::unique_ptr<GitFixture> git_;
};

TEST_F(LxcPool, PooledContainersAreStartedButNeverListedRoutedOrEnvironments) {
  auto status = waitForPool(1);
  EXPECT_EQ(status.environments(), 0u);
  auto pooled = pooledContainers();
  ASSERT_EQ(pooled.size(), 1u);
  EXPECT_EQ(host_->leaseCount(), 1);
  EXPECT_EQ(host_->bridgePorts().size(), 1u);
  auto list = host_->cli({"list", "-o", "json"});
  ASSERT_EQ(list.exitCode, 0) << list.err;
  EXPECT_EQ(list.out.find("qaboxpool"), std::string::npos) << list.out;
  // No name reaches it through the router: not its container's, not a ticket's.
  EXPECT_EQ(viaRouter(pooled[0], "/").status, 404);
  EXPECT_EQ(viaRouter("qaboxpool-1", "/").status, 404);
  auto text = host_->cli({"status"});
  EXPECT_NE(text.out.find("busybox 1 ready"), std::string::npos) << text.out;
  // As isolated as any environment: its own id range and the seccomp profile.
  const std::string config = readFile(host_->lxcPath() + "/" + pooled[0] + "/config");
  EXPECT_NE(config.find("lxc.seccomp.profile"), std::string::npos) << config;
  for (const auto& v : host_->violations()) ADD_FAILURE() << v;
}

TEST_F(LxcPool, AnImageOnlyDeployClaimsThePooledContainer) {
  waitForPool(1);
  const std::string pooled = pooledContainers().at(0);
  auto r = host_->cli({"deploy", "EXMP-113", "--image", "busybox"});
  ASSERT_EQ(r.exitCode, 0) << r.err << host_->logText();
  EXPECT_NE(r.err.find("from the warm pool"), std::string::npos) << r.err;
  auto env = host_->env("EXMP-113");
  ASSERT_TRUE(env);
  EXPECT_EQ(env->state(), v1::Environment::READY);
  EXPECT_EQ(env->container(), pooled);
  auto page = viaRouter("exmp-113", "/");
  EXPECT_EQ(page.status, 200) << page.error;
  EXPECT_NE(page.body.find("qabox environment"), std::string::npos);
  auto envFile = host_->cli({"exec", "EXMP-113", "--", "cat", "/etc/qabox/app.env"});
  EXPECT_NE(envFile.out.find("QABOX_TICKET='EXMP-113'"), std::string::npos) << envFile.out;
  auto mode = host_->cli({"exec", "EXMP-113", "--", "stat", "-c", "%a %u", "/etc/qabox/app.env"});
  EXPECT_EQ(mode.out, "600 0\n");
  EXPECT_NE(host_->cli({"exec", "EXMP-113", "--", "test", "-e", "/etc/qabox/pooled"}).exitCode, 0);
  // Filled at the lowest priority, claimed at the normal one: its init and
  // the app it started (nice, field 19, and policy, field 41, of stat).
  for (const char* pid : {"1", "$(pidof httpd)"}) {
    auto stat = host_->cli(
        {"exec", "EXMP-113", "--", "sh", "-c",
         std::string("cut -d')' -f2 /proc/") + pid + "/stat | awk '{ print $17, $39 }'"});
    EXPECT_EQ(stat.out, "0 0\n") << pid << ": " << stat.out << stat.err;
  }
  // The pool fills again behind the claim, with another container.
  waitForPool(1);
  auto again = pooledContainers();
  ASSERT_EQ(again.size(), 2u);  // the claimed one keeps its name
  for (const auto& v : host_->violations()) ADD_FAILURE() << v;
  // Deleted, it goes like any environment; the pool's stays.
  ASSERT_EQ(host_->cli({"delete", "EXMP-113"}).exitCode, 0);
  EXPECT_EQ(pooledContainers().size(), 1u);
  EXPECT_EQ(host_->leaseCount(), 1);
}

TEST_F(LxcPool, ARepoDeployUnpacksTheMergeResultInsideTheClaimedContainer) {
  // The tree plays the attacker: a link out to a host directory, and a file
  // through it. Unpacked inside the container, neither reaches the host.
  const std::string canary = host_->stateDir() + "/canary";
  fs::create_directories(canary);
  ASSERT_EQ(::symlink(canary.c_str(), (host_->stateDir() + "/src/work/out").c_str()), 0);
  git_->git({"add", "out"});
  git_->commit("a link out");
  git_->push("feature/x");
  waitForPool(1);
  auto r = host_->cli(
      {"deploy", "EXMP-7", "--repo", "shop", "--source", "feature/x", "--target", "develop"});
  ASSERT_EQ(r.exitCode, 0) << r.err << host_->logText();
  auto env = host_->env("EXMP-7");
  ASSERT_TRUE(env);
  EXPECT_EQ(env->container().rfind("qaboxpool-", 0), 0u) << env->container();
  EXPECT_EQ(viaRouter("exmp-7", "/").body, "EXMP-7\n");
  EXPECT_EQ(viaRouter("exmp-7", "/page.txt").body, "from the repo\n");
  EXPECT_EQ(viaRouter("exmp-7", "/feature.txt").body, "from the feature\n");
  // The image's own /srv/app does not show through.
  EXPECT_NE(host_->cli({"exec", "EXMP-7", "--", "test", "-e", "/srv/app/index.html"}).exitCode, 0);
  // Writing through the link from inside lands in the container, never here.
  host_->cli({"exec", "EXMP-7", "--", "sh", "-c", "echo owned > /srv/app/out/x"});
  EXPECT_TRUE(fs::is_empty(canary));
  for (const auto& v : host_->violations()) ADD_FAILURE() << v;
}

TEST_F(LxcPool, ADeployShortOfAnIdRangeTakesThePooledContainers) {
  // One environment at most: one id range above the images', which the
  // pool's container holds.
  ASSERT_EQ(host_->stopDaemon(), 0);
  options_.maxEnvironments = 1;
  host_->writeConfig(options_);
  host_->startDaemon();
  waitForPool(1);
  const std::string pooled = pooledContainers().at(0);
  // Limits of its own: it cannot claim, and needs an id range of its own.
  auto r = host_->cli({"deploy", "EXMP-9", "--image", "busybox", "--memory", "96M"});
  ASSERT_EQ(r.exitCode, 0) << r.err << host_->logText();
  auto env = host_->env("EXMP-9");
  ASSERT_TRUE(env);
  EXPECT_EQ(env->state(), v1::Environment::READY);
  EXPECT_EQ(env->container(), "qabox-exmp-9");
  EXPECT_EQ(viaRouter("exmp-9", "/").status, 200);
  EXPECT_TRUE(pooledContainers().empty());
  EXPECT_EQ(host_->leaseCount(), 1);
  EXPECT_NE(host_->logText().find(pooled + " goes: a deploy needs an id range"), std::string::npos)
      << host_->logText();
  // The pool waits for a free range rather than failing the next deploy.
  std::this_thread::sleep_for(600ms);
  EXPECT_TRUE(pooledContainers().empty());
  for (const auto& v : host_->violations()) ADD_FAILURE() << v;
  // Deleted, the range is free again and the pool fills it.
  ASSERT_EQ(host_->cli({"delete", "EXMP-9"}).exitCode, 0);
  waitForPool(1);
}

TEST_F(LxcPool, ARestartKeepsReadyOnesAndANewImageVersionReplacesThem) {
  waitForPool(1);
  const std::string pooled = pooledContainers().at(0);
  host_->killDaemon();
  host_->startDaemon();
  waitForPool(1);
  EXPECT_EQ(pooledContainers(), std::vector<std::string>{pooled});
  for (const auto& v : host_->violations()) ADD_FAILURE() << v;
  // A new version: the old one goes, never claimed, a new one comes.
  ASSERT_EQ(host_->cli({"image", "build", "busybox", "--force"}).exitCode, 0);
  for (int i = 0; i < 200; ++i) {
    auto now = pooledContainers();
    if (now.size() == 1 && now[0] != pooled) break;
    std::this_thread::sleep_for(50ms);
  }
  auto now = pooledContainers();
  ASSERT_EQ(now.size(), 1u);
  EXPECT_NE(now[0], pooled);
  waitForPool(1);
  auto r = host_->cli({"deploy", "EXMP-2", "--image", "busybox"});
  ASSERT_EQ(r.exitCode, 0) << r.err;
  auto env = host_->env("EXMP-2");
  ASSERT_TRUE(env);
  EXPECT_EQ(env->image_version(), 2u);
  EXPECT_EQ(env->container(), now[0]);
  // The old version is no longer held up by the pool.
  waitForPool(1);
  EXPECT_EQ(host_->cli({"image", "rm", "busybox", "--version", "1"}).exitCode, 0);
}

TEST_F(LxcPool, ACrashInAClaimOrAFillLeavesNothingBehind) {
  waitForPool(1);
  const std::string claimed = pooledContainers().at(0);
  ASSERT_EQ(host_->stopDaemon(), 0);
  // Dies with the claim written, before the deploy's files are in.
  options_.daemonEnv = {{"QABOX_FAILPOINT", "deploy.app-files.before"}};
  host_->writeConfig(options_);
  host_->startDaemon();
  auto r = host_->cli({"deploy", "EXMP-9", "--image", "busybox"});
  EXPECT_NE(r.exitCode, 0);
  ASSERT_TRUE(host_->waitDaemon(10s).has_value()) << "the failpoint did not end the agent";
  // Started again: the journal's open create is rolled back, the claimed
  // container with it; the pool fills anew.
  options_.daemonEnv.clear();
  host_->writeConfig(options_);
  host_->startDaemon();
  EXPECT_FALSE(host_->env("EXMP-9"));
  waitForPool(1);
  auto now = pooledContainers();
  ASSERT_EQ(now.size(), 1u);
  EXPECT_NE(now[0], claimed);
  EXPECT_EQ(host_->leaseCount(), 1);
  for (const auto& v : host_->violations()) ADD_FAILURE() << v;

  // Dies with a fill started, its container running, not yet ready.
  ASSERT_EQ(host_->cli({"image", "build", "busybox", "--force"}).exitCode, 0);
  ASSERT_EQ(host_->stopDaemon(), 0);
  // The fill begins at start, so the agent may die before its API answers.
  options_.daemonEnv = {{"QABOX_FAILPOINT", "pool.start.after"}};
  host_->writeConfig(options_);
  host_->launchDaemon();
  ASSERT_TRUE(host_->waitDaemon(20s).has_value()) << "the failpoint did not end the agent";
  options_.daemonEnv.clear();
  host_->writeConfig(options_);
  host_->startDaemon();
  waitForPool(1);
  EXPECT_EQ(pooledContainers().size(), 1u);
  EXPECT_EQ(host_->leaseCount(), 1);
  for (const auto& v : host_->violations()) ADD_FAILURE() << v;
}

// qabox-init as PID 1: a pooled container supervises nothing until a claim
// removes the pool's mark, then starts its services and app in order.
TEST(LxcPoolSupervised, QaboxInitWaitsForTheClaimThenStartsEverything) {
  QABOX_REQUIRE_LXC();
  TestHost host;
  const std::string recipes = copySupervisedRecipes(host.stateDir());
  supervise::SuperviseFile f;
  supervise::ProcessDef svc, app;
  svc.name = "svc";
  svc.stage = supervise::Stage::kService;
  svc.command = "exec httpd -f -p 8081 -h /srv/app";
  svc.ready = "wget -q -O /dev/null http://127.0.0.1:8081/";
  app.name = "app";
  app.command = "exec httpd -f -p 80 -h /srv/app";
  f.processes = {svc, app};
  std::ofstream(recipes + "/supervised/supervise.json") << supervise::toJson(f);
  TestHost::Options o;
  o.extraToml =
      "[pool]\nsize = 0\ninterval = \"200ms\"\nmin_free_memory = \"64M\"\n"
      "min_free_disk = \"64M\"\n[pool.images]\nsupervised = 1\n";
  host.writeConfig(o);
  pointImagesDirAt(host.stateDir(), recipes);
  host.startDaemon();
  ASSERT_EQ(host.cli({"image", "build", "supervised"}).exitCode, 0);
  std::string pooled;
  for (int i = 0; i < 200 && pooled.empty(); ++i) {
    for (const auto& c : host.containers()) {
      if (c.rfind("qaboxpool-", 0) == 0 &&
          contains(readFile(host.lxcPath() + "/" + c + "/overlay/delta/var/log/qabox/init.log"),
                   "pooled: waiting")) {
        pooled = c;
      }
    }
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_FALSE(pooled.empty()) << host.logText();
  // Nothing supervised while pooled.
  const std::string delta = host.lxcPath() + "/" + pooled + "/overlay/delta";
  EXPECT_FALSE(fs::exists(delta + "/var/log/qabox/svc.log"));
  auto r = host.cli({"deploy", "SUP-1", "--image", "supervised"});
  ASSERT_EQ(r.exitCode, 0) << r.err << host.logText();
  auto env = host.env("SUP-1");
  ASSERT_TRUE(env);
  EXPECT_EQ(env->container(), pooled);
  EXPECT_EQ(httpGet(env->ip(), 80, "/").status, 200);
  EXPECT_EQ(httpGet(env->ip(), 8081, "/").status, 200);
  const std::string initLog = readFile(delta + "/var/log/qabox/init.log");
  EXPECT_NE(initLog.find("claimed by a deploy"), std::string::npos) << initLog;
  for (const auto& v : host.violations()) ADD_FAILURE() << v;
}

}  // namespace
}  // namespace qabox::testing
