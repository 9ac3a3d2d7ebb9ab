// qabox-router-bench: the router alone, on loopback, in front of one backend,
// so its throughput can be measured against other proxies with the same load.
//
//   qabox-router-bench --backend 127.0.0.1:8080 [--listen 127.0.0.1:0]
//                      [--domain bench.local] [--slug bench] [--threads 2]
//
// Prints "listening <port>" once ready and runs until SIGINT or SIGTERM.

#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/endpoint.h"
#include "proxy/router.h"

int main(int argc, char** argv) {
  std::string listen = "127.0.0.1:0", backend, domain = "bench.local", slug = "bench";
  int threads = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string key = argv[i], value = argv[i + 1];
    if (key == "--listen") {
      listen = value;
    } else if (key == "--backend") {
      backend = value;
    } else if (key == "--domain") {
      domain = value;
    } else if (key == "--slug") {
      slug = value;
    } else if (key == "--threads") {
      threads = std::atoi(value.c_str());
    } else {
      std::fprintf(stderr, "unknown option %s\n", key.c_str());
      return 2;
    }
  }
  if (backend.empty()) {
    std::fprintf(stderr,
                 "usage: %s --backend ip:port [--listen host:port] [--domain d] "
                 "[--slug s] [--threads n]\n",
                 argv[0]);
    return 2;
  }
  auto target = qabox::parseHostPort(backend, "--backend");
  if (!target.isOk()) {
    std::fprintf(stderr, "%s\n", target.status().message().c_str());
    return 2;
  }

  // Block the signals before the router starts its threads, so only sigwait
  // sees them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  auto table = std::make_shared<qabox::RouteTable>();
  qabox::Route route;
  route.slug = slug;
  route.state = qabox::EnvState::kReady;
  route.ip = target->host;
  route.port = target->port;
  route.generation = 1;
  table->set(route);

  qabox::RouterOptions options;
  options.domain = domain;
  options.listen = listen;
  options.threads = threads;
  qabox::Router router(options, table);
  if (auto s = router.start(); !s.isOk()) {
    std::fprintf(stderr, "%s\n", s.toString().c_str());
    return 1;
  }
  std::printf("listening %u\n", static_cast<unsigned>(router.port()));
  std::fflush(stdout);

  int sig = 0;
  sigwait(&set, &sig);
  router.stop();
  return 0;
}
