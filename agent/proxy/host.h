#pragma once

#include <string>
#include <string_view>

#include "core/ascii.h"

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

using qabox::asciiLower;
using qabox::iequals;

// The rule a HostError breaks, for pages and Status messages.
std::string_view hostErrorText(HostError e);

// Lower-cased, without one trailing dot: the form matchHost expects.
std::string normalizeDomain(std::string_view domain);

// The allocation-free core of parseHostHeader, run on every request. On
// success `label` views the label inside `host`, in its original case.
HostError matchHost(std::string_view host, std::string_view normalizedDomain,
                    std::string_view& label);

}  // namespace qabox::proxy_internal
