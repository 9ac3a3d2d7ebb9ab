#pragma once

#include <string_view>

namespace qabox {

// Whether `part` occurs in `text`: how the unit tests check a message or a
// dump for the words that matter without pinning all of it.
inline bool contains(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

}  // namespace qabox
