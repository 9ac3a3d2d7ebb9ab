#pragma once

#include <string>
#include <string_view>

namespace qabox {

// A commit id as people read it in messages and events: its first 12 digits.
inline std::string shortSha(std::string_view sha) { return std::string(sha.substr(0, 12)); }

}  // namespace qabox
