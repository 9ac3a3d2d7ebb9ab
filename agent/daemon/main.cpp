// qaboxd: the per-host agent. Reads its config, recovers, then serves the
// gRPC API and the HTTP router until SIGTERM or SIGINT.
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <pwd.h>
#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/ranges.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <thread>

#include "core/config.h"
#include "core/duration.h"
#include "daemon/options.h"
#include "deploy/git.h"
#include "deploy/health.h"
#include "deploy/image_builder.h"
#include "lifecycle/manager.h"
#include "proxy/router.h"
#include "reaper/reaper.h"
#include "runtime/lxc_runtime.h"
#include "server/auth.h"
#include "server/service.h"
#include "server/unix_listener.h"
#include "store/paths.h"
#include "store/store.h"
#include "sys/idshift.h"
#include "sys/safe_path.h"
#include "sys/subid.h"
#include "sys/traverse.h"

namespace fs = std::filesystem;
using namespace qabox;

namespace {

int fatal(const std::string& message) {
  std::cerr << "qaboxd: " << message << "\n";
  return 1;
}

// The state dir is the agent's alone (the umask is 077), except the path
// down to the containers' files: an unprivileged container's root is host
// uid containers.id_base, and it must be able to enter state_dir, lxc/ and
// images/ to reach its rootfs and overlay (0711: enter, never list). The
// git mirrors (private source), the deploy logs (hook output), the database
// and the scratch space stay 0700.
Status prepareDirs(const Config& c) {
  std::error_code ec;
  // Privileged containers run as host root: nothing needs to be shared.
  const mode_t shared = c.containers.unprivileged ? 0711 : 0700;
  const std::vector<std::pair<std::string, mode_t>> dirs = {
      {c.stateDir, shared},
      {paths::lxcPath(c.stateDir), shared},
      {paths::imagesLxcPath(c.stateDir), shared},
      {c.stateDir + "/git", 0700},
      {paths::workDir(c.stateDir), 0700},
      {c.stateDir + "/logs", 0700},
      {paths::runDir(c.stateDir), 0700}};
  for (const auto& [dir, mode] : dirs) {
    fs::create_directories(dir, ec);
    if (ec) return failedPrecondition("state_dir: cannot create " + dir + ": " + ec.message());
    // Also what an earlier version left more open.
    if (::chmod(dir.c_str(), mode) != 0) {
      return failedPrecondition("state_dir: cannot chmod " + dir + ": " + std::strerror(errno));
    }
  }
  for (const char* suffix : {"", "-wal", "-shm"}) {
    ::chmod((paths::database(c.stateDir) + suffix).c_str(), 0600);
  }
  // Scratch from an earlier run is never needed again.
  for (const auto& e : fs::directory_iterator(paths::workDir(c.stateDir), ec)) {
    fs::remove_all(e.path(), ec);
  }
  return Status::ok();
}

// With Debian's uidmap installed, liblxc maps a container's ids through
// newuidmap and newgidmap, which map only what /etc/subuid and /etc/subgid
// give the caller: the agent's user (root) must hold its containers' ranges
// there. Reserving them also keeps useradd from handing them to a login
// user. Where shadow's files are not in use, nothing reads them: they are
// left alone.
Status reserveIdRanges(const Config& c) {
  const bool shadow = shadowMapsIds();
  if (!shadow && !fs::exists("/etc/subuid") && !fs::exists("/etc/subgid")) return Status::ok();
  std::vector<std::string> owners;
  if (const passwd* pw = getpwuid(geteuid())) owners.emplace_back(pw->pw_name);
  owners.push_back(std::to_string(geteuid()));
  auto reserve = [&](const IdRange& range) -> Status {
    for (const char* file : {"/etc/subuid", "/etc/subgid"}) {
      QABOX_RETURN_IF_ERROR(reserveSubIds(file, owners, {range}));
    }
    return Status::ok();
  };
  // The images' ids, then one range per environment when isolated.
  const IdRange own{c.containers.idBase,
                    kMappedIds * (c.containers.isolatedIds ? c.limits.maxEnvironments + 1ULL : 1)};
  if (c.containers.unprivileged) {
    if (Status s = reserve(own); !s.isOk()) {
      if (shadow) return s.withContext("containers.id_base");
      spdlog::warn("containers.id_base: {}", s.message());
    }
  }
  // Image versions (and their clones) keep the base they were built with.
  std::map<uint32_t, std::string> older;
  std::error_code ec;
  for (const auto& lxcpath : {paths::imagesLxcPath(c.stateDir), paths::lxcPath(c.stateDir)}) {
    for (const auto& e : fs::directory_iterator(lxcpath, ec)) {
      std::ifstream in(e.path() / "config");
      std::stringstream text;
      text << in.rdbuf();
      auto base = mappedRootOf(text.str());
      bool inOwn = c.containers.unprivileged && base && *base >= own.start &&
                   *base + uint64_t{kMappedIds} <= own.end();
      if (base && !inOwn) {
        older.emplace(*base, e.path().filename().string());
      }
    }
  }
  for (const auto& [base, name] : older) {
    if (Status s = reserve({base, kMappedIds}); !s.isOk()) {
      spdlog::warn(
          "{} maps its ids from {}: {}{}", name, base, s.message(),
          shadow ? " (it cannot start while newuidmap is in use: build its image again)" : "");
    }
  }
  return Status::ok();
}

// Rewritten at every start, so a changed allow_nested_userns (or a newer
// agent's list) applies from each container's next start.
Status writeSeccompProfile(const Config& c) {
  const std::string path = paths::seccompProfile(c.stateDir);
  const fs::path p(path);
  if (Status s = writeFileBeneath(p.parent_path(), p.filename().string(),
                                  seccompProfile(c.containers.allowNestedUserns), 0600);
      !s.isOk()) {
    return s.withContext("state_dir: writing the containers' seccomp profile");
  }
  return Status::ok();
}

// An unprivileged container's root (host uid containers.id_base) must be
// able to enter every directory down to lxc/ and images/; if it cannot,
// every deploy would fail at start, far from the cause. Checked on each
// start, so a changed id_base is checked too.
Status checkContainersCanReach(const Config& c, const std::string& path) {
  if (!c.containers.unprivileged) return Status::ok();
  const uid_t root = c.containers.idBase;
  QABOX_ASSIGN_OR_RETURN(auto blocked, firstUnsearchableDir(path, root, root));
  if (!blocked) return Status::ok();
  struct stat st {};
  std::string what;
  if (::stat(blocked->c_str(), &st) == 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
    what = " (mode " + std::string(mode) + ", owner uid " + std::to_string(st.st_uid) + ")";
  }
  return failedPrecondition(
      "state_dir " + c.stateDir + ": the containers' root, host uid " + std::to_string(root) +
      " (containers.id_base), cannot enter " + *blocked + what +
      ", so no unprivileged container could start; let others enter it (chmod o+x " + *blocked +
      ") or choose a state_dir whose parents others may enter");
}

Result<std::string> readPem(const std::string& key, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return invalidArgument(key + " " + path + ": cannot be read");
  std::ostringstream text;
  text << in.rdbuf();
  if (text.str().find("-----BEGIN ") == std::string::npos) {
    return invalidArgument(key + " " + path + ": not a PEM file");
  }
  return text.str();
}

// TCP listeners serve TLS only; with client_ca, clients need a certificate
// signed by it (and still a token: the certificate says which machine, the
// token which role).
Result<std::shared_ptr<grpc::ServerCredentials>> tlsCredentials(const Config::Api& api) {
  QABOX_ASSIGN_OR_RETURN(std::string cert, readPem("api.tls_cert", api.tlsCert));
  QABOX_ASSIGN_OR_RETURN(std::string key, readPem("api.tls_key", api.tlsKey));
  grpc::SslServerCredentialsOptions options(
      api.clientCa.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                           : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  options.pem_key_cert_pairs.push_back({key, cert});
  if (!api.clientCa.empty()) {
    QABOX_ASSIGN_OR_RETURN(options.pem_root_certs, readPem("api.client_ca", api.clientCa));
  }
  return grpc::SslServerCredentials(options);
}

// The audit log by events.max_age and events.max_rows, in batches that are
// each a short transaction of their own, so a backlog (an upgrade, a lowered
// limit) never holds the other writers up for long.
void pruneEvents(Store& store, const Config::Events& cfg) {
  constexpr uint32_t kBatch = 2000;
  constexpr int kMaxBatches = 500;
  if (cfg.maxAge.count() <= 0 && cfg.maxRows == 0) return;
  TimePoint olderThan = cfg.maxAge.count() > 0 ? Clock::now() - cfg.maxAge : TimePoint{};
  uint64_t total = 0;
  for (int i = 0; i < kMaxBatches; ++i) {
    auto n = store.pruneEvents(olderThan, cfg.maxRows, kBatch);
    if (!n) {
      spdlog::warn("pruning events: {}", n.status().toString());
      break;
    }
    total += *n;
    if (*n < kBatch) break;
  }
  if (total > 0) {
    spdlog::info("events: pruned {} rows (events.max_age {}, events.max_rows {})", total,
                 formatDuration(cfg.maxAge), cfg.maxRows);
  }
}

}  // namespace

int main(int argc, char** argv) {
  // What we were started with past stdio (a shell's or a test runner's
  // descriptors) is not for the containers either.
  ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
  CLI::App app{
      "qaboxd: the qabox agent. Gives every ticket an LXC environment with the merge "
      "result of its pull request, routed at http://<ticket>.<domain>."};
  std::string configPath;
  std::string stateDir, imagesDir, listen, routerListen, bridge, subnet, domain, logLevel;
  std::vector<std::string> repoFlags;
  bool printConfig = false;
  app.add_option("-c,--config", configPath,
                 "TOML config file; without it the embedded default config is used");
  app.add_option("--state-dir", stateDir, "overrides state_dir");
  app.add_option("--images-dir", imagesDir, "overrides images_dir");
  app.add_option("--listen", listen, "overrides api.listen (unix:///path or host:port)");
  app.add_option("--router-listen", routerListen, "overrides routing.listen (host:port)");
  app.add_option("--bridge", bridge, "overrides network.bridge");
  app.add_option("--subnet", subnet, "overrides network.subnet");
  app.add_option("--domain", domain, "overrides routing.domain");
  app.add_option("--log-level", logLevel, "trace, debug, info, warn, error or off");
  app.add_option("--repo", repoFlags, "adds NAME=URL to the repo allowlist (repeatable)");
  app.add_flag("--print-default-config", printConfig, "print the embedded default config and exit");
  app.footer(
      "Example:\n  qaboxd --config /etc/qabox/qaboxd.toml\n  qaboxd --print-default-config > "
      "/etc/qabox/qaboxd.toml");
  CLI11_PARSE(app, argc, argv);
  if (printConfig) {
    std::cout << defaultConfigToml();
    return 0;
  }

  auto loaded = configPath.empty() ? parseConfig(defaultConfigToml()) : loadConfig(configPath);
  if (!loaded) return fatal(loaded.status().message());
  Config config = *loaded;
  if (!stateDir.empty()) config.stateDir = stateDir;
  if (!imagesDir.empty()) config.imagesDir = imagesDir;
  if (!listen.empty()) config.api.listen = {listen};
  if (!routerListen.empty()) config.routing.listen = routerListen;
  if (!bridge.empty()) config.network.bridge = bridge;
  if (!subnet.empty()) config.network.subnet = subnet;
  if (!domain.empty()) config.routing.domain = domain;
  if (!logLevel.empty()) config.logLevel = logLevel;
  for (const auto& r : repoFlags) {
    auto eq = r.find('=');
    if (eq == std::string::npos) return fatal("--repo \"" + r + "\": use NAME=URL");
    config.repos.push_back({r.substr(0, eq), r.substr(eq + 1)});
  }
  if (auto s = validateConfig(config); !s.isOk()) return fatal(s.message());

  spdlog::set_default_logger(spdlog::stderr_color_mt("qaboxd"));
  spdlog::set_level(spdlog::level::from_str(config.logLevel));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");

  // Signals are taken by one thread with sigwait; every other thread,
  // including gRPC's, inherits the block.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  // What the agent writes is its own: the database, the mirrors, the logs.
  // What must be shared is opened up explicitly (prepareDirs, app files).
  ::umask(077);
  // Before anything is created: a state_dir the containers cannot reach
  // leaves nothing behind. Its parents only: the state dir itself is the
  // agent's, and prepareDirs gives it its mode (checked with lxc/ below).
  fs::path stateRoot = fs::path(config.stateDir).lexically_normal();
  if (!stateRoot.has_filename()) stateRoot = stateRoot.parent_path();  // "/var/lib/qabox/"
  const std::string stateParent = stateRoot.parent_path();
  if (auto s = checkContainersCanReach(config, stateParent); !s.isOk()) {
    return fatal(s.message());
  }
  if (auto s = prepareDirs(config); !s.isOk()) return fatal(s.message());
  if (auto s = reserveIdRanges(config); !s.isOk()) return fatal(s.message());
  if (auto s = writeSeccompProfile(config); !s.isOk()) return fatal(s.message());
  for (const auto& dir : {paths::lxcPath(config.stateDir), paths::imagesLxcPath(config.stateDir)}) {
    if (auto s = checkContainersCanReach(config, dir); !s.isOk()) return fatal(s.message());
  }
  auto store = openSqliteStore(paths::database(config.stateDir));
  if (!store) return fatal(store.status().message());

  RealProcessRunner runner;
  LxcRuntime runtime(paths::lxcPath(config.stateDir), defaultLxcHelperPath(), runner,
                     config.deploy.startTimeout);
  runtime.setSeccompProfile(paths::seccompProfile(config.stateDir));
  if (config.containers.unprivileged && config.containers.isolatedIds) {
    ProcessSpec check;
    check.argv = {defaultLxcHelperPath(), "idmap-check", paths::runDir(config.stateDir),
                  std::to_string(config.containers.idBase)};
    check.timeout = std::chrono::seconds(30);
    auto r = runner.run(check);
    if (!r || !r->ok()) {
      return fatal("containers.isolated_ids: clones of images cannot be mounted in " +
                   config.stateDir + " (" + (r ? lastLines(r->err, 2) : r.status().message()) +
                   "): idmapped mounts need Linux 5.19 or later and a state_dir on ext4, xfs "
                   "or btrfs; or set isolated_ids = false");
    }
    runtime.setIsolatedIds(config.containers.idBase, config.limits.maxEnvironments);
  }
  IpBridge bridgeImpl(runner);
  ImageBuilder images(config, **store, runner);
  GitRepos git(runner, config.stateDir, config.deploy.fetchTimeout);
  auto routes = std::make_shared<RouteTable>();
  EnvironmentManager envs(
      lifecycleOptions(config), **store, runtime, bridgeImpl, images, &git, *routes,
      [](const std::string& ip, uint16_t port, const std::string& path,
         std::chrono::milliseconds timeout) { return waitHealthy(ip, port, path, timeout); });

  spdlog::info("qaboxd {} starting: state_dir {}, bridge {} {}, routing *.{}", QABOX_VERSION,
               config.stateDir, config.network.bridge, config.network.subnet,
               config.routing.domain);
  auto started = std::chrono::steady_clock::now();
  if (auto s = envs.recover(); !s.isOk()) return fatal("recovery failed: " + s.toString());
  spdlog::info("recovered in {} ms", std::chrono::duration_cast<std::chrono::milliseconds>(
                                         std::chrono::steady_clock::now() - started)
                                         .count());

  RouterOptions ro;
  ro.domain = config.routing.domain;
  ro.listen = config.routing.listen;
  ro.tlsListen = config.routing.tlsListen;
  ro.tlsCert = config.routing.tlsCert;
  ro.tlsKey = config.routing.tlsKey;
  ro.headerTimeout = config.routing.headerTimeout;
  ro.idleTimeout = config.routing.idleTimeout;
  ro.backendTimeout = config.routing.backendTimeout;
  ro.wakeTimeout = config.reaper.wakeTimeout;
  // A request for a sleeping environment wakes it; the router holds it (and
  // any others for it) until the app answers its health check.
  std::atomic<int> waking{0};
  ro.wake = [&envs, &waking](const std::string& slug, std::function<void(Status)> done) {
    ++waking;
    std::thread([&envs, &waking, slug, done = std::move(done)] {
      done(envs.wakeSlug(slug));
      --waking;
    }).detach();
  };
  Router router(ro, routes);
  if (auto s = router.start(); !s.isOk()) return fatal("routing.listen: " + s.message());
  spdlog::info("router listening on {} (port {})", config.routing.listen, router.port());

  HostInfo host;
  std::atomic<uint64_t> routed{0};
  host.requestsRouted = [&routed] { return routed.load(); };
  LocalPeers localPeers;
  std::optional<gid_t> socketGroup = lookupGroup(config.api.socketGroup);
  if (!socketGroup) {
    spdlog::warn(
        "api.socket_group {}: no such group, so only root may use the unix socket "
        "(groupadd --system {} to let its members act as ops)",
        config.api.socketGroup, config.api.socketGroup);
  }
  DenialLimiter::Options denials;
  denials.perPeerBurst = config.events.refusedBurst;
  denials.perPeerRefill = config.events.refusedEvery;
  Authorizer auth(
      **store, localPeers, socketGroup, [] { return Clock::now(); }, denials);
  QaboxService service(config, envs, images, **store, auth, host);
  Reaper reaper(reaperOptions(config), **store, &git,
                std::bind_front(&EnvironmentManager::reclaim, &envs));
  service.setReaper(&reaper);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.SetMaxReceiveMessageSize(static_cast<int>(config.api.maxMessageBytes));
  std::vector<std::unique_ptr<UnixListener>> unixListeners;
  std::shared_ptr<grpc::ServerCredentials> tls;
  for (const auto& l : config.api.listen) {
    if (l.rfind("unix://", 0) == 0) {
      auto listener = std::make_unique<UnixListener>(l.substr(7), localPeers);
      if (auto s = listener->bind(socketGroup); !s.isOk()) return fatal(s.message());
      unixListeners.push_back(std::move(listener));
      continue;
    }
    if (!tls) {
      auto creds = tlsCredentials(config.api);
      if (!creds) return fatal(creds.status().message());
      tls = *creds;
    }
    builder.AddListeningPort(l, tls);
  }
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(std::make_unique<AuthInterceptorFactory>(auth));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server) return fatal("api.listen: cannot listen on every address given (in use?)");
  for (auto& l : unixListeners) l->start(server.get());
  spdlog::info("API listening on {}{}", fmt::join(config.api.listen, ", "),
               config.api.clientCa.empty() ? "" : " (TCP: client certificates required)");

  // Router use counters reach SQLite at intervals and on shutdown.
  std::mutex flushMu;
  std::condition_variable flushCv;
  bool stopping = false;
  auto flush = [&] {
    auto stats = router.takeStats();
    for (const auto& s : stats) routed += s.requests;
    if (!stats.empty()) {
      if (auto s = (*store)->recordAccess(stats); !s.isOk()) {
        spdlog::warn("recording router use: {}", s.toString());
      }
    }
  };
  pruneEvents(**store, config.events);
  std::thread flusher([&] {
    std::unique_lock l(flushMu);
    auto lastPrune = std::chrono::steady_clock::now();
    while (!flushCv.wait_for(l, config.routing.statsFlushInterval, [&] { return stopping; })) {
      flush();
      if (std::chrono::steady_clock::now() - lastPrune >= std::chrono::minutes(1)) {
        lastPrune = std::chrono::steady_clock::now();
        l.unlock();
        pruneEvents(**store, config.events);
        l.lock();
      }
    }
  });

  reaper.start();
  // Idle environments go to sleep (reaper.sleep_after; 0 turns it off).
  std::thread sleeper;
  if (config.reaper.sleepAfter.count() > 0) {
    auto every = std::clamp<std::chrono::milliseconds>(
        config.reaper.sleepAfter / 4, std::chrono::seconds(1), std::chrono::seconds(60));
    sleeper = std::thread([&, every] {
      std::unique_lock l(flushMu);
      while (!flushCv.wait_for(l, every, [&] { return stopping; })) {
        l.unlock();
        auto slept = envs.sleepIdle(Clock::now());
        if (!slept) spdlog::warn("sleeping idle environments: {}", slept.status().toString());
        for (const auto& t : slept ? *slept : std::vector<std::string>{}) {
          spdlog::info("{} is asleep: idle for {}", t, formatDuration(config.reaper.sleepAfter));
        }
        l.lock();
      }
    });
  }

  // Running environments' own layers, against limits.max_disk and max_files.
  std::thread diskWatcher([&] {
    std::unique_lock l(flushMu);
    while (!flushCv.wait_for(l, config.limits.diskCheckInterval, [&] { return stopping; })) {
      l.unlock();
      auto failed = envs.enforceDiskLimits();
      if (!failed) spdlog::warn("checking disk limits: {}", failed.status().toString());
      l.lock();
    }
  });

  int sig = 0;
  sigwait(&signals, &sig);
  spdlog::info("signal {}: finishing in-flight operations, then exiting", sig);
  reaper.stop();
  envs.beginShutdown();
  for (auto& l : unixListeners) l->stop();
  // In-flight deploys run to their end (or the journal rolls them back on
  // the next start); containers keep running across agent restarts.
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(60));
  server->Wait();
  {
    std::lock_guard l(flushMu);
    stopping = true;
  }
  flushCv.notify_all();
  flusher.join();
  if (sleeper.joinable()) sleeper.join();
  diskWatcher.join();
  flush();
  router.stop();
  while (waking > 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  spdlog::info("stopped");
  return 0;
}
