#include "lifecycle/audit.h"

#include <spdlog/spdlog.h>

namespace qabox {

void AuditLog::record(const std::string& ticket, const std::string& action,
                      const std::string& actor, const std::string& outcome,
                      const std::string& detail) {
  auto s = store_.addEvent({0, time_.now(), ticket, action, actor, outcome, detail});
  if (!s.isOk()) {
    spdlog::warn("recording event {} {} by {}: {}", action, ticket, actor, s.toString());
  }
}

void AuditLog::reapPass(const std::string& actor, const std::string& policy, bool dryRun,
                        size_t due, size_t reclaimed) {
  std::string detail = dryRun ? "dry run: " + std::to_string(due) + " would be reclaimed"
                              : std::to_string(reclaimed) + " reclaimed";
  if (!policy.empty()) detail += " (policy " + policy + ")";
  record("", "reap", actor, "ok", detail);
}

void AuditLog::reapFailed(const std::string& actor, const std::string& why) {
  record("", "reap", actor, "error", why);
}

}  // namespace qabox
