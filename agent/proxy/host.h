#pragma once

#include <string>
#include <string_view>

namespace qabox::proxy_internal {

enum class HostError {
  kNone,
  kEmpty,
  kIpLiteral,
  kBadPort,
  kBadCharacters,
  kTooLong,
  kNotUnderDomain,
  kNoLabel,
  kNotOneLabel,
  kBadLabel,
};

// ASCII lower case: host names and slugs are compared and stored this way.
constexpr char asciiLower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

// ASCII case-insensitive equality, for header values and names: the one
// the proxy uses. (Beast 1.74's iequals reads one byte past its arguments
// when they differ in case: a fuzzed "GET htTp:// HTTP/1.1" found it.)
bool iequals(std::string_view a, std::string_view b);

// The rule a HostError breaks, for pages and Status messages.
std::string_view hostErrorText(HostError e);

// Lower-cased, without one trailing dot: the form matchHost expects.
std::string normalizeDomain(std::string_view domain);

// The allocation-free core of parseHostHeader, run on every request. On
// success `label` views the label inside `host`, in its original case.
HostError matchHost(std::string_view host, std::string_view normalizedDomain,
                    std::string_view& label);

}  // namespace qabox::proxy_internal
