#pragma once

// Connections to backends, kept per router thread and per target: a request
// takes an idle one that still looks open, or opens a new one; a finished
// exchange puts its connection back. A connection is keyed by its Target, so
// a route change (a new Target) never reuses a connection to the old one.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "proxy/beast.h"
#include "proxy/route_internal.h"

namespace qabox::proxy_internal {

// One read from a socket.
inline constexpr size_t kReadSize = 16 * 1024;
// A backend's response head, and separately each chunk line and trailer
// block (Beast keeps them whole in the connection's buffer), may take up to
// kBackendHeaderLimit.
inline constexpr uint32_t kBackendHeaderLimit = 64 * 1024;

struct BackendConn {
  explicit BackendConn(boost::asio::io_context& ioc)
      : sock(ioc), buf(kBackendHeaderLimit + kReadSize) {}
  boost::asio::ip::tcp::socket sock;
  boost::beast::flat_buffer buf;
  std::shared_ptr<Target> target;
  int64_t lastUsedMs = 0;
};
using BackendPtr = std::shared_ptr<BackendConn>;

// Not thread-safe: each router thread has its own.
class BackendPool {
 public:
  BackendPool() = default;
  ~BackendPool() { closeAll(); }
  BackendPool(const BackendPool&) = delete;
  BackendPool& operator=(const BackendPool&) = delete;

  // An idle connection to `t` that is fresh or still open, or null.
  BackendPtr take(const Target* t, int64_t nowMs);
  // Keeps `c` (its lastUsedMs set) for the next request to its target, or
  // closes it when the target has enough idle ones.
  void put(BackendPtr c);
  // A new connection to `target`, its socket open and close-on-exec, not yet
  // connected; `ec` says why the socket could not be opened (the request's
  // connect step reports it).
  static BackendPtr open(boost::asio::io_context& ioc, const std::shared_ptr<Target>& target,
                         boost::system::error_code& ec);
  // Closes idle connections whose target retired or that sat idle idleMs.
  void sweep(int64_t nowMs, int64_t idleMs);
  void closeAll();

 private:
  std::unordered_map<const Target*, std::vector<BackendPtr>> idle_;
};

}  // namespace qabox::proxy_internal
