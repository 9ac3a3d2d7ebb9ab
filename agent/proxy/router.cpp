#include "proxy/router.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <exception>
#include <iterator>
#include <memory_resource>
#include <thread>
#include <type_traits>
#include <utility>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include "proxy/beast.h"
#include "proxy/host.h"
#include "proxy/pages.h"
#include "proxy/request_check.h"
#include "proxy/route_internal.h"
#include "sys/fd.h"

namespace qabox {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using proxy_internal::kNoBodyLimit;
using proxy_internal::Refusal;
using proxy_internal::Snapshot;
using proxy_internal::Target;

// Sizes of the request path. A session holds one small read buffer while
// idle; body relay buffers come from a per-thread free list.
constexpr size_t kHeadRead = 4096;
constexpr size_t kReadSize = 16 * 1024;
constexpr size_t kBodyBufSize = 32 * 1024;
constexpr size_t kIdleBufferKeep = 8 * 1024;
// A backend's response head, and separately each chunk line and trailer
// block (Beast keeps them whole in the connection's buffer), may take up to
// kBackendHeaderLimit; a head may have at most kBackendHeaderCount fields.
constexpr uint32_t kBackendHeaderLimit = 64 * 1024;
constexpr size_t kBackendHeaderCount = 200;
constexpr size_t kMaxIdlePerTarget = 64;
constexpr size_t kMaxSpareBodies = 64;
// A pooled connection used this recently is reused without asking the kernel
// whether the backend closed it; older ones are checked first.
constexpr int64_t kFreshMs = 250;
constexpr int kMaxDispatches = 4;
constexpr int kMaxInterimResponses = 8;
constexpr size_t kArenaSize = 4096;
constexpr int kRetryAfterDeploying = 5;
constexpr int kRetryAfterSleeping = 10;

int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

int64_t unixMsNow() { return toUnixMillis(Clock::now()); }

std::string seconds(int64_t ms) {
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

bool stillOpen(tcp::socket& s) {
  char b;
  ssize_t r = ::recv(s.native_handle(), &b, 1, MSG_PEEK | MSG_DONTWAIT);
  return r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

Result<tcp::endpoint> parseListen(std::string_view field, std::string_view text) {
  auto bad = [&](std::string_view rule) {
    return invalidArgument(std::string(field) + " \"" + std::string(text) +
                           "\": " + std::string(rule));
  };
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return bad("must be host:port");
  std::string_view host = text.substr(0, colon);
  std::string_view port = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (port.empty() || port.size() > 5 ||
      !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return bad("the port must be a number");
  }
  unsigned long p = std::stoul(std::string(port));
  if (p > 65535) return bad("the port must be at most 65535");
  error_code ec;
  auto address = asio::ip::make_address(host.empty() ? "0.0.0.0" : std::string(host), ec);
  if (ec) return bad("the host must be an IP address");
  return tcp::endpoint(address, static_cast<uint16_t>(p));
}

std::atomic<uint64_t> gCaught{0};

// The last barrier caught an exception: logged (the first ones, then every
// 1000th, so a peer that finds a way to repeat it cannot flood the log).
void noteCaught(const char* where, const char* what) noexcept {
  uint64_t n = gCaught.fetch_add(1, std::memory_order_relaxed) + 1;
  if (n <= 20 || n % 1000 == 0) {
    std::fprintf(stderr, "router: %s: %s (%llu so far)\n", where, what,
                 static_cast<unsigned long long>(n));
  }
}

// Beast's fields throw std::length_error for a value over 65533 bytes; a
// trailer that long fits the body buffer, and a head that long fits a limit
// above 64 KiB. Either is a head over the limit, as an error code.
template <class Parser>
size_t putSafely(Parser& p, asio::const_buffer b, error_code& ec) {
  try {
    return p.put(b, ec);
  } catch (const std::length_error&) {
    ec = http::error::header_limit;
    return 0;
  }
}

// Fills `buf` with what `src` holds of the body, without reading; leaves the
// body set up for the serializer.
template <class Parser>
size_t pumpBody(Parser& p, beast::flat_buffer& src, char* buf, size_t& consumed, error_code& ec) {
  auto& b = p.get().body();
  b.data = buf;
  b.size = kBodyBufSize;
  consumed = 0;
  while (src.size() > 0 && !p.is_done() && b.size > 0) {
    size_t n = putSafely(p, src.data(), ec);
    src.consume(n);
    consumed += n;
    if (ec == http::error::need_buffer || ec == http::error::need_more) {
      ec = {};
      break;
    }
    if (ec || n == 0) break;
  }
  size_t produced = kBodyBufSize - b.size;
  // An empty buffer with more to come would be serialized as the last chunk.
  b.data = produced ? buf : nullptr;
  b.size = produced;
  b.more = !p.is_done();
  return produced;
}

template <class Parser>
void setNoBody(Parser& p, bool more) {
  auto& b = p.get().body();
  b.data = nullptr;
  b.size = 0;
  b.more = more;
}

struct Timed {
  Timed* prev = nullptr;
  Timed* next = nullptr;
  int64_t deadlineMs = 0;  // 0: none
  virtual ~Timed() = default;
  virtual void expire() = 0;
  virtual void shutdown() = 0;
};

struct BackendConn {
  explicit BackendConn(asio::io_context& ioc) : sock(ioc), buf(kBackendHeaderLimit + kReadSize) {}
  tcp::socket sock;
  beast::flat_buffer buf;
  std::shared_ptr<Target> target;
  int64_t lastUsedMs = 0;
};
using BackendPtr = std::shared_ptr<BackendConn>;

// One io_context per thread: a connection lives on one thread for its whole
// life, so its session, the backend pool and the timers need no locks.
struct Worker {
  Worker(Router::Impl& r, unsigned i) : router(r), index(i) {}
  ~Worker() {
    for (auto& [target, conns] : idle) {
      for (auto& c : conns) {
        error_code ig;
        c->sock.close(ig);
      }
    }
    idle.clear();
  }

  void link(Timed* t) {
    t->next = timed;
    if (timed) timed->prev = t;
    timed = t;
  }
  void unlink(Timed* t) {
    if (t->prev) t->prev->next = t->next;
    if (t->next) t->next->prev = t->prev;
    if (timed == t) timed = t->next;
    t->prev = t->next = nullptr;
  }

  const std::shared_ptr<const Snapshot>& routes(const RouteTable& table) {
    uint64_t v = table.version();
    if (v != snapVersion) {
      snap = table.snapshot();
      snapVersion = v;
    }
    return snap;
  }

  BackendPtr takeIdle(const Target* t) {
    auto it = idle.find(t);
    if (it == idle.end()) return nullptr;
    auto& v = it->second;
    int64_t now = nowMs();
    while (!v.empty()) {
      BackendPtr c = std::move(v.back());
      v.pop_back();
      if (now - c->lastUsedMs < kFreshMs || stillOpen(c->sock)) return c;
      error_code ig;
      c->sock.close(ig);
    }
    return nullptr;
  }

  void putIdle(BackendPtr c) {
    auto& v = idle[c->target.get()];
    if (v.size() >= kMaxIdlePerTarget) {
      error_code ig;
      c->sock.close(ig);
      return;
    }
    v.push_back(std::move(c));
  }

  std::unique_ptr<char[]> takeBody() {
    if (spareBodies.empty()) return std::make_unique<char[]>(kBodyBufSize);
    auto b = std::move(spareBodies.back());
    spareBodies.pop_back();
    return b;
  }
  void putBody(std::unique_ptr<char[]> b) {
    if (spareBodies.size() < kMaxSpareBodies) spareBodies.push_back(std::move(b));
  }

  void sweep(int64_t now, int64_t backendIdleMs) {
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
    for (auto it = idle.begin(); it != idle.end();) {
      std::erase_if(it->second, [&](BackendPtr& c) {
        bool drop = c->target->retired.load(std::memory_order_acquire) ||
                    now - c->lastUsedMs >= backendIdleMs;
        if (drop) {
          error_code ig;
          c->sock.close(ig);
        }
        return drop;
      });
      it = it->second.empty() ? idle.erase(it) : std::next(it);
    }
  }

  void shutdownAll() {
    for (Timed* t = timed; t != nullptr;) {
      Timed* next = t->next;
      t->shutdown();
      t = next;
    }
    for (auto& [target, conns] : idle) {
      for (auto& c : conns) {
        error_code ig;
        c->sock.close(ig);
      }
    }
    idle.clear();
  }

  Router::Impl& router;
  unsigned index;
  Timed* timed = nullptr;
  std::unordered_map<const Target*, std::vector<BackendPtr>> idle;
  std::vector<std::unique_ptr<char[]>> spareBodies;
  std::shared_ptr<const Snapshot> snap;
  uint64_t snapVersion = UINT64_MAX;
  // Destroyed before the members above: the handlers it still holds own
  // sessions, whose destructors unlink themselves and return buffers.
  asio::io_context ioc{1};
  asio::steady_timer sweeper{ioc};
  std::thread thread;
};

}  // namespace

uint64_t proxy_internal::caughtExceptions() { return gCaught.load(std::memory_order_relaxed); }

struct Router::Impl : std::enable_shared_from_this<Router::Impl> {
  Impl(RouterOptions o, std::shared_ptr<RouteTable> t) : opts(std::move(o)), table(std::move(t)) {}
  ~Impl() {
    stop();
    plain.reset();
    secure.reset();
    // In order: worker 0 runs the acceptors, and a pending accept owns a
    // socket of another worker's io_context.
    for (auto& w : workers) w.reset();
  }

  Status start();
  void stop();
  void accept(tcp::acceptor& acceptor, bool tls);
  void startSession(Worker& w, tcp::socket s, bool tls);
  void scheduleSweep(Worker& w);
  void requestWake(const std::string& slug, std::function<void(Status)> waiter);
  void wakeDone(const std::string& slug, const Status& s);

  RouterOptions opts;
  std::shared_ptr<RouteTable> table;
  std::string domain;
  int64_t headerMs = 0, idleMs = 0, backendMs = 0, backendIdleMs = 0, wakeMs = 0, tickMs = 0;
  uint32_t headerLimit = 0;
  std::optional<ssl::context> tls;
  std::vector<std::unique_ptr<Worker>> workers;
  std::optional<tcp::acceptor> plain, secure;
  std::atomic<unsigned> nextWorker{0};
  std::atomic<bool> stopping{false};
  uint16_t port = 0, tlsPort = 0;
  std::mutex lifeMu;
  bool started = false, stopped = false;
  std::mutex wakeMu;
  std::unordered_map<std::string, std::vector<std::function<void(Status)>>> waking;
};

namespace {

enum class Phase {
  kHandshake,
  kIdle,
  kHead,
  kRouting,
  kWaking,
  kConnect,
  kRequest,
  kResponseHead,
  kResponseBody,
  kReply,
  kTunnel,
  kClosing,
};

enum class Stage { kConnect, kSend, kReceive, kBadResponse };

// One client connection, for its whole life: reads requests with Beast's
// parser, forwards them over a pooled backend connection, and streams bodies
// both ways through one fixed buffer.
template <class Stream>
class Session final : public Timed, public std::enable_shared_from_this<Session<Stream>> {
  static constexpr bool kTls = !std::is_same_v<Stream, tcp::socket>;

 public:
  Session(Worker& w, tcp::socket sock, std::string clientIp)
      : w_(w),
        r_(w.router),
        client_(makeStream(std::move(sock), w.router)),
        clientIp_(std::move(clientIp)),
        cbuf_(w.router.opts.maxHeaderBytes + kReadSize) {
    w_.link(this);
  }

  ~Session() override {
    releaseBackend(false);
    if (body_) w_.putBody(std::move(body_));
    w_.unlink(this);
  }

  void start() {
    arm(r_.headerMs, false);
    if constexpr (kTls) {
      phase_ = Phase::kHandshake;
      client_.async_handshake(ssl::stream_base::server, guard([self = self()](error_code ec) {
                                if (self->closed_) return;
                                if (ec) return self->closeNow();
                                self->newRequest();
                              }));
    } else {
      newRequest();
    }
  }

  void expire() override {
    auto keep = self();
    if (waitingOnBackend_ && be_) {
      // The pending backend operation fails and answers 502 (or cuts a
      // response already under way).
      timedOut_ = true;
      error_code ig;
      be_->sock.close(ig);
      return;
    }
    closeNow();
  }

  void shutdown() override {
    auto keep = self();
    closeNow();
  }

 private:
  static Stream makeStream(tcp::socket&& s, Router::Impl& r) {
    if constexpr (kTls) {
      return Stream(std::move(s), *r.tls);
    } else {
      (void)r;
      return std::move(s);
    }
  }

  std::shared_ptr<Session> self() { return this->shared_from_this(); }

  // Every completion handler runs inside guard(): an exception from Beast,
  // Asio or this code ends this connection, never the process. The handler
  // holds the session, so `this` outlives the call.
  template <class F>
  auto guard(F&& f) {
    return [this, f = std::forward<F>(f)](auto&&... args) mutable {
      this->guarded([&] { f(std::forward<decltype(args)>(args)...); });
    };
  }
  template <class F>
  void guarded(F&& f) noexcept {
    try {
      f();
    } catch (const std::exception& e) {
      failed(e.what());
    } catch (...) {
      failed("unknown exception");
    }
  }
  void failed(const char* what) noexcept {
    noteCaught("closing a connection after an error", what);
    try {
      closeNow();
    } catch (...) {
      closed_ = true;
    }
  }
  auto& socket() { return beast::get_lowest_layer(client_); }
  std::string_view slug() const { return {slug_, slugLen_}; }

  void arm(int64_t ms, bool backend) {
    deadlineMs = nowMs() + ms;
    waitingOnBackend_ = backend;
  }

  void addIn(size_t n) {
    if (target_ && n) target_->stats->mine().bytesIn.fetch_add(n, std::memory_order_relaxed);
  }
  void addOut(size_t n) {
    if (target_ && n) target_->stats->mine().bytesOut.fetch_add(n, std::memory_order_relaxed);
  }

  // ---- reading a request head ----

  void newRequest() {
    reqSer_.reset();
    resSer_.reset();
    res_.reset();
    reply_.reset();
    req_.reset();
    arena_.release();
    if (body_) w_.putBody(std::move(body_));
    if (cbuf_.size() == 0 && cbuf_.capacity() > kIdleBufferKeep) cbuf_.shrink_to_fit();
    req_.emplace(std::piecewise_construct, std::make_tuple(),
                 std::make_tuple(proxy_internal::FieldsAllocator(&arena_)));
    req_->header_limit(r_.headerLimit);
    req_->body_limit(kNoBodyLimit);
    scan_.reset();
    st_ = {};
    target_ = nullptr;
    targetRef_ = nullptr;
    if (cbuf_.size() == 0 && requests_ > 0) {
      phase_ = Phase::kIdle;
      arm(r_.idleMs, false);
    } else if (requests_ > 0) {
      phase_ = Phase::kHead;
      arm(r_.headerMs, false);
    } else {
      phase_ = Phase::kHead;  // the first head's clock started at accept
    }
    ++requests_;
    parseHead();
  }

  void parseHead() {
    while (cbuf_.size() > 0) {
      if (phase_ == Phase::kIdle) {
        phase_ = Phase::kHead;
        arm(r_.headerMs, false);
      }
      error_code ec;
      auto data = cbuf_.data();
      size_t n = putSafely(*req_, data, ec);
      scan_.feed(static_cast<const char*>(data.data()), n);
      cbuf_.consume(n);
      st_.headerBytes += n;
      if (ec == http::error::need_more) {
        auto rest = cbuf_.data();
        if (scan_.pendingBadLineEnding(static_cast<const char*>(rest.data()), rest.size())) {
          return refuse({400, "lines must end with CRLF"});
        }
        break;
      }
      if (ec) return refuse(proxy_internal::refusalForParseError(ec));
      if (req_->is_header_done()) return onHead();
      if (n == 0) break;
    }
    size_t room = cbuf_.max_size() - cbuf_.size();
    if (room == 0) return refuse({431, "the request head is too large"});
    size_t want = std::min(room, std::max(kHeadRead, cbuf_.size()));
    client_.async_read_some(cbuf_.prepare(want), guard([self = self()](error_code ec, size_t n) {
                              if (self->closed_) return;
                              self->cbuf_.commit(n);
                              // Closing between requests, or mid-head, needs no answer.
                              if (ec) return self->closeNow();
                              self->parseHead();
                            }));
  }

  void onHead() {
    phase_ = Phase::kRouting;
    if (auto refusal =
            proxy_internal::checkRequestHead(*req_, scan_.folded(), r_.opts.maxHeaderCount)) {
      return refuse(*refusal);
    }
    auto& m = req_->get();
    std::string_view label;
    auto he = proxy_internal::matchHost(proxy_internal::sv(m[http::field::host]), r_.domain, label);
    if (he != proxy_internal::HostError::kNone) {
      return refuse({400, proxy_internal::hostErrorText(he)});
    }
    slugLen_ = label.size();
    for (size_t i = 0; i < label.size(); ++i) {
      char c = label[i];
      slug_[i] = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    }
    st_.isHead = m.method() == http::verb::head;
    st_.hasBody = !req_->is_done();
    st_.clientV10 = m.version() < 11;
    st_.clientKeepAlive = req_->keep_alive();
    st_.expect100 = m.find(http::field::expect) != m.end();
    if (req_->upgrade()) {
      for (auto token : http::token_list{m[http::field::upgrade]}) {
        if (proxy_internal::iequals(proxy_internal::sv(token), "websocket")) st_.websocket = true;
      }
    }
    dispatch();
  }

  // ---- routing ----

  void dispatch() {
    phase_ = Phase::kRouting;
    deadlineMs = 0;
    if (++st_.dispatches > kMaxDispatches) {
      return replyPage(502, "Environment unavailable",
                       "Environment \"" + std::string(slug()) +
                           "\" changed its address repeatedly while this request was routed. "
                           "Try again.");
    }
    // Copy the worker's snapshot only when it changed: the reference count
    // is shared by every thread.
    if (const auto& current = w_.routes(*r_.table); snap_ != current) snap_ = current;
    auto it = snap_->bySlug.find(slug());
    if (it == snap_->bySlug.end()) {
      target_ = nullptr;
      return replyPage(404, "No such environment",
                       "No environment named \"" + std::string(slug()) +
                           "\" exists on this host. Check the name, or deploy it first.");
    }
    target_ = it->second.get();
    targetRef_ = &it->second;
    if (!st_.counted) {
      st_.counted = true;
      auto& slot = target_->stats->mine();
      slot.requests.fetch_add(1, std::memory_order_relaxed);
      slot.bytesIn.fetch_add(st_.headerBytes, std::memory_order_relaxed);
      slot.lastAccessMs.store(unixMsNow(), std::memory_order_relaxed);
    }
    const Route& route = target_->route;
    if (route.state == EnvState::kReady && target_->hasEndpoint) return acquireBackend();
    std::string name = "Environment \"" + std::string(slug()) + "\"";
    switch (route.state) {
      case EnvState::kReady:
        if (!target_->hasEndpoint) {
          return replyPage(502, "Bad gateway",
                           name + " has no valid address (\"" + route.ip + "\" port " +
                               std::to_string(route.port) + ").");
        }
        return acquireBackend();
      case EnvState::kCreating:
      case EnvState::kDeploying:
        return replyPage(503, "Environment is deploying",
                         name + " is being deployed (state " + std::string(stateName(route.state)) +
                             "). Try again in a few seconds.",
                         kRetryAfterDeploying);
      case EnvState::kFailed:
        return replyPage(502, "Environment failed",
                         name + " is in state " + std::string(stateName(route.state)) +
                             (route.message.empty() ? std::string(".") : ": " + route.message));
      case EnvState::kBroken:
        return replyPage(502, "Environment is broken",
                         name + " is broken and out of service" +
                             (route.message.empty() ? std::string(".") : ": " + route.message) +
                             " The agent keeps it for an operator: deleting it retries the "
                             "clean-up.");
      case EnvState::kSleeping: return startWake();
      case EnvState::kDeleting:
        return replyPage(404, "No such environment", name + " is being deleted.");
    }
    return replyPage(502, "Bad gateway", name + " is in an unknown state.");
  }

  void startWake() {
    std::string name = "Environment \"" + std::string(slug()) + "\"";
    if (!r_.opts.wake || st_.wakeTried) {
      return replyPage(503, "Environment is asleep",
                       name + " is asleep (state SLEEPING). Try again in a few seconds.",
                       kRetryAfterSleeping);
    }
    st_.wakeTried = true;
    phase_ = Phase::kWaking;
    deadlineMs = 0;
    if (!wakeTimer_) wakeTimer_.emplace(w_.ioc);
    wakeTimer_->expires_after(std::chrono::milliseconds(r_.wakeMs));
    uint64_t token = ++wakeToken_;
    wakeTimer_->async_wait(guard([self = self(), token, name](error_code ec) {
      if (ec || self->closed_ || self->phase_ != Phase::kWaking || token != self->wakeToken_) {
        return;
      }
      // Past wake_timeout the held request is a gateway timeout: the
      // environment was asked to wake and did not answer in time.
      self->replyPage(504, "Environment did not wake in time",
                      name + " did not wake up within " + seconds(self->r_.wakeMs) + ".",
                      kRetryAfterSleeping);
    }));
    std::weak_ptr<Session> weak = self();
    asio::io_context* ioc = &w_.ioc;
    r_.requestWake(std::string(slug()), [weak, ioc, token](Status s) {
      asio::post(*ioc, [weak, token, s = std::move(s)]() {
        if (auto p = weak.lock()) p->guarded([&] { p->onWoken(token, s); });
      });
    });
  }

  void onWoken(uint64_t token, const Status& s) {
    if (closed_ || phase_ != Phase::kWaking || token != wakeToken_) return;
    ++wakeToken_;
    error_code ig;
    wakeTimer_->cancel(ig);
    if (!s.isOk()) {
      return replyPage(
          502, "Environment did not wake",
          "Environment \"" + std::string(slug()) + "\" could not be woken: " + s.message());
    }
    dispatch();
  }

  // ---- forwarding the request ----

  void acquireBackend() {
    if (target_->retired.load(std::memory_order_acquire)) return dispatch();
    if (!st_.forceFresh) {
      if (auto c = w_.takeIdle(target_)) {
        be_ = std::move(c);
        st_.reused = true;
        return sendRequest();
      }
    }
    st_.reused = false;
    be_ = std::make_shared<BackendConn>(w_.ioc);
    be_->target = *targetRef_;
    phase_ = Phase::kConnect;
    arm(r_.backendMs, true);
    // Opened here, not by async_connect, to be close-on-exec at once.
    error_code oe;
    be_->sock.open(target_->endpoint.protocol(), oe);
    if (!oe) setCloseOnExec(be_->sock.native_handle());
    be_->sock.async_connect(target_->endpoint, guard([self = self(), c = be_](error_code ec) {
                              if (self->closed_) return;
                              if (ec) return self->backendFailed(ec, Stage::kConnect);
                              error_code ig;
                              c->sock.set_option(tcp::no_delay(true), ig);
                              self->sendRequest();
                            }));
  }

  void sendRequest() {
    // The last moment before bytes go out: a route changed since the lookup
    // sends this request to the new target, never to a removed one. Counting
    // the request in flight before looking (both sequentially consistent,
    // as RouteTable retires then reads) means a caller that removed the
    // route and then saw inFlight() at 0 can never be followed by a send.
    if (!inFlight_) {
      be_->target->myInFlight().value.fetch_add(1, std::memory_order_seq_cst);
      inFlight_ = true;
    }
    if (target_->retired.load(std::memory_order_seq_cst)) {
      releaseBackend(false);
      return dispatch();
    }
    if (!st_.transformed) {
      transformRequest();
      st_.transformed = true;
    }
    phase_ = Phase::kRequest;
    if (st_.expect100 && !st_.sent100 && !req_->is_done()) {
      // The router answers the expectation itself: the backend never sees
      // it, so it cannot stall waiting on a 100 the router would swallow.
      st_.sent100 = true;
      static constexpr std::string_view k100 = "HTTP/1.1 100 Continue\r\n\r\n";
      arm(r_.idleMs, false);
      asio::async_write(client_, asio::buffer(k100.data(), k100.size()),
                        guard([self = self()](error_code ec, size_t) {
                          if (self->closed_) return;
                          if (ec) return self->closeNow();
                          self->startRequestRelay();
                        }));
      return;
    }
    startRequestRelay();
  }

  void transformRequest() {
    auto& m = req_->get();
    m.version(11);
    m.erase(http::field::connection);
    m.erase(http::field::keep_alive);
    m.erase(http::field::proxy_connection);
    m.erase(http::field::te);
    m.erase(http::field::trailer);
    m.erase(http::field::expect);
    if (st_.websocket) {
      m.set(http::field::connection, "Upgrade");
    } else {
      m.erase(http::field::upgrade);
    }
    std::string xff;
    for (auto it = m.find("X-Forwarded-For");
         it != m.end() &&
         proxy_internal::iequals(proxy_internal::sv(it->name_string()), "X-Forwarded-For");
         ++it) {
      xff.append(it->value().data(), it->value().size());
      xff += ", ";
    }
    xff += clientIp_;
    m.set("X-Forwarded-For", xff);
    m.set("X-Forwarded-Proto", kTls ? "https" : "http");
    m.set("X-Forwarded-Host", m[http::field::host]);
  }

  void startRequestRelay() {
    setNoBody(*req_, !req_->is_done());
    reqSer_.emplace(req_->get());
    st_.reqHeadSent = false;
    relayRequest();
  }

  void relayRequest() {
    if (!req_->is_done() && cbuf_.size() > 0) {
      if (!body_) body_ = w_.takeBody();
      error_code ec;
      size_t consumed = 0;
      size_t produced = pumpBody(*req_, cbuf_, body_.get(), consumed, ec);
      addIn(consumed);
      if (ec) {
        releaseBackend(false);
        return refuse(proxy_internal::refusalForParseError(ec));
      }
      if (produced > 0 || req_->is_done()) return writeRequest();
    } else if (req_->is_done()) {
      setNoBody(*req_, false);
      return writeRequest();
    }
    if (!st_.reqHeadSent) {
      setNoBody(*req_, true);
      return writeRequest();
    }
    size_t room = std::min(kReadSize, cbuf_.max_size() - cbuf_.size());
    if (room == 0) {
      releaseBackend(false);
      return refuse({400, "invalid chunked encoding"});
    }
    arm(r_.idleMs, false);
    client_.async_read_some(cbuf_.prepare(room), guard([self = self()](error_code ec, size_t n) {
                              if (self->closed_) return;
                              self->cbuf_.commit(n);
                              // A client that leaves mid-upload has no one to answer.
                              if (ec) return self->closeNow();
                              self->relayRequest();
                            }));
  }

  void writeRequest() {
    arm(r_.backendMs, true);
    http::async_write(be_->sock, *reqSer_, guard([self = self(), c = be_](error_code ec, size_t) {
                        if (self->closed_) return;
                        if (ec == http::error::need_buffer) ec = {};
                        if (ec) return self->backendFailed(ec, Stage::kSend);
                        self->st_.reqHeadSent = true;
                        if (self->reqSer_->is_done()) return self->readResponseHead();
                        self->relayRequest();
                      }));
  }

  // ---- the response ----

  void readResponseHead() {
    phase_ = Phase::kResponseHead;
    res_.emplace(std::piecewise_construct, std::make_tuple(),
                 std::make_tuple(proxy_internal::FieldsAllocator(&arena_)));
    res_->header_limit(kBackendHeaderLimit);
    res_->body_limit(kNoBodyLimit);
    if (st_.isHead) res_->skip(true);
    arm(r_.backendMs, true);
    parseResponseHead();
  }

  void parseResponseHead() {
    auto& b = be_->buf;
    while (b.size() > 0) {
      st_.gotResponseBytes = true;
      error_code ec;
      size_t n = putSafely(*res_, b.data(), ec);
      b.consume(n);
      if (ec == http::error::need_more) break;
      if (ec) return backendFailed(ec, Stage::kBadResponse);
      if (res_->is_header_done()) return onResponseHead();
      if (n == 0) break;
    }
    size_t room = std::min(kReadSize, b.max_size() - b.size());
    if (room == 0) return backendFailed(http::error::header_limit, Stage::kBadResponse);
    be_->sock.async_read_some(b.prepare(room),
                              guard([self = self(), c = be_](error_code ec, size_t n) {
                                if (self->closed_) return;
                                c->buf.commit(n);
                                if (ec) return self->backendFailed(ec, Stage::kReceive);
                                self->parseResponseHead();
                              }));
  }

  void onResponseHead() {
    auto& m = res_->get();
    unsigned code = m.result_int();
    if (code == 101) {
      if (st_.websocket) return startTunnel();
      return backendFailed({}, Stage::kBadResponse);
    }
    // Interim responses (100, 103) are not forwarded: an HTTP/1.0 client
    // must not see them, and the router answered any Expect itself.
    if (code / 100 == 1) {
      // Each interim head takes arena space until the request ends.
      if (++st_.interim > kMaxInterimResponses) {
        return backendFailed(
            {}, Stage::kBadResponse,
            "sent more than " + std::to_string(kMaxInterimResponses) + " interim (1xx) responses");
      }
      return readResponseHead();
    }
    if (static_cast<size_t>(std::distance(m.begin(), m.end())) > kBackendHeaderCount) {
      return backendFailed(
          {}, Stage::kBadResponse,
          "sent more than " + std::to_string(kBackendHeaderCount) + " header fields");
    }
    transformResponse(code);
    resSer_.emplace(m);
    phase_ = Phase::kResponseBody;
    st_.responseStarted = true;
    if (st_.noResponseBody) {
      arm(r_.idleMs, false);
      http::async_write_header(client_, *resSer_, guard([self = self()](error_code ec, size_t n) {
                                 if (self->closed_) return;
                                 self->addOut(n);
                                 if (ec) return self->closeNow();
                                 self->onResponseDone();
                               }));
      return;
    }
    relayResponse();
  }

  void transformResponse(unsigned code) {
    auto& m = res_->get();
    m.erase(http::field::connection);
    m.erase(http::field::keep_alive);
    m.erase(http::field::proxy_connection);
    m.erase(http::field::trailer);
    m.erase(http::field::upgrade);
    st_.noResponseBody = st_.isHead || code == 204 || code == 304;
    if (!st_.noResponseBody) {
      if (res_->chunked()) {
        if (st_.clientV10) {
          m.chunked(false);
          st_.clientKeepAlive = false;
        }
      } else if (!res_->content_length()) {
        // The backend ends the body by closing; the client gets it chunked,
        // so its connection survives.
        if (st_.clientV10) {
          st_.clientKeepAlive = false;
        } else {
          m.chunked(true);
        }
      }
    }
    if (r_.stopping.load(std::memory_order_relaxed)) st_.clientKeepAlive = false;
    m.version(11);
    if (!st_.clientKeepAlive) {
      m.set(http::field::connection, "close");
    } else if (st_.clientV10) {
      m.set(http::field::connection, "keep-alive");
    }
  }

  void relayResponse() {
    if (!res_->is_done() && be_->buf.size() > 0) {
      if (!body_) body_ = w_.takeBody();
      error_code ec;
      size_t consumed = 0;
      size_t produced = pumpBody(*res_, be_->buf, body_.get(), consumed, ec);
      // A malformed body from the backend: the response can only be cut.
      if (ec) return closeNow();
      if (produced > 0 || res_->is_done()) return writeResponse();
    } else if (res_->is_done()) {
      setNoBody(*res_, false);
      return writeResponse();
    }
    if (!st_.resHeadSent) {
      setNoBody(*res_, true);
      return writeResponse();
    }
    // The parser keeps a chunk line or a trailer block whole in the buffer
    // until its end: one that fills the buffer is cut, as the head is out.
    size_t room = std::min(kReadSize, be_->buf.max_size() - be_->buf.size());
    if (room == 0) return closeNow();
    arm(r_.backendMs, true);
    be_->sock.async_read_some(be_->buf.prepare(room),
                              guard([self = self(), c = be_](error_code ec, size_t n) {
                                if (self->closed_) return;
                                c->buf.commit(n);
                                if (ec == asio::error::eof) {
                                  error_code e2;
                                  self->res_->put_eof(e2);
                                  if (e2) return self->closeNow();
                                  self->st_.eofDelimited = true;
                                  return self->relayResponse();
                                }
                                if (ec) return self->closeNow();
                                self->relayResponse();
                              }));
  }

  void writeResponse() {
    arm(r_.idleMs, false);
    http::async_write(client_, *resSer_, guard([self = self()](error_code ec, size_t n) {
                        if (self->closed_) return;
                        self->addOut(n);
                        if (ec == http::error::need_buffer) ec = {};
                        if (ec) return self->closeNow();
                        self->st_.resHeadSent = true;
                        if (self->resSer_->is_done()) return self->onResponseDone();
                        self->relayResponse();
                      }));
  }

  void onResponseDone() {
    bool reuse = res_->is_done() && res_->keep_alive() && !st_.eofDelimited &&
                 be_->buf.size() == 0 && !be_->target->retired.load(std::memory_order_acquire);
    releaseBackend(reuse);
    if (st_.clientKeepAlive && req_->is_done() && !r_.stopping.load(std::memory_order_relaxed)) {
      return newRequest();
    }
    gracefulClose();
  }

  // ---- websocket and other upgrades: a byte tunnel ----

  void startTunnel() {
    phase_ = Phase::kTunnel;
    auto& m = res_->get();
    m.erase(http::field::keep_alive);
    m.erase(http::field::proxy_connection);
    m.set(http::field::connection, "Upgrade");
    resSer_.emplace(m);
    st_.responseStarted = true;
    arm(r_.idleMs, false);
    http::async_write_header(client_, *resSer_, guard([self = self()](error_code ec, size_t n) {
                               if (self->closed_) return;
                               self->addOut(n);
                               if (ec) return self->closeNow();
                               self->tunnelUp();
                               self->tunnelDown();
                             }));
  }

  void touchTunnel() {
    arm(r_.idleMs, false);
    if (target_) {
      target_->stats->mine().lastAccessMs.store(unixMsNow(), std::memory_order_relaxed);
    }
  }

  void tunnelUp() {
    if (cbuf_.size() > 0) {
      asio::async_write(be_->sock, cbuf_.data(),
                        guard([self = self(), c = be_](error_code ec, size_t n) {
                          if (self->closed_) return;
                          self->cbuf_.consume(n);
                          self->addIn(n);
                          self->touchTunnel();
                          if (ec) return self->closeNow();
                          self->tunnelUp();
                        }));
      return;
    }
    client_.async_read_some(cbuf_.prepare(kReadSize),
                            guard([self = self()](error_code ec, size_t n) {
                              if (self->closed_) return;
                              self->cbuf_.commit(n);
                              self->touchTunnel();
                              if (ec) return self->closeNow();
                              self->tunnelUp();
                            }));
  }

  void tunnelDown() {
    auto c = be_;
    if (c->buf.size() > 0) {
      asio::async_write(client_, c->buf.data(), guard([self = self(), c](error_code ec, size_t n) {
                          if (self->closed_) return;
                          c->buf.consume(n);
                          self->addOut(n);
                          self->touchTunnel();
                          if (ec) return self->closeNow();
                          self->tunnelDown();
                        }));
      return;
    }
    c->sock.async_read_some(c->buf.prepare(kReadSize),
                            guard([self = self(), c](error_code ec, size_t n) {
                              if (self->closed_) return;
                              c->buf.commit(n);
                              self->touchTunnel();
                              if (ec) return self->closeNow();
                              self->tunnelDown();
                            }));
  }

  // ---- failures and answers of the router's own ----

  void backendFailed(error_code ec, Stage stage, std::string_view why = {}) {
    bool timedOut = std::exchange(timedOut_, false);
    // A pooled connection the backend closed just as it was reused: safe to
    // send again on a new one only while nothing of the request body or the
    // response has been consumed.
    bool retry = st_.reused && !st_.retried && !st_.hasBody && !st_.gotResponseBytes && !timedOut &&
                 (stage == Stage::kSend || stage == Stage::kReceive);
    std::string where = target_ ? target_->route.ip + ":" + std::to_string(target_->route.port)
                                : std::string("its address");
    releaseBackend(false);
    if (retry) {
      st_.retried = true;
      st_.forceFresh = true;
      return acquireBackend();
    }
    if (st_.responseStarted) return closeNow();
    std::string name = "Environment \"" + std::string(slug()) + "\" at " + where;
    std::string what;
    if (timedOut) {
      what = stage == Stage::kConnect ? " did not accept a connection within "
                                      : " did not answer within ";
      what += seconds(r_.backendMs) + ".";
    } else if (stage == Stage::kConnect) {
      what = ec == asio::error::connection_refused
                 ? " refused the connection: nothing listens on that port yet."
                 : " could not be reached: " + ec.message() + ".";
    } else if (stage == Stage::kBadResponse && !why.empty()) {
      what = " " + std::string(why) + ".";
    } else if (stage == Stage::kBadResponse && ec == http::error::header_limit) {
      what = " sent a response head larger than " + std::to_string(kBackendHeaderLimit / 1024) +
             " KiB.";
    } else if (stage == Stage::kBadResponse) {
      what = " sent a response that is not valid HTTP/1.1.";
    } else if (ec == asio::error::eof || ec == asio::error::connection_reset) {
      what = " closed the connection without answering.";
    } else {
      what = " failed: " + ec.message() + ".";
    }
    replyPage(502, "Bad gateway", name + what);
  }

  void refuse(const Refusal& r) {
    st_.clientKeepAlive = false;
    std::string_view title = r.status == 431   ? "Request header fields too large"
                             : r.status == 405 ? "Method not allowed"
                             : r.status == 417 ? "Expectation failed"
                             : r.status == 505 ? "HTTP version not supported"
                                               : "Bad request";
    replyPage(r.status, title, std::string(r.reason) + ".");
  }

  void replyPage(unsigned status, std::string_view title, const std::string& message,
                 int retryAfter = 0) {
    releaseBackend(false);
    phase_ = Phase::kReply;
    // Keep the connection only when the request was read to its end.
    bool keep = st_.clientKeepAlive && req_ && req_->is_header_done() && req_->is_done() &&
                !r_.stopping.load(std::memory_order_relaxed);
    reply_.emplace(static_cast<http::status>(status), 11);
    reply_->set(http::field::server, "qabox");
    reply_->set(http::field::content_type, "text/html; charset=utf-8");
    reply_->set(http::field::cache_control, "no-store");
    if (retryAfter > 0) reply_->set(http::field::retry_after, std::to_string(retryAfter));
    if (!st_.isHead) reply_->body() = proxy_internal::renderPage(status, title, message);
    reply_->keep_alive(keep);
    if (keep && st_.clientV10) reply_->set(http::field::connection, "keep-alive");
    reply_->prepare_payload();
    arm(r_.idleMs, false);
    http::async_write(client_, *reply_, guard([self = self(), keep](error_code ec, size_t n) {
                        if (self->closed_) return;
                        self->addOut(n);
                        if (ec) return self->closeNow();
                        if (keep) return self->newRequest();
                        self->gracefulClose();
                      }));
  }

  // Half-closes and reads what the client still sends for a moment, so the
  // answer is not lost to a reset from unread request bytes.
  void gracefulClose() {
    phase_ = Phase::kClosing;
    releaseBackend(false);
    error_code ig;
    socket().shutdown(tcp::socket::shutdown_send, ig);
    arm(std::min<int64_t>(r_.headerMs, 2000), false);
    drain();
  }

  void drain() {
    cbuf_.clear();
    socket().async_read_some(cbuf_.prepare(kHeadRead),
                             guard([self = self()](error_code ec, size_t) {
                               if (self->closed_) return;
                               if (ec) return self->closeNow();
                               self->drain();
                             }));
  }

  void closeNow() {
    if (closed_) return;
    closed_ = true;
    deadlineMs = 0;
    phase_ = Phase::kClosing;
    error_code ig;
    socket().close(ig);
    releaseBackend(false);
    if (wakeTimer_) wakeTimer_->cancel(ig);
  }

  void releaseBackend(bool reuse) {
    if (!be_) return;
    if (inFlight_) {
      be_->target->myInFlight().value.fetch_sub(1, std::memory_order_seq_cst);
      inFlight_ = false;
    }
    if (reuse && !r_.stopping.load(std::memory_order_relaxed)) {
      be_->lastUsedMs = nowMs();
      w_.putIdle(std::move(be_));
    } else {
      error_code ig;
      be_->sock.close(ig);
    }
    be_.reset();
  }

  // Per request; reset by newRequest.
  struct State {
    size_t headerBytes = 0;
    int dispatches = 0;
    int interim = 0;
    bool counted = false;
    bool isHead = false;
    bool hasBody = false;
    bool clientV10 = false;
    bool clientKeepAlive = false;
    bool expect100 = false;
    bool sent100 = false;
    bool websocket = false;
    bool wakeTried = false;
    bool transformed = false;
    bool reused = false;
    bool retried = false;
    bool forceFresh = false;
    bool reqHeadSent = false;
    bool gotResponseBytes = false;
    bool responseStarted = false;
    bool noResponseBody = false;
    bool resHeadSent = false;
    bool eofDelimited = false;
  };

  Worker& w_;
  Router::Impl& r_;
  Stream client_;
  std::string clientIp_;
  beast::flat_buffer cbuf_;
  // The parsers' header fields come from arena_, which starts in arenaBuf_
  // and is rewound for each request: typical heads never touch the heap.
  alignas(std::max_align_t) char arenaBuf_[kArenaSize];
  std::pmr::monotonic_buffer_resource arena_{arenaBuf_, sizeof arenaBuf_,
                                             std::pmr::new_delete_resource()};
  std::optional<proxy_internal::RequestParser> req_;
  std::optional<http::serializer<true, http::buffer_body, proxy_internal::Fields>> reqSer_;
  std::optional<proxy_internal::ResponseParser> res_;
  std::optional<http::serializer<false, http::buffer_body, proxy_internal::Fields>> resSer_;
  std::optional<http::response<http::string_body>> reply_;
  std::unique_ptr<char[]> body_;
  BackendPtr be_;
  // target_ points into snap_, which keeps it alive for the request.
  std::shared_ptr<const Snapshot> snap_;
  Target* target_ = nullptr;
  const std::shared_ptr<Target>* targetRef_ = nullptr;
  proxy_internal::HeadScanner scan_;
  std::optional<asio::steady_timer> wakeTimer_;
  uint64_t wakeToken_ = 0;
  uint64_t requests_ = 0;
  State st_;
  Phase phase_ = Phase::kHead;
  char slug_[64] = {};
  size_t slugLen_ = 0;
  bool closed_ = false;
  bool timedOut_ = false;
  bool waitingOnBackend_ = false;
  bool inFlight_ = false;
};

}  // namespace

// ---- Router::Impl ----

Status Router::Impl::start() {
  std::lock_guard lock(lifeMu);
  if (started) return failedPrecondition("router: start() may be called once");
  started = true;
  domain = proxy_internal::normalizeDomain(opts.domain);
  if (domain.empty()) return invalidArgument("routing.domain: must not be empty");
  auto ms = [](std::chrono::milliseconds d, int64_t fallback) {
    return d.count() > 0 ? static_cast<int64_t>(d.count()) : fallback;
  };
  headerMs = ms(opts.headerTimeout, 10000);
  idleMs = ms(opts.idleTimeout, 60000);
  backendMs = ms(opts.backendTimeout, 30000);
  backendIdleMs = ms(opts.backendIdleTimeout, 4000);
  wakeMs = ms(opts.wakeTimeout, 60000);
  tickMs = std::clamp<int64_t>(std::min({headerMs, idleMs, backendMs, backendIdleMs}) / 4, 5, 250);
  opts.maxHeaderBytes = std::clamp<size_t>(opts.maxHeaderBytes, 1024, 1024 * 1024);
  opts.maxHeaderCount = std::max<size_t>(opts.maxHeaderCount, 8);
  headerLimit = static_cast<uint32_t>(opts.maxHeaderBytes);
  int threads = std::clamp(opts.threads, 1, 64);

  QABOX_ASSIGN_OR_RETURN(tcp::endpoint plainEp, parseListen("routing.listen", opts.listen));
  std::optional<tcp::endpoint> tlsEp;
  if (!opts.tlsListen.empty()) {
    QABOX_ASSIGN_OR_RETURN(tlsEp, parseListen("routing.tls_listen", opts.tlsListen));
    if (opts.tlsCert.empty() || opts.tlsKey.empty()) {
      return invalidArgument("routing.tls_listen: needs routing.tls_cert and routing.tls_key");
    }
    tls.emplace(ssl::context::tls_server);
    tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                     ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                     ssl::context::single_dh_use);
    error_code ec;
    tls->use_certificate_chain_file(opts.tlsCert, ec);
    if (ec) {
      return invalidArgument("routing.tls_cert \"" + opts.tlsCert + "\": " + ec.message());
    }
    tls->use_private_key_file(opts.tlsKey, ssl::context::pem, ec);
    if (ec) return invalidArgument("routing.tls_key \"" + opts.tlsKey + "\": " + ec.message());
  }

  for (int i = 0; i < threads; ++i) {
    workers.push_back(std::make_unique<Worker>(*this, static_cast<unsigned>(i)));
  }
  auto open = [&](std::optional<tcp::acceptor>& acceptor, const tcp::endpoint& ep,
                  std::string_view field, const std::string& text) -> Status {
    error_code ec;
    acceptor.emplace(workers[0]->ioc);
    acceptor->open(ep.protocol(), ec);
    if (!ec && !setCloseOnExec(acceptor->native_handle())) {
      ec = error_code(errno, boost::system::system_category());
    }
    if (!ec) acceptor->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor->bind(ep, ec);
    if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      acceptor.reset();
      return unavailable(std::string(field) + " " + text + ": " + ec.message());
    }
    return Status::ok();
  };
  QABOX_RETURN_IF_ERROR(open(plain, plainEp, "routing.listen", opts.listen));
  port = plain->local_endpoint().port();
  if (tlsEp) {
    QABOX_RETURN_IF_ERROR(open(secure, *tlsEp, "routing.tls_listen", opts.tlsListen));
    tlsPort = secure->local_endpoint().port();
  }

  for (auto& w : workers) {
    scheduleSweep(*w);
    Worker* wp = w.get();
    w->thread = std::thread([wp] {
      proxy_internal::setCounterSlot(wp->index);
      // The last barrier, for a handler outside any session (accept, the
      // sweep): the thread goes on serving its other connections.
      for (;;) {
        try {
          wp->ioc.run();
          return;
        } catch (const std::exception& e) {
          noteCaught("router thread", e.what());
        } catch (...) {
          noteCaught("router thread", "unknown exception");
        }
      }
    });
  }
  asio::post(workers[0]->ioc, [this] {
    accept(*plain, false);
    if (secure) accept(*secure, true);
  });
  return Status::ok();
}

void Router::Impl::stop() {
  std::lock_guard lock(lifeMu);
  if (stopped) return;
  stopped = true;
  stopping = true;
  for (size_t i = 0; i < workers.size(); ++i) {
    Worker* w = workers[i].get();
    if (!w->thread.joinable()) continue;
    asio::post(w->ioc, [this, w, first = i == 0] {
      if (first) {
        error_code ig;
        if (plain) plain->close(ig);
        if (secure) secure->close(ig);
      }
      w->shutdownAll();
      error_code ig;
      w->sweeper.cancel(ig);
      w->ioc.stop();
    });
  }
  for (auto& w : workers) {
    if (w->thread.joinable()) w->thread.join();
  }
}

void Router::Impl::accept(tcp::acceptor& acceptor, bool isTls) {
  Worker& w = *workers[nextWorker.fetch_add(1, std::memory_order_relaxed) % workers.size()];
  acceptor.async_accept(w.ioc, [this, &acceptor, isTls, &w](error_code ec, tcp::socket s) {
    if (ec == asio::error::operation_aborted || stopping.load()) return;
    if (ec) {
      // Out of descriptors and the like: back off instead of spinning.
      auto timer =
          std::make_shared<asio::steady_timer>(workers[0]->ioc, std::chrono::milliseconds(50));
      timer->async_wait([this, timer, &acceptor, isTls](error_code e) {
        if (!e && !stopping.load()) accept(acceptor, isTls);
      });
      return;
    }
    // Accepting again first: nothing that fails below stops the listener.
    accept(acceptor, isTls);
    asio::post(w.ioc, [this, &w, s = std::move(s), isTls]() mutable {
      try {
        startSession(w, std::move(s), isTls);
      } catch (const std::exception& e) {
        noteCaught("starting a connection", e.what());
      }
    });
  });
}

void Router::Impl::startSession(Worker& w, tcp::socket s, bool isTls) {
  if (stopping.load()) return;
  // Asio accepts without SOCK_CLOEXEC.
  setCloseOnExec(s.native_handle());
  error_code ec;
  s.set_option(tcp::no_delay(true), ec);
  auto remote = s.remote_endpoint(ec);
  if (ec) return;
  auto address = remote.address();
  if (address.is_v6() && address.to_v6().is_v4_mapped()) {
    address = asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6());
  }
  if (isTls) {
    std::make_shared<Session<ssl::stream<tcp::socket>>>(w, std::move(s), address.to_string())
        ->start();
  } else {
    std::make_shared<Session<tcp::socket>>(w, std::move(s), address.to_string())->start();
  }
}

void Router::Impl::scheduleSweep(Worker& w) {
  w.sweeper.expires_after(std::chrono::milliseconds(tickMs));
  w.sweeper.async_wait([this, &w](error_code ec) {
    if (ec) return;
    scheduleSweep(w);
    w.sweep(nowMs(), backendIdleMs);
  });
}

void Router::Impl::requestWake(const std::string& slug, std::function<void(Status)> waiter) {
  {
    std::lock_guard lock(wakeMu);
    auto& waiters = waking[slug];
    waiters.push_back(std::move(waiter));
    if (waiters.size() > 1) return;
  }
  std::weak_ptr<Impl> weak = shared_from_this();
  auto done = [weak, slug](Status s) {
    if (auto self = weak.lock()) self->wakeDone(slug, s);
  };
  try {
    opts.wake(slug, done);
  } catch (const std::exception& e) {
    wakeDone(slug, internalError(std::string("wake: ") + e.what()));
  } catch (...) {
    wakeDone(slug, internalError("wake: unknown exception"));
  }
}

void Router::Impl::wakeDone(const std::string& slug, const Status& s) {
  std::vector<std::function<void(Status)>> waiters;
  {
    std::lock_guard lock(wakeMu);
    auto it = waking.find(slug);
    if (it == waking.end()) return;
    waiters = std::move(it->second);
    waking.erase(it);
  }
  for (auto& w : waiters) w(s);
}

// ---- Router ----

Router::Router(RouterOptions options, std::shared_ptr<RouteTable> routes)
    : impl_(std::make_shared<Impl>(std::move(options),
                                   routes ? std::move(routes) : std::make_shared<RouteTable>())) {}

Router::~Router() {
  if (impl_) impl_->stop();
}

Status Router::start() { return impl_->start(); }
void Router::stop() { impl_->stop(); }
uint16_t Router::port() const { return impl_->port; }
uint16_t Router::tlsPort() const { return impl_->tlsPort; }
std::vector<AccessStats> Router::takeStats() { return impl_->table->takeStats(); }

}  // namespace qabox
