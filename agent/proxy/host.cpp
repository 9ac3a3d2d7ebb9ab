#include "proxy/host.h"

#include "proxy/router.h"

namespace qabox {
namespace proxy_internal {
namespace {

bool isHostChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.';
}

bool looksLikeIpv4(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || c == '.')) return false;
  }
  return !s.empty();
}

}  // namespace

std::string_view hostErrorText(HostError e) {
  switch (e) {
    case HostError::kNone: return "ok";
    case HostError::kEmpty: return "a Host is required";
    case HostError::kIpLiteral: return "an IP address names no environment; use <name>.<domain>";
    case HostError::kBadPort: return "the port must be digits";
    case HostError::kBadCharacters: return "only letters, digits, '-' and '.' are allowed";
    case HostError::kTooLong: return "at most 253 characters are allowed";
    case HostError::kNotUnderDomain: return "must be <name>.<domain> of this router";
    case HostError::kNoLabel: return "names no environment; use <name>.<domain>";
    case HostError::kNotOneLabel: return "the environment name must be one label, without '.'";
    case HostError::kBadLabel:
      return "the environment name must be 1-63 letters, digits or '-', not starting or ending "
             "with '-'";
  }
  return "invalid";
}

std::string normalizeDomain(std::string_view domain) {
  if (!domain.empty() && domain.back() == '.') domain.remove_suffix(1);
  std::string out;
  out.reserve(domain.size());
  for (char c : domain) out += asciiLower(c);
  return out;
}

HostError matchHost(std::string_view host, std::string_view domain, std::string_view& label) {
  if (host.empty()) return HostError::kEmpty;
  if (host.front() == '[') return HostError::kIpLiteral;
  if (size_t colon = host.rfind(':'); colon != std::string_view::npos) {
    if (host.find(':') != colon) return HostError::kIpLiteral;  // a bare IPv6 address
    std::string_view port = host.substr(colon + 1);
    if (port.size() > 5) return HostError::kBadPort;
    for (char c : port) {
      if (c < '0' || c > '9') return HostError::kBadPort;
    }
    host = host.substr(0, colon);
  }
  if (host.empty()) return HostError::kEmpty;
  if (host.back() == '.') host.remove_suffix(1);
  if (host.empty()) return HostError::kEmpty;
  if (host.size() > 253) return HostError::kTooLong;
  for (char c : host) {
    if (!isHostChar(c)) return HostError::kBadCharacters;
  }
  if (domain.empty()) return HostError::kNotUnderDomain;
  if (iequals(host, domain)) return HostError::kNoLabel;
  if (host.size() <= domain.size() + 1 || host[host.size() - domain.size() - 1] != '.' ||
      !iequals(host.substr(host.size() - domain.size()), domain)) {
    return looksLikeIpv4(host) ? HostError::kIpLiteral : HostError::kNotUnderDomain;
  }
  std::string_view l = host.substr(0, host.size() - domain.size() - 1);
  if (l.find('.') != std::string_view::npos) return HostError::kNotOneLabel;
  if (l.empty() || l.size() > 63 || l.front() == '-' || l.back() == '-') {
    return HostError::kBadLabel;
  }
  label = l;
  return HostError::kNone;
}

}  // namespace proxy_internal

Result<std::string> parseHostHeader(std::string_view host, std::string_view domain) {
  std::string d = proxy_internal::normalizeDomain(domain);
  std::string_view label;
  proxy_internal::HostError e = proxy_internal::matchHost(host, d, label);
  if (e != proxy_internal::HostError::kNone) {
    std::string shown;
    for (char c : host.substr(0, 80)) {
      auto u = static_cast<unsigned char>(c);
      shown += (u < 0x20 || u >= 0x7f) ? '?' : c;
    }
    if (host.size() > 80) shown += "...";
    std::string rule(proxy_internal::hostErrorText(e));
    if (e == proxy_internal::HostError::kNotUnderDomain ||
        e == proxy_internal::HostError::kNoLabel) {
      rule += " (<domain> is " + (d.empty() ? std::string("not set") : d) + ")";
    }
    return invalidArgument("host \"" + shown + "\": " + rule);
  }
  std::string slug(label);
  for (char& c : slug) c = proxy_internal::asciiLower(c);
  return slug;
}

}  // namespace qabox
