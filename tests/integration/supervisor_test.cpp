// Issue 14: PID 1 of a Debian environment supervises its services and the
// app: start in order of readiness, restart on crash with backoff, each
// process's own log, stop in reverse order within a timeout. Real
// containers of a test image (busybox, qabox-init as /sbin/init), the real
// daemon and CLI.
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "harness.h"
#include "init/contract.h"
#include "supervised_recipe.h"

namespace qabox::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using supervise::ProcState;
using supervise::Stage;

// Two busybox httpd "services", the second ready only once a marker its own
// command makes a second after it starts; the routed app; and a worker that
// ignores SIGTERM.
std::string superviseJson() {
  supervise::SuperviseFile f;
  supervise::ProcessDef svc1, svc2, app, stubborn;
  svc1.name = "svc1";
  svc1.stage = svc2.stage = Stage::kService;
  svc1.command = "echo svc1 starting; exec httpd -f -p 8081 -h /srv/www1";
  svc1.ready = "wget -q -O /dev/null http://127.0.0.1:8081/";
  svc1.setup = "echo svc1 setup ran";
  svc2.name = "svc2";
  svc2.command =
      "rm -f /run/svc2.go; echo svc2 starting; (sleep 1; touch /run/svc2.go) & "
      "exec httpd -f -p 8082 -h /srv/www2";
  svc2.ready = "test -f /run/svc2.go && wget -q -O /dev/null http://127.0.0.1:8082/";
  app.name = "app";  // stage app, as stubborn
  app.command = "echo app starting; exec httpd -f -p 80 -h /srv/app";
  stubborn.name = "stubborn";
  stubborn.command = "trap '' TERM; echo stubborn starting; while :; do sleep 1; done";
  stubborn.stopTimeoutMs = 1500;
  f.processes = {svc1, svc2, app, stubborn};
  return supervise::toJson(f);
}

class LxcSupervisor : public ::testing::Test {
 protected:
  void SetUp() override {
    QABOX_REQUIRE_LXC();
    host_ = std::make_unique<TestHost>();
    // The images the test builds: busybox's recipe and the supervised one,
    // with the qabox-init just built and the test's supervise.json in it.
    const std::string recipes = copySupervisedRecipes(host_->stateDir());
    std::ofstream(recipes + "/supervised/supervise.json") << superviseJson();
    pointImagesDirAt(host_->stateDir(), recipes);
    host_->startDaemon();
    auto build = host_->cli({"image", "build", "supervised"});
    ASSERT_EQ(build.exitCode, 0) << build.err << build.out;
  }

  CliResult sh(const std::string& script) {
    return host_->cli({"exec", ticket_, "--", "sh", "-c", script});
  }

  std::optional<supervise::InitStatus> status() {
    auto r = sh("cat /run/qabox/status.json");
    if (r.exitCode != 0) return std::nullopt;
    auto s = supervise::parseStatus(r.out);
    if (!s) return std::nullopt;
    return *s;
  }
  std::optional<supervise::ProcessStatus> proc(const std::string& name) {
    if (auto s = status()) {
      for (const auto& p : s->processes) {
        if (p.name == name) return p;
      }
    }
    return std::nullopt;
  }
  bool waitAllReady(std::chrono::seconds limit) {
    auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
      auto s = status();
      bool all = s && !s->processes.empty();
      for (const auto& p : s ? s->processes : std::vector<supervise::ProcessStatus>{}) {
        all = all && p.state == ProcState::kReady;
      }
      if (all) return true;
      std::this_thread::sleep_for(200ms);
    }
    return false;
  }
  std::string hostFile(const std::string& inContainer) {
    return readFile(host_->lxcPath() + "/" + env_.container() + "/overlay/delta" + inContainer);
  }
  void deploy() {
    auto d = host_->cli({"deploy", ticket_, "--image", "supervised"});
    ASSERT_EQ(d.exitCode, 0) << d.err << d.out;
    auto e = host_->env(ticket_);
    ASSERT_TRUE(e);
    env_ = *e;
  }

  std::unique_ptr<TestHost> host_;
  std::string ticket_ = "SUP-1";
  v1::Environment env_;
};

// "a" appears in `text` before "b".
::testing::AssertionResult before(const std::string& text, const std::string& a,
                                  const std::string& b) {
  size_t ia = text.find(a), ib = text.find(b);
  if (ia != std::string::npos && ib != std::string::npos && ia < ib) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "\"" << a << "\" is not before \"" << b << "\" in:\n"
                                       << text;
}

TEST_F(LxcSupervisor, StartsInOrderOfReadinessRestartsKeepsLogs) {
  auto t0 = std::chrono::steady_clock::now();
  deploy();
  std::printf("deploy to READY: %lld ms\n",
              static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                         std::chrono::steady_clock::now() - t0)
                                         .count()));
  ASSERT_TRUE(waitAllReady(30s)) << sh("/sbin/init status").out;
  std::string initLog = sh("cat /var/log/qabox/init.log").out;
  EXPECT_TRUE(before(initLog, "svc1: setup done; ready", "started svc2"));
  EXPECT_TRUE(before(initLog, "svc2 is ready", "started app"));
  EXPECT_TRUE(before(initLog, "app is ready", "started stubborn"));
  // svc2 was started, and ready only a second later, when its marker came.
  auto svc2 = proc("svc2");
  ASSERT_TRUE(svc2);
  EXPECT_EQ(httpGet(env_.ip(), 8081, "/").body, "service one\n");
  EXPECT_EQ(httpGet(env_.ip(), 8082, "/").body, "service two\n");
  EXPECT_EQ(sh("cat /var/log/qabox/svc1.log").out, "svc1 starting\nsvc1 setup ran\n");
  EXPECT_EQ(sh("cat /var/log/qabox/app.log").out, "app starting\n");

  // kill -9 from exec: restarted after its backoff, through ready and setup again.
  auto svc1 = proc("svc1");
  ASSERT_TRUE(svc1);
  ASSERT_EQ(sh("kill -9 " + std::to_string(svc1->pid)).exitCode, 0);
  bool restarted = false;
  for (int i = 0; i < 50 && !restarted; ++i) {
    auto p = proc("svc1");
    restarted = p && p->restarts == 1 && p->state == ProcState::kReady;
    if (!restarted) std::this_thread::sleep_for(200ms);
  }
  ASSERT_TRUE(restarted) << sh("/sbin/init status").out;
  EXPECT_EQ(proc("svc1")->lastExit, 137);
  EXPECT_NE(proc("svc1")->pid, svc1->pid);
  EXPECT_EQ(httpGet(env_.ip(), 8081, "/").body, "service one\n");
  EXPECT_EQ(sh("cat /var/log/qabox/svc1.log").out,
            "svc1 starting\nsvc1 setup ran\nsvc1 starting\nsvc1 setup ran\n");
  auto table = sh("/sbin/init status");
  EXPECT_EQ(table.exitCode, 0);
  EXPECT_TRUE(contains(table.out, "svc1")) << table.out;
  EXPECT_TRUE(contains(table.out, "ready")) << table.out;
  // The app's log is the one `qabox logs` shows.
  // What PID 1 costs (a figure for the report, not a limit).
  auto rss = sh("grep VmRSS /proc/1/status");
  RecordProperty("init_rss", rss.out);
  std::printf("qabox-init in the container: %s", rss.out.c_str());
  auto logs = host_->cli({"logs", ticket_});
  EXPECT_TRUE(contains(logs.out, "app starting")) << logs.out << logs.err;
}

TEST_F(LxcSupervisor, SleepAndWakeStartEverythingAgain) {
  deploy();
  ASSERT_TRUE(waitAllReady(30s));
  auto t0 = std::chrono::steady_clock::now();
  auto s = host_->cli({"sleep", ticket_});
  ASSERT_EQ(s.exitCode, 0) << s.err;
  auto tookSleep = std::chrono::steady_clock::now() - t0;
  // The agent's stop is a clean one: the halt signal, and qabox-init stops
  // everything in reverse order (the stubborn worker after its 1.5 s).
  EXPECT_GE(tookSleep, 1400ms);
  EXPECT_LT(tookSleep, 8s);
  std::string initLog = hostFile("/var/log/qabox/init.log");
  EXPECT_TRUE(before(initLog, "stopping stubborn", "stopping svc1"));
  EXPECT_TRUE(before(initLog, "stopping svc1", "every process stopped; exiting"));
  ASSERT_EQ(host_->cli({"wake", ticket_}).exitCode, 0);
  ASSERT_TRUE(waitAllReady(30s)) << sh("/sbin/init status").out;
  EXPECT_EQ(httpGet(env_.ip(), 8082, "/").body, "service two\n");
  // The logs go on from before the sleep.
  EXPECT_EQ(sh("grep -c 'svc2 starting' /var/log/qabox/svc2.log").out, "2\n");
}

TEST_F(LxcSupervisor, HaltSignalStopsEverythingInReverseOrderWithinTheTimeout) {
  deploy();
  ASSERT_TRUE(waitAllReady(30s));
  // What `lxc-stop -t` (liblxc's shutdown) does: lxc.signal.halt (SIGTERM)
  // to PID 1, then waits; the stubborn worker takes its 1.5 s stop timeout.
  auto t0 = std::chrono::steady_clock::now();
  auto r = runOrDie({"lxc-stop", "-P", host_->lxcPath(), "-n", env_.container(), "-t", "20"});
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(r.exitCode, 0) << r.err;
  EXPECT_GE(took, 1400ms);
  EXPECT_LT(took, 8s) << "qabox-init did not exit on its own";
  std::string initLog = hostFile("/var/log/qabox/init.log");
  EXPECT_TRUE(before(initLog, "stopping stubborn", "stubborn: still running 1500ms after SIGTERM"));
  EXPECT_TRUE(before(initLog, "stubborn: still running", "stopping app"));
  EXPECT_TRUE(before(initLog, "stopping app", "stopping svc2"));
  EXPECT_TRUE(before(initLog, "stopping svc2", "stopping svc1"));
  EXPECT_TRUE(before(initLog, "stopping svc1", "every process stopped; exiting"));
  auto st = supervise::parseStatus(hostFile("/run/qabox/status.json"));
  ASSERT_TRUE(st) << st.status().message();
  for (const auto& p : st->processes) EXPECT_EQ(p.state, ProcState::kStopped) << p.name;
  const bool v2 = fs::exists("/sys/fs/cgroup/cgroup.controllers");
  RecordProperty("cgroup", v2 ? "v2" : "v1 hybrid");
}

}  // namespace
}  // namespace qabox::testing
