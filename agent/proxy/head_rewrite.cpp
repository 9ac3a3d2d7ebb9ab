#include "proxy/head_rewrite.h"

#include <string>

#include "core/cookie.h"
#include "proxy/host.h"

namespace qabox::proxy_internal {

namespace http = boost::beast::http;

void rewriteRequestHead(Request& m, bool websocket, std::string_view clientIp, bool tls) {
  m.version(11);
  m.erase(http::field::connection);
  m.erase(http::field::keep_alive);
  m.erase(http::field::proxy_connection);
  m.erase(http::field::te);
  m.erase(http::field::trailer);
  m.erase(http::field::expect);
  if (websocket) {
    m.set(http::field::connection, "Upgrade");
  } else {
    m.erase(http::field::upgrade);
  }
  std::string xff;
  for (auto it = m.find("X-Forwarded-For");
       it != m.end() && iequals(sv(it->name_string()), "X-Forwarded-For"); ++it) {
    xff.append(it->value().data(), it->value().size());
    xff += ", ";
  }
  xff += clientIp;
  m.set("X-Forwarded-For", xff);
  m.set("X-Forwarded-Proto", tls ? "https" : "http");
  m.set("X-Forwarded-Host", m[http::field::host]);
}

std::string joinedCookies(const Request& m) {
  std::string joined;
  for (auto [it, end] = m.equal_range(http::field::cookie); it != end; ++it) {
    if (!joined.empty()) joined += "; ";
    joined.append(it->value().data(), it->value().size());
  }
  return joined;
}

void stripQaboxCredentials(Request& m) {
  // Every request to every environment passes here: the Cookie fields are
  // rebuilt only when one may hold a qabox cookie (all their names hold
  // "qabox_").
  bool mayHold = false;
  for (auto [it, end] = m.equal_range(http::field::cookie); it != end && !mayHold; ++it) {
    mayHold = sv(it->value()).find("qabox_") != std::string_view::npos;
  }
  if (mayHold) {
    std::string kept = withoutQaboxCookies(joinedCookies(m));
    m.erase(http::field::cookie);
    if (!kept.empty()) m.set(http::field::cookie, kept);
  }
  for (auto [it, end] = m.equal_range(http::field::authorization); it != end; ++it) {
    std::string_view v = sv(it->value());
    size_t space = v.find(' ');
    if (space == std::string_view::npos || !iequals(v.substr(0, space), "bearer")) continue;
    std::string_view secret = v.substr(space + 1);
    while (!secret.empty() && secret.front() == ' ') secret.remove_prefix(1);
    if (secret.substr(0, 4) == "qbx_") {
      m.erase(http::field::authorization);
      break;
    }
  }
}

bool rewriteResponseHead(Response& m, bool chunked, bool hasLength, HeadFacts& head,
                         bool stopping) {
  unsigned code = m.result_int();
  m.erase(http::field::connection);
  m.erase(http::field::keep_alive);
  m.erase(http::field::proxy_connection);
  m.erase(http::field::trailer);
  m.erase(http::field::upgrade);
  bool noBody = head.isHead || code == 204 || code == 304;
  if (!noBody) {
    if (chunked) {
      if (head.clientV10) {
        m.chunked(false);
        head.keepAlive = false;
      }
    } else if (!hasLength) {
      // The backend ends the body by closing; the client gets it chunked, so
      // its connection survives.
      if (head.clientV10) {
        head.keepAlive = false;
      } else {
        m.chunked(true);
      }
    }
  }
  if (stopping) head.keepAlive = false;
  m.version(11);
  if (!head.keepAlive) {
    m.set(http::field::connection, "close");
  } else if (head.clientV10) {
    m.set(http::field::connection, "keep-alive");
  }
  return noBody;
}

}  // namespace qabox::proxy_internal
