// The dashboard's wiring: its loopback server, and the route that sends
// qabox.<domain> there through the router (plain and TLS listeners alike).
#include <spdlog/spdlog.h>

#include "core/ticket.h"
#include "daemon/agent.h"

namespace qabox {

Status Agent::startDashboard() {
  if (!config_.dashboard.enabled) return Status::ok();
  // Changes the pages follow live: every route change (a state change of
  // an environment) and every new event.
  auto stamp = [this] {
    uint64_t newest = 0;
    if (auto e = store_->listEvents("", 1); e.isOk() && !e->empty()) {
      newest = static_cast<uint64_t>(e->front().id);
    }
    return (routes_->version() << 32) ^ newest;
  };
  dashboard_ = std::make_unique<web::Dashboard>(config_, *envs_, *store_, reaper_.get(), *sessions_,
                                                *tokens_, stamp);
  web_ = std::make_unique<web::HttpServer>(
      web::HttpServerOptions{}, std::bind_front(&web::Dashboard::handle, dashboard_.get()));
  if (Status s = web_->start(); !s.isOk()) return s;
  // The reserved label no ticket can take; recovery has run, and nothing
  // but an environment's own delete removes a route.
  Route r;
  r.slug = std::string(kReservedLabel);
  r.state = EnvState::kReady;
  r.ip = "127.0.0.1";
  r.port = web_->port();
  routes_->set(r);
  spdlog::info("dashboard at {}://{}.{} (loopback port {})",
               config_.routing.tlsListen.empty() ? "http" : "https", kReservedLabel,
               config_.routing.domain, web_->port());
  return Status::ok();
}

void Agent::stopDashboard() {
  if (web_) web_->stop();
  dashboard_.reset();  // waits for the actions it started
}

}  // namespace qabox
