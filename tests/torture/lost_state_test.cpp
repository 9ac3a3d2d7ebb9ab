// Issue 17, a lost database: qabox.db deleted, or overwritten with garbage,
// while environments run. The agent refuses to start (an empty database
// would make its recovery destroy every container) with a message that says
// how to rebuild; `qaboxd --rebuild-state` rebuilds the rows and leases from
// what each container carries about itself (lxc/<container>/qabox.json) and
// the image versions from images/; the next start recovers as usual and no
// address is handed out twice.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "harness.h"

namespace qabox::testing {
namespace {

namespace fs = std::filesystem;

constexpr const char* kServe = "[app]\nstart = \"exec httpd -f -p 80 -h /srv/app\"\nport = 80\n";

struct Seen {
  std::string ticket, repo, source, target, commit, ip, state;
  uint32_t imageVersion = 0;
};

class LxcLostState : public ::testing::Test {
 protected:
  void SetUp() override {
    QABOX_REQUIRE_LXC();
    host_ = std::make_unique<TestHost>();
    git_ = std::make_unique<GitFixture>(host_->stateDir() + "/src");
    git_->write("qabox.toml", kServe);
    git_->write("index.html", "from the repo\n");
    git_->commit("app");
    git_->push("develop");
    git_->checkout("feature/LOST-2", true);
    git_->write("index.html", "from the pull request\n");
    git_->commit("feature");
    git_->push("feature/LOST-2");
    TestHost::Options o;
    o.repos = {{"app", git_->bare()}};
    o.healthTimeout = "10s";
    host_->writeConfig(o);
    host_->startWithBusybox();
  }

  Seen seen(const std::string& ticket) {
    auto e = host_->env(ticket);
    EXPECT_TRUE(e.has_value()) << ticket;
    if (!e) return {};
    return {e->ticket(),
            e->repo(),
            e->source_branch(),
            e->target_branch(),
            e->commit(),
            e->ip(),
            v1::Environment::State_Name(e->state()),
            e->image_version()};
  }

  ProcessResult qaboxd(const std::vector<std::string>& args) {
    RealProcessRunner runner;
    ProcessSpec spec;
    spec.argv = {binDir() + "/agent/daemon/qaboxd", "--config=" + host_->configPath()};
    spec.argv.insert(spec.argv.end(), args.begin(), args.end());
    spec.timeout = std::chrono::seconds(30);
    auto r = runner.run(spec);
    EXPECT_TRUE(r.isOk()) << r.status().message();
    return r ? *r : ProcessResult{};
  }

  HttpReply viaRouter(const std::string& slug) {
    return httpGet("127.0.0.1", host_->routerPort(), "/", slug + "." + host_->domain(),
                   std::chrono::seconds(20));
  }

  // Kills the agent, damages the database with `damage`, and checks the
  // refusal, the rebuild and what the next start serves.
  void loseAndRebuild(const std::function<void(const std::string& db)>& damage,
                      const std::string& refusal, const std::vector<Seen>& before) {
    host_->killDaemon();
    damage(host_->stateDir() + "/qabox.db");
    auto refused = qaboxd({});
    EXPECT_NE(refused.exitCode, 0) << "started on a lost database:\n" << refused.err;
    EXPECT_NE(refused.err.find(refusal), std::string::npos) << refused.err;
    EXPECT_NE(refused.err.find("--rebuild-state"), std::string::npos) << refused.err;
    // The containers are all still there: the refusal touched nothing.
    EXPECT_EQ(host_->containers().size(), before.size()) << refused.err;

    auto rebuilt = qaboxd({"--rebuild-state"});
    ASSERT_EQ(rebuilt.exitCode, 0) << rebuilt.out << rebuilt.err;
    EXPECT_NE(rebuilt.out.find("tokens cannot be rebuilt"), std::string::npos) << rebuilt.out;
    for (const Seen& s : before) EXPECT_NE(rebuilt.out.find(s.ticket), std::string::npos);
    if (std::getenv("QABOX_SHOW")) std::cerr << rebuilt.out;

    ASSERT_NO_FATAL_FAILURE(host_->startDaemon());
    for (const Seen& s : before) {
      Seen now = seen(s.ticket);
      EXPECT_EQ(now.repo, s.repo) << s.ticket;
      EXPECT_EQ(now.source, s.source) << s.ticket;
      EXPECT_EQ(now.target, s.target) << s.ticket;
      EXPECT_EQ(now.commit, s.commit) << s.ticket;
      EXPECT_EQ(now.ip, s.ip) << s.ticket;
      EXPECT_EQ(now.imageVersion, s.imageVersion) << s.ticket;
      EXPECT_EQ(now.state, s.state) << s.ticket;
    }
    EXPECT_EQ(viaRouter("lost-1").status, 200);
    HttpReply repo = viaRouter("lost-2");
    EXPECT_EQ(repo.status, 200);
    EXPECT_NE(repo.body.find("from the pull request"), std::string::npos) << repo.body;
    EXPECT_EQ(host_->violations(), std::vector<std::string>{});
  }

  std::unique_ptr<TestHost> host_;
  std::unique_ptr<GitFixture> git_;
};

TEST_F(LxcLostState, ADeletedOrCorruptDatabaseIsRebuiltFromTheContainers) {
  ASSERT_EQ(host_->cli({"deploy", "LOST-1"}).exitCode, 0);
  auto r = host_->cli(
      {"deploy", "LOST-2", "--repo", "app", "--source", "feature/LOST-2", "--target", "develop"});
  ASSERT_EQ(r.exitCode, 0) << r.err;
  ASSERT_EQ(host_->cli({"deploy", "LOST-3"}).exitCode, 0);
  ASSERT_EQ(host_->cli({"sleep", "LOST-3"}).exitCode, 0);
  std::vector<Seen> before = {seen("LOST-1"), seen("LOST-2"), seen("LOST-3")};
  ASSERT_EQ(before[1].repo, "app");
  ASSERT_FALSE(before[1].commit.empty());
  ASSERT_EQ(before[2].state, "SLEEPING");

  // A rebuild under a running agent is refused, and so is a second agent
  // on the same state dir: one qaboxd per state dir, and it changes nothing.
  auto live = qaboxd({"--rebuild-state"});
  EXPECT_NE(live.exitCode, 0);
  EXPECT_NE(live.out.find("another qaboxd"), std::string::npos) << live.out << live.err;
  auto second = qaboxd({});
  EXPECT_NE(second.exitCode, 0) << "a second agent started on one state dir";
  EXPECT_NE(second.err.find("another qaboxd"), std::string::npos) << second.err;
  EXPECT_NE(second.err.find("qaboxd.lock"), std::string::npos) << second.err;
  EXPECT_EQ(host_->containers().size(), before.size());
  EXPECT_EQ(viaRouter("lost-1").status, 200);
  EXPECT_EQ(seen("LOST-3").state, "SLEEPING");

  loseAndRebuild(
      [](const std::string& db) {
        for (const char* part : {"", "-wal", "-shm"}) fs::remove(db + part);
      },
      "is missing", before);

  loseAndRebuild(
      [](const std::string& db) {
        for (const char* part : {"-wal", "-shm"}) fs::remove(db + part);
        std::ofstream out(db, std::ios::trunc | std::ios::binary);
        for (int i = 0; i < 64 * 1024; ++i) out.put(static_cast<char>((i * 131 + 7) % 251));
      },
      "corrupt", before);
  bool movedAside = false;
  for (const auto& e : fs::directory_iterator(host_->stateDir())) {
    if (e.path().filename().string().starts_with("qabox.db.corrupt-")) movedAside = true;
  }
  EXPECT_TRUE(movedAside) << "the corrupt file is kept for a post-mortem";

  // An empty (zero-length) file: SQLite would open it as a valid empty
  // database, and recovery would destroy every container as an orphan.
  // The refused start has migrated it into an emptied database, which the
  // rebuild treats as lost as well.
  loseAndRebuild(
      [](const std::string& db) {
        for (const char* part : {"-wal", "-shm"}) fs::remove(db + part);
        std::ofstream out(db, std::ios::trunc | std::ios::binary);
      },
      "holds no environment", before);
  for (const auto& e : fs::directory_iterator(host_->stateDir())) {
    EXPECT_NE(e.path().filename().string(), "qabox.db.rebuild") << "the temporary is renamed";
  }

  // A new deploy gets an address no rebuilt environment holds.
  ASSERT_EQ(host_->cli({"deploy", "LOST-4"}).exitCode, 0);
  std::set<std::string> ips;
  for (const Seen& s : before) ips.insert(s.ip);
  EXPECT_FALSE(ips.contains(seen("LOST-4").ip)) << seen("LOST-4").ip;
  EXPECT_EQ(host_->violations(), std::vector<std::string>{});
}

}  // namespace
}  // namespace qabox::testing
