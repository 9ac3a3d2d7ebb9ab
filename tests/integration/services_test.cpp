// Issue 14: an app's services and processes on real containers. A busybox
// image with qabox-init as PID 1 (the supervised test image) carries two
// fake services, busybox httpd on their own ports with wget as the ready
// check, one ready only two seconds after it starts; the app turns them on
// in qabox.toml and names two processes. The deploy waits for the services
// before its migrate hook, which fetches from the slow one.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <thread>

#include "harness.h"
#include "supervised_recipe.h"

namespace qabox::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr const char* kServices = R"(
[services.web1]
run = "echo web1 starting; exec httpd -f -p 8081 -h /srv/www1"
ready = "wget -q -O /dev/null http://127.0.0.1:8081/"
[services.web1.env]
WEB1_URL = "http://app:${password}@127.0.0.1:8081/"
WEB1_PASSWORD = "${password}"

[services.slow]
run = "rm -f /run/slow.go; (sleep 2; touch /run/slow.go) & exec httpd -f -p 8082 -h /srv/www2"
ready = "test -f /run/slow.go && wget -q -O /dev/null http://127.0.0.1:8082/"

[services.broken]
run = "echo broken starting with $BROKEN_PASSWORD; exit 1"
[services.broken.env]
BROKEN_PASSWORD = "${password}"
)";

constexpr const char* kAppToml = R"(
[app]
process = "web"
port = 80
health = "/"
[hooks]
migrate = "wget -q -O /srv/app/from-slow.html http://127.0.0.1:8082/"
[services.web1]
[services.slow]
[processes]
web = "exec httpd -f -p 80 -h /srv/app"
worker = "while :; do echo tick; sleep 1; done"
)";

class LxcServices : public ::testing::Test {
 protected:
  void SetUp() override {
    QABOX_REQUIRE_LXC();
    host_ = std::make_unique<TestHost>();
    const std::string recipes = copySupervisedRecipes(host_->stateDir());
    // The recipe with qabox-init named as its init, and the services.
    const std::string recipe = recipes + "/supervised/image.toml";
    std::string text = readFile(recipe);
    std::ofstream(recipe, std::ios::trunc) << "init = \"qabox-init\"\n" << text << kServices;

    git_ = std::make_unique<GitFixture>(host_->stateDir() + "/src");
    git_->write("qabox.toml", kAppToml);
    git_->write("index.html", "the app\n");
    git_->commit("app");
    git_->push("develop");
    TestHost::Options o;
    o.repos = {{"app", git_->bare()}};
    o.healthTimeout = "20s";
    o.deployToml = "hook_timeout = \"30s\"";
    host_->writeConfig(o);
    pointImagesDirAt(host_->stateDir(), recipes);
    host_->startDaemon();
    auto build = host_->cli({"image", "build", "supervised"});
    ASSERT_EQ(build.exitCode, 0) << build.err << build.out;
  }

  CliResult deploy(const std::string& ticket) {
    return host_->cli({"deploy", ticket, "--image", "supervised", "--repo", "app", "--source",
                       "develop", "--target", "develop"});
  }
  CliResult sh(const std::string& ticket, const std::string& script) {
    return host_->cli({"exec", ticket, "--", "sh", "-c", script});
  }
  // Every file in the state dir (the store, deploy logs, the agent's log)
  // that holds `text`.
  std::vector<std::string> filesHolding(const std::string& text) {
    std::vector<std::string> out;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(host_->stateDir(), ec);
         it != fs::recursive_directory_iterator(); it.increment(ec)) {
      const std::string p = it->path().string();
      // The containers' own files hold it by design (app.env).
      if (p.rfind(host_->lxcPath(), 0) == 0 || p.rfind(host_->stateDir() + "/images", 0) == 0) {
        it.disable_recursion_pending();
        continue;
      }
      if (it->is_regular_file(ec) && contains(readFile(p), text)) out.push_back(p);
    }
    return out;
  }

  std::unique_ptr<TestHost> host_;
  std::unique_ptr<GitFixture> git_;
};

TEST_F(LxcServices, ADeployWaitsForItsServicesAndGetShowsEveryProcess) {
  auto t0 = std::chrono::steady_clock::now();
  auto d = deploy("SVC-1");
  auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_EQ(d.exitCode, 0) << d.err << d.out;
  std::printf(
      "deploy with two services to READY: %lld ms\n",
      static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(took).count()));
  EXPECT_TRUE(contains(d.out + d.err, "services")) << d.out << d.err;
  auto env = host_->env("SVC-1");
  ASSERT_TRUE(env);
  ASSERT_EQ(env->state(), v1::Environment::READY) << env->message();

  // migrate ran once the slow service was ready: it fetched from it.
  EXPECT_EQ(sh("SVC-1", "cat /srv/app/from-slow.html").out, "service two\n");
  EXPECT_EQ(httpGet(env->ip(), 80, "/").body, "the app\n");

  // get: each process from qabox-init, the services marked.
  ASSERT_EQ(env->processes_size(), 4) << env->DebugString();
  std::map<std::string, v1::Process> procs;
  for (const auto& p : env->processes()) procs[p.name()] = p;
  EXPECT_TRUE(procs["web1"].service());
  EXPECT_TRUE(procs["slow"].service());
  EXPECT_FALSE(procs["web"].service());
  EXPECT_FALSE(procs["worker"].service());
  EXPECT_EQ(procs["web1"].state(), "ready");
  EXPECT_EQ(procs["slow"].state(), "ready");
  EXPECT_GT(procs["web"].pid(), 0);
  auto text = host_->cli({"get", "SVC-1"});
  EXPECT_TRUE(contains(text.out, "Processes:")) << text.out;
  EXPECT_TRUE(contains(text.out, "worker")) << text.out;

  // logs: the routed process's by default, any other by name.
  auto logs = host_->cli({"logs", "SVC-1", "--process", "web1"});
  EXPECT_EQ(logs.exitCode, 0) << logs.err;
  EXPECT_TRUE(contains(logs.out, "web1 starting")) << logs.out;
  bool ticked = false;
  for (int i = 0; i < 30 && !ticked; ++i) {
    ticked = contains(host_->cli({"logs", "SVC-1", "--process", "worker"}).out, "tick");
    if (!ticked) std::this_thread::sleep_for(200ms);
  }
  EXPECT_TRUE(ticked);
  EXPECT_EQ(host_->cli({"logs", "SVC-1", "--process", "nope"}).exitCode, 3);

  // The password: in the container's app.env, nowhere in the agent's files.
  auto appEnv = sh("SVC-1", "cat /etc/qabox/app.env");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(appEnv.out, m, std::regex("WEB1_PASSWORD='([0-9a-f]{48})'")))
      << appEnv.out;
  const std::string password = m[1];
  EXPECT_TRUE(contains(appEnv.out, "WEB1_URL='http://app:" + password + "@127.0.0.1:8081/'"));
  EXPECT_TRUE(filesHolding(password).empty()) << filesHolding(password).front();
  EXPECT_FALSE(contains(host_->logText(), password));
  EXPECT_FALSE(contains(text.out, password));
}

TEST_F(LxcServices, AServiceThatKeepsFailingFailsTheDeployWithItsLog) {
  git_->write("qabox.toml",
              "[app]\nstart = \"exec httpd -f -p 80 -h /srv/app\"\n"
              "[services.broken]\n");
  git_->commit("broken service");
  git_->push("develop");
  auto d = deploy("BRK-1");
  auto env = host_->env("BRK-1");
  ASSERT_TRUE(env) << d.err;
  EXPECT_EQ(env->state(), v1::Environment::FAILED);
  EXPECT_TRUE(contains(env->message(), "services failed: broken is backoff")) << env->message();
  EXPECT_TRUE(contains(env->message(),
                       "last lines of broken.log:\nbroken starting with "
                       "[secret broken.password]"))
      << env->message();
  // The password was redacted, and is in no file of the agent's.
  auto appEnv = sh("BRK-1", "cat /etc/qabox/app.env");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(appEnv.out, m, std::regex("BROKEN_PASSWORD='([0-9a-f]{48})'")));
  EXPECT_TRUE(filesHolding(m[1]).empty()) << filesHolding(m[1]).front();
}

TEST_F(LxcServices, ServicesOnAnImageWithoutQaboxInitAreRefusedBeforeAnythingIsMade) {
  ASSERT_EQ(host_->cli({"image", "build", "busybox"}).exitCode, 0);
  auto d = host_->cli({"deploy", "BB-1", "--image", "busybox", "--repo", "app", "--source",
                       "develop", "--target", "develop"});
  EXPECT_EQ(d.exitCode, 4) << d.err << d.out;  // FAILED_PRECONDITION
  EXPECT_TRUE(contains(d.err, "services.slow: image busybox has no service slow")) << d.err;
  EXPECT_FALSE(host_->env("BB-1"));
  EXPECT_TRUE(host_->containers().empty());
}

}  // namespace
}  // namespace qabox::testing
