#pragma once

// One router thread: its io_context, its connections' deadlines, its backend
// pool and its spare body buffers. A connection lives on one thread for its
// whole life, so none of this needs a lock.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "proxy/backend_pool.h"
#include "proxy/route_internal.h"
#include "proxy/router.h"

namespace qabox::proxy_internal {

// Body relay buffers, both ways.
inline constexpr size_t kBodyBufSize = 32 * 1024;

inline int64_t steadyNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
inline int64_t steadyNowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
int64_t unixNowMs();  // for lastAccessMs

// The last barrier caught an exception: logged (the first ones, then every
// 1000th, so a peer that finds a way to repeat it cannot flood the log) and
// counted for caughtExceptions().
void noteCaught(const char* where, const char* what) noexcept;

// Something with a deadline on a worker: the worker's sweep calls expire()
// once deadlineMs passed, and shutdown() when the router stops.
struct Timed {
  Timed* prev = nullptr;
  Timed* next = nullptr;
  int64_t deadlineMs = 0;  // 0: none
  virtual ~Timed() = default;
  virtual void expire() = 0;
  virtual void shutdown() = 0;
};

// Buffers of kBodyBufSize, reused: a session takes one only while it relays
// a body.
class BodyBuffers {
 public:
  std::unique_ptr<char[]> take();
  void put(std::unique_ptr<char[]> b);

 private:
  std::vector<std::unique_ptr<char[]>> spare_;
};

struct Worker {
  Worker(Router::Impl& r, unsigned i) : router(r), index(i) {}
  // The pooled sockets close while their io_context still exists.
  ~Worker() { pool.closeAll(); }

  void link(Timed* t);
  void unlink(Timed* t);
  // The route table's current snapshot, fetched again only when it changed.
  const std::shared_ptr<const Snapshot>& routes(const RouteTable& table);
  // Expires what is due and closes stale pooled connections.
  void sweep(int64_t now, int64_t backendIdleMs);
  void shutdownAll();

  Router::Impl& router;
  unsigned index;
  Timed* timed = nullptr;
  BackendPool pool;
  BodyBuffers bodies;
  std::shared_ptr<const Snapshot> snap;
  uint64_t snapVersion = UINT64_MAX;
  // Destroyed before the members above: the handlers it still holds own
  // sessions, whose destructors unlink themselves and return buffers.
  boost::asio::io_context ioc{1};
  boost::asio::steady_timer sweeper{ioc};
  std::thread thread;
};

}  // namespace qabox::proxy_internal
