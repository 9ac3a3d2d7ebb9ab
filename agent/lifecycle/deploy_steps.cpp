// The deploy's steps on the host: clone, export, the app's files, start,
// hooks, the app, its health check. Each reads what earlier steps left in
// the context; a failure ends the run and rollback() (deploy_rollback.cpp)
// undoes what the steps before it did.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <system_error>
#include <utility>
#include <vector>

#include "core/failpoint.h"
#include "init/contract.h"
#include "lifecycle/deploy_steps.h"
#include "lifecycle/services.h"
#include "store/paths.h"
#include "sys/idshift.h"
#include "sys/process.h"
#include "sys/safe_path.h"
#include "sys/temp_file.h"

namespace qabox {
namespace {

// Where the app's start command waits while hooks run, and its final name.
constexpr const char* kRunFile = "/etc/qabox/app.run";
constexpr const char* kPendingRunFile = "/etc/qabox/app.run.pending";

// The steps on the host, in the order they run; applies() skips those a
// deploy has no use for.
constexpr DeployStep kHostSteps[] = {
    DeployStep::kDeps,     DeployStep::kData,  DeployStep::kClone,    DeployStep::kExport,
    DeployStep::kAppFiles, DeployStep::kStart, DeployStep::kServices, DeployStep::kBuild,
    DeployStep::kMigrate,  DeployStep::kSeed,  DeployStep::kApp,      DeployStep::kHealth,
};

}  // namespace

std::string failpointName(DeployStep step, std::string_view when) {
  // stepName() names two steps "start" and, without a repo, two "clone":
  // a failpoint's name is its step's own.
  std::string_view key;
  switch (step) {
    case DeployStep::kAppFiles: key = "app-files"; break;
    case DeployStep::kApp: key = "app"; break;
    default: key = stepName(step, true);
  }
  return "deploy." + std::string(key) + "." + std::string(when);
}

std::string_view stepName(DeployStep step, bool hasRepo) {
  switch (step) {
    case DeployStep::kNone: return "none";
    case DeployStep::kCheck: return "check";
    case DeployStep::kMerge: return "merge";
    case DeployStep::kReserve: return "reserve";
    case DeployStep::kDeps: return "deps";
    case DeployStep::kData: return "data";
    case DeployStep::kClone: return "clone";
    case DeployStep::kExport: return "export";
    case DeployStep::kAppFiles: return hasRepo ? "export" : "clone";
    case DeployStep::kStart: return "start";
    case DeployStep::kServices: return "services";
    case DeployStep::kBuild: return "build";
    case DeployStep::kMigrate: return "migrate";
    case DeployStep::kSeed: return "seed";
    case DeployStep::kApp: return "start";
    case DeployStep::kHealth: return "health";
    case DeployStep::kSwitch: return "switch";
    case DeployStep::kFinish: return "finish";
  }
  return "unknown";
}

void DeployRun::openLog() {
  const std::string path = paths::deployLog(m_.config_.stateDir, ctx_.ticket.slug);
  // A directory that cannot be made shows as the open's failure below.
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  if (Status s = hookLog_.open(path, logMax_); !s.isOk()) {
    logFailed_ = true;
    spdlog::warn("deploy {}: {}", ctx_.ticket.name, s.toString());
  }
}

void DeployRun::logHook(std::string_view text) {
  if (logFailed_ || text.empty()) return;
  if (Status s = hookLog_.write(text); !s.isOk()) {
    // The deploy goes on; what it says about the disk comes from its steps.
    logFailed_ = true;
    spdlog::warn("deploy {}: {}", ctx_.ticket.name, s.toString());
  }
}

Status DeployRun::hostSteps() {
  for (DeployStep step : kHostSteps) {
    if (!applies(step)) continue;
    ctx_.current = step;
    QABOX_FAILPOINT(failpointName(step, "before"));
    QABOX_RETURN_IF_ERROR(runStep(step));
    QABOX_FAILPOINT(failpointName(step, "after"));
    ctx_.done = step;
  }
  return Status::ok();
}

bool DeployRun::applies(DeployStep step) const {
  switch (step) {
    case DeployStep::kDeps: return !ctx_.depsHash.empty();
    case DeployStep::kData: return !ctx_.dataHash.empty();
    case DeployStep::kExport: return ctx_.repo != nullptr;
    case DeployStep::kStart: return !ctx_.claimed;  // a pooled container runs already
    case DeployStep::kServices: return !ctx_.app.services.empty();
    case DeployStep::kBuild: return !ctx_.app.build.empty();
    case DeployStep::kMigrate: return !ctx_.app.migrate.empty();
    case DeployStep::kSeed: return !ctx_.app.seed.empty();
    default: return true;
  }
}

Status DeployRun::runStep(DeployStep step) {
  switch (step) {
    case DeployStep::kDeps: return ensureDeps();
    case DeployStep::kData: return ensureData();
    case DeployStep::kClone: return ctx_.claimed ? claimed() : clone();
    case DeployStep::kExport: return ctx_.claimed ? exportIntoRunning() : exportSource();
    case DeployStep::kAppFiles: return ctx_.claimed ? placeAppFiles() : writeAppFiles();
    case DeployStep::kStart: return start();
    case DeployStep::kServices: return waitForServices();
    case DeployStep::kBuild:
    case DeployStep::kMigrate:
    case DeployStep::kSeed: return runHook(step);
    case DeployStep::kApp: return startApp();
    case DeployStep::kHealth: return healthCheck();
    default: return internalError("deploy step " + failedStep() + ": not a step on the host");
  }
}

Status DeployRun::clone() {
  const auto& config = m_.config_;
  const std::string& container = ctx_.container;
  const uint32_t version = ctx_.imageVersion.version;
  QABOX_ASSIGN_OR_RETURN(auto lowers, m_.images_.lowerDirs(ctx_.image, version));
  // The dependency layer lies over the image's, the data layer over it,
  // under the clone's delta; with a data pool the dataset is snapshots of
  // its volumes instead, mounted at the data directories.
  const bool onPool = !ctx_.dataDir.empty() && !config.storage.dataPool.empty();
  if (!ctx_.depsDir.empty()) lowers.insert(lowers.begin(), ctx_.depsDir);
  if (!ctx_.dataDir.empty() && !onPool) lowers.insert(lowers.begin(), ctx_.dataDir);
  auto cloneIt = [&] {
    return cloneImage(m_.runtime_, config, ctx_.subnet, ctx_.image, version, container, ctx_.ip,
                      lowers, ctx_.limits);
  };
  Status cloned = cloneIt();
  // Every id range taken: pooled containers hold some.
  if (cloned.code() == Code::kResourceExhausted && m_.poolGivesWay("a deploy needs an id range")) {
    cloned = cloneIt();
  }
  QABOX_RETURN_IF_ERROR(cloned);
  if (onPool) QABOX_RETURN_IF_ERROR(attachDataset());
  phase("clone",
        container + " from " + ctx_.image + " v" + std::to_string(version) + " at " + ctx_.ip);
  QABOX_RETURN_IF_ERROR(m_.bridge_.forgetNeighbor(config.network.bridge, ctx_.ip));
  watch_.start(std::min<milliseconds>(config.limits.diskCheckInterval, std::chrono::seconds(1)));
  ctx_.upper = m_.runtime_.upperDir(container);
  return Status::ok();
}

Status DeployRun::claimed() {
  const std::string& container = ctx_.container;
  // A pooled container that stopped since its last check fails here, and
  // the rollback takes it with the deploy's other leftovers.
  QABOX_ASSIGN_OR_RETURN(ContainerState st, m_.runtime_.state(container));
  if (st != ContainerState::kRunning) {
    return failedPrecondition("the warm pool's " + container + " is not running");
  }
  phase("claim", container + " from the warm pool (" + ctx_.image + " v" +
                     std::to_string(ctx_.imageVersion.version) + " at " + ctx_.ip + ")");
  watch_.start(
      std::min<milliseconds>(m_.config_.limits.diskCheckInterval, std::chrono::seconds(1)));
  ctx_.upper = m_.runtime_.upperDir(container);
  return Status::ok();
}

Status DeployRun::exportIntoRunning() {
  // Unpacked by the container's own root with the container's own tar:
  // whatever links the tree holds resolve inside the container, never on
  // the host. Nothing of the deploy's has run in it yet. /srv/app made
  // anew: a directory made where the image's was removed is opaque.
  // On disk, never whole in the agent's memory: a tree may be gigabytes.
  auto tar = TempFile::create(paths::workDir(m_.config_.stateDir), "archive-");
  if (!tar) return tar.status().withContext("export");
  QABOX_RETURN_IF_ERROR(m_.git_->archiveTree(*ctx_.repo, ctx_.merge.commit, tar->path()));
  ExecSpec ex;
  ex.argv = {"/bin/sh", "-c",
             std::string("rm -rf ") + paths::kAppDir + " && mkdir -m 0755 " + paths::kAppDir +
                 " && exec tar -x -f - -C " + paths::kAppDir};
  ex.env = {{"PATH", kPath}};
  ex.stdinFile = tar->path();
  ex.timeout = m_.config_.deploy.hookTimeout;
  QABOX_ASSIGN_OR_RETURN(auto r, m_.runtime_.exec(ctx_.container, ex));
  if (!r.ok()) return commandFailed("export into " + ctx_.container, r, ex.timeout);
  if (std::string b = watch_.checkNow(); !b.empty()) return resourceExhausted(b);
  phase("export", ctx_.merge.commit.substr(0, 12) + " into " + paths::kAppDir);
  return Status::ok();
}

Status DeployRun::placeAppFiles() {
  std::vector<PlacedFile> files;
  files.push_back({paths::kAppEnvFile, envFileOf(ctx_.appEnv), 0600});
  if (ctx_.imageManifest.init == kSupervisorInit) {
    const auto file = superviseFileFor(ctx_.imageManifest, ctx_.app, logMax_);
    files.push_back({supervise::kSuperviseFile, supervise::toJson(file), 0644});
  }
  // Last, and whole (each file is renamed into place): the image's init
  // starts the app once it sees app.run.
  files.push_back(
      {ctx_.hasHooks ? kPendingRunFile : kRunFile, routedCommand(ctx_.app) + "\n", 0740});
  // qabox-init supervises nothing until the pool's mark goes.
  QABOX_RETURN_IF_ERROR(m_.runtime_.place(ctx_.container, files, {supervise::kPooledFile}));
  phase("place", "the app's files into " + ctx_.container);
  return Status::ok();
}

Status DeployRun::exportSource() {
  const std::string& upper = ctx_.upper;
  const std::string appDir = upper + paths::kAppDir;
  // Every host-side step into the container's files resolves beneath
  // its upper dir and follows no link (sys/safe_path.h).
  QABOX_RETURN_IF_ERROR(makeDirsBeneath(upper, paths::kAppDir, 0755).status());
  // Opaque: the image's own /srv/app must not show through the app. An
  // overlay mounted in a user namespace (unprivileged) reads the user.
  // xattr, one mounted by host root the trusted. one.
  for (const char* attr : {"trusted.overlay.opaque", "user.overlay.opaque"}) {
    QABOX_RETURN_IF_ERROR(setDirXattrBeneath(upper, paths::kAppDir, attr, "y"));
  }
  QABOX_RETURN_IF_ERROR(m_.git_->exportTree(*ctx_.repo, ctx_.merge.commit, appDir));
  // The same rule as the layer's build: a listed file reached through a
  // link is refused, whether or not its layer was cached.
  if (!ctx_.depsHash.empty()) QABOX_RETURN_IF_ERROR(checkDepsFiles(appDir, ctx_.app.deps.files));
  if (std::string b = watch_.checkNow(); !b.empty()) return resourceExhausted(b);
  phase("export", ctx_.merge.commit.substr(0, 12) + " into " + paths::kAppDir);
  return Status::ok();
}

Status DeployRun::writeAppFiles() {
  const std::string& upper = ctx_.upper;
  // Owner-only from its first byte: app.env holds the secrets.
  QABOX_RETURN_IF_ERROR(writeFileBeneath(upper, paths::kAppEnvFile, envFileOf(ctx_.appEnv), 0600));
  if (ctx_.imageManifest.init == kSupervisorInit) {
    // What qabox-init runs; the secrets it needs are in app.env alone.
    const auto file = superviseFileFor(ctx_.imageManifest, ctx_.app, logMax_);
    QABOX_RETURN_IF_ERROR(
        writeFileBeneath(upper, supervise::kSuperviseFile, supervise::toJson(file), 0644));
  }
  // Without hooks the app may start with the container; with hooks the
  // start command waits beside its final name until they have run.
  QABOX_RETURN_IF_ERROR(writeFileBeneath(upper, ctx_.hasHooks ? kPendingRunFile : kRunFile,
                                         routedCommand(ctx_.app) + "\n", 0740));
  if (auto root = m_.runtime_.mappedRoot(ctx_.container)) {
    // Unprivileged: what the agent placed belongs to root inside.
    QABOX_RETURN_IF_ERROR(shiftOwnership(upper, *root));
  }
  return Status::ok();
}

Status DeployRun::start() {
  QABOX_RETURN_IF_ERROR(m_.runtime_.start(ctx_.container));
  phase("start", ctx_.container + " running");
  return Status::ok();
}

Status DeployRun::runHook(DeployStep step) {
  const std::string name(stepName(step, ctx_.repo != nullptr));
  const AppManifest& app = ctx_.app;
  const std::string& command = step == DeployStep::kBuild     ? app.build
                               : step == DeployStep::kMigrate ? app.migrate
                                                              : app.seed;
  const auto hookTimeout = m_.config_.deploy.hookTimeout;
  logHook(redactor_.redact("==> " + name + ": " + command + "\n"));
  ExecSpec ex;
  ex.argv = {"/bin/sh", "-c", command};
  ex.env = ctx_.appEnv;
  ex.env["PATH"] = kPath;
  ex.env["HOME"] = "/root";
  ex.cwd = paths::kAppDir;
  ex.timeout = hookTimeout;
  // One redactor a stream: a value cut between two pieces of stdout
  // must not escape because a piece of stderr came in between.
  Redactor out(ctx_.secrets), err(ctx_.secrets);
  ex.onOutput = [&](bool isErr, std::string_view data) { logHook((isErr ? err : out).feed(data)); };
  auto r = m_.runtime_.exec(ctx_.container, ex);
  logHook(out.finish());
  logHook(err.finish());
  if (std::string b = watch_.checkNow(); !b.empty()) return resourceExhausted(b);
  if (!r) return r.status();
  if (!r->ok()) return commandFailed("hook " + name, *r, hookTimeout);
  phase(name, command);
  return Status::ok();
}

Status DeployRun::startApp() {
  if (ctx_.hasHooks) {
    ExecSpec ex;
    ex.argv = {"/bin/mv", kPendingRunFile, kRunFile};
    ex.env = {{"PATH", kPath}};
    ex.timeout = std::chrono::seconds(30);
    QABOX_ASSIGN_OR_RETURN(auto r, m_.runtime_.exec(ctx_.container, ex));
    if (!r.ok()) return internalError("starting the app failed: " + lastLines(r.err, 3));
    phase("app", routedCommand(ctx_.app));
  }
  watch_.stop();
  if (std::string b = watch_.checkNow(); !b.empty()) return resourceExhausted(b);
  return Status::ok();
}

Status DeployRun::healthCheck() {
  const std::string& path = ctx_.app.health;
  QABOX_RETURN_IF_ERROR(
      m_.health_(ctx_.ip, ctx_.port, path.empty() ? "/" : path, m_.config_.deploy.healthTimeout));
  phase("health", "GET http://" + ctx_.ip + ":" + std::to_string(ctx_.port) + path);
  return Status::ok();
}

}  // namespace qabox
