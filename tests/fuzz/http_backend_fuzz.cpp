// Fuzz entry point for the router's backend response path, driven the way
// the daemon runs it: a real Router on loopback forwards one client request
// to a backend socket that answers with the fuzz input, then closes. The
// router must not crash, hang or catch an exception (its last barrier
// counts them), and what reaches the client must be valid HTTP up to where
// it is cut.
//
// Input: byte 0 chooses the client request and how the answer is written;
// the rest is the backend's answer.
//   bits 0-1  0 GET, 1 HEAD, 2 websocket upgrade, 3 GET over HTTP/1.0
//   bit 2     the answer in up to 4 pieces, a moment apart (split reads)
//   bit 3     the client sends bytes after its request (tunnel, pipelining)

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "proxy/beast.h"
#include "proxy/route_internal.h"
#include "proxy/router.h"

namespace {

namespace http = boost::beast::http;

[[noreturn]] void fail(const char* why) {
  std::fprintf(stderr, "http_backend_fuzz: %s\n", why);
  __builtin_trap();
}

int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

uint16_t portOf(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

sockaddr_in loopback(uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  return a;
}

void setNonBlocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

// One router and one listening backend socket for the whole run.
struct Harness {
  Harness() {
    listenFd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(listenFd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a = loopback(0);
    if (::bind(listenFd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(listenFd, 64) != 0) {
      fail("cannot listen on 127.0.0.1");
    }
    backendPort = portOf(listenFd);
    qabox::RouterOptions o;
    o.domain = "qa.fuzz";
    o.listen = "127.0.0.1:0";
    o.threads = 1;
    o.headerTimeout = std::chrono::milliseconds(3000);
    o.idleTimeout = std::chrono::milliseconds(3000);
    o.backendTimeout = std::chrono::milliseconds(3000);
    router = std::make_unique<qabox::Router>(o, table);
    if (!router->start().isOk()) fail("the router did not start");
    qabox::Route r;
    r.slug = "b";
    r.state = qabox::EnvState::kReady;
    r.ip = "127.0.0.1";
    r.port = backendPort;
    r.generation = 1;
    table->set(r);
  }
  std::shared_ptr<qabox::RouteTable> table = std::make_shared<qabox::RouteTable>();
  std::unique_ptr<qabox::Router> router;
  int listenFd = -1;
  uint16_t backendPort = 0;
};

Harness& harness() {
  // Never destroyed: the router's threads run until the process ends.
  static Harness* h = new Harness();
  return *h;
}

std::string requestFor(unsigned kind) {
  switch (kind) {
    case 1: return "HEAD /h HTTP/1.1\r\nHost: b.qa.fuzz\r\nConnection: close\r\n\r\n";
    case 2:
      return "GET /ws HTTP/1.1\r\nHost: b.qa.fuzz\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
             "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    case 3: return "GET /old HTTP/1.0\r\nHost: b.qa.fuzz\r\n\r\n";
    default: return "GET /g HTTP/1.1\r\nHost: b.qa.fuzz\r\nConnection: close\r\n\r\n";
  }
}

enum class Seen { kPartial, kComplete, kTunnel };

// What the router sent the client so far: valid HTTP up to where it ends.
Seen checkClientBytes(const std::string& out, bool head) {
  if (out.empty()) return Seen::kPartial;
  http::response_parser<http::buffer_body> p;
  p.header_limit(1024 * 1024);
  p.body_limit(UINT64_MAX);
  p.eager(true);
  if (head) p.skip(true);
  std::string sink(64 * 1024, '\0');
  boost::asio::const_buffer in(out.data(), out.size());
  while (in.size() > 0 && !p.is_done()) {
    p.get().body().data = sink.data();
    p.get().body().size = sink.size();
    boost::system::error_code ec;
    size_t n = p.put(in, ec);
    in += n;
    if (ec == http::error::need_buffer) continue;
    if (ec == http::error::need_more) return Seen::kPartial;  // so far, or cut: allowed
    if (ec) {
      std::fprintf(stderr, "router output: %s\n", ec.message().c_str());
      fail("the router sent the client invalid HTTP");
    }
    if (p.is_header_done() && p.get().result_int() == 101) return Seen::kTunnel;
    if (n == 0) break;
  }
  return p.is_done() ? Seen::kComplete : Seen::kPartial;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Harness& h = harness();
  const uint64_t caughtBefore = qabox::proxy_internal::caughtExceptions();
  uint8_t flags = size > 0 ? data[0] : 0;
  std::string_view answer =
      size > 1 ? std::string_view(reinterpret_cast<const char*>(data) + 1, size - 1)
               : std::string_view();
  unsigned kind = flags & 3;
  bool split = (flags & 4) != 0;
  bool clientExtra = (flags & 8) != 0;

  int client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in ra = loopback(h.router->port());
  if (::connect(client, reinterpret_cast<sockaddr*>(&ra), sizeof ra) != 0) {
    fail("cannot connect to the router");
  }
  std::string req = requestFor(kind);
  if (clientExtra) req += "client bytes after the request\r\n\r\n";
  if (::send(client, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    fail("cannot send the request");
  }
  setNonBlocking(client);

  // The router connects (again, if a pooled connection from the last input
  // turns out closed) within its backend timeout.
  pollfd lp{h.listenFd, POLLIN, 0};
  if (::poll(&lp, 1, 5000) != 1) fail("the router never connected to the backend");
  int backend = ::accept4(h.listenFd, nullptr, nullptr, SOCK_CLOEXEC);
  if (backend < 0) fail("accept failed");
  setNonBlocking(backend);

  // Until the client has a whole response or the router closes it: the
  // backend reads what comes,
  // writes the answer (in pieces), then closes its sending side.
  std::string out, seenByBackend;
  size_t written = 0;
  size_t pieces = split ? 4 : 1;
  size_t pieceSize = answer.size() / pieces + 1;
  bool backendShut = false, headSeen = false;
  int64_t deadline = nowMs() + 10000;
  char buf[16 * 1024];
  for (;;) {
    if (nowMs() > deadline) fail("the router hung: the client never saw the connection end");
    if (headSeen && !backendShut) {
      size_t end = std::min(answer.size(), (written / pieceSize + 1) * pieceSize);
      if (written < end) {
        ssize_t n = ::send(backend, answer.data() + written, end - written, MSG_NOSIGNAL);
        if (n > 0) written += static_cast<size_t>(n);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) written = answer.size();
        if (split && written == end && written < answer.size()) {
          std::this_thread::sleep_for(std::chrono::microseconds(300));
        }
      }
      if (written >= answer.size()) {
        ::shutdown(backend, SHUT_WR);
        backendShut = true;
      }
    }
    pollfd p[2] = {{client, POLLIN, 0}, {backend, POLLIN, 0}};
    if (headSeen && !backendShut) p[1].events |= POLLOUT;
    ::poll(p, 2, 100);
    if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = ::recv(backend, buf, sizeof buf, 0);
      if (n > 0 && seenByBackend.size() < 1024 * 1024) seenByBackend.append(buf, n);
      if (!headSeen && seenByBackend.find("\r\n\r\n") != std::string::npos) headSeen = true;
      if (n == 0 && !headSeen) headSeen = true;  // answer anyway
    }
    if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = ::recv(client, buf, sizeof buf, 0);
      if (n > 0) {
        if (out.size() < 4 * 1024 * 1024) out.append(buf, n);
        if (checkClientBytes(out, kind == 1) == Seen::kComplete) break;
      } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
        break;
      }
    }
  }
  ::close(client);
  ::close(backend);

  (void)checkClientBytes(out, kind == 1);
  if (qabox::proxy_internal::caughtExceptions() != caughtBefore) {
    fail("a handler threw: the router's last barrier caught an exception");
  }
  return 0;
}
