#pragma once

// The webhook endpoint's logic: a delivery (provider, headers, raw body) in,
// a status and a small JSON answer out, fast. Verification and parsing run
// inline; the work (reclaim, redeploy, deploy) is queued (queue.h) and runs
// through HookActions, which the daemon implements over the reaper, the
// lifecycle and the store.
//
// The order of the checks, each a refusal that changes nothing:
//   no signature header 401, body not JSON 422, repo not in the allowlist
//   404, signature wrong 401 (and an event), a malformed field 422, no or
//   bad delivery id 422, a delivery id seen before 200 "duplicate", the
//   queue full 503 with Retry-After (the id is forgotten so the retry is
//   served).

#include <cstdint>
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
  size_t prMemory = 4096;  // pull requests whose branches are remembered
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
  const RepoConfig* repoByFullName(std::string_view fullName) const;
  HookAnswer dispatch(const RepoConfig& repo, const HookEvent& e, const std::string& actor);
  HookAnswer onClosed(const RepoConfig& repo, const HookEvent& e, const std::string& actor);
  HookAnswer onPush(const RepoConfig& repo, const HookEvent& e, const std::string& actor);
  HookAnswer onTargetPush(const RepoConfig& repo, const HookEvent& e, const std::string& actor);
  HookAnswer onComment(const RepoConfig& repo, const HookEvent& e, const std::string& actor);
  // Environments deployed from (repo, source branch).
  Result<std::vector<Environment>> deployedFrom(const RepoConfig& repo, const std::string& branch,
                                                bool asTarget);
  // Queues `a`; the ticket is added to `queued` or the reason to `skipped`.
  // False when the queue is full.
  bool enqueue(Action a, std::vector<std::string>& queued, std::vector<std::string>& skipped);
  void record(const std::string& ticket, const std::string& actor, const std::string& outcome,
              const std::string& detail);
  void rememberPr(const RepoConfig& repo, int64_t number, Pr pr);
  std::optional<Pr> knownPr(const RepoConfig& repo, int64_t number) const;

  const HookServiceOptions options_;
  HookActions& actions_;
  std::vector<std::regex> ticketPatterns_;  // indexed like options_.repos
  Deduplicator dedup_;
  WorkQueue queue_;

  mutable std::mutex prMu_;
  std::unordered_map<std::string, Pr> prs_;  // "<repo>#<number>"
  std::deque<std::string> prOrder_;
};

}  // namespace qabox::hooks
