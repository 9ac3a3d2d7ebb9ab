// Issue: environments on real LXC containers, driven over gRPC through the
// CLI, with state in SQLite.
#include <signal.h>
#include <sys/wait.h>

#include <filesystem>
#include <thread>

#include "harness.h"

namespace qabox::testing {
namespace {

namespace fs = std::filesystem;

class LxcLifecycle : public ::testing::Test {
 protected:
  void SetUp() override {
    QABOX_REQUIRE_LXC();
    host_ = std::make_unique<TestHost>();
    host_->startDaemon();
    auto r = host_->cli({"image", "build", "busybox"});
    ASSERT_EQ(r.exitCode, 0) << r.err;
  }

  void expectNothingLeft() {
    EXPECT_TRUE(host_->containers().empty());
    EXPECT_TRUE(host_->overlayDirs().empty());
    EXPECT_TRUE(host_->bridgePorts().empty());
    EXPECT_EQ(host_->leaseCount(), 0);
  }

  std::unique_ptr<TestHost> host_;
};

TEST_F(LxcLifecycle, ThreeEnvironmentsRunReachableAndLeaveNothingBehind) {
  std::vector<std::string> tickets = {"EXMP-1", "EXMP-2", "Shop-77"};
  std::set<std::string> ips;
  for (const auto& t : tickets) {
    auto r = host_->cli({"deploy", t, "--image", "busybox", "-o", "json"});
    ASSERT_EQ(r.exitCode, 0) << r.err;
    auto env = host_->env(t);
    ASSERT_TRUE(env);
    EXPECT_EQ(env->state(), v1::Environment::READY);
    EXPECT_EQ(env->container(), "qabox-" + std::string(t == "Shop-77"  ? "shop-77"
                                                       : t == "EXMP-1" ? "exmp-1"
                                                                       : "exmp-2"));
    EXPECT_FALSE(env->ip().empty());
    ips.insert(env->ip());
    auto page = httpGet(env->ip(), 80, "/");
    EXPECT_EQ(page.status, 200) << page.error;
    EXPECT_NE(page.body.find("qabox environment"), std::string::npos);
  }
  EXPECT_EQ(ips.size(), 3u);
  EXPECT_EQ(host_->containers().size(), 3u);
  EXPECT_EQ(host_->leaseCount(), 3);
  EXPECT_EQ(host_->bridgePorts().size(), 3u);

  auto list = host_->cli({"list", "-o", "json"});
  ASSERT_EQ(list.exitCode, 0);
  EXPECT_NE(list.out.find("\"environments\""), std::string::npos);
  for (const auto& t : tickets) EXPECT_NE(list.out.find(t), std::string::npos);

  for (const auto& t : tickets) {
    auto r = host_->cli({"delete", t});
    EXPECT_EQ(r.exitCode, 0) << r.err;
  }
  expectNothingLeft();
  auto events = host_->cli({"events", "-o", "json"});
  EXPECT_NE(events.out.find("delete"), std::string::npos);
}

// The host remembers which MAC answered for an address; a new container
// that gets the address a deleted one had must be reachable at once, not
// when the host's neighbour entry goes stale (up to 45 s later): its
// health check (5 s here) would fail first.
TEST(LxcAddresses, AnAddressHandedOutAgainReachesTheNewContainerAtOnce) {
  QABOX_REQUIRE_LXC();
  TestHost::Options o;
  o.healthTimeout = "5s";
  TestHost host(o);
  host.startWithBusybox();
  // Another container keeps the bridge's carrier up (a bridge left without
  // ports drops its neighbour entries, which would hide the problem).
  ASSERT_EQ(host.cli({"deploy", "KEEP-1"}).exitCode, 0);
  ASSERT_EQ(host.cli({"deploy", "OLD-1"}).exitCode, 0);
  auto old = host.env("OLD-1");
  ASSERT_TRUE(old);
  // The host learns OLD-1's MAC, and keeps confirming it until the delete.
  for (int i = 0; i < 20; ++i) ASSERT_EQ(httpGet(old->ip(), 80, "/").status, 200);
  ASSERT_EQ(host.cli({"delete", "OLD-1"}).exitCode, 0);
  auto r = host.cli({"deploy", "NEW-1"});
  ASSERT_EQ(r.exitCode, 0) << r.err;
  auto fresh = host.env("NEW-1");
  ASSERT_TRUE(fresh);
  EXPECT_EQ(fresh->ip(), old->ip());
  EXPECT_EQ(httpGet(fresh->ip(), 80, "/").status, 200);
}

TEST_F(LxcLifecycle, SameSpecDeployReturnsTheEnvironmentUnchanged) {
  ASSERT_EQ(host_->cli({"deploy", "EXMP-5"}).exitCode, 0);
  auto first = host_->env("EXMP-5");
  ASSERT_EQ(host_->cli({"deploy", "EXMP-5"}).exitCode, 0);
  auto second = host_->env("EXMP-5");
  ASSERT_TRUE(first && second);
  EXPECT_EQ(first->ip(), second->ip());
  EXPECT_EQ(first->container(), second->container());
  EXPECT_EQ(first->updated_at().seconds(), second->updated_at().seconds());
  EXPECT_EQ(host_->containers().size(), 1u);
}

TEST_F(LxcLifecycle, RedeployTakesTheSameSpecAndRefusesWhatItCanNotRepeat) {
  ASSERT_EQ(host_->cli({"deploy", "RE-7", "--env", "COLOUR=blue"}).exitCode, 0);
  auto r = host_->cli({"redeploy", "RE-7", "--force", "-o", "json"});
  ASSERT_EQ(r.exitCode, 0) << r.err;
  auto env = host_->env("RE-7");
  ASSERT_TRUE(env);
  EXPECT_EQ(env->container(), "qabox-re-7_1");
  EXPECT_EQ(env->env().at("COLOUR"), "blue");
  EXPECT_FALSE(env->phases().empty());
  EXPECT_EQ(host_->containers().size(), 1u);  // the old container is gone

  ASSERT_EQ(host_->cli({"deploy", "SEC-7", "--secret", "API_KEY=hunter2"}).exitCode, 0);
  auto refused = host_->cli({"redeploy", "SEC-7"});
  EXPECT_EQ(refused.exitCode, 4) << refused.err;
  EXPECT_NE(refused.err.find("API_KEY"), std::string::npos) << refused.err;
  EXPECT_EQ(refused.err.find("hunter2"), std::string::npos) << refused.err;
  EXPECT_EQ(host_->cli({"redeploy", "NONE-7"}).exitCode, 3);
}

TEST_F(LxcLifecycle, BadInputIsRefusedAndChangesNothing) {
  auto r = host_->cli({"deploy", "../x"});
  EXPECT_NE(r.exitCode, 0);
  EXPECT_NE(r.err.find("only letters, digits and '-' are allowed"), std::string::npos) << r.err;
  r = host_->cli({"deploy", "EXMP-9", "--image", "no-such-image"});
  EXPECT_NE(r.exitCode, 0);
  EXPECT_NE(r.err.find("no-such-image"), std::string::npos) << r.err;
  r = host_->cli({"deploy", "EXMP-9", "--image", "Bad/Name"});
  EXPECT_NE(r.exitCode, 0);
  r = host_->cli({"get", "EXMP-404"});
  EXPECT_EQ(r.exitCode, 3) << r.err;
  EXPECT_TRUE(host_->containers().empty());
  EXPECT_EQ(host_->leaseCount(), 0);
}

TEST_F(LxcLifecycle, MaximumNumberOfEnvironmentsIsEnforced) {
  host_->stopDaemon();
  TestHost::Options o;
  o.maxEnvironments = 2;
  host_->writeConfig(o);
  host_->startDaemon();
  ASSERT_EQ(host_->cli({"deploy", "MAX-1"}).exitCode, 0);
  ASSERT_EQ(host_->cli({"deploy", "MAX-2"}).exitCode, 0);
  auto r = host_->cli({"deploy", "MAX-3"});
  EXPECT_NE(r.exitCode, 0);
  EXPECT_NE(r.err.find("max_environments"), std::string::npos) << r.err;
  EXPECT_EQ(host_->containers().size(), 2u);
  EXPECT_EQ(host_->leaseCount(), 2);
}

TEST_F(LxcLifecycle, RebuildingTheImageKeepsRunningEnvironmentsOnTheirVersion) {
  ASSERT_EQ(host_->cli({"deploy", "OLD-1"}).exitCode, 0);
  auto before = host_->env("OLD-1");
  ASSERT_TRUE(before);
  EXPECT_EQ(before->image_version(), 1u);
  ASSERT_EQ(host_->cli({"image", "build", "busybox", "--force"}).exitCode, 0);
  EXPECT_EQ(httpGet(before->ip(), 80, "/").status, 200);
  ASSERT_EQ(host_->cli({"deploy", "NEW-1"}).exitCode, 0);
  EXPECT_EQ(host_->env("NEW-1")->image_version(), 2u);
  EXPECT_EQ(httpGet(before->ip(), 80, "/").status, 200);
  // The version in use can not be deleted.
  EXPECT_NE(host_->cli({"image", "rm", "busybox", "--version", "1"}).exitCode, 0);
  ASSERT_EQ(host_->cli({"delete", "OLD-1"}).exitCode, 0);
  EXPECT_EQ(host_->cli({"image", "rm", "busybox", "--version", "1"}).exitCode, 0);
  EXPECT_FALSE(fs::exists(host_->stateDir() + "/images/busybox-v1"));
  EXPECT_EQ(httpGet(host_->env("NEW-1")->ip(), 80, "/").status, 200);
}

TEST_F(LxcLifecycle, ContainersSurviveAnAgentRestartAndSigtermExitsZero) {
  ASSERT_EQ(host_->cli({"deploy", "KEEP-1"}).exitCode, 0);
  auto env = host_->env("KEEP-1");
  ASSERT_TRUE(env);
  EXPECT_EQ(host_->stopDaemon(), 0);
  EXPECT_EQ(httpGet(env->ip(), 80, "/").status, 200);
  host_->startDaemon();
  auto after = host_->env("KEEP-1");
  ASSERT_TRUE(after);
  EXPECT_EQ(after->state(), v1::Environment::READY);
  EXPECT_EQ(after->ip(), env->ip());
}

TEST_F(LxcLifecycle, KillNineAtAnyMomentOfADeployLeaksNothing) {
  // Kill the agent at a spread of moments inside deploys, restart, and check
  // the invariant: every container has a row, every lease a container, and
  // nothing half-made is left.
  for (int delayMs : {0, 5, 15, 30, 60, 120}) {
    std::string ticket = "KILL-" + std::to_string(delayMs);
    int pid = host_->cliAsync({"deploy", ticket});
    std::this_thread::sleep_for(std::chrono::milliseconds(delayMs));
    host_->killDaemon();
    int status = 0;
    waitpid(pid, &status, 0);
    host_->startDaemon();
    auto list = host_->cli({"list", "-o", "json"});
    ASSERT_EQ(list.exitCode, 0);
    auto env = host_->env(ticket);
    auto containers = host_->containers();
    if (env) {
      // It finished before the kill: whole and READY.
      EXPECT_EQ(env->state(), v1::Environment::READY) << ticket;
      EXPECT_EQ(httpGet(env->ip(), 80, "/").status, 200);
      EXPECT_EQ(host_->cli({"delete", ticket}).exitCode, 0);
    }
    EXPECT_TRUE(host_->containers().empty()) << ticket << ": " << containers.size();
    EXPECT_EQ(host_->leaseCount(), 0) << ticket;
    EXPECT_TRUE(host_->overlayDirs().empty()) << ticket;
  }
  EXPECT_TRUE(host_->bridgePorts().empty());
}

// Issue 12, item 9: recovery returned on the first container it could not
// destroy and the daemon exited, so one stuck container kept every
// environment of the host from routing. Here the container's directory is
// made immutable (chattr +i) so that a real destroy fails, and the agent is
// killed in the middle of its delete.
TEST_F(LxcLifecycle, ContainerRecoveryCannotDestroyIsBrokenAndTheAgentStartsAnyway) {
  ASSERT_EQ(host_->cli({"deploy", "BRK-1"}).exitCode, 0);
  ASSERT_EQ(host_->cli({"deploy", "OK-1"}).exitCode, 0);
  auto brk = host_->env("BRK-1");
  ASSERT_TRUE(brk);
  host_->killDaemon();
  // What a delete writes before it touches the host, as the kill left it.
  std::string db = host_->stateDir() + "/qabox.db";
  auto sql = runOrDie(
      {"sqlite3", db,
       "INSERT INTO operations (slug, kind, container, ip, started_at) VALUES ('brk-1', "
       "'delete', 'qabox-brk-1', '" +
           brk->ip() + "', 1); UPDATE environments SET state = 'DELETING' WHERE slug = 'brk-1';"});
  ASSERT_EQ(sql.exitCode, 0) << sql.err;
  std::string dir = host_->lxcPath() + "/qabox-brk-1";
  struct Unfreeze {
    std::string dir;
    ~Unfreeze() { (void)runOrDie({"chattr", "-i", dir}); }
  } unfreeze{dir};
  auto frozen = runOrDie({"chattr", "+i", dir});
  ASSERT_EQ(frozen.exitCode, 0) << frozen.err;

  host_->startDaemon();
  ASSERT_TRUE(host_->daemonRunning());
  auto broken = host_->env("BRK-1");
  ASSERT_TRUE(broken);
  EXPECT_EQ(broken->state(), v1::Environment::BROKEN);
  EXPECT_NE(broken->message().find("could not destroy container qabox-brk-1"), std::string::npos)
      << broken->message();
  auto ok = host_->env("OK-1");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->state(), v1::Environment::READY);
  auto routed = httpGet("127.0.0.1", host_->routerPort(), "/", "ok-1." + host_->domain());
  EXPECT_EQ(routed.status, 200) << routed.error;
  // QA sees a 502 page that says it is broken and why.
  auto page = httpGet("127.0.0.1", host_->routerPort(), "/", "brk-1." + host_->domain());
  EXPECT_EQ(page.status, 502);
  EXPECT_NE(page.body.find("broken"), std::string::npos) << page.body;
  EXPECT_NE(page.body.find("could not destroy"), std::string::npos) << page.body;
  auto listed = host_->cli({"list"});
  EXPECT_NE(listed.out.find("BROKEN"), std::string::npos) << listed.out;
  auto events = host_->cli({"events", "BRK-1"});
  EXPECT_NE(events.out.find("recover"), std::string::npos) << events.out;
  // The address stays taken while the container may still hold it.
  EXPECT_EQ(host_->leaseCount(), 2);

  // A delete retries the destroy; it stays BROKEN while that fails.
  EXPECT_NE(host_->cli({"delete", "BRK-1"}).exitCode, 0);
  EXPECT_EQ(host_->env("BRK-1")->state(), v1::Environment::BROKEN);
  ASSERT_EQ(runOrDie({"chattr", "-i", dir}).exitCode, 0);
  auto del = host_->cli({"delete", "BRK-1"});
  EXPECT_EQ(del.exitCode, 0) << del.err;
  EXPECT_FALSE(host_->env("BRK-1"));
  EXPECT_EQ(host_->containers(), std::vector<std::string>{"qabox-ok-1"});
  EXPECT_EQ(host_->leaseCount(), 1);
}

// Issue 12, item 6: the events table only ever grew. [events] max_rows is
// applied at start (and every minute after).
TEST_F(LxcLifecycle, EventsArePrunedToMaxRowsKeepingTheNewest) {
  ASSERT_EQ(host_->cli({"deploy", "EV-1"}).exitCode, 0);
  for (int i = 0; i < 75; ++i) {
    ASSERT_EQ(host_->cli({"pin", "EV-1"}).exitCode, 0);
    ASSERT_EQ(host_->cli({"unpin", "EV-1"}).exitCode, 0);
  }
  std::string db = host_->stateDir() + "/qabox.db";
  auto count = [&] {
    auto r = runOrDie({"sqlite3", db, "SELECT count(*) || ' ' || max(id) FROM events"});
    EXPECT_EQ(r.exitCode, 0) << r.err;
    return r.out;
  };
  std::string before = count();
  int rows = std::stoi(before);
  std::string newest = before.substr(before.find(' ') + 1);
  ASSERT_GE(rows, 150) << before;

  ASSERT_EQ(host_->stopDaemon(), 0);
  TestHost::Options o;
  o.extraToml = "[events]\nmax_rows = 100\n";
  host_->writeConfig(o);
  host_->startDaemon();
  std::string after = count();
  EXPECT_EQ(std::stoi(after), 100) << after;
  EXPECT_EQ(after.substr(after.find(' ') + 1), newest) << "the newest rows stay";
  auto shown = host_->cli({"events", "EV-1", "--limit", "1"});
  EXPECT_NE(shown.out.find("unpin"), std::string::npos) << shown.out;
}

TEST_F(LxcLifecycle, AgentsSideBySideNeverTouchEachOthersContainers) {
  ASSERT_EQ(host_->cli({"deploy", "MINE-1"}).exitCode, 0);
  TestHost other;
  other.startDaemon();
  ASSERT_EQ(other.cli({"image", "build", "busybox"}).exitCode, 0);
  ASSERT_EQ(other.cli({"deploy", "MINE-1"}).exitCode, 0);
  ASSERT_EQ(other.cli({"delete", "MINE-1"}).exitCode, 0);
  other.stopDaemon();
  other.startDaemon();  // its recovery must not see ours
  auto env = host_->env("MINE-1");
  ASSERT_TRUE(env);
  EXPECT_EQ(env->state(), v1::Environment::READY);
  EXPECT_EQ(httpGet(env->ip(), 80, "/").status, 200);
  EXPECT_EQ(host_->containers().size(), 1u);
}

}  // namespace
}  // namespace qabox::testing
