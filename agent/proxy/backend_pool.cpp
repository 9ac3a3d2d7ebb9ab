#include "proxy/backend_pool.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <iterator>

#include <spdlog/spdlog.h>

#include "sys/fd.h"

namespace qabox::proxy_internal {
namespace {

// Up to as many idle connections per target as a busy moment used (the
// sweep closes them after backend_idle_timeout). With 64, 256 clients on
// two threads closed and reopened backend connections on every wave: a
// tenth of the router's time went to connect(2), p99 58 ms against 17.
constexpr size_t kMaxIdlePerTarget = 256;
// A pooled connection used this recently is reused without asking the kernel
// whether the backend closed it; older ones are checked first.
constexpr int64_t kFreshMs = 250;

bool stillOpen(boost::asio::ip::tcp::socket& s) {
  char b;
  ssize_t r = ::recv(s.native_handle(), &b, 1, MSG_PEEK | MSG_DONTWAIT);
  return r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

// Closing a socket only releases it; there is nothing to do if that fails.
void closeQuietly(BackendConn& c) {
  boost::system::error_code ig;
  c.sock.close(ig);
}

}  // namespace

BackendPtr BackendPool::take(const Target* t, int64_t nowMs) {
  auto it = idle_.find(t);
  if (it == idle_.end()) return nullptr;
  auto& v = it->second;
  while (!v.empty()) {
    BackendPtr c = std::move(v.back());
    v.pop_back();
    if (nowMs - c->lastUsedMs < kFreshMs || stillOpen(c->sock)) return c;
    closeQuietly(*c);
  }
  return nullptr;
}

void BackendPool::put(BackendPtr c) {
  auto& v = idle_[c->target.get()];
  if (v.size() >= kMaxIdlePerTarget) {
    closeQuietly(*c);
    return;
  }
  v.push_back(std::move(c));
}

BackendPtr BackendPool::open(boost::asio::io_context& ioc, const std::shared_ptr<Target>& target,
                             boost::system::error_code& ec) {
  auto c = std::make_shared<BackendConn>(ioc);
  c->target = target;
  // Opened here, not by async_connect, to be close-on-exec at once.
  c->sock.open(target->endpoint.protocol(), ec);
  if (!ec && !setCloseOnExec(c->sock.native_handle())) {
    spdlog::warn("router: marking a backend socket close-on-exec failed: {}", std::strerror(errno));
  }
  return c;
}

void BackendPool::sweep(int64_t nowMs, int64_t idleMs) {
  for (auto it = idle_.begin(); it != idle_.end();) {
    std::erase_if(it->second, [&](BackendPtr& c) {
      bool drop =
          c->target->retired.load(std::memory_order_acquire) || nowMs - c->lastUsedMs >= idleMs;
      if (drop) closeQuietly(*c);
      return drop;
    });
    it = it->second.empty() ? idle_.erase(it) : std::next(it);
  }
}

void BackendPool::closeAll() {
  for (auto& [target, conns] : idle_) {
    for (auto& c : conns) closeQuietly(*c);
  }
  idle_.clear();
}

}  // namespace qabox::proxy_internal
