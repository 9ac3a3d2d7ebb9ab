// qabox-dashboard-bench: the dashboard's list with N environments (300 by
// default) rendered server-side, timed in the handler and over loopback
// HTTP through the dashboard's own server; p50 and p95 in ms.
//
//   qabox-dashboard-bench [environments] [rounds]
#include <algorithm>
#include <cstdio>
#include <vector>

#include "unit/web/dashboard_fixture.h"
#include "unit/web/raw_client.h"

using namespace qabox;
using namespace qabox::web;
namespace wt = qabox::web::testing;

namespace {

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(p * static_cast<double>(v.size() - 1))];
}

void seed(wt::DashboardFixture& f, int n) {
  for (int i = 0; i < n; ++i) {
    Environment e;
    e.ticket = "EXMP-" + std::to_string(1000 + i);
    e.slug = "exmp-" + std::to_string(1000 + i);
    e.container = containerNameFor(e.slug);
    e.state = i % 10 == 0 ? EnvState::kFailed : i % 7 == 0 ? EnvState::kSleeping : EnvState::kReady;
    e.ip = "10.9." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 2);
    e.imageVersion = 1;
    e.spec.image = "busybox";
    e.spec.repo = "shop";
    e.spec.sourceBranch = "feature/" + e.ticket + "-a-longer-branch-name";
    e.spec.targetBranch = "develop";
    e.commit = "4f1c2a9b0d3e5a6b7c8d9e0f1a2b3c4d5e6f7a8b";
    e.message = e.state == EnvState::kFailed ? "health check: no answer on /health in 60s" : "";
    e.createdAt = Clock::now() - std::chrono::minutes(i * 7);
    e.updatedAt = e.createdAt;
    e.lastAccessAt = Clock::now() - std::chrono::minutes(i);
    (void)f.store_->putEnvironment(e);
  }
}

}  // namespace

int main(int argc, char** argv) {
  int n = argc > 1 ? std::atoi(argv[1]) : 300;
  int rounds = argc > 2 ? std::atoi(argv[2]) : 200;
  wt::DashboardFixture f;
  seed(f, n);
  std::string cookie = f.signIn(f.token("bench", "viewer"));
  std::vector<double> handler, http;
  size_t bytes = 0;
  for (int i = 0; i < rounds; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    Reply r = f.get("/", cookie);
    handler.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    bytes = r.res.body().size();
    if (r.res.result_int() != 200) {
      std::fprintf(stderr, "list answered %u\n", r.res.result_int());
      return 1;
    }
  }
  HttpServer server(HttpServerOptions{},
                    [&](const Request& req) { return f.dashboard_->handle(req); });
  if (!server.start().isOk()) return 1;
  std::string req =
      "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Forwarded-Host: qabox.qa.test:8080\r\n"
      "Cookie: " +
      cookie + "\r\nConnection: close\r\n\r\n";
  for (int i = 0; i < rounds; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    wt::Raw c(server.port());
    c.send(req);
    std::string all = c.readAll();
    http.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    if (wt::statusOf(all) != 200) {
      std::fprintf(stderr, "HTTP list answered %d\n", wt::statusOf(all));
      return 1;
    }
  }
  server.stop();
  std::printf("list of %d environments (%zu KiB of HTML), %d rounds\n", n, bytes / 1024, rounds);
  std::printf("  rendered (handler): p50 %.2f ms  p95 %.2f ms\n", percentile(handler, 0.5),
              percentile(handler, 0.95));
  std::printf("  over loopback HTTP: p50 %.2f ms  p95 %.2f ms\n", percentile(http, 0.5),
              percentile(http, 0.95));
  return 0;
}
