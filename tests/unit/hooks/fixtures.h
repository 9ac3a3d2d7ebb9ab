#pragma once

#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "hooks/event.h"

namespace qabox::test {

// The secret the tests' webhooks are signed with.
inline const std::string kSecret = "s3cret-s3cret-s3cret";

inline std::string webhookFixture(const std::string& name) {
  std::ifstream in(std::string(QABOX_WEBHOOK_FIXTURES) + "/" + name);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Headers as a map, looked up case-insensitively like HTTP's.
struct Headers {
  std::map<std::string, std::string> fields;

  Headers& set(const std::string& name, const std::string& value) {
    fields[lower(name)] = value;
    return *this;
  }
  void erase(const std::string& name) { fields.erase(lower(name)); }
  hooks::HeaderFn fn() const {
    return [this](std::string_view name) {
      auto it = fields.find(lower(std::string(name)));
      return it == fields.end() ? std::string() : it->second;
    };
  }
  static std::string lower(std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  }
};

// What each host sends with `body`, signed with `secret` the host's way.
inline Headers signedHeaders(hooks::Provider p, const std::string& event, const std::string& body,
                             const std::string& secret, const std::string& delivery) {
  Headers h;
  h.set("Content-Type", "application/json");
  switch (p) {
    case hooks::Provider::kGithub:
      h.set("X-GitHub-Event", event).set("X-GitHub-Delivery", delivery);
      h.set("X-Hub-Signature-256", "sha256=" + hooks::hmacSha256Hex(secret, body));
      h.set("User-Agent", "GitHub-Hookshot/044aadd");
      break;
    case hooks::Provider::kGitlab:
      h.set("X-Gitlab-Event", event).set("X-Gitlab-Event-UUID", delivery);
      h.set("X-Gitlab-Token", secret);
      h.set("User-Agent", "GitLab/17.5.0");
      break;
    case hooks::Provider::kGitea:
      h.set("X-Gitea-Event", event).set("X-Gitea-Delivery", delivery);
      h.set("X-Gitea-Signature", hooks::hmacSha256Hex(secret, body));
      h.set("X-Forgejo-Event", event);
      break;
  }
  return h;
}

}  // namespace qabox::test
