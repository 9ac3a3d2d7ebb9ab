// qabox-metrics-bench: the agent's /metrics with N environments, for
// scripts/bench/metrics.sh. A real SQLite store with N environment rows, a
// route table with N routes whose counters carry traffic, the sources the
// daemon registers, the real listener on loopback; it times whole HTTP
// scrapes (connect, GET /metrics, read to the end).
//
//   qabox-metrics-bench [--environments 300] [--scrapes 200] [--dir /tmp/x]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "core/environment.h"
#include "daemon/metrics_sources.h"
#include "metrics/metrics.h"
#include "proxy/route_internal.h"

namespace {

using namespace qabox;

std::string scrapeOnce(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string body;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    const char req[] = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (::write(fd, req, sizeof req - 1) == static_cast<ssize_t>(sizeof req - 1)) {
      char buf[65536];
      ssize_t n;
      while ((n = ::read(fd, buf, sizeof buf)) > 0) body.append(buf, static_cast<size_t>(n));
    }
  }
  ::close(fd);
  return body;
}

void seed(Store& store, RouteTable& routes, int n) {
  for (int i = 0; i < n; ++i) {
    Environment e;
    e.slug = "bench-" + std::to_string(i);
    e.ticket = "BENCH-" + std::to_string(i);
    e.state = i % 10 == 0 ? EnvState::kSleeping : EnvState::kReady;
    e.ip = "10.44." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 2);
    e.container = "qabox-" + e.slug;
    e.createdAt = e.updatedAt = e.deployedAt = Clock::now();
    if (Status s = store.putEnvironment(e); !s.isOk()) {
      std::fprintf(stderr, "%s\n", s.toString().c_str());
      std::exit(1);
    }
    Route route;
    route.slug = e.slug;
    route.state = e.state;
    route.ip = e.ip;
    route.generation = 1;
    routes.set(route);
    auto& slot = routes.snapshot()->bySlug.at(e.slug)->stats->mine();
    for (size_t m = 0; m < 3; ++m) {
      for (unsigned status : {200u, 304u, 404u, 502u}) {
        proxy_internal::countResponse(slot, status, m, 1000u * (m + 1) * status / 100);
      }
    }
    slot.bytesIn.fetch_add(1000);
    slot.bytesOut.fetch_add(100000);
  }
}

}  // namespace

int main(int argc, char** argv) {
  int envs = 300, scrapes = 200;
  std::string dir = "/tmp/qabox-metrics-bench";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string key = argv[i];
    if (key == "--environments") envs = std::atoi(argv[i + 1]);
    if (key == "--scrapes") scrapes = std::atoi(argv[i + 1]);
    if (key == "--dir") dir = argv[i + 1];
  }
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  auto store = openSqliteStore(dir + "/qabox.db");
  if (!store) {
    std::fprintf(stderr, "%s\n", store.status().toString().c_str());
    return 1;
  }
  RouteTable routes;
  seed(**store, routes, envs);
  Metrics metrics;
  metrics.addSource(environmentSource(**store));
  metrics.addSource(routerSource(routes, [] { return int64_t{12}; }));
  metrics.addSource(processSource());
  if (Status s = metrics.listen("127.0.0.1:0"); !s.isOk()) {
    std::fprintf(stderr, "%s\n", s.toString().c_str());
    return 1;
  }
  std::vector<double> ms;
  size_t bytes = 0;
  for (int i = 0; i < scrapes + 5; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    bytes = scrapeOnce(metrics.port()).size();
    auto t1 = std::chrono::steady_clock::now();
    if (i >= 5) ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  auto at = [&](double q) {
    return ms[static_cast<size_t>(q * static_cast<double>(ms.size() - 1))];
  };
  std::printf("environments %d, scrapes %d, body %zu bytes\n", envs, scrapes, bytes);
  std::printf("scrape ms: p50 %.2f  p95 %.2f  max %.2f  (target p95 < 50)\n", at(0.5), at(0.95),
              ms.back());
  metrics.stopListening();
  std::filesystem::remove_all(dir);
  return at(0.95) < 50 ? 0 : 3;
}
