#pragma once

// The webhook endpoint's logic: a delivery (provider, headers, raw body) in,
// a status and a small JSON answer out, fast. Verification and parsing run
// inline; the work (reclaim, redeploy, deploy) is queued (queue.h) and runs
// through HookActions, which the daemon implements over the reaper, the
// lifecycle and the store.
//
// The order of the checks, each a refusal that changes nothing:
//   no signature header 401; the signature checked against every configured
//   repo's secret before the body is parsed, none matching 401; body not
//   JSON 422; the payload's repo not the one whose secret matched (or not
//   configured) 401, never 404, so that an answer tells nothing of which
//   repos are configured; a malformed field 422; no or bad delivery id 422;
//   a delivery id, or a body (its SHA-256), seen before 200 "duplicate";
//   the queue full 503 with Retry-After, or any 5xx or exception of the
//   dispatch: the id and the body's hash are forgotten so the retry is
//   served. Denied deliveries are recorded at most deniedPerMinute a
//   minute; the rest are counted into one "and K more" event.

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <regex>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/config.h"
#include "core/environment.h"
#include "hooks/dedup.h"
#include "hooks/event.h"
#include "hooks/queue.h"
#include "store/store.h"

namespace qabox::hooks {

// What the actions need of the agent; the daemon's implementation is thin.
class HookActions {
 public:
  virtual ~HookActions() = default;
  virtual Result<std::vector<Environment>> environments() = 0;
  // The reaper's targeted reclaim: `policy` "merged" (git must agree) or
  // "closed" (the pull request was closed unmerged); `reason` is the
  // webhook's word. OK with a false `reclaimed` and `why` when nothing was.
  struct Reclaimed {
    bool reclaimed = false;
    std::string why;
  };
  virtual Result<Reclaimed> reclaim(const Environment& env, const std::string& policy,
                                    const std::string& reason, const std::string& actor) = 0;
  virtual Status redeploy(const std::string& ticket, const std::string& actor) = 0;
  virtual Status deploy(const std::string& ticket, const RepoConfig& repo,
                        const std::string& source, const std::string& target,
                        const std::string& actor) = 0;
  // The tickets on `repoName` whose target moved on (behind), after a fetch;
  // UNIMPLEMENTED when the agent cannot tell.
  virtual Result<std::vector<std::string>> refreshBehind(const std::string& repoName) = 0;
  virtual void record(const Event& e) = 0;
};

struct HookAnswer {
  int status = 202;
  std::string json;    // {"queued":[...]} / {"ignored":"..."} / {"error":"..."}
  int retryAfter = 0;  // seconds, with 503
};

struct HookServiceOptions {
  std::vector<RepoConfig> repos;  // webhook secrets already read
  size_t queue = 256;
  size_t workers = 4;
  size_t dedup = 4096;
  size_t prMemory = 4096;            // pull requests whose branches are remembered
  size_t deniedPerMinute = 20;       // denied deliveries recorded one by one
  std::function<TimePoint()> clock;  // null: Clock::now (tests set it)
};

class HookService {
 public:
  HookService(HookServiceOptions options, HookActions& actions);
  ~HookService();  // stop()
  HookService(const HookService&) = delete;
  HookService& operator=(const HookService&) = delete;

  void start();
  void stop();

  HookAnswer handle(Provider provider, const HeaderFn& headers, std::string_view body);

  // Whether any repo takes webhooks (the daemon serves /hooks only then).
  bool enabled() const;
  // Waits until the queue is empty and idle (tests).
  void drain() { queue_.drain(); }

 private:
  struct Pr {
    std::string source;
    std::string target;
  };
  HookAnswer dispatch(const RepoConfig& repo, const HookEvent& e, const std::string& actor);
  HookAnswer onClosed(const RepoConfig& repo, const HookEvent& e, const std::string& actor);
  HookAnswer onPush(const RepoConfig& repo, const HookEvent& e, const std::string& actor);
  HookAnswer onTargetPush(const RepoConfig& repo, const HookEvent& e, const std::string& actor);
  HookAnswer onComment(const RepoConfig& repo, const HookEvent& e, const std::string& actor);
  // Environments deployed from (repo, source branch), or merged onto
  // `branch` with asTarget; with `target`, only those merged onto it too.
  Result<std::vector<Environment>> deployedFrom(const RepoConfig& repo, const std::string& branch,
                                                bool asTarget, const std::string* target = nullptr);
  // Queues `a`; the ticket is added to `queued` or the reason to `skipped`.
  // False when the queue is full.
  bool enqueue(Action a, std::vector<std::string>& queued, std::vector<std::string>& skipped);
  void record(const std::string& ticket, const std::string& actor, const std::string& outcome,
              const std::string& detail);
  // A denied delivery's event, rate-limited (deniedPerMinute).
  void recordDenied(const std::string& actor, const std::string& detail);
  HookAnswer handleVerified(Provider provider, const HeaderFn& headers, std::string_view body,
                            const std::string& actor);
  void rememberPr(const RepoConfig& repo, int64_t number, Pr pr);
  std::optional<Pr> knownPr(const RepoConfig& repo, int64_t number) const;

  const HookServiceOptions options_;
  HookActions& actions_;
  std::vector<std::regex> ticketPatterns_;  // indexed like options_.repos
  Deduplicator dedup_;
  Deduplicator bodies_;  // "<provider>:<sha256 of the body>"
  WorkQueue queue_;

  mutable std::mutex prMu_;
  std::unordered_map<std::string, Pr> prs_;  // "<repo>#<number>"
  std::deque<std::string> prOrder_;

  std::mutex deniedMu_;
  TimePoint deniedWindow_{};
  size_t deniedInWindow_ = 0;
  uint64_t deniedSuppressed_ = 0;
};

}  // namespace qabox::hooks
