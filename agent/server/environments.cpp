#include "server/environments.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <set>
#include <thread>

#include "core/redact.h"
#include "deploy/manifest.h"
#include "server/validate.h"
#include "store/ipam.h"
#include "store/paths.h"
#include "sys/capped_log.h"
#include "sys/disk_usage.h"
#include "sys/idshift.h"
#include "sys/safe_path.h"

namespace qabox {

Result<ResourceLimits> effectiveLimits(const ResourceLimits& asked, const ResourceLimits& image,
                                       std::string_view imageName, const Config::Limits& max) {
  ResourceLimits out;
  auto above = [&](bool fromDeploy, std::string_view field, const std::string& value,
                   std::string_view maxKey, const std::string& maxValue) -> Status {
    std::string what = std::string(field) + " \"" + value + "\": above the agent's limits." +
                       std::string(maxKey) + " (" + maxValue + ")";
    if (fromDeploy) return invalidArgument("limits." + what);
    return failedPrecondition("image " + std::string(imageName) + ": limits." + what +
                              "; lower it in its image.toml or raise the maximum");
  };

  if (!asked.memory.empty() && !parseMemorySize(asked.memory)) {
    return invalidArgument("limits.memory \"" + asked.memory.substr(0, 40) +
                           "\": must be a size such as 256M, 1G or 524288K");
  }
  bool askedMemory = !asked.memory.empty();
  out.memory = askedMemory ? asked.memory : !image.memory.empty() ? image.memory : max.maxMemory;
  if (!out.memory.empty() && !max.maxMemory.empty() &&
      *parseMemorySize(out.memory) > *parseMemorySize(max.maxMemory)) {
    return above(askedMemory, "memory", out.memory, "max_memory", max.maxMemory);
  }

  auto pick = [&](std::string_view field, uint32_t askedN, uint32_t imageN, uint32_t maxN,
                  std::string_view maxKey, uint32_t& dst) -> Status {
    dst = askedN ? askedN : imageN ? imageN : maxN;
    if (maxN && dst > maxN) {
      return above(askedN != 0, field, std::to_string(dst), maxKey, std::to_string(maxN));
    }
    return Status::ok();
  };
  QABOX_RETURN_IF_ERROR(pick("cpus", asked.cpus, image.cpus, max.maxCpus, "max_cpus", out.cpus));
  QABOX_RETURN_IF_ERROR(pick("pids", asked.pids, image.pids, max.maxPids, "max_pids", out.pids));
  return out;
}
namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

namespace {

constexpr const char* kPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

milliseconds since(steady_clock::time_point t) {
  return std::chrono::duration_cast<milliseconds>(steady_clock::now() - t);
}

bool sameSource(const DeploySpec& a, const DeploySpec& b) {
  return a.image == b.image && a.repo == b.repo && a.sourceBranch == b.sourceBranch &&
         a.targetBranch == b.targetBranch;
}

// Measures a deploy's container all along its hooks: a breach stops the
// container at once (which ends the hook) instead of at the hook's end.
class DiskWatch {
 public:
  DiskWatch(std::function<std::string()> check, std::function<void()> onBreach)
      : check_(std::move(check)), onBreach_(std::move(onBreach)) {}
  ~DiskWatch() { stop(); }

  void start(milliseconds every) {
    thread_ = std::thread([this, every] {
      std::unique_lock l(mu_);
      milliseconds wait = every;
      while (!cv_.wait_for(l, wait, [&] { return stopping_; })) {
        l.unlock();
        auto began = steady_clock::now();
        std::string breach = check_();
        // A big tree costs time to walk: at most a third of it goes to that.
        wait = std::max(every, 2 * since(began));
        l.lock();
        if (!breach.empty()) {
          breach_ = breach;
          l.unlock();
          onBreach_();
          return;
        }
      }
    });
  }
  void stop() {
    {
      std::lock_guard l(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  // Measures now, on the caller's thread: the last word before a switch.
  std::string checkNow() {
    std::string breach = check_();
    std::lock_guard l(mu_);
    if (!breach.empty() && breach_.empty()) breach_ = breach;
    return breach_;
  }
  std::string breach() {
    std::lock_guard l(mu_);
    return breach_;
  }

 private:
  std::function<std::string()> check_;
  std::function<void()> onBreach_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::string breach_;
};

std::string describeSource(const DeploySpec& s) {
  if (s.repo.empty()) return "image " + s.image;
  return s.repo + " " + s.sourceBranch + " into " + s.targetBranch + " on image " + s.image;
}

}  // namespace

std::string shellQuote(std::string_view value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

EnvironmentManager::EnvironmentManager(const Config& config, Store& store,
                                       ContainerRuntime& runtime, Bridge& bridge,
                                       ImageBuilder& images, GitRepos* git, RouteTable& routes,
                                       HealthCheck health)
    : config_(config),
      store_(store),
      runtime_(runtime),
      bridge_(bridge),
      images_(images),
      git_(git),
      routes_(routes),
      health_(std::move(health)) {}

std::shared_ptr<std::mutex> EnvironmentManager::ticketLock(const std::string& slug) {
  std::lock_guard l(locksMu_);
  auto& m = locks_[slug];
  if (!m) m = std::make_shared<std::mutex>();
  return m;
}

void EnvironmentManager::event(const std::string& ticket, const std::string& action,
                               const std::string& actor, const std::string& outcome,
                               const std::string& detail) {
  auto s = store_.addEvent({0, Clock::now(), ticket, action, actor, outcome, detail});
  if (!s.isOk()) spdlog::warn("recording event {} {}: {}", action, ticket, s.toString());
}

void EnvironmentManager::publishRoute(const Environment& env) {
  Route r;
  r.slug = env.slug;
  r.state = env.state;
  r.ip = env.ip;
  r.port = static_cast<uint16_t>(env.port);
  r.message = env.message;
  r.generation = generation_++;
  routes_.set(std::move(r));
}

void EnvironmentManager::drain(const std::string& ip, uint16_t port) {
  // Requests the router already sent to a container finish before it goes;
  // new ones go to the new route (or get the 404 page).
  auto deadline = steady_clock::now() + std::chrono::seconds(10);
  while (routes_.inFlight(ip, port) > 0 && steady_clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(5));
  }
}

std::string EnvironmentManager::nextContainerName(const std::string& slug,
                                                  const std::string& current) const {
  // Redeploys build beside the serving container. '_' never appears in a
  // slug, so these names can not collide with another ticket's.
  std::string base = containerNameFor(slug);
  if (current == base) return base + "_1";
  auto us = current.rfind('_');
  unsigned n = 0;
  if (us != std::string::npos) n = static_cast<unsigned>(std::stoul(current.substr(us + 1)));
  return base + "_" + std::to_string(n + 1);
}

Status EnvironmentManager::validate(const DeployInput& in, Ticket& ticket,
                                    std::string& image) const {
  QABOX_RETURN_IF_ERROR(checkDeployInput(in, config_));
  QABOX_ASSIGN_OR_RETURN(ticket, parseTicket(in.ticket));
  image = in.spec.image.empty() ? config_.defaultImage : in.spec.image;
  return Status::ok();
}

Result<Environment> EnvironmentManager::deploy(const DeployInput& in, const ProgressFn& progress) {
  if (stopping_) return unavailable("the agent is shutting down; try again when it is back");
  Ticket ticket;
  std::string image;
  QABOX_RETURN_IF_ERROR(validate(in, ticket, image));
  auto lock = ticketLock(ticket.slug);
  std::lock_guard guard(*lock);
  auto result = deployLocked(ticket, in, image, progress);
  return result;
}

Result<Environment> EnvironmentManager::deployLocked(const Ticket& t, const DeployInput& in,
                                                     const std::string& image,
                                                     const ProgressFn& progress) {
  auto phaseStart = steady_clock::now();
  // Hooks get the secrets and may print them: whatever the deploy keeps or
  // streams from here on passes through this first.
  Redactor redactor(in.secrets);
  auto phase = [&](const std::string& name, const std::string& detail) {
    if (progress) progress({name, redactor.redact(detail), since(phaseStart)});
    phaseStart = steady_clock::now();
  };

  DeploySpec spec = in.spec;
  spec.image = image;
  spec.secretKeys.clear();
  for (const auto& [k, v] : in.secrets) spec.secretKeys.push_back(k);

  QABOX_ASSIGN_OR_RETURN(auto currentImage, store_.currentImage(image));
  if (!currentImage) {
    return failedPrecondition("image " + image + ": not built yet (run: qabox image build " +
                              image + ")");
  }
  QABOX_ASSIGN_OR_RETURN(auto imageManifest, images_.manifest(image));
  QABOX_ASSIGN_OR_RETURN(
      const ResourceLimits limits,
      effectiveLimits(spec.limits, {imageManifest.memory, imageManifest.cpus, imageManifest.pids},
                      image, config_.limits));
  QABOX_ASSIGN_OR_RETURN(auto existing, store_.getEnvironment(t.slug));
  if (existing && existing->state == EnvState::kBroken) {
    return failedPrecondition("ticket " + t.name + ": BROKEN (" + existing->message +
                              "); delete it first (qabox delete " + t.name + ")");
  }
  if (existing && existing->state == EnvState::kSleeping) {
    // A redeploy builds beside the serving container, which must be awake
    // to keep serving if the new one fails.
    QABOX_ASSIGN_OR_RETURN(existing, wakeLocked(*existing, in.actor));
    phase("wake", existing->container + " awake");
  }
  if (existing && !sameSource(existing->spec, spec) && !in.force) {
    return alreadyExists("ticket " + t.name + ": already deployed from " +
                         describeSource(existing->spec) +
                         "; delete it first, or deploy again with --force to replace it");
  }

  // The merge result decides whether there is anything to do.
  const RepoConfig* repo = spec.repo.empty() ? nullptr : config_.findRepo(spec.repo);
  Merge merge;
  AppManifest app = imageManifest.defaults;
  if (repo) {
    if (!git_) return unimplemented("deploying repos is not enabled on this agent");
    auto m = git_->merge(*repo, spec.sourceBranch, spec.targetBranch);
    if (!m) return m.status();
    merge = *m;
    phase("merge",
          (merge.fastForward ? "fast-forward to " : "merge commit ") + merge.commit.substr(0, 12));
    auto manifestText = git_->readFile(*repo, merge.commit, "qabox.toml");
    if (manifestText) {
      auto parsed = parseAppManifest(*manifestText);
      if (!parsed)
        return parsed.status().withContext("qabox.toml at " + merge.commit.substr(0, 12));
      app = mergeManifests(imageManifest, *parsed);
    } else if (manifestText.status().code() != Code::kNotFound) {
      return manifestText.status();
    }
  }
  if (existing && !in.force && existing->state == EnvState::kReady && existing->spec == spec &&
      existing->commit == merge.commit && in.secrets.empty()) {
    phase("ready", "unchanged: " + (merge.commit.empty() ? image : merge.commit.substr(0, 12)));
    return *existing;
  }

  const bool redeploy = existing.has_value();
  const std::string container =
      redeploy ? nextContainerName(t.slug, existing->container) : containerNameFor(t.slug);
  std::string ip;
  int64_t opId = 0;
  Environment env;
  if (redeploy) {
    env = *existing;
  } else {
    env.ticket = t.name;
    env.slug = t.slug;
    env.createdAt = Clock::now();
  }
  // Intent first: the lease, the journal entry and (for a new ticket) the
  // row are one transaction, so a crash leaves either all or nothing.
  Environment row = env;
  QABOX_RETURN_IF_ERROR(store_.transaction([&]() -> Status {
    if (!redeploy) {
      QABOX_ASSIGN_OR_RETURN(uint32_t count, store_.countEnvironments());
      if (count >= config_.limits.maxEnvironments) {
        return resourceExhausted("limits.max_environments: this host already runs " +
                                 std::to_string(count) +
                                 " environments (the maximum); delete "
                                 "some or raise the limit");
      }
    }
    QABOX_ASSIGN_OR_RETURN(ip, store_.leaseAddress(config_.network.subnet, container));
    Operation op{
        0,  t.slug, redeploy ? "redeploy" : "create", container, ip, Clock::now(), std::nullopt,
        "", ""};
    QABOX_ASSIGN_OR_RETURN(opId, store_.beginOperation(op));
    if (redeploy) {
      // The row keeps naming the serving container until the switch.
      row.state = EnvState::kDeploying;
    } else {
      row.state = EnvState::kCreating;
      row.container = container;
      row.ip = ip;
      row.spec = spec;
      row.imageVersion = currentImage->version;
      row.port = app.port.value_or(80);
      row.limits = limits;
    }
    row.updatedAt = Clock::now();
    return store_.putEnvironment(row);
  }));
  if (!redeploy) {
    env = row;
    publishRoute(env);
  }
  event(t.name, redeploy ? "redeploy" : "deploy", in.actor, "started", describeSource(spec));

  QABOX_ASSIGN_OR_RETURN(auto subnet, parseSubnet(config_.network.subnet));
  std::string failedStep;
  std::string deployLog = paths::deployLog(config_.stateDir, t.slug);
  std::error_code ec;
  fs::create_directories(fs::path(deployLog).parent_path(), ec);
  const uint64_t logMax = parseMemorySize(config_.deploy.logMax).value_or(8u << 20);
  CappedLog hookLog;
  bool logFailed = false;
  if (Status ls = hookLog.open(deployLog, logMax); !ls.isOk()) {
    logFailed = true;
    spdlog::warn("deploy {}: {}", t.name, ls.toString());
  }
  auto logHook = [&](std::string_view text) {
    if (logFailed || text.empty()) return;
    if (Status ls = hookLog.write(text); !ls.isOk()) {
      // The deploy goes on; what it says about the disk comes from its steps.
      logFailed = true;
      spdlog::warn("deploy {}: {}", t.name, ls.toString());
    }
  };
  DiskWatch watch([&] { return diskBreach(container); },
                  [&] {
                    spdlog::warn("deploy {}: {}: stopping {}", t.name, watch.breach(), container);
                    (void)runtime_.stop(container);
                  });

  std::map<std::string, std::string> appEnv = spec.env;
  appEnv["QABOX_TICKET"] = t.name;
  appEnv["QABOX_URL"] = config_.urlFor(t.slug);
  appEnv["QABOX_COMMIT"] = merge.commit;
  appEnv["QABOX_SOURCE_BRANCH"] = spec.sourceBranch;
  appEnv["QABOX_TARGET_BRANCH"] = spec.targetBranch;
  // The image's init keeps app.log under the same cap as deploy.log.
  appEnv["QABOX_LOG_MAX"] = std::to_string(logMax);
  for (const auto& [k, v] : in.secrets) appEnv[k] = v;
  const uint16_t port = static_cast<uint16_t>(app.port.value_or(80));
  const bool hasHooks = !app.build.empty() || !app.migrate.empty() || !app.seed.empty();

  auto steps = [&]() -> Status {
    failedStep = "clone";
    NetSpec net{config_.network.bridge, cidrOf(subnet, ip), gatewayOf(subnet)};
    QABOX_RETURN_IF_ERROR(runtime_.clone(paths::imagesLxcPath(config_.stateDir),
                                         paths::imageContainer(image, currentImage->version),
                                         container, net, limits));
    phase("clone", container + " from " + image + " v" + std::to_string(currentImage->version) +
                       " at " + ip);
    QABOX_RETURN_IF_ERROR(bridge_.forgetNeighbor(config_.network.bridge, ip));
    watch.start(std::min<milliseconds>(config_.limits.diskCheckInterval, std::chrono::seconds(1)));

    std::string upper = runtime_.upperDir(container);
    if (repo) {
      failedStep = "export";
      std::string appDir = upper + paths::kAppDir;
      // Every host-side step into the container's files resolves beneath
      // its upper dir and follows no link (sys/safe_path.h).
      QABOX_RETURN_IF_ERROR(makeDirsBeneath(upper, paths::kAppDir, 0755).status());
      // Opaque: the image's own /srv/app must not show through the app. An
      // overlay mounted in a user namespace (unprivileged) reads the user.
      // xattr, one mounted by host root the trusted. one.
      for (const char* attr : {"trusted.overlay.opaque", "user.overlay.opaque"}) {
        QABOX_RETURN_IF_ERROR(setDirXattrBeneath(upper, paths::kAppDir, attr, "y"));
      }
      QABOX_RETURN_IF_ERROR(git_->exportTree(*repo, merge.commit, appDir));
      if (std::string b = watch.checkNow(); !b.empty()) return resourceExhausted(b);
      phase("export", merge.commit.substr(0, 12) + " into " + paths::kAppDir);
    }
    std::string envFile;
    for (const auto& [k, v] : appEnv) envFile += k + "=" + shellQuote(v) + "\n";
    // Owner-only from its first byte: app.env holds the secrets.
    QABOX_RETURN_IF_ERROR(writeFileBeneath(upper, paths::kAppEnvFile, envFile, 0600));
    // Without hooks the app may start with the container; with hooks the
    // start command waits beside its final name until they have run.
    std::string runFile = "/etc/qabox/app.run";
    QABOX_RETURN_IF_ERROR(
        writeFileBeneath(upper, hasHooks ? runFile + ".pending" : runFile, app.start + "\n", 0740));
    if (auto root = runtime_.mappedRoot(container)) {
      // Unprivileged: what the agent placed belongs to root inside.
      QABOX_RETURN_IF_ERROR(shiftOwnership(upper, *root));
    }

    failedStep = "start";
    QABOX_RETURN_IF_ERROR(runtime_.start(container));
    phase("start", container + " running");

    std::map<std::string, std::string> hookEnv = appEnv;
    hookEnv["PATH"] = kPath;
    hookEnv["HOME"] = "/root";
    for (const auto& [name, command] : std::vector<std::pair<std::string, std::string>>{
             {"build", app.build}, {"migrate", app.migrate}, {"seed", app.seed}}) {
      if (command.empty()) continue;
      failedStep = name;
      logHook(redactor.redact("==> " + name + ": " + command + "\n"));
      ExecSpec ex;
      ex.argv = {"/bin/sh", "-c", command};
      ex.env = hookEnv;
      ex.cwd = paths::kAppDir;
      ex.timeout = config_.deploy.hookTimeout;
      // One redactor a stream: a value cut between two pieces of stdout
      // must not escape because a piece of stderr came in between.
      Redactor out(in.secrets), err(in.secrets);
      ex.onOutput = [&](bool isErr, std::string_view data) {
        logHook((isErr ? err : out).feed(data));
      };
      auto r = runtime_.exec(container, ex);
      logHook(out.finish());
      logHook(err.finish());
      if (std::string b = watch.checkNow(); !b.empty()) return resourceExhausted(b);
      if (!r) return r.status();
      if (!r->ok()) {
        std::string tail = lastLines(r->out + r->err, 10);
        if (r->timedOut) {
          return deadlineExceeded("hook " + name + " did not finish within " +
                                  std::to_string(config_.deploy.hookTimeout.count() / 1000) +
                                  "s; last output:\n" + tail);
        }
        return failedPrecondition("hook " + name + " failed with exit code " +
                                  std::to_string(r->exitCode) + "; last output:\n" + tail);
      }
      phase(name, command);
    }
    if (hasHooks) {
      failedStep = "start";
      ExecSpec ex;
      ex.argv = {"/bin/mv", "/etc/qabox/app.run.pending", "/etc/qabox/app.run"};
      ex.env = {{"PATH", kPath}};
      ex.timeout = std::chrono::seconds(30);
      QABOX_ASSIGN_OR_RETURN(auto r, runtime_.exec(container, ex));
      if (!r.ok()) return internalError("starting the app failed: " + lastLines(r.err, 3));
      phase("app", app.start);
    }

    watch.stop();
    if (std::string b = watch.checkNow(); !b.empty()) return resourceExhausted(b);

    failedStep = "health";
    QABOX_RETURN_IF_ERROR(
        health_(ip, port, app.health.empty() ? "/" : app.health, config_.deploy.healthTimeout));
    phase("health", "GET http://" + ip + ":" + std::to_string(port) + app.health);
    return Status::ok();
  };

  Status s = steps();
  watch.stop();
  hookLog.close();

  // Switch: the row and the route point at the new container, then the old
  // one goes. A switch the store refuses (its disk is full) fails the
  // deploy like any step.
  std::string oldContainer = redeploy ? existing->container : "";
  Environment ready = env;
  if (s.isOk()) {
    ready.state = EnvState::kReady;
    ready.container = container;
    ready.ip = ip;
    ready.spec = spec;
    ready.commit = merge.commit;
    ready.sourceCommit = merge.sourceHead;
    ready.targetCommit = merge.targetHead;
    ready.imageVersion = currentImage->version;
    ready.port = port;
    ready.limits = limits;
    ready.message.clear();
    ready.deployedAt = Clock::now();
    ready.updatedAt = ready.deployedAt;
    if (spec.ttl) ready.expiresAt = ready.deployedAt + *spec.ttl;
    s = store_.transaction([&]() -> Status {
      QABOX_RETURN_IF_ERROR(store_.putEnvironment(ready));
      return store_.finishOperation(opId, "ok", merge.commit);
    });
    if (!s.isOk()) failedStep = "switch";
  }

  if (!s.isOk()) {
    s = Status(s.code(), redactor.redact(s.message()));
    const std::string breach = watch.breach();
    // A full disk is the host's emergency, not something this environment
    // may keep for inspection: what the deploy wrote goes at once, so the
    // other environments (and the agent's own writes) have room again.
    bool full = false;
    if (auto space = fsSpace(config_.stateDir); space && nearlyFull(*space)) {
      full = true;
      s = resourceExhausted(s.message() + "; the disk of the state dir " + config_.stateDir +
                            " is full (" + formatBytes(space->available) + " left of " +
                            formatBytes(space->total) + ")");
    }
    std::string message = failedStep + " failed: " + s.message();
    spdlog::warn("deploy {}: {}", t.name, message);
    if (redeploy) {
      // The old container keeps serving: drop the new one (first: its
      // writes may be what fills the disk), keep the row.
      Status d = runtime_.destroy(container);
      if (d.isOk()) (void)store_.releaseAddressesOf(container);
      env.message = "redeploy failed: " + message;
      env.updatedAt = Clock::now();
      Status w = store_.transaction([&]() -> Status {
        QABOX_RETURN_IF_ERROR(store_.putEnvironment(env));
        return store_.finishOperation(opId, "error", message);
      });
      if (!w.isOk()) spdlog::error("redeploy {}: recording the failure: {}", t.name, w.toString());
      publishRoute(env);
    } else {
      // Kept for inspection until deleted, holding its lease: a FAILED row.
      bool keep = failedStep != "clone" && !full;
      if (keep) {
        // Over its disk limit: stopped, so it cannot write more.
        if (!breach.empty()) (void)runtime_.stop(container);
        env.state = EnvState::kFailed;
        env.message = message;
        env.updatedAt = Clock::now();
        Status w = store_.transaction([&]() -> Status {
          QABOX_RETURN_IF_ERROR(store_.putEnvironment(env));
          return store_.finishOperation(opId, "error", message);
        });
        if (w.isOk()) {
          publishRoute(env);
        } else {
          spdlog::warn("deploy {}: recording the failure: {}; rolling it back instead", t.name,
                       w.toString());
          keep = false;
        }
      }
      if (!keep) {
        // Rolled back whole: no container, no lease, no row.
        (void)runtime_.destroy(container);
        Status w = store_.transaction([&]() -> Status {
          QABOX_RETURN_IF_ERROR(store_.releaseAddressesOf(container));
          QABOX_RETURN_IF_ERROR(store_.deleteEnvironment(t.slug));
          return store_.finishOperation(opId, "rolled-back", message);
        });
        if (!w.isOk()) {
          // The journal still says create: the next start rolls it back.
          spdlog::error("deploy {}: rolling back: {}", t.name, w.toString());
        }
        routes_.remove(t.slug);
        std::error_code lec;
        if (failedStep != "clone") fs::remove_all(paths::logDir(config_.stateDir, t.slug), lec);
        event(t.name, "deploy", in.actor, "error", message);
        if (failedStep == "clone" && !full) return s;
        if (progress) progress({"failed", message + " (rolled back)", milliseconds(0)});
        return Status(s.code(), message + " (rolled back: nothing of it is left)");
      }
    }
    event(t.name, redeploy ? "redeploy" : "deploy", in.actor, "error", message);
    if (progress) progress({"failed", message, milliseconds(0)});
    return env;
  }
  env = ready;
  publishRoute(env);
  if (redeploy && oldContainer != container) {
    drain(existing->ip, static_cast<uint16_t>(existing->port));
    Status d = runtime_.destroy(oldContainer);
    if (d.isOk()) {
      (void)store_.releaseAddressesOf(oldContainer);
    } else {
      // Recovery's orphan sweep retries it.
      spdlog::warn("redeploy {}: destroying {}: {}", t.name, oldContainer, d.toString());
    }
  }
  event(t.name, redeploy ? "redeploy" : "deploy", in.actor, "ok",
        describeSource(spec) + (merge.commit.empty() ? "" : " at " + merge.commit.substr(0, 12)));
  phase("ready", config_.urlFor(t.slug));
  return env;
}

Result<Environment> EnvironmentManager::get(const std::string& ticket) {
  QABOX_ASSIGN_OR_RETURN(Ticket t, parseTicket(ticket));
  QABOX_ASSIGN_OR_RETURN(auto env, store_.getEnvironment(t.slug));
  if (!env) return notFound("ticket " + t.name + ": no environment (qabox list shows them all)");
  return *env;
}

Result<std::vector<Environment>> EnvironmentManager::list() { return store_.listEnvironments(); }

Status EnvironmentManager::remove(const std::string& ticket, const std::string& actor,
                                  const std::string& why,
                                  const std::function<Status(const Environment&)>& stillDue) {
  if (stopping_) return unavailable("the agent is shutting down; try again when it is back");
  QABOX_ASSIGN_OR_RETURN(Ticket t, parseTicket(ticket));
  auto lock = ticketLock(t.slug);
  std::lock_guard guard(*lock);
  QABOX_ASSIGN_OR_RETURN(auto env, store_.getEnvironment(t.slug));
  if (!env) return notFound("ticket " + t.name + ": no environment (qabox list shows them all)");
  if (stillDue) QABOX_RETURN_IF_ERROR(stillDue(*env));
  return removeLocked(*env, actor, why);
}

Status EnvironmentManager::removeLocked(const Environment& env, const std::string& actor,
                                        const std::string& why) {
  QABOX_ASSIGN_OR_RETURN(int64_t opId,
                         store_.beginOperation({0, env.slug, "delete", env.container, env.ip,
                                                Clock::now(), std::nullopt, "", why}));
  Environment row = env;
  row.state = EnvState::kDeleting;
  row.updatedAt = Clock::now();
  QABOX_RETURN_IF_ERROR(store_.putEnvironment(row));
  // The route goes first: no request may reach a container being destroyed.
  routes_.remove(env.slug);
  drain(env.ip, static_cast<uint16_t>(env.port));
  Status s = runtime_.destroy(env.container);
  if (!s.isOk()) {
    // The container is still there and could not be removed: out of
    // service until a delete gets through (each delete tries again).
    row.state = EnvState::kBroken;
    row.message =
        "delete failed: " + s.message() + " (qabox delete " + env.ticket + " tries again)";
    (void)store_.putEnvironment(row);
    (void)store_.finishOperation(opId, "error", s.message());
    publishRoute(row);
    event(env.ticket, "delete", actor, "error", s.message());
    return s;
  }
  QABOX_RETURN_IF_ERROR(store_.transaction([&]() -> Status {
    QABOX_RETURN_IF_ERROR(store_.releaseAddressesOf(env.container));
    QABOX_RETURN_IF_ERROR(store_.deleteEnvironment(env.slug));
    return store_.finishOperation(opId, "ok", "");
  }));
  std::error_code ec;
  fs::remove_all(paths::logDir(config_.stateDir, env.slug), ec);
  event(env.ticket, "delete", actor, "ok", why.empty() ? env.container : why);
  return Status::ok();
}

Result<Environment> EnvironmentManager::setPinned(const std::string& ticket, bool pinned,
                                                  const std::string& actor) {
  QABOX_ASSIGN_OR_RETURN(Ticket t, parseTicket(ticket));
  auto lock = ticketLock(t.slug);
  std::lock_guard guard(*lock);
  QABOX_ASSIGN_OR_RETURN(auto env, store_.getEnvironment(t.slug));
  if (!env) return notFound("ticket " + t.name + ": no environment (qabox list shows them all)");
  env->pinned = pinned;
  env->updatedAt = Clock::now();
  QABOX_RETURN_IF_ERROR(store_.putEnvironment(*env));
  event(env->ticket, pinned ? "pin" : "unpin", actor, "ok", "");
  return *env;
}

Result<ProcessResult> EnvironmentManager::exec(
    const std::string& ticket, const std::vector<std::string>& argv,
    const std::map<std::string, std::string>& env, const std::string& stdinData,
    milliseconds timeout, const std::function<void(bool, std::string_view)>& onOutput,
    const std::string& actor) {
  QABOX_RETURN_IF_ERROR(checkExecInput(argv, env));
  QABOX_ASSIGN_OR_RETURN(Environment e, get(ticket));
  if (e.state == EnvState::kSleeping) {
    QABOX_ASSIGN_OR_RETURN(e, wake(ticket, actor));
  }
  QABOX_ASSIGN_OR_RETURN(auto st, runtime_.state(e.container));
  if (st != ContainerState::kRunning) {
    return failedPrecondition("ticket " + e.ticket + ": container " + e.container +
                              " is not running (state " + std::string(stateName(e.state)) + ")");
  }
  ExecSpec ex;
  ex.argv = argv;
  ex.env = env;
  ex.env.emplace("PATH", kPath);
  ex.env.emplace("HOME", "/root");
  ex.env.emplace("QABOX_TICKET", e.ticket);
  ex.cwd = paths::kAppDir;
  ex.stdinData = stdinData;
  ex.timeout = timeout;
  ex.onOutput = onOutput;
  auto r = runtime_.exec(e.container, ex);
  event(e.ticket, "exec", actor, r ? "ok" : "error",
        argv.front() + (r ? " exit " + std::to_string(r->exitCode) : ""));
  return r;
}

Result<EnvironmentManager::LogFile> EnvironmentManager::logPath(const std::string& ticket,
                                                                bool deployLog) {
  QABOX_ASSIGN_OR_RETURN(Environment e, get(ticket));
  if (!deployLog && e.state == EnvState::kSleeping) {
    QABOX_ASSIGN_OR_RETURN(e, wake(ticket, "logs"));
  }
  if (deployLog) return LogFile{paths::logDir(config_.stateDir, e.slug), "deploy.log"};
  return LogFile{runtime_.upperDir(e.container), paths::kAppLog};
}

std::string EnvironmentManager::diskBreach(const std::string& container) const {
  TreeBounds bounds;
  bounds.maxEntries = config_.limits.maxFiles;
  auto u = measureTree(runtime_.upperDir(container), bounds);
  if (!u) return "";  // gone, or not made yet: nothing of it to hold
  switch (u->bound) {
    case TreeUsage::Bound::kEntries:
      return "limits.max_files: its own layer holds more than " +
             std::to_string(config_.limits.maxFiles) + " files (the limit)";
    case TreeUsage::Bound::kDepth:
      return "limits.max_disk: its own layer has " + u->why + ", which the agent does not measure";
    case TreeUsage::Bound::kTime:  // the figures so far are a floor: judge on them
    case TreeUsage::Bound::kNone: break;
  }
  auto max =
      config_.limits.maxDisk.empty() ? std::nullopt : parseMemorySize(config_.limits.maxDisk);
  if (max && u->bytes > *max) {
    return "limits.max_disk: its own layer uses " + formatBytes(u->bytes) +
           " of disk, above the limit of " + config_.limits.maxDisk;
  }
  return "";
}

Result<std::vector<std::string>> EnvironmentManager::enforceDiskLimits() {
  std::vector<std::string> failed;
  if (stopping_) return failed;
  QABOX_ASSIGN_OR_RETURN(auto envs, store_.listEnvironments());
  for (const auto& candidate : envs) {
    if (candidate.state == EnvState::kSleeping || candidate.state == EnvState::kDeleting) continue;
    auto st = runtime_.state(candidate.container);
    if (!st || *st != ContainerState::kRunning) continue;
    // Measured without the lock (it only reads); acted on under it.
    std::string breach = diskBreach(candidate.container);
    if (breach.empty()) continue;
    auto lock = ticketLock(candidate.slug);
    std::unique_lock guard(*lock, std::try_to_lock);
    if (!guard.owns_lock()) continue;  // a deploy measures its own; the next round sees the rest
    QABOX_ASSIGN_OR_RETURN(auto env, store_.getEnvironment(candidate.slug));
    if (!env || env->container != candidate.container || env->state == EnvState::kSleeping ||
        env->state == EnvState::kDeleting) {
      continue;
    }
    env->state = EnvState::kFailed;
    env->message = breach + "; its container is stopped (qabox delete " + env->ticket +
                   " frees the space and the address)";
    env->updatedAt = Clock::now();
    publishRoute(*env);
    drain(env->ip, static_cast<uint16_t>(env->port));
    Status s = runtime_.stop(env->container);
    if (!s.isOk())
      spdlog::warn("disk {}: stopping {}: {}", env->ticket, env->container, s.toString());
    if (Status w = store_.putEnvironment(*env); !w.isOk()) {
      spdlog::warn("disk {}: recording the failure: {}", env->ticket, w.toString());
    }
    event(env->ticket, "disk", "qaboxd", "error", env->message);
    spdlog::warn("{}: {}", env->ticket, env->message);
    failed.push_back(env->ticket);
  }
  return failed;
}

Result<AppManifest> EnvironmentManager::appManifestOf(const Environment& env) {
  QABOX_ASSIGN_OR_RETURN(auto image, images_.manifest(env.spec.image));
  const RepoConfig* repo = env.spec.repo.empty() ? nullptr : config_.findRepo(env.spec.repo);
  if (!repo || !git_ || env.commit.empty()) return image.defaults;
  auto text = git_->readFile(*repo, env.commit, "qabox.toml");
  if (!text) {
    if (text.status().code() == Code::kNotFound) return image.defaults;
    return text.status();
  }
  QABOX_ASSIGN_OR_RETURN(auto app, parseAppManifest(*text));
  return mergeManifests(image, app);
}

Result<Environment> EnvironmentManager::sleep(const std::string& ticket, const std::string& actor) {
  if (stopping_) return unavailable("the agent is shutting down; try again when it is back");
  QABOX_ASSIGN_OR_RETURN(Ticket t, parseTicket(ticket));
  auto lock = ticketLock(t.slug);
  std::lock_guard guard(*lock);
  QABOX_ASSIGN_OR_RETURN(auto env, store_.getEnvironment(t.slug));
  if (!env) return notFound("ticket " + t.name + ": no environment (qabox list shows them all)");
  if (env->state == EnvState::kSleeping) return *env;
  if (env->pinned) {
    return failedPrecondition("ticket " + t.name +
                              ": pinned environments never sleep (unpin it first)");
  }
  if (env->state != EnvState::kReady) {
    return failedPrecondition("ticket " + t.name + ": only a READY environment can sleep (it is " +
                              std::string(stateName(env->state)) + ")");
  }
  return sleepLocked(*env, actor);
}

Result<Environment> EnvironmentManager::sleepLocked(Environment env, const std::string& actor) {
  // The route says SLEEPING first: a request arriving now is held and wakes
  // the environment again instead of reaching a container going down.
  env.state = EnvState::kSleeping;
  env.updatedAt = Clock::now();
  publishRoute(env);
  drain(env.ip, static_cast<uint16_t>(env.port));
  Status s = runtime_.stop(env.container);
  if (!s.isOk()) {
    env.state = EnvState::kReady;
    publishRoute(env);
    event(env.ticket, "sleep", actor, "error", s.message());
    return s;
  }
  QABOX_RETURN_IF_ERROR(store_.putEnvironment(env));
  event(env.ticket, "sleep", actor, "ok", env.container + " stopped");
  return env;
}

Result<Environment> EnvironmentManager::wake(const std::string& ticket, const std::string& actor) {
  if (stopping_) return unavailable("the agent is shutting down; try again when it is back");
  QABOX_ASSIGN_OR_RETURN(Ticket t, parseTicket(ticket));
  auto lock = ticketLock(t.slug);
  std::lock_guard guard(*lock);
  QABOX_ASSIGN_OR_RETURN(auto env, store_.getEnvironment(t.slug));
  if (!env) return notFound("ticket " + t.name + ": no environment (qabox list shows them all)");
  return wakeLocked(*env, actor);
}

Result<Environment> EnvironmentManager::wakeLocked(Environment env, const std::string& actor) {
  if (env.state != EnvState::kSleeping) return env;
  auto started = steady_clock::now();
  auto fail = [&](const Status& s) -> Status {
    env.state = EnvState::kFailed;
    env.message = "waking failed: " + s.message();
    env.updatedAt = Clock::now();
    (void)store_.putEnvironment(env);
    publishRoute(env);
    event(env.ticket, "wake", actor, "error", s.message());
    return Status(s.code(), env.message);
  };
  QABOX_ASSIGN_OR_RETURN(auto app, appManifestOf(env));
  if (Status s = runtime_.start(env.container); !s.isOk()) return fail(s);
  auto left = config_.reaper.wakeTimeout - since(started);
  if (left.count() <= 0) left = milliseconds(1);
  if (Status s = health_(env.ip, static_cast<uint16_t>(env.port),
                         app.health.empty() ? "/" : app.health, left);
      !s.isOk()) {
    return fail(s);
  }
  env.state = EnvState::kReady;
  env.message.clear();
  env.updatedAt = Clock::now();
  QABOX_RETURN_IF_ERROR(store_.putEnvironment(env));
  publishRoute(env);
  event(env.ticket, "wake", actor, "ok",
        "awake in " + std::to_string(since(started).count()) + " ms");
  return env;
}

Status EnvironmentManager::wakeSlug(const std::string& slug) {
  QABOX_ASSIGN_OR_RETURN(auto env, store_.getEnvironment(slug));
  if (!env) return notFound("no environment " + slug);
  return wake(env->ticket, "router").status();
}

Result<std::vector<std::string>> EnvironmentManager::sleepIdle(TimePoint now) {
  std::vector<std::string> slept;
  if (config_.reaper.sleepAfter.count() <= 0 || stopping_) return slept;
  QABOX_ASSIGN_OR_RETURN(auto envs, store_.listEnvironments());
  for (const auto& candidate : envs) {
    if (candidate.state != EnvState::kReady || candidate.pinned) continue;
    auto lock = ticketLock(candidate.slug);
    std::unique_lock guard(*lock, std::try_to_lock);
    if (!guard.owns_lock()) continue;  // something is happening to it: not idle
    QABOX_ASSIGN_OR_RETURN(auto env, store_.getEnvironment(candidate.slug));
    if (!env || env->state != EnvState::kReady || env->pinned) continue;
    TimePoint lastUse =
        std::max({env->createdAt, env->deployedAt, env->lastAccessAt.value_or(TimePoint{})});
    if (now - lastUse < config_.reaper.sleepAfter) continue;
    auto r = sleepLocked(*env, "qaboxd/sleeper");
    if (r) {
      slept.push_back(env->ticket);
    } else {
      spdlog::warn("sleep {}: {}", env->ticket, r.status().toString());
    }
  }
  return slept;
}

Status EnvironmentManager::recover() {
  QABOX_ASSIGN_OR_RETURN(auto subnet, parseSubnet(config_.network.subnet));
  QABOX_RETURN_IF_ERROR(bridge_.ensure(config_.network.bridge,
                                       gatewayOf(subnet) + "/" + std::to_string(subnet.prefix)));
  // Before any container starts: none may reach a host port but the
  // router's, nor, unless network.isolate is off, another container, nor
  // use an address or MAC but its own, nor go out but as network.egress says.
  BridgeGuard guard;
  guard.subnet = config_.network.subnet;
  guard.gateway = gatewayOf(subnet);
  guard.isolate = config_.network.isolate;
  guard.egress = config_.network.egress;
  auto portOf = [](const std::string& listen) -> std::optional<uint16_t> {
    size_t colon = listen.rfind(':');
    if (listen.rfind("unix://", 0) == 0 || colon == std::string::npos) return std::nullopt;
    int port = std::atoi(listen.c_str() + colon + 1);
    if (port <= 0 || port >= 65536) return std::nullopt;
    return static_cast<uint16_t>(port);
  };
  for (const auto& listen : config_.api.listen) {
    if (auto port = portOf(listen)) guard.hostTcpPorts.push_back(*port);
  }
  for (const auto& listen : {config_.routing.listen, config_.routing.tlsListen}) {
    if (auto port = portOf(listen)) guard.routerTcpPorts.push_back(*port);
  }
  // Every container's port binding, from the rows (the set starts empty
  // with the rules); recovery's destroys below take theirs out again.
  QABOX_ASSIGN_OR_RETURN(auto rows, store_.listEnvironments());
  for (const auto& row : rows) {
    if (row.container.empty() || row.ip.empty()) continue;
    guard.bindings.push_back(
        {vethName(config_.network.bridge, paths::lxcPath(config_.stateDir), row.container),
         macForAddress(row.ip), row.ip});
  }
  QABOX_RETURN_IF_ERROR(bridge_.guard(config_.network.bridge, guard));
  QABOX_RETURN_IF_ERROR(images_.recover());

  // A container recovery cannot destroy (stuck in D state, busy mount, a
  // failing helper) must not keep the whole host from routing: its
  // environment becomes BROKEN, with an event and a message, its lease stays
  // (something may still use the address), and recovery goes on.
  std::set<std::string> stuck;
  size_t broken = 0;
  auto markBroken = [&](Environment& e, const std::string& container,
                        const std::string& message) -> Status {
    e.state = EnvState::kBroken;
    e.message = message;
    e.updatedAt = Clock::now();
    QABOX_RETURN_IF_ERROR(store_.putEnvironment(e));
    spdlog::error("recover: {}: {}", e.ticket, message);
    event(e.ticket, "recover", "qaboxd", "error", message);
    stuck.insert(container);
    ++broken;
    return Status::ok();
  };
  auto cannotDestroy = [&](const std::string& container, const Status& why) {
    return "recovery could not destroy container " + container + ": " + why.message() +
           "; out of service until qabox delete gets it removed";
  };

  // 1. Operations a crash left unfinished are rolled back (or, for deletes,
  //    completed).
  QABOX_ASSIGN_OR_RETURN(auto ops, store_.unfinishedOperations());
  for (const auto& op : ops) {
    if (op.kind == "image.build") continue;
    QABOX_ASSIGN_OR_RETURN(auto env, store_.getEnvironment(op.slug));
    std::string decision;
    std::string outcome = "rolled-back";
    Status destroyed;
    const bool ownsIt = env && env->container == op.container;
    if (op.kind == "create") {
      destroyed = runtime_.destroy(op.container);
      if (destroyed.isOk()) {
        QABOX_RETURN_IF_ERROR(store_.releaseAddressesOf(op.container));
        if (ownsIt && env->state != EnvState::kReady) {
          QABOX_RETURN_IF_ERROR(store_.deleteEnvironment(op.slug));
        }
        decision = "rolled back the unfinished create of " + op.container;
      }
    } else if (op.kind == "redeploy") {
      if (ownsIt) {
        decision = "kept " + op.container + ": the redeploy had already switched";
      } else {
        destroyed = runtime_.destroy(op.container);
        if (destroyed.isOk()) QABOX_RETURN_IF_ERROR(store_.releaseAddressesOf(op.container));
        if (env) {
          auto old = runtime_.state(env->container);
          if (!old) {
            QABOX_RETURN_IF_ERROR(markBroken(*env, env->container,
                                             "recovery could not read the state of container " +
                                                 env->container + ": " + old.status().message()));
          } else {
            env->state = *old == ContainerState::kMissing ? EnvState::kFailed : EnvState::kReady;
            env->message = "redeploy interrupted by an agent restart";
            QABOX_RETURN_IF_ERROR(store_.putEnvironment(*env));
          }
        }
        if (destroyed.isOk()) {
          decision = "rolled back the unfinished redeploy into " + op.container;
        } else {
          // The environment still has its serving container; only the new
          // one is left over, and the orphan sweep of the next start retries it.
          stuck.insert(op.container);
        }
      }
    } else if (op.kind == "delete") {
      destroyed = runtime_.destroy(op.container);
      if (destroyed.isOk()) {
        QABOX_RETURN_IF_ERROR(store_.releaseAddressesOf(op.container));
        if (ownsIt) QABOX_RETURN_IF_ERROR(store_.deleteEnvironment(op.slug));
        decision = "completed the unfinished delete of " + op.container;
      }
    }
    if (!destroyed.isOk()) {
      decision = cannotDestroy(op.container, destroyed);
      outcome = "error";
      if (ownsIt && op.kind != "redeploy") {
        QABOX_RETURN_IF_ERROR(markBroken(*env, op.container, decision));
      } else {
        stuck.insert(op.container);
        spdlog::error("recover: {}", decision);
        event(op.slug, "recover", "qaboxd", "error", decision);
      }
    } else {
      spdlog::info("recover: {}", decision);
      event(op.slug, "recover", "qaboxd", "ok", decision);
    }
    QABOX_RETURN_IF_ERROR(store_.finishOperation(op.id, outcome, decision));
  }

  // 2. What exists against what the store says.
  QABOX_ASSIGN_OR_RETURN(auto envs, store_.listEnvironments());
  std::set<std::string> owned;
  for (const auto& e : envs) owned.insert(e.container);
  QABOX_ASSIGN_OR_RETURN(auto containers, runtime_.list());
  for (const auto& c : containers) {
    if (owned.count(c) || stuck.count(c)) continue;
    spdlog::info("recover: destroying {}: no environment owns it", c);
    if (Status d = runtime_.destroy(c); !d.isOk()) {
      // No environment to mark: the lease stays and the next start retries.
      std::string message = "could not destroy orphan container " + c + ": " + d.message() +
                            " (retried at the next start)";
      spdlog::error("recover: {}", message);
      event("", "recover", "qaboxd", "error", message);
      stuck.insert(c);
      continue;
    }
    std::error_code ec;
    fs::remove_all(paths::containerDir(config_.stateDir, c), ec);
    event("", "recover", "qaboxd", "ok", "destroyed orphan container " + c);
  }
  QABOX_ASSIGN_OR_RETURN(auto leases, store_.listLeases());
  for (const auto& l : leases) {
    if (owned.count(l.owner) || stuck.count(l.owner)) continue;
    spdlog::info("recover: releasing {}: {} no longer exists", l.ip, l.owner);
    QABOX_RETURN_IF_ERROR(store_.releaseAddress(l.ip));
  }
  for (auto& e : envs) {
    if (e.state == EnvState::kBroken) {
      // Left for an operator: qabox delete retries the destroy.
      publishRoute(e);
      continue;
    }
    auto st = runtime_.state(e.container);
    if (!st) {
      QABOX_RETURN_IF_ERROR(markBroken(e, e.container,
                                       "recovery could not read the state of container " +
                                           e.container + ": " + st.status().message()));
      publishRoute(e);
      continue;
    }
    if (*st == ContainerState::kMissing) {
      if (e.state != EnvState::kFailed || e.message.find("is gone") == std::string::npos) {
        e.state = EnvState::kFailed;
        e.message = "container " + e.container + " is gone (found missing at agent start)";
        e.updatedAt = Clock::now();
        QABOX_RETURN_IF_ERROR(store_.putEnvironment(e));
        spdlog::warn("recover: {}: {}", e.ticket, e.message);
      }
    } else if (*st == ContainerState::kStopped && e.state != EnvState::kSleeping) {
      // A host reboot stops every container; bring it back.
      Status s = runtime_.start(e.container);
      spdlog::info("recover: starting stopped {}: {}", e.container, s.toString());
      if (!s.isOk()) {
        e.state = EnvState::kFailed;
        e.message = "restarting " + e.container + " after an agent restart failed: " + s.message();
        QABOX_RETURN_IF_ERROR(store_.putEnvironment(e));
      }
    }
    if (e.state == EnvState::kCreating || e.state == EnvState::kDeploying ||
        e.state == EnvState::kDeleting) {
      // No operation is in flight any more: whatever was half-way is over.
      e.state = e.state == EnvState::kDeleting ? EnvState::kFailed : EnvState::kReady;
      QABOX_RETURN_IF_ERROR(store_.putEnvironment(e));
    }
    publishRoute(e);
  }
  if (broken > 0) {
    spdlog::error("recover: {} environment(s) BROKEN (qabox list shows them); starting anyway",
                  broken);
  }
  return Status::ok();
}

}  // namespace qabox
