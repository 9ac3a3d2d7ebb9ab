#include "proxy/request_state.h"

#include <stdexcept>
#include <string>

namespace qabox::proxy_internal {
using S = RequestState;

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

void RequestMachine::refuse(RequestState to) const {
  throw std::logic_error("request state " + std::string(requestStateName(state_)) + " -> " +
                         std::string(requestStateName(to)) + " is not allowed");
}

}  // namespace qabox::proxy_internal
