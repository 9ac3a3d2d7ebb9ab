// The dashboard's wiring: its loopback server, and the route that sends
// qabox.<domain> there through the router (plain and TLS listeners alike).
#include <spdlog/spdlog.h>

#include "core/environment.h"
#include "core/ticket.h"
#include "daemon/agent.h"

namespace qabox {

Status Agent::startDashboard() {
  QABOX_RETURN_IF_ERROR(startHooks());
  // Webhooks arrive on the dashboard's host: with the dashboard off, the
  // server still runs for them and serves nothing else.
  if (!config_.dashboard.enabled && !hooks_) return Status::ok();
  // Changes the pages follow live: every route change (a state change of
  // an environment) and every new event.
  auto stamp = [this] {
    uint64_t newest = 0;
    if (auto e = store_->listEvents("", 1); e.isOk() && !e->empty()) {
      newest = static_cast<uint64_t>(e->front().id);
    }
    return (routes_->version() << 32) ^ newest;
  };
  if (config_.dashboard.enabled) {
    dashboard_ = std::make_unique<web::Dashboard>(config_, *envs_, *store_, reaper_.get(),
                                                  *sessions_, *tokens_, stamp);
  }
  web::HttpServerOptions options;
  if (hooks_) {
    size_t maxBody = parseMemorySize(config_.webhooks.maxBody).value_or(1 << 20);
    // Only a POST to one of the three endpoints: any other /hooks/ path or
    // method keeps the forms' small limit.
    options.bodyLimitFor = [maxBody](std::string_view method, std::string_view target) -> size_t {
      if (method != "POST" || target.rfind(kHooksPrefix, 0) != 0) return 0;
      return hooks::parseProvider(target.substr(kHooksPrefix.size())) ? maxBody : 0;
    };
  }
  web_ = std::make_unique<web::HttpServer>(options, [this](const web::Request& req) -> web::Reply {
    std::string_view target(req.target().data(), req.target().size());
    if (target.rfind(kHooksPrefix, 0) == 0) return serveHook(req);
    if (dashboard_) return dashboard_->handle(req);
    return web::makeReply(web::http::status::not_found, "the dashboard is disabled\n",
                          "text/plain");
  });
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
  if (hooks_) hooks_->stop();  // the running actions finish, the pending ones are dropped
  dashboard_.reset();          // waits for the actions it started
}

}  // namespace qabox
