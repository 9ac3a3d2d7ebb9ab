#include "server/environments.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
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
  // Close-on-exec (an ofstream is not): no hook or container may inherit it.
  UniqueFd hookLog(::open(deployLog.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  auto logHook = [&](std::string_view text) {
    while (hookLog && !text.empty()) {
      ssize_t n = ::write(hookLog.get(), text.data(), text.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      text.remove_prefix(static_cast<size_t>(n));
    }
  };

  std::map<std::string, std::string> appEnv = spec.env;
  appEnv["QABOX_TICKET"] = t.name;
  appEnv["QABOX_URL"] = config_.urlFor(t.slug);
  appEnv["QABOX_COMMIT"] = merge.commit;
  appEnv["QABOX_SOURCE_BRANCH"] = spec.sourceBranch;
  appEnv["QABOX_TARGET_BRANCH"] = spec.targetBranch;
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

    failedStep = "health";
    QABOX_RETURN_IF_ERROR(
        health_(ip, port, app.health.empty() ? "/" : app.health, config_.deploy.healthTimeout));
    phase("health", "GET http://" + ip + ":" + std::to_string(port) + app.health);
    return Status::ok();
  };

  Status s = steps();
  hookLog.reset();
  if (!s.isOk()) {
    s = Status(s.code(), redactor.redact(s.message()));
    std::string message = failedStep + " failed: " + s.message();
    spdlog::warn("deploy {}: {}", t.name, message);
    if (redeploy) {
      // The old container keeps serving: drop the new one, keep the row.
      Status d = runtime_.destroy(container);
      if (d.isOk()) (void)store_.releaseAddressesOf(container);
      env.message = "redeploy failed: " + message;
      env.updatedAt = Clock::now();
      (void)store_.putEnvironment(env);
      (void)store_.finishOperation(opId, "error", message);
      publishRoute(env);
    } else if (failedStep == "clone") {
      // Nothing to inspect: roll the whole create back.
      (void)runtime_.destroy(container);
      (void)store_.transaction([&]() -> Status {
        QABOX_RETURN_IF_ERROR(store_.releaseAddressesOf(container));
        QABOX_RETURN_IF_ERROR(store_.deleteEnvironment(t.slug));
        return store_.finishOperation(opId, "rolled-back", message);
      });
      routes_.remove(t.slug);
      event(t.name, "deploy", in.actor, "error", message);
      return s;
    } else {
      // The container stays for inspection until deleted.
      env.state = EnvState::kFailed;
      env.message = message;
      env.updatedAt = Clock::now();
      (void)store_.putEnvironment(env);
      (void)store_.finishOperation(opId, "error", message);
      publishRoute(env);
    }
    event(t.name, redeploy ? "redeploy" : "deploy", in.actor, "error", message);
    if (progress) progress({"failed", message, milliseconds(0)});
    return env;
  }

  // Switch: the row and the route point at the new container, then the old
  // one goes.
  std::string oldContainer = redeploy ? existing->container : "";
  env.state = EnvState::kReady;
  env.container = container;
  env.ip = ip;
  env.spec = spec;
  env.commit = merge.commit;
  env.imageVersion = currentImage->version;
  env.port = port;
  env.limits = limits;
  env.message.clear();
  env.deployedAt = Clock::now();
  env.updatedAt = env.deployedAt;
  if (spec.ttl) env.expiresAt = env.deployedAt + *spec.ttl;
  QABOX_RETURN_IF_ERROR(store_.transaction([&]() -> Status {
    QABOX_RETURN_IF_ERROR(store_.putEnvironment(env));
    return store_.finishOperation(opId, "ok", merge.commit);
  }));
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
    row.state = EnvState::kFailed;
    row.message = "delete failed: " + s.message();
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
  // Before any container starts: none may reach the API's TCP ports on the
  // host, nor, unless network.isolate is off, another container.
  BridgeGuard guard;
  guard.subnet = config_.network.subnet;
  guard.isolate = config_.network.isolate;
  for (const auto& listen : config_.api.listen) {
    if (listen.rfind("unix://", 0) == 0) continue;
    size_t colon = listen.rfind(':');
    if (colon == std::string::npos) continue;
    int port = std::atoi(listen.c_str() + colon + 1);
    if (port > 0 && port < 65536) guard.hostTcpPorts.push_back(static_cast<uint16_t>(port));
  }
  QABOX_RETURN_IF_ERROR(bridge_.guard(config_.network.bridge, guard));
  QABOX_RETURN_IF_ERROR(images_.recover());

  // 1. Operations a crash left unfinished are rolled back (or, for deletes,
  //    completed).
  QABOX_ASSIGN_OR_RETURN(auto ops, store_.unfinishedOperations());
  for (const auto& op : ops) {
    if (op.kind == "image.build") continue;
    QABOX_ASSIGN_OR_RETURN(auto env, store_.getEnvironment(op.slug));
    std::string decision;
    if (op.kind == "create") {
      QABOX_RETURN_IF_ERROR(runtime_.destroy(op.container));
      QABOX_RETURN_IF_ERROR(store_.releaseAddressesOf(op.container));
      if (env && env->container == op.container && env->state != EnvState::kReady) {
        QABOX_RETURN_IF_ERROR(store_.deleteEnvironment(op.slug));
      }
      decision = "rolled back the unfinished create of " + op.container;
    } else if (op.kind == "redeploy") {
      if (env && env->container == op.container) {
        decision = "kept " + op.container + ": the redeploy had already switched";
      } else {
        QABOX_RETURN_IF_ERROR(runtime_.destroy(op.container));
        QABOX_RETURN_IF_ERROR(store_.releaseAddressesOf(op.container));
        if (env) {
          QABOX_ASSIGN_OR_RETURN(auto old, runtime_.state(env->container));
          env->state = old == ContainerState::kMissing ? EnvState::kFailed : EnvState::kReady;
          env->message = "redeploy interrupted by an agent restart";
          QABOX_RETURN_IF_ERROR(store_.putEnvironment(*env));
        }
        decision = "rolled back the unfinished redeploy into " + op.container;
      }
    } else if (op.kind == "delete") {
      QABOX_RETURN_IF_ERROR(runtime_.destroy(op.container));
      QABOX_RETURN_IF_ERROR(store_.releaseAddressesOf(op.container));
      if (env && env->container == op.container) {
        QABOX_RETURN_IF_ERROR(store_.deleteEnvironment(op.slug));
      }
      decision = "completed the unfinished delete of " + op.container;
    }
    spdlog::info("recover: {}", decision);
    QABOX_RETURN_IF_ERROR(store_.finishOperation(op.id, "rolled-back", decision));
    event(op.slug, "recover", "qaboxd", "ok", decision);
  }

  // 2. What exists against what the store says.
  QABOX_ASSIGN_OR_RETURN(auto envs, store_.listEnvironments());
  std::set<std::string> owned;
  for (const auto& e : envs) owned.insert(e.container);
  QABOX_ASSIGN_OR_RETURN(auto containers, runtime_.list());
  for (const auto& c : containers) {
    if (owned.count(c)) continue;
    spdlog::info("recover: destroying {}: no environment owns it", c);
    QABOX_RETURN_IF_ERROR(runtime_.destroy(c));
    std::error_code ec;
    fs::remove_all(paths::containerDir(config_.stateDir, c), ec);
    event("", "recover", "qaboxd", "ok", "destroyed orphan container " + c);
  }
  QABOX_ASSIGN_OR_RETURN(auto leases, store_.listLeases());
  for (const auto& l : leases) {
    if (owned.count(l.owner)) continue;
    spdlog::info("recover: releasing {}: {} no longer exists", l.ip, l.owner);
    QABOX_RETURN_IF_ERROR(store_.releaseAddress(l.ip));
  }
  for (auto& e : envs) {
    QABOX_ASSIGN_OR_RETURN(auto st, runtime_.state(e.container));
    if (st == ContainerState::kMissing) {
      if (e.state != EnvState::kFailed || e.message.find("is gone") == std::string::npos) {
        e.state = EnvState::kFailed;
        e.message = "container " + e.container + " is gone (found missing at agent start)";
        e.updatedAt = Clock::now();
        QABOX_RETURN_IF_ERROR(store_.putEnvironment(e));
        spdlog::warn("recover: {}: {}", e.ticket, e.message);
      }
    } else if (st == ContainerState::kStopped && e.state != EnvState::kSleeping) {
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
  return Status::ok();
}

}  // namespace qabox
