// Issue: the reaper reclaims environments whose branch merged or was deleted,
// that sit idle, or outlived their ttl or max_age. Real LXC containers, a
// local bare repo as the remote, the real daemon and CLI.
#include <google/protobuf/util/json_util.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <thread>

#include "harness.h"

namespace qabox::testing {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;

// Polls instead of asserting a time: the agent only has to get there.
bool eventually(const std::function<bool()>& cond, seconds limit = seconds(15)) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(milliseconds(250));
  }
  return cond();
}

const v1::Reclaim* findReclaim(const v1::ReapResponse& r, const std::string& ticket) {
  for (const auto& d : r.reclaimed()) {
    if (d.ticket() == ticket) return &d;
  }
  return nullptr;
}

std::string joined(const v1::ReapResponse& r) {
  std::string all;
  for (const auto& w : r.warnings()) all += w + "\n";
  return all;
}

class LxcReaper : public ::testing::Test {
 protected:
  void SetUp() override {
    QABOX_REQUIRE_LXC();
    host_ = std::make_unique<TestHost>();
    git_ = std::make_unique<GitFixture>(host_->stateDir() + "/src");
    // No qabox.toml: the busybox image serves /srv/app on port 80.
    git_->write("index.html", "develop\n");
    git_->commit("base");
    git_->push("develop");
  }

  // The schedule is off unless a test turns it on: passes run when asked.
  void start(const std::string& reaperToml = "interval = \"0\"\n") {
    TestHost::Options o;
    o.repos = {{"shop", git_->bare()}};
    o.extraToml = "[reaper]\n" + reaperToml;
    host_->writeConfig(o);
    host_->startDaemon();
    ASSERT_EQ(host_->cli({"image", "build", "busybox"}).exitCode, 0);
  }

  void restart(const std::string& reaperToml) {
    ASSERT_EQ(host_->stopDaemon(), 0);
    TestHost::Options o;
    o.repos = {{"shop", git_->bare()}};
    o.extraToml = "[reaper]\n" + reaperToml;
    host_->writeConfig(o);
    host_->startDaemon();
  }

  // A branch off develop with a commit of its own, pushed.
  void branch(const std::string& name) {
    git_->checkout("develop");
    git_->checkout(name, true);
    git_->write(name + ".txt", name + "\n");
    git_->commit("work on " + name);
    git_->push(name);
    git_->checkout("develop");
  }

  // What the merge button does; returns the merge commit on develop.
  std::string mergeOnRemote(const std::string& source) {
    git_->checkout("develop");
    git_->git({"merge", "--quiet", "--no-ff", "-m", "Merge " + source, source});
    git_->push("develop");
    return git_->head();
  }

  void deployBranch(const std::string& ticket, const std::string& source) {
    auto r =
        host_->cli({"deploy", ticket, "--repo", "shop", "--source", source, "--target", "develop"});
    ASSERT_EQ(r.exitCode, 0) << r.err;
  }

  void deployImage(const std::string& ticket, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"deploy", ticket};
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = host_->cli(args);
    ASSERT_EQ(r.exitCode, 0) << r.err;
  }

  // `qabox reap -o json [args]`, parsed; the test fails when the CLI does.
  v1::ReapResponse reap(std::vector<std::string> args = {}) {
    std::vector<std::string> argv = {"reap", "-o", "json"};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = host_->cli(argv);
    v1::ReapResponse resp;
    EXPECT_EQ(r.exitCode, 0) << r.err;
    if (r.exitCode != 0) return resp;
    google::protobuf::util::JsonParseOptions opts;
    opts.ignore_unknown_fields = true;
    auto s = google::protobuf::util::JsonStringToMessage(r.out, &resp, opts);
    EXPECT_TRUE(s.ok()) << s.ToString() << "\n" << r.out;
    return resp;
  }

  std::string events(const std::string& ticket) {
    auto r = host_->cli({"events", ticket, "-o", "json"});
    EXPECT_EQ(r.exitCode, 0) << r.err;
    return r.out;
  }

  HttpReply viaRouter(const std::string& slug) {
    return httpGet("127.0.0.1", host_->routerPort(), "/", slug + "." + host_->domain());
  }

  std::unique_ptr<TestHost> host_;
  std::unique_ptr<GitFixture> git_;
};

TEST_F(LxcReaper, MergedBranchIsReclaimedAndAnUnmergedOneStays) {
  start();
  branch("feature/MRG-1");
  branch("feature/MRG-2");
  deployBranch("MRG-1", "feature/MRG-1");
  deployBranch("MRG-2", "feature/MRG-2");
  ASSERT_EQ(host_->containers().size(), 2u);
  ASSERT_EQ(viaRouter("mrg-1").status, 200);
  std::string mergeCommit = mergeOnRemote("feature/MRG-1");

  // A dry run names it and changes nothing.
  auto dry = reap({"--dry-run"});
  EXPECT_TRUE(dry.dry_run());
  ASSERT_EQ(dry.reclaimed_size(), 1) << dry.DebugString();
  EXPECT_EQ(dry.reclaimed(0).ticket(), "MRG-1");
  EXPECT_EQ(dry.reclaimed(0).policy(), "merged");
  EXPECT_FALSE(dry.reclaimed(0).done());
  EXPECT_EQ(host_->containers().size(), 2u);
  EXPECT_EQ(host_->leaseCount(), 2);
  ASSERT_TRUE(host_->env("MRG-1"));
  EXPECT_EQ(events("MRG-1").find("\"reap\""), std::string::npos);
  EXPECT_EQ(viaRouter("mrg-1").status, 200);

  auto r = reap();
  EXPECT_FALSE(r.dry_run());
  EXPECT_TRUE(r.warnings().empty()) << joined(r);
  ASSERT_EQ(r.reclaimed_size(), 1) << r.DebugString();
  const v1::Reclaim& d = r.reclaimed(0);
  EXPECT_EQ(d.ticket(), "MRG-1");
  EXPECT_EQ(d.policy(), "merged");
  EXPECT_TRUE(d.done()) << d.error();
  EXPECT_NE(d.reason().find("feature/MRG-1"), std::string::npos) << d.reason();
  EXPECT_NE(d.reason().find(mergeCommit), std::string::npos) << d.reason();

  EXPECT_FALSE(host_->env("MRG-1"));
  auto kept = host_->env("MRG-2");
  ASSERT_TRUE(kept);
  EXPECT_EQ(kept->state(), v1::Environment::READY);
  EXPECT_EQ(host_->containers(), std::vector<std::string>{"qabox-mrg-2"});
  EXPECT_EQ(host_->leaseCount(), 1);
  EXPECT_NE(viaRouter("mrg-1").status, 200);
  EXPECT_EQ(viaRouter("mrg-2").status, 200);

  std::string log = events("MRG-1");
  EXPECT_NE(log.find("\"reap\""), std::string::npos) << log;
  EXPECT_NE(log.find("merged: "), std::string::npos) << log;
  EXPECT_NE(log.find(mergeCommit), std::string::npos) << log;
  EXPECT_EQ(events("MRG-2").find("\"reap\""), std::string::npos);

  // Nothing more is due.
  EXPECT_EQ(reap().reclaimed_size(), 0);
  EXPECT_EQ(host_->containers().size(), 1u);
}

TEST_F(LxcReaper, EnvironmentsSayWhenTheirTargetMovedOnUntilTheyDeployAgain) {
  start();
  branch("feature/STL-1");
  branch("feature/STL-2");
  deployBranch("STL-1", "feature/STL-1");
  deployBranch("STL-2", "feature/STL-2");
  auto level = host_->env("STL-2");
  ASSERT_TRUE(level);
  EXPECT_EQ(level->behind(), 0u);
  EXPECT_EQ(level->target_head(), level->target_commit());

  // Another change lands on develop; the next look at the mirror (here a
  // reap pass, which fetches) sees both environments behind by one.
  git_->checkout("develop");
  git_->write("hotfix.txt", "hotfix\n");
  git_->commit("hotfix on develop");
  git_->push("develop");
  const std::string hotfix = git_->head();
  EXPECT_EQ(reap().reclaimed_size(), 0);
  for (const char* ticket : {"STL-1", "STL-2"}) {
    auto e = host_->env(ticket);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->behind(), 1u) << ticket;
    EXPECT_EQ(e->target_head(), hotfix) << ticket;
    EXPECT_EQ(e->state(), v1::Environment::READY) << ticket;
  }
  auto list = host_->cli({"list"});
  ASSERT_EQ(list.exitCode, 0) << list.err;
  EXPECT_NE(list.out.find("behind develop by 1"), std::string::npos) << list.out;
  auto get = host_->cli({"get", "STL-2"});
  EXPECT_NE(get.out.find("behind develop by 1 (deploy again"), std::string::npos) << get.out;
  EXPECT_NE(events("STL-2").find("develop moved to " + hotfix.substr(0, 12)), std::string::npos);
  EXPECT_EQ(viaRouter("stl-2").status, 200);

  // Deploying again merges the new head: level again, and serving it.
  deployBranch("STL-1", "feature/STL-1");
  auto redeployed = host_->env("STL-1");
  ASSERT_TRUE(redeployed);
  EXPECT_EQ(redeployed->behind(), 0u);
  EXPECT_EQ(redeployed->target_commit(), hotfix);
  EXPECT_EQ(host_->env("STL-2")->behind(), 1u);

  // Two more on develop: a deploy of STL-1 fetches, and STL-2 learns it
  // without a reap pass.
  for (const char* f : {"a.txt", "b.txt"}) {
    git_->write(f, f);
    git_->commit(std::string("work ") + f);
  }
  git_->push("develop");
  deployBranch("STL-1", "feature/STL-1");
  EXPECT_EQ(host_->env("STL-1")->behind(), 0u);
  EXPECT_EQ(host_->env("STL-2")->behind(), 3u);
  EXPECT_EQ(host_->env("STL-2")->target_head(), git_->head());
}

TEST_F(LxcReaper, DeletedBranchIsReclaimedUnlessReclaimDeletedIsOff) {
  start("interval = \"0\"\nreclaim_deleted = false\n");
  branch("feature/DEL-1");
  deployBranch("DEL-1", "feature/DEL-1");
  git_->deleteRemoteBranch("feature/DEL-1");

  auto r = reap();
  EXPECT_EQ(r.reclaimed_size(), 0) << r.DebugString();
  EXPECT_TRUE(host_->env("DEL-1"));
  EXPECT_EQ(host_->containers().size(), 1u);

  restart("interval = \"0\"\n");
  r = reap();
  ASSERT_EQ(r.reclaimed_size(), 1) << r.DebugString();
  EXPECT_EQ(r.reclaimed(0).ticket(), "DEL-1");
  EXPECT_EQ(r.reclaimed(0).policy(), "merged");
  EXPECT_TRUE(r.reclaimed(0).done()) << r.reclaimed(0).error();
  EXPECT_NE(r.reclaimed(0).reason().find("was deleted from repo shop"), std::string::npos)
      << r.reclaimed(0).reason();
  EXPECT_FALSE(host_->env("DEL-1"));
  EXPECT_TRUE(host_->containers().empty());
  EXPECT_EQ(host_->leaseCount(), 0);
}

// Issue 12, item 8, as reported: develop moved on after the branch was cut,
// so the deploy was qabox's own merge commit; the pull request was merged with
// --no-ff and its branch deleted (GitHub's "automatically delete head
// branches"). With reclaim_deleted = false it was never seen merged.
TEST_F(LxcReaper, MergedNoFfAndDeletedBranchIsSeenMergedByItsOwnHead) {
  start("interval = \"0\"\nreclaim_deleted = false\n");
  branch("feature/DEMO-7");
  git_->checkout("feature/DEMO-7");
  std::string sourceHead = git_->head();
  git_->checkout("develop");
  git_->write("other.txt", "develop moved on\n");
  git_->commit("develop moved on");
  git_->push("develop");
  std::string targetHead = git_->head();
  deployBranch("DEMO-7", "feature/DEMO-7");
  auto env = host_->env("DEMO-7");
  ASSERT_TRUE(env);
  ASSERT_NE(env->commit(), sourceHead) << "the deploy must be qabox's merge commit";
  EXPECT_EQ(env->source_commit(), sourceHead);
  EXPECT_EQ(env->target_commit(), targetHead);
  auto shown = host_->cli({"get", "DEMO-7"});
  EXPECT_NE(shown.out.find(sourceHead), std::string::npos) << shown.out;

  std::string mergeCommit = mergeOnRemote("feature/DEMO-7");
  git_->deleteRemoteBranch("feature/DEMO-7");

  auto plain = host_->cli({"reap", "--dry-run"});
  EXPECT_EQ(plain.exitCode, 0) << plain.err;
  EXPECT_EQ(plain.out.find("Nothing would be reclaimed"), std::string::npos) << plain.out;
  auto dry = reap({"--dry-run"});
  ASSERT_EQ(dry.reclaimed_size(), 1) << dry.DebugString();
  EXPECT_EQ(dry.reclaimed(0).policy(), "merged");
  EXPECT_NE(dry.reclaimed(0).reason().find(mergeCommit), std::string::npos)
      << dry.reclaimed(0).reason();

  auto r = reap();
  ASSERT_EQ(r.reclaimed_size(), 1) << r.DebugString();
  EXPECT_TRUE(r.reclaimed(0).done()) << r.reclaimed(0).error();
  EXPECT_FALSE(host_->env("DEMO-7"));
  EXPECT_TRUE(host_->containers().empty());
  EXPECT_EQ(host_->leaseCount(), 0);
}

// Issue 12, item 7: a reap pass read the row while a redeploy held the
// ticket's lock with the row not yet DEPLOYING (here: waking the sleeping
// environment, whose app takes seconds to answer), decided "idle", waited
// for the lock, and deleted what the redeploy had just made READY.
TEST_F(LxcReaper, ReapDuringARedeployOfAnIdleEnvironmentLeavesItReady) {
  git_->write("qabox.toml", "[app]\nstart = \"sleep 4; exec httpd -f -p 80 -h /srv/app\"\n");
  git_->commit("slow app");
  git_->push("develop");
  start("interval = \"0\"\nidle_after = \"3s\"\n");
  branch("feature/RACE-1");
  deployBranch("RACE-1", "feature/RACE-1");
  auto slept = host_->cli({"sleep", "RACE-1"});
  ASSERT_EQ(slept.exitCode, 0) << slept.err;
  std::this_thread::sleep_for(seconds(4));  // idle_after has passed
  git_->checkout("feature/RACE-1");
  git_->write("RACE-1.txt", "second\n");
  git_->commit("second commit");
  git_->push("feature/RACE-1");
  git_->checkout("develop");
  std::string before = host_->env("RACE-1")->commit();

  int pid = host_->cliAsync(
      {"deploy", "RACE-1", "--repo", "shop", "--source", "feature/RACE-1", "--target", "develop"});
  ASSERT_GT(pid, 0);
  // The redeploy now holds the lock and waits for the woken app (4 s) with
  // the row still SLEEPING: the reaper sees it idle.
  std::this_thread::sleep_for(milliseconds(1500));
  auto during = host_->env("RACE-1");
  ASSERT_TRUE(during);
  EXPECT_EQ(during->state(), v1::Environment::SLEEPING) << "the race window was missed";
  auto r = reap({"--policy", "idle"});
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);

  EXPECT_EQ(r.reclaimed_size(), 0) << r.DebugString();
  auto after = host_->env("RACE-1");
  ASSERT_TRUE(after) << "reaped right after the redeploy reported READY";
  EXPECT_EQ(after->state(), v1::Environment::READY);
  EXPECT_NE(after->commit(), before);
  EXPECT_EQ(host_->containers().size(), 1u);
  EXPECT_EQ(viaRouter("race-1").status, 200);
  EXPECT_EQ(events("RACE-1").find("\"reap\""), std::string::npos);
}

TEST_F(LxcReaper, IdleIsReclaimedWhileBusyAndPinnedStay) {
  start("interval = \"0\"\nidle_after = \"4s\"\n");
  deployImage("IDLE-1");
  deployImage("BUSY-1");
  deployImage("PIN-1");
  auto pin = host_->cli({"pin", "PIN-1"});
  ASSERT_EQ(pin.exitCode, 0) << pin.err;
  ASSERT_TRUE(host_->env("PIN-1")->pinned());

  // Requests through the router keep BUSY-1 in use until the pass; the others
  // go idle meanwhile.
  auto until = std::chrono::steady_clock::now() + seconds(6);
  while (std::chrono::steady_clock::now() < until) {
    ASSERT_EQ(viaRouter("busy-1").status, 200);
    std::this_thread::sleep_for(milliseconds(200));
  }
  auto r = reap();
  ASSERT_EQ(r.reclaimed_size(), 1) << r.DebugString();
  EXPECT_EQ(r.reclaimed(0).ticket(), "IDLE-1");
  EXPECT_EQ(r.reclaimed(0).policy(), "idle");
  EXPECT_NE(r.reclaimed(0).reason().find("idle_after is 4s"), std::string::npos)
      << r.reclaimed(0).reason();
  EXPECT_FALSE(host_->env("IDLE-1"));
  EXPECT_TRUE(host_->env("BUSY-1"));
  EXPECT_TRUE(host_->env("PIN-1"));
  EXPECT_EQ(host_->containers().size(), 2u);
  EXPECT_EQ(host_->leaseCount(), 2);

  auto unpin = host_->cli({"unpin", "PIN-1"});
  ASSERT_EQ(unpin.exitCode, 0) << unpin.err;
  r = reap({"--policy", "idle"});
  const v1::Reclaim* d = findReclaim(r, "PIN-1");
  ASSERT_NE(d, nullptr) << r.DebugString();
  EXPECT_EQ(d->policy(), "idle");
  EXPECT_TRUE(d->done()) << d->error();
  EXPECT_FALSE(host_->env("PIN-1"));
}

TEST_F(LxcReaper, TtlAndMaxAgeRunOut) {
  start("interval = \"0\"\nidle_after = \"0\"\nmax_age = \"5s\"\n");
  deployImage("TTL-1", {"--ttl", "2s"});
  deployImage("AGE-1");

  v1::ReapResponse r;
  ASSERT_TRUE(eventually([&] {
    r = reap({"--policy", "ttl"});
    return r.reclaimed_size() > 0;
  })) << "TTL-1 was never reclaimed";
  // The filter keeps AGE-1 out of this pass whatever its age.
  ASSERT_EQ(r.reclaimed_size(), 1) << r.DebugString();
  EXPECT_EQ(r.reclaimed(0).ticket(), "TTL-1");
  EXPECT_EQ(r.reclaimed(0).policy(), "ttl");
  EXPECT_NE(r.reclaimed(0).reason().find("deployed with ttl 2s"), std::string::npos)
      << r.reclaimed(0).reason();
  EXPECT_FALSE(host_->env("TTL-1"));
  EXPECT_TRUE(host_->env("AGE-1"));

  ASSERT_TRUE(eventually([&] {
    r = reap();
    return r.reclaimed_size() > 0;
  })) << "AGE-1 was never reclaimed";
  ASSERT_EQ(r.reclaimed_size(), 1) << r.DebugString();
  EXPECT_EQ(r.reclaimed(0).ticket(), "AGE-1");
  EXPECT_EQ(r.reclaimed(0).policy(), "max_age");
  EXPECT_NE(r.reclaimed(0).reason().find("max_age is 5s"), std::string::npos)
      << r.reclaimed(0).reason();
  EXPECT_TRUE(host_->containers().empty());
  EXPECT_EQ(host_->leaseCount(), 0);
}

TEST_F(LxcReaper, UnreachableRemoteReclaimsNothingByBranchAndSaysWhy) {
  start();
  branch("feature/NET-1");
  branch("feature/NET-2");
  deployBranch("NET-1", "feature/NET-1");
  deployBranch("NET-2", "feature/NET-2");
  mergeOnRemote("feature/NET-1");
  git_->deleteRemoteBranch("feature/NET-2");
  std::string bare = git_->bare();
  std::string moved = bare + ".away";
  fs::rename(bare, moved);

  auto r = reap();
  EXPECT_EQ(r.reclaimed_size(), 0) << r.DebugString();
  ASSERT_EQ(r.warnings_size(), 1) << joined(r);
  EXPECT_NE(r.warnings(0).find("repo shop"), std::string::npos) << r.warnings(0);
  EXPECT_NE(r.warnings(0).find("cannot fetch"), std::string::npos) << r.warnings(0);
  EXPECT_TRUE(host_->env("NET-1"));
  EXPECT_TRUE(host_->env("NET-2"));
  EXPECT_EQ(host_->containers().size(), 2u);
  // The CLI's table output shows the warning too.
  auto plain = host_->cli({"reap", "--dry-run"});
  EXPECT_EQ(plain.exitCode, 0) << plain.err;
  EXPECT_NE(plain.err.find("repo shop"), std::string::npos) << plain.err;

  // Back online, the same pass judges both.
  fs::rename(moved, bare);
  r = reap();
  EXPECT_TRUE(r.warnings().empty()) << joined(r);
  ASSERT_EQ(r.reclaimed_size(), 2) << r.DebugString();
  ASSERT_NE(findReclaim(r, "NET-1"), nullptr);
  ASSERT_NE(findReclaim(r, "NET-2"), nullptr);
  EXPECT_EQ(findReclaim(r, "NET-1")->policy(), "merged");
  EXPECT_NE(findReclaim(r, "NET-2")->reason().find("deleted"), std::string::npos);
  EXPECT_TRUE(host_->containers().empty());
  EXPECT_EQ(host_->leaseCount(), 0);
}

TEST_F(LxcReaper, ScheduledPassReclaimsOnItsOwn) {
  start("interval = \"1s\"\n");
  branch("feature/SCH-1");
  branch("feature/SCH-2");
  deployBranch("SCH-1", "feature/SCH-1");
  deployBranch("SCH-2", "feature/SCH-2");
  std::string mergeCommit = mergeOnRemote("feature/SCH-1");

  ASSERT_TRUE(eventually([&] { return !host_->env("SCH-1"); }))
      << "no scheduled pass reclaimed SCH-1";
  EXPECT_EQ(host_->containers(), std::vector<std::string>{"qabox-sch-2"});
  EXPECT_EQ(host_->leaseCount(), 1);
  std::string log = events("SCH-1");
  EXPECT_NE(log.find("qaboxd/reaper"), std::string::npos) << log;
  EXPECT_NE(log.find(mergeCommit), std::string::npos) << log;
  EXPECT_TRUE(host_->env("SCH-2"));
}

}  // namespace
}  // namespace qabox::testing
