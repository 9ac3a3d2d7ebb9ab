#include "core/endpoint.h"

#include <charconv>

namespace qabox {

Result<HostPort> parseHostPort(std::string_view text, std::string_view field) {
  auto bad = [&](std::string_view rule) {
    return invalidArgument(std::string(field) + " \"" + std::string(text.substr(0, 200)) +
                           "\": " + std::string(rule));
  };
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon + 1 == text.size()) return bad("use host:port");
  std::string_view host = text.substr(0, colon);
  std::string_view port = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    return bad("use host:port (an IPv6 host goes in brackets, as [::1]:port)");
  }
  if (port.find_first_not_of("0123456789") != std::string_view::npos) {
    return bad("the port must be a number");
  }
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || end != port.data() + port.size() || value > 65535) {
    return bad("the port must be between 0 and 65535");
  }
  return HostPort{std::string(host), static_cast<uint16_t>(value)};
}

std::optional<uint16_t> portOfListen(std::string_view listen) {
  if (listen.rfind("unix://", 0) == 0) return std::nullopt;
  auto hp = parseHostPort(listen, "listen");
  if (!hp.isOk()) return std::nullopt;
  return hp->port;
}

}  // namespace qabox
