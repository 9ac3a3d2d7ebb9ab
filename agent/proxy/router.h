#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/environment.h"
#include "core/status.h"
#include "store/store.h"

namespace qabox {

// Where `<slug>.<domain>` goes, and what to answer while it can not go there.
struct Route {
  std::string slug;
  EnvState state = EnvState::kCreating;
  std::string ip;
  uint16_t port = 80;
  std::string message;  // shown on the FAILED page
  // Behind a login: only a signed-in person (RouterOptions::gate) or a
  // network of its allowlist gets through.
  bool login = false;
  uint64_t generation = 0;
  // In a cluster: the host that owns the environment, when it is another
  // one. Then ip:port is that host's router, which the request is forwarded
  // to as it came (its login, sleep and pages are the owner's), marked with
  // kForwardedHeader; no address: the host is down and the route says LOST.
  std::string via;

  bool operator==(const Route&) const = default;
};

// What the router counted for one route since it was first set, for the
// metrics: read at scrape time, never reset. Methods and code classes are
// fixed enums (kTrafficMethods, 1xx..5xx), never bytes from a client.
inline constexpr size_t kTrafficMethodCount = 8;
inline constexpr std::array<std::string_view, kTrafficMethodCount> kTrafficMethods = {
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "other"};
inline constexpr size_t kTrafficCodeClasses = 5;  // 1xx .. 5xx
// Upper bounds of the request latency buckets, in microseconds (+Inf after).
inline constexpr std::array<uint64_t, 12> kLatencyBoundsUs = {
    1'000,   2'500,   5'000,   10'000,    25'000,    50'000,
    100'000, 250'000, 500'000, 1'000'000, 2'500'000, 10'000'000};

struct RouteTraffic {
  std::string slug;
  EnvState state = EnvState::kCreating;
  uint64_t requests = 0;  // looked up for this route, answered or not
  uint64_t bytesIn = 0, bytesOut = 0;
  uint64_t websockets = 0;     // tunnels opened
  int64_t websocketsOpen = 0;  // tunnels open now
  // responses[class][method]: answered requests; class 0 is 1xx.
  std::array<std::array<uint64_t, kTrafficMethodCount>, kTrafficCodeClasses> responses{};
  // Per bucket of kLatencyBoundsUs, then +Inf: not cumulative.
  std::array<uint64_t, kLatencyBoundsUs.size() + 1> latency{};
  uint64_t latencySumUs = 0;
};

namespace proxy_internal {
struct Target;
struct Snapshot;
struct SlugStats;
}  // namespace proxy_internal

// The routes the router serves. Thread-safe: readers take an immutable
// snapshot, writers build a new one and swap it in, so a request sees either
// the old route or the new one, never half of each.
class RouteTable {
 public:
  RouteTable();
  ~RouteTable();
  RouteTable(const RouteTable&) = delete;
  RouteTable& operator=(const RouteTable&) = delete;

  // Adds or replaces the route of `r.slug` (lower-cased). Any change retires
  // the previous target: pooled connections to it are never reused, and a
  // request that looked it up but has not been sent yet is routed again.
  void set(Route r);
  void remove(const std::string& slug);
  // The cluster's routes to other hosts (Route::via set): they never replace
  // nor remove a route of this host's own.
  void setRemote(Route r);
  void removeRemote(const std::string& slug);
  std::optional<Route> lookup(std::string_view slug) const;
  std::vector<Route> all() const;

  // Requests forwarded to ip:port whose exchange has not finished yet
  // (websocket tunnels included). After set() or remove() moved a route off a
  // container, wait (bounded) for this to reach 0 before destroying the
  // container: once it has read 0, no request can be sent there any more.
  int64_t inFlight(std::string_view ip, uint16_t port) const;

  // Use counters accumulated since the last call, one entry per slug used.
  std::vector<AccessStats> takeStats();

  // The counters of every route in the table now, by slug; a removed route
  // is not in it.
  std::vector<RouteTraffic> traffic() const;

  // For the router's request path.
  std::shared_ptr<const proxy_internal::Snapshot> snapshot() const;
  uint64_t version() const { return version_.load(std::memory_order_acquire); }

 private:
  void put(Route r, bool remote);
  void drop(const std::string& slug, bool remote);
  void publish(std::shared_ptr<const proxy_internal::Snapshot> next,
               const std::shared_ptr<proxy_internal::Target>& retired);

  mutable std::mutex mu_;
  std::shared_ptr<const proxy_internal::Snapshot> snap_;
  std::atomic<uint64_t> version_{0};
  std::unordered_map<std::string, std::shared_ptr<proxy_internal::SlugStats>> stats_;
  std::vector<std::weak_ptr<proxy_internal::Target>> retired_;
};

// What the router asks of a request for a route behind a login
// (Route::login) before it forwards it, and the answer. The gate is the
// agent's (server/preview_gate.h): the router knows nothing of tokens.
struct AccessRequest {
  std::string_view slug;
  std::string_view host;           // the Host header, as the client sent it
  std::string_view method;         // GET, POST, ...
  std::string_view target;         // path and query
  std::string_view cookie;         // the Cookie headers, joined with "; "
  std::string_view authorization;  // the Authorization header
  uint32_t peerIpv4 = 0;           // the client's address (host order); 0: not IPv4
  bool tls = false;
};

struct AccessAnswer {
  enum class Kind : uint8_t {
    kAllow,     // forward it
    kRedirect,  // 302 to `location`, setting `setCookie` when not empty
    kRefuse,    // 401 with `message`
  };
  Kind kind = Kind::kRefuse;
  std::string location;
  std::string setCookie;
  std::string message;
};
using AccessGate = std::function<AccessAnswer(const AccessRequest&)>;

// Set on a request a router forwards to another host's router. A request
// that arrives with it for a route that is not this host's own is refused
// (508), never forwarded again: two hosts that disagree about an owner for a
// moment can not bounce a request between them.
inline constexpr char kForwardedHeader[] = "X-Qabox-Forwarded";

struct RouterOptions {
  std::string domain;
  std::string self;    // this host's [cluster] name: kForwardedHeader's value
  std::string listen;  // host:port; port 0 picks a free one (see Router::port())
  std::string tlsListen, tlsCert, tlsKey;  // all three, or none
  // A client must send a whole request head within headerTimeout of its
  // first byte (slowloris); a keep-alive connection may sit idle for
  // idleTimeout; a backend must connect, accept and answer within
  // backendTimeout of each step.
  std::chrono::milliseconds headerTimeout{10000};
  std::chrono::milliseconds idleTimeout{60000};
  std::chrono::milliseconds backendTimeout{30000};
  // Pooled backend connections idle longer than this are closed. Backends
  // commonly drop idle keep-alive connections after 5 s; closing first avoids
  // sending a request into a connection the backend is closing.
  std::chrono::milliseconds backendIdleTimeout{4000};
  // How long a request for a SLEEPING environment waits for `wake`.
  std::chrono::milliseconds wakeTimeout{60000};
  size_t maxHeaderBytes = 16 * 1024;
  size_t maxHeaderCount = 100;
  int threads = 2;
  // Optional, for sleeping environments: called when a request arrives for a
  // SLEEPING route (once per slug until done runs, however many requests
  // wait); must call done(Status) when the environment is awake (route set
  // READY again) or failed. The router holds the requests meanwhile, up to
  // wakeTimeout. If unset, SLEEPING answers 503. done may be called from any
  // thread, also after the router is gone.
  std::function<void(const std::string& slug, std::function<void(Status)> done)> wake;
  // Asked for every request to a route behind a login; unset: such a route
  // answers 401 to everyone (fails closed). Called on a router thread: it
  // must not block.
  AccessGate gate;
};

// The HTTP router: `<slug>.<domain>` -> the environment's ip:port, by Host.
class Router {
 public:
  Router(RouterOptions options, std::shared_ptr<RouteTable> routes);
  ~Router();
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  // Binds the listeners and runs the router's own threads. Once per Router.
  Status start();
  // Closes the listeners and every connection, and joins the threads. Safe to
  // call twice; must not be called from inside `wake`.
  void stop();
  uint16_t port() const;
  uint16_t tlsPort() const;
  // Drains accumulated use counters (see RouteTable::takeStats).
  std::vector<AccessStats> takeStats();
  // Client connections open now, on both listeners.
  int64_t openConnections() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

// "EXMP-113.qa.company.int:8080" -> "exmp-113" when domain is qa.company.int.
// Case-insensitive, the port and one trailing dot ignored; anything that is not
// exactly one DNS label under the domain is an INVALID_ARGUMENT naming the rule.
Result<std::string> parseHostHeader(std::string_view host, std::string_view domain);

}  // namespace qabox
