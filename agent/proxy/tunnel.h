#pragma once

// After a 101 to a websocket request (or another upgrade the client asked
// for): bytes both ways between the client and the backend, each direction
// through its own buffer (the session's read buffer up, the backend
// connection's down), until either side closes or the connection sits idle
// for idle_timeout. Part of a ClientSession (`Session`).

#include <atomic>
#include <cstddef>

#include <boost/asio/write.hpp>

#include "proxy/backend_pool.h"
#include "proxy/worker.h"

namespace qabox::proxy_internal {

template <class Session>
class Tunnel {
  using error_code = boost::system::error_code;

 public:
  explicit Tunnel(Session& s) : s_(s) {}

  void run(const BackendPtr& c) {
    up(c);
    down(c);
  }

 private:
  // Traffic either way keeps the tunnel, and its environment, in use.
  void touch() {
    s_.arm(s_.lim_.idleMs, false);
    if (s_.target_) {
      s_.target_->stats->mine().lastAccessMs.store(unixNowMs(), std::memory_order_relaxed);
    }
  }

  void up(const BackendPtr& c) {
    auto& cbuf = s_.cbuf_;
    if (cbuf.size() > 0) {
      boost::asio::async_write(c->sock, cbuf.data(),
                               s_.guard([this, self = s_.self(), c](error_code ec, size_t n) {
                                 if (s_.closed()) return;
                                 s_.cbuf_.consume(n);
                                 s_.addIn(n);
                                 touch();
                                 if (ec) return s_.closeNow();
                                 up(c);
                               }));
      return;
    }
    s_.client_.async_read_some(cbuf.prepare(kReadSize),
                               s_.guard([this, self = s_.self(), c](error_code ec, size_t n) {
                                 if (s_.closed()) return;
                                 s_.cbuf_.commit(n);
                                 touch();
                                 if (ec) return s_.closeNow();
                                 up(c);
                               }));
  }

  void down(const BackendPtr& c) {
    if (c->buf.size() > 0) {
      boost::asio::async_write(s_.client_, c->buf.data(),
                               s_.guard([this, self = s_.self(), c](error_code ec, size_t n) {
                                 if (s_.closed()) return;
                                 c->buf.consume(n);
                                 s_.addOut(n);
                                 touch();
                                 if (ec) return s_.closeNow();
                                 down(c);
                               }));
      return;
    }
    c->sock.async_read_some(c->buf.prepare(kReadSize),
                            s_.guard([this, self = s_.self(), c](error_code ec, size_t n) {
                              if (s_.closed()) return;
                              c->buf.commit(n);
                              touch();
                              if (ec) return s_.closeNow();
                              down(c);
                            }));
  }

  Session& s_;
};

}  // namespace qabox::proxy_internal
