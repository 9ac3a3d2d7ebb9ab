// Issue: deploy the pull request's merge result into its environment. Real
// LXC containers, local bare repos as remotes, the real daemon and CLI.
#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "harness.h"

namespace qabox::testing {
namespace {

namespace fs = std::filesystem;

// A tiny app on the busybox image: httpd on port 8080 serving www/, with
// hooks that can be told to fail.
constexpr const char* kAppToml = R"([app]
start = "echo app starting; exec httpd -f -vv -p 8080 -h /srv/app/www"
port = 8080
health = "/health.txt"
[hooks]
build = "sh build.sh"
migrate = "echo migrating"
seed = "echo seeded > www/seed.txt"
)";

class LxcDeploy : public ::testing::Test {
 protected:
  void SetUp() override {
    QABOX_REQUIRE_LXC();
    host_ = std::make_unique<TestHost>();
    git_ = std::make_unique<GitFixture>(host_->stateDir() + "/src");
    git_->write("qabox.toml", kAppToml);
    git_->write("build.sh",
                "set -e\nmkdir -p www\necho ok > www/health.txt\n"
                "echo \"$QABOX_TICKET $QABOX_COMMIT\" > www/index.html\necho built\n");
    git_->write("www/target-only.txt", "from develop\n");
    git_->write("www/cgi-bin/env",
                "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nenv\n");
    git_->makeExecutable("www/cgi-bin/env");
    git_->commit("app");
    git_->push("develop");
    git_->checkout("feature/EXMP-113", true);
    git_->write("www/source-only.txt", "from the feature\n");
    git_->commit("feature file");
    git_->push("feature/EXMP-113");
    git_->checkout("develop");
    git_->write("www/develop-later.txt", "develop moved on\n");
    git_->commit("develop moves");
    git_->push("develop");

    TestHost::Options o;
    o.repos = {{"shop", git_->bare()}};
    o.healthTimeout = "5s";
    host_->writeConfig(o);
    host_->startDaemon();
    ASSERT_EQ(host_->cli({"image", "build", "busybox"}).exitCode, 0);
  }

  CliResult deploy(const std::string& ticket, const std::string& source,
                   std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"deploy",   ticket, "--repo",   "shop",
                                     "--source", source, "--target", "develop"};
    args.insert(args.end(), extra.begin(), extra.end());
    return host_->cli(args);
  }

  CliResult exec(const std::string& ticket, std::vector<std::string> argv) {
    std::vector<std::string> args = {"exec", ticket, "--"};
    args.insert(args.end(), argv.begin(), argv.end());
    return host_->cli(args);
  }

  HttpReply viaRouter(const std::string& slug, const std::string& path) {
    return httpGet("127.0.0.1", host_->routerPort(), path, slug + "." + host_->domain());
  }

  std::unique_ptr<TestHost> host_;
  std::unique_ptr<GitFixture> git_;
};

TEST_F(LxcDeploy, MergeResultIsExportedAndServed) {
  auto r = deploy("EXMP-113", "feature/EXMP-113");
  ASSERT_EQ(r.exitCode, 0) << r.err << host_->logText();
  auto env = host_->env("EXMP-113");
  ASSERT_TRUE(env);
  EXPECT_EQ(env->state(), v1::Environment::READY) << env->message();
  EXPECT_EQ(env->commit().size(), 40u);
  EXPECT_EQ(env->port(), 8080u);
  // Progress: a line per phase on stderr.
  for (const char* phase : {"merge", "clone", "export", "build", "migrate", "seed", "health"}) {
    EXPECT_NE(r.err.find(phase), std::string::npos) << phase << " missing in:\n" << r.err;
  }
  EXPECT_EQ(exec("EXMP-113", {"cat", "/srv/app/www/source-only.txt"}).out, "from the feature\n");
  EXPECT_EQ(exec("EXMP-113", {"cat", "/srv/app/www/develop-later.txt"}).out, "develop moved on\n");
  EXPECT_NE(exec("EXMP-113", {"test", "-e", "/srv/app/.git"}).exitCode, 0);
  // The image's own /srv/app does not show through.
  EXPECT_NE(exec("EXMP-113", {"test", "-e", "/srv/app/index.html"}).exitCode, 0);
  auto page = httpGet(env->ip(), 8080, "/");
  EXPECT_EQ(page.status, 200);
  EXPECT_EQ(page.body, "EXMP-113 " + env->commit() + "\n");
  EXPECT_EQ(httpGet(env->ip(), 8080, "/seed.txt").body, "seeded\n");
  // The merge commit is the qabox author's, never pushed.
  EXPECT_EQ(git_->git({"ls-remote", "--heads", git_->bare()}).find(env->commit()),
            std::string::npos);
}

TEST_F(LxcDeploy, FastForwardDeploysTheSourceHead) {
  git_->checkout("feature/ff", true);
  git_->write("www/ff.txt", "ff\n");
  git_->commit("ff");
  git_->push("feature/ff");
  std::string head = git_->head();
  ASSERT_EQ(deploy("FF-1", "feature/ff").exitCode, 0);
  EXPECT_EQ(host_->env("FF-1")->commit(), head);
}

TEST_F(LxcDeploy, ConflictNamesThePathAndCreatesNothing) {
  git_->checkout("feature/clash", true);
  git_->write("www/target-only.txt", "the feature's version\n");
  git_->commit("clash");
  git_->push("feature/clash");
  git_->checkout("develop");
  git_->write("www/target-only.txt", "develop's version\n");
  git_->commit("clash on develop");
  git_->push("develop");
  auto r = deploy("CLASH-1", "feature/clash");
  EXPECT_EQ(r.exitCode, 4) << r.err;
  EXPECT_NE(r.err.find("www/target-only.txt"), std::string::npos) << r.err;
  EXPECT_FALSE(host_->env("CLASH-1"));
  EXPECT_TRUE(host_->containers().empty());
  EXPECT_EQ(host_->leaseCount(), 0);
}

TEST_F(LxcDeploy, UnknownRepoMissingBranchAndBadRefsAreClearErrors) {
  auto r = host_->cli({"deploy", "X-1", "--repo", "nope", "--source", "a", "--target", "develop"});
  EXPECT_NE(r.exitCode, 0);
  EXPECT_NE(r.err.find("allowlist"), std::string::npos) << r.err;
  r = deploy("X-1", "feature/none");
  EXPECT_EQ(r.exitCode, 3) << r.err;
  EXPECT_NE(r.err.find("feature/none"), std::string::npos) << r.err;
  r = deploy("X-1", "--upload-pack=evil");
  EXPECT_NE(r.exitCode, 0);
  r = deploy("X-1", "a..b");
  EXPECT_NE(r.exitCode, 0);
  EXPECT_NE(r.err.find("'..'"), std::string::npos) << r.err;
  EXPECT_TRUE(host_->containers().empty());
}

TEST_F(LxcDeploy, FailingHookLeavesFailedWithItsOutput) {
  git_->checkout("feature/broken", true);
  git_->write("build.sh",
              "echo compiling widgets\necho 'error: widget.c:3 missing ;' >&2\nexit 3\n");
  git_->commit("break the build");
  git_->push("feature/broken");
  auto r = deploy("BROKEN-1", "feature/broken");
  EXPECT_EQ(r.exitCode, 7) << r.err;
  auto env = host_->env("BROKEN-1");
  ASSERT_TRUE(env);
  EXPECT_EQ(env->state(), v1::Environment::FAILED);
  EXPECT_NE(env->message().find("build"), std::string::npos) << env->message();
  EXPECT_NE(env->message().find("exit code 3"), std::string::npos) << env->message();
  EXPECT_NE(env->message().find("widget.c:3"), std::string::npos) << env->message();
  // Kept for inspection; the deploy log has the hook's output.
  EXPECT_EQ(host_->containers().size(), 1u);
  auto logs = host_->cli({"logs", "BROKEN-1", "--deploy"});
  EXPECT_NE(logs.out.find("compiling widgets"), std::string::npos) << logs.out;
  EXPECT_EQ(viaRouter("broken-1", "/").status, 502);
}

TEST_F(LxcDeploy, FailingHealthCheckLeavesFailed) {
  git_->checkout("feature/sick", true);
  git_->write("qabox.toml", std::string(kAppToml) + "");
  git_->write("build.sh", "mkdir -p www; echo built\n");  // no health.txt: 404
  git_->commit("no health page");
  git_->push("feature/sick");
  auto r = deploy("SICK-1", "feature/sick");
  EXPECT_EQ(r.exitCode, 7) << r.err;
  auto env = host_->env("SICK-1");
  ASSERT_TRUE(env);
  EXPECT_EQ(env->state(), v1::Environment::FAILED);
  EXPECT_NE(env->message().find("health"), std::string::npos) << env->message();
}

TEST_F(LxcDeploy, AppSeesEnvVarsAndIsRestartedWhenKilled) {
  auto r = deploy("ENV-1", "feature/EXMP-113", {"--env", "GREETING=hello world", "--env", "N=1"});
  ASSERT_EQ(r.exitCode, 0) << r.err;
  auto env = host_->env("ENV-1");
  auto page = httpGet(env->ip(), 8080, "/cgi-bin/env");
  EXPECT_NE(page.body.find("GREETING=hello world"), std::string::npos)
      << page.status << page.error << page.body;
  EXPECT_NE(page.body.find("QABOX_TICKET=ENV-1"), std::string::npos);
  EXPECT_NE(page.body.find("QABOX_COMMIT=" + env->commit()), std::string::npos);
  EXPECT_NE(page.body.find("QABOX_SOURCE_BRANCH=feature/EXMP-113"), std::string::npos);
  EXPECT_NE(page.body.find("QABOX_TARGET_BRANCH=develop"), std::string::npos);
  EXPECT_NE(page.body.find("QABOX_URL=http://env-1." + host_->domain()), std::string::npos);

  EXPECT_EQ(exec("ENV-1", {"killall", "httpd"}).exitCode, 0);
  bool back = false;
  for (int i = 0; i < 100 && !back; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    back = httpGet(env->ip(), 8080, "/health.txt").status == 200;
  }
  EXPECT_TRUE(back);
  auto log = host_->cli({"logs", "ENV-1"});
  EXPECT_NE(log.out.find("restarting"), std::string::npos) << log.out;
}

TEST_F(LxcDeploy, RedeploySwitchesWithoutAFailedRequest) {
  ASSERT_EQ(deploy("RE-1", "feature/EXMP-113").exitCode, 0);
  auto first = host_->env("RE-1");
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0};
  std::string lastFailure;
  std::thread poller([&] {
    while (!stop) {
      auto r = viaRouter("re-1", "/health.txt");
      if (r.status == 200) {
        ++ok;
      } else {
        ++failed;
        lastFailure = std::to_string(r.status) + " " + r.error + " " + r.body;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  git_->checkout("feature/EXMP-113");
  git_->write("www/second.txt", "second\n");
  git_->commit("second");
  git_->push("feature/EXMP-113");
  auto r = deploy("RE-1", "feature/EXMP-113");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  stop = true;
  poller.join();
  ASSERT_EQ(r.exitCode, 0) << r.err;
  auto second = host_->env("RE-1");
  EXPECT_NE(second->commit(), first->commit());
  EXPECT_NE(second->container(), first->container());
  EXPECT_EQ(failed.load(), 0) << lastFailure;
  EXPECT_GT(ok.load(), 10);
  EXPECT_EQ(viaRouter("re-1", "/second.txt").body, "second\n");
  EXPECT_EQ(host_->containers().size(), 1u);
  EXPECT_EQ(host_->leaseCount(), 1);
  // Same merge result again: nothing is done; --force rebuilds.
  ASSERT_EQ(deploy("RE-1", "feature/EXMP-113").exitCode, 0);
  EXPECT_EQ(host_->env("RE-1")->container(), second->container());
  auto forced = deploy("RE-1", "feature/EXMP-113", {"--force"});
  ASSERT_EQ(forced.exitCode, 0) << forced.err;
  EXPECT_NE(host_->env("RE-1")->container(), second->container());
  EXPECT_EQ(host_->containers().size(), 1u);
}

TEST_F(LxcDeploy, FailedRedeployKeepsTheOldOneServing) {
  ASSERT_EQ(deploy("KEEP-1", "feature/EXMP-113").exitCode, 0);
  auto before = host_->env("KEEP-1");
  git_->checkout("feature/EXMP-113");
  git_->write("build.sh", "echo nope; exit 9\n");
  git_->commit("break");
  git_->push("feature/EXMP-113");
  auto r = deploy("KEEP-1", "feature/EXMP-113");
  EXPECT_NE(r.exitCode, 0);
  auto after = host_->env("KEEP-1");
  ASSERT_TRUE(after);
  EXPECT_EQ(after->state(), v1::Environment::READY);
  EXPECT_EQ(after->container(), before->container());
  EXPECT_EQ(after->commit(), before->commit());
  EXPECT_NE(after->message().find("redeploy failed"), std::string::npos) << after->message();
  EXPECT_EQ(viaRouter("keep-1", "/health.txt").status, 200);
  EXPECT_EQ(host_->containers().size(), 1u);
  EXPECT_EQ(host_->leaseCount(), 1);
}

TEST_F(LxcDeploy, ExecPassesExitCodesAndOutput) {
  ASSERT_EQ(deploy("EXEC-1", "feature/EXMP-113").exitCode, 0);
  auto r = exec("EXEC-1", {"sh", "-c", "echo out; echo err >&2; exit 42"});
  EXPECT_EQ(r.exitCode, 42);
  EXPECT_EQ(r.out, "out\n");
  EXPECT_NE(r.err.find("err"), std::string::npos);
  EXPECT_EQ(exec("EXEC-1", {"true"}).exitCode, 0);
  EXPECT_EQ(exec("EXEC-1", {"pwd"}).out, "/srv/app\n");
  EXPECT_NE(exec("EXEC-1", {"/no/such/program"}).exitCode, 0);
  EXPECT_EQ(exec("NOPE-1", {"true"}).exitCode, 3);
}

TEST_F(LxcDeploy, LogsFollowStreamsNewOutput) {
  ASSERT_EQ(deploy("LOG-1", "feature/EXMP-113").exitCode, 0);
  std::string out = host_->stateDir() + "/follow.out";
  std::thread follower([&] {
    auto r = host_->cli({"logs", "LOG-1", "--follow"}, std::chrono::seconds(4));
    std::ofstream(out) << r.out;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  // httpd -vv logs each request to the app log.
  for (int i = 0; i < 3; ++i)
    httpGet(host_->env("LOG-1")->ip(), 8080, "/marker-" + std::to_string(i));
  follower.join();
  std::ifstream in(out);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("app starting"), std::string::npos) << text;
  EXPECT_NE(text.find("marker-2"), std::string::npos) << text;
}

}  // namespace
}  // namespace qabox::testing
