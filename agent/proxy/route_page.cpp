#include "proxy/route_page.h"

namespace qabox::proxy_internal {
namespace {

constexpr int kRetryAfterDeploying = 5;
constexpr int kRetryAfterSleeping = 10;

std::string withMessage(const Route& route) {
  return route.message.empty() ? std::string(".") : ": " + route.message;
}

}  // namespace

RouteVerdict decideRoute(const Route* route, bool hasEndpoint, bool mayWake) noexcept {
  if (route == nullptr) return RouteVerdict::kNoSuchEnvironment;
  if (!route->via.empty() && !hasEndpoint) return RouteVerdict::kLost;
  switch (route->state) {
    case EnvState::kReady: return hasEndpoint ? RouteVerdict::kForward : RouteVerdict::kNoAddress;
    case EnvState::kCreating:
    case EnvState::kDeploying: return RouteVerdict::kDeploying;
    case EnvState::kFailed: return RouteVerdict::kFailed;
    case EnvState::kBroken: return RouteVerdict::kBroken;
    case EnvState::kSleeping: return mayWake ? RouteVerdict::kWake : RouteVerdict::kAsleep;
    case EnvState::kDeleting: return RouteVerdict::kDeleting;
  }
  return RouteVerdict::kUnknownState;
}

RoutePage routePage(RouteVerdict v) noexcept {
  switch (v) {
    case RouteVerdict::kForward:
    case RouteVerdict::kWake: return {};
    case RouteVerdict::kNoSuchEnvironment:
    case RouteVerdict::kDeleting: return {404, "No such environment"};
    case RouteVerdict::kNoAddress: return {502, "Bad gateway"};
    case RouteVerdict::kDeploying: return {503, "Environment is deploying", kRetryAfterDeploying};
    case RouteVerdict::kFailed: return {502, "Environment failed"};
    case RouteVerdict::kBroken: return {502, "Environment is broken"};
    case RouteVerdict::kAsleep: return {503, "Environment is asleep", kRetryAfterSleeping};
    case RouteVerdict::kWakeTimedOut:
      // The environment was asked to wake and did not answer in time.
      return {504, "Environment did not wake in time", kRetryAfterSleeping};
    case RouteVerdict::kWakeFailed: return {502, "Environment did not wake"};
    case RouteVerdict::kAddressChurn: return {502, "Environment unavailable"};
    case RouteVerdict::kUnknownState: return {502, "Bad gateway"};
    case RouteVerdict::kLost: return {502, "Environment lost"};
    case RouteVerdict::kForwardLoop: return {508, "Loop detected"};
  }
  return {502, "Bad gateway"};
}

std::string routePageMessage(RouteVerdict v, std::string_view slug, const Route* route,
                             std::string_view detail) {
  std::string name = "Environment \"" + std::string(slug) + "\"";
  std::string state = route ? std::string(stateName(route->state)) : std::string();
  switch (v) {
    case RouteVerdict::kForward:
    case RouteVerdict::kWake: return {};
    case RouteVerdict::kNoSuchEnvironment:
      return "No environment named \"" + std::string(slug) +
             "\" exists on this host. Check the name, or deploy it first.";
    case RouteVerdict::kDeleting: return name + " is being deleted.";
    case RouteVerdict::kNoAddress:
      return name + " has no valid address (\"" + (route ? route->ip : std::string()) + "\" port " +
             std::to_string(route ? route->port : 0) + ").";
    case RouteVerdict::kDeploying:
      return name + " is being deployed (state " + state + "). Try again in a few seconds.";
    case RouteVerdict::kFailed:
      return name + " is in state " + state + (route ? withMessage(*route) : std::string("."));
    case RouteVerdict::kBroken:
      return name + " is broken and out of service" +
             (route ? withMessage(*route) : std::string(".")) +
             " The agent keeps it for an operator: deleting it retries the clean-up.";
    case RouteVerdict::kAsleep:
      return name + " is asleep (state SLEEPING). Try again in a few seconds.";
    case RouteVerdict::kWakeTimedOut:
      return name + " did not wake up within " + std::string(detail) + ".";
    case RouteVerdict::kWakeFailed: return name + " could not be woken: " + std::string(detail);
    case RouteVerdict::kAddressChurn:
      return name + " changed its address repeatedly while this request was routed. Try again.";
    case RouteVerdict::kUnknownState: return name + " is in an unknown state.";
    case RouteVerdict::kLost:
      return name + " lives on host " + (route ? route->via : std::string("?")) +
             ", which is down (LOST). Deploy it again to place it on a live host.";
    case RouteVerdict::kForwardLoop:
      return name + " was forwarded here by another host, but lives on host " +
             (route ? route->via : std::string("?")) +
             ": the hosts disagree about its owner for a moment. Try again.";
  }
  return name + " is in an unknown state.";
}

std::string formatMs(int64_t ms) {
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

}  // namespace qabox::proxy_internal
