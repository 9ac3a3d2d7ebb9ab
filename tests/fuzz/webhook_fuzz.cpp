// Fuzz entry point for what a git host sends the webhook endpoint: the first
// byte picks the host and the event, the rest is the body. Invariants, not
// just "no crash":
//  - a body verifies under the secret that signed it and under no other;
//  - a parsed event's fields stay within their bounds, and only a push to a
//    branch carries a branch and a commit.

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "hooks/event.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace qabox::hooks;
  if (size == 0) return 0;
  const Provider providers[] = {Provider::kGithub, Provider::kGitlab, Provider::kGitea};
  Provider p = providers[data[0] % 3];
  const char* events[][3] = {{"push", "Push Hook", "push"},
                             {"pull_request", "Merge Request Hook", "pull_request"},
                             {"issue_comment", "Note Hook", "issue_comment"},
                             {"ping", "System Hook", "create"}};
  const char* event = events[(data[0] / 3) % 4][data[0] % 3];
  std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  const std::string secret = "fuzz-secret-0123456789";

  std::map<std::string, std::string> h;
  h["x-github-event"] = h["x-gitlab-event"] = h["x-gitea-event"] = event;
  h["x-github-delivery"] = h["x-gitlab-event-uuid"] = h["x-gitea-delivery"] = "d-1";
  std::string mac = hmacSha256Hex(secret, body);
  h["x-hub-signature-256"] = "sha256=" + mac;
  h["x-gitea-signature"] = mac;
  h["x-gitlab-token"] = secret;
  HeaderFn headers = [&h](std::string_view name) {
    std::string key(name);
    for (char& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    auto it = h.find(key);
    return it == h.end() ? std::string() : it->second;
  };
  if (!verifySignature(p, headers, body, secret).isOk()) __builtin_trap();
  if (p != Provider::kGitlab && verifySignature(p, headers, body, secret + "x").isOk()) {
    __builtin_trap();
  }

  auto json = parseBody(body);
  if (!json) return 0;
  (void)repoFullName(p, *json);
  auto e = parseEvent(p, headers, *json);
  if (!e) return 0;
  if (e->source.size() > kMaxRefBytes || e->target.size() > kMaxRefBytes ||
      e->branch.size() > kMaxRefBytes || e->body.size() > kMaxCommentBytes) {
    __builtin_trap();
  }
  if (e->kind == HookEvent::Kind::kPush && (e->branch.empty() || e->after.size() < 40)) {
    __builtin_trap();
  }
  if (e->kind != HookEvent::Kind::kPush && !e->after.empty()) __builtin_trap();
  return 0;
}
