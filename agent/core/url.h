#pragma once

// The pieces of URLs that qabox's own pages build and read: percent-encoding
// and query strings. Pure.

#include <optional>
#include <string>
#include <string_view>

namespace qabox {

// %XX-encoding of everything but unreserved characters (RFC 3986).
std::string urlEncode(std::string_view s);
// The reverse, '+' as a space (forms); nullopt for a malformed escape or a
// decoded control character (CR, LF, NUL, ...).
std::optional<std::string> urlDecode(std::string_view s);
// The value of `key` in a query string ("a=1&b=2"), still encoded; the first
// when it occurs more than once.
std::optional<std::string_view> queryParam(std::string_view query, std::string_view key);
// A path a redirect may go to on the same host: starts with one '/' (not
// "//" or "/\", which browsers read as another host) and holds no control
// character.
bool isLocalPath(std::string_view path);

}  // namespace qabox
