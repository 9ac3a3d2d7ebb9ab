#include "hooks/service.h"
#include "core/ascii.h"
#include "core/short_sha.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>

namespace qabox::hooks {

using nlohmann::json;

namespace {

constexpr int kRetryAfterSeconds = 5;
constexpr int64_t kClockSlackSeconds = 60;

// Whether a line of `body`, trimmed, starts with `phrase` (case aside).
bool startsALine(std::string_view body, std::string_view phrase) {
  while (!body.empty()) {
    size_t nl = body.find('\n');
    std::string_view line = body.substr(0, nl);
    size_t first = line.find_first_not_of(" \t\r");
    if (first != std::string_view::npos && istartsWith(line.substr(first), phrase)) {
      return true;
    }
    if (nl == std::string_view::npos) break;
    body = body.substr(nl + 1);
  }
  return false;
}

HookAnswer answer(int status, json body) {
  HookAnswer a;
  a.status = status;
  a.json = body.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  return a;
}

HookAnswer refused(int status, const std::string& why) { return answer(status, {{"error", why}}); }

HookAnswer ignoredAnswer(const std::string& why) { return answer(200, {{"ignored", why}}); }

// queued and skipped tickets as one answer: 202 when something was queued.
HookAnswer workAnswer(const std::vector<std::string>& queued,
                      const std::vector<std::string>& skipped, const std::string& none) {
  if (queued.empty() && skipped.empty()) return ignoredAnswer(none);
  json body{{"queued", queued}};
  if (!skipped.empty()) body["skipped"] = skipped;
  return answer(queued.empty() ? 200 : 202, std::move(body));
}

}  // namespace

HookService::HookService(HookServiceOptions options, HookActions& actions)
    : options_(std::move(options)),
      actions_(actions),
      dedup_(options_.dedup),
      bodies_(options_.dedup),
      queue_(options_.queue, options_.workers) {
  for (const RepoConfig& r : options_.repos) {
    try {
      ticketPatterns_.emplace_back(r.ticketPattern);
    } catch (const std::regex_error&) {
      // validateConfig() compiled it already; an empty pattern finds nothing.
      ticketPatterns_.emplace_back("$^");
    }
  }
}

HookService::~HookService() { stop(); }

void HookService::start() { queue_.start(); }
void HookService::stop() { queue_.stop(); }

bool HookService::enabled() const {
  return std::any_of(options_.repos.begin(), options_.repos.end(),
                     [](const RepoConfig& r) { return r.hasWebhook(); });
}

void HookService::record(const std::string& ticket, const std::string& actor,
                         const std::string& outcome, const std::string& detail) {
  Event e;
  e.at = Clock::now();
  e.ticket = ticket;
  e.action = "webhook";
  e.actor = actor;
  e.outcome = outcome;
  e.detail = detail;
  actions_.record(e);
}

void HookService::recordDenied(const std::string& actor, const std::string& detail) {
  const TimePoint now = options_.clock ? options_.clock() : Clock::now();
  uint64_t carried = 0;
  {
    std::lock_guard lock(deniedMu_);
    if (now - deniedWindow_ >= std::chrono::minutes(1)) {
      carried = deniedSuppressed_;
      deniedSuppressed_ = 0;
      deniedInWindow_ = 0;
      deniedWindow_ = now;
    }
    if (deniedInWindow_ >= std::max<size_t>(1, options_.deniedPerMinute)) {
      if (deniedSuppressed_++ == 0) {
        spdlog::warn("webhooks: more than {} denied deliveries in a minute; counting the rest",
                     options_.deniedPerMinute);
      }
      return;
    }
    ++deniedInWindow_;
  }
  if (carried > 0) {
    record("", "webhook", "denied",
           "and " + std::to_string(carried) +
               " more denied deliveries in the minute before, not recorded one by one");
  }
  record("", actor, "denied", detail);
}

HookAnswer HookService::handle(Provider provider, const HeaderFn& headers, std::string_view body) {
  const std::string actor = "webhook:" + std::string(providerName(provider));
  if (!hasSignature(provider, headers)) {
    recordDenied(actor, "a delivery without a signature header");
    return refused(401, "no signature header");
  }
  return handleVerified(provider, headers, body, actor);
}

HookAnswer HookService::handleVerified(Provider provider, const HeaderFn& headers,
                                       std::string_view body, const std::string& actor) {
  // The signature first, against each configured repo's secret (a few), so
  // that nothing of an unsigned body is parsed.
  std::vector<const RepoConfig*> matched;
  std::string why;
  for (const RepoConfig& r : options_.repos) {
    if (!r.hasWebhook()) continue;
    Status s = verifySignature(provider, headers, body, r.webhookSecret);
    if (s.isOk()) {
      matched.push_back(&r);
    } else if (why.empty()) {
      why = s.message();
    }
  }
  if (matched.empty()) {
    std::string detail = why.empty() ? "no repo takes webhooks" : why;
    recordDenied(actor, "no configured repo's secret matches: " + detail);
    return refused(401, detail);
  }
  auto payload = parseBody(body);
  if (!payload) return refused(422, payload.status().message());
  auto fullName = repoFullName(provider, *payload);
  if (!fullName) return refused(422, fullName.status().message());
  const RepoConfig* repo = nullptr;
  for (const RepoConfig* r : matched) {
    if (iequals(r->fullName, *fullName)) repo = r;
  }
  if (repo == nullptr) {
    recordDenied(actor, "signed with the secret of repo " + matched.front()->name +
                            " but names another repository");
    return refused(401, "the signature does not match the repository the payload names");
  }
  auto id = deliveryId(provider, headers);
  if (!id) return refused(422, id.status().message());
  auto event = parseEvent(provider, headers, *payload);
  if (!event) return refused(422, event.status().message());
  event->deliveryId = *id;
  const std::string key = std::string(providerName(provider)) + ":" + *id;
  const std::string bodyKey = std::string(providerName(provider)) + ":" + sha256Hex(body);
  if (!dedup_.add(key)) return answer(200, {{"duplicate", *id}});
  if (!bodies_.add(bodyKey)) {
    // A replay under a fresh id: its id stays remembered too.
    return answer(200, {{"duplicate", *id}, {"why", "this body was delivered before"}});
  }
  auto forget = [&] {
    dedup_.forget(key);
    bodies_.forget(bodyKey);
  };
  try {
    HookAnswer a = dispatch(*repo, *event, actor);
    if (a.status >= 500) forget();
    return a;
  } catch (const std::exception& ex) {
    forget();
    spdlog::error("webhooks: delivery {}: {}", *id, ex.what());
    return refused(500, "the delivery failed; retry later");
  } catch (...) {
    forget();
    return refused(500, "the delivery failed; retry later");
  }
}

HookAnswer HookService::dispatch(const RepoConfig& repo, const HookEvent& e,
                                 const std::string& actor) {
  if (e.fork && e.kind != HookEvent::Kind::kIgnored && e.kind != HookEvent::Kind::kPush) {
    return ignoredAnswer("pull request from a fork: #" + std::to_string(e.number) +
                         " is ignored (its branches are another repository's)");
  }
  switch (e.kind) {
    case HookEvent::Kind::kIgnored: return ignoredAnswer(e.ignoredWhy);
    case HookEvent::Kind::kPrOpened:
      rememberPr(repo, e.number, {e.source, e.target});
      return ignoredAnswer("pull request #" + std::to_string(e.number) +
                           ": its branches are remembered; pushes to " + e.source +
                           " redeploy what was deployed from it");
    case HookEvent::Kind::kPrClosed: return onClosed(repo, e, actor);
    case HookEvent::Kind::kPush: {
      HookAnswer a = onPush(repo, e, actor);
      if (a.status == 503) return a;
      HookAnswer t = onTargetPush(repo, e, actor);
      if (t.status == 503 || a.status == 200) return t.status == 200 && a.status == 200 ? a : t;
      return a;
    }
    case HookEvent::Kind::kComment: return onComment(repo, e, actor);
  }
  return ignoredAnswer("unknown event");
}

Result<std::vector<Environment>> HookService::deployedFrom(const RepoConfig& repo,
                                                           const std::string& branch, bool asTarget,
                                                           const std::string* target) {
  QABOX_ASSIGN_OR_RETURN(std::vector<Environment> all, actions_.environments());
  std::vector<Environment> out;
  for (Environment& env : all) {
    const RepoConfig* r = findRepo(options_.repos, env.spec.repo);
    if (r == nullptr || r->name != repo.name) continue;
    bool match = asTarget ? env.spec.targetBranch == branch && env.spec.sourceBranch != branch
                          : env.spec.sourceBranch == branch;
    if (target != nullptr && env.spec.targetBranch != *target) match = false;
    if (match) out.push_back(std::move(env));
  }
  return out;
}

bool HookService::enqueue(Action a, std::vector<std::string>& queued,
                          std::vector<std::string>& skipped) {
  std::string ticket = a.ticket;
  switch (queue_.push(std::move(a))) {
    case WorkQueue::Outcome::kQueued:
    case WorkQueue::Outcome::kReplaced: queued.push_back(ticket); return true;
    case WorkQueue::Outcome::kSuperseded:
      skipped.push_back(ticket + ": a reclaim is already pending");
      return true;
    case WorkQueue::Outcome::kFull:
    case WorkQueue::Outcome::kStopped: return false;
  }
  return false;
}

HookAnswer HookService::onClosed(const RepoConfig& repo, const HookEvent& e,
                                 const std::string& actor) {
  const std::string pr = "pull request #" + std::to_string(e.number);
  if (e.merged && repo.onMerged == "ignore")
    return ignoredAnswer(pr + " merged: on_merged is ignore");
  if (!e.merged && repo.onClosed == "keep") {
    return ignoredAnswer(pr + " closed without merging: on_closed is keep");
  }
  auto envs = deployedFrom(repo, e.source, false, &e.target);
  if (!envs) return refused(503, "listing environments: " + envs.status().message());
  std::vector<std::string> queued;
  std::vector<std::string> skipped;
  const std::string policy = e.merged ? "merged" : "closed";
  const std::string reason = (e.merged ? pr + " merged" : pr + " closed without merging") +
                             " (delivery " + e.deliveryId + ")";
  for (const Environment& env : *envs) {
    // A "closed" reclaim has no git to confirm it: an environment deployed
    // after the close (a replay, a reopened pull request) is not reclaimed.
    // The slack is for the host's clock against the agent's.
    if (!e.merged && e.atUnixSeconds > 0 &&
        toUnixMillis(env.deployedAt) / 1000 > e.atUnixSeconds + kClockSlackSeconds) {
      skipped.push_back(env.ticket + ": deployed after the pull request was closed");
      record(env.ticket, actor, "skipped",
             "not reclaimed: " + reason + ": deployed after the event's own time");
      continue;
    }
    Action a;
    a.ticket = env.ticket;
    a.type = Action::Type::kReclaim;
    a.what = "reclaim " + env.ticket + ": " + reason;
    a.run = [this, env, policy, reason, actor] {
      auto r = actions_.reclaim(env, policy, reason, actor);
      if (!r) {
        record(env.ticket, actor, "error", "reclaim: " + reason + ": " + r.status().message());
      } else if (!r->reclaimed) {
        record(env.ticket, actor, "skipped", "not reclaimed: " + reason + ": " + r->why);
      }
    };
    if (!enqueue(std::move(a), queued, skipped)) {
      record(env.ticket, actor, "refused", "queue full: " + reason);
      HookAnswer full = refused(503, "the webhook queue is full; retry later");
      full.retryAfter = kRetryAfterSeconds;
      return full;
    }
  }
  return workAnswer(queued, skipped, pr + ": no environment is deployed from " + e.source);
}

HookAnswer HookService::onPush(const RepoConfig& repo, const HookEvent& e,
                               const std::string& actor) {
  if (repo.onPush == "ignore") return ignoredAnswer("push to " + e.branch + ": on_push is ignore");
  auto envs = deployedFrom(repo, e.branch, false);
  if (!envs) return refused(503, "listing environments: " + envs.status().message());
  std::vector<std::string> queued;
  std::vector<std::string> skipped;
  const std::string why =
      "push of " + shortSha(e.after) + " to " + e.branch + " (delivery " + e.deliveryId + ")";
  for (const Environment& env : *envs) {
    if (!env.spec.secretKeys.empty()) {
      skipped.push_back(env.ticket + ": deployed with secrets; redeploy it from its pipeline");
      record(env.ticket, actor, "skipped",
             "not redeployed for " + why + ": deployed with secrets qabox does not keep");
      continue;
    }
    if (env.sourceCommit == e.after) {
      skipped.push_back(env.ticket + ": already at " + shortSha(e.after));
      continue;
    }
    Action a;
    a.ticket = env.ticket;
    a.type = Action::Type::kRedeploy;
    a.what = "redeploy " + env.ticket + " for " + why;
    std::string ticket = env.ticket;
    a.run = [this, ticket, why, actor] {
      Status s = actions_.redeploy(ticket, actor);
      record(ticket, actor, s.isOk() ? "ok" : "error",
             "redeploy for " + why + (s.isOk() ? "" : ": " + s.message()));
    };
    if (!enqueue(std::move(a), queued, skipped)) {
      record(env.ticket, actor, "refused", "queue full: " + why);
      HookAnswer full = refused(503, "the webhook queue is full; retry later");
      full.retryAfter = kRetryAfterSeconds;
      return full;
    }
  }
  return workAnswer(queued, skipped,
                    "push to " + e.branch + ": no environment is deployed from it");
}

HookAnswer HookService::onTargetPush(const RepoConfig& repo, const HookEvent& e,
                                     const std::string& actor) {
  auto envs = deployedFrom(repo, e.branch, true);
  if (!envs) return refused(503, "listing environments: " + envs.status().message());
  if (envs->empty()) {
    return ignoredAnswer("push to " + e.branch + ": no environment is merged onto it");
  }
  const std::string why = "push of " + shortSha(e.after) + " to target " + e.branch +
                          " (delivery " + e.deliveryId + ")";
  // One refresh per repo, coalesced like a ticket's actions: a storm of
  // pushes to develop fetches once or twice, not once per push.
  Action a;
  a.ticket = "@" + repo.name;
  a.type = Action::Type::kRedeploy;
  a.what = "refresh what is behind on " + repo.name + " for " + why;
  bool redeploy = repo.onTargetPush == "redeploy";
  std::string repoName = repo.name;
  a.run = [this, repoName, why, actor, redeploy] {
    auto behind = actions_.refreshBehind(repoName);
    if (!behind) {
      record("", actor, "error",
             "marking what is behind for " + why + ": " + behind.status().message());
      return;
    }
    std::string list;
    for (const auto& t : *behind) list += (list.empty() ? "" : ", ") + t;
    record("", actor, "ok", why + ": behind now: " + (list.empty() ? std::string("none") : list));
    if (!redeploy) return;
    std::vector<std::string> queued;
    std::vector<std::string> skipped;
    for (const std::string& ticket : *behind) {
      Action r;
      r.ticket = ticket;
      r.type = Action::Type::kRedeploy;
      r.what = "redeploy " + ticket + " for " + why;
      r.run = [this, ticket, why, actor] {
        Status s = actions_.redeploy(ticket, actor);
        record(ticket, actor, s.isOk() ? "ok" : "error",
               "redeploy onto the new target for " + why + (s.isOk() ? "" : ": " + s.message()));
      };
      if (!enqueue(std::move(r), queued, skipped)) {
        record(ticket, actor, "refused", "queue full: redeploy for " + why);
      }
    }
  };
  std::vector<std::string> queued;
  std::vector<std::string> skipped;
  if (!enqueue(std::move(a), queued, skipped)) {
    record("", actor, "refused", "queue full: " + why);
    HookAnswer full = refused(503, "the webhook queue is full; retry later");
    full.retryAfter = kRetryAfterSeconds;
    return full;
  }
  json body{{"queued", json::array()}, {"refresh", repo.name}};
  for (const Environment& env : *envs) body["queued"].push_back(env.ticket);
  return answer(202, std::move(body));
}

HookAnswer HookService::onComment(const RepoConfig& repo, const HookEvent& e,
                                  const std::string& actor) {
  const std::string pr = "pull request #" + std::to_string(e.number);
  if (repo.deployPhrase.empty())
    return ignoredAnswer("comment on " + pr + ": deploy_phrase is off");
  if (!startsALine(e.body, repo.deployPhrase)) {
    return ignoredAnswer("comment on " + pr + ": not the deploy phrase (at the start of a line)");
  }
  if (e.prClosed) return ignoredAnswer("comment on " + pr + ": the pull request is closed");
  if (!e.authorTrusted) {
    std::string why =
        "comment on " + pr + " by an author who is not trusted (author_association " +
        (e.authorAssociation.empty() ? std::string("missing") : e.authorAssociation.substr(0, 40)) +
        "; OWNER, MEMBER or COLLABORATOR deploy); nothing deployed";
    record("", actor, "skipped", why + " (delivery " + e.deliveryId + ")");
    return ignoredAnswer(why);
  }
  Pr branches{e.source, e.target};
  if (branches.source.empty()) {
    auto known = knownPr(repo, e.number);
    if (!known) {
      std::string why = "PR #" + std::to_string(e.number) +
                        " not seen yet: qabox learns a pull request's branches from its "
                        "pull_request events (opened, synchronize, reopened); nothing deployed";
      record("", actor, "skipped", why + " (delivery " + e.deliveryId + ")");
      return ignoredAnswer(why);
    }
    branches = *known;
  }
  size_t index = static_cast<size_t>(&repo - options_.repos.data());
  std::smatch m;
  if (index >= ticketPatterns_.size() ||
      !std::regex_search(branches.source, m, ticketPatterns_[index])) {
    std::string why = pr + ": no ticket in branch " + branches.source + " (ticket_pattern " +
                      repo.ticketPattern + "); nothing deployed";
    record("", actor, "skipped", why + " (delivery " + e.deliveryId + ")");
    return ignoredAnswer(why);
  }
  std::string ticket = m.str(0);
  Action a;
  a.ticket = ticket;
  a.type = Action::Type::kDeploy;
  const std::string why = "deploy phrase on " + pr + " (delivery " + e.deliveryId + ")";
  a.what = "deploy " + ticket + " for " + why;
  a.run = [this, ticket, branches, name = repo.name, why, actor] {
    const RepoConfig* r = findRepo(options_.repos, name);
    if (r == nullptr) return;
    Status s = actions_.deploy(ticket, *r, branches.source, branches.target, actor);
    record(ticket, actor, s.isOk() ? "ok" : "error",
           "deploy of " + branches.source + " onto " + branches.target + " for " + why +
               (s.isOk() ? "" : ": " + s.message()));
  };
  std::vector<std::string> queued;
  std::vector<std::string> skipped;
  if (!enqueue(std::move(a), queued, skipped)) {
    record(ticket, actor, "refused", "queue full: " + why);
    HookAnswer full = refused(503, "the webhook queue is full; retry later");
    full.retryAfter = kRetryAfterSeconds;
    return full;
  }
  return workAnswer(queued, skipped, pr);
}

void HookService::rememberPr(const RepoConfig& repo, int64_t number, Pr pr) {
  std::lock_guard lock(prMu_);
  std::string key = repo.name + "#" + std::to_string(number);
  auto [it, fresh] = prs_.insert_or_assign(key, std::move(pr));
  if (!fresh) return;
  prOrder_.push_back(key);
  while (prOrder_.size() > std::max<size_t>(1, options_.prMemory)) {
    prs_.erase(prOrder_.front());
    prOrder_.pop_front();
  }
}

std::optional<HookService::Pr> HookService::knownPr(const RepoConfig& repo, int64_t number) const {
  std::lock_guard lock(prMu_);
  auto it = prs_.find(repo.name + "#" + std::to_string(number));
  if (it == prs_.end()) return std::nullopt;
  return it->second;
}

}  // namespace qabox::hooks
