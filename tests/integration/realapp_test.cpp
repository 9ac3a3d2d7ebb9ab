// Issue 14: the real sample app (scripts/sample-app: Flask on gunicorn,
// Postgres 15 and Redis of its own in every environment, a worker) on the
// python image, deployed from the bare repo scripts/sample-app/make-remote.sh
// makes. Real LXC, the real daemon, CLI and router. One agent and one python
// image build (minutes, from Debian's packages) serve every test of this
// binary; each test deletes what it deployed.
#include <cctype>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <thread>

#include "harness.h"

namespace qabox::testing {
namespace {

namespace fs = std::filesystem;
using std::chrono::seconds;

constexpr const char* kFeature = "feature/EXMP-113";
// What scripts/sample-app/seed.py puts in every fresh database.
const std::vector<std::string> kSeeded = {"Check out as a guest", "Apply a discount code",
                                          "Reset a password", "Search for a product",
                                          "Change the delivery address"};

struct PostReply {
  int status = 0;  // 0: no answer
  std::string raw;
};

// Each test runs on both storages of datasets: the overlay layer (the
// default) and a data pool (storage.data_pool, a loop-mounted btrfs of the
// test's own), each with its own agent, made on the first test that needs it.
class LxcRealApp : public ::testing::TestWithParam<std::string> {
 public:
  struct Site {
    std::unique_ptr<LoopBtrfs> pool;
    std::unique_ptr<TestHost> host;
    std::string remote;
    std::string error;  // why it could not be set up
  };

  static std::unique_ptr<Site> makeSite(const std::string& storage) {
    auto site = std::make_unique<Site>();
    if (!lxcAvailable(&site->error)) return site;  // SetUp says why
    site->error.clear();
    site->host = std::make_unique<TestHost>();
    TestHost& host = *site->host;
    site->remote = host.stateDir() + "/src/sample.git";
    fs::create_directories(host.stateDir() + "/src");
    auto made =
        runOrDie({"bash", sourceDir() + "/scripts/sample-app/make-remote.sh", site->remote});
    if (made.exitCode != 0) {
      site->error = "make-remote.sh: " + made.err;
      return site;
    }
    TestHost::Options o;
    o.repos = {{"sample", site->remote}};
    o.healthTimeout = "60s";
    if (storage == "pool") {
      char dir[] = "/tmp/qabox-pool-XXXXXX";
      if (!mkdtemp(dir)) {
        site->error = "mkdtemp for the data pool failed";
        return site;
      }
      site->pool = std::make_unique<LoopBtrfs>(dir);
      if (!site->pool->ok()) {
        site->error = "no loop-mounted btrfs for the data pool";
        return site;
      }
      o.extraToml = "[storage]\ndata_pool = \"" + site->pool->mnt() + "\"\n";
    }
    host.writeConfig(o);
    host.startDaemon();
    if (!host.daemonRunning()) {
      site->error = "qaboxd did not start:\n" + host.logText();
      return site;
    }
    auto started = std::chrono::steady_clock::now();
    CliResult built = host.cli({"image", "build", "python"}, std::chrono::minutes(30));
    if (built.exitCode != 0) {
      site->error = "image build python: " + built.err + "\n" + host.logText();
      return site;
    }
    std::cerr
        << "[ realapp ] " << storage << ": image build python took "
        << std::chrono::duration_cast<seconds>(std::chrono::steady_clock::now() - started).count()
        << " s\n";
    return site;
  }

  // The agent (its daemon stopped) before the pool it used is unmounted.
  static void TearDownTestSuite() {
    for (auto& [storage, site] : sites_) site->host.reset();
    sites_.clear();
  }

 protected:
  void SetUp() override {
    QABOX_REQUIRE_LXC();
    auto& site = sites_[GetParam()];
    if (!site) site = makeSite(GetParam());
    ASSERT_TRUE(site->host && site->error.empty()) << site->error;
    host_ = site->host.get();
    remote_ = site->remote;
  }

  void TearDown() override {
    if (!host_) return;
    for (const auto& t : deployed_) {
      if (host_->env(t)) {
        EXPECT_EQ(host_->cli({"delete", t}).exitCode, 0) << t;
      }
    }
  }

  CliResult deploy(const std::string& ticket, const std::string& source = kFeature,
                   const std::vector<std::string>& extra = {}) {
    deployed_.push_back(ticket);
    std::vector<std::string> args = {"deploy", ticket,     "--repo",  "sample",  "--source",
                                     source,   "--target", "develop", "--image", "python"};
    args.insert(args.end(), extra.begin(), extra.end());
    return host_->cli(args, std::chrono::minutes(5));
  }

  // Deploys the sample's pull request and fails the test unless it is READY.
  void deployReady(const std::string& ticket) {
    auto r = deploy(ticket);
    ASSERT_EQ(r.exitCode, 0) << r.err << "\n"
                             << host_->cli({"logs", ticket, "--deploy"}).out << host_->logText();
    auto env = host_->env(ticket);
    ASSERT_TRUE(env);
    ASSERT_EQ(env->state(), v1::Environment::READY) << env->message();
  }

  std::string hostname(const std::string& ticket) {
    std::string slug = ticket;
    for (auto& c : slug) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return slug + "." + host_->domain();
  }

  // Through the router, as QA's browser would.
  HttpReply get(const std::string& ticket, const std::string& path = "/") {
    return httpGet("127.0.0.1", host_->routerPort(), path, hostname(ticket), seconds(20));
  }

  // A form post through the router (the harness has GET only).
  PostReply post(const std::string& ticket, const std::string& path, const std::string& form) {
    PostReply reply;
    RawClient c(host_->routerPort());
    if (!c.connected()) return reply;
    std::string req = "POST " + path + " HTTP/1.1\r\nHost: " + hostname(ticket) +
                      "\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: " +
                      std::to_string(form.size()) + "\r\nConnection: close\r\n\r\n" + form;
    if (!c.send(req)) return reply;
    reply.raw = c.readAll(seconds(20));
    if (reply.raw.rfind("HTTP/1.", 0) == 0 && reply.raw.size() >= 12) {
      reply.status = std::atoi(reply.raw.substr(9, 3).c_str());
    }
    return reply;
  }

  // Adds an item with the sample's form; the app answers 303 to the list.
  void addItem(const std::string& ticket, const std::string& name) {
    auto r = post(ticket, "/items", "name=" + name + "&description=written+by+the+test");
    ASSERT_EQ(r.status, 303) << r.raw;
  }

  static bool waitFor(int secs, const std::function<bool()>& done) {
    auto deadline = std::chrono::steady_clock::now() + seconds(secs);
    while (std::chrono::steady_clock::now() < deadline) {
      if (done()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    return done();
  }

  // The first number matched by `pattern`'s group 1 in `text`; -1 if none.
  static long number(const std::string& text, const std::string& pattern) {
    std::smatch m;
    if (!std::regex_search(text, m, std::regex(pattern))) return -1;
    return std::stol(m[1]);
  }

  // The value of KEY='value' in the environment's /etc/qabox/app.env, read
  // from its container's upper dir on the host (not through exec).
  std::string appEnvValue(const v1::Environment& env, const std::string& key) {
    std::string text =
        readFile(host_->lxcPath() + "/" + env.container() + "/overlay/delta/etc/qabox/app.env");
    std::smatch m;
    if (!std::regex_search(text, m, std::regex("(^|\n)" + key + "='([^']*)'"))) return "";
    return m[2];
  }

  static std::map<std::string, std::unique_ptr<Site>> sites_;
  TestHost* host_ = nullptr;
  std::string remote_;
  std::vector<std::string> deployed_;
};

std::map<std::string, std::unique_ptr<LxcRealApp::Site>> LxcRealApp::sites_;

TEST_P(LxcRealApp, PagesReadSeededRowsThroughTheRouterAndThePrsMigrationRan) {
  auto r = deploy("EXMP-113");
  ASSERT_EQ(r.exitCode, 0) << r.err << host_->cli({"logs", "EXMP-113", "--deploy"}).out;
  auto env = host_->env("EXMP-113");
  ASSERT_TRUE(env);
  EXPECT_EQ(env->state(), v1::Environment::READY) << env->message();
  EXPECT_EQ(env->port(), 8000u);
  for (const char* phase : {"merge", "data", "migrate", "health"}) {
    EXPECT_TRUE(contains(r.err, phase)) << phase << " missing in:\n" << r.err;
  }
  // develop's two migrations and the seed are the dataset's (run in its
  // build, or cached from an earlier test's); the deploy's migrate applied
  // only the pull request's.
  std::string log = host_->cli({"logs", "EXMP-113", "--deploy"}).out;
  size_t mine = log.find("==> migrate:");
  ASSERT_NE(mine, std::string::npos) << log;
  EXPECT_TRUE(contains(log.substr(mine), "applied 003_item_priority.sql")) << log;
  EXPECT_FALSE(contains(log.substr(mine), "applied 001_create_items.sql")) << log;
  EXPECT_FALSE(contains(log.substr(mine), "seeded")) << log;
  auto status = host_->cli({"exec", "EXMP-113", "--", "sh", "-c",
                            "cd /srv/app && set -a && . /etc/qabox/app.env && "
                            "python3 migrate.py --status"});
  size_t m1 = status.out.find("applied 001_create_items.sql");
  size_t m2 = status.out.find("applied 002_item_descriptions.sql");
  size_t m3 = status.out.find("applied 003_item_priority.sql");
  ASSERT_NE(m1, std::string::npos) << status.out << status.err;
  ASSERT_NE(m2, std::string::npos) << status.out;
  ASSERT_NE(m3, std::string::npos) << status.out;
  EXPECT_LT(m1, m2);
  EXPECT_LT(m2, m3);

  auto page = get("EXMP-113");
  ASSERT_EQ(page.status, 200) << page.error << page.body;
  for (const auto& item : kSeeded) EXPECT_TRUE(contains(page.body, item)) << item;
  EXPECT_TRUE(contains(page.body, "Environment EXMP-113")) << page.body;
  // The page that needs migration 003's column.
  auto priority = get("EXMP-113", "/priority");
  EXPECT_EQ(priority.status, 200) << priority.body;
  EXPECT_TRUE(contains(priority.body, "Items by priority")) << priority.body;
  EXPECT_TRUE(contains(priority.body, "<td class=\"priority\">P3</td>")) << priority.body;
  auto health = get("EXMP-113", "/healthz");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.body, "ok\n");

  // Redis: the visit counter counts; the worker's heartbeat reaches the page.
  long first = number(page.body, R"(id="visits">(\d+)<)");
  long second = number(get("EXMP-113").body, R"(id="visits">(\d+)<)");
  EXPECT_GT(first, 0) << page.body;
  EXPECT_EQ(second, first + 1);
  EXPECT_TRUE(
      waitFor(20, [&] { return contains(get("EXMP-113").body, "id=\"worker\">heartbeat"); }))
      << get("EXMP-113").body << host_->cli({"logs", "EXMP-113", "--process", "worker"}).out;
}

TEST_P(LxcRealApp, EachEnvironmentHasADatabaseAndACacheOfItsOwn) {
  ASSERT_NO_FATAL_FAILURE(deployReady("ISO-1"));
  ASSERT_NO_FATAL_FAILURE(deployReady("ISO-2"));
  ASSERT_NO_FATAL_FAILURE(addItem("ISO-1", "only-in-iso-1"));
  auto one = get("ISO-1");
  EXPECT_TRUE(contains(one.body, "only-in-iso-1")) << one.body;
  auto two = get("ISO-2");
  ASSERT_EQ(two.status, 200) << two.error;
  EXPECT_FALSE(contains(two.body, "only-in-iso-1")) << two.body;
  for (const auto& item : kSeeded) EXPECT_TRUE(contains(two.body, item)) << item;
  // ISO-2's counter has seen only its own visit.
  EXPECT_EQ(number(two.body, R"(id="visits">(\d+)<)"), 1) << two.body;
  EXPECT_GE(number(get("ISO-1").body, R"(id="visits">(\d+)<)"), 2);
  // And a write in ISO-2 stays there.
  ASSERT_NO_FATAL_FAILURE(addItem("ISO-2", "only-in-iso-2"));
  EXPECT_FALSE(contains(get("ISO-1").body, "only-in-iso-2"));
}

TEST_P(LxcRealApp, FailingMigrationIsFailedNamingTheMigrateStepAndTheSqlError) {
  // A pull request whose migration 004 breaks half way: the table it made
  // first must not stay (each migration is one transaction).
  std::string work = host_->stateDir() + "/broken";
  ASSERT_EQ(runOrDie({"git", "clone", "-q", "-b", kFeature, remote_, work}).exitCode, 0);
  auto git = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"git", "-C", work, "-c", "user.name=t", "-c", "user.email=t@l"});
    auto r = runOrDie(args);
    EXPECT_EQ(r.exitCode, 0) << r.err;
  };
  {
    std::ofstream(work + "/migrations/004_broken.sql")
        << "CREATE TABLE half_done (id integer);\nINSERT INTO no_such_table VALUES (1);\n";
  }
  git({"checkout", "-q", "-b", "feature/BROKEN"});
  git({"add", "-A"});
  git({"commit", "-qm", "BROKEN: a migration that fails"});
  git({"push", "-q", "origin", "feature/BROKEN"});

  auto r = deploy("BROKEN-1", "feature/BROKEN");
  EXPECT_EQ(r.exitCode, 7) << r.err;
  auto env = host_->env("BROKEN-1");
  ASSERT_TRUE(env);
  EXPECT_EQ(env->state(), v1::Environment::FAILED);
  EXPECT_TRUE(contains(env->message(), "migrate")) << env->message();
  EXPECT_TRUE(contains(env->message(), "relation \"no_such_table\" does not exist"))
      << env->message();
  std::string log = host_->cli({"logs", "BROKEN-1", "--deploy"}).out;
  EXPECT_TRUE(contains(log, "applied 003_item_priority.sql")) << log;
  EXPECT_TRUE(contains(log, "004_broken.sql failed and was rolled back")) << log;
  // The dataset's seed may have run before, in its build (when this is the
  // first deploy of the target); nothing seeds after the failed migration.
  const size_t failedAt = log.find("004_broken.sql failed");
  ASSERT_NE(failedAt, std::string::npos) << log;
  EXPECT_FALSE(contains(log.substr(failedAt), "seeded"))
      << "the seed ran after a failed migration:\n"
      << log;
  // Kept for inspection, with its services: 004 is not recorded, and its
  // first statement was rolled back with it.
  auto status =
      host_->cli({"exec", "BROKEN-1", "--", "sh", "-c",
                  "cd /srv/app && set -a && . /etc/qabox/app.env && python3 migrate.py --status && "
                  "psql -tAc \"SELECT to_regclass('half_done') IS NULL\""});
  EXPECT_TRUE(contains(status.out, "applied 003_item_priority.sql")) << status.out << status.err;
  EXPECT_TRUE(contains(status.out, "pending 004_broken.sql")) << status.out << status.err;
  EXPECT_TRUE(contains(status.out, "\nt\n")) << status.out << status.err;
  EXPECT_EQ(get("BROKEN-1").status, 502);
}

TEST_P(LxcRealApp, KilledPostgresIsRestartedAndTheAppRecovers) {
  ASSERT_NO_FATAL_FAILURE(deployReady("CRASH-1"));
  ASSERT_NO_FATAL_FAILURE(addItem("CRASH-1", "written-before-the-crash"));
  const std::string beat = R"(heartbeat [0-9.]+ s ago, beat (\d+),)";
  ASSERT_TRUE(waitFor(20, [&] { return number(get("CRASH-1").body, beat) > 0; }));
  long beatBefore = number(get("CRASH-1").body, beat);

  // Every postgres process at once, as an OOM kill would (no procps in the
  // image needed).
  auto killed =
      host_->cli({"exec", "CRASH-1", "--", "sh", "-c",
                  "n=0; for p in /proc/[0-9]*; do [ \"$(cat $p/comm 2>/dev/null)\" = postgres ] && "
                  "kill -9 ${p#/proc/} && n=$((n+1)); done; echo killed $n"});
  ASSERT_EQ(killed.exitCode, 0) << killed.err;
  ASSERT_FALSE(contains(killed.out, "killed 0")) << killed.out;
  bool sawDown = false;
  bool back = waitFor(60, [&] {
    auto h = get("CRASH-1", "/healthz");
    if (h.status == 503 && contains(h.body, "database:")) sawDown = true;
    return h.status == 200 && h.body == "ok\n";
  });
  EXPECT_TRUE(sawDown) << "/healthz never named the database while it was down";
  ASSERT_TRUE(back) << get("CRASH-1", "/healthz").body
                    << host_->cli({"logs", "CRASH-1", "--process", "postgres"}).out;
  // Crash recovery kept the committed row; the worker beats again.
  EXPECT_TRUE(contains(get("CRASH-1").body, "written-before-the-crash"));
  EXPECT_TRUE(waitFor(20, [&] { return number(get("CRASH-1").body, beat) > beatBefore + 1; }))
      << get("CRASH-1").body;
  // qabox get shows it restarted (read from the JSON text: its processes
  // field is the services part's).
  std::string got = host_->cli({"get", "CRASH-1", "-o", "json"}).out;
  EXPECT_GE(number(got, R"("name":"postgres"[^}]*"restarts":(\d+))"), 1) << got;
  EXPECT_TRUE(std::regex_search(got, std::regex(R"("name":"postgres"[^}]*"state":"ready")")))
      << got;
  auto pgLog = host_->cli({"logs", "CRASH-1", "--process", "postgres"});
  EXPECT_TRUE(contains(pgLog.out, "automatic recovery in progress")) << pgLog.out << pgLog.err;
  EXPECT_EQ(host_->env("CRASH-1")->state(), v1::Environment::READY);
}

// Documented in scripts/sample-app/README.md: a deploy (also a redeploy) is
// a fresh merge result with fresh data (the dataset's copy, the pull
// request's migrations on top); sleep and wake keep the environment's data.
TEST_P(LxcRealApp, SleepAndWakeKeepDataRedeployResetsItToTheSeedDeleteLeavesNothing) {
  ASSERT_NO_FATAL_FAILURE(deployReady("DATA-1"));
  ASSERT_NO_FATAL_FAILURE(addItem("DATA-1", "written-before-sleep"));
  ASSERT_EQ(host_->cli({"sleep", "DATA-1"}).exitCode, 0);
  EXPECT_EQ(host_->env("DATA-1")->state(), v1::Environment::SLEEPING);
  auto woken = get("DATA-1");  // the router wakes it
  EXPECT_EQ(woken.status, 200) << woken.error << woken.body;
  EXPECT_TRUE(contains(woken.body, "written-before-sleep")) << woken.body;
  EXPECT_EQ(host_->env("DATA-1")->state(), v1::Environment::READY);

  auto r = deploy("DATA-1", kFeature, {"--force"});
  ASSERT_EQ(r.exitCode, 0) << r.err;
  auto fresh = get("DATA-1");
  ASSERT_EQ(fresh.status, 200) << fresh.error;
  EXPECT_FALSE(contains(fresh.body, "written-before-sleep")) << fresh.body;
  for (const auto& item : kSeeded) EXPECT_TRUE(contains(fresh.body, item)) << item;
  // From the dataset, not seeded again.
  EXPECT_TRUE(contains(r.err, "data")) << r.err;
  EXPECT_FALSE(contains(host_->cli({"logs", "DATA-1", "--deploy"}).out, "seeded"));

  auto container = host_->env("DATA-1")->container();
  ASSERT_EQ(host_->cli({"delete", "DATA-1"}).exitCode, 0);
  EXPECT_FALSE(host_->env("DATA-1"));
  EXPECT_TRUE(host_->containers().empty());
  EXPECT_TRUE(host_->overlayDirs().empty());
  EXPECT_TRUE(host_->bridgePorts().empty());
  EXPECT_EQ(host_->leaseCount(), 0);
  EXPECT_FALSE(fs::exists(host_->lxcPath() + "/" + container));
  // Nor its cgroup, in any hierarchy (v1's controllers or v2's).
  std::error_code ec;
  EXPECT_FALSE(fs::exists("/sys/fs/cgroup/lxc.payload." + container));
  for (const auto& h : fs::directory_iterator("/sys/fs/cgroup", ec)) {
    EXPECT_FALSE(fs::exists(h.path() / ("lxc.payload." + container))) << h.path();
  }
  EXPECT_EQ(get("DATA-1").status, 404);
}

TEST_P(LxcRealApp, GeneratedPasswordsNeverReachLogsEventsGetOutputOrTheStateDb) {
  ASSERT_NO_FATAL_FAILURE(deployReady("SECRET-1"));
  ASSERT_NO_FATAL_FAILURE(deployReady("SECRET-2"));
  std::vector<std::string> passwords;
  for (const char* t : {"SECRET-1", "SECRET-2"}) {
    auto env = host_->env(t);
    ASSERT_TRUE(env);
    for (const char* key : {"PGPASSWORD", "REDIS_PASSWORD"}) {
      std::string p = appEnvValue(*env, key);
      EXPECT_TRUE(std::regex_match(p, std::regex("[0-9a-f]{48}"))) << t << " " << key << ": " << p;
      passwords.push_back(p);
    }
  }
  ASSERT_EQ(passwords.size(), 4u);
  for (size_t i = 0; i < passwords.size(); ++i) {
    for (size_t j = i + 1; j < passwords.size(); ++j) EXPECT_NE(passwords[i], passwords[j]);
  }
  ASSERT_EQ(get("SECRET-1").status, 200);  // the app logs in with them

  std::vector<std::pair<std::string, std::string>> said;
  for (const char* t : {"SECRET-1", "SECRET-2"}) {
    for (std::vector<std::string> args : {std::vector<std::string>{"get", t, "-o", "json"},
                                          {"get", t},
                                          {"logs", t, "--deploy"},
                                          {"logs", t},
                                          {"logs", t, "--process", "postgres"},
                                          {"logs", t, "--process", "redis"},
                                          {"events", t, "-o", "json"}}) {
      auto r = host_->cli(args);
      said.emplace_back(args[0] + " " + args.back(), r.out + r.err);
    }
  }
  for (std::vector<std::string> args : {std::vector<std::string>{"list", "-o", "json"},
                                        {"events", "-o", "json"},
                                        {"status", "-o", "json"}}) {
    auto r = host_->cli(args);
    said.emplace_back(args[0], r.out + r.err);
  }
  // Every file of the agent's own (the state DB and its WAL, deploy logs,
  // its log, git work dirs), but not the containers, whose app.env has them.
  std::error_code ec;
  for (fs::recursive_directory_iterator it(host_->stateDir(), ec), end; !ec && it != end;
       it.increment(ec)) {
    if (it->path() == host_->lxcPath() || it->path() == host_->stateDir() + "/images") {
      it.disable_recursion_pending();
      continue;
    }
    std::error_code fileEc;
    if (it->is_regular_file(fileEc) && it->file_size(fileEc) < (64u << 20)) {
      said.emplace_back(it->path().string(), readFile(it->path()));
    }
  }
  EXPECT_FALSE(ec) << "walking the state dir: " << ec.message();
  for (const auto& [where, text] : said) {
    for (const auto& p : passwords) EXPECT_FALSE(contains(text, p)) << "a password in " << where;
  }
}

// [data]: the dataset is seeded once on the target branch and every later
// environment starts from its snapshot; a change to what it depends on
// builds a new one in the background while deploys keep the previous one;
// the previous one goes once no environment is on it. On a target branch of
// its own, so the other tests' dataset is not touched.
TEST_P(LxcRealApp, DatasetIsSeededOnceRebuiltInTheBackgroundAndTheOldOneCollected) {
  const std::string target = "develop-ds";
  std::string work = host_->stateDir() + "/dataset";
  ASSERT_EQ(runOrDie({"git", "clone", "-q", "-b", "develop", remote_, work}).exitCode, 0);
  auto git = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"git", "-C", work, "-c", "user.name=t", "-c", "user.email=t@l"});
    auto r = runOrDie(args);
    EXPECT_EQ(r.exitCode, 0) << r.err;
  };
  git({"push", "-q", "origin", "develop:" + target});
  auto deployOn = [&](const std::string& ticket) {
    deployed_.push_back(ticket);
    auto started = std::chrono::steady_clock::now();
    auto r = host_->cli({"deploy", ticket, "--repo", "sample", "--source", kFeature, "--target",
                         target, "--image", "python"},
                        std::chrono::minutes(5));
    auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::steady_clock::now() - started)
                    .count();
    EXPECT_EQ(r.exitCode, 0) << r.err << host_->cli({"logs", ticket, "--deploy"}).out;
    return std::make_pair(r, took);
  };
  auto dataLayers = [&] {
    std::string json = host_->cli({"image", "ls", "-o", "json"}).out;
    auto lineage = std::regex("\"lineage\":\"sample " + target + "\"");
    return std::distance(std::sregex_iterator(json.begin(), json.end(), lineage),
                         std::sregex_iterator());
  };

  auto [first, firstMs] = deployOn("DS-1");
  EXPECT_TRUE(std::regex_search(first.err, std::regex("data +[0-9.]+s +built"))) << first.err;
  EXPECT_TRUE(contains(host_->cli({"logs", "DS-1", "--deploy"}).out, "seeded 5 new items"));
  auto [second, secondMs] = deployOn("DS-2");
  EXPECT_TRUE(std::regex_search(second.err, std::regex("data +[0-9.]+s +cached"))) << second.err;
  EXPECT_FALSE(contains(host_->cli({"logs", "DS-2", "--deploy"}).out, "seeded"));
  auto page = get("DS-2");
  ASSERT_EQ(page.status, 200) << page.error;
  for (const auto& item : kSeeded) EXPECT_TRUE(contains(page.body, item)) << item;
  std::cerr << "[ realapp ] deploy with the dataset built: " << firstMs
            << " ms, from its snapshot: " << secondMs << " ms (ratio "
            << static_cast<double>(secondMs) / static_cast<double>(firstMs) << ")\n";
  EXPECT_EQ(dataLayers(), 1);
  if (GetParam() == "pool") {
    // The data dir is the environment's btrfs snapshot, not an overlay.
    auto type =
        host_->cli({"exec", "DS-2", "--", "stat", "-f", "-c", "%T", "/var/lib/postgresql/15/main"});
    EXPECT_EQ(type.out, "btrfs\n") << type.err;
  }

  // The target's seed changes: the next deploy starts at once from the
  // previous snapshot while the new one builds behind it.
  {
    std::string seed = readFile(work + "/seed.py");
    size_t at = seed.find("ITEMS = [\n");
    ASSERT_NE(at, std::string::npos) << seed;
    seed.insert(at + 10, "    (\"Dataset v2 item\", \"Added on the target branch.\"),\n");
    std::ofstream(work + "/seed.py", std::ios::trunc) << seed;
  }
  git({"add", "-A"});
  git({"commit", "-qm", "seed: one more item"});
  git({"push", "-q", "origin", "develop:" + target});
  auto [third, thirdMs] = deployOn("DS-3");
  EXPECT_TRUE(std::regex_search(third.err, std::regex("data +[0-9.]+s +previous [0-9a-f]{12} while "
                                                      "[0-9a-f]{12} builds")))
      << third.err;
  EXPECT_FALSE(contains(get("DS-3").body, "Dataset v2 item"));
  EXPECT_TRUE(waitFor(300, [&] { return dataLayers() == 2; }))
      << host_->cli({"events", "-o", "json"}).out << host_->logText();
  auto [fourth, fourthMs] = deployOn("DS-4");
  EXPECT_TRUE(std::regex_search(fourth.err, std::regex("data +[0-9.]+s +cached"))) << fourth.err;
  EXPECT_TRUE(contains(get("DS-4").body, "Dataset v2 item")) << get("DS-4").body;
  std::cerr << "[ realapp ] deploy on the previous dataset: " << thirdMs
            << " ms, on the new one: " << fourthMs << " ms\n";

  // No environment is on the first dataset once DS-1..3 are gone: it goes.
  for (const char* t : {"DS-1", "DS-2", "DS-3"}) ASSERT_EQ(host_->cli({"delete", t}).exitCode, 0);
  EXPECT_EQ(dataLayers(), 1);
  if (GetParam() == "pool") {
    const std::string envs = sites_[GetParam()]->pool->mnt() + "/envs";
    for (const char* c : {"qabox-ds-1", "qabox-ds-2", "qabox-ds-3"}) {
      EXPECT_FALSE(fs::exists(envs + "/" + c)) << c;
    }
    EXPECT_TRUE(fs::exists(envs + "/qabox-ds-4"));
  }
  EXPECT_TRUE(contains(get("DS-4").body, "Dataset v2 item"));
}

INSTANTIATE_TEST_SUITE_P(Storage, LxcRealApp, ::testing::Values("overlay", "pool"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace qabox::testing
