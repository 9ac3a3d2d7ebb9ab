#include "lifecycle/manager.h"

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
#include "lifecycle/input_check.h"
#include "lifecycle/internal.h"
#include "store/ipam.h"
#include "store/paths.h"
#include "sys/capped_log.h"
#include "sys/disk_usage.h"
#include "sys/idshift.h"
#include "sys/safe_path.h"

namespace qabox {
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
    Operation op{0,
                 t.slug,
                 redeploy ? JournalKind::kRedeploy : JournalKind::kCreate,
                 container,
                 ip,
                 Clock::now(),
                 std::nullopt,
                 JournalOutcome::kUnfinished,
                 ""};
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
      return store_.finishOperation(opId, JournalOutcome::kOk, merge.commit);
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
        return store_.finishOperation(opId, JournalOutcome::kError, message);
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
          return store_.finishOperation(opId, JournalOutcome::kError, message);
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
          return store_.finishOperation(opId, JournalOutcome::kRolledBack, message);
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
}  // namespace qabox
