#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "core/config.h"
#include "core/environment.h"
#include "core/status.h"
#include "deploy/git.h"
#include "store/store.h"

namespace qabox {

class Metrics;

// The policies, in the order decide() tries them: the first that applies
// names the reason, so a merged branch is reported as merged even when its
// ttl ran out as well.
//
// A new policy: its name here and in kPolicies (reaper.cpp), which
// checkPolicy() and `qabox reap --policy` accept; one branch in decide() at
// its place in that order, naming what was seen and the setting it broke in
// the reason; its setting in Config::Reaper (core/config.cpp parses it, and
// ReaperOptions carries the whole section); rows in reaper_test.cpp's
// decide() tests. The pass, the re-check under the ticket's lock (
// sameDecisionRow() and decide() again), the events and the delete path stay
// as they are.
inline constexpr const char* kPolicyMerged = "merged";
inline constexpr const char* kPolicyTtl = "ttl";
inline constexpr const char* kPolicyMaxAge = "max_age";
inline constexpr const char* kPolicyIdle = "idle";
// Only on demand (Reaper::reclaimNow, from a webhook): the pull request was
// closed without merging; never tried by a pass.
inline constexpr const char* kPolicyClosed = "closed";

// "" (every policy) or one of merged, idle, ttl, max_age; otherwise
// INVALID_ARGUMENT naming the allowed values.
Status checkPolicy(std::string_view policy);

// What the reaper reads of the agent's config, built from it in one place
// (daemon/options.cpp); the fields keep Config's names.
struct ReaperOptions {
  Config::Reaper reaper;  // the policies and the schedule
  std::vector<RepoConfig> repos;

  const RepoConfig* findRepo(std::string_view nameOrUrl) const {
    return qabox::findRepo(repos, nameOrUrl);
  }
};

// One environment the reaper reclaimed, or would in a dry run.
struct ReapDecision {
  std::string ticket;
  std::string policy;  // merged, idle, ttl, max_age
  std::string reason;  // for a person: what was seen, and the setting it broke
  bool done = false;   // reclaimed; false in a dry run and when the delete failed
  std::string error;   // why the delete failed; it is retried next pass
};

struct ReapReport {
  std::vector<ReapDecision> reclaimed;
  // Whatever kept the pass from judging an environment fully, e.g. a remote
  // that could not be fetched: nothing on it is reclaimed as merged or deleted.
  std::vector<std::string> warnings;
  bool dryRun = false;
};

// Whether the two rows are the same deploy in the same state: what the
// reaper re-checks under the ticket's lock before a reclaim.
bool sameDecisionRow(const Environment& seen, const Environment& current);

// Whether `env` is due, and why. Pure: the time and the branch state are
// given. `branch` is null when the environment has no repo, or its repo could
// not be fetched or asked this pass; then the merged policy does not apply.
// Pinned environments and those in CREATING, DEPLOYING, DELETING or BROKEN
// are never due. A zero idle_after or max_age turns that policy off. `policyFilter` ""
// tries every policy, a policy name only that one, anything else none.
std::optional<ReapDecision> decide(const Environment& env, const Config::Reaper& policy,
                                   TimePoint now, const BranchState* branch,
                                   const std::string& policyFilter);

// Reclaims environments by policy, every `reaper.interval` on its own thread
// and on demand (Reap / `qabox reap`).
//
// A pass lists the environments, fetches each repo that the merged policy
// needs once (in parallel, one fetch per repo however many environments use
// it), asks each mirror about all of its environments' branches in one batch
// (GitRepos::branchStates, a few git processes whatever their number) without
// fetching again, decides, and hands each due environment to `reclaim`, the delete
// path. A failed fetch or query only turns the merged policy off for what it
// concerns, with a warning; a failed delete is reported and retried next pass.
// Neither stops the pass. A pass that is not a dry run ends with
// GitRepos::maintain() on every configured repo.
//
// Records: for every environment reclaimed (or that failed to be) the reaper
// writes one event itself: action "reap", the actor, outcome ok or error,
// detail "<policy>: <reason>" (then "; <error>" on failure). `reclaim` gets
// "reap by <actor>: <policy>: <reason>" as `why`, so the delete path's own
// event says why and for whom as well. A dry run records nothing.
//
// Passes never overlap: a pass asked for while another runs fails with
// UNAVAILABLE (the scheduled one just skips its turn) rather than queue a
// second pass behind fetches that may take up to deploy.fetch_timeout.
class Reaper {
 public:
  // Whether the row, read again under the ticket's lock, is still the one
  // the reaper decided on and still due; an error leaves it alone.
  using StillDueFn = std::function<Status(const Environment& current)>;
  // The delete path: releases container, address lease and route. It must
  // call `stillDue` with the current row while it holds the ticket's lock,
  // before it touches anything, and give up when that fails: a deploy, wake,
  // pin or request that got the lock first wins over the decision. The
  // reaper writes its own "reap" event, so this need not.
  using ReclaimFn = std::function<Status(const std::string& ticket, const std::string& why,
                                         const StillDueFn& stillDue)>;

  // `store`, `git` and `time` must outlive the reaper. `git` may be null:
  // then the merged policy is off, with a warning when it would have applied.
  // `time` says when a pass runs (what the policies compare) and stamps events.
  Reaper(ReaperOptions options, Store& store, GitRepos* git, ReclaimFn reclaim,
         const TimeSource& time = systemTime());
  ~Reaper();
  Reaper(const Reaper&) = delete;
  Reaper& operator=(const Reaper&) = delete;

  // One pass. `policy` as in checkPolicy(). Errors: INVALID_ARGUMENT for the
  // policy, UNAVAILABLE when a pass is already running, and the store's error
  // when the environments cannot be listed; everything after that is in the
  // report.
  Result<ReapReport> runOnce(bool dryRun, const std::string& policy, const std::string& actor);

  // One environment, now (a webhook's hint): `policy` kPolicyMerged fetches
  // its repo and asks git about that one environment's branches; only when
  // decide() says merged (or deleted) is it reclaimed. kPolicyClosed
  // reclaims it with `hint` as the reason (the pull request was closed
  // unmerged). Both go through the pass's reclaim path: the row read again,
  // the decision re-checked under the ticket's lock, the "reap" event (with
  // `hint` appended to its reason). Does not wait for a running pass.
  // Returns the decision; done false with `error` saying why nothing was
  // reclaimed (not merged in git yet, pinned, busy, changed meanwhile).
  // INVALID_ARGUMENT for another policy.
  Result<ReapDecision> reclaimNow(const Environment& env, const std::string& policy,
                                  const std::string& hint, const std::string& actor);

  // The schedule: a pass every reaper.interval, the first one interval after
  // start. Does nothing when the interval is 0 or the schedule already runs.
  void start();
  // Stops the schedule and waits for a pass in flight (the environments it has
  // not reached yet are reported as not reclaimed). Safe to call twice.
  void stop();
  // What the last pass that was not a dry run did, for the dashboard; nullopt
  // before the first one since the agent started.
  struct LastPass {
    TimePoint at{};
    std::string actor;
    std::string policy;  // "" for every policy
    size_t environments = 0;
    size_t reclaimed = 0;
    size_t failed = 0;
    std::vector<std::string> warnings;
  };
  std::optional<LastPass> lastPass() const;

  // Called, on the pass's thread, for each repo a pass fetched: the daemon
  // has the lifecycle read from the fresh mirror how far each environment's
  // target moved (EnvironmentManager::refreshBehind). Set before start().
  void onFetched(std::function<void(const RepoConfig&)> hook) { fetched_ = std::move(hook); }

  // Passes and what they reclaimed are counted there; may be null.
  void setMetrics(Metrics* metrics) { metrics_ = metrics; }

  // The actor of scheduled passes, in events and logs.
  static constexpr const char* kScheduleActor = actors::kReaper;

 private:
  Result<ReapReport> pass(bool dryRun, const std::string& policy, const std::string& actor);
  // Fills `branches` (indexed like `envs`) for the environments the merged
  // policy may reclaim; null where the state is unknown.
  void queryBranches(const std::vector<Environment>& envs,
                     std::vector<std::optional<BranchState>>& branches, ReapReport& report);
  // Reclaims one due environment and records it; false when, read again, it
  // is no longer due (pinned, redeployed, deleted meanwhile) and not reported.
  using DecideFn =
      std::function<std::optional<ReapDecision>(const Environment&, const BranchState*)>;
  bool reclaimOne(ReapDecision& d, const Environment& env, const BranchState* branch,
                  const DecideFn& decideFn, const std::string& actor);
  // Lets GitRepos drop the pins of commits no environment uses any more and
  // pack the mirrors (its maintain(), meant to run once per pass).
  void maintainMirrors();
  void scheduleLoop();

  const ReaperOptions config_;
  Store& store_;
  GitRepos* git_;
  Metrics* metrics_ = nullptr;
  ReclaimFn reclaim_;
  std::function<void(const RepoConfig&)> fetched_;
  const TimeSource& time_;

  std::mutex passMu_;  // held for the whole of a pass
  mutable std::mutex lastMu_;
  std::optional<LastPass> last_;

  std::mutex scheduleMu_;
  std::condition_variable scheduleCv_;
  bool stopRequested_ = false;  // guarded by scheduleMu_
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace qabox
