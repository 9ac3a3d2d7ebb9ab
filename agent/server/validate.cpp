#include "server/validate.h"

#include <algorithm>
#include <initializer_list>

#include "core/duration.h"
#include "core/ticket.h"
#include "reaper/reaper.h"
#include "server/auth.h"

namespace qabox {
namespace {

using std::chrono::milliseconds;
using Variables = std::map<std::string, std::string>;

std::string str(std::string_view s) { return std::string(s); }

// Milliseconds of a Duration whose seconds may be anything: clamped far
// beyond any bound checked here, so the multiplication cannot overflow.
int64_t clampedMillis(const google::protobuf::Duration& d) {
  constexpr int64_t kFar = int64_t{1} << 40;  // seconds: some 35000 years
  return std::clamp<int64_t>(d.seconds(), -kFar, kFar) * 1000 + d.nanos() / 1'000'000;
}

Status checkTicket(std::string_view ticket) { return parseTicket(ticket).status(); }

}  // namespace

Result<milliseconds> checkDuration(std::string_view field, const google::protobuf::Duration& d,
                                   milliseconds max, std::string_view example) {
  if (d.nanos() <= -1'000'000'000 || d.nanos() >= 1'000'000'000 ||
      (d.seconds() > 0 && d.nanos() < 0) || (d.seconds() < 0 && d.nanos() > 0)) {
    return invalidArgument(str(field) + ": not a valid duration (seconds " +
                           std::to_string(d.seconds()) + ", nanos " + std::to_string(d.nanos()) +
                           ")");
  }
  milliseconds span(clampedMillis(d));
  QABOX_RETURN_IF_ERROR(checkTimeSpan(field, span, max, example));
  return span;
}

DeployInput deployInputOf(const v1::DeployRequest& req) {
  DeployInput in;
  in.ticket = req.ticket();
  in.spec.image = req.image();
  in.spec.repo = req.repo();
  in.spec.sourceBranch = req.source_branch();
  in.spec.targetBranch = req.target_branch();
  in.spec.env.insert(req.env().begin(), req.env().end());
  in.secrets.insert(req.secrets().begin(), req.secrets().end());
  if (req.has_ttl()) in.spec.ttl = milliseconds(clampedMillis(req.ttl()));
  in.spec.limits.memory = req.limits().memory();
  in.spec.limits.cpus = req.limits().cpus();
  in.spec.limits.pids = req.limits().pids();
  in.spec.access = req.access();
  in.force = req.force();
  return in;
}

Status validate(const v1::DeployRequest& req, const Config& config) {
  if (!req.host().empty()) QABOX_RETURN_IF_ERROR(checkHostName(req.host(), "host"));
  if (req.has_ttl())
    QABOX_RETURN_IF_ERROR(checkDuration("ttl", req.ttl(), kMaxTtl, "48h").status());
  return checkDeployInput(deployInputOf(req), config);
}

Status validate(const v1::RedeployEnvironmentRequest& req, const Config&) {
  return checkTicket(req.ticket());
}

Status validate(const v1::GetEnvironmentRequest& req, const Config&) {
  return checkTicket(req.ticket());
}

Status validate(const v1::DeleteEnvironmentRequest& req, const Config&) {
  return checkTicket(req.ticket());
}

Status validate(const v1::StreamLogsRequest& req, const Config&) {
  QABOX_RETURN_IF_ERROR(checkTicket(req.ticket()));
  if (req.tail() > kMaxLogTail) {
    return invalidArgument("tail " + std::to_string(req.tail()) + ": at most " +
                           std::to_string(kMaxLogTail) + " lines");
  }
  return Status::ok();
}

Status validate(const v1::ExecRequest& req, const Config&) {
  QABOX_RETURN_IF_ERROR(checkTicket(req.ticket()));
  QABOX_RETURN_IF_ERROR(
      checkExecInput({req.argv().begin(), req.argv().end()}, {req.env().begin(), req.env().end()}));
  if (req.has_timeout()) {
    QABOX_RETURN_IF_ERROR(checkDuration("timeout", req.timeout(), kMaxExecTimeout, "10m").status());
  }
  return Status::ok();
}

Status validate(const v1::ReapRequest& req, const Config&) { return checkPolicy(req.policy()); }

Status validate(const v1::SetPinnedRequest& req, const Config&) {
  return checkTicket(req.ticket());
}

Status validate(const v1::SleepEnvironmentRequest& req, const Config&) {
  return checkTicket(req.ticket());
}

Status validate(const v1::WakeEnvironmentRequest& req, const Config&) {
  return checkTicket(req.ticket());
}

Status validate(const v1::BuildImageRequest& req, const Config&) {
  return checkImageName(req.name());
}

Status validate(const v1::DeleteImageRequest& req, const Config&) {
  return checkImageName(req.name());
}

Status validate(const v1::ListEventsRequest& req, const Config&) {
  if (!req.ticket().empty()) QABOX_RETURN_IF_ERROR(checkTicket(req.ticket()));
  if (req.limit() > kMaxEventLimit) {
    return invalidArgument("limit " + std::to_string(req.limit()) + ": at most " +
                           std::to_string(kMaxEventLimit));
  }
  return Status::ok();
}

Status validate(const v1::CreateTokenRequest& req, const Config&) {
  QABOX_RETURN_IF_ERROR(checkTokenName(req.name()));
  if (!parseRole(req.role())) {
    return invalidArgument("role " + quoteForMessage(req.role()) +
                           ": use ci, reaper, ops, viewer or qa");
  }
  if (req.has_ttl())
    QABOX_RETURN_IF_ERROR(checkDuration("ttl", req.ttl(), kMaxTtl, "720h").status());
  return Status::ok();
}

Status validate(const v1::RevokeTokenRequest& req, const Config&) {
  return checkTokenName(req.name());
}

Status validate(const v1::DrainHostRequest& req, const Config&) {
  return checkHostName(req.name(), "host");
}

}  // namespace qabox
