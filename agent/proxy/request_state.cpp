#include "proxy/request_state.h"

#include <array>
#include <stdexcept>
#include <string>

namespace qabox::proxy_internal {
namespace {

using S = RequestState;

constexpr uint32_t bit(S s) { return 1u << static_cast<unsigned>(s); }
template <class... T>
constexpr uint32_t bits(T... s) {
  return (bit(s) | ... | 0u);
}

// Where each state may go (kClosed is reachable from every state and is
// added by canEnter). A route that changed under the request sends it back to
// kRouting; a pooled connection the backend had closed sends it to
// kConnecting once.
constexpr std::array<uint32_t, kRequestStateCount> kNext = [] {
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

}  // namespace

bool canEnter(RequestState from, RequestState to) noexcept {
  if (from == S::kClosed) return false;
  if (to == S::kClosed) return true;
  return (kNext[static_cast<size_t>(from)] & bit(to)) != 0;
}

std::string_view requestStateName(RequestState s) noexcept {
  switch (s) {
    case S::kNew: return "new";
    case S::kHandshake: return "handshake";
    case S::kIdle: return "idle";
    case S::kReadingHead: return "reading-head";
    case S::kRouting: return "routing";
    case S::kWaking: return "waking";
    case S::kConnecting: return "connecting";
    case S::kContinue: return "continue";
    case S::kSendingHead: return "sending-head";
    case S::kSendingBody: return "sending-body";
    case S::kAwaitingResponse: return "awaiting-response";
    case S::kSendingResponseHead: return "sending-response-head";
    case S::kRelayingResponse: return "relaying-response";
    case S::kTunnel: return "tunnel";
    case S::kReplying: return "replying";
    case S::kClosing: return "closing";
    case S::kClosed: return "closed";
  }
  return "unknown";
}

void RequestMachine::enter(RequestState to) {
  if (!canEnter(state_, to)) [[unlikely]] {
    throw std::logic_error("request state " + std::string(requestStateName(state_)) + " -> " +
                           std::string(requestStateName(to)) + " is not allowed");
  }
  state_ = to;
}

}  // namespace qabox::proxy_internal
