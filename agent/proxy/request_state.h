#pragma once

// Where one client connection is in its current request: one explicit state
// machine. The session enters a state at each step; a step the table does not
// allow is a bug and throws, which the session's guard() turns into a closed
// connection (counted by caughtExceptions(), which the tests and fuzzers
// expect to stay at zero). What is not a state, the facts of a request's head
// and of its backend exchange, lives in named fields beside it (HeadFacts,
// ExchangeFacts).

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace qabox::proxy_internal {

enum class RequestState : uint8_t {
  kNew,                  // accepted, nothing done yet
  kHandshake,            // TLS handshake
  kIdle,                 // keep-alive, waiting for the next request's first byte
  kReadingHead,          // reading a request head (header_timeout runs)
  kRouting,              // head complete: checks, Host, route lookup
  kWaking,               // held while a SLEEPING environment wakes (wake_timeout)
  kConnecting,           // opening a new backend connection
  kContinue,             // writing the router's own 100 Continue to the client
  kSendingHead,          // writing the request head (and any body bytes at hand)
  kSendingBody,          // relaying the rest of the request body
  kAwaitingResponse,     // reading the backend's response head (1xx included)
  kSendingResponseHead,  // writing the response head (and first body bytes)
  kRelayingResponse,     // relaying the rest of the response body
  kTunnel,               // 101 Switching Protocols: bytes both ways
  kReplying,             // writing the router's own page
  kClosing,              // half-closed, draining what the client still sends
  kClosed,               // the client socket is closed; every handler returns
};
inline constexpr size_t kRequestStateCount = static_cast<size_t>(RequestState::kClosed) + 1;

namespace request_state_detail {
constexpr uint32_t bit(RequestState s) { return 1u << static_cast<unsigned>(s); }
template <class... T>
constexpr uint32_t bits(T... s) {
  return (bit(s) | ... | 0u);
}

// Where each state may go (kClosed is reachable from every state but
// itself, and is added by canEnter). A route that changed under the request
// sends it back to kRouting; a pooled connection the backend had closed sends
// it to kConnecting once.
inline constexpr std::array<uint32_t, kRequestStateCount> kNext = [] {
  using S = RequestState;
  std::array<uint32_t, kRequestStateCount> t{};
  auto set = [&t](S from, uint32_t to) { t[static_cast<size_t>(from)] = to; };
  set(S::kNew, bits(S::kHandshake, S::kReadingHead));
  set(S::kHandshake, bits(S::kReadingHead));
  set(S::kIdle, bits(S::kReadingHead));
  set(S::kReadingHead, bits(S::kRouting, S::kReplying));
  set(S::kRouting,
      bits(S::kRouting, S::kWaking, S::kConnecting, S::kContinue, S::kSendingHead, S::kReplying));
  set(S::kWaking, bits(S::kRouting, S::kReplying));
  set(S::kConnecting, bits(S::kRouting, S::kContinue, S::kSendingHead, S::kReplying));
  set(S::kContinue, bits(S::kSendingHead));
  set(S::kSendingHead,
      bits(S::kSendingBody, S::kAwaitingResponse, S::kConnecting, S::kRouting, S::kReplying));
  set(S::kSendingBody, bits(S::kAwaitingResponse, S::kConnecting, S::kRouting, S::kReplying));
  set(S::kAwaitingResponse, bits(S::kAwaitingResponse, S::kSendingResponseHead, S::kTunnel,
                                 S::kConnecting, S::kRouting, S::kReplying));
  set(S::kSendingResponseHead, bits(S::kRelayingResponse, S::kIdle, S::kReadingHead, S::kClosing));
  set(S::kRelayingResponse, bits(S::kIdle, S::kReadingHead, S::kClosing));
  set(S::kTunnel, 0);
  set(S::kReplying, bits(S::kIdle, S::kReadingHead, S::kClosing));
  set(S::kClosing, 0);
  set(S::kClosed, 0);
  return t;
}();
}  // namespace request_state_detail

// The transition table: whether a session in `from` may enter `to`.
constexpr bool canEnter(RequestState from, RequestState to) noexcept {
  if (from == RequestState::kClosed) return false;
  if (to == RequestState::kClosed) return true;
  return (request_state_detail::kNext[static_cast<size_t>(from)] & request_state_detail::bit(to)) !=
         0;
}

std::string_view requestStateName(RequestState s) noexcept;

// The state of one connection's current request. enter() checks the table.
class RequestMachine {
 public:
  explicit RequestMachine(RequestState initial = RequestState::kNew) : state_(initial) {}
  RequestState state() const { return state_; }
  bool is(RequestState s) const { return state_ == s; }
  bool closed() const { return state_ == RequestState::kClosed; }
  // Throws std::logic_error when the table does not allow the step.
  void enter(RequestState to) {
    if (!canEnter(state_, to)) [[unlikely]]
      refuse(to);
    state_ = to;
  }
  // The one step that never fails: any state may close.
  void close() noexcept { state_ = RequestState::kClosed; }

 private:
  [[noreturn]] void refuse(RequestState to) const;

  RequestState state_;
};

// Facts of a request's head, read once when it is complete.
struct HeadFacts {
  size_t headerBytes = 0;  // counted as bytes in once the route is known
  int dispatches = 0;      // route lookups, bounded: a route that keeps changing is a 502
  bool isHead = false;     // HEAD: the response has no body
  bool hasBody = false;    // the body was not complete with the head
  bool clientV10 = false;
  bool keepAlive = false;        // the client keeps the connection (cleared on refusal)
  bool clientCloses = false;     // the client asked to close after this request
  bool expectsContinue = false;  // cleared once the router sent its 100 Continue
  bool websocket = false;        // Upgrade: websocket was asked for
  bool counted = false;          // the use counters have this request
  bool wakeTried = false;        // one wake per request
  bool admitted = false;         // the login gate let it through (a route behind a login)
  bool stripped = false;         // qabox's cookies and bearer token are out of the head
  bool cameForwarded = false;    // another host's router sent it (kForwardedHeader)
};

// Facts of a request's exchange with its backend.
struct ExchangeFacts {
  int interim = 0;                 // 1xx heads read, bounded
  bool reused = false;             // the connection came from the pool
  bool retried = false;            // sent again on a fresh connection, once
  bool responseBytesSeen = false;  // after this a retry could repeat the request
  bool noResponseBody = false;     // HEAD, 204 or 304
  bool eofDelimited = false;       // the backend ended the body by closing
};

}  // namespace qabox::proxy_internal
