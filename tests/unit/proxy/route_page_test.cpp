#include <gtest/gtest.h>

#include <optional>
#include <string>

#include "proxy/route_page.h"

namespace qabox::proxy_internal {
namespace {

using V = RouteVerdict;

Route route(EnvState state, std::string message = "") {
  Route r;
  r.slug = "exmp-1";
  r.state = state;
  r.ip = "10.0.3.7";
  r.port = 8080;
  r.message = std::move(message);
  return r;
}

TEST(DecideRoute, MapsEveryRouteStateToAVerdict) {
  struct Case {
    std::optional<EnvState> state;  // nullopt: no route
    bool hasEndpoint;
    bool mayWake;
    V want;
  };
  for (const Case& c : {
           Case{std::nullopt, false, true, V::kNoSuchEnvironment},
           Case{EnvState::kReady, true, false, V::kForward},
           Case{EnvState::kReady, false, false, V::kNoAddress},
           Case{EnvState::kCreating, true, true, V::kDeploying},
           Case{EnvState::kDeploying, true, true, V::kDeploying},
           Case{EnvState::kFailed, true, true, V::kFailed},
           Case{EnvState::kBroken, true, true, V::kBroken},
           Case{EnvState::kSleeping, true, true, V::kWake},
           Case{EnvState::kSleeping, true, false, V::kAsleep},
           Case{EnvState::kDeleting, true, true, V::kDeleting},
           Case{static_cast<EnvState>(99), true, true, V::kUnknownState},
       }) {
    std::optional<Route> r;
    if (c.state) r = route(*c.state);
    EXPECT_EQ(decideRoute(r ? &*r : nullptr, c.hasEndpoint, c.mayWake), c.want)
        << (c.state ? static_cast<int>(*c.state) : -1) << " " << c.hasEndpoint << c.mayWake;
  }
}

TEST(DecideRoute, AnotherHostsRouteForwardsToItsRouterOrSaysLost) {
  Route remote = route(EnvState::kReady);
  remote.via = "qa-2";
  EXPECT_EQ(decideRoute(&remote, true, true), V::kForward);
  EXPECT_EQ(decideRoute(&remote, false, true), V::kLost);
  EXPECT_EQ(routePageMessage(V::kLost, "exmp-1", &remote),
            "Environment \"exmp-1\" lives on host qa-2, which is down (LOST). Deploy it again to "
            "place it on a live host.");
  EXPECT_EQ(routePageMessage(V::kForwardLoop, "exmp-1", &remote),
            "Environment \"exmp-1\" was forwarded here by another host, but lives on host qa-2: "
            "the hosts disagree about its owner for a moment. Try again.");
}

TEST(RoutePage, EveryVerdictHasItsStatusTitleAndRetryAfter) {
  struct Case {
    V verdict;
    unsigned status;
    std::string_view title;
    int retryAfter;
  };
  for (const Case& c : {
           Case{V::kForward, 0, "", 0},
           Case{V::kWake, 0, "", 0},
           Case{V::kNoSuchEnvironment, 404, "No such environment", 0},
           Case{V::kDeleting, 404, "No such environment", 0},
           Case{V::kNoAddress, 502, "Bad gateway", 0},
           Case{V::kDeploying, 503, "Environment is deploying", 5},
           Case{V::kFailed, 502, "Environment failed", 0},
           Case{V::kBroken, 502, "Environment is broken", 0},
           Case{V::kAsleep, 503, "Environment is asleep", 10},
           Case{V::kWakeTimedOut, 504, "Environment did not wake in time", 10},
           Case{V::kWakeFailed, 502, "Environment did not wake", 0},
           Case{V::kAddressChurn, 502, "Environment unavailable", 0},
           Case{V::kUnknownState, 502, "Bad gateway", 0},
           Case{V::kLost, 502, "Environment lost", 0},
           Case{V::kForwardLoop, 508, "Loop detected", 0},
       }) {
    RoutePage p = routePage(c.verdict);
    EXPECT_EQ(p.status, c.status) << static_cast<int>(c.verdict);
    EXPECT_EQ(p.title, c.title) << static_cast<int>(c.verdict);
    EXPECT_EQ(p.retryAfter, c.retryAfter) << static_cast<int>(c.verdict);
  }
}

TEST(RoutePageMessage, SaysWhatHappenedAndWhatToDo) {
  const std::string slug = "exmp-1";
  Route deploying = route(EnvState::kDeploying);
  Route failed = route(EnvState::kFailed, "health check failed");
  Route failedQuiet = route(EnvState::kFailed);
  Route broken = route(EnvState::kBroken, "clean-up failed");
  Route ready = route(EnvState::kReady);
  ready.ip = "not-an-ip";
  EXPECT_EQ(routePageMessage(V::kNoSuchEnvironment, slug, nullptr),
            "No environment named \"exmp-1\" exists on this host. Check the name, or deploy it "
            "first.");
  EXPECT_EQ(routePageMessage(V::kDeleting, slug, nullptr),
            "Environment \"exmp-1\" is being deleted.");
  EXPECT_EQ(routePageMessage(V::kNoAddress, slug, &ready),
            "Environment \"exmp-1\" has no valid address (\"not-an-ip\" port 8080).");
  EXPECT_EQ(routePageMessage(V::kDeploying, slug, &deploying),
            "Environment \"exmp-1\" is being deployed (state DEPLOYING). Try again in a few "
            "seconds.");
  EXPECT_EQ(routePageMessage(V::kFailed, slug, &failed),
            "Environment \"exmp-1\" is in state FAILED: health check failed");
  EXPECT_EQ(routePageMessage(V::kFailed, slug, &failedQuiet),
            "Environment \"exmp-1\" is in state FAILED.");
  EXPECT_EQ(routePageMessage(V::kBroken, slug, &broken),
            "Environment \"exmp-1\" is broken and out of service: clean-up failed The agent keeps "
            "it for an operator: deleting it retries the clean-up.");
  EXPECT_EQ(routePageMessage(V::kAsleep, slug, nullptr),
            "Environment \"exmp-1\" is asleep (state SLEEPING). Try again in a few seconds.");
  EXPECT_EQ(routePageMessage(V::kWakeTimedOut, slug, nullptr, formatMs(60000)),
            "Environment \"exmp-1\" did not wake up within 60s.");
  EXPECT_EQ(routePageMessage(V::kWakeFailed, slug, nullptr, "disk full"),
            "Environment \"exmp-1\" could not be woken: disk full");
  EXPECT_EQ(routePageMessage(V::kAddressChurn, slug, nullptr),
            "Environment \"exmp-1\" changed its address repeatedly while this request was "
            "routed. Try again.");
  EXPECT_EQ(routePageMessage(V::kUnknownState, slug, nullptr),
            "Environment \"exmp-1\" is in an unknown state.");
}

TEST(FormatMs, WholeSecondsAsSecondsTheRestAsMilliseconds) {
  EXPECT_EQ(formatMs(1000), "1s");
  EXPECT_EQ(formatMs(60000), "60s");
  EXPECT_EQ(formatMs(1500), "1500ms");
  EXPECT_EQ(formatMs(250), "250ms");
}

}  // namespace
}  // namespace qabox::proxy_internal
