// qabox-router-bench: the router alone, on loopback, in front of one backend,
// so its throughput can be measured against other proxies with the same load.
//
//   qabox-router-bench --backend 127.0.0.1:8080 [--listen 127.0.0.1:0]
//                      [--domain bench.local] [--slug bench] [--threads 2]
//                      [--login DIR [--gate-loops N]]
//                      [--tls-cert CRT --tls-key KEY]
//
// Prints "listening <port>" once ready (and "tls <port>" with --tls-cert,
// a TLS listener on the same host) and runs until SIGINT or SIGTERM.
// With --login the route is behind a login, checked by the agent's real
// PreviewGate over a token store in DIR; it also prints "cookie <name=value>",
// a valid preview cookie to send with every request. With --gate-loops it
// only times N of the gate's decisions on such a request and exits.

#include <signal.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>

#include "core/cookie.h"
#include "core/endpoint.h"
#include "proxy/router.h"
#include "server/auth.h"
#include "server/preview_gate.h"
#include "server/sessions.h"

namespace {

// The agent's gate over a store in `dir` with one qa token; its cookie.
struct LoginGate {
  std::unique_ptr<qabox::Store> store;
  std::unique_ptr<qabox::SessionCodec> codec;
  std::unique_ptr<qabox::TokenDirectory> tokens;
  std::unique_ptr<qabox::PreviewGate> gate;
  std::string cookie;
};

qabox::Result<LoginGate> loginGate(const std::string& dir, const std::string& slug) {
  using namespace qabox;
  LoginGate g;
  QABOX_ASSIGN_OR_RETURN(g.store, openSqliteStore(dir + "/qabox.db"));
  QABOX_ASSIGN_OR_RETURN(std::string secret, newTokenSecret());
  TokenRecord t;
  t.name = "bench-" + std::to_string(toUnixMillis(Clock::now()));  // new on every run
  t.role = "qa";
  t.hash = hashTokenSecret(secret);
  t.createdAt = Clock::now();
  QABOX_RETURN_IF_ERROR(g.store->putToken(t));
  QABOX_ASSIGN_OR_RETURN(SessionKey key, loadOrCreateSessionKey(dir + "/session.key"));
  g.codec = std::make_unique<SessionCodec>(key);
  g.tokens = std::make_unique<TokenDirectory>(*g.store);
  QABOX_RETURN_IF_ERROR(g.tokens->reload());
  g.gate = std::make_unique<PreviewGate>(PreviewGateOptions{}, *g.codec, *g.tokens);
  auto claims =
      SessionCodec::make(SessionKind::kPreview, t.name, slug, Clock::now(), std::chrono::hours(1));
  g.cookie = std::string(kPreviewCookie) + "=" + g.codec->seal(claims);
  return g;
}

// What the gate costs one request that carries a valid preview cookie.
int timeGate(LoginGate& g, const std::string& host, long loops) {
  std::string cookie = "theme=dark; " + g.cookie + "; cart=7";
  std::string slug = host.substr(0, host.find('.'));
  qabox::AccessRequest q;
  q.slug = slug;
  q.host = host;
  q.method = "GET";
  q.target = "/orders?id=3";
  q.cookie = cookie;
  q.peerIpv4 = 0x7f000001;
  long allowed = 0;
  auto start = std::chrono::steady_clock::now();
  for (long i = 0; i < loops; ++i) {
    allowed += g.gate->decide(q).kind == qabox::AccessAnswer::Kind::kAllow ? 1 : 0;
  }
  auto ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start)
          .count();
  std::printf("gate %.0f ns per request (%ld of %ld allowed)\n",
              static_cast<double>(ns) / static_cast<double>(loops), allowed, loops);
  return allowed == loops ? 0 : 1;
}

struct Args {
  std::string listen = "127.0.0.1:0", backend, domain = "bench.local", slug = "bench", login;
  long gateLoops = 0;
  int threads = 2;
  std::string tlsCert, tlsKey;
};

// The arguments, or nullopt after saying what is wrong.
std::optional<Args> parseArgs(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string key = argv[i], value = argv[i + 1];
    if (key == "--listen") {
      a.listen = value;
    } else if (key == "--backend") {
      a.backend = value;
    } else if (key == "--domain") {
      a.domain = value;
    } else if (key == "--slug") {
      a.slug = value;
    } else if (key == "--login") {
      a.login = value;
    } else if (key == "--gate-loops") {
      a.gateLoops = std::atol(value.c_str());
    } else if (key == "--threads") {
      a.threads = std::atoi(value.c_str());
    } else if (key == "--tls-cert") {
      a.tlsCert = value;
    } else if (key == "--tls-key") {
      a.tlsKey = value;
    } else {
      std::fprintf(stderr, "unknown option %s\n", key.c_str());
      return std::nullopt;
    }
  }
  if (a.backend.empty()) {
    std::fprintf(stderr,
                 "usage: %s --backend ip:port [--listen host:port] [--domain d] "
                 "[--slug s] [--threads n] [--login DIR [--gate-loops N]] "
                 "[--tls-cert CRT --tls-key KEY]\n",
                 argv[0]);
    return std::nullopt;
  }
  return a;
}

}  // namespace

int main(int argc, char** argv) {
  auto args = parseArgs(argc, argv);
  if (!args) return 2;
  auto target = qabox::parseHostPort(args->backend, "--backend");
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
  route.slug = args->slug;
  route.state = qabox::EnvState::kReady;
  route.ip = target->host;
  route.port = target->port;
  route.generation = 1;
  route.login = !args->login.empty();
  table->set(route);

  qabox::RouterOptions options;
  std::optional<LoginGate> gate;
  if (!args->login.empty()) {
    auto g = loginGate(args->login, args->slug);
    if (!g.isOk()) {
      std::fprintf(stderr, "%s\n", g.status().toString().c_str());
      return 1;
    }
    gate = std::move(*g);
    options.gate = [&gate](const qabox::AccessRequest& q) { return gate->gate->decide(q); };
    if (args->gateLoops > 0) {
      return timeGate(*gate, args->slug + "." + args->domain, args->gateLoops);
    }
  }
  options.domain = args->domain;
  options.listen = args->listen;
  options.threads = args->threads;
  if (!args->tlsCert.empty()) {
    options.tlsListen = args->listen.substr(0, args->listen.rfind(':')) + ":0";
    options.tlsCert = args->tlsCert;
    options.tlsKey = args->tlsKey;
  }
  qabox::Router router(options, table);
  if (auto s = router.start(); !s.isOk()) {
    std::fprintf(stderr, "%s\n", s.toString().c_str());
    return 1;
  }
  if (gate) std::printf("cookie %s\n", gate->cookie.c_str());
  if (!args->tlsCert.empty()) std::printf("tls %u\n", static_cast<unsigned>(router.tlsPort()));
  std::printf("listening %u\n", static_cast<unsigned>(router.port()));
  std::fflush(stdout);

  int sig = 0;
  sigwait(&set, &sig);
  router.stop();
  return 0;
}
