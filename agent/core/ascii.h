#pragma once

#include <string>
#include <string_view>

namespace qabox {

// ASCII lower case: host names and slugs are compared and stored this way.
constexpr char asciiLower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

// ASCII case-insensitive equality, for host names, header names and values
// and auth schemes. (Beast 1.74's iequals reads one byte past its arguments
// when they differ in case: a fuzzed "GET htTp:// HTTP/1.1" found it.)
constexpr bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (asciiLower(a[i]) != asciiLower(b[i])) return false;
  }
  return true;
}

// Whether `s` begins with `prefix`, in any ASCII case.
constexpr bool istartsWith(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

// `s` in ASCII lower case.
inline std::string asciiLowered(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = asciiLower(c);
  return out;
}

}  // namespace qabox
