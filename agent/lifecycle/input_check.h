#pragma once

// The rules a deploy's and an exec's inputs follow, checked before anything
// is looked up or changed, whether they come over gRPC (server/validate.h
// maps each request onto these) or from a test. A bad field is
// INVALID_ARGUMENT naming the field and the rule.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"
#include "core/status.h"
#include "lifecycle/manager.h"

namespace qabox {

// The limits an environment runs with: each the deploy's when it asks, else
// the image's, else the agent's maximum; none above the maximum. A deploy
// asking for more is INVALID_ARGUMENT naming the field (limits.memory, ...),
// an image asking for more FAILED_PRECONDITION naming the image.
Result<ResourceLimits> effectiveLimits(const ResourceLimits& asked, const ResourceLimits& image,
                                       std::string_view imageName, const Config::Limits& max);

// Variables given to a process in a container (a deploy's env and secrets
// together, an exec's env): how many, one value, all names and values.
inline constexpr size_t kMaxVariables = 256;
inline constexpr size_t kMaxVariableValueBytes = 32 * 1024;
inline constexpr size_t kMaxVariablesBytes = 256 * 1024;
// An exec's argument vector: the kernel takes at most 128 KiB in one argument.
inline constexpr size_t kMaxExecArgs = 256;
inline constexpr size_t kMaxExecArgvBytes = 128 * 1024;
inline constexpr std::chrono::milliseconds kMaxExecTimeout = std::chrono::hours(24);
// Ten years: longer is no ttl at all, and keeps the clock arithmetic in range.
inline constexpr std::chrono::milliseconds kMaxTtl = std::chrono::hours(24 * 3650);
inline constexpr uint32_t kMaxLogTail = 100'000;
inline constexpr uint32_t kMaxEventLimit = 10'000;

// What a deploy is checked against: the agent's config (the transport
// checks a request with it) or the lifecycle's options built from it.
struct DeployRules {
  DeployRules(const Config& c)  // NOLINT: implicit by design
      : defaultImage(c.defaultImage), repos(c.repos), maxAge(c.reaper.maxAge), limits(c.limits) {}
  DeployRules(const LifecycleOptions& o)  // NOLINT: implicit by design
      : defaultImage(o.defaultImage), repos(o.repos), maxAge(o.reaper.maxAge), limits(o.limits) {}

  const std::string& defaultImage;
  const std::vector<RepoConfig>& repos;
  std::chrono::milliseconds maxAge;  // reaper.max_age: the longest ttl; 0: any
  const Config::Limits& limits;
};

// A deploy as EnvironmentManager takes it: ticket, image (empty: the
// agent's default), repo in the allowlist with both branches or none of
// them, variables, ttl within reaper.max_age, limits within [limits].
Status checkDeployInput(const DeployInput& in, const DeployRules& rules);
// An exec's command and variables.
Status checkExecInput(const std::vector<std::string>& argv,
                      const std::map<std::string, std::string>& env);

// Names ([A-Za-z_][A-Za-z0-9_]*) and values (no NUL, at most 32 KiB) of
// variables; `field` (env, secret) names them in messages, which never
// quote a value.
Status checkVariables(std::string_view field, const std::map<std::string, std::string>& vars);

// A span that must be positive and at most `max`; `example` shows a good one.
Status checkTimeSpan(std::string_view field, std::chrono::milliseconds span,
                     std::chrono::milliseconds max, std::string_view example);
}  // namespace qabox
