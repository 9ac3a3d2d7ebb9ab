#include "lifecycle/input_check.h"

#include <initializer_list>

#include "core/duration.h"
#include "core/ticket.h"

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

Status checkTicket(std::string_view ticket) { return parseTicket(ticket).status(); }

}  // namespace

Result<ResourceLimits> effectiveLimits(const ResourceLimits& asked, const ResourceLimits& image,
                                       std::string_view imageName, const Config::Limits& max) {
  ResourceLimits out;
  auto above = [&](bool fromDeploy, std::string_view field, const std::string& value,
                   std::string_view maxKey, const std::string& maxValue) -> Status {
    std::string what = std::string(field) + " \"" + value + "\": above the agent's limits." +
                       std::string(maxKey) + " (" + maxValue + ")";
    if (fromDeploy) return invalidArgument("limits." + what);
    return failedPrecondition("image " + std::string(imageName) + ": limits." + what +
                              "; lower it in its image.toml or raise the maximum");
  };

  if (!asked.memory.empty() && !parseMemorySize(asked.memory)) {
    return invalidArgument("limits.memory \"" + asked.memory.substr(0, 40) +
                           "\": must be a size such as 256M, 1G or 524288K");
  }
  bool askedMemory = !asked.memory.empty();
  out.memory = askedMemory ? asked.memory : !image.memory.empty() ? image.memory : max.maxMemory;
  if (!out.memory.empty() && !max.maxMemory.empty() &&
      *parseMemorySize(out.memory) > *parseMemorySize(max.maxMemory)) {
    return above(askedMemory, "memory", out.memory, "max_memory", max.maxMemory);
  }

  auto pick = [&](std::string_view field, uint32_t askedN, uint32_t imageN, uint32_t maxN,
                  std::string_view maxKey, uint32_t& dst) -> Status {
    dst = askedN ? askedN : imageN ? imageN : maxN;
    if (maxN && dst > maxN) {
      return above(askedN != 0, field, std::to_string(dst), maxKey, std::to_string(maxN));
    }
    return Status::ok();
  };
  QABOX_RETURN_IF_ERROR(pick("cpus", asked.cpus, image.cpus, max.maxCpus, "max_cpus", out.cpus));
  QABOX_RETURN_IF_ERROR(pick("pids", asked.pids, image.pids, max.maxPids, "max_pids", out.pids));
  return out;
}

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

Status checkDeployInput(const DeployInput& in, const DeployRules& rules) {
  QABOX_RETURN_IF_ERROR(checkTicket(in.ticket));
  const DeploySpec& s = in.spec;
  const std::string image = s.image.empty() ? rules.defaultImage : s.image;
  QABOX_RETURN_IF_ERROR(checkImageName(image));
  if (s.repo.empty()) {
    if (!s.sourceBranch.empty() || !s.targetBranch.empty()) {
      return invalidArgument("repo: source and target branches need a repo (--repo NAME)");
    }
  } else {
    if (!findRepo(rules.repos, s.repo)) {
      std::string names;
      for (const auto& r : rules.repos) names += (names.empty() ? "" : ", ") + r.name;
      return invalidArgument(
          "repo " + quoteForMessage(s.repo) +
          ": not in the agent's allowlist (configured: " + (names.empty() ? "none" : names) + ")");
    }
    QABOX_RETURN_IF_ERROR(checkBranchName("source_branch", s.sourceBranch));
    QABOX_RETURN_IF_ERROR(checkBranchName("target_branch", s.targetBranch));
  }
  if (!s.access.empty()) QABOX_RETURN_IF_ERROR(checkAccessMode("access", s.access));
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
    if (rules.maxAge.count() > 0 && *s.ttl > rules.maxAge) {
      return invalidArgument("ttl " + formatDuration(*s.ttl) + ": at most reaper.max_age (" +
                             formatDuration(rules.maxAge) +
                             "), after which every environment is reclaimed anyway");
    }
  }
  // Against the maxima alone: the image's own limits are known only once it
  // is looked up, and are checked then.
  return effectiveLimits(s.limits, {}, image, rules.limits).status();
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
}  // namespace qabox
