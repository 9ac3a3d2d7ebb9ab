#include "proxy/worker.h"

#include "core/environment.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <exception>

namespace qabox::proxy_internal {
namespace {

constexpr size_t kMaxSpareBodies = 64;

std::atomic<uint64_t> gCaught{0};

}  // namespace

int64_t unixNowMs() { return toUnixMillis(Clock::now()); }

uint64_t caughtExceptions() { return gCaught.load(std::memory_order_relaxed); }

void noteCaught(const char* where, const char* what) noexcept {
  uint64_t n = gCaught.fetch_add(1, std::memory_order_relaxed) + 1;
  if (n <= 20 || n % 1000 == 0) {
    std::fprintf(stderr, "router: %s: %s (%llu so far)\n", where, what,
                 static_cast<unsigned long long>(n));
  }
}

std::unique_ptr<char[]> BodyBuffers::take() {
  if (spare_.empty()) return std::make_unique<char[]>(kBodyBufSize);
  auto b = std::move(spare_.back());
  spare_.pop_back();
  return b;
}

void BodyBuffers::put(std::unique_ptr<char[]> b) {
  if (spare_.size() < kMaxSpareBodies) spare_.push_back(std::move(b));
}

void Worker::link(Timed* t) {
  t->next = timed;
  if (timed) timed->prev = t;
  timed = t;
}

void Worker::unlink(Timed* t) {
  if (t->prev) t->prev->next = t->next;
  if (t->next) t->next->prev = t->prev;
  if (timed == t) timed = t->next;
  t->prev = t->next = nullptr;
}

const std::shared_ptr<const Snapshot>& Worker::routes(const RouteTable& table) {
  uint64_t v = table.version();
  if (v != snapVersion) {
    snap = table.snapshot();
    snapVersion = v;
  }
  return snap;
}

void Worker::sweep(int64_t now, int64_t backendIdleMs) {
  for (Timed* t = timed; t != nullptr;) {
    Timed* next = t->next;
    if (t->deadlineMs != 0 && now >= t->deadlineMs) {
      t->deadlineMs = 0;
      try {
        t->expire();
      } catch (const std::exception& e) {
        noteCaught("a connection's timeout", e.what());
      }
    }
    t = next;
  }
  pool.sweep(now, backendIdleMs);
}

void Worker::shutdownAll() {
  for (Timed* t = timed; t != nullptr;) {
    Timed* next = t->next;
    t->shutdown();
    t = next;
  }
  pool.closeAll();
}

}  // namespace qabox::proxy_internal
