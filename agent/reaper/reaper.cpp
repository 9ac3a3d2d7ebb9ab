#include "reaper/reaper.h"
#include "core/failpoint.h"
#include "core/short_sha.h"

#include <spdlog/spdlog.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <ctime>
#include <map>
#include <set>
#include <system_error>
#include <thread>

#include "core/duration.h"
#include "metrics/metrics.h"

namespace qabox {

namespace {

constexpr const char* kPolicies[] = {kPolicyMerged, kPolicyIdle, kPolicyTtl, kPolicyMaxAge};

// Fetches wait on remotes, not on this host: run several at once so one slow
// remote does not hold up the others.
constexpr size_t kMaxParallelFetches = 8;
// Branch queries are local git processes, bound by CPU.
constexpr size_t kMaxParallelQueries = 4;

std::string formatTime(TimePoint t) {
  std::time_t tt = Clock::to_time_t(t);
  std::tm tm{};
  if (gmtime_r(&tt, &tm) == nullptr) return std::to_string(toUnixMillis(t)) + "ms";
  char buf[32];
  if (std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) return "?";
  return buf;
}

std::chrono::milliseconds since(TimePoint now, TimePoint then) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(now - then);
}

bool wants(const std::string& filter, const char* policy) {
  return filter.empty() || filter == policy;
}

// Environments a deploy or delete is working on belong to that operation;
// reclaiming one under it would race the container it is making or removing.
// BROKEN ones wait for an operator: a reclaim would only retry a destroy
// that already failed, every pass.
bool busy(EnvState s) { return inOperation(s) || s == EnvState::kBroken; }

// The deployed source head the merged policy asks about: the one recorded
// at deploy, else (rows from before it was recorded) the deployed commit,
// which is that head only when the deploy was a fast-forward.
std::string deployedSourceHead(const Environment& env) {
  if (isCommitId(env.sourceCommit)) return env.sourceCommit;
  return isCommitId(env.commit) ? env.commit : std::string();
}

// Whether the merged policy could apply at all, before asking git. A branch
// deployed onto itself is always "contained" in its target: never merged.
bool mergedCandidate(const Environment& env) {
  return !env.pinned && !busy(env.state) && !env.spec.repo.empty() &&
         !env.spec.sourceBranch.empty() && !env.spec.targetBranch.empty() &&
         env.spec.sourceBranch != env.spec.targetBranch;
}

// Runs fn(0..n-1) on up to `workers` threads, the caller's included. Threads
// that cannot be created leave their share to the others.
void parallelFor(size_t n, size_t workers, const std::function<void(size_t)>& fn) {
  workers = std::min(workers, n);
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i = next.fetch_add(1); i < n; i = next.fetch_add(1)) fn(i);
  };
  std::vector<std::thread> threads;
  for (size_t w = 1; w < workers; ++w) {
    try {
      threads.emplace_back(work);
    } catch (const std::system_error& e) {
      spdlog::warn("reaper: starting a worker thread: {}", e.what());
      break;
    }
  }
  work();
  for (auto& t : threads) t.join();
}

// The delete path's own event gets no actor of ours (it records its own), so
// the reason says who asked.
std::string decisionWhy(const ReapDecision& d, const std::string& actor) {
  return "reap by " + actor + ": " + d.policy + ": " + d.reason;
}

struct RepoWork {
  const RepoConfig* repo = nullptr;
  std::vector<size_t> envs;  // indices into the pass's environments
  Status fetched;
};

}  // namespace

bool sameDecisionRow(const Environment& seen, const Environment& current) {
  return current.state == seen.state && current.pinned == seen.pinned &&
         current.deployedAt == seen.deployedAt && current.updatedAt == seen.updatedAt &&
         current.commit == seen.commit && current.container == seen.container &&
         current.spec == seen.spec;
}

Status checkPolicy(std::string_view policy) {
  if (policy.empty()) return Status::ok();
  for (const char* p : kPolicies) {
    if (policy == p) return Status::ok();
  }
  return invalidArgument("policy \"" + std::string(policy.substr(0, 40)) +
                         "\": must be one of merged, idle, ttl, max_age (or empty for all)");
}

std::optional<ReapDecision> decide(const Environment& env, const Config::Reaper& policy,
                                   TimePoint now, const BranchState* branch,
                                   const std::string& policyFilter) {
  if (env.pinned || busy(env.state)) return std::nullopt;
  auto due = [&](const char* name, std::string reason) {
    ReapDecision d;
    d.ticket = env.ticket;
    d.policy = name;
    d.reason = std::move(reason);
    return std::optional<ReapDecision>(std::move(d));
  };
  const DeploySpec& spec = env.spec;

  if (branch != nullptr && wants(policyFilter, kPolicyMerged) && mergedCandidate(env)) {
    if (branch->merged && policy.reclaimMerged) {
      std::string reason = "source branch " + spec.sourceBranch;
      if (!branch->sourceHead.empty()) reason += " (head " + shortSha(branch->sourceHead) + ")";
      reason += " is merged into " + spec.targetBranch + ": contained in " + branch->containedIn;
      if (!branch->sourceExists) reason += "; the branch has since been deleted";
      return due(kPolicyMerged, std::move(reason));
    }
    if (!branch->sourceExists && !branch->merged && policy.reclaimDeleted) {
      std::string reason =
          "source branch " + spec.sourceBranch + " was deleted from repo " + spec.repo;
      std::string head = deployedSourceHead(env);
      reason += !head.empty()
                    ? " and its deployed head " + shortSha(head) + " is not in " + spec.targetBranch
                    : " and was not seen merged into " + spec.targetBranch;
      return due(kPolicyMerged, std::move(reason));
    }
  }

  if (wants(policyFilter, kPolicyTtl) && env.expiresAt && now >= *env.expiresAt) {
    std::string reason = "ttl ran out at " + formatTime(*env.expiresAt);
    if (spec.ttl) reason += " (deployed with ttl " + formatDuration(*spec.ttl) + ")";
    return due(kPolicyTtl, std::move(reason));
  }

  if (wants(policyFilter, kPolicyMaxAge) && policy.maxAge.count() > 0 &&
      now - env.createdAt >= policy.maxAge) {
    return due(kPolicyMaxAge, "created " + formatTime(env.createdAt) + ", " +
                                  formatDuration(since(now, env.createdAt)) + " ago; max_age is " +
                                  formatDuration(policy.maxAge));
  }

  if (wants(policyFilter, kPolicyIdle) && policy.idleAfter.count() > 0) {
    TimePoint last = std::max(env.deployedAt, env.createdAt);
    if (env.lastAccessAt) last = std::max(last, *env.lastAccessAt);
    if (now - last >= policy.idleAfter) {
      return due(kPolicyIdle, "no request or deploy since " + formatTime(last) + " (" +
                                  formatDuration(since(now, last)) + "); idle_after is " +
                                  formatDuration(policy.idleAfter));
    }
  }
  return std::nullopt;
}

Reaper::Reaper(ReaperOptions options, Store& store, GitRepos* git, ReclaimFn reclaim,
               const TimeSource& time)
    : config_(std::move(options)),
      store_(store),
      git_(git),
      reclaim_(std::move(reclaim)),
      time_(time) {}

Reaper::~Reaper() { stop(); }

Result<ReapReport> Reaper::runOnce(bool dryRun, const std::string& policy,
                                   const std::string& actor) {
  QABOX_RETURN_IF_ERROR(checkPolicy(policy));
  std::unique_lock lock(passMu_, std::try_to_lock);
  if (!lock.owns_lock()) {
    return unavailable("a reap pass is already running; try again when it has finished");
  }
  return pass(dryRun, policy, actor);
}

std::optional<Reaper::LastPass> Reaper::lastPass() const {
  std::lock_guard lock(lastMu_);
  return last_;
}

Result<ReapReport> Reaper::pass(bool dryRun, const std::string& policy, const std::string& actor) {
  ReapReport report;
  report.dryRun = dryRun;
  const TimePoint now = time_.now();
  auto listed = store_.listEnvironments();
  if (!listed) return listed.status().withContext("reap: listing environments");
  const std::vector<Environment>& envs = *listed;

  std::vector<std::optional<BranchState>> branches(envs.size());
  const Config::Reaper& cfg = config_.reaper;
  if (wants(policy, kPolicyMerged) && (cfg.reclaimMerged || cfg.reclaimDeleted)) {
    queryBranches(envs, branches, report);
  }

  size_t failed = 0;
  for (size_t i = 0; i < envs.size(); ++i) {
    const BranchState* branch = branches[i] ? &*branches[i] : nullptr;
    auto d = decide(envs[i], cfg, now, branch, policy);
    if (!d) continue;
    auto decider = [&](const Environment& e, const BranchState* b) {
      return decide(e, cfg, now, b, policy);
    };
    if (!dryRun && !reclaimOne(*d, envs[i], branch, decider, actor)) continue;
    if (!dryRun && !d->done) ++failed;
    report.reclaimed.push_back(std::move(*d));
  }

  if (!dryRun && git_ != nullptr) maintainMirrors();
  if (!dryRun) {
    std::lock_guard lock(lastMu_);
    last_ = LastPass{now,    actor,          policy, envs.size(), report.reclaimed.size() - failed,
                     failed, report.warnings};
  }
  if (!dryRun && metrics_ != nullptr) {
    std::map<std::string, int> byPolicy;
    for (const auto& d : report.reclaimed) byPolicy[d.policy] += d.done ? 1 : 0;
    metrics_->reaperPass(byPolicy);
  }

  for (const auto& w : report.warnings) spdlog::warn("reaper: {}", w);
  if (!report.reclaimed.empty() || !report.warnings.empty()) {
    spdlog::info("reap pass by {}{}: {} of {} environments {}, {} failed, {} warnings", actor,
                 dryRun ? " (dry run)" : "", report.reclaimed.size() - failed, envs.size(),
                 dryRun ? "due" : "reclaimed", failed, report.warnings.size());
  }
  return report;
}

void Reaper::queryBranches(const std::vector<Environment>& envs,
                           std::vector<std::optional<BranchState>>& branches, ReapReport& report) {
  std::map<std::string, RepoWork> byRepo;
  for (size_t i = 0; i < envs.size(); ++i) {
    const Environment& env = envs[i];
    if (!mergedCandidate(env)) continue;
    if (git_ == nullptr) {
      report.warnings.push_back(
          "the agent has no git access: no environment is checked for a merged or deleted "
          "branch");
      return;
    }
    const RepoConfig* repo = config_.findRepo(env.spec.repo);
    if (repo == nullptr) {
      report.warnings.push_back("ticket " + env.ticket + ": repo \"" + env.spec.repo +
                                "\" is not in the agent's config: not checked for a merged or "
                                "deleted branch");
      continue;
    }
    RepoWork& work = byRepo[repo->name];
    work.repo = repo;
    work.envs.push_back(i);
  }
  if (byRepo.empty()) return;

  std::vector<RepoWork*> repos;
  for (auto& [name, work] : byRepo) repos.push_back(&work);
  parallelFor(repos.size(), kMaxParallelFetches,
              [&](size_t k) { repos[k]->fetched = git_->fetch(*repos[k]->repo); });

  // The fetch above is this pass's one per repo: each repo's environments are
  // then answered from its mirror by one batch, in a few git processes.
  std::vector<RepoWork*> fetched;
  for (RepoWork* work : repos) {
    if (!work->fetched.isOk()) {
      // Fail safe: a stale mirror would call a branch merged or deleted on
      // old news, so nothing on this repo is judged by its branches.
      report.warnings.push_back(work->fetched.message() +
                                "; its environments are not checked for merged or deleted "
                                "branches this pass");
      continue;
    }
    fetched.push_back(work);
    if (fetched_) fetched_(*work->repo);
  }
  std::vector<std::vector<Result<BranchState>>> answers(fetched.size());
  size_t workers = std::clamp<size_t>(std::thread::hardware_concurrency(), 1, kMaxParallelQueries);
  parallelFor(fetched.size(), workers, [&](size_t k) {
    std::vector<BranchQuery> asks;
    asks.reserve(fetched[k]->envs.size());
    for (size_t i : fetched[k]->envs) {
      const Environment& env = envs[i];
      // The source's own head, not qabox's merge commit: that one is never
      // in the target, so a merged and deleted branch would never be seen merged.
      asks.push_back({env.spec.sourceBranch, env.spec.targetBranch, deployedSourceHead(env)});
    }
    answers[k] = git_->branchStates(*fetched[k]->repo, asks);
  });
  for (size_t k = 0; k < fetched.size(); ++k) {
    const std::vector<size_t>& indices = fetched[k]->envs;
    for (size_t j = 0; j < indices.size() && j < answers[k].size(); ++j) {
      const Environment& env = envs[indices[j]];
      Result<BranchState>& answer = answers[k][j];
      if (answer.isOk()) {
        branches[indices[j]] = std::move(answer).value();
      } else {
        report.warnings.push_back("ticket " + env.ticket +
                                  ": checking its branches: " + answer.status().message());
      }
    }
  }
}

void Reaper::maintainMirrors() {
  // Listed again after the reclaims, so that neither the commits of what was
  // just reclaimed nor those of deploys finished during the pass are judged
  // on the list the pass started from. No list, no pin dropped.
  auto listed = store_.listEnvironments();
  if (!listed) {
    spdlog::warn("reaper: mirror maintenance skipped: listing environments: {}",
                 listed.status().toString());
    return;
  }
  std::map<std::string, std::set<std::string>> keep;
  for (const Environment& env : *listed) {
    const RepoConfig* repo = config_.findRepo(env.spec.repo);
    if (repo != nullptr && isCommitId(env.commit)) keep[repo->name].insert(env.commit);
  }
  for (const RepoConfig& repo : config_.repos) {
    Status s = git_->maintain(repo, keep[repo.name]);
    if (!s.isOk())
      spdlog::warn("reaper: maintaining the mirror of repo {}: {}", repo.name, s.toString());
  }
}

bool Reaper::reclaimOne(ReapDecision& d, const Environment& env, const BranchState* branch,
                        const DecideFn& decideFn, const std::string& actor) {
  if (stopping_) {
    d.error = "the agent is stopping; retried on the next pass";
    return true;
  }
  // The row was listed before the fetches: a pin, a redeploy or a delete since
  // then wins over this pass's decision.
  auto fresh = store_.getEnvironment(env.slug);
  if (!fresh) {
    d.error = "re-reading the environment: " + fresh.status().message();
  } else if (!fresh->has_value()) {
    return false;
  } else {
    const Environment& current = **fresh;
    // The branch answer is for the deploy that was listed; after a redeploy
    // only the time policies still hold.
    bool sameDeploy = current.spec == env.spec && current.deployedAt == env.deployedAt &&
                      current.commit == env.commit;
    auto again = decideFn(current, sameDeploy ? branch : nullptr);
    if (!again) {
      spdlog::info("reaper: {} is no longer due for {} and is left alone", env.ticket, d.policy);
      return false;
    }
    d = std::move(*again);
    // The read above holds no lock: a redeploy that holds the ticket's lock
    // keeps the row READY (and idle) while it fetches and merges, and a
    // delete queued behind it would then remove what it just deployed. So
    // the delete path checks again under the lock, against the row as it is
    // then: anything that changed it since this decision wins.
    bool stale = false;
    std::string staleWhy;
    const Environment decided = current;
    const BranchState* answer = sameDeploy ? branch : nullptr;
    auto stillDue = [&](const Environment& locked) -> Status {
      if (!sameDecisionRow(decided, locked)) {
        stale = true;
        staleWhy = "changed since the decision (now " + std::string(stateName(locked.state)) +
                   (locked.deployedAt != decided.deployedAt ? ", deployed again" : "") + ")";
        return failedPrecondition("ticket " + locked.ticket + ": " + staleWhy);
      }
      auto last = decideFn(locked, answer);
      if (!last || last->policy != d.policy) {
        stale = true;
        staleWhy = "no longer due under the ticket's lock";
        return failedPrecondition("ticket " + locked.ticket + ": " + staleWhy);
      }
      return Status::ok();
    };
    QABOX_FAILPOINT("reaper.reclaim.before");
    Status s = reclaim_(d.ticket, decisionWhy(d, actor), stillDue);
    QABOX_FAILPOINT("reaper.reclaim.after");
    if (s.code() == Code::kNotFound) {
      staleWhy = "deleted meanwhile";
      stale = true;
    }
    if (stale) {
      spdlog::info("reaper: {} is left alone: {}", env.ticket, staleWhy);
      return false;
    }
    d.done = s.isOk();
    if (!d.done) d.error = s.message();
  }

  std::string detail = d.policy + ": " + d.reason;
  if (!d.done) detail += "; " + d.error;
  Status recorded =
      store_.addEvent({0, time_.now(), d.ticket, "reap", actor, d.done ? "ok" : "error", detail});
  if (!recorded.isOk()) {
    spdlog::warn("reaper: recording the reap event of {}: {}", d.ticket, recorded.toString());
  }
  if (d.done) {
    spdlog::info("reaper: reclaimed {} ({})", d.ticket, detail);
  } else {
    spdlog::warn("reaper: could not reclaim {} ({}); retried next pass", d.ticket, detail);
  }
  return true;
}

Result<ReapDecision> Reaper::reclaimNow(const Environment& env, const std::string& policy,
                                        const std::string& hint, const std::string& actor) {
  if (policy != kPolicyMerged && policy != kPolicyClosed) {
    return invalidArgument("policy \"" + policy.substr(0, 40) +
                           "\": reclaimNow takes merged or closed");
  }
  const TimePoint now = time_.now();
  ReapDecision none;
  none.ticket = env.ticket;
  none.policy = policy;
  std::optional<BranchState> branch;
  if (policy == kPolicyMerged) {
    if (!mergedCandidate(env)) {
      none.error = "not a candidate for the merged policy (pinned, busy, or no source and target)";
      return none;
    }
    if (git_ == nullptr) {
      none.error = "the agent has no git access";
      return none;
    }
    const RepoConfig* repo = config_.findRepo(env.spec.repo);
    if (repo == nullptr) {
      none.error = "repo \"" + env.spec.repo + "\" is not in the agent's config";
      return none;
    }
    if (Status s = git_->fetch(*repo); !s.isOk()) {
      none.error = s.message() + "; the scheduled pass will check again";
      return none;
    }
    if (fetched_) fetched_(*repo);
    auto answers = git_->branchStates(
        *repo, {{env.spec.sourceBranch, env.spec.targetBranch, deployedSourceHead(env)}});
    if (answers.empty() || !answers.front().isOk()) {
      none.error =
          "checking its branches: " +
          (answers.empty() ? std::string("no answer") : answers.front().status().message());
      return none;
    }
    branch = std::move(answers.front()).value();
  }
  // The merged policy's own decide(), restricted to it; the closed one is
  // due whenever decide() would consider the environment at all.
  DecideFn decider = [&](const Environment& e,
                         const BranchState* b) -> std::optional<ReapDecision> {
    std::optional<ReapDecision> d;
    if (policy == kPolicyMerged) {
      d = decide(e, config_.reaper, now, b, kPolicyMerged);
    } else if (!e.pinned && !busy(e.state)) {
      d = ReapDecision{e.ticket, kPolicyClosed, hint, false, ""};
    }
    if (d && policy == kPolicyMerged && !hint.empty()) d->reason += " (" + hint + ")";
    return d;
  };
  auto d = decider(env, branch ? &*branch : nullptr);
  if (!d) {
    if (policy == kPolicyMerged && branch && !branch->merged) {
      none.error = "git does not show " + env.spec.sourceBranch + " merged into " +
                   env.spec.targetBranch + " yet (target head " + shortSha(branch->targetHead) +
                   "); left to the scheduled pass";
    } else {
      none.error = env.pinned ? "pinned" : "not due (" + std::string(stateName(env.state)) + ")";
    }
    return none;
  }
  if (!reclaimOne(*d, env, branch ? &*branch : nullptr, decider, actor)) {
    none.error = "changed or deleted meanwhile; left alone";
    return none;
  }
  return *d;
}

void Reaper::start() {
  if (config_.reaper.interval.count() <= 0) {
    spdlog::info("reaper: schedule off (reaper.interval is 0); passes run only on demand");
    return;
  }
  std::lock_guard lock(scheduleMu_);
  if (thread_.joinable()) return;
  stopRequested_ = false;
  stopping_ = false;
  try {
    thread_ = std::thread(&Reaper::scheduleLoop, this);
  } catch (const std::system_error& e) {
    spdlog::error("reaper: cannot start the schedule thread: {}; passes run only on demand",
                  e.what());
    return;
  }
  spdlog::info("reaper: a pass every {}", formatDuration(config_.reaper.interval));
}

void Reaper::stop() {
  std::thread thread;
  {
    std::lock_guard lock(scheduleMu_);
    stopRequested_ = true;
    stopping_ = true;
    thread = std::move(thread_);
  }
  scheduleCv_.notify_all();
  if (thread.joinable()) thread.join();
}

void Reaper::scheduleLoop() {
  std::unique_lock lock(scheduleMu_);
  while (true) {
    if (scheduleCv_.wait_for(lock, config_.reaper.interval, [&] { return stopRequested_; })) return;
    lock.unlock();
    auto r = runOnce(false, "", kScheduleActor);
    if (!r) {
      if (r.status().code() == Code::kUnavailable) {
        spdlog::debug("reaper: scheduled pass skipped: {}", r.status().message());
      } else {
        spdlog::warn("reaper: scheduled pass: {}", r.status().toString());
      }
    }
    lock.lock();
  }
}

}  // namespace qabox
