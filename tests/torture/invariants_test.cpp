// The invariant checker on a real host: clean after a deploy and a delete;
// then each kind of leftover made by hand, and `qaboxd --check` (offline)
// names it; started again, the agent's recovery takes what it owns back and
// `qabox check` (the CheckInvariants RPC) agrees with `qaboxd --check`
// asking it. A container's layer full of links and FIFOs changes nothing.
// A start that fails leaves no lxc.monitor / lxc.payload cgroup behind.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <thread>

#include "harness.h"

namespace qabox::testing {
namespace {

namespace fs = std::filesystem;

bool named(const std::vector<std::string>& lines, const std::string& prefix) {
  return std::any_of(lines.begin(), lines.end(),
                     [&](const std::string& l) { return l.rfind(prefix, 0) == 0; });
}

std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

// The hierarchies a cgroup directory of liblxc's goes in: the root on
// cgroup2, each real v1 controller directory on a hybrid host.
std::vector<std::string> hierarchies() {
  if (fs::exists("/sys/fs/cgroup/cgroup.controllers")) return {"/sys/fs/cgroup"};
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator("/sys/fs/cgroup")) {
    if (e.is_directory() && !e.is_symlink()) out.push_back(e.path());
  }
  return out;
}

// Every lxc.monitor.* / lxc.payload.* directory of `container` on the host.
std::vector<std::string> cgroupsOf(const std::string& container) {
  std::vector<std::string> out;
  for (const auto& h : hierarchies()) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(h, ec)) {
      const std::string n = e.path().filename();
      for (const std::string p : {"lxc.monitor.", "lxc.payload."}) {
        const std::string rest = n.rfind(p, 0) == 0 ? n.substr(p.size()) : "";
        if (rest == container || rest.rfind(container + "-", 0) == 0) out.push_back(e.path());
      }
    }
  }
  return out;
}

// What a test made outside the agent's reach, undone also when it fails.
struct Leftovers {
  std::vector<std::string> mounts, links, cgroups;
  ~Leftovers() {
    for (const auto& m : mounts) runOrDie({"umount", "-l", m});
    for (const auto& l : links) runOrDie({"ip", "link", "del", l});
    for (const auto& c : cgroups) ::rmdir(c.c_str());
  }
};

std::string sql(TestHost& host, const std::string& statement) {
  auto r = runOrDie({"sqlite3", host.stateDir() + "/qabox.db", statement});
  EXPECT_EQ(r.exitCode, 0) << statement << ": " << r.err;
  return r.out;
}

class LxcInvariants : public ::testing::Test {
 protected:
  void SetUp() override {
    QABOX_REQUIRE_LXC();
    host_ = std::make_unique<TestHost>();
    host_->startWithBusybox();
    // Tickets of this process alone: cgroup directories are the host's.
    tag_ = std::to_string(::getpid());
  }
  std::string ticket(const std::string& n) const { return "INV" + tag_ + "-" + n; }
  std::string container(const std::string& n) const { return "qabox-inv" + tag_ + "-" + n; }

  std::unique_ptr<TestHost> host_;
  std::string tag_;
};

TEST_F(LxcInvariants, EachLeftoverIsNamedAndTheAgentAgrees) {
  ASSERT_EQ(host_->cli({"deploy", ticket("1"), "--image", "busybox"}).exitCode, 0);
  ASSERT_EQ(host_->cli({"deploy", ticket("2"), "--image", "busybox"}).exitCode, 0);
  ASSERT_EQ(host_->cli({"delete", ticket("2")}).exitCode, 0);
  EXPECT_EQ(host_->violations(), std::vector<std::string>{}) << "a clean host, asked the agent";
  auto check = host_->cli({"check"});
  EXPECT_EQ(check.exitCode, 0) << check.out << check.err;
  ASSERT_EQ(host_->stopDaemon(), 0);
  EXPECT_EQ(host_->violations(), std::vector<std::string>{}) << "a clean host, offline";

  const std::string s = host_->stateDir();
  Leftovers undo;
  // A container no row owns (a defined one: it has a config).
  fs::create_directories(host_->lxcPath() + "/" + container("orphan"));
  std::ofstream(host_->lxcPath() + "/" + container("orphan") + "/config")
      << "lxc.uts.name = " << container("orphan") << "\n";
  sql(*host_,
      "INSERT INTO leases (ip, owner, created_at) VALUES ('10.250.0.99', 'qabox-ghost', 0)");
  sql(*host_,
      "INSERT INTO operations (slug, kind, container, started_at) "
      "VALUES ('ghost', 'create', 'qabox-ghost', 0)");
  fs::create_directories(s + "/run/stray");
  ASSERT_EQ(runOrDie({"mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", s + "/run/stray"}).exitCode,
            0);
  undo.mounts.push_back(s + "/run/stray");
  const std::string veth = "qbxit" + tag_.substr(0, 8);
  ASSERT_EQ(
      runOrDie({"ip", "link", "add", veth, "type", "veth", "peer", "name", veth + "p"}).exitCode,
      0);
  undo.links.push_back(veth);
  ASSERT_EQ(runOrDie({"ip", "link", "set", veth, "master", host_->bridge()}).exitCode, 0);
  fs::create_directories(s + "/logs/ghost");
  fs::create_directories(s + "/layers/deps-" + std::string(64, 'e'));
  fs::create_directories(s + "/images/busybox-v99");
  std::ofstream(s + "/work/left-over") << "x";
  // The cgroup a failed start of a container this host once made leaves.
  const std::string cg = hierarchies().front() + "/lxc.payload." + container("2");
  ASSERT_EQ(::mkdir(cg.c_str(), 0755), 0) << cg;
  undo.cgroups.push_back(cg);

  const auto t0 = std::chrono::steady_clock::now();
  auto offline = host_->violations();
  const auto took = std::chrono::steady_clock::now() - t0;
  std::cout << "qaboxd --check offline, " << offline.size() << " violations: "
            << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms\n";
  for (const std::string& expected :
       {"container " + container("orphan") + ": no row owns it",
        std::string("lease 10.250.0.99: owner qabox-ghost has no row"), std::string("journal "),
        "mount " + s + "/run/stray:", "veth " + veth + ":", std::string("logs logs/ghost:"),
        "layer layers/deps-" + std::string(64, 'e') + ":", std::string("image images/busybox-v99:"),
        std::string("work work/left-over:"),
        "cgroup " + cg + ": container " + container("2") + " is not running"}) {
    EXPECT_TRUE(named(offline, expected)) << expected << " not in:\n" << joined(offline);
  }
  EXPECT_FALSE(named(offline, "check failed")) << joined(offline);

  // Recovery takes back what is the agent's (the orphan, the lease, the
  // journal entry and the logs of its ticket, work/, the cgroup); the
  // running agent is then asked.
  host_->startDaemon();
  const auto t1 = std::chrono::steady_clock::now();
  auto online = host_->violations();
  std::cout << "qaboxd --check through the agent, " << online.size() << " violations: "
            << std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::steady_clock::now() - t1)
                   .count()
            << " ms\n";
  for (const char* gone : {"container ", "lease ", "journal ", "work ", "cgroup ", "logs "}) {
    EXPECT_FALSE(named(online, gone)) << gone << "after recovery:\n" << joined(online);
  }
  EXPECT_FALSE(fs::exists(cg)) << "recovery removes the cgroups of containers that do not run";
  for (const std::string& kept : {"mount " + s + "/run/stray:", "veth " + veth + ":"}) {
    EXPECT_TRUE(named(online, kept)) << kept << " not in:\n" << joined(online);
  }
  auto json = host_->cli({"check", "-o", "json"});
  EXPECT_EQ(json.exitCode, 8) << json.err;
  for (const auto& line : online) {
    const std::string name = line.substr(line.find(' ') + 1, line.find(": ") - line.find(' ') - 1);
    EXPECT_TRUE(contains(json.out, "\"name\":\"" + name + "\"")) << name << " in " << json.out;
  }
  auto table = host_->cli({"check"});
  EXPECT_EQ(table.exitCode, 8);
  EXPECT_TRUE(contains(table.out, "KIND")) << table.out;
}

// A container's own layer can hold anything: links out of it, FIFOs that
// would block whoever opens them. The checker reads none of it.
TEST_F(LxcInvariants, LinksAndFifosInAContainerChangeNothing) {
  ASSERT_EQ(host_->cli({"deploy", ticket("h"), "--image", "busybox"}).exitCode, 0);
  auto env = host_->env(ticket("h"));
  ASSERT_TRUE(env);
  const std::string upper = host_->lxcPath() + "/" + env->container() + "/overlay/delta";
  ASSERT_TRUE(fs::is_directory(upper)) << upper;
  ASSERT_EQ(::mkfifo((upper + "/fifo").c_str(), 0644), 0);
  fs::create_directories(upper + "/var/log/qabox");
  ::unlink((upper + "/var/log/qabox/app.log").c_str());
  ASSERT_EQ(::mkfifo((upper + "/var/log/qabox/app.log").c_str(), 0644), 0);
  fs::create_symlink("/etc", upper + "/etc-link");
  fs::create_symlink("/proc/self/mountinfo", upper + "/mountinfo");
  fs::create_symlink("/sys/fs/cgroup", upper + "/cgroup");
  const auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(host_->violations(), std::vector<std::string>{});
  ASSERT_EQ(host_->stopDaemon(), 0);
  EXPECT_EQ(host_->violations(), std::vector<std::string>{});
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(30));
}

// liblxc leaves lxc.monitor.<name> and lxc.payload.<name> behind when a
// start fails; the agent removes them, and the checker would name them.
TEST_F(LxcInvariants, AStartThatFailsLeavesNoCgroup) {
  const std::string t = ticket("f");
  ASSERT_EQ(host_->cli({"deploy", t, "--image", "busybox"}).exitCode, 0);
  ASSERT_EQ(host_->cli({"sleep", t}).exitCode, 0);
  auto env = host_->env(t);
  ASSERT_TRUE(env);
  // Its app config broken: an init that is not there, so every start fails
  // after liblxc made the container's cgroups.
  std::ofstream(host_->lxcPath() + "/" + env->container() + "/config", std::ios::app)
      << "lxc.init.cmd = /no/such/init\n";
  auto wake = host_->cli({"wake", t});
  EXPECT_NE(wake.exitCode, 0) << wake.out;
  EXPECT_EQ(host_->env(t)->state(), v1::Environment::FAILED);
  EXPECT_EQ(cgroupsOf(env->container()), std::vector<std::string>{});
  auto lines = host_->violations();
  EXPECT_FALSE(named(lines, "cgroup ")) << joined(lines);
  ASSERT_EQ(host_->cli({"delete", t}).exitCode, 0);
  EXPECT_EQ(cgroupsOf(env->container()), std::vector<std::string>{});
  EXPECT_EQ(host_->violations(), std::vector<std::string>{});
}

// A command attached to the container holds it awake: a sleep meanwhile
// is refused, naming it; the sleep after it ends leaves no cgroup behind.
TEST_F(LxcInvariants, AnExecRacingASleepLeavesNoCgroup) {
  const std::string t = ticket("r");
  ASSERT_EQ(host_->cli({"deploy", t, "--image", "busybox"}).exitCode, 0);
  auto env = host_->env(t);
  ASSERT_TRUE(env);
  for (int i = 0; i < 3; ++i) {
    int pid = host_->cliAsync({"exec", t, "--", "sleep", "2"});
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    // A command still runs: the sleep is refused, naming it, and changes nothing.
    CliResult refused = host_->cli({"sleep", t});
    EXPECT_NE(refused.exitCode, 0);
    EXPECT_TRUE(contains(refused.err, "qabox exec")) << refused.err;
    int status = 0;
    ::waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "round " << i;
    ASSERT_EQ(host_->cli({"sleep", t}).exitCode, 0);
    EXPECT_EQ(cgroupsOf(env->container()), std::vector<std::string>{}) << "round " << i;
    auto lines = host_->violations();
    EXPECT_FALSE(named(lines, "cgroup ")) << joined(lines);
    ASSERT_EQ(host_->cli({"wake", t}).exitCode, 0);
  }
}

// A redeploy destroys the serving container while it runs; a sleep stops
// one; a delete destroys a stopped one. None leaves a cgroup behind.
TEST_F(LxcInvariants, RedeploySleepAndDeleteLeaveNoCgroup) {
  const std::string t = ticket("d");
  ASSERT_EQ(host_->cli({"deploy", t, "--image", "busybox"}).exitCode, 0);
  ASSERT_EQ(host_->cli({"redeploy", t, "--force"}).exitCode, 0);
  EXPECT_EQ(cgroupsOf(container("d")), std::vector<std::string>{}) << "after the redeploy";
  ASSERT_EQ(host_->cli({"sleep", t}).exitCode, 0);
  EXPECT_EQ(cgroupsOf(container("d") + "_1"), std::vector<std::string>{}) << "asleep";
  ASSERT_EQ(host_->cli({"delete", t}).exitCode, 0);
  EXPECT_EQ(cgroupsOf(container("d") + "_1"), std::vector<std::string>{}) << "deleted";
  EXPECT_EQ(host_->violations(), std::vector<std::string>{});
}

// The same with a command attached while the container is destroyed, and
// a redeploy racing an exec into the serving container.
TEST_F(LxcInvariants, ExecsRacingADeleteAndARedeployLeaveNoCgroup) {
  for (int i = 0; i < 3; ++i) {
    const std::string t = ticket("x" + std::to_string(i));
    ASSERT_EQ(host_->cli({"deploy", t, "--image", "busybox"}).exitCode, 0);
    int pid = host_->cliAsync({"exec", t, "--", "sleep", "30"});
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    EXPECT_EQ(host_->cli({"redeploy", t, "--force"}).exitCode, 0);
    int pid2 = host_->cliAsync({"exec", t, "--", "sleep", "30"});
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    EXPECT_EQ(host_->cli({"delete", t}).exitCode, 0);
    int status = 0;
    ::waitpid(pid, &status, 0);
    ::waitpid(pid2, &status, 0);
    EXPECT_EQ(cgroupsOf(container("x" + std::to_string(i))), std::vector<std::string>{});
  }
  EXPECT_EQ(host_->violations(), std::vector<std::string>{});
}

}  // namespace
}  // namespace qabox::testing
