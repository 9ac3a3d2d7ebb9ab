#include "reaper/reaper.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <future>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include "core/ticket.h"
#include "daemon/options.h"
#include "fakes/fake_time.h"
#include "store/paths.h"
#include "unit/reaper/git_fixture.h"

namespace qabox {
namespace {

namespace fs = std::filesystem;
using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

const TimePoint kNow = fromUnixMillis(1'700'000'000'000);
constexpr const char* kSha1 = "1111111111111111111111111111111111111111";
constexpr const char* kSha2 = "2222222222222222222222222222222222222222";

// A READY environment deployed an hour ago from feature/<ticket> into develop,
// used a minute ago: due for nothing under the default policy.
Environment makeEnv(const std::string& ticket, const std::string& repo = "shop") {
  Environment e;
  e.ticket = ticket;
  auto t = parseTicket(ticket);
  e.slug = t ? t->slug : ticket;
  e.container = containerNameFor(e.slug);
  e.state = EnvState::kReady;
  e.spec.repo = repo;
  e.spec.sourceBranch = "feature/" + ticket;
  e.spec.targetBranch = "develop";
  e.commit = kSha1;
  e.createdAt = kNow - hours(1);
  e.updatedAt = kNow - hours(1);
  e.deployedAt = kNow - hours(1);
  e.lastAccessAt = kNow - minutes(1);
  return e;
}

BranchState mergedBranch() {
  BranchState b;
  b.sourceExists = true;
  b.sourceHead = kSha1;
  b.targetHead = kSha2;
  b.merged = true;
  b.containedIn = kSha2;
  return b;
}

BranchState openBranch() {
  BranchState b;
  b.sourceExists = true;
  b.sourceHead = kSha1;
  b.targetHead = kSha2;
  return b;
}

BranchState deletedBranch() {
  BranchState b;
  b.sourceExists = false;
  b.sourceHead = kSha1;
  b.targetHead = kSha2;
  return b;
}

// ---------------------------------------------------------------- decide()

class DecideTest : public ::testing::Test {
 protected:
  Config::Reaper cfg_;  // defaults: idle 72h, max_age 336h, merged and deleted on
};

TEST_F(DecideTest, FreshEnvironmentIsNotDue) {
  BranchState open = openBranch();
  EXPECT_FALSE(decide(makeEnv("EXMP-1"), cfg_, kNow, &open, ""));
  EXPECT_FALSE(decide(makeEnv("EXMP-1"), cfg_, kNow, nullptr, ""));
}

TEST_F(DecideTest, MergedBranchNamesTheContainingCommit) {
  BranchState merged = mergedBranch();
  auto d = decide(makeEnv("EXMP-1"), cfg_, kNow, &merged, "");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->ticket, "EXMP-1");
  EXPECT_EQ(d->policy, "merged");
  EXPECT_THAT(d->reason, HasSubstr("feature/EXMP-1"));
  EXPECT_THAT(d->reason, HasSubstr("merged into develop"));
  EXPECT_THAT(d->reason, HasSubstr(kSha2));
  EXPECT_FALSE(d->done);
}

TEST_F(DecideTest, ReclaimMergedOffKeepsMergedBranches) {
  cfg_.reclaimMerged = false;
  BranchState merged = mergedBranch();
  EXPECT_FALSE(decide(makeEnv("EXMP-1"), cfg_, kNow, &merged, ""));
  // Merged and then deleted is still merged: reclaim_deleted does not apply.
  merged.sourceExists = false;
  EXPECT_FALSE(decide(makeEnv("EXMP-1"), cfg_, kNow, &merged, ""));
}

TEST_F(DecideTest, DeletedBranchIsReclaimedUnderMergedPolicy) {
  BranchState deleted = deletedBranch();
  auto d = decide(makeEnv("EXMP-1"), cfg_, kNow, &deleted, "");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->policy, "merged");
  EXPECT_THAT(d->reason, HasSubstr("feature/EXMP-1 was deleted from repo shop"));
}

TEST_F(DecideTest, ReclaimDeletedOffKeepsDeletedBranches) {
  cfg_.reclaimDeleted = false;
  BranchState deleted = deletedBranch();
  EXPECT_FALSE(decide(makeEnv("EXMP-1"), cfg_, kNow, &deleted, ""));
}

TEST_F(DecideTest, MergedThenDeletedIsReportedAsMerged) {
  BranchState b = mergedBranch();
  b.sourceExists = false;
  cfg_.reclaimDeleted = false;
  auto d = decide(makeEnv("EXMP-1"), cfg_, kNow, &b, "");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->policy, "merged");
  EXPECT_THAT(d->reason, HasSubstr(kSha2));
  EXPECT_THAT(d->reason, HasSubstr("deleted"));
}

TEST_F(DecideTest, UnknownBranchStateNeverReclaimsAsMerged) {
  // Null is what a failed fetch gives: a stale mirror must not decide.
  EXPECT_FALSE(decide(makeEnv("EXMP-1"), cfg_, kNow, nullptr, ""));
  EXPECT_FALSE(decide(makeEnv("EXMP-1"), cfg_, kNow, nullptr, "merged"));
}

TEST_F(DecideTest, BranchDeployedOntoItselfIsNeverMerged) {
  Environment e = makeEnv("EXMP-1");
  e.spec.sourceBranch = "develop";
  BranchState merged = mergedBranch();
  EXPECT_FALSE(decide(e, cfg_, kNow, &merged, ""));
}

TEST_F(DecideTest, EnvironmentWithoutRepoIsNeverMerged) {
  Environment e = makeEnv("EXMP-1", "");
  BranchState merged = mergedBranch();
  EXPECT_FALSE(decide(e, cfg_, kNow, &merged, ""));
}

TEST_F(DecideTest, TtlRunsOutAtExpiresAt) {
  Environment e = makeEnv("EXMP-1");
  e.spec.ttl = hours(48);
  e.expiresAt = kNow + milliseconds(1);
  EXPECT_FALSE(decide(e, cfg_, kNow, nullptr, ""));
  e.expiresAt = kNow;
  auto d = decide(e, cfg_, kNow, nullptr, "");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->policy, "ttl");
  EXPECT_THAT(d->reason, HasSubstr("ttl ran out at 2023-11-14T22:13:20Z"));
  EXPECT_THAT(d->reason, HasSubstr("(deployed with ttl 2d)"));
}

TEST_F(DecideTest, NoTtlNoExpiry) {
  Environment e = makeEnv("EXMP-1");
  e.createdAt = e.deployedAt = kNow - hours(24 * 365);
  e.lastAccessAt = kNow;
  cfg_.maxAge = milliseconds(0);
  EXPECT_FALSE(decide(e, cfg_, kNow, nullptr, ""));
  EXPECT_FALSE(decide(e, cfg_, kNow, nullptr, "ttl"));
}

TEST_F(DecideTest, MaxAgeCountsFromCreationWhateverTheUse) {
  Environment e = makeEnv("EXMP-1");
  e.createdAt = kNow - hours(336);
  e.deployedAt = kNow - minutes(5);
  e.lastAccessAt = kNow;
  auto d = decide(e, cfg_, kNow, nullptr, "");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->policy, "max_age");
  EXPECT_THAT(d->reason, HasSubstr("max_age is 14d"));
  e.createdAt = kNow - hours(335);
  EXPECT_FALSE(decide(e, cfg_, kNow, nullptr, ""));
}

TEST_F(DecideTest, IdleUsesTheLatestOfAccessDeployAndCreation) {
  Environment e = makeEnv("EXMP-1");
  e.createdAt = kNow - hours(100);
  e.deployedAt = kNow - hours(80);
  e.lastAccessAt = kNow - hours(71);  // used recently: not idle
  EXPECT_FALSE(decide(e, cfg_, kNow, nullptr, ""));

  e.lastAccessAt = kNow - hours(90);  // old use, old deploy: idle since the deploy
  auto d = decide(e, cfg_, kNow, nullptr, "");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->policy, "idle");
  EXPECT_THAT(d->reason, HasSubstr("(3d8h)"));
  EXPECT_THAT(d->reason, HasSubstr("idle_after is 3d"));

  e.deployedAt = kNow - hours(2);  // a redeploy counts as use
  EXPECT_FALSE(decide(e, cfg_, kNow, nullptr, ""));

  e.lastAccessAt.reset();  // never requested: the deploy counts
  EXPECT_FALSE(decide(e, cfg_, kNow, nullptr, ""));
  e.deployedAt = kNow - hours(73);
  EXPECT_TRUE(decide(e, cfg_, kNow, nullptr, ""));

  // A row that never finished a deploy has no deploy time: creation counts.
  e.deployedAt = TimePoint{};
  e.createdAt = kNow - hours(1);
  EXPECT_FALSE(decide(e, cfg_, kNow, nullptr, ""));
}

TEST_F(DecideTest, ZeroIdleAfterOrMaxAgeTurnsThePolicyOff) {
  Environment e = makeEnv("EXMP-1");
  e.createdAt = e.deployedAt = kNow - hours(24 * 400);
  e.lastAccessAt.reset();
  cfg_.idleAfter = milliseconds(0);
  cfg_.maxAge = milliseconds(0);
  EXPECT_FALSE(decide(e, cfg_, kNow, nullptr, ""));
}

TEST_F(DecideTest, PinnedIsExemptFromEveryPolicy) {
  Environment e = makeEnv("EXMP-1");
  e.pinned = true;
  e.createdAt = e.deployedAt = kNow - hours(24 * 400);
  e.lastAccessAt.reset();
  e.expiresAt = kNow - hours(1);
  BranchState merged = mergedBranch();
  BranchState deleted = deletedBranch();
  for (const char* filter : {"", "merged", "idle", "ttl", "max_age"}) {
    EXPECT_FALSE(decide(e, cfg_, kNow, &merged, filter)) << filter;
    EXPECT_FALSE(decide(e, cfg_, kNow, &deleted, filter)) << filter;
  }
  e.pinned = false;
  EXPECT_TRUE(decide(e, cfg_, kNow, &merged, ""));
}

TEST_F(DecideTest, EnvironmentsBeingWorkedOnAreNeverReclaimed) {
  Environment e = makeEnv("EXMP-1");
  e.createdAt = e.deployedAt = kNow - hours(24 * 400);
  e.lastAccessAt.reset();
  e.expiresAt = kNow - hours(1);
  BranchState merged = mergedBranch();
  for (EnvState s : {EnvState::kCreating, EnvState::kDeploying, EnvState::kDeleting}) {
    e.state = s;
    EXPECT_FALSE(decide(e, cfg_, kNow, &merged, "")) << stateName(s);
  }
  for (EnvState s : {EnvState::kReady, EnvState::kFailed, EnvState::kSleeping}) {
    e.state = s;
    EXPECT_TRUE(decide(e, cfg_, kNow, &merged, "")) << stateName(s);
  }
}

TEST_F(DecideTest, PolicyFilterPicksOnePolicy) {
  Environment e = makeEnv("EXMP-1");
  e.createdAt = e.deployedAt = kNow - hours(24 * 400);
  e.lastAccessAt.reset();
  e.expiresAt = kNow - hours(1);
  BranchState merged = mergedBranch();

  EXPECT_EQ(decide(e, cfg_, kNow, &merged, "")->policy, "merged");  // merged comes first
  EXPECT_EQ(decide(e, cfg_, kNow, &merged, "merged")->policy, "merged");
  EXPECT_EQ(decide(e, cfg_, kNow, &merged, "ttl")->policy, "ttl");
  EXPECT_EQ(decide(e, cfg_, kNow, &merged, "max_age")->policy, "max_age");
  EXPECT_EQ(decide(e, cfg_, kNow, &merged, "idle")->policy, "idle");
  EXPECT_EQ(decide(e, cfg_, kNow, nullptr, "")->policy, "ttl");
  EXPECT_FALSE(decide(e, cfg_, kNow, nullptr, "merged"));
  EXPECT_FALSE(decide(e, cfg_, kNow, &merged, "sleep"));
}

TEST(CheckPolicyTest, NamesTheAllowedValues) {
  for (const char* ok : {"", "merged", "idle", "ttl", "max_age"}) {
    EXPECT_TRUE(checkPolicy(ok).isOk()) << ok;
  }
  Status s = checkPolicy("maxage");
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("\"maxage\""));
  EXPECT_THAT(s.message(), HasSubstr("merged, idle, ttl, max_age"));
}

// ---------------------------------------------------------------- passes

struct ReclaimCall {
  std::string ticket;
  std::string why;
};

// A real SQLite store, real bare remotes and mirrors; a fake delete path.
class ReaperPassTest : public ::testing::Test {
 protected:
  void SetUp() override {
    state_ = tmp_.path() + "/state";
    fs::create_directories(state_);
    auto store = openSqliteStore(paths::database(state_));
    ASSERT_TRUE(store.isOk()) << store.status().toString();
    store_ = std::move(store).value();
    shop_ = std::make_unique<test::GitRemote>(cli_, tmp_.path() + "/shop");
    config_.stateDir = state_;
    config_.repos = {{"shop", shop_->url()}};
    git_ = std::make_unique<GitRepos>(runner_, state_, std::chrono::seconds(30));
  }

  std::unique_ptr<Reaper> makeReaper(GitRepos* git) {
    return std::make_unique<Reaper>(
        reaperOptions(config_), *store_, git,
        [this](const std::string& ticket, const std::string& why,
               const Reaper::StillDueFn& stillDue) { return reclaim(ticket, why, stillDue); },
        time_);
  }
  std::unique_ptr<Reaper> makeReaper() { return makeReaper(git_.get()); }

  // What the delete path does to the store, or the failure asked for. Like
  // EnvironmentManager::remove(), it reads the row again "under the lock"
  // (after the hook, which stands for whatever held it) and asks stillDue.
  Status reclaim(const std::string& ticket, const std::string& why,
                 const Reaper::StillDueFn& stillDue) {
    std::function<void(const std::string&)> hook;
    {
      std::lock_guard lock(mu_);
      calls_.push_back({ticket, why});
      hook = onReclaim_;
      if (failing_.count(ticket)) return internalError("destroying qabox-x: device busy");
    }
    if (hook) hook(ticket);
    auto t = parseTicket(ticket);
    if (!t) return t.status();
    auto row = store_->getEnvironment(t->slug);
    if (!row) return row.status();
    if (!row->has_value()) return notFound("ticket " + ticket + ": no environment");
    QABOX_RETURN_IF_ERROR(stillDue(**row));
    {
      std::lock_guard lock(mu_);
      deleted_.push_back(ticket);
    }
    return store_->deleteEnvironment(t->slug);
  }

  std::vector<std::string> deleted() {
    std::lock_guard lock(mu_);
    return deleted_;
  }

  std::vector<ReclaimCall> calls() {
    std::lock_guard lock(mu_);
    return calls_;
  }

  // An environment deployed the way a deploy would: the merge result of
  // its branch into develop, computed by the mirror.
  Environment deployed(const std::string& ticket, const std::string& repoName = "shop") {
    Environment e = makeEnv(ticket, repoName);
    const RepoConfig* repo = config_.findRepo(repoName);
    if (repo != nullptr) {
      auto m = git_->merge(*repo, e.spec.sourceBranch, e.spec.targetBranch);
      EXPECT_TRUE(m.isOk()) << m.status().toString();
      if (m) {
        e.commit = m->commit;
        e.sourceCommit = m->sourceHead;
        e.targetCommit = m->targetHead;
      }
    }
    put(e);
    return e;
  }

  void put(const Environment& e) {
    Status s = store_->putEnvironment(e);
    ASSERT_TRUE(s.isOk()) << s.toString();
  }

  // Past the environment's ttl, and nothing else.
  Environment expired(const std::string& ticket) {
    Environment e = makeEnv(ticket);
    e.spec.repo.clear();
    e.spec.ttl = hours(1);
    e.expiresAt = kNow - minutes(1);
    put(e);
    return e;
  }

  bool inStore(const std::string& ticket) {
    auto t = parseTicket(ticket);
    auto e = store_->getEnvironment(t->slug);
    return e.isOk() && e->has_value();
  }

  std::vector<Event> reapEvents(const std::string& ticket) {
    auto events = store_->listEvents(ticket, 100);
    EXPECT_TRUE(events.isOk());
    std::vector<Event> out;
    if (!events) return out;
    for (const auto& e : *events) {
      if (e.action == "reap") out.push_back(e);
    }
    return out;
  }

  static const ReapDecision* find(const ReapReport& r, const std::string& ticket) {
    for (const auto& d : r.reclaimed) {
      if (d.ticket == ticket) return &d;
    }
    return nullptr;
  }

  test::TempDir tmp_;
  test::GitCli cli_{tmp_.path()};
  test::CountingRunner runner_;
  std::string state_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<test::GitRemote> shop_;
  Config config_;
  std::unique_ptr<GitRepos> git_;
  FakeTime time_{kNow};

  std::mutex mu_;
  std::vector<ReclaimCall> calls_;
  std::set<std::string> failing_;
  std::vector<std::string> deleted_;
  std::function<void(const std::string&)> onReclaim_;
};

TEST_F(ReaperPassTest, MergedBranchIsReclaimedWithTheCommitThatContainsIt) {
  shop_->createBranch("feature/EXMP-1");
  shop_->createBranch("feature/EXMP-2");
  deployed("EXMP-1");
  deployed("EXMP-2");
  std::string mergeCommit = shop_->merge("feature/EXMP-1");

  auto reaper = makeReaper();
  auto r = reaper->runOnce(false, "", "alice");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_FALSE(r->dryRun);
  EXPECT_TRUE(r->warnings.empty()) << r->warnings.front();
  ASSERT_EQ(r->reclaimed.size(), 1u);
  const ReapDecision& d = r->reclaimed[0];
  EXPECT_EQ(d.ticket, "EXMP-1");
  EXPECT_EQ(d.policy, "merged");
  EXPECT_THAT(d.reason, HasSubstr(mergeCommit));
  EXPECT_TRUE(d.done);
  EXPECT_EQ(d.error, "");

  auto c = calls();
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].ticket, "EXMP-1");
  EXPECT_THAT(c[0].why, StartsWith("reap by alice: merged: "));
  EXPECT_THAT(c[0].why, HasSubstr(mergeCommit));
  EXPECT_FALSE(inStore("EXMP-1"));
  EXPECT_TRUE(inStore("EXMP-2"));

  auto events = reapEvents("EXMP-1");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].actor, "alice");
  EXPECT_EQ(events[0].outcome, "ok");
  EXPECT_THAT(events[0].detail, StartsWith("merged: "));
  EXPECT_THAT(events[0].detail, HasSubstr(mergeCommit));
  EXPECT_TRUE(reapEvents("EXMP-2").empty());
}

TEST_F(ReaperPassTest, TheLastPassIsKeptAndADryRunDoesNotReplaceIt) {
  auto reaper = makeReaper();
  EXPECT_FALSE(reaper->lastPass());
  ASSERT_TRUE(reaper->runOnce(false, "", "alice").isOk());
  auto last = reaper->lastPass();
  ASSERT_TRUE(last);
  EXPECT_EQ(last->actor, "alice");
  ASSERT_TRUE(reaper->runOnce(true, "", "bob").isOk());
  EXPECT_EQ(reaper->lastPass()->actor, "alice");
}

TEST_F(ReaperPassTest, DeletedBranchIsReclaimedUnlessTurnedOff) {
  shop_->createBranch("feature/EXMP-1");
  shop_->addCommit("develop", "develop moved on");  // so the deploy is a real merge commit
  Environment e = deployed("EXMP-1");
  ASSERT_NE(e.commit, shop_->head("feature/EXMP-1"));
  shop_->deleteBranch("feature/EXMP-1");

  config_.reaper.reclaimDeleted = false;
  auto reaper = makeReaper();
  auto r = reaper->runOnce(false, "", "alice");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_TRUE(r->reclaimed.empty());
  EXPECT_TRUE(calls().empty());

  config_.reaper.reclaimDeleted = true;
  reaper = makeReaper();  // the reaper copies its options
  r = reaper->runOnce(false, "", "alice");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  ASSERT_EQ(r->reclaimed.size(), 1u);
  EXPECT_EQ(r->reclaimed[0].policy, "merged");
  EXPECT_THAT(r->reclaimed[0].reason, HasSubstr("feature/EXMP-1 was deleted from repo shop"));
  EXPECT_TRUE(r->reclaimed[0].done);
  EXPECT_FALSE(inStore("EXMP-1"));
}

TEST_F(ReaperPassTest, MergedThenDeletedBranchStillNamesTheMerge) {
  shop_->createBranch("feature/EXMP-1");
  Environment e = deployed("EXMP-1");
  ASSERT_EQ(e.commit, shop_->head("feature/EXMP-1"));  // fast-forward: the head itself
  std::string mergeCommit = shop_->merge("feature/EXMP-1");
  shop_->deleteBranch("feature/EXMP-1");
  config_.reaper.reclaimDeleted = false;

  auto r = makeReaper()->runOnce(false, "", "alice");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  ASSERT_EQ(r->reclaimed.size(), 1u);
  EXPECT_EQ(r->reclaimed[0].policy, "merged");
  EXPECT_THAT(r->reclaimed[0].reason, HasSubstr(mergeCommit));
}

// Issue 12, item 8: the deploy was a real merge commit of qabox's own (develop
// had moved on), the pull request was merged with --no-ff and its branch
// deleted. qabox's merge commit is never in develop; the source's own head is.
TEST_F(ReaperPassTest, MergedWithNoFfThenDeletedIsSeenMergedByTheRecordedSourceHead) {
  std::string sourceHead = shop_->createBranch("feature/EXMP-1");
  shop_->addCommit("develop", "develop moved on");
  Environment e = deployed("EXMP-1");
  ASSERT_NE(e.commit, sourceHead) << "the deploy must be qabox's own merge commit";
  ASSERT_EQ(e.sourceCommit, sourceHead);
  ASSERT_EQ(e.targetCommit, shop_->head("develop"));
  std::string mergeCommit = shop_->merge("feature/EXMP-1");
  shop_->deleteBranch("feature/EXMP-1");
  config_.reaper.reclaimDeleted = false;

  auto dry = makeReaper()->runOnce(true, "", "alice");
  ASSERT_TRUE(dry.isOk()) << dry.status().toString();
  ASSERT_EQ(dry->reclaimed.size(), 1u) << "a merged pull request whose branch was deleted";
  EXPECT_EQ(dry->reclaimed[0].policy, "merged");
  EXPECT_THAT(dry->reclaimed[0].reason, HasSubstr(mergeCommit));
  EXPECT_THAT(dry->reclaimed[0].reason, HasSubstr(sourceHead.substr(0, 12)));
  EXPECT_THAT(dry->reclaimed[0].reason, HasSubstr("deleted"));

  auto r = makeReaper()->runOnce(false, "", "alice");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  ASSERT_EQ(r->reclaimed.size(), 1u);
  EXPECT_TRUE(r->reclaimed[0].done);
  EXPECT_FALSE(inStore("EXMP-1"));
}

// The same, on a row written before source heads were recorded: only the
// merge commit is known, which is not in develop; it is kept, as before, and
// (with reclaim_deleted on) still goes as deleted.
TEST_F(ReaperPassTest, RowWithoutARecordedSourceHeadFallsBackToTheDeployedCommit) {
  shop_->createBranch("feature/EXMP-1");
  shop_->addCommit("develop", "develop moved on");
  Environment e = deployed("EXMP-1");
  e.sourceCommit.clear();
  e.targetCommit.clear();
  put(e);
  shop_->merge("feature/EXMP-1");
  shop_->deleteBranch("feature/EXMP-1");
  config_.reaper.reclaimDeleted = false;
  auto r = makeReaper()->runOnce(true, "", "alice");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_TRUE(r->reclaimed.empty());
  config_.reaper.reclaimDeleted = true;
  r = makeReaper()->runOnce(true, "", "alice");
  ASSERT_TRUE(r.isOk());
  ASSERT_EQ(r->reclaimed.size(), 1u);
  EXPECT_THAT(r->reclaimed[0].reason, HasSubstr("was deleted from repo shop"));
}

// A deleted branch that was never merged stays "deleted", named by its own head.
TEST_F(ReaperPassTest, DeletedUnmergedBranchNamesItsOwnDeployedHead) {
  std::string sourceHead = shop_->createBranch("feature/EXMP-1");
  shop_->addCommit("develop", "develop moved on");
  deployed("EXMP-1");
  shop_->deleteBranch("feature/EXMP-1");
  auto r = makeReaper()->runOnce(true, "", "alice");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  ASSERT_EQ(r->reclaimed.size(), 1u);
  EXPECT_THAT(r->reclaimed[0].reason, HasSubstr("was deleted from repo shop"));
  EXPECT_THAT(r->reclaimed[0].reason,
              HasSubstr("deployed head " + sourceHead.substr(0, 12) + " is not in develop"));
}

// Issue 12, item 7: the pass decided on a row read without the ticket's
// lock; whatever held the lock meanwhile (here: a redeploy that fetched and
// merged with the row READY, then switched) changed the row. The delete path
// re-checks under the lock and the redeploy wins.
TEST_F(ReaperPassTest, RedeployThatHeldTheLockWinsOverTheIdleDecision) {
  config_.reaper.idleAfter = hours(2);
  Environment idle = makeEnv("EXMP-1");
  idle.spec.repo.clear();
  idle.lastAccessAt = kNow - hours(3);
  idle.deployedAt = kNow - hours(3);
  idle.createdAt = kNow - hours(3);
  put(idle);
  onReclaim_ = [this](const std::string& ticket) {
    auto e = store_->getEnvironment(parseTicket(ticket)->slug);
    ASSERT_TRUE(e.isOk() && e->has_value());
    Environment row = **e;
    row.container += "_1";
    row.deployedAt = kNow + milliseconds(1);
    row.updatedAt = row.deployedAt;
    put(row);
  };
  auto r = makeReaper()->runOnce(false, "idle", "alice");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_TRUE(r->reclaimed.empty()) << r->reclaimed[0].reason;
  EXPECT_EQ(calls().size(), 1u) << "the delete path was asked, and said no under the lock";
  EXPECT_TRUE(deleted().empty());
  EXPECT_TRUE(inStore("EXMP-1"));
  EXPECT_TRUE(reapEvents("EXMP-1").empty());
}

TEST_F(ReaperPassTest, DeployInProgressUnderTheLockWins) {
  for (EnvState busyState : {EnvState::kDeploying, EnvState::kDeleting, EnvState::kBroken}) {
    expired("EXMP-1");
    onReclaim_ = [&](const std::string& ticket) {
      auto e = store_->getEnvironment(parseTicket(ticket)->slug);
      ASSERT_TRUE(e.isOk() && e->has_value());
      Environment row = **e;
      row.state = busyState;
      put(row);
    };
    auto r = makeReaper()->runOnce(false, "", "alice");
    ASSERT_TRUE(r.isOk()) << r.status().toString();
    EXPECT_TRUE(r->reclaimed.empty()) << stateName(busyState);
    EXPECT_TRUE(inStore("EXMP-1")) << stateName(busyState);
    EXPECT_TRUE(deleted().empty());
    ASSERT_TRUE(store_->deleteEnvironment("exmp-1").isOk());
  }
}

TEST_F(ReaperPassTest, DeletedBeforeTheLockIsNotReportedAsAFailure) {
  expired("EXMP-1");
  onReclaim_ = [this](const std::string&) {
    ASSERT_TRUE(store_->deleteEnvironment("exmp-1").isOk());
  };
  auto r = makeReaper()->runOnce(false, "", "alice");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_TRUE(r->reclaimed.empty());
  EXPECT_TRUE(reapEvents("EXMP-1").empty());
}

TEST_F(ReaperPassTest, UnchangedRowIsReclaimedUnderTheLock) {
  expired("EXMP-1");
  auto r = makeReaper()->runOnce(false, "", "alice");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  ASSERT_EQ(r->reclaimed.size(), 1u);
  EXPECT_TRUE(r->reclaimed[0].done);
  EXPECT_EQ(deleted(), std::vector<std::string>{"EXMP-1"});
}

TEST(SameDecisionRow, AnyChangeOfDeployStateOrPinCounts) {
  Environment a = makeEnv("EXMP-1");
  EXPECT_TRUE(sameDecisionRow(a, a));
  Environment b = a;
  b.lastAccessAt = kNow;  // use is judged by decide(), not here
  b.requestCount = 9;
  EXPECT_TRUE(sameDecisionRow(a, b));
  for (auto change : std::vector<std::function<void(Environment&)>>{
           [](Environment& e) { e.deployedAt += milliseconds(1); },
           [](Environment& e) { e.updatedAt += milliseconds(1); },
           [](Environment& e) { e.state = EnvState::kSleeping; },
           [](Environment& e) { e.pinned = true; }, [](Environment& e) { e.commit = kSha2; },
           [](Environment& e) { e.container += "_1"; },
           [](Environment& e) { e.spec.targetBranch = "main"; }}) {
    Environment c = a;
    change(c);
    EXPECT_FALSE(sameDecisionRow(a, c));
  }
}

TEST_F(DecideTest, BrokenEnvironmentsAreNeverDue) {
  Environment e = makeEnv("EXMP-1");
  e.state = EnvState::kBroken;
  e.expiresAt = kNow - hours(1);
  e.createdAt = kNow - hours(10'000);
  BranchState merged = mergedBranch();
  EXPECT_FALSE(decide(e, cfg_, kNow, &merged, ""));
}

TEST_F(ReaperPassTest, ReclaimedCommitsLoseTheirMirrorPins) {
  shop_->createBranch("feature/EXMP-1");
  shop_->createBranch("feature/EXMP-2");
  shop_->addCommit("develop", "develop moved on");  // real merge commits, held only by pins
  Environment gone = deployed("EXMP-1");
  Environment kept = deployed("EXMP-2");
  shop_->deleteBranch("feature/EXMP-1");
  auto pins = [&] {
    return cli_({"--git-dir=" + paths::gitMirror(state_, "shop"), "for-each-ref",
                 "--format=%(refname)", GitRepos::kPinPrefix});
  };
  std::string pinGone = std::string(GitRepos::kPinPrefix) + gone.commit;
  std::string pinKept = std::string(GitRepos::kPinPrefix) + kept.commit;
  ASSERT_THAT(pins(), HasSubstr(pinGone));

  auto reaper = makeReaper();
  ASSERT_TRUE(reaper->runOnce(true, "", "alice").isOk());
  EXPECT_THAT(pins(), HasSubstr(pinGone));  // a dry run changes nothing

  auto r = reaper->runOnce(false, "", "alice");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  ASSERT_EQ(r->reclaimed.size(), 1u);
  EXPECT_EQ(r->reclaimed[0].ticket, "EXMP-1");
  EXPECT_THAT(pins(), Not(HasSubstr(pinGone)));
  EXPECT_THAT(pins(), HasSubstr(pinKept));
}

TEST_F(ReaperPassTest, DryRunListsButTouchesNothing) {
  shop_->createBranch("feature/EXMP-1");
  deployed("EXMP-1");
  shop_->merge("feature/EXMP-1");
  expired("EXMP-2");

  auto r = makeReaper()->runOnce(true, "", "alice");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_TRUE(r->dryRun);
  ASSERT_EQ(r->reclaimed.size(), 2u);
  EXPECT_EQ(find(*r, "EXMP-1")->policy, "merged");
  EXPECT_EQ(find(*r, "EXMP-2")->policy, "ttl");
  for (const auto& d : r->reclaimed) {
    EXPECT_FALSE(d.done);
    EXPECT_EQ(d.error, "");
  }
  EXPECT_TRUE(calls().empty());
  EXPECT_TRUE(inStore("EXMP-1"));
  EXPECT_TRUE(inStore("EXMP-2"));
  EXPECT_TRUE(reapEvents("").empty());
}

TEST_F(ReaperPassTest, OneFailedDeleteDoesNotStopThePassAndIsRetried) {
  expired("EXMP-1");
  expired("EXMP-2");
  expired("EXMP-3");
  failing_ = {"EXMP-2"};

  auto reaper = makeReaper();
  auto r = reaper->runOnce(false, "", "alice");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  ASSERT_EQ(r->reclaimed.size(), 3u);
  EXPECT_TRUE(find(*r, "EXMP-1")->done);
  EXPECT_TRUE(find(*r, "EXMP-3")->done);
  const ReapDecision* failed = find(*r, "EXMP-2");
  EXPECT_FALSE(failed->done);
  EXPECT_THAT(failed->error, HasSubstr("device busy"));
  EXPECT_EQ(calls().size(), 3u);

  auto events = reapEvents("EXMP-2");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].outcome, "error");
  EXPECT_THAT(events[0].detail, StartsWith("ttl: "));
  EXPECT_THAT(events[0].detail, HasSubstr("device busy"));

  {
    std::lock_guard lock(mu_);
    failing_.clear();
  }
  r = reaper->runOnce(false, "", "alice");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  ASSERT_EQ(r->reclaimed.size(), 1u);
  EXPECT_EQ(r->reclaimed[0].ticket, "EXMP-2");
  EXPECT_TRUE(r->reclaimed[0].done);
  EXPECT_EQ(calls().size(), 4u);
}

TEST_F(ReaperPassTest, UnreachableRemoteReclaimsNothingOnItsRepoByBranch) {
  config_.repos.push_back({"gone", tmp_.path() + "/no-such-remote.git"});
  shop_->createBranch("feature/EXMP-1");
  deployed("EXMP-1");
  shop_->merge("feature/EXMP-1");
  // Would be "deleted" if a missing remote were read as a remote without branches.
  Environment onGone = makeEnv("EXMP-2", "gone");
  put(onGone);
  // Time policies do not depend on the remote.
  Environment expiredOnGone = makeEnv("EXMP-3", "gone");
  expiredOnGone.expiresAt = kNow - minutes(1);
  put(expiredOnGone);

  runner_.reset();
  auto r = makeReaper()->runOnce(false, "", "alice");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  ASSERT_EQ(r->warnings.size(), 1u);
  EXPECT_THAT(r->warnings[0], HasSubstr("repo gone"));
  EXPECT_THAT(r->warnings[0], HasSubstr("cannot fetch"));
  EXPECT_EQ(r->reclaimed.size(), 2u);
  ASSERT_NE(find(*r, "EXMP-1"), nullptr);
  EXPECT_EQ(find(*r, "EXMP-1")->policy, "merged");
  EXPECT_EQ(find(*r, "EXMP-2"), nullptr);
  ASSERT_NE(find(*r, "EXMP-3"), nullptr);
  EXPECT_EQ(find(*r, "EXMP-3")->policy, "ttl");
  EXPECT_TRUE(inStore("EXMP-2"));
  EXPECT_EQ(runner_.fetches(state_, "gone"), 1);
}

TEST_F(ReaperPassTest, OneFetchPerRepoPerPass) {
  auto web = std::make_unique<test::GitRemote>(cli_, tmp_.path() + "/web");
  config_.repos.push_back({"web", web->url()});
  for (int i = 1; i <= 5; ++i) {
    shop_->createBranch("feature/EXMP-" + std::to_string(i));
    deployed("EXMP-" + std::to_string(i));
  }
  for (int i = 6; i <= 8; ++i) {
    web->createBranch("feature/EXMP-" + std::to_string(i));
    deployed("EXMP-" + std::to_string(i), "web");
  }
  shop_->merge("feature/EXMP-2");
  web->merge("feature/EXMP-7");

  auto reaper = makeReaper();
  runner_.reset();
  auto r = reaper->runOnce(true, "", "alice");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(runner_.fetches(state_, "shop"), 1);
  EXPECT_EQ(runner_.fetches(state_, "web"), 1);
  EXPECT_EQ(runner_.totalFetches(), 2);
  ASSERT_EQ(r->reclaimed.size(), 2u);
  EXPECT_NE(find(*r, "EXMP-2"), nullptr);
  EXPECT_NE(find(*r, "EXMP-7"), nullptr);

  r = reaper->runOnce(false, "", "alice");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(runner_.totalFetches(), 4);
  EXPECT_EQ(r->reclaimed.size(), 2u);
}

TEST_F(ReaperPassTest, TimePolicyFilterFetchesNothing) {
  shop_->createBranch("feature/EXMP-1");
  deployed("EXMP-1");
  shop_->merge("feature/EXMP-1");
  Environment idle = makeEnv("EXMP-2", "");
  idle.lastAccessAt = kNow - hours(100);
  idle.deployedAt = idle.createdAt = kNow - hours(100);
  put(idle);

  runner_.reset();
  auto r = makeReaper()->runOnce(false, "idle", "alice");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(runner_.totalFetches(), 0);
  ASSERT_EQ(r->reclaimed.size(), 1u);
  EXPECT_EQ(r->reclaimed[0].ticket, "EXMP-2");
  EXPECT_EQ(r->reclaimed[0].policy, "idle");
  EXPECT_TRUE(inStore("EXMP-1"));
}

TEST_F(ReaperPassTest, InvalidPolicyIsRefused) {
  expired("EXMP-1");
  auto r = makeReaper()->runOnce(false, "everything", "alice");
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("merged, idle, ttl, max_age"));
  EXPECT_TRUE(calls().empty());
}

TEST_F(ReaperPassTest, PinnedAndBusyEnvironmentsOnMergedBranchesStay) {
  for (int i = 1; i <= 3; ++i) shop_->createBranch("feature/EXMP-" + std::to_string(i));
  Environment pinned = deployed("EXMP-1");
  pinned.pinned = true;
  put(pinned);
  Environment deploying = deployed("EXMP-2");
  deploying.state = EnvState::kDeploying;
  put(deploying);
  Environment failedEnv = deployed("EXMP-3");
  failedEnv.state = EnvState::kFailed;
  put(failedEnv);
  for (int i = 1; i <= 3; ++i) shop_->merge("feature/EXMP-" + std::to_string(i));

  auto r = makeReaper()->runOnce(false, "", "alice");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  ASSERT_EQ(r->reclaimed.size(), 1u);
  EXPECT_EQ(r->reclaimed[0].ticket, "EXMP-3");
  EXPECT_TRUE(inStore("EXMP-1"));
  EXPECT_TRUE(inStore("EXMP-2"));
}

TEST_F(ReaperPassTest, MissingTargetBranchOrRepoIsAWarningNotAReclaim) {
  shop_->createBranch("feature/EXMP-1");
  Environment noTarget = deployed("EXMP-1");
  noTarget.spec.targetBranch = "release/9";
  put(noTarget);
  Environment unknownRepo = makeEnv("EXMP-2", "legacy");
  put(unknownRepo);

  auto r = makeReaper()->runOnce(false, "", "alice");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_TRUE(r->reclaimed.empty());
  ASSERT_EQ(r->warnings.size(), 2u);
  std::string all = r->warnings[0] + "\n" + r->warnings[1];
  EXPECT_THAT(all, HasSubstr("ticket EXMP-1"));
  EXPECT_THAT(all, HasSubstr("release/9"));
  EXPECT_THAT(all, HasSubstr("ticket EXMP-2: repo \"legacy\""));
}

TEST_F(ReaperPassTest, WithoutGitOnlyTimePoliciesApply) {
  shop_->createBranch("feature/EXMP-1");
  deployed("EXMP-1");
  shop_->merge("feature/EXMP-1");
  expired("EXMP-2");

  auto r = makeReaper(nullptr)->runOnce(false, "", "alice");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  ASSERT_EQ(r->reclaimed.size(), 1u);
  EXPECT_EQ(r->reclaimed[0].ticket, "EXMP-2");
  ASSERT_EQ(r->warnings.size(), 1u);
  EXPECT_THAT(r->warnings[0], HasSubstr("no git"));
}

TEST_F(ReaperPassTest, EnvironmentPinnedDuringThePassIsSpared) {
  expired("EXMP-1");
  expired("EXMP-2");
  // Whichever is reclaimed first pins the other, as a user could meanwhile.
  onReclaim_ = [this](const std::string& ticket) {
    std::string other = ticket == "EXMP-1" ? "exmp-2" : "exmp-1";
    auto e = store_->getEnvironment(other);
    ASSERT_TRUE(e.isOk() && e->has_value());
    Environment row = **e;
    row.pinned = true;
    put(row);
  };

  auto r = makeReaper()->runOnce(false, "", "alice");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->reclaimed.size(), 1u);
  EXPECT_EQ(calls().size(), 1u);
  EXPECT_TRUE(inStore("EXMP-1") != inStore("EXMP-2"));
}

TEST_F(ReaperPassTest, PassesDoNotOverlap) {
  expired("EXMP-1");
  std::promise<void> entered;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  onReclaim_ = [&](const std::string&) {
    entered.set_value();
    released.wait();
  };
  auto reaper = makeReaper();
  auto first = std::async(std::launch::async, [&] { return reaper->runOnce(false, "", "cron"); });
  entered.get_future().wait();

  auto second = reaper->runOnce(true, "", "alice");
  EXPECT_FALSE(second.isOk());
  EXPECT_EQ(second.status().code(), Code::kUnavailable);
  EXPECT_THAT(second.status().message(), HasSubstr("already running"));

  release.set_value();
  auto r = first.get();
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  ASSERT_EQ(r->reclaimed.size(), 1u);
  EXPECT_TRUE(r->reclaimed[0].done);
}

// Polls instead of asserting a time: the schedule only has to fire eventually.
bool waitFor(const std::function<bool()>& cond) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(milliseconds(20));
  }
  return cond();
}

TEST_F(ReaperPassTest, ScheduleRunsPassesOnItsOwn) {
  config_.reaper.interval = milliseconds(200);
  expired("EXMP-1");
  auto reaper = makeReaper();
  reaper->start();
  reaper->start();  // a second start is a no-op, not a second thread
  ASSERT_TRUE(waitFor([&] { return !calls().empty(); }));
  // A second environment due later is picked up by a later pass.
  expired("EXMP-2");
  ASSERT_TRUE(waitFor([&] { return calls().size() >= 2; }));
  reaper->stop();
  reaper->stop();
  EXPECT_EQ(calls().size(), 2u);
  auto events = reapEvents("EXMP-1");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].actor, Reaper::kScheduleActor);
}

TEST_F(ReaperPassTest, ZeroIntervalTurnsTheScheduleOff) {
  config_.reaper.interval = milliseconds(0);
  expired("EXMP-1");
  auto reaper = makeReaper();
  reaper->start();
  std::this_thread::sleep_for(milliseconds(300));
  EXPECT_TRUE(calls().empty());
  auto r = reaper->runOnce(false, "", "alice");  // on demand still works
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(calls().size(), 1u);
  reaper->stop();
}

TEST_F(ReaperPassTest, StopWithoutStartIsSafe) {
  auto reaper = makeReaper();
  reaper->stop();
  reaper->stop();
}

// ---------------------------------------------------------------- reclaimNow (webhooks)

TEST_F(ReaperPassTest, ReclaimNowOfAnUnmergedBranchDeletesNothing) {
  shop_->createBranch("feature/EXMP-1");
  Environment e = deployed("EXMP-1");
  auto reaper = makeReaper();
  auto d = reaper->reclaimNow(e, kPolicyMerged, "pull request #1 merged", "webhook:github");
  ASSERT_TRUE(d.isOk()) << d.status().toString();
  EXPECT_FALSE(d->done);
  EXPECT_THAT(d->error, HasSubstr("does not show feature/EXMP-1 merged into develop"));
  EXPECT_TRUE(inStore("EXMP-1"));
  EXPECT_TRUE(calls().empty());
  EXPECT_TRUE(reapEvents("EXMP-1").empty());
}

TEST_F(ReaperPassTest, ReclaimNowOfAMergedBranchGoesThroughTheReclaimPath) {
  shop_->createBranch("feature/EXMP-1");
  shop_->createBranch("feature/EXMP-2");
  Environment e = deployed("EXMP-1");
  deployed("EXMP-2");
  std::string mergeCommit = shop_->merge("feature/EXMP-1");
  auto reaper = makeReaper();
  auto d = reaper->reclaimNow(e, kPolicyMerged, "pull request #1 merged (delivery d1)",
                              "webhook:github");
  ASSERT_TRUE(d.isOk()) << d.status().toString();
  EXPECT_TRUE(d->done) << d->error;
  EXPECT_EQ(d->policy, "merged");
  EXPECT_THAT(d->reason, HasSubstr(mergeCommit));
  EXPECT_THAT(d->reason, HasSubstr("delivery d1"));
  EXPECT_FALSE(inStore("EXMP-1"));
  EXPECT_TRUE(inStore("EXMP-2"));
  auto events = reapEvents("EXMP-1");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].actor, "webhook:github");
}

TEST_F(ReaperPassTest, ReclaimNowClosedUsesTheHintAndSparesPinned) {
  shop_->createBranch("feature/EXMP-1");
  shop_->createBranch("feature/EXMP-2");
  Environment e1 = deployed("EXMP-1");
  Environment e2 = deployed("EXMP-2");
  e2.pinned = true;
  put(e2);
  auto reaper = makeReaper();
  auto d = reaper->reclaimNow(e1, kPolicyClosed, "pull request #3 closed without merging",
                              "webhook:gitlab");
  ASSERT_TRUE(d.isOk()) << d.status().toString();
  EXPECT_TRUE(d->done) << d->error;
  EXPECT_EQ(d->policy, "closed");
  EXPECT_EQ(d->reason, "pull request #3 closed without merging");
  EXPECT_FALSE(inStore("EXMP-1"));
  auto kept = reaper->reclaimNow(e2, kPolicyClosed, "pull request #4 closed", "webhook:gitlab");
  ASSERT_TRUE(kept.isOk());
  EXPECT_FALSE(kept->done);
  EXPECT_TRUE(inStore("EXMP-2"));
  EXPECT_FALSE(reaper->reclaimNow(e1, kPolicyIdle, "", "x").isOk());
}

TEST_F(ReaperPassTest, ReclaimNowLosesToARedeployUnderTheLock) {
  shop_->createBranch("feature/EXMP-1");
  Environment e = deployed("EXMP-1");
  onReclaim_ = [&](const std::string&) {
    Environment again = e;
    again.deployedAt = e.deployedAt + minutes(5);
    put(again);
  };
  auto reaper = makeReaper();
  auto d = reaper->reclaimNow(e, kPolicyClosed, "pull request #1 closed", "webhook:gitea");
  ASSERT_TRUE(d.isOk());
  EXPECT_FALSE(d->done);
  EXPECT_TRUE(inStore("EXMP-1"));
}

}  // namespace
}  // namespace qabox
