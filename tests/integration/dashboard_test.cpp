// The dashboard in a real browser (tests/browser/dashboard.js: Debian's
// chromium driven headless by playwright-core) against the real daemon,
// real containers and the real router. This side makes the host, the app,
// the tokens and the first environment; the script signs in, watches, acts
// and is refused, and saves a screenshot of each page under
// <build>/screenshots/. Also the dashboard's answers that need no browser:
// its security headers through the router, a signed-out request, a forged
// cookie.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>

#include "harness.h"

namespace qabox::testing {
namespace {

namespace fs = std::filesystem;

constexpr const char* kToml =
    "[app]\nstart = \"exec httpd -f -p 8080 -h /srv/app/www\"\nport = 8080\n"
    "health = \"/ok.txt\"\n[hooks]\nbuild = \"sleep 2 && echo ok > www/ok.txt && echo building the "
    "app\"\n";

// node, chromium and the installed playwright-core; why not when missing.
bool browserReady(std::string* why) {
  for (const char* bin : {"/usr/bin/chromium", "/usr/bin/node"}) {
    if (!fs::exists(bin)) {
      *why = std::string(bin) + " is missing (scripts/install-deps.sh installs it)";
      return false;
    }
  }
  if (!fs::exists(std::string(QABOX_BROWSER_MODULES) + "/playwright-core")) {
    *why = std::string("playwright-core is not installed in ") + QABOX_BROWSER_MODULES +
           " (scripts/install-deps.sh installs it)";
    return false;
  }
  return true;
}

class LxcDashboard : public ::testing::Test {
 protected:
  void SetUp() override {
    QABOX_REQUIRE_LXC();
    std::string why;
    if (!browserReady(&why)) {
      if (inCi()) FAIL() << "the browser test needs chromium and node in CI: " << why;
      GTEST_SKIP() << why;
    }
    host_ = std::make_unique<TestHost>();
    git_ = host_->appRepo({{"qabox.toml", kToml}, {"www/index.html", "dashboard test app\n"}});
    for (const char* t : {"EXMP-1", "EXMP-2"}) {
      git_->checkout("develop");
      git_->checkout(std::string("feature/") + t, true);
      git_->write("www/feature.txt", std::string(t) + "\n");
      git_->commit(t);
      git_->push(std::string("feature/") + t);
    }
    git_->checkout("develop");
    TestHost::Options o;
    o.repos = {{"app", git_->bare()}};
    host_->writeConfig(o);
    host_->startDaemon();
    ASSERT_EQ(host_->cli({"image", "build", "busybox"}).exitCode, 0);
  }

  std::string token(const std::string& name, const std::string& role) {
    return host_->createToken(name, role);
  }

  HttpReply dashboard(const std::string& path, const std::string& cookie = "") {
    if (cookie.empty()) return httpGet("127.0.0.1", host_->routerPort(), path, dashboardHost());
    RawClient c(host_->routerPort());
    c.send("GET " + path + " HTTP/1.1\r\nHost: " + dashboardHost() + "\r\nCookie: " + cookie +
           "\r\nConnection: close\r\n\r\n");
    HttpReply r;
    std::string all = c.readAll();
    if (all.size() > 12) r.status = std::stoi(all.substr(9, 3));
    r.body = all;
    return r;
  }
  std::string dashboardHost() {
    return "qabox." + host_->domain() + ":" + std::to_string(host_->routerPort());
  }

  std::unique_ptr<TestHost> host_;
  std::unique_ptr<GitFixture> git_;
};

TEST_F(LxcDashboard, IsServedThroughTheRouterBehindItsLogin) {
  HttpReply r = dashboard("/");
  EXPECT_EQ(r.status, 303) << r.body;
  EXPECT_EQ(r.headers["location"], "/login?next=%2F");
  r = dashboard("/login");
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(contains(r.headers["content-security-policy"], "default-src 'self'"));
  EXPECT_EQ(r.headers["x-frame-options"], "DENY");
  EXPECT_EQ(r.headers["x-content-type-options"], "nosniff");
  EXPECT_TRUE(contains(r.body, "Your token"));
  // A made-up or tampered cookie is no session.
  EXPECT_EQ(dashboard("/", "qabox_session=eyJ0.AAAA").status, 303);
  EXPECT_EQ(dashboard("/fragment/rows").status, 401);
  EXPECT_EQ(dashboard("/assets/../../etc/passwd").status, 303);
  EXPECT_EQ(dashboard("/assets/app.js").status, 200);
  // No ticket can take the dashboard's name.
  auto d = host_->cli({"deploy", "qabox"});
  EXPECT_NE(d.exitCode, 0);
}

TEST_F(LxcDashboard, InARealBrowser) {
  ASSERT_EQ(host_
                ->cli({"deploy", "EXMP-1", "--repo", "app", "--source", "feature/EXMP-1",
                       "--target", "develop"})
                .exitCode,
            0);
  // A new commit, so the page's redeploy really deploys.
  git_->checkout("feature/EXMP-1");
  git_->write("www/feature.txt", "EXMP-1 again\n");
  git_->commit("again");
  git_->push("feature/EXMP-1");
  git_->checkout("develop");
  std::string qa = token("alice", "qa"), ops = token("olga", "ops");
  std::string shots = binDir() + "/screenshots";
  ProcessSpec spec;
  spec.argv = {"/usr/bin/node", sourceDir() + "/tests/browser/dashboard.js"};
  std::map<std::string, std::string> env = {
      {"PATH", "/usr/bin:/bin"},
      {"HOME", host_->stateDir()},
      {"NODE_PATH", QABOX_BROWSER_MODULES},
      {"DASHBOARD_URL", "http://" + dashboardHost() + "/"},
      {"DOMAIN", host_->domain()},
      {"QA_TOKEN", qa},
      {"OPS_TOKEN", ops},
      {"OPS_NAME", "olga"},
      {"QABOX_CLI", binDir() + "/agent/cli/qabox"},
      {"QABOX_ENDPOINT", "unix://" + host_->socket()},
      {"SCREENSHOTS", shots},
  };
  spec.env = env;
  spec.timeout = std::chrono::minutes(8);
  spec.onOutput = [](bool, std::string_view data) { std::cerr << data; };
  RealProcessRunner runner;
  auto r = runner.run(spec);
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->exitCode, 0) << r->out << r->err << host_->logText();
  for (const char* page : {"list", "environment", "deploy-log", "redeployed", "refused", "preview",
                           "host", "delete-confirm", "deleted", "signed-out"}) {
    EXPECT_TRUE(fs::exists(shots + "/" + page + ".png")) << page;
  }
  // What the person did is in the events, by their token's name.
  auto events = host_->cli({"events", "EXMP-1"});
  EXPECT_TRUE(contains(events.out, "token:alice")) << events.out;
  EXPECT_FALSE(host_->env("EXMP-2").has_value());
}

}  // namespace
}  // namespace qabox::testing
