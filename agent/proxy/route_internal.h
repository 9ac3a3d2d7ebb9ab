#pragma once

// What the route table hands the request path: immutable snapshots of
// targets, with per-thread counters so the hot path never contends on a lock
// or a shared cache line.

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include <boost/asio/ip/tcp.hpp>

#include "proxy/router.h"

namespace qabox::proxy_internal {

constexpr size_t kCounterSlots = 8;

// Each router thread counts into its own slot; readers sum the slots.
unsigned counterSlot();
void setCounterSlot(unsigned slot);

// Exceptions the router's last barrier caught (each ended its connection):
// for tests and the fuzzer, which expect none.
uint64_t caughtExceptions();

// The counters only grow (takeStats keeps what it last took); each thread
// writes only its own slot, with relaxed adds.
struct SlugStats {
  struct alignas(64) Slot {
    std::atomic<uint64_t> requests{0};
    std::atomic<uint64_t> bytesIn{0};
    std::atomic<uint64_t> bytesOut{0};
    std::atomic<int64_t> lastAccessMs{0};  // unix ms, taken by takeStats
    std::atomic<uint64_t> websockets{0};
    std::atomic<int64_t> websocketsOpen{0};
    std::array<std::array<std::atomic<uint64_t>, kTrafficMethodCount>, kTrafficCodeClasses>
        responses{};
    std::array<std::atomic<uint64_t>, kLatencyBoundsUs.size() + 1> latency{};
    std::atomic<uint64_t> latencySumUs{0};
  };
  std::array<Slot, kCounterSlots> slots;
  bool removed = false;  // guarded by the table's mutex
  // What takeStats reported so far; guarded by the table's mutex.
  uint64_t takenRequests = 0, takenBytesIn = 0, takenBytesOut = 0;

  Slot& mine() { return slots[counterSlot() % kCounterSlots]; }
};

// One route as the request path sees it. A new Target is made on every
// change, so the identity of a Target is the identity of a backend: pooled
// connections are keyed by it and die with it.
struct Target {
  Route route;
  boost::asio::ip::tcp::endpoint endpoint;
  bool hasEndpoint = false;
  std::shared_ptr<SlugStats> stats;
  std::atomic<bool> retired{false};
  struct alignas(64) Gauge {
    std::atomic<int64_t> value{0};
  };
  std::array<Gauge, kCounterSlots> inFlight;

  Gauge& myInFlight() { return inFlight[counterSlot() % kCounterSlots]; }
  int64_t inFlightTotal() const {
    int64_t n = 0;
    for (const auto& g : inFlight) n += g.value.load(std::memory_order_seq_cst);
    return n;
  }
};

// The method's index in kTrafficMethods.
size_t methodIndex(std::string_view method);

// One answered request: its code class, method and latency.
void countResponse(SlugStats::Slot& slot, unsigned status, size_t method, uint64_t micros);

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

struct Snapshot {
  std::unordered_map<std::string, std::shared_ptr<Target>, StringHash, std::equal_to<>> bySlug;
};

}  // namespace qabox::proxy_internal
