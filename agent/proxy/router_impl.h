#pragma once

// The router's shared state, for its own files: the options as the request
// path uses them, the listeners, the workers and the wakes under way.

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>

#include "proxy/router.h"
#include "proxy/worker.h"

namespace qabox {

namespace proxy_internal {

// RouterOptions as the request path reads them: defaults applied, bounds
// clamped, durations in milliseconds.
struct Limits {
  std::string domain;  // normalized
  int64_t headerMs = 0, idleMs = 0, backendMs = 0, backendIdleMs = 0, wakeMs = 0, tickMs = 0;
  uint32_t headerLimit = 0;
  size_t maxHeaderBytes = 0;
  size_t maxHeaderCount = 0;
  int threads = 1;
};

// Derives the Limits from the options; the domain must not be empty.
Result<Limits> makeLimits(const RouterOptions& o);

// Starts a client session on `w` for an accepted socket (session.cpp).
void startClientSession(Worker& w, boost::asio::ip::tcp::socket s, bool tls);

}  // namespace proxy_internal

struct Router::Impl : std::enable_shared_from_this<Router::Impl> {
  Impl(RouterOptions o, std::shared_ptr<RouteTable> t) : opts(std::move(o)), table(std::move(t)) {}
  ~Impl();

  Status start();
  void stop();
  void requestWake(const std::string& slug, std::function<void(Status)> waiter);

  RouterOptions opts;
  std::shared_ptr<RouteTable> table;
  proxy_internal::Limits limits;
  std::optional<boost::asio::ssl::context> tls;
  std::vector<std::unique_ptr<proxy_internal::Worker>> workers;
  std::optional<boost::asio::ip::tcp::acceptor> plain, secure;
  std::atomic<unsigned> nextWorker{0};
  std::atomic<bool> stopping{false};
  std::atomic<uint64_t> acceptFailures{0};
  // Client connections open, one gauge per worker (written by its thread).
  std::array<proxy_internal::Target::Gauge, proxy_internal::kCounterSlots> connections;
  uint16_t port = 0, tlsPort = 0;

 private:
  Status setUpTls();
  Status open(std::optional<boost::asio::ip::tcp::acceptor>& acceptor,
              const boost::asio::ip::tcp::endpoint& ep, std::string_view field,
              const std::string& text);
  void runWorkers();
  void accept(boost::asio::ip::tcp::acceptor& acceptor, bool tls);
  void scheduleSweep(proxy_internal::Worker& w);
  void wakeDone(const std::string& slug, const Status& s);

  std::mutex lifeMu;
  bool started = false, stopped = false;
  std::mutex wakeMu;
  std::unordered_map<std::string, std::vector<std::function<void(Status)>>> waking;
};

}  // namespace qabox
