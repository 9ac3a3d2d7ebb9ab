#pragma once

// Every field of every request, checked before its handler looks anything up
// or changes anything. A bad field is INVALID_ARGUMENT naming the field and
// the rule:
//   source_branch "-x": must not start with '-'
// The rules EnvironmentManager itself needs (checkDeployInput,
// checkExecInput) live in lifecycle/input_check.h, so each is written once.
// Requests with no fields (ListEnvironments, ListImages, GetHostStatus,
// ListTokens, CheckInvariants) have nothing to check.

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
#include "lifecycle/input_check.h"
#include "qabox/v1/qabox.pb.h"

namespace qabox {

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
Status validate(const v1::RedeployEnvironmentRequest& req, const Config& config);
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
Status validate(const v1::DrainHostRequest& req, const Config& config);

}  // namespace qabox
