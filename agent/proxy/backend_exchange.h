#pragma once

// The backend side of one request: a connection from the worker's pool (or a
// new one), the request head rewritten and sent, its body streamed through
// one fixed buffer, the response head checked and rewritten, its body
// streamed back the same way. Part of a ClientSession (`Session`), whose
// client stream, buffers, state machine and answers it uses.

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>

#include "proxy/backend_pool.h"
#include "proxy/beast.h"
#include "proxy/head_rewrite.h"
#include "proxy/request_check.h"
#include "proxy/request_state.h"
#include "proxy/route_page.h"
#include "proxy/worker.h"

namespace qabox::proxy_internal {

// A response head may have at most kBackendHeaderCount fields, and a backend
// at most kMaxInterimResponses 1xx heads before its answer.
inline constexpr size_t kBackendHeaderCount = 200;
inline constexpr int kMaxInterimResponses = 8;

// Beast's fields throw std::length_error for a value over 65533 bytes; a
// trailer that long fits the body buffer, and a head that long fits a limit
// above 64 KiB. Either is a head over the limit, as an error code.
template <class Parser>
size_t putSafely(Parser& p, boost::asio::const_buffer b, boost::system::error_code& ec) {
  try {
    return p.put(b, ec);
  } catch (const std::length_error&) {
    ec = boost::beast::http::error::header_limit;
    return 0;
  }
}

// Fills `buf` with what `src` holds of the body, without reading; leaves the
// body set up for the serializer.
template <class Parser>
size_t pumpBody(Parser& p, boost::beast::flat_buffer& src, char* buf, size_t& consumed,
                boost::system::error_code& ec) {
  namespace http = boost::beast::http;
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

// Where a backend failed, for the 502 page and the retry rule.
enum class BackendStage { kConnect, kSend, kReceive, kBadResponse };

// The sentence after `Environment "<slug>" at <ip:port>` on a 502 page.
std::string backendFailureText(BackendStage stage, const boost::system::error_code& ec,
                               bool timedOut, int64_t timeoutMs, std::string_view why);

template <class Session>
class BackendExchange {
  using S = RequestState;
  using Stage = BackendStage;
  using tcp = boost::asio::ip::tcp;
  using error_code = boost::system::error_code;

 public:
  explicit BackendExchange(Session& s) : s_(s) {}

  // For the next request on the connection.
  void reset() {
    reqSer_.reset();
    resSer_.reset();
    res_.reset();
    returnBody();
    facts_ = {};
  }
  void returnBody() {
    if (body_) s_.w_.bodies.put(std::move(body_));
  }

  // Rewrites the request head for the backend, once per request, before it
  // is routed.
  void prepareRequest() {
    rewriteRequestHead(s_.req_->get(), s_.head_.websocket, s_.clientIp_, Session::kTls);
  }

  // Sends the request to the session's target, over a pooled connection or
  // a new one.
  void start() {
    Target* t = s_.target_;
    if (t->retired.load(std::memory_order_acquire)) return s_.dispatch();
    if (!facts_.retried) {
      if (auto c = s_.w_.pool.take(t, steadyNowMs())) {
        be_ = std::move(c);
        facts_.reused = true;
        return sendRequest();
      }
    }
    facts_.reused = false;
    s_.enter(S::kConnecting);
    s_.arm(s_.lim_.backendMs, true);
    error_code ec;
    be_ = BackendPool::open(s_.w_.ioc, *s_.targetRef_, ec);
    if (ec) return failed(ec, Stage::kConnect);
    be_->sock.async_connect(t->endpoint, s_.guard([this, self = s_.self(), c = be_](error_code ec) {
      if (s_.closed()) return;
      if (ec) return failed(ec, Stage::kConnect);
      error_code ig;  // only latency: it works without
      c->sock.set_option(tcp::no_delay(true), ig);
      sendRequest();
    }));
  }

  // The session's deadline passed while waiting on the backend: the pending
  // operation fails and answers 502 (or cuts a response already under way).
  bool timeOut() {
    if (!be_) return false;
    timedOut_ = true;
    error_code ig;  // closing only releases
    be_->sock.close(ig);
    return true;
  }

  // Done with the backend connection: back to the pool when `reuse`.
  void release(bool reuse) {
    if (!be_) return;
    if (inFlight_) {
      be_->target->myInFlight().value.fetch_sub(1, std::memory_order_seq_cst);
      inFlight_ = false;
    }
    if (reuse && !s_.stopping()) {
      be_->lastUsedMs = steadyNowMs();
      s_.w_.pool.put(std::move(be_));
    } else {
      error_code ig;  // closing only releases
      be_->sock.close(ig);
    }
    be_.reset();
  }

 private:
  void sendRequest();
  void startRequestRelay();
  void relayRequest();
  void writeRequest();
  void readResponseHead();
  void parseResponseHead();
  void onResponseHead();
  void upgrade();
  void relayResponse();
  void writeResponse();
  void onResponseDone();
  void failed(error_code ec, Stage stage, std::string_view why = {});

  bool responseStarted() const {
    return s_.machine_.is(S::kSendingResponseHead) || s_.machine_.is(S::kRelayingResponse) ||
           s_.machine_.is(S::kTunnel);
  }

  Session& s_;
  BackendPtr be_;
  std::optional<boost::beast::http::serializer<true, boost::beast::http::buffer_body, Fields>>
      reqSer_;
  std::optional<ResponseParser> res_;
  std::optional<boost::beast::http::serializer<false, boost::beast::http::buffer_body, Fields>>
      resSer_;
  std::unique_ptr<char[]> body_;
  ExchangeFacts facts_;
  bool inFlight_ = false;  // counted in the target's inFlight()
  bool timedOut_ = false;  // the deadline closed the backend socket
};

// ---- the request ----

template <class Session>
void BackendExchange<Session>::sendRequest() {
  // The last moment before bytes go out: a route changed since the lookup
  // sends this request to the new target, never to a removed one. Counting
  // the request in flight before looking (both sequentially consistent, as
  // RouteTable retires then reads) means a caller that removed the route and
  // then saw inFlight() at 0 can never be followed by a send.
  if (!inFlight_) {
    be_->target->myInFlight().value.fetch_add(1, std::memory_order_seq_cst);
    inFlight_ = true;
  }
  if (s_.target_->retired.load(std::memory_order_seq_cst)) {
    release(false);
    return s_.dispatch();
  }
  if (s_.head_.expectsContinue && !s_.req_->is_done()) {
    // The router answers the expectation itself: the backend never sees it,
    // so it cannot stall waiting on a 100 the router would swallow.
    s_.head_.expectsContinue = false;
    s_.enter(S::kContinue);
    static constexpr std::string_view k100 = "HTTP/1.1 100 Continue\r\n\r\n";
    s_.arm(s_.lim_.idleMs, false);
    boost::asio::async_write(s_.client_, boost::asio::buffer(k100.data(), k100.size()),
                             s_.guard([this, self = s_.self()](error_code ec, size_t) {
                               if (s_.closed()) return;
                               if (ec) return s_.closeNow();
                               startRequestRelay();
                             }));
    return;
  }
  startRequestRelay();
}

template <class Session>
void BackendExchange<Session>::startRequestRelay() {
  s_.enter(S::kSendingHead);
  setNoBody(*s_.req_, !s_.req_->is_done());
  reqSer_.emplace(s_.req_->get());
  relayRequest();
}

template <class Session>
void BackendExchange<Session>::relayRequest() {
  auto& req = *s_.req_;
  auto& cbuf = s_.cbuf_;
  if (!req.is_done() && cbuf.size() > 0) {
    if (!body_) body_ = s_.w_.bodies.take();
    error_code ec;
    size_t consumed = 0;
    size_t produced = pumpBody(req, cbuf, body_.get(), consumed, ec);
    s_.addIn(consumed);
    if (ec) {
      release(false);
      return s_.refuse(refusalForParseError(ec));
    }
    if (produced > 0 || req.is_done()) return writeRequest();
  } else if (req.is_done()) {
    setNoBody(req, false);
    return writeRequest();
  }
  // The head goes out at once, whether or not body bytes are here yet.
  if (s_.machine_.is(S::kSendingHead)) {
    setNoBody(req, true);
    return writeRequest();
  }
  size_t room = std::min(kReadSize, cbuf.max_size() - cbuf.size());
  if (room == 0) {
    release(false);
    return s_.refuse({400, "invalid chunked encoding"});
  }
  s_.arm(s_.lim_.idleMs, false);
  s_.client_.async_read_some(cbuf.prepare(room),
                             s_.guard([this, self = s_.self()](error_code ec, size_t n) {
                               if (s_.closed()) return;
                               s_.cbuf_.commit(n);
                               // A client that leaves mid-upload has no one to answer.
                               if (ec) return s_.closeNow();
                               relayRequest();
                             }));
}

template <class Session>
void BackendExchange<Session>::writeRequest() {
  namespace http = boost::beast::http;
  s_.arm(s_.lim_.backendMs, true);
  http::async_write(be_->sock, *reqSer_,
                    s_.guard([this, self = s_.self(), c = be_](error_code ec, size_t) {
                      if (s_.closed()) return;
                      if (ec == http::error::need_buffer) ec = {};
                      if (ec) return failed(ec, Stage::kSend);
                      if (reqSer_->is_done()) return readResponseHead();
                      if (s_.machine_.is(S::kSendingHead)) s_.enter(S::kSendingBody);
                      relayRequest();
                    }));
}

// ---- the response ----

template <class Session>
void BackendExchange<Session>::readResponseHead() {
  s_.enter(S::kAwaitingResponse);
  res_.emplace(std::piecewise_construct, std::make_tuple(),
               std::make_tuple(FieldsAllocator(&s_.arena_)));
  res_->header_limit(kBackendHeaderLimit);
  res_->body_limit(kNoBodyLimit);
  if (s_.head_.isHead) res_->skip(true);
  s_.arm(s_.lim_.backendMs, true);
  parseResponseHead();
}

template <class Session>
void BackendExchange<Session>::parseResponseHead() {
  namespace http = boost::beast::http;
  auto& b = be_->buf;
  while (b.size() > 0) {
    facts_.responseBytesSeen = true;
    error_code ec;
    size_t n = putSafely(*res_, b.data(), ec);
    b.consume(n);
    if (ec == http::error::need_more) break;
    if (ec) return failed(ec, Stage::kBadResponse);
    if (res_->is_header_done()) return onResponseHead();
    if (n == 0) break;
  }
  size_t room = std::min(kReadSize, b.max_size() - b.size());
  if (room == 0) return failed(http::error::header_limit, Stage::kBadResponse);
  be_->sock.async_read_some(b.prepare(room),
                            s_.guard([this, self = s_.self(), c = be_](error_code ec, size_t n) {
                              if (s_.closed()) return;
                              c->buf.commit(n);
                              if (ec) return failed(ec, Stage::kReceive);
                              parseResponseHead();
                            }));
}

template <class Session>
void BackendExchange<Session>::onResponseHead() {
  namespace http = boost::beast::http;
  auto& m = res_->get();
  unsigned code = m.result_int();
  if (code == 101) {
    if (s_.head_.websocket) return upgrade();
    return failed({}, Stage::kBadResponse);
  }
  // Interim responses (100, 103) are not forwarded: an HTTP/1.0 client must
  // not see them, and the router answered any Expect itself.
  if (code / 100 == 1) {
    // Each interim head takes arena space until the request ends.
    if (++facts_.interim > kMaxInterimResponses) {
      return failed(
          {}, Stage::kBadResponse,
          "sent more than " + std::to_string(kMaxInterimResponses) + " interim (1xx) responses");
    }
    return readResponseHead();
  }
  if (static_cast<size_t>(std::distance(m.begin(), m.end())) > kBackendHeaderCount) {
    return failed({}, Stage::kBadResponse,
                  "sent more than " + std::to_string(kBackendHeaderCount) + " header fields");
  }
  facts_.noResponseBody = rewriteResponseHead(
      m, res_->chunked(), static_cast<bool>(res_->content_length()), s_.head_, s_.stopping());
  resSer_.emplace(m);
  s_.enter(S::kSendingResponseHead);
  if (facts_.noResponseBody) {
    s_.arm(s_.lim_.idleMs, false);
    http::async_write_header(s_.client_, *resSer_,
                             s_.guard([this, self = s_.self()](error_code ec, size_t n) {
                               if (s_.closed()) return;
                               s_.addOut(n);
                               if (ec) return s_.closeNow();
                               onResponseDone();
                             }));
    return;
  }
  relayResponse();
}

// A 101 to a websocket request: the head goes to the client, then the
// connection is a byte tunnel.
template <class Session>
void BackendExchange<Session>::upgrade() {
  namespace http = boost::beast::http;
  s_.enter(S::kTunnel);
  auto& m = res_->get();
  m.erase(http::field::keep_alive);
  m.erase(http::field::proxy_connection);
  m.set(http::field::connection, "Upgrade");
  resSer_.emplace(m);
  s_.arm(s_.lim_.idleMs, false);
  http::async_write_header(s_.client_, *resSer_,
                           s_.guard([this, self = s_.self(), c = be_](error_code ec, size_t n) {
                             if (s_.closed()) return;
                             s_.addOut(n);
                             if (ec) return s_.closeNow();
                             s_.countResponse(101);
                             s_.beginTunnel();
                             s_.tunnel_.run(c);
                           }));
}

template <class Session>
void BackendExchange<Session>::relayResponse() {
  if (!res_->is_done() && be_->buf.size() > 0) {
    if (!body_) body_ = s_.w_.bodies.take();
    error_code ec;
    size_t consumed = 0;
    size_t produced = pumpBody(*res_, be_->buf, body_.get(), consumed, ec);
    // A malformed body from the backend: the response can only be cut.
    if (ec) return s_.closeNow();
    if (produced > 0 || res_->is_done()) return writeResponse();
  } else if (res_->is_done()) {
    setNoBody(*res_, false);
    return writeResponse();
  }
  if (s_.machine_.is(S::kSendingResponseHead)) {
    setNoBody(*res_, true);
    return writeResponse();
  }
  // The parser keeps a chunk line or a trailer block whole in the buffer
  // until its end: one that fills the buffer is cut, as the head is out.
  size_t room = std::min(kReadSize, be_->buf.max_size() - be_->buf.size());
  if (room == 0) return s_.closeNow();
  s_.arm(s_.lim_.backendMs, true);
  be_->sock.async_read_some(be_->buf.prepare(room),
                            s_.guard([this, self = s_.self(), c = be_](error_code ec, size_t n) {
                              if (s_.closed()) return;
                              c->buf.commit(n);
                              if (ec == boost::asio::error::eof) {
                                error_code e2;
                                res_->put_eof(e2);
                                if (e2) return s_.closeNow();
                                facts_.eofDelimited = true;
                                return relayResponse();
                              }
                              if (ec) return s_.closeNow();
                              relayResponse();
                            }));
}

template <class Session>
void BackendExchange<Session>::writeResponse() {
  namespace http = boost::beast::http;
  s_.arm(s_.lim_.idleMs, false);
  http::async_write(s_.client_, *resSer_,
                    s_.guard([this, self = s_.self()](error_code ec, size_t n) {
                      if (s_.closed()) return;
                      s_.addOut(n);
                      if (ec == http::error::need_buffer) ec = {};
                      if (ec) return s_.closeNow();
                      if (resSer_->is_done()) return onResponseDone();
                      if (s_.machine_.is(S::kSendingResponseHead)) {
                        s_.enter(S::kRelayingResponse);
                      }
                      relayResponse();
                    }));
}

template <class Session>
void BackendExchange<Session>::onResponseDone() {
  bool reuse = res_->is_done() && res_->keep_alive() && !facts_.eofDelimited &&
               be_->buf.size() == 0 && !be_->target->retired.load(std::memory_order_acquire);
  release(reuse);
  s_.countResponse(res_->get().result_int());
  if (s_.head_.keepAlive && s_.req_->is_done() && !s_.stopping()) return s_.newRequest();
  s_.gracefulClose();
}

template <class Session>
void BackendExchange<Session>::failed(error_code ec, Stage stage, std::string_view why) {
  bool timedOut = std::exchange(timedOut_, false);
  // A pooled connection the backend closed just as it was reused: safe to
  // send again on a new one only while nothing of the request body or the
  // response has been consumed.
  bool retry = facts_.reused && !facts_.retried && !s_.head_.hasBody && !facts_.responseBytesSeen &&
               !timedOut && (stage == Stage::kSend || stage == Stage::kReceive);
  release(false);
  if (retry) {
    facts_.retried = true;
    return start();
  }
  if (responseStarted()) return s_.closeNow();
  const Target* t = s_.target_;
  std::string where =
      t ? t->route.ip + ":" + std::to_string(t->route.port) : std::string("its address");
  s_.replyPage(502, "Bad gateway",
               "Environment \"" + std::string(s_.slug()) + "\" at " + where +
                   backendFailureText(stage, ec, timedOut, s_.lim_.backendMs, why));
}

}  // namespace qabox::proxy_internal
