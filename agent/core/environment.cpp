#include "core/environment.h"

namespace qabox {

std::string_view stateName(EnvState s) {
  switch (s) {
    case EnvState::kCreating: return "CREATING";
    case EnvState::kDeploying: return "DEPLOYING";
    case EnvState::kReady: return "READY";
    case EnvState::kFailed: return "FAILED";
    case EnvState::kDeleting: return "DELETING";
    case EnvState::kSleeping: return "SLEEPING";
  }
  return "FAILED";
}

std::optional<EnvState> parseState(std::string_view s) {
  for (auto st : {EnvState::kCreating, EnvState::kDeploying, EnvState::kReady, EnvState::kFailed,
                  EnvState::kDeleting, EnvState::kSleeping}) {
    if (stateName(st) == s) return st;
  }
  return std::nullopt;
}

std::string containerNameFor(std::string_view slug) { return "qabox-" + std::string(slug); }

int64_t toUnixMillis(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

TimePoint fromUnixMillis(int64_t ms) {
  return TimePoint(std::chrono::duration_cast<Clock::duration>(std::chrono::milliseconds(ms)));
}

}  // namespace qabox
