#include "proxy/head_rewrite.h"

#include <string>

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
