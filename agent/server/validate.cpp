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

// How many variables, and how many bytes of names and values, one process
// gets from all of `groups` together.
Status checkVariableTotals(std::string_view field, std::initializer_list<const Variables*> groups) {
  size_t count = 0;
  size_t bytes = 0;
  for (const Variables* vars : groups) {
    count += vars->size();
    for (const auto& [k, v] : *vars) bytes += k.size() + v.size() + 2;
  }
  if (count > kMaxVariables) {
    return invalidArgument(str(field) + ": at most " + std::to_string(kMaxVariables) +
                           " variables are allowed (" + std::to_string(count) + " given)");
  }
  if (bytes > kMaxVariablesBytes) {
    return invalidArgument(str(field) + ": names and values together at most " +
                           std::to_string(kMaxVariablesBytes / 1024) + " KiB");
  }
  return Status::ok();
}

// Milliseconds of a Duration whose seconds may be anything: clamped far
// beyond any bound checked here, so the multiplication cannot overflow.
int64_t clampedMillis(const google::protobuf::Duration& d) {
  constexpr int64_t kFar = int64_t{1} << 40;  // seconds: some 35000 years
  return std::clamp<int64_t>(d.seconds(), -kFar, kFar) * 1000 + d.nanos() / 1'000'000;
}

Status checkTicket(std::string_view ticket) { return parseTicket(ticket).status(); }

}  // namespace

Status checkVariables(std::string_view field, const Variables& vars) {
  for (const auto& [k, v] : vars) {
    QABOX_RETURN_IF_ERROR(checkEnvName(k, field));
    if (v.find('\0') != std::string::npos) {
      return invalidArgument(str(field) + " " + k + ": value must not contain NUL bytes");
    }
    if (v.size() > kMaxVariableValueBytes) {
      return invalidArgument(str(field) + " " + k + ": value longer than " +
                             std::to_string(kMaxVariableValueBytes / 1024) + " KiB");
    }
  }
  return Status::ok();
}

Status checkTimeSpan(std::string_view field, milliseconds span, milliseconds max,
                     std::string_view example) {
  if (span.count() <= 0) {
    return invalidArgument(str(field) + ": must be positive, as " + str(example));
  }
  if (span > max) {
    return invalidArgument(str(field) + " " + formatDuration(span) + ": at most " +
                           formatDuration(max));
  }
  return Status::ok();
}

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

Status checkDeployInput(const DeployInput& in, const Config& config) {
  QABOX_RETURN_IF_ERROR(checkTicket(in.ticket));
  const DeploySpec& s = in.spec;
  const std::string image = s.image.empty() ? config.defaultImage : s.image;
  QABOX_RETURN_IF_ERROR(checkImageName(image));
  if (s.repo.empty()) {
    if (!s.sourceBranch.empty() || !s.targetBranch.empty()) {
      return invalidArgument("repo: source and target branches need a repo (--repo NAME)");
    }
  } else {
    if (!config.findRepo(s.repo)) {
      std::string names;
      for (const auto& r : config.repos) names += (names.empty() ? "" : ", ") + r.name;
      return invalidArgument(
          "repo " + quoteForMessage(s.repo) +
          ": not in the agent's allowlist (configured: " + (names.empty() ? "none" : names) + ")");
    }
    QABOX_RETURN_IF_ERROR(checkBranchName("source_branch", s.sourceBranch));
    QABOX_RETURN_IF_ERROR(checkBranchName("target_branch", s.targetBranch));
  }
  QABOX_RETURN_IF_ERROR(checkVariables("env", s.env));
  for (const auto& [k, v] : s.env) {
    if (k.rfind("QABOX_", 0) == 0) {
      return invalidArgument("env " + k + ": names starting with QABOX_ are set by the agent");
    }
  }
  QABOX_RETURN_IF_ERROR(checkVariables("secret", in.secrets));
  for (const auto& [k, v] : in.secrets) {
    if (k.rfind("QABOX_", 0) == 0) {
      return invalidArgument("secret " + k + ": names starting with QABOX_ are set by the agent");
    }
    if (s.env.count(k)) return invalidArgument("secret " + k + ": also given as a plain env var");
  }
  QABOX_RETURN_IF_ERROR(checkVariableTotals("env", {&s.env, &in.secrets}));
  if (s.ttl) {
    QABOX_RETURN_IF_ERROR(checkTimeSpan("ttl", *s.ttl, kMaxTtl, "48h"));
    if (config.reaper.maxAge.count() > 0 && *s.ttl > config.reaper.maxAge) {
      return invalidArgument("ttl " + formatDuration(*s.ttl) + ": at most reaper.max_age (" +
                             formatDuration(config.reaper.maxAge) +
                             "), after which every environment is reclaimed anyway");
    }
  }
  // Against the maxima alone: the image's own limits are known only once it
  // is looked up, and are checked then.
  return effectiveLimits(s.limits, {}, image, config.limits).status();
}

Status checkExecInput(const std::vector<std::string>& argv, const Variables& env) {
  if (argv.empty()) return invalidArgument("argv: give the command to run (qabox exec T -- CMD)");
  if (argv.size() > kMaxExecArgs) {
    return invalidArgument("argv: at most " + std::to_string(kMaxExecArgs) + " arguments (" +
                           std::to_string(argv.size()) + " given)");
  }
  if (argv.front().empty()) return invalidArgument("argv[0]: the program must not be empty");
  size_t bytes = 0;
  for (size_t i = 0; i < argv.size(); ++i) {
    if (argv[i].find('\0') != std::string::npos) {
      return invalidArgument("argv[" + std::to_string(i) + "]: must not contain NUL bytes");
    }
    bytes += argv[i].size() + 1;
  }
  if (bytes > kMaxExecArgvBytes) {
    return invalidArgument("argv: at most " + std::to_string(kMaxExecArgvBytes / 1024) +
                           " KiB together");
  }
  QABOX_RETURN_IF_ERROR(checkVariables("env", env));
  return checkVariableTotals("env", {&env});
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
  in.force = req.force();
  return in;
}

Status validate(const v1::DeployRequest& req, const Config& config) {
  if (req.has_ttl())
    QABOX_RETURN_IF_ERROR(checkDuration("ttl", req.ttl(), kMaxTtl, "48h").status());
  return checkDeployInput(deployInputOf(req), config);
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
    return invalidArgument("role " + quoteForMessage(req.role()) + ": use ci, reaper or ops");
  }
  if (req.has_ttl())
    QABOX_RETURN_IF_ERROR(checkDuration("ttl", req.ttl(), kMaxTtl, "720h").status());
  return Status::ok();
}

Status validate(const v1::RevokeTokenRequest& req, const Config&) {
  return checkTokenName(req.name());
}

}  // namespace qabox
