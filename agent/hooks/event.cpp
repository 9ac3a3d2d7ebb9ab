#include "hooks/event.h"
#include "core/ascii.h"

#include <sodium.h>

#include <nlohmann/json.hpp>

#include <cctype>
#include <cstdlib>

namespace qabox::hooks {

using nlohmann::json;

namespace {

constexpr const char* kGithubSignature = "X-Hub-Signature-256";
constexpr const char* kGitlabToken = "X-Gitlab-Token";
constexpr const char* kGiteaSignature = "X-Gitea-Signature";
constexpr const char* kForgejoSignature = "X-Forgejo-Signature";

Status unauthenticated(std::string m) { return {Code::kUnauthenticated, std::move(m)}; }

void initSodium() {
  static const bool ok = sodium_init() >= 0;
  if (!ok) std::abort();
}

bool constantTimeEqual(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

// A path of keys into the payload, for errors: "pull_request.head.ref".
class Fields {
 public:
  Fields(const json& root, std::string_view what) : root_(root), what_(what) {}

  // The node at `path` (dot-separated), or null when any part is missing.
  const json* find(std::string_view path) const {
    const json* node = &root_;
    while (!path.empty()) {
      size_t dot = path.find('.');
      std::string key(path.substr(0, dot));
      if (!node->is_object()) return nullptr;
      auto it = node->find(key);
      if (it == node->end()) return nullptr;
      node = &*it;
      path = dot == std::string_view::npos ? std::string_view() : path.substr(dot + 1);
    }
    return node;
  }

  Status string(std::string_view path, std::string& out, size_t max) const {
    const json* n = find(path);
    if (n == nullptr) return bad(path, "is missing");
    if (!n->is_string()) return bad(path, "must be a string");
    const auto& s = n->get_ref<const std::string&>();
    if (s.size() > max) return bad(path, "is longer than " + std::to_string(max) + " bytes");
    out = s;
    return Status::ok();
  }
  Status ref(std::string_view path, std::string& out) const {
    QABOX_RETURN_IF_ERROR(string(path, out, kMaxRefBytes));
    if (out.empty()) return bad(path, "is empty");
    for (char c : out) {
      auto u = static_cast<unsigned char>(c);
      if (u < 0x20 || u == 0x7f) return bad(path, "holds a control character");
    }
    return Status::ok();
  }
  Status sha(std::string_view path, std::string& out) const {
    QABOX_RETURN_IF_ERROR(string(path, out, 64));
    if (out.size() < 40 || out.find_first_not_of("0123456789abcdef") != std::string::npos) {
      return bad(path, "must be a commit id (40 or 64 lower-case hex digits)");
    }
    return Status::ok();
  }
  Status number(std::string_view path, int64_t& out) const {
    const json* n = find(path);
    if (n == nullptr) return bad(path, "is missing");
    if (!n->is_number_integer()) return bad(path, "must be a whole number");
    out = n->get<int64_t>();
    if (out <= 0) return bad(path, "must be positive");
    return Status::ok();
  }
  Status boolean(std::string_view path, bool& out) const {
    const json* n = find(path);
    if (n == nullptr) return bad(path, "is missing");
    if (!n->is_boolean()) return bad(path, "must be true or false");
    out = n->get<bool>();
    return Status::ok();
  }
  // The string at `path`, or "" when it is absent or not a string.
  std::string optString(std::string_view path) const {
    const json* n = find(path);
    if (n == nullptr || !n->is_string()) return {};
    return n->get<std::string>().substr(0, 255);
  }
  // The timestamp at `path` (parseTimestamp), 0 when absent or unreadable.
  int64_t optTime(std::string_view path) const {
    return parseTimestamp(optString(path)).value_or(0);
  }
  // The whole number at `path`, or nullopt.
  std::optional<int64_t> optNumber(std::string_view path) const {
    const json* n = find(path);
    if (n == nullptr || !n->is_number_integer()) return std::nullopt;
    return n->get<int64_t>();
  }
  // Absent or null: false; an object (GitHub's and Gitea's issue.pull_request): true.
  bool present(std::string_view path) const {
    const json* n = find(path);
    return n != nullptr && !n->is_null();
  }

 private:
  Status bad(std::string_view path, const std::string& rule) const {
    return invalidArgument(what_ + " payload: " + std::string(path) + " " + rule);
  }
  const json& root_;
  std::string what_;
};

HookEvent ignored(std::string why) {
  HookEvent e;
  e.kind = HookEvent::Kind::kIgnored;
  e.ignoredWhy = std::move(why);
  return e;
}

// GitHub/Gitea: the head's repository is not the base's (a fork), or is gone.
bool headIsFork(const Fields& f) {
  std::string head = f.optString("pull_request.head.repo.full_name");
  std::string base = f.optString("pull_request.base.repo.full_name");
  if (base.empty()) base = f.optString("repository.full_name");
  return head.empty() || !iequals(head, base);
}

// GitLab: source_project_id against target_project_id under `prefix`; a
// payload that names neither is taken as the project's own.
bool gitlabIsFork(const Fields& f, const std::string& prefix) {
  auto source = f.optNumber(prefix + ".source_project_id");
  auto target = f.optNumber(prefix + ".target_project_id");
  if (!source && !target) return false;
  return source != target;
}

std::string printable(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 60)) {
    out += std::isprint(static_cast<unsigned char>(c)) ? c : '?';
  }
  return out;
}

// refs/heads/<branch> and its new head; tags and deletions are ignored.
Result<HookEvent> parsePush(const Fields& f) {
  HookEvent e;
  std::string ref;
  QABOX_RETURN_IF_ERROR(f.ref("ref", ref));
  QABOX_RETURN_IF_ERROR(f.string("after", e.after, 64));
  constexpr std::string_view kHeads = "refs/heads/";
  if (ref.rfind(kHeads, 0) != 0) return ignored("push to " + printable(ref) + ": not a branch");
  e.branch = ref.substr(kHeads.size());
  if (e.branch.empty()) return invalidArgument("push payload: ref names no branch");
  if (e.after.find_first_not_of('0') == std::string::npos) {
    return ignored("push deleted branch " + printable(e.branch));
  }
  QABOX_RETURN_IF_ERROR(f.sha("after", e.after));
  e.kind = HookEvent::Kind::kPush;
  return e;
}

// GitHub's and Gitea's pull_request payloads share their shape.
Result<HookEvent> parsePullRequest(const Fields& f) {
  HookEvent e;
  std::string action;
  QABOX_RETURN_IF_ERROR(f.string("action", action, 64));
  QABOX_RETURN_IF_ERROR(f.number("pull_request.number", e.number));
  QABOX_RETURN_IF_ERROR(f.ref("pull_request.head.ref", e.source));
  QABOX_RETURN_IF_ERROR(f.ref("pull_request.base.ref", e.target));
  QABOX_RETURN_IF_ERROR(f.sha("pull_request.head.sha", e.head));
  e.fork = headIsFork(f);
  e.atUnixSeconds = f.optTime("pull_request.closed_at");
  if (e.atUnixSeconds == 0) e.atUnixSeconds = f.optTime("pull_request.updated_at");
  if (action == "closed") {
    QABOX_RETURN_IF_ERROR(f.boolean("pull_request.merged", e.merged));
    e.kind = HookEvent::Kind::kPrClosed;
  } else if (action == "opened" || action == "reopened" || action == "synchronize" ||
             action == "synchronized" || action == "edited") {
    e.kind = HookEvent::Kind::kPrOpened;
  } else {
    HookEvent i = ignored("pull request #" + std::to_string(e.number) + " " + printable(action));
    return i;
  }
  return e;
}

Result<HookEvent> parseIssueComment(const Fields& f) {
  HookEvent e;
  std::string action;
  QABOX_RETURN_IF_ERROR(f.string("action", action, 64));
  if (action != "created") return ignored("comment " + printable(action));
  QABOX_RETURN_IF_ERROR(f.number("issue.number", e.number));
  if (!f.present("issue.pull_request")) {
    return ignored("comment on issue #" + std::to_string(e.number) + ", not a pull request");
  }
  QABOX_RETURN_IF_ERROR(f.string("comment.body", e.body, kMaxCommentBytes));
  e.authorAssociation = f.optString("comment.author_association");
  const std::string assoc = asciiLowered(e.authorAssociation);
  e.authorTrusted = assoc == "owner" || assoc == "member" || assoc == "collaborator";
  e.prClosed = asciiLowered(f.optString("issue.state")) == "closed";
  e.kind = HookEvent::Kind::kComment;
  return e;
}

Result<HookEvent> parseGithubOrGitea(std::string_view what, const std::string& event,
                                     const json& payload) {
  Fields f(payload, what);
  if (event == "push") return parsePush(f);
  if (event == "pull_request") return parsePullRequest(f);
  if (event == "issue_comment") return parseIssueComment(f);
  if (event.empty()) return invalidArgument(std::string(what) + ": no event header");
  return ignored("event " + printable(event) + ": nothing to do");
}

Result<HookEvent> parseGitlab(const std::string& event, const json& payload) {
  Fields f(payload, "GitLab");
  if (event == "Push Hook") return parsePush(f);
  if (event == "Merge Request Hook") {
    HookEvent e;
    std::string action;
    QABOX_RETURN_IF_ERROR(f.number("object_attributes.iid", e.number));
    QABOX_RETURN_IF_ERROR(f.ref("object_attributes.source_branch", e.source));
    QABOX_RETURN_IF_ERROR(f.ref("object_attributes.target_branch", e.target));
    QABOX_RETURN_IF_ERROR(f.sha("object_attributes.last_commit.id", e.head));
    QABOX_RETURN_IF_ERROR(f.string("object_attributes.action", action, 64));
    e.fork = gitlabIsFork(f, "object_attributes");
    e.atUnixSeconds = f.optTime("object_attributes.updated_at");
    if (action == "merge") {
      e.kind = HookEvent::Kind::kPrClosed;
      e.merged = true;
    } else if (action == "close") {
      e.kind = HookEvent::Kind::kPrClosed;
    } else if (action == "open" || action == "reopen" || action == "update") {
      e.kind = HookEvent::Kind::kPrOpened;
    } else {
      return ignored("merge request !" + std::to_string(e.number) + " " + printable(action));
    }
    return e;
  }
  if (event == "Note Hook") {
    HookEvent e;
    std::string type;
    QABOX_RETURN_IF_ERROR(f.string("object_attributes.noteable_type", type, 64));
    if (type != "MergeRequest") return ignored("note on a " + printable(type));
    QABOX_RETURN_IF_ERROR(f.number("merge_request.iid", e.number));
    QABOX_RETURN_IF_ERROR(f.ref("merge_request.source_branch", e.source));
    QABOX_RETURN_IF_ERROR(f.ref("merge_request.target_branch", e.target));
    QABOX_RETURN_IF_ERROR(f.string("object_attributes.note", e.body, kMaxCommentBytes));
    e.fork = gitlabIsFork(f, "merge_request");
    e.authorTrusted = true;  // the note payload says nothing of the author's access
    std::string state = asciiLowered(f.optString("merge_request.state"));
    e.prClosed = state == "closed" || state == "merged";
    e.kind = HookEvent::Kind::kComment;
    return e;
  }
  if (event.empty()) return invalidArgument("GitLab: no X-Gitlab-Event header");
  return ignored("event " + printable(event) + ": nothing to do");
}

}  // namespace

std::string_view providerName(Provider p) {
  switch (p) {
    case Provider::kGithub: return "github";
    case Provider::kGitlab: return "gitlab";
    case Provider::kGitea: return "gitea";
  }
  return "?";
}

std::optional<Provider> parseProvider(std::string_view name) {
  if (name == "github") return Provider::kGithub;
  if (name == "gitlab") return Provider::kGitlab;
  if (name == "gitea" || name == "forgejo") return Provider::kGitea;
  return std::nullopt;
}

std::string hmacSha256Hex(std::string_view secret, std::string_view body) {
  initSodium();
  unsigned char mac[crypto_auth_hmacsha256_BYTES];
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, reinterpret_cast<const unsigned char*>(secret.data()),
                              secret.size());
  crypto_auth_hmacsha256_update(&st, reinterpret_cast<const unsigned char*>(body.data()),
                                body.size());
  crypto_auth_hmacsha256_final(&st, mac);
  std::string hex(sizeof mac * 2 + 1, '\0');
  sodium_bin2hex(hex.data(), hex.size(), mac, sizeof mac);
  hex.pop_back();
  return hex;
}

std::string sha256Hex(std::string_view data) {
  initSodium();
  unsigned char digest[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(digest, reinterpret_cast<const unsigned char*>(data.data()), data.size());
  std::string hex(sizeof digest * 2 + 1, '\0');
  sodium_bin2hex(hex.data(), hex.size(), digest, sizeof digest);
  hex.pop_back();
  return hex;
}

std::optional<int64_t> parseTimestamp(std::string_view s) {
  // YYYY-MM-DD?hh:mm:ss, then Z, " UTC", or +hh:mm / +hhmm (or -).
  if (s.size() < 19) return std::nullopt;
  auto digits = [&](size_t at, size_t n, int& out) {
    out = 0;
    for (size_t i = at; i < at + n; ++i) {
      if (i >= s.size() || !std::isdigit(static_cast<unsigned char>(s[i]))) return false;
      out = out * 10 + (s[i] - '0');
    }
    return true;
  };
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  if (!digits(0, 4, year) || s[4] != '-' || !digits(5, 2, month) || s[7] != '-' ||
      !digits(8, 2, day) || (s[10] != 'T' && s[10] != ' ') || !digits(11, 2, hour) ||
      s[13] != ':' || !digits(14, 2, minute) || s[16] != ':' || !digits(17, 2, second)) {
    return std::nullopt;
  }
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) {
    return std::nullopt;
  }
  std::string_view rest = s.substr(19);
  if (!rest.empty() && rest[0] == '.') {  // fractions of a second
    size_t n = 1;
    while (n < rest.size() && std::isdigit(static_cast<unsigned char>(rest[n]))) ++n;
    rest = rest.substr(n);
  }
  int64_t offset = 0;
  if (rest == "Z" || rest == " UTC" || rest.empty()) {
    offset = 0;
  } else if ((rest[0] == '+' || rest[0] == '-') && (rest.size() == 6 || rest.size() == 5)) {
    std::string_view tz = rest;
    int oh = 0, om = 0;
    s = tz;
    bool colon = tz.size() == 6;
    if (!digits(1, 2, oh) || (colon && tz[3] != ':') || !digits(colon ? 4 : 3, 2, om)) {
      return std::nullopt;
    }
    offset = (oh * 3600 + om * 60) * (tz[0] == '-' ? -1 : 1);
  } else {
    return std::nullopt;
  }
  // Days from the civil date (Howard Hinnant's algorithm).
  int y = year - (month <= 2 ? 1 : 0);
  int era = (y >= 0 ? y : y - 399) / 400;
  int yoe = y - era * 400;
  int mp = (month + 9) % 12;
  int doy = (153 * mp + 2) / 5 + day - 1;
  int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  int64_t days = static_cast<int64_t>(era) * 146097 + doe - 719468;
  return days * 86400 + hour * 3600 + minute * 60 + second - offset;
}

Result<std::string> deliveryId(Provider p, const HeaderFn& headers) {
  std::string id;
  switch (p) {
    case Provider::kGithub: id = headers("X-GitHub-Delivery"); break;
    case Provider::kGitlab:
      id = headers("X-Gitlab-Event-UUID");
      if (id.empty()) id = headers("X-Gitlab-Webhook-UUID");
      break;
    case Provider::kGitea: id = headers("X-Gitea-Delivery"); break;
  }
  if (id.empty()) return invalidArgument("no delivery id header");
  if (id.size() > kMaxDeliveryIdBytes) return invalidArgument("delivery id: too long");
  for (char c : id) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') {
      return invalidArgument("delivery id: only letters, digits, '-', '_' and '.' are allowed");
    }
  }
  return id;
}

bool hasSignature(Provider p, const HeaderFn& headers) {
  switch (p) {
    case Provider::kGithub: return !headers(kGithubSignature).empty();
    case Provider::kGitlab: return !headers(kGitlabToken).empty();
    case Provider::kGitea:
      return !headers(kGiteaSignature).empty() || !headers(kForgejoSignature).empty();
  }
  return false;
}

Status verifySignature(Provider p, const HeaderFn& headers, std::string_view body,
                       std::string_view secret) {
  if (secret.empty()) return unauthenticated("the repo has no webhook secret");
  std::string given;
  switch (p) {
    case Provider::kGithub: {
      given = headers(kGithubSignature);
      if (given.empty()) return unauthenticated(std::string(kGithubSignature) + " is missing");
      constexpr std::string_view kScheme = "sha256=";
      if (given.rfind(kScheme, 0) != 0) {
        return unauthenticated(std::string(kGithubSignature) + ": not a sha256= signature");
      }
      given = given.substr(kScheme.size());
      break;
    }
    case Provider::kGitlab: {
      given = headers(kGitlabToken);
      if (given.empty()) return unauthenticated(std::string(kGitlabToken) + " is missing");
      // The token is the secret itself; compared over hashes so that the
      // comparison's time says nothing of the secret's length either.
      if (!constantTimeEqual(hmacSha256Hex(secret, given), hmacSha256Hex(secret, secret))) {
        return unauthenticated(std::string(kGitlabToken) + " does not match the repo's secret");
      }
      return Status::ok();
    }
    case Provider::kGitea: {
      given = headers(kGiteaSignature);
      if (given.empty()) given = headers(kForgejoSignature);
      if (given.empty()) return unauthenticated(std::string(kGiteaSignature) + " is missing");
      break;
    }
  }
  given = asciiLowered(given);
  std::string want = hmacSha256Hex(secret, body);
  if (given.size() != want.size()) return unauthenticated("the signature is not 64 hex digits");
  if (!constantTimeEqual(given, want)) {
    return unauthenticated("the signature does not match the body under the repo's secret");
  }
  return Status::ok();
}

Result<json> parseBody(std::string_view body) {
  json j = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return invalidArgument("the body is not valid JSON");
  if (!j.is_object()) return invalidArgument("the body is not a JSON object");
  return j;
}

Result<std::string> repoFullName(Provider p, const json& payload) {
  Fields f(payload, std::string(providerName(p)));
  std::string name;
  if (p == Provider::kGitlab) {
    QABOX_RETURN_IF_ERROR(f.string("project.path_with_namespace", name, 255));
  } else {
    QABOX_RETURN_IF_ERROR(f.string("repository.full_name", name, 255));
  }
  if (name.empty()) return invalidArgument("the payload names an empty repository");
  return name;
}

Result<HookEvent> parseEvent(Provider p, const HeaderFn& headers, const json& payload) {
  Result<HookEvent> e = invalidArgument("unparsed");
  switch (p) {
    case Provider::kGithub:
      e = parseGithubOrGitea("GitHub", headers("X-GitHub-Event"), payload);
      break;
    case Provider::kGitlab: e = parseGitlab(headers("X-Gitlab-Event"), payload); break;
    case Provider::kGitea:
      e = parseGithubOrGitea("Gitea", headers("X-Gitea-Event"), payload);
      break;
  }
  if (!e) return e;
  e->provider = p;
  QABOX_ASSIGN_OR_RETURN(e->repoFullName, repoFullName(p, payload));
  return e;
}

}  // namespace qabox::hooks
