#pragma once

// How a head changes between the client and the backend: hop-by-hop fields
// out, the forwarded ones in, and the response framed so the client's
// connection can survive it. Pure functions over Beast messages.

#include <string>
#include <string_view>

#include "proxy/request_check.h"
#include "proxy/request_state.h"

namespace qabox::proxy_internal {

using Request = boost::beast::http::request<boost::beast::http::buffer_body, Fields>;
using Response = boost::beast::http::response<boost::beast::http::buffer_body, Fields>;

// The request as the backend gets it: HTTP/1.1, no hop-by-hop fields (the
// Upgrade kept for a websocket), X-Forwarded-For/-Proto/-Host set.
void rewriteRequestHead(Request& m, bool websocket, std::string_view clientIp, bool tls);

// qabox's own credentials out of a request an app is to get: its cookies
// (core/cookie.h) from every Cookie field, and an Authorization field that
// carries a qabox token (Bearer qbx_...). The app's own cookies and
// Authorization stay.
void stripQaboxCredentials(Request& m);

// Every Cookie field of a request, joined with "; " (HTTP/2 splits them;
// an HTTP/1.1 client may too).
std::string joinedCookies(const Request& m);

// The response as the client gets it. `chunked` and `hasLength` are the
// backend's framing as the parser read it. Clears head.keepAlive when the
// client's connection cannot survive the response (an HTTP/1.0 client and a
// body without a length, or the router stopping). Returns whether the
// response has no body (HEAD, 204, 304).
bool rewriteResponseHead(Response& m, bool chunked, bool hasLength, HeadFacts& head, bool stopping);

}  // namespace qabox::proxy_internal
