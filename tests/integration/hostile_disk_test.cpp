// Issue 12, disk: what an environment writes cannot fill the host's disk or
// take the agent down. Its hooks and app write without end, past its own
// limit, and until the disk is full; the agent caps its logs, fails the
// environment that goes past its limit, rolls back the deploy that fills the
// disk, and keeps routing and answering for the others. The state dir lives
// on a small ext4 filesystem of the test's own (a loop mount, no reserved
// blocks), so "full" is real and harms nothing else.
#include <sys/statvfs.h>
#include <unistd.h>

#include <filesystem>
#include <random>
#include <thread>

#include "harness.h"

namespace qabox::testing {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;
using std::chrono::steady_clock;

using LoopFs = LoopExt4;

class LxcHostile : public ::testing::Test {
 protected:
  void SetUp() override {
    QABOX_REQUIRE_LXC();
    loop_ = std::make_unique<LoopFs>();
    ASSERT_TRUE(loop_->ok()) << "cannot make the loop filesystem";
    TestHost::Options o;
    o.stateDirParent = loop_->mnt();
    host_ = std::make_unique<TestHost>(o);
  }
  void TearDown() override {
    host_.reset();  // its containers and state dir first, then the filesystem
    loop_.reset();
  }

  // Starts the agent with `o` (on the loop filesystem), the busybox image
  // built and a repo whose develop branch holds qabox.toml = `toml`.
  void start(TestHost::Options o, const std::string& toml) {
    o.stateDirParent = loop_->mnt();
    git_ = std::make_unique<GitFixture>(host_->stateDir() + "/src");
    git_->write("qabox.toml", toml);
    git_->write("index.html", "hello\n");
    git_->commit("app");
    git_->push("develop");
    o.repos = {{"app", git_->bare()}};
    o.healthTimeout = "10s";
    host_->writeConfig(o);
    host_->startWithBusybox();
  }

  CliResult deploy(const std::string& ticket) {
    return host_->cli(
        {"deploy", ticket, "--repo", "app", "--source", "develop", "--target", "develop"});
  }

  std::string containerState(const std::string& name) {
    auto r = runOrDie({"lxc-info", "-P", host_->lxcPath(), "-n", name, "-s", "-H"});
    std::string s = r.out;
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
  }

  HttpReply viaRouter(const std::string& slug) {
    return httpGet("127.0.0.1", host_->routerPort(), "/", slug + "." + host_->domain());
  }

  // Declared first, so it goes last.
  std::unique_ptr<LoopFs> loop_;
  std::unique_ptr<TestHost> host_;
  std::unique_ptr<GitFixture> git_;
};

constexpr const char* kServe = "[app]\nstart = \"exec httpd -f -p 80 -h /srv/app\"\nport = 80\n";

TEST_F(LxcHostile, ABuildThatFillsTheDiskIsRolledBackAndTheAgentKeepsServing) {
  start({}, std::string(kServe) + "[hooks]\nbuild = \"dd if=/dev/zero of=/srv/app/fill bs=1M\"\n");
  // A bystander, deployed before the disk fills.
  ASSERT_EQ(host_->cli({"deploy", "OK-1"}).exitCode, 0);
  ASSERT_EQ(viaRouter("ok-1").status, 200);
  const uint64_t before = loop_->available();
  ASSERT_GT(before, 100u << 20);

  auto started = steady_clock::now();
  CliResult r = deploy("FILL-1");
  EXPECT_NE(r.exitCode, 0) << r.out << r.err;
  EXPECT_NE(r.err.find("build failed"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("is full"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(host_->stateDir()), std::string::npos) << "names the disk: " << r.err;
  EXPECT_NE(r.err.find("rolled back"), std::string::npos) << r.err;
  if (std::getenv("QABOX_SHOW")) std::cerr << r.err;
  EXPECT_LT(steady_clock::now() - started, seconds(120));

  // Rolled back whole: no row, no lease, no container, and the space is back.
  EXPECT_FALSE(host_->env("FILL-1").has_value());
  EXPECT_EQ(host_->leaseCount(), 1);
  EXPECT_EQ(host_->containers().size(), 1u);
  EXPECT_GT(loop_->available(), before - (32u << 20));
  // The agent kept serving all along, and still does.
  EXPECT_TRUE(host_->daemonRunning());
  CliResult list = host_->cli({"list"});
  EXPECT_EQ(list.exitCode, 0) << list.err;
  EXPECT_NE(list.out.find("OK-1"), std::string::npos) << list.out;
  EXPECT_EQ(viaRouter("ok-1").status, 200);
  // And deploys again.
  CliResult again = host_->cli({"deploy", "NEW-1"});
  EXPECT_EQ(again.exitCode, 0) << again.err;
  EXPECT_EQ(viaRouter("new-1").status, 200);
}

TEST_F(LxcHostile, ARedeployThatFillsTheDiskLeavesTheOldContainerServing) {
  start({}, std::string(kServe) + "[hooks]\nbuild = \"echo fine\"\n");
  ASSERT_EQ(deploy("RE-1").exitCode, 0);
  auto before = host_->env("RE-1");
  ASSERT_TRUE(before.has_value());
  const uint64_t space = loop_->available();
  git_->write("qabox.toml", std::string(kServe) +
                                "[hooks]\nbuild = \"dd if=/dev/zero of=/srv/app/fill bs=1M\"\n");
  git_->commit("fill the disk");
  git_->push("develop");
  CliResult r = deploy("RE-1");
  EXPECT_NE(r.exitCode, 0) << r.out << r.err;
  EXPECT_NE((r.out + r.err).find("is full"), std::string::npos) << r.out << r.err;
  auto after = host_->env("RE-1");
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(after->state(), v1::Environment::READY);
  EXPECT_EQ(after->container(), before->container());
  EXPECT_NE(after->message().find("is full"), std::string::npos) << after->message();
  EXPECT_EQ(viaRouter("re-1").status, 200);
  EXPECT_EQ(host_->leaseCount(), 1);
  EXPECT_EQ(host_->containers().size(), 1u);
  EXPECT_GT(loop_->available(), space - (32u << 20));
}

TEST_F(LxcHostile, WithTheDiskFullReadsAndRoutesWorkAndWritesSayTheDiskIsFull) {
  start({}, kServe);
  ASSERT_EQ(host_->cli({"deploy", "OK-1"}).exitCode, 0);
  // Something else fills the state dir's disk to the last block.
  std::string fill = loop_->mnt() + "/fill";
  // ext4 keeps back what delayed allocation may need: smaller writes take the rest.
  for (const char* bs : {"1M", "4k", "1k"}) {
    (void)runOrDie({"dd", "if=/dev/zero", "of=" + fill + bs, std::string("bs=") + bs});
    (void)runOrDie({"sync"});
  }
  EXPECT_LT(loop_->available(), 64u << 10);

  EXPECT_EQ(viaRouter("ok-1").status, 200);
  CliResult list = host_->cli({"list"});
  EXPECT_EQ(list.exitCode, 0) << list.err;
  EXPECT_NE(list.out.find("OK-1"), std::string::npos);
  EXPECT_EQ(host_->cli({"get", "OK-1"}).exitCode, 0);

  CliResult r = host_->cli({"deploy", "NEW-1"});
  EXPECT_NE(r.exitCode, 0);
  EXPECT_NE(r.err.find("full"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(host_->stateDir()), std::string::npos) << "names the disk: " << r.err;
  if (std::getenv("QABOX_SHOW")) std::cerr << r.err;
  EXPECT_FALSE(host_->env("NEW-1").has_value());
  EXPECT_EQ(host_->containers().size(), 1u);
  EXPECT_TRUE(host_->daemonRunning());

  for (const char* bs : {"1M", "4k", "1k"}) fs::remove(fill + bs);
  CliResult again = host_->cli({"deploy", "NEW-1"});
  EXPECT_EQ(again.exitCode, 0) << again.err;
  EXPECT_EQ(host_->leaseCount(), 2);
  EXPECT_EQ(viaRouter("new-1").status, 200);
}

TEST_F(LxcHostile, AHookPastMaxDiskIsStoppedAtOnceAndFailedNamingTheLimit) {
  TestHost::Options o;
  o.limitsToml = "max_disk = \"20M\"\ndisk_check_interval = \"1s\"\n";
  o.deployToml = "hook_timeout = \"90s\"\n";
  start(o, std::string(kServe) +
               "[hooks]\nbuild = \"dd if=/dev/zero of=/srv/app/big bs=1M count=40; sleep 300\"\n");
  auto started = steady_clock::now();
  CliResult r = deploy("BIG-1");
  auto took = steady_clock::now() - started;
  EXPECT_NE(r.exitCode, 0) << r.out << r.err;
  EXPECT_LT(took, seconds(30)) << "the breach ends the hook, not its timeout";
  auto e = host_->env("BIG-1");
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->state(), v1::Environment::FAILED);
  EXPECT_NE(e->message().find("limits.max_disk"), std::string::npos) << e->message();
  EXPECT_NE(e->message().find("above the limit of 20M"), std::string::npos) << e->message();
  EXPECT_EQ(containerState(e->container()), "STOPPED");
  // FAILED keeps its lease until it is deleted, like every failed deploy.
  EXPECT_EQ(host_->leaseCount(), 1);
  EXPECT_EQ(host_->cli({"delete", "BIG-1"}).exitCode, 0);
  EXPECT_EQ(host_->leaseCount(), 0);
  EXPECT_TRUE(host_->containers().empty());
}

TEST_F(LxcHostile, ARunningAppPastMaxDiskIsFailedAndStopped) {
  TestHost::Options o;
  o.limitsToml = "max_disk = \"20M\"\ndisk_check_interval = \"1s\"\n";
  start(o,
        "[app]\nstart = \"(sleep 3; dd if=/dev/zero of=/srv/app/big bs=1M count=40) & exec httpd "
        "-f -p 80 -h /srv/app\"\nport = 80\n");
  ASSERT_EQ(host_->cli({"deploy", "DD-1"}).exitCode, 0);
  ASSERT_EQ(
      host_
          ->cli({"deploy", "GROW-1", "--repo", "app", "--source", "develop", "--target", "develop"})
          .exitCode,
      0);
  EXPECT_EQ(viaRouter("grow-1").status, 200);
  std::optional<v1::Environment> e;
  for (int i = 0; i < 60; ++i) {
    e = host_->env("GROW-1");
    if (e && e->state() == v1::Environment::FAILED) break;
    std::this_thread::sleep_for(milliseconds(250));
  }
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->state(), v1::Environment::FAILED);
  EXPECT_NE(e->message().find("limits.max_disk"), std::string::npos) << e->message();
  EXPECT_EQ(containerState(e->container()), "STOPPED");
  EXPECT_NE(viaRouter("grow-1").status, 200);
  // The other environment is untouched.
  EXPECT_EQ(viaRouter("dd-1").status, 200);
  auto other = host_->env("DD-1");
  ASSERT_TRUE(other.has_value());
  EXPECT_EQ(other->state(), v1::Environment::READY);
  EXPECT_NE(host_->logText().find("limits.max_disk"), std::string::npos);
}

TEST_F(LxcHostile, ManyFilesPastMaxFilesFailNamingTheLimit) {
  TestHost::Options o;
  o.limitsToml = "max_files = 1000\n";
  start(o, std::string(kServe) +
               "[hooks]\nbuild = \"i=0; while [ $i -lt 3000 ]; do : > f$i; i=$((i+1)); done\"\n");
  CliResult r = deploy("INODES-1");
  EXPECT_NE(r.exitCode, 0);
  auto e = host_->env("INODES-1");
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->state(), v1::Environment::FAILED);
  EXPECT_NE(e->message().find("limits.max_files"), std::string::npos) << e->message();
}

TEST_F(LxcHostile, LinksFifosAndHardLinksInTheLayerAreMeasuredNotFollowed) {
  TestHost::Options o;
  o.limitsToml = "max_disk = \"20M\"\ndisk_check_interval = \"1s\"\n";
  // 8 MiB held once under six names, a link to the container's / and to a
  // host-looking path, a FIFO: all within 20M, and nothing of it is opened.
  start(o, std::string(kServe) +
               "[hooks]\nbuild = \"dd if=/dev/zero of=f bs=1M count=8 && for i in 1 2 3 4 5; "
               "do ln f h$i; done && ln -s / root && ln -s /var/lib host && mkfifo pipe\"\n");
  CliResult r = deploy("LINKS-1");
  EXPECT_EQ(r.exitCode, 0) << r.err;
  std::this_thread::sleep_for(seconds(3));  // a few rounds of the periodic check
  auto e = host_->env("LINKS-1");
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->state(), v1::Environment::READY) << e->message();
  EXPECT_EQ(viaRouter("links-1").status, 200);
}

TEST_F(LxcHostile, EndlessHookOutputKeepsDeployLogUnderItsCap) {
  TestHost::Options o;
  o.deployToml = "hook_timeout = \"3s\"\nlog_max = \"64K\"\n";
  start(o, std::string(kServe) + "[hooks]\nbuild = \"yes\"\n");
  auto started = steady_clock::now();
  CliResult r = deploy("YES-1");
  EXPECT_NE(r.exitCode, 0);
  EXPECT_LT(steady_clock::now() - started, seconds(20)) << "the hook's timeout ends it";
  if (std::getenv("QABOX_SHOW")) std::cerr << r.out << r.err;
  std::string log = host_->stateDir() + "/logs/yes-1/deploy.log";
  ASSERT_TRUE(fs::exists(log));
  EXPECT_LE(fs::file_size(log), 64u << 10);
  std::string text = readFile(log);
  EXPECT_EQ(text.rfind("==> build: yes\n", 0), 0u) << text.substr(0, 100);
  EXPECT_NE(text.find("bytes of output dropped here"), std::string::npos);
  EXPECT_NE(text.find("y\ny\ny\n"), std::string::npos);
  auto logs = host_->cli({"logs", "YES-1", "--deploy"});
  EXPECT_EQ(logs.exitCode, 0);
  EXPECT_LE(logs.out.size(), 64u << 10);
  EXPECT_TRUE(host_->daemonRunning());
}

TEST_F(LxcHostile, EndlessAppOutputKeepsAppLogUnderItsCap) {
  TestHost::Options o;
  o.deployToml = "log_max = \"64K\"\n";
  start(o, "[app]\nstart = \"httpd -p 80 -h /srv/app; exec yes\"\nport = 80\n");
  ASSERT_EQ(deploy("CHATTY-1").exitCode, 0);
  auto e = host_->env("CHATTY-1");
  ASSERT_TRUE(e.has_value());
  std::string log =
      host_->lxcPath() + "/" + e->container() + "/overlay/delta/var/log/qabox/app.log";
  bool rotated = false;
  for (int i = 0; i < 20; ++i) {
    std::this_thread::sleep_for(milliseconds(250));
    std::error_code ec;
    auto size = fs::file_size(log, ec);
    ASSERT_FALSE(ec) << log;
    // One 64 KiB read may land before the init cuts the log back.
    EXPECT_LE(size, (64u << 10) + (64u << 10)) << "after " << i;
    if (readFile(log).find("bytes of app output dropped here") != std::string::npos) rotated = true;
  }
  EXPECT_TRUE(rotated);
  EXPECT_EQ(viaRouter("chatty-1").status, 200);
  EXPECT_NE(readFile(log).find("y\ny\n"), std::string::npos);
}

}  // namespace
}  // namespace qabox::testing
