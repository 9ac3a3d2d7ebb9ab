#include "core/cookie.h"

namespace qabox {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Calls `each(pair)` for every "name=value" of a Cookie header.
template <typename F>
void forEachPair(std::string_view header, F&& each) {
  while (!header.empty()) {
    size_t semi = header.find(';');
    each(trim(header.substr(0, semi)));
    if (semi == std::string_view::npos) break;
    header.remove_prefix(semi + 1);
  }
}

std::string_view nameOf(std::string_view pair) { return trim(pair.substr(0, pair.find('='))); }

}  // namespace

std::string cookieName(std::string_view base, bool tls) {
  std::string name = tls ? std::string(kHostPrefix) : std::string();
  name += base;
  return name;
}

std::vector<std::string_view> cookieValues(std::string_view header, std::string_view name) {
  std::vector<std::string_view> values;
  forEachPair(header, [&](std::string_view pair) {
    size_t eq = pair.find('=');
    if (eq == std::string_view::npos || nameOf(pair) != name) return;
    std::string_view value = trim(pair.substr(eq + 1));
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
      value = value.substr(1, value.size() - 2);
    }
    values.push_back(value);
  });
  return values;
}

bool isQaboxCookie(std::string_view pair) {
  std::string_view name = nameOf(pair);
  if (name.substr(0, kHostPrefix.size()) == kHostPrefix) name.remove_prefix(kHostPrefix.size());
  return name == kSessionCookie || name == kPreviewCookie;
}

std::string withoutQaboxCookies(std::string_view header) {
  std::string kept;
  forEachPair(header, [&](std::string_view pair) {
    if (pair.empty() || isQaboxCookie(pair)) return;
    if (!kept.empty()) kept += "; ";
    kept += pair;
  });
  return kept;
}

std::string setCookie(std::string_view name, std::string_view value, std::chrono::seconds maxAge,
                      bool tls) {
  std::string out(name);
  out += '=';
  out += value;
  out += "; Path=/; HttpOnly; SameSite=Lax; Max-Age=";
  out += std::to_string(maxAge.count());
  if (tls) out += "; Secure";
  return out;
}

}  // namespace qabox
