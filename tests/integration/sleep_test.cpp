// Issue: idle environments sleep, and wake on the first request without the
// user noticing. Real containers, the real router, the real daemon.
#include <atomic>
#include <filesystem>
#include <thread>

#include "harness.h"

namespace qabox::testing {
namespace {

namespace fs = std::filesystem;

class LxcSleep : public ::testing::Test {
 protected:
  void start(const std::string& reaperToml) {
    QABOX_REQUIRE_LXC();
    TestHost::Options o;
    o.extraToml = reaperToml;
    host_ = std::make_unique<TestHost>(o);
    host_->startDaemon();
    ASSERT_EQ(host_->cli({"image", "build", "busybox"}).exitCode, 0);
  }

  HttpReply get(const std::string& slug, const std::string& path = "/") {
    return httpGet("127.0.0.1", host_->routerPort(), path, slug + "." + host_->domain(),
                   std::chrono::seconds(20));
  }

  bool waitForState(const std::string& ticket, v1::Environment::State state, int seconds) {
    for (int i = 0; i < seconds * 10; ++i) {
      auto e = host_->env(ticket);
      if (e && e->state() == state) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }

  std::unique_ptr<TestHost> host_;
};

constexpr const char* kManualSleep = "[reaper]\ninterval = \"0\"\nwake_timeout = \"4s\"\n";

TEST_F(LxcSleep, IdleEnvironmentSleepsAndAPlainGetWakesIt) {
  start("[reaper]\ninterval = \"0\"\nsleep_after = \"2s\"\n");
  ASSERT_EQ(host_->cli({"deploy", "NAP-1"}).exitCode, 0);
  auto awake = host_->env("NAP-1");
  ASSERT_TRUE(waitForState("NAP-1", v1::Environment::SLEEPING, 20));
  // Stopped: its address answers nothing.
  EXPECT_NE(httpGet(awake->ip(), 80, "/", "", std::chrono::milliseconds(500)).status, 200);
  auto status = host_->cli({"status", "-o", "json"});
  EXPECT_NE(status.out.find("\"sleeping\":1"), std::string::npos) << status.out;

  auto r = get("nap-1");
  EXPECT_EQ(r.status, 200) << r.error << r.body;
  EXPECT_NE(r.body.find("qabox environment"), std::string::npos);
  EXPECT_EQ(host_->env("NAP-1")->state(), v1::Environment::READY);
  EXPECT_EQ(host_->env("NAP-1")->ip(), awake->ip());
}

TEST_F(LxcSleep, PinnedEnvironmentNeverSleeps) {
  start("[reaper]\ninterval = \"0\"\nsleep_after = \"1s\"\n");
  ASSERT_EQ(host_->cli({"deploy", "PIN-1"}).exitCode, 0);
  ASSERT_EQ(host_->cli({"pin", "PIN-1"}).exitCode, 0);
  std::this_thread::sleep_for(std::chrono::seconds(4));
  EXPECT_EQ(host_->env("PIN-1")->state(), v1::Environment::READY);
  auto r = host_->cli({"sleep", "PIN-1"});
  EXPECT_NE(r.exitCode, 0);
  EXPECT_NE(r.err.find("pinned"), std::string::npos) << r.err;
}

TEST_F(LxcSleep, TenConcurrentFirstRequestsAreAllAnswered) {
  start(kManualSleep);
  ASSERT_EQ(host_->cli({"deploy", "CROWD-1"}).exitCode, 0);
  ASSERT_EQ(host_->cli({"sleep", "CROWD-1"}).exitCode, 0);
  EXPECT_EQ(host_->env("CROWD-1")->state(), v1::Environment::SLEEPING);
  std::atomic<int> ok{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < 10; ++i) {
    clients.emplace_back([&] {
      if (get("crowd-1").status == 200) ++ok;
    });
  }
  for (auto& c : clients) c.join();
  EXPECT_EQ(ok.load(), 10);
  EXPECT_EQ(host_->env("CROWD-1")->state(), v1::Environment::READY);
}

TEST_F(LxcSleep, WakeFailureGivesAClearPage) {
  start(kManualSleep);
  ASSERT_EQ(host_->cli({"deploy", "BAD-1"}).exitCode, 0);
  auto env = host_->env("BAD-1");
  ASSERT_EQ(host_->cli({"sleep", "BAD-1"}).exitCode, 0);
  // The app can no longer start: waking times out on its health check.
  fs::remove(host_->lxcPath() + "/" + env->container() + "/overlay/delta/etc/qabox/app.run");
  auto r = get("bad-1");
  EXPECT_TRUE(r.status == 502 || r.status == 504) << r.status;
  EXPECT_NE(r.body.find("wak"), std::string::npos) << r.body;
  auto after = host_->env("BAD-1");
  EXPECT_EQ(after->state(), v1::Environment::FAILED);
  EXPECT_NE(after->message().find("waking failed"), std::string::npos) << after->message();
}

TEST_F(LxcSleep, SleepingSurvivesAnAgentRestartAndExecWakes) {
  start(kManualSleep);
  ASSERT_EQ(host_->cli({"deploy", "REST-1"}).exitCode, 0);
  ASSERT_EQ(host_->cli({"deploy", "REST-2"}).exitCode, 0);
  ASSERT_EQ(host_->cli({"sleep", "REST-1"}).exitCode, 0);
  ASSERT_EQ(host_->cli({"sleep", "REST-2"}).exitCode, 0);
  EXPECT_EQ(host_->stopDaemon(), 0);
  host_->startDaemon();
  EXPECT_EQ(host_->env("REST-1")->state(), v1::Environment::SLEEPING);
  EXPECT_EQ(get("rest-1").status, 200);
  auto r = host_->cli({"exec", "REST-2", "--", "echo", "up"});
  EXPECT_EQ(r.exitCode, 0) << r.err;
  EXPECT_EQ(r.out, "up\n");
  EXPECT_EQ(host_->env("REST-2")->state(), v1::Environment::READY);
  EXPECT_EQ(host_->cli({"wake", "REST-2"}).exitCode, 0);
}

// A host restart stops every container while the agent is down. The agent
// comes back with them asleep, so the first request wakes the container and
// waits for its app instead of meeting a 502 while it starts.
TEST_F(LxcSleep, AContainerAHostRestartStoppedSleepsAndItsFirstRequestWaitsForIt) {
  start(kManualSleep);
  ASSERT_EQ(host_->cli({"deploy", "BOOT-1"}).exitCode, 0);
  EXPECT_EQ(host_->stopDaemon(), 0);
  auto stopped = runOrDie({"lxc-stop", "-P", host_->lxcPath(), "-n", "qabox-boot-1", "-k"});
  ASSERT_EQ(stopped.exitCode, 0) << stopped.err;
  host_->startDaemon();
  EXPECT_EQ(host_->env("BOOT-1")->state(), v1::Environment::SLEEPING);
  auto r = get("boot-1");
  EXPECT_EQ(r.status, 200) << r.error << r.body;
  EXPECT_EQ(host_->env("BOOT-1")->state(), v1::Environment::READY);
}

}  // namespace
}  // namespace qabox::testing
