#pragma once

// A Dashboard over the real EnvironmentManager on fake containers and a
// real SQLite store, with a real session key and token directory: what the
// dashboard tests and its bench stand on. Requests go straight to
// Dashboard::handle, as the HTTP server would hand them over.

#include <memory>
#include <string>

#include "daemon/options.h"
#include "fakes/fake_images.h"
#include "fakes/fake_runtime.h"
#include "fakes/fake_time.h"
#include "server/sessions.h"
#include "sys/process.h"
#include "unit/server/tokens.h"
#include "unit/store/temp_dir.h"
#include "web/dashboard.h"

namespace qabox::web::testing {

class DashboardFixture {
 public:
  DashboardFixture() {
    config_.stateDir = dir_.path();
    config_.imagesDir = std::string(QABOX_SOURCE_DIR) + "/images";
    config_.network.subnet = "10.9.0.0/22";
    config_.limits.maxEnvironments = 400;
    config_.routing.domain = "qa.test";
    runtime_.upperRoot = dir_.path() + "/upper";
    auto s = openSqliteStore(dir_.path() + "/qabox.db");
    store_ = std::move(*s);
    (void)store_->putImage({"busybox", 1, Clock::now(), true, ""});
    images_ = std::make_unique<ImageBuilder>(config_, *store_, runner_, layers_, "");
    envs_ = std::make_unique<EnvironmentManager>(
        lifecycleOptions(config_), *store_, runtime_, bridge_, *images_, nullptr, routes_,
        [](const std::string&, uint16_t, const std::string&, std::chrono::milliseconds) {
          return Status::ok();
        });
    SessionKey key{};
    key.fill(7);
    codec_ = std::make_unique<SessionCodec>(key);
    tokens_ = std::make_unique<TokenDirectory>(*store_);
    dashboard_ = std::make_unique<Dashboard>(
        config_, *envs_, *store_, nullptr, *codec_, *tokens_,
        [this] { return routes_.version() + stamp_; }, time_);
  }

  std::string token(const std::string& name, const std::string& role) {
    std::string secret = qabox::test::putToken(*store_, name, role, time_.now());
    (void)tokens_->reload();
    return secret;
  }

  Status deploy(const std::string& ticket) {
    DeployInput in;
    in.ticket = ticket;
    in.spec.image = "busybox";
    in.actor = "token:ci";
    return envs_->deploy(in, [](const Progress&) {}).status();
  }

  // A request as the router forwards it.
  Request request(http::verb method, const std::string& target, const std::string& cookie = "",
                  const std::string& body = "", bool tls = false) {
    Request req{method, target, 11};
    req.set(http::field::host, "127.0.0.1:1234");
    req.set("X-Forwarded-Host", "qabox.qa.test:8080");
    req.set("X-Forwarded-Proto", tls ? "https" : "http");
    if (!cookie.empty()) req.set(http::field::cookie, cookie);
    if (method == http::verb::post) {
      req.set(http::field::content_type, "application/x-www-form-urlencoded");
      req.body() = body;
      req.prepare_payload();
    }
    return req;
  }

  Reply get(const std::string& target, const std::string& cookie = "") {
    return dashboard_->handle(request(http::verb::get, target, cookie));
  }
  Reply post(const std::string& target, const std::string& cookie, const std::string& body) {
    return dashboard_->handle(request(http::verb::post, target, cookie, body));
  }

  // Signs in with `secret`; the Cookie header value that carries the session.
  std::string signIn(const std::string& secret) {
    Reply r = post("/login", "", "token=" + secret + "&next=%2F");
    std::string set(r.res[http::field::set_cookie]);
    return set.substr(0, set.find(';'));
  }

  qabox::test::TempDir dir_;
  Config config_;
  RealProcessRunner runner_;
  fakes::FakeLayerMounter layers_;
  fakes::FakeRuntime runtime_;
  fakes::FakeBridge bridge_;
  RouteTable routes_;
  FakeTime time_{Clock::now()};
  uint64_t stamp_ = 0;
  std::unique_ptr<Store> store_;
  std::unique_ptr<ImageBuilder> images_;
  std::unique_ptr<EnvironmentManager> envs_;
  std::unique_ptr<SessionCodec> codec_;
  std::unique_ptr<TokenDirectory> tokens_;
  std::unique_ptr<Dashboard> dashboard_;
};

// The CSRF field's value in a page.
inline std::string csrfOf(const std::string& page) {
  std::string marker = "name=\"csrf\" value=\"";
  size_t at = page.find(marker);
  if (at == std::string::npos) return "";
  at += marker.size();
  return page.substr(at, page.find('"', at) - at);
}

}  // namespace qabox::web::testing
