#pragma once

// "host:port" as every listen address, backend and target is written:
// "127.0.0.1:8080", "[::1]:50051", ":80" (any address). One parser, so the
// config, the router, the daemon and the CLI accept and refuse the same.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"

namespace qabox {

struct HostPort {
  std::string host;  // without IPv6 brackets; empty: any address
  uint16_t port = 0;
};

// A bad one is INVALID_ARGUMENT `<field> "<text>": <rule>`, the rule one of
// "use host:port", "the port must be a number",
// "the port must be between 0 and 65535".
Result<HostPort> parseHostPort(std::string_view text, std::string_view field);

// The port of a "host:port" listen address, or nothing for a unix:// one or
// one that does not parse.
std::optional<uint16_t> portOfListen(std::string_view listen);

}  // namespace qabox
