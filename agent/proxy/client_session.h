#pragma once

// The client side of one connection, for its whole life: reads request heads
// with Beast's parser, checks them, routes them by Host, holds them while an
// environment wakes, and answers with the router's own pages. Forwarding is
// the BackendExchange's, upgrades the Tunnel's; both work on this session's
// buffers and report back to it. Where a request is lives in one
// RequestMachine (request_state.h).

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <memory_resource>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include "core/ticket.h"
#include "proxy/backend_exchange.h"
#include "proxy/beast.h"
#include "proxy/host.h"
#include "proxy/pages.h"
#include "proxy/request_check.h"
#include "proxy/request_state.h"
#include "proxy/route_page.h"
#include "proxy/router_impl.h"
#include "proxy/tunnel.h"

namespace qabox::proxy_internal {

// A session holds one small read buffer while idle.
inline constexpr size_t kHeadRead = 4096;
inline constexpr size_t kIdleBufferKeep = 8 * 1024;
inline constexpr size_t kArenaSize = 4096;
inline constexpr int kMaxDispatches = 4;

template <class Stream>
class ClientSession final : public Timed,
                            public std::enable_shared_from_this<ClientSession<Stream>> {
  using S = RequestState;
  using tcp = boost::asio::ip::tcp;
  using error_code = boost::system::error_code;

 public:
  static constexpr bool kTls = !std::is_same_v<Stream, tcp::socket>;

  ClientSession(Worker& w, tcp::socket sock, std::string clientIp, uint32_t peerIpv4)
      : w_(w),
        r_(w.router),
        lim_(w.router.limits),
        client_(makeStream(std::move(sock), w.router)),
        clientIp_(std::move(clientIp)),
        peerIpv4_(peerIpv4),
        cbuf_(lim_.maxHeaderBytes + kReadSize) {
    w_.link(this);
    connectionGauge().fetch_add(1, std::memory_order_relaxed);
  }

  ~ClientSession() override {
    endTunnel();
    exchange_.release(false);
    exchange_.returnBody();
    w_.unlink(this);
    connectionGauge().fetch_sub(1, std::memory_order_relaxed);
  }

  void start() {
    arm(lim_.headerMs, false);
    if constexpr (kTls) {
      enter(S::kHandshake);
      client_.async_handshake(boost::asio::ssl::stream_base::server,
                              guard([self = self()](error_code ec) {
                                if (self->closed()) return;
                                if (ec) return self->closeNow();
                                self->newRequest();
                              }));
    } else {
      newRequest();
    }
  }

  void expire() override {
    auto keep = self();
    // Waiting on the backend, the pending backend operation fails and
    // answers 502 (or cuts a response already under way).
    if (waitingOnBackend_ && exchange_.timeOut()) return;
    closeNow();
  }

  void shutdown() override {
    auto keep = self();
    closeNow();
  }

 private:
  friend class BackendExchange<ClientSession>;
  friend class Tunnel<ClientSession>;

  static Stream makeStream(tcp::socket&& s, Router::Impl& r) {
    if constexpr (kTls) {
      return Stream(std::move(s), *r.tls);
    } else {
      (void)r;  // only TLS streams need the context
      return std::move(s);
    }
  }

  std::shared_ptr<ClientSession> self() { return this->shared_from_this(); }
  bool closed() const { return machine_.closed(); }
  void enter(S s) { machine_.enter(s); }
  auto& socket() { return boost::beast::get_lowest_layer(client_); }
  std::string_view slug() const { return {slug_, slugLen_}; }
  bool stopping() const { return r_.stopping.load(std::memory_order_relaxed); }

  // Every completion handler runs inside guard(): an exception from Beast,
  // Asio or this code (an illegal state step included) ends this
  // connection, never the process. The handler holds the session, so `this`
  // outlives the call.
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
      machine_.close();
    }
  }

  // The sweep expires the connection at deadlineMs; `backend` says the
  // pending operation waits on the backend.
  void arm(int64_t ms, bool backend) {
    deadlineMs = steadyNowMs() + ms;
    waitingOnBackend_ = backend;
  }

  std::atomic<int64_t>& connectionGauge() { return r_.connections[w_.index % kCounterSlots].value; }

  // The request's code class, method and latency, once per request, for a
  // routed one.
  void countResponse(unsigned status) {
    if (!target_ || headAtUs_ == 0) return;
    auto micros = static_cast<uint64_t>(steadyNowUs() - headAtUs_);
    headAtUs_ = 0;
    proxy_internal::countResponse(target_->stats->mine(), status, method_, micros);
  }
  void beginTunnel() {
    if (!target_) return;
    tunnelStats_ = target_->stats.get();
    tunnelStats_->mine().websockets.fetch_add(1, std::memory_order_relaxed);
    tunnelStats_->mine().websocketsOpen.fetch_add(1, std::memory_order_relaxed);
  }
  void endTunnel() {
    if (!tunnelStats_) return;
    tunnelStats_->mine().websocketsOpen.fetch_sub(1, std::memory_order_relaxed);
    tunnelStats_ = nullptr;
  }

  void addIn(size_t n) {
    if (target_ && n) target_->stats->mine().bytesIn.fetch_add(n, std::memory_order_relaxed);
  }
  void addOut(size_t n) {
    if (target_ && n) target_->stats->mine().bytesOut.fetch_add(n, std::memory_order_relaxed);
  }

  // ---- reading a request head ----

  void newRequest() {
    exchange_.reset();
    reply_.reset();
    req_.reset();
    arena_.release();
    if (cbuf_.size() == 0 && cbuf_.capacity() > kIdleBufferKeep) cbuf_.shrink_to_fit();
    req_.emplace(std::piecewise_construct, std::make_tuple(),
                 std::make_tuple(FieldsAllocator(&arena_)));
    req_->header_limit(lim_.headerLimit);
    req_->body_limit(kNoBodyLimit);
    scan_.reset();
    head_ = {};
    target_ = nullptr;
    targetRef_ = nullptr;
    if (cbuf_.size() == 0 && requests_ > 0) {
      enter(S::kIdle);
      arm(lim_.idleMs, false);
    } else {
      enter(S::kReadingHead);
      // The first head's clock started at accept.
      if (requests_ > 0) arm(lim_.headerMs, false);
    }
    ++requests_;
    parseHead();
  }

  void parseHead() {
    while (cbuf_.size() > 0) {
      if (machine_.is(S::kIdle)) {
        enter(S::kReadingHead);
        arm(lim_.headerMs, false);
      }
      error_code ec;
      auto data = cbuf_.data();
      size_t n = putSafely(*req_, data, ec);
      scan_.feed(static_cast<const char*>(data.data()), n);
      cbuf_.consume(n);
      head_.headerBytes += n;
      if (ec == boost::beast::http::error::need_more) {
        auto rest = cbuf_.data();
        if (scan_.pendingBadLineEnding(static_cast<const char*>(rest.data()), rest.size())) {
          return refuse({400, "lines must end with CRLF"});
        }
        break;
      }
      if (ec) return refuse(refusalForParseError(ec));
      if (req_->is_header_done()) return onHead();
      if (n == 0) break;
    }
    size_t room = cbuf_.max_size() - cbuf_.size();
    if (room == 0) return refuse({431, "the request head is too large"});
    size_t want = std::min(room, std::max(kHeadRead, cbuf_.size()));
    client_.async_read_some(cbuf_.prepare(want), guard([self = self()](error_code ec, size_t n) {
                              if (self->closed()) return;
                              self->cbuf_.commit(n);
                              // Closing between requests, or mid-head, needs no answer.
                              if (ec) return self->closeNow();
                              self->parseHead();
                            }));
  }

  void onHead() {
    enter(S::kRouting);
    if (auto refusal = checkRequestHead(*req_, scan_.folded(), lim_.maxHeaderCount)) {
      return refuse(*refusal);
    }
    auto& m = req_->get();
    std::string_view label;
    auto he = matchHost(sv(m[boost::beast::http::field::host]), lim_.domain, label);
    if (he != HostError::kNone) return refuse({400, hostErrorText(he)});
    slugLen_ = label.size();
    for (size_t i = 0; i < label.size(); ++i) slug_[i] = asciiLower(label[i]);
    namespace http = boost::beast::http;
    head_.isHead = m.method() == http::verb::head;
    method_ = methodIndex(sv(m.method_string()));
    headAtUs_ = steadyNowUs();
    head_.hasBody = !req_->is_done();
    head_.clientV10 = m.version() < 11;
    if (m.find(kForwardedHeader) != m.end()) {
      head_.cameForwarded = true;
      m.erase(kForwardedHeader);
    }
    head_.keepAlive = req_->keep_alive();
    head_.clientCloses = !head_.keepAlive;
    head_.expectsContinue = m.find(http::field::expect) != m.end();
    if (req_->upgrade()) {
      for (auto token : http::token_list{m[http::field::upgrade]}) {
        if (iequals(sv(token), "websocket")) head_.websocket = true;
      }
    }
    exchange_.prepareRequest();
    dispatch();
  }

  // ---- routing ----

  void dispatch() {
    enter(S::kRouting);
    deadlineMs = 0;
    if (++head_.dispatches > kMaxDispatches) return replyRoutePage(RouteVerdict::kAddressChurn);
    // Copy the worker's snapshot only when it changed: the reference count
    // is shared by every thread.
    if (const auto& current = w_.routes(*r_.table); snap_ != current) snap_ = current;
    const Route* route = nullptr;
    if (auto it = snap_->bySlug.find(slug()); it != snap_->bySlug.end()) {
      target_ = it->second.get();
      targetRef_ = &it->second;
      route = &target_->route;
      countRequest();
    } else {
      target_ = nullptr;
    }
    // Behind a login, nothing about the environment (not even that it
    // sleeps or failed) is told before the gate let the request through.
    if (route && route->login && !head_.admitted && !admit()) return;
    RouteVerdict v =
        decideRoute(route, route && target_->hasEndpoint, r_.opts.wake && !head_.wakeTried);
    if (v == RouteVerdict::kForward && !route->via.empty()) {
      // Another host's: forwarded as it came (the owner's router checks its
      // login and strips qabox's credentials), marked, and only once.
      if (head_.cameForwarded) return replyRoutePage(RouteVerdict::kForwardLoop, route);
      req_->get().set(kForwardedHeader, r_.opts.self);
      return exchange_.start();
    }
    if (v == RouteVerdict::kForward) {
      if (!head_.stripped && slug() != kReservedLabel) {
        head_.stripped = true;
        stripQaboxCredentials(req_->get());
      }
      return exchange_.start();
    }
    if (v == RouteVerdict::kWake) return startWake();
    replyRoutePage(v, route);
  }

  // Asks the agent's gate about this request; false when it answered it
  // (a redirect to sign in, or a refusal).
  bool admit() {
    namespace http = boost::beast::http;
    AccessAnswer a;
    if (r_.opts.gate) {
      auto& m = req_->get();
      std::string cookies = joinedCookies(m);
      AccessRequest q;
      q.slug = slug();
      q.host = sv(m[http::field::host]);
      q.method = sv(m.method_string());
      q.target = sv(m.target());
      q.cookie = cookies;
      q.authorization = sv(m[http::field::authorization]);
      // Forwarded by another host's router, the connection's address is that
      // host's: no network allowlist may judge it.
      q.peerIpv4 = head_.cameForwarded ? 0 : peerIpv4_;
      q.tls = kTls;
      a = r_.opts.gate(q);
    } else {
      a.message = "This preview is behind a login, and this router has no way to check one.";
    }
    switch (a.kind) {
      case AccessAnswer::Kind::kAllow: head_.admitted = true; return true;
      case AccessAnswer::Kind::kRedirect:
        replyPage(302, "Sign in", "Continue at " + a.location, 0, a.location, a.setCookie);
        return false;
      case AccessAnswer::Kind::kRefuse: break;
    }
    replyPage(401, "Sign in required", a.message);
    return false;
  }

  void countRequest() {
    if (head_.counted) return;
    head_.counted = true;
    auto& slot = target_->stats->mine();
    slot.requests.fetch_add(1, std::memory_order_relaxed);
    slot.bytesIn.fetch_add(head_.headerBytes, std::memory_order_relaxed);
    slot.lastAccessMs.store(unixNowMs(), std::memory_order_relaxed);
  }

  void startWake() {
    head_.wakeTried = true;
    enter(S::kWaking);
    deadlineMs = 0;
    if (!wakeTimer_) wakeTimer_.emplace(w_.ioc);
    wakeTimer_->expires_after(std::chrono::milliseconds(lim_.wakeMs));
    uint64_t token = ++wakeToken_;
    wakeTimer_->async_wait(guard([self = self(), token](error_code ec) {
      if (ec || !self->machine_.is(S::kWaking) || token != self->wakeToken_) return;
      self->replyRoutePage(RouteVerdict::kWakeTimedOut, nullptr, formatMs(self->lim_.wakeMs));
    }));
    std::weak_ptr<ClientSession> weak = self();
    boost::asio::io_context* ioc = &w_.ioc;
    r_.requestWake(std::string(slug()), [weak, ioc, token](Status s) {
      boost::asio::post(*ioc, [weak, token, s = std::move(s)]() {
        if (auto p = weak.lock()) p->guarded([&] { p->onWoken(token, s); });
      });
    });
  }

  void onWoken(uint64_t token, const Status& s) {
    if (!machine_.is(S::kWaking) || token != wakeToken_) return;
    ++wakeToken_;
    error_code ig;  // a timer that cannot be cancelled fires and finds the token stale
    wakeTimer_->cancel(ig);
    if (!s.isOk()) return replyRoutePage(RouteVerdict::kWakeFailed, nullptr, s.message());
    dispatch();
  }

  // ---- answers of the router's own ----

  void replyRoutePage(RouteVerdict v, const Route* route = nullptr, std::string_view detail = {}) {
    RoutePage page = routePage(v);
    replyPage(page.status, page.title, routePageMessage(v, slug(), route, detail), page.retryAfter);
  }

  void refuse(const Refusal& r) {
    head_.keepAlive = false;
    std::string_view title = r.status == 431   ? "Request header fields too large"
                             : r.status == 405 ? "Method not allowed"
                             : r.status == 417 ? "Expectation failed"
                             : r.status == 505 ? "HTTP version not supported"
                                               : "Bad request";
    replyPage(r.status, title, std::string(r.reason) + ".");
  }

  void replyPage(unsigned status, std::string_view title, const std::string& message,
                 int retryAfter = 0, std::string_view location = {}, std::string_view cookie = {}) {
    namespace http = boost::beast::http;
    exchange_.release(false);
    enter(S::kReplying);
    // Keep the connection only when the request was read to its end.
    bool keep = head_.keepAlive && req_ && req_->is_header_done() && req_->is_done() && !stopping();
    reply_.emplace(static_cast<http::status>(status), 11);
    reply_->set(http::field::server, "qabox");
    reply_->set(http::field::content_type, "text/html; charset=utf-8");
    reply_->set(http::field::cache_control, "no-store");
    if (retryAfter > 0) reply_->set(http::field::retry_after, std::to_string(retryAfter));
    if (!location.empty()) {
      reply_->set(http::field::location,
                  boost::beast::string_view(location.data(), location.size()));
      reply_->set("Referrer-Policy", "no-referrer");
    }
    if (!cookie.empty()) {
      reply_->set(http::field::set_cookie, boost::beast::string_view(cookie.data(), cookie.size()));
    }
    if (!head_.isHead) reply_->body() = renderPage(status, title, message);
    reply_->keep_alive(keep);
    if (keep && head_.clientV10) reply_->set(http::field::connection, "keep-alive");
    reply_->prepare_payload();
    arm(lim_.idleMs, false);
    http::async_write(client_, *reply_,
                      guard([self = self(), keep, status](error_code ec, size_t n) {
                        if (self->closed()) return;
                        self->addOut(n);
                        self->countResponse(status);
                        if (ec) return self->closeNow();
                        if (keep) return self->newRequest();
                        self->gracefulClose();
                      }));
  }

  // ---- the end of a connection ----

  // Half-closes and reads what the client still sends for a moment, so the
  // answer is not lost to a reset from unread request bytes. A client that
  // asked to close, whose request was read to its end with nothing after
  // it, has nothing more to send: it is closed at once (as nginx's lingering
  // close decides too), without a half-close, a wait for its FIN and a read.
  void gracefulClose() {
    if (head_.clientCloses && req_ && req_->is_done() && cbuf_.size() == 0) return closeNow();
    enter(S::kClosing);
    exchange_.release(false);
    error_code ig;  // a peer already gone: the drain's read fails and closes
    socket().shutdown(tcp::socket::shutdown_send, ig);
    arm(std::min<int64_t>(lim_.headerMs, 2000), false);
    drain();
  }

  void drain() {
    cbuf_.clear();
    socket().async_read_some(cbuf_.prepare(kHeadRead),
                             guard([self = self()](error_code ec, size_t) {
                               if (self->closed()) return;
                               if (ec) return self->closeNow();
                               self->drain();
                             }));
  }

  void closeNow() {
    if (closed()) return;
    machine_.close();
    endTunnel();
    deadlineMs = 0;
    error_code ig;  // closing and cancelling only release; nothing to do if they fail
    socket().close(ig);
    exchange_.release(false);
    if (wakeTimer_) wakeTimer_->cancel(ig);
  }

  Worker& w_;
  Router::Impl& r_;
  const Limits& lim_;
  Stream client_;
  std::string clientIp_;
  uint32_t peerIpv4_ = 0;  // for the login gate's allowlist; 0: IPv6
  boost::beast::flat_buffer cbuf_;
  // The parsers' header fields come from arena_, which starts in arenaBuf_
  // and is rewound for each request: typical heads never touch the heap.
  alignas(std::max_align_t) char arenaBuf_[kArenaSize];
  std::pmr::monotonic_buffer_resource arena_{arenaBuf_, sizeof arenaBuf_,
                                             std::pmr::new_delete_resource()};
  std::optional<RequestParser> req_;
  std::optional<boost::beast::http::response<boost::beast::http::string_body>> reply_;
  // target_ points into snap_, which keeps it alive for the request.
  std::shared_ptr<const Snapshot> snap_;
  Target* target_ = nullptr;
  const std::shared_ptr<Target>* targetRef_ = nullptr;
  HeadScanner scan_;
  std::optional<boost::asio::steady_timer> wakeTimer_;
  uint64_t wakeToken_ = 0;
  uint64_t requests_ = 0;
  RequestMachine machine_;
  HeadFacts head_;
  char slug_[64] = {};
  size_t slugLen_ = 0;
  bool waitingOnBackend_ = false;
  size_t method_ = 0;                 // in kTrafficMethods
  int64_t headAtUs_ = 0;              // the head was read; 0 once counted
  SlugStats* tunnelStats_ = nullptr;  // a tunnel open, counted there
  // After the parsers and the arena: they go first.
  BackendExchange<ClientSession> exchange_{*this};
  Tunnel<ClientSession> tunnel_{*this};
};

}  // namespace qabox::proxy_internal
