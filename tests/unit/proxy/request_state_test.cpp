#include <gtest/gtest.h>

#include <set>
#include <stdexcept>
#include <utility>
#include <vector>

#include "proxy/request_state.h"

namespace qabox::proxy_internal {
namespace {

using S = RequestState;

std::vector<S> allStates() {
  std::vector<S> v;
  for (size_t i = 0; i < kRequestStateCount; ++i) v.push_back(static_cast<S>(i));
  return v;
}

// Walks a request's path through the machine, step by step.
void walk(std::initializer_list<S> path) {
  RequestMachine m;
  for (S s : path) {
    ASSERT_NO_THROW(m.enter(s)) << requestStateName(m.state()) << " -> " << requestStateName(s);
    EXPECT_EQ(m.state(), s);
  }
}

TEST(RequestMachine, WalksEveryPathTheRouterTakes) {
  // Forwarded on a new connection, body and all, then kept alive.
  walk({S::kReadingHead, S::kRouting, S::kConnecting, S::kSendingHead, S::kSendingBody,
        S::kAwaitingResponse, S::kSendingResponseHead, S::kRelayingResponse, S::kIdle,
        S::kReadingHead});
  // TLS, a pooled connection, a HEAD answer without a body, then closing.
  walk({S::kHandshake, S::kReadingHead, S::kRouting, S::kSendingHead, S::kAwaitingResponse,
        S::kSendingResponseHead, S::kClosing, S::kClosed});
  // Expect: 100-continue answered by the router; 1xx heads skipped.
  walk({S::kReadingHead, S::kRouting, S::kConnecting, S::kContinue, S::kSendingHead,
        S::kSendingBody, S::kAwaitingResponse, S::kAwaitingResponse, S::kSendingResponseHead,
        S::kReadingHead});
  // A sleeping environment woken, then forwarded.
  walk({S::kReadingHead, S::kRouting, S::kWaking, S::kRouting, S::kConnecting, S::kSendingHead,
        S::kAwaitingResponse, S::kSendingResponseHead, S::kRelayingResponse, S::kClosing});
  // A pooled connection the backend had closed: once more on a fresh one.
  walk({S::kReadingHead, S::kRouting, S::kSendingHead, S::kConnecting, S::kSendingHead,
        S::kAwaitingResponse, S::kConnecting, S::kRouting, S::kReplying, S::kIdle});
  // The route changed under the request: routed again.
  walk({S::kReadingHead, S::kRouting, S::kRouting, S::kConnecting, S::kRouting, S::kReplying,
        S::kReadingHead});
  // Pages: a refused head, a wake that failed, a backend that failed.
  walk({S::kReadingHead, S::kReplying, S::kClosing, S::kClosed});
  walk({S::kReadingHead, S::kRouting, S::kWaking, S::kReplying, S::kReadingHead});
  walk({S::kReadingHead, S::kRouting, S::kConnecting, S::kReplying, S::kIdle});
  walk({S::kReadingHead, S::kRouting, S::kSendingHead, S::kSendingBody, S::kReplying});
  // A websocket upgrade.
  walk({S::kReadingHead, S::kRouting, S::kConnecting, S::kSendingHead, S::kAwaitingResponse,
        S::kTunnel, S::kClosed});
}

TEST(RequestMachine, EveryStateMayCloseAndNothingLeavesClosed) {
  for (S from : allStates()) {
    EXPECT_EQ(canEnter(from, S::kClosed), from != S::kClosed) << requestStateName(from);
    EXPECT_FALSE(canEnter(S::kClosed, from)) << requestStateName(from);
  }
}

TEST(RequestMachine, RefusesStepsOutsideTheTable) {
  // Exactly these pairs are allowed; any other step is a bug.
  const std::set<std::pair<S, S>> allowed = {
      {S::kNew, S::kHandshake},
      {S::kNew, S::kReadingHead},
      {S::kHandshake, S::kReadingHead},
      {S::kIdle, S::kReadingHead},
      {S::kReadingHead, S::kRouting},
      {S::kReadingHead, S::kReplying},
      {S::kRouting, S::kRouting},
      {S::kRouting, S::kWaking},
      {S::kRouting, S::kConnecting},
      {S::kRouting, S::kContinue},
      {S::kRouting, S::kSendingHead},
      {S::kRouting, S::kReplying},
      {S::kWaking, S::kRouting},
      {S::kWaking, S::kReplying},
      {S::kConnecting, S::kRouting},
      {S::kConnecting, S::kContinue},
      {S::kConnecting, S::kSendingHead},
      {S::kConnecting, S::kReplying},
      {S::kContinue, S::kSendingHead},
      {S::kSendingHead, S::kSendingBody},
      {S::kSendingHead, S::kAwaitingResponse},
      {S::kSendingHead, S::kConnecting},
      {S::kSendingHead, S::kRouting},
      {S::kSendingHead, S::kReplying},
      {S::kSendingBody, S::kAwaitingResponse},
      {S::kSendingBody, S::kConnecting},
      {S::kSendingBody, S::kRouting},
      {S::kSendingBody, S::kReplying},
      {S::kAwaitingResponse, S::kAwaitingResponse},
      {S::kAwaitingResponse, S::kSendingResponseHead},
      {S::kAwaitingResponse, S::kTunnel},
      {S::kAwaitingResponse, S::kConnecting},
      {S::kAwaitingResponse, S::kRouting},
      {S::kAwaitingResponse, S::kReplying},
      {S::kSendingResponseHead, S::kRelayingResponse},
      {S::kSendingResponseHead, S::kIdle},
      {S::kSendingResponseHead, S::kReadingHead},
      {S::kSendingResponseHead, S::kClosing},
      {S::kRelayingResponse, S::kIdle},
      {S::kRelayingResponse, S::kReadingHead},
      {S::kRelayingResponse, S::kClosing},
      {S::kReplying, S::kIdle},
      {S::kReplying, S::kReadingHead},
      {S::kReplying, S::kClosing},
  };
  for (S from : allStates()) {
    for (S to : allStates()) {
      if (to == S::kClosed) continue;
      EXPECT_EQ(canEnter(from, to), allowed.count({from, to}) == 1)
          << requestStateName(from) << " -> " << requestStateName(to);
    }
  }
}

TEST(RequestMachine, AnIllegalStepThrowsAndLeavesTheStateAlone) {
  RequestMachine m;
  m.enter(S::kReadingHead);
  // A response before the request was routed: a bug the session's guard()
  // turns into a closed connection.
  EXPECT_THROW(m.enter(S::kRelayingResponse), std::logic_error);
  EXPECT_EQ(m.state(), S::kReadingHead);
  m.enter(S::kRouting);
  m.enter(S::kReplying);
  m.enter(S::kClosing);
  EXPECT_THROW(m.enter(S::kReadingHead), std::logic_error);  // a drained connection stays closed
  m.close();
  EXPECT_TRUE(m.closed());
  EXPECT_THROW(m.enter(S::kReadingHead), std::logic_error);
}

TEST(RequestMachine, EveryStateHasAName) {
  std::set<std::string_view> names;
  for (S s : allStates()) names.insert(requestStateName(s));
  EXPECT_EQ(names.size(), kRequestStateCount);
  EXPECT_EQ(names.count("unknown"), 0u);
}

}  // namespace
}  // namespace qabox::proxy_internal
