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
    case EnvState::kBroken: return "BROKEN";
  }
  return "FAILED";
}

std::optional<EnvState> parseState(std::string_view s) {
  for (auto st : {EnvState::kCreating, EnvState::kDeploying, EnvState::kReady, EnvState::kFailed,
                  EnvState::kDeleting, EnvState::kSleeping, EnvState::kBroken}) {
    if (stateName(st) == s) return st;
  }
  return std::nullopt;
}

bool inOperation(EnvState s) {
  return s == EnvState::kCreating || s == EnvState::kDeploying || s == EnvState::kDeleting;
}

std::optional<uint64_t> parseMemorySize(std::string_view s) {
  if (s.empty() || s.size() > 20) return std::nullopt;
  uint64_t unit = 1;
  switch (s.back()) {
    case 'K': unit = 1ULL << 10; break;
    case 'M': unit = 1ULL << 20; break;
    case 'G': unit = 1ULL << 30; break;
    default: break;
  }
  std::string_view digits = unit == 1 ? s : s.substr(0, s.size() - 1);
  if (digits.empty() || digits.find_first_not_of("0123456789") != std::string_view::npos) {
    return std::nullopt;
  }
  uint64_t n = 0;
  for (char c : digits) {
    if (n > (UINT64_MAX - 9) / 10) return std::nullopt;
    n = n * 10 + static_cast<uint64_t>(c - '0');
  }
  if (n == 0 || n > UINT64_MAX / unit) return std::nullopt;
  return n * unit;
}

std::string containerNameFor(std::string_view slug) { return "qabox-" + std::string(slug); }

namespace {
constexpr std::string_view kPoolPrefix = "qaboxpool-";
}

std::string poolContainerName(uint64_t n) { return std::string(kPoolPrefix) + std::to_string(n); }

bool isPoolContainer(std::string_view name) {
  if (name.substr(0, kPoolPrefix.size()) != kPoolPrefix) return false;
  std::string_view n = name.substr(kPoolPrefix.size());
  return !n.empty() && n.size() <= 19 && n[0] != '0' &&
         n.find_first_not_of("0123456789") == std::string_view::npos;
}

int64_t toUnixMillis(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

TimePoint fromUnixMillis(int64_t ms) {
  return TimePoint(std::chrono::duration_cast<Clock::duration>(std::chrono::milliseconds(ms)));
}

}  // namespace qabox
