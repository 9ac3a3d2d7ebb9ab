#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "core/status.h"

namespace qabox {

using Seconds = std::chrono::seconds;

// "90s", "10m", "72h", "14d", "1h30m", or "0". Negative or unitless values
// (other than 0) are errors that name the rule.
Result<std::chrono::milliseconds> parseDuration(std::string_view text);

// "3h", "2d4h", "45s": the inverse, for messages and the CLI.
std::string formatDuration(std::chrono::milliseconds d);

}  // namespace qabox
