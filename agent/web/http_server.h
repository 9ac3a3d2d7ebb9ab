#pragma once

// The dashboard's own small HTTP/1.1 server: loopback only (the router
// forwards qabox.<domain> to it), its own io_context threads, every client
// bounded: head size and field count, form bodies, a deadline on each read
// and write, a cap on connections and on open event streams. A handler runs
// on an io thread and must not block for long; slow work goes elsewhere.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "core/status.h"
#include "proxy/beast.h"

namespace qabox::web {

namespace http = boost::beast::http;
using Request = http::request<http::string_body>;

// What a stream handler is asked every pollEvery: the bytes to send now ("":
// nothing this time), or nullopt to end the stream.
using StreamFn = std::function<std::optional<std::string>()>;

struct Reply {
  http::response<http::string_body> res;
  // Set for an event stream (text/event-stream): the head goes out with
  // res's fields, then whatever `stream` gives, chunked, until it ends or
  // the client goes.
  StreamFn stream;
};
using Handler = std::function<Reply(const Request&)>;

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;  // 0: an ephemeral one (port())
  int threads = 2;
  size_t maxHeaderBytes = 16 * 1024;
  size_t maxHeaderCount = 100;
  size_t maxBodyBytes = 4 * 1024;  // forms only
  // A bigger limit for some requests, decided on their head (the method and
  // the target): the webhooks' POST /hooks/<provider>. Null or 0: maxBodyBytes.
  std::function<size_t(std::string_view method, std::string_view target)> bodyLimitFor;
  size_t maxTargetBytes = 4 * 1024;
  // A request (head and body) within readTimeout of its first byte; a
  // keep-alive connection idle at most idleTimeout; each write within
  // writeTimeout.
  std::chrono::milliseconds readTimeout{10'000};
  std::chrono::milliseconds idleTimeout{30'000};
  std::chrono::milliseconds writeTimeout{30'000};
  size_t maxConnections = 256;
  size_t maxStreams = 32;
  std::chrono::milliseconds pollEvery{500};
  std::chrono::milliseconds heartbeat{15'000};
};

class HttpServer {
 public:
  HttpServer(HttpServerOptions options, Handler handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  Status start();
  // Closes the listener and every connection and joins the threads; twice is fine.
  void stop();
  uint16_t port() const;
  size_t connections() const;
  size_t streams() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

// A reply of `status` with a text/html (or other) body and the dashboard's
// security headers (CSP default-src 'self', nosniff, frame-ancestors none).
Reply makeReply(http::status status, std::string body,
                std::string_view contentType = "text/html; charset=utf-8");
void securityHeaders(http::response<http::string_body>& res);

}  // namespace qabox::web
