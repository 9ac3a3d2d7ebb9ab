#pragma once

// Every field of every request, checked before its handler looks anything up
// or changes anything. A bad field is INVALID_ARGUMENT naming the field and
// the rule:
//   source_branch "-x": must not start with '-'
// The rules EnvironmentManager needs when it is driven without gRPC
// (checkDeployInput, checkExecInput) live here too, so each is written once.
// Requests with no fields (ListEnvironments, ListImages, GetHostStatus,
// ListTokens) have nothing to check.

#include <google/protobuf/duration.pb.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"
#include "core/status.h"
#include "qabox/v1/qabox.pb.h"
#include "server/environments.h"

namespace qabox {

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

// A deploy as EnvironmentManager takes it: ticket, image (empty: the
// agent's default), repo in the allowlist with both branches or none of
// them, variables, ttl within reaper.max_age, limits within [limits].
Status checkDeployInput(const DeployInput& in, const Config& config);
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
// The same for a google.protobuf.Duration, which may also be malformed (seconds
// and nanos of different signs) or far out of range.
Result<std::chrono::milliseconds> checkDuration(std::string_view field,
                                                const google::protobuf::Duration& d,
                                                std::chrono::milliseconds max,
                                                std::string_view example);

// What a DeployRequest asks for. The ttl is only meaningful once the
// request passed validate().
DeployInput deployInputOf(const v1::DeployRequest& req);

Status validate(const v1::DeployRequest& req, const Config& config);
Status validate(const v1::GetEnvironmentRequest& req, const Config& config);
Status validate(const v1::DeleteEnvironmentRequest& req, const Config& config);
Status validate(const v1::StreamLogsRequest& req, const Config& config);
Status validate(const v1::ExecRequest& req, const Config& config);
Status validate(const v1::ReapRequest& req, const Config& config);
Status validate(const v1::SetPinnedRequest& req, const Config& config);
Status validate(const v1::SleepEnvironmentRequest& req, const Config& config);
Status validate(const v1::WakeEnvironmentRequest& req, const Config& config);
Status validate(const v1::BuildImageRequest& req, const Config& config);
Status validate(const v1::DeleteImageRequest& req, const Config& config);
Status validate(const v1::ListEventsRequest& req, const Config& config);
Status validate(const v1::CreateTokenRequest& req, const Config& config);
Status validate(const v1::RevokeTokenRequest& req, const Config& config);

}  // namespace qabox
