#include "core/duration.h"

#include <cstdint>

namespace qabox {

Result<std::chrono::milliseconds> parseDuration(std::string_view text) {
  auto bad = [&] {
    return invalidArgument("duration \"" + std::string(text.substr(0, 40)) +
                           "\": use a number with a unit s, m, h or d (for example 90s, 10m, "
                           "72h, 14d, 1h30m), or 0");
  };
  if (text == "0") return std::chrono::milliseconds(0);
  if (text.empty() || text.size() > 32) return bad();
  int64_t totalMs = 0;
  size_t i = 0;
  while (i < text.size()) {
    int64_t n = 0;
    size_t digits = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      n = n * 10 + (text[i] - '0');
      if (n > 1'000'000'000) return bad();
      ++i;
      ++digits;
    }
    if (digits == 0 || i == text.size()) return bad();
    int64_t unitMs = 0;
    if (text.compare(i, 2, "ms") == 0) {
      unitMs = 1;
      i += 2;
    } else {
      switch (text[i]) {
        case 's': unitMs = 1000; break;
        case 'm': unitMs = 60'000; break;
        case 'h': unitMs = 3'600'000; break;
        case 'd': unitMs = 86'400'000; break;
        default: return bad();
      }
      ++i;
    }
    totalMs += n * unitMs;
    if (totalMs > int64_t{100} * 365 * 86'400'000) return bad();
  }
  return std::chrono::milliseconds(totalMs);
}

std::string formatDuration(std::chrono::milliseconds d) {
  int64_t ms = d.count();
  if (ms < 0) ms = -ms;
  if (ms < 1000) return std::to_string(ms) + "ms";
  int64_t s = ms / 1000;
  std::string out;
  int64_t days = s / 86400, hours = (s % 86400) / 3600, mins = (s % 3600) / 60, secs = s % 60;
  if (days) out += std::to_string(days) + "d";
  if (hours) out += std::to_string(hours) + "h";
  if (mins && !days) out += std::to_string(mins) + "m";
  if (secs && !days && !hours) out += std::to_string(secs) + "s";
  return out.empty() ? "0s" : out;
}

}  // namespace qabox
