#pragma once

// What a git host's webhook delivery says, normalised across GitHub, GitLab
// and Gitea/Forgejo, and how each host's signature is checked. Pure: text in,
// values or a Status out; nothing here throws or touches the OS.

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"

namespace qabox::hooks {

enum class Provider { kGithub, kGitlab, kGitea };

std::string_view providerName(Provider p);
// "github", "gitlab", "gitea" (Forgejo sends Gitea's headers too).
std::optional<Provider> parseProvider(std::string_view name);

// A request header by name, case-insensitively; "" when absent.
using HeaderFn = std::function<std::string(std::string_view name)>;

// The longest branch name, delivery id and comment a delivery may carry.
inline constexpr size_t kMaxRefBytes = 255;
inline constexpr size_t kMaxDeliveryIdBytes = 128;
inline constexpr size_t kMaxCommentBytes = 64 * 1024;

struct HookEvent {
  enum class Kind { kIgnored, kPrOpened, kPrClosed, kPush, kComment };
  Provider provider = Provider::kGithub;
  std::string deliveryId;
  std::string repoFullName;
  Kind kind = Kind::kIgnored;
  std::string ignoredWhy;  // kIgnored: what it was and why nothing is done
  // Pull (merge) requests and comments on them.
  int64_t number = 0;
  bool merged = false;  // kPrClosed
  std::string source;   // kPrOpened, kPrClosed; kComment when the payload names it
  std::string target;
  std::string head;  // the source's head commit
  // kPush
  std::string branch;  // refs/heads/<branch>
  std::string after;
  // kPrOpened, kPrClosed, kComment: the pull request's head is in another
  // repository (a fork) than its base. GitHub/Gitea: pull_request.head.repo
  // (missing or null counts as a fork) against pull_request.base.repo;
  // GitLab: source_project_id against target_project_id.
  bool fork = false;
  // The event's own time, seconds since the epoch, when the payload carries
  // one (pull_request.closed_at or updated_at; GitLab object_attributes.updated_at); 0 otherwise.
  int64_t atUnixSeconds = 0;
  // kComment
  std::string body;
  // GitHub/Gitea: comment.author_association is OWNER, MEMBER or
  // COLLABORATOR. GitLab's note payload says nothing of the author's
  // access: always true there.
  bool authorTrusted = false;
  std::string authorAssociation;  // as sent, for the answer ("" when absent)
  bool prClosed = false;          // the payload says the pull request is closed or merged
};

// "2026-12-01T12:00:00Z", "2026-12-01T12:00:00+02:00", "2026-12-01 12:00:00 UTC"
// as seconds since the epoch; nullopt when it is not one of these.
std::optional<int64_t> parseTimestamp(std::string_view s);

// Lower-case hex SHA-256 of `data`.
std::string sha256Hex(std::string_view data);

// The delivery's id header (X-GitHub-Delivery, X-Gitlab-Event-UUID or
// X-Gitlab-Webhook-UUID, X-Gitea-Delivery); INVALID_ARGUMENT when missing
// or not a short printable token.
Result<std::string> deliveryId(Provider p, const HeaderFn& headers);

// Checks the delivery against the repo's secret, in constant time:
//   GitHub        X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>
//   GitLab        X-Gitlab-Token: <the secret>
//   Gitea/Forgejo X-Gitea-Signature (or X-Forgejo-Signature): <hex HMAC-SHA256>
// UNAUTHENTICATED naming what was wrong (never the secret or the body).
Status verifySignature(Provider p, const HeaderFn& headers, std::string_view body,
                       std::string_view secret);
// Whether the delivery carries its host's signature header at all.
bool hasSignature(Provider p, const HeaderFn& headers);

// The body as JSON: INVALID_ARGUMENT when it is not a JSON object.
Result<nlohmann::json> parseBody(std::string_view body);
// The repository the payload names: repository.full_name (GitHub, Gitea),
// project.path_with_namespace (GitLab).
Result<std::string> repoFullName(Provider p, const nlohmann::json& payload);
// The event (X-GitHub-Event, X-Gitlab-Event, X-Gitea-Event) and its payload;
// an event qabox does nothing with is kIgnored with the reason, a field that
// is missing or of the wrong type INVALID_ARGUMENT naming it.
Result<HookEvent> parseEvent(Provider p, const HeaderFn& headers, const nlohmann::json& payload);

// Lower-case hex HMAC-SHA256 of `body` under `secret` (what the hosts send).
std::string hmacSha256Hex(std::string_view secret, std::string_view body);

}  // namespace qabox::hooks
