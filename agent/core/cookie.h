#pragma once

// The Cookie and Set-Cookie headers, as far as qabox's own cookies need them
// (RFC 6265 section 4.2 and 5.4). Pure: the router and the dashboard both
// use it.

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

namespace qabox {

// qabox's cookies. Over TLS they carry the __Host- prefix, which a browser
// accepts only with Secure, Path=/ and no Domain: a page of another host
// under the domain (a pull request's app) can then neither set nor replace
// them. Over plain HTTP no such guarantee exists, which is why every value is
// signed for one host (server/sessions.h) and two values of one name are
// refused rather than guessed between.
inline constexpr std::string_view kSessionCookie = "qabox_session";  // the dashboard's
inline constexpr std::string_view kPreviewCookie = "qabox_preview";  // one preview host's
inline constexpr std::string_view kHostPrefix = "__Host-";

// "__Host-qabox_session" over TLS, "qabox_session" otherwise.
std::string cookieName(std::string_view base, bool tls);

// Every value of cookie `name` in a Cookie header ("a=1; b=2"), in order.
std::vector<std::string_view> cookieValues(std::string_view header, std::string_view name);

// True when `pair` ("name=value", spaces trimmed) is one of qabox's cookies,
// under either name: what the router strips before a request reaches an app.
bool isQaboxCookie(std::string_view pair);

// The Cookie header without qabox's cookies; "" when nothing else is left.
std::string withoutQaboxCookies(std::string_view header);

// A Set-Cookie value for cookie `name`: HttpOnly, SameSite=Lax, Path=/,
// Secure over TLS, Max-Age `maxAge` (0 deletes it).
std::string setCookie(std::string_view name, std::string_view value, std::chrono::seconds maxAge,
                      bool tls);

}  // namespace qabox
