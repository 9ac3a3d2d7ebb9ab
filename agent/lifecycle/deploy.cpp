// The deploy: what is checked and written before anything touches the host,
// and the switch to the new container after. The steps on the host are in
// deploy_steps.cpp, the rollback in deploy_rollback.cpp.
#include <spdlog/spdlog.h>

#include "core/failpoint.h"
#include "deploy/manifest.h"
#include "lifecycle/deploy_steps.h"
#include "lifecycle/input_check.h"
#include "lifecycle/internal.h"
#include "metrics/metrics.h"
#include "sys/disk_usage.h"

namespace qabox {

Result<Environment> EnvironmentManager::deploy(const DeployInput& in, const ProgressFn& progress) {
  if (stopping_) return unavailable("the agent is shutting down; try again when it is back");
  Ticket ticket;
  std::string image;
  QABOX_RETURN_IF_ERROR(validate(in, ticket, image));
  auto lock = ticketLock(ticket.slug);
  auto result = [&] {
    std::lock_guard guard(*lock);
    auto mark = markInFlight(ticket.slug);
    return deployLocked(ticket, in, image, progress);
  }();
  // The pool refills behind a claim once the deploy is done, never beside it.
  pokePool();
  // The merge has just fetched the repo: every other environment on it
  // learns how far its target has moved, at the cost of a few local git
  // reads, after the ticket's lock is let go.
  if (result.isOk() && !in.spec.repo.empty() && git_ != nullptr) {
    if (auto r = refreshBehind(in.spec.repo, false); !r) {
      spdlog::warn("deploy {}: how far targets moved on repo {}: {}", ticket.name, in.spec.repo,
                   r.status().toString());
    }
  }
  return result;
}

Result<Environment> EnvironmentManager::redeploy(const std::string& ticket, bool force,
                                                 const std::string& actor,
                                                 const ProgressFn& progress) {
  QABOX_ASSIGN_OR_RETURN(Environment env, get(ticket));
  if (!env.spec.secretKeys.empty()) {
    std::string keys;
    for (const auto& k : env.spec.secretKeys) keys += (keys.empty() ? "" : ", ") + k;
    return failedPrecondition("ticket " + env.ticket + ": deployed with secrets (" + keys +
                              ") whose values qabox does not keep; redeploy it from its pipeline");
  }
  DeployInput in;
  in.ticket = env.ticket;
  in.spec = env.spec;
  in.force = force;
  in.actor = actor;
  in.redeploy = true;
  return deploy(in, progress);
}

Result<Environment> EnvironmentManager::deployLocked(const Ticket& t, const DeployInput& in,
                                                     const std::string& image,
                                                     const ProgressFn& progress) {
  DeployRun run(*this, t, in, image, progress);
  const auto started = time_.steadyNow();
  auto result = run.run();
  if (metrics_) {
    bool ok = result.isOk() && !run.failed();
    metrics_->deployFinished(ok, ok ? "" : run.failedStep(),
                             std::chrono::duration<double>(time_.steadyNow() - started).count());
  }
  return result;
}

DeployRun::DeployRun(EnvironmentManager& manager, const Ticket& t, const DeployInput& in,
                     const std::string& image, const ProgressFn& progress)
    : m_(manager),
      progress_(progress),
      ctx_(t, in, image),
      redactor_(in.secrets),
      phaseStart_(manager.time_.steadyNow()),
      logMax_(parseMemorySize(manager.config_.deploy.logMax).value_or(8u << 20)),
      watch_([this] { return m_.diskBreach(ctx_.container); },
             [this] {
               spdlog::warn("deploy {}: {}: stopping {}", ctx_.ticket.name, watch_.breach(),
                            ctx_.container);
               if (Status s = m_.runtime_.stop(ctx_.container); !s.isOk()) {
                 spdlog::warn("deploy {}: stopping {}: {}", ctx_.ticket.name, ctx_.container,
                              s.toString());
               }
             }) {}

Result<Environment> DeployRun::run() {
  if (Status s = check(); !s.isOk()) return rollback(s);
  if (Status s = mergeSource(); !s.isOk()) return rollback(s);
  if (unchanged()) {
    const Merge& merge = ctx_.merge;
    phase("ready",
          "unchanged: " + (merge.commit.empty() ? ctx_.image : merge.commit.substr(0, 12)));
    return *ctx_.existing;
  }
  QABOX_FAILPOINT(failpointName(DeployStep::kReserve, "before"));
  if (Status s = reserve(); !s.isOk()) return rollback(s);
  QABOX_FAILPOINT(failpointName(DeployStep::kReserve, "after"));
  openLog();
  Status s = hostSteps();
  watch_.stop();
  hookLog_.close();
  // Switch: the row and the route point at the new container, then the old
  // one goes. A switch the store refuses (its disk is full) fails the
  // deploy like any step.
  if (s.isOk()) s = switchOver();
  if (!s.isOk()) return rollback(s);
  QABOX_FAILPOINT(failpointName(DeployStep::kSwitch, "after"));
  Environment done = finish();
  QABOX_FAILPOINT(failpointName(DeployStep::kFinish, "after"));
  return done;
}

void DeployRun::phase(const std::string& name, const std::string& detail) {
  const auto now = m_.time_.steadyNow();
  const auto took = std::chrono::duration_cast<milliseconds>(now - phaseStart_);
  phases_.push_back({name, took});
  if (m_.metrics_) {
    m_.metrics_->deployPhase(name, std::chrono::duration<double>(now - phaseStart_).count());
  }
  if (progress_) progress_({name, redactor_.redact(detail), took});
  phaseStart_ = m_.time_.steadyNow();
}

void DeployRun::failedPhase(const std::string& detail) {
  if (progress_) progress_({Progress::kFailed, detail, milliseconds(0)});
}

std::string DeployRun::failedStep() const {
  return std::string(stepName(ctx_.current, ctx_.repo != nullptr));
}

Status DeployRun::check() {
  ctx_.current = DeployStep::kCheck;
  QABOX_RETURN_IF_ERROR(refuseWhenDiskFull(m_.config_.stateDir, "deploy " + ctx_.ticket.name));
  DeploySpec& spec = ctx_.spec;
  spec = ctx_.in.spec;
  spec.image = ctx_.image;
  spec.secretKeys.clear();
  for (const auto& [k, v] : ctx_.in.secrets) spec.secretKeys.push_back(k);

  QABOX_ASSIGN_OR_RETURN(auto currentImage, m_.store_.currentImage(ctx_.image));
  if (!currentImage) {
    return failedPrecondition("image " + ctx_.image + ": not built yet (run: qabox image build " +
                              ctx_.image + ")");
  }
  ctx_.imageVersion = *currentImage;
  QABOX_ASSIGN_OR_RETURN(ctx_.imageManifest, m_.images_.manifest(ctx_.image));
  const ImageManifest& im = ctx_.imageManifest;
  QABOX_ASSIGN_OR_RETURN(ctx_.limits, effectiveLimits(spec.limits, {im.memory, im.cpus, im.pids},
                                                      ctx_.image, m_.config_.limits));
  QABOX_RETURN_IF_ERROR(checkExisting());
  QABOX_ASSIGN_OR_RETURN(ctx_.subnet, parseSubnet(m_.config_.network.subnet));
  ctx_.done = DeployStep::kCheck;
  return Status::ok();
}

Status DeployRun::checkExisting() {
  const Ticket& t = ctx_.ticket;
  std::optional<Environment>& existing = ctx_.existing;
  QABOX_ASSIGN_OR_RETURN(existing, m_.store_.getEnvironment(t.slug));
  if (!existing && ctx_.in.redeploy) {
    return notFound("ticket " + t.name + ": no environment (deleted before the redeploy began)");
  }
  if (existing && existing->state == EnvState::kBroken) {
    return failedPrecondition("ticket " + t.name + ": BROKEN (" + existing->message +
                              "); delete it first (qabox delete " + t.name + ")");
  }
  if (existing && existing->state == EnvState::kSleeping) {
    // A redeploy builds beside the serving container, which must be awake
    // to keep serving if the new one fails.
    QABOX_ASSIGN_OR_RETURN(existing, m_.wakeLocked(*existing, ctx_.in.actor));
    phase("wake", existing->container + " awake");
  }
  if (existing && !sameSource(existing->spec, ctx_.spec) && !ctx_.in.force) {
    return alreadyExists("ticket " + t.name + ": already deployed from " +
                         describeSource(existing->spec) +
                         "; delete it first, or deploy again with --force to replace it");
  }
  return Status::ok();
}

Status DeployRun::mergeSource() {
  ctx_.current = DeployStep::kMerge;
  const DeploySpec& spec = ctx_.spec;
  // The merge result decides whether there is anything to do.
  ctx_.repo = spec.repo.empty() ? nullptr : m_.config_.findRepo(spec.repo);
  ctx_.app = ctx_.imageManifest.defaults;
  if (ctx_.repo) {
    GitSource* git = m_.git_;
    if (!git) return unimplemented("deploying repos is not enabled on this agent");
    QABOX_ASSIGN_OR_RETURN(ctx_.merge,
                           git->merge(*ctx_.repo, spec.sourceBranch, spec.targetBranch));
    const Merge& merge = ctx_.merge;
    phase("merge",
          (merge.fastForward ? "fast-forward to " : "merge commit ") + merge.commit.substr(0, 12));
    auto manifestText = git->readFile(*ctx_.repo, merge.commit, kAppManifestFile);
    if (manifestText) {
      auto parsed = parseAppManifest(*manifestText);
      if (!parsed) {
        return parsed.status().withContext("qabox.toml at " + merge.commit.substr(0, 12));
      }
      ctx_.app = mergeManifests(ctx_.imageManifest, *parsed);
      // Before anything is made: what the app asks of its image is there.
      QABOX_RETURN_IF_ERROR(checkImageFits(ctx_.imageManifest, ctx_.app));
    } else if (manifestText.status().code() != Code::kNotFound) {
      return manifestText.status();
    }
  }
  QABOX_RETURN_IF_ERROR(prepareApp());
  QABOX_RETURN_IF_ERROR(hashDeps());
  QABOX_RETURN_IF_ERROR(hashData());
  ctx_.done = DeployStep::kMerge;
  return Status::ok();
}

Status DeployRun::prepareApp() {
  const Ticket& t = ctx_.ticket;
  const DeploySpec& spec = ctx_.spec;
  std::map<std::string, std::string>& appEnv = ctx_.appEnv;
  appEnv = spec.env;
  appEnv["QABOX_TICKET"] = t.name;
  appEnv["QABOX_URL"] = m_.config_.urlFor(t.slug);
  appEnv["QABOX_COMMIT"] = ctx_.merge.commit;
  appEnv["QABOX_SOURCE_BRANCH"] = spec.sourceBranch;
  appEnv["QABOX_TARGET_BRANCH"] = spec.targetBranch;
  // The image's init keeps app.log under the same cap as deploy.log.
  appEnv["QABOX_LOG_MAX"] = std::to_string(logMax_);
  ctx_.secrets = ctx_.in.secrets;
  // The services' env with their passwords: hooks, app and supervisor get it.
  QABOX_RETURN_IF_ERROR(addServices());
  for (const auto& [k, v] : ctx_.in.secrets) appEnv[k] = v;
  const AppManifest& app = ctx_.app;
  ctx_.port = static_cast<uint16_t>(app.port.value_or(80));
  ctx_.hasHooks = !app.build.empty() || !app.migrate.empty() || !app.seed.empty();
  return Status::ok();
}

bool DeployRun::unchanged() const {
  const std::optional<Environment>& existing = ctx_.existing;
  return existing && !ctx_.in.force && existing->state == EnvState::kReady &&
         existing->spec == ctx_.spec && existing->commit == ctx_.merge.commit &&
         existing->depsLayer == ctx_.depsHash && ctx_.in.secrets.empty();
}

Status DeployRun::reserve() {
  ctx_.current = DeployStep::kReserve;
  const Ticket& t = ctx_.ticket;
  ctx_.redeploy = ctx_.existing.has_value();
  ctx_.container = ctx_.redeploy ? m_.nextContainerName(t.slug, ctx_.existing->container)
                                 : containerNameFor(t.slug);
  if (ctx_.redeploy) {
    ctx_.env = *ctx_.existing;
  } else {
    ctx_.env.ticket = t.name;
    ctx_.env.slug = t.slug;
    ctx_.env.createdAt = m_.time_.now();
  }
  // Intent first: the lease, the journal entry and (for a new ticket) the
  // row are one transaction, so a crash leaves either all or nothing.
  Environment row;
  const std::string named = ctx_.container;
  auto intent = [&] {
    row = ctx_.env;
    Status s = m_.store_.transaction([&] { return writeIntent(row); });
    if (!s.isOk()) {
      ctx_.claimed = false;  // the claim went back with the transaction
      ctx_.container = named;
    }
    return s;
  };
  Status s = intent();
  // The last address may be the warm pool's: one of its containers goes.
  if (!s.isOk() && ctx_.addressShort && m_.poolGivesWay("a deploy needs its address")) s = intent();
  QABOX_RETURN_IF_ERROR(s);
  if (!ctx_.redeploy) {
    ctx_.env = row;
    m_.publishRoute(ctx_.env);
  }
  m_.event(t.name, ctx_.redeploy ? "redeploy" : "deploy", ctx_.in.actor, "started",
           describeSource(ctx_.spec));
  ctx_.done = DeployStep::kReserve;
  return Status::ok();
}

Status DeployRun::writeIntent(Environment& row) {
  Store& store = m_.store_;
  const auto& config = m_.config_;
  if (!ctx_.redeploy) {
    QABOX_ASSIGN_OR_RETURN(uint32_t count, store.countEnvironments());
    if (count >= config.limits.maxEnvironments) {
      return resourceExhausted("limits.max_environments: this host already runs " +
                               std::to_string(count) +
                               " environments (the maximum); delete "
                               "some or raise the limit");
    }
  }
  std::optional<PooledContainer> pooled;
  if (mayClaim()) {
    QABOX_ASSIGN_OR_RETURN(pooled,
                           store.takePooled(ctx_.image, ctx_.imageVersion.version, ctx_.limits));
  }
  if (pooled) {
    // Its name and lease are the environment's from now on.
    ctx_.claimed = true;
    ctx_.container = pooled->container;
    ctx_.ip = pooled->ip;
  } else {
    auto ip = store.leaseAddress(config.network.subnet, ctx_.container);
    ctx_.addressShort = !ip && ip.status().code() == Code::kResourceExhausted;
    if (!ip) return ip.status();
    ctx_.ip = *ip;
  }
  Operation op{0,
               ctx_.ticket.slug,
               ctx_.redeploy ? JournalKind::kRedeploy : JournalKind::kCreate,
               ctx_.container,
               ctx_.ip,
               m_.time_.now(),
               std::nullopt,
               JournalOutcome::kUnfinished,
               ""};
  QABOX_ASSIGN_OR_RETURN(ctx_.opId, store.beginOperation(op));
  if (ctx_.redeploy) {
    // The row keeps naming the serving container until the switch.
    row.state = EnvState::kDeploying;
  } else {
    row.state = EnvState::kCreating;
    row.container = ctx_.container;
    row.ip = ctx_.ip;
    row.spec = ctx_.spec;
    row.imageVersion = ctx_.imageVersion.version;
    row.port = ctx_.app.port.value_or(80);
    row.limits = ctx_.limits;
    row.depsLayer = ctx_.depsHash;
    row.dataLayer = ctx_.dataUse;
  }
  row.updatedAt = m_.time_.now();
  return store.putEnvironment(row);
}

bool DeployRun::mayClaim() const {
  return m_.config_.pool.sizeOf(ctx_.image) > 0 && ctx_.depsHash.empty() && ctx_.dataHash.empty() &&
         m_.config_.storage.dataPool.empty();
}

Status DeployRun::switchOver() {
  ctx_.current = DeployStep::kSwitch;
  Environment& ready = ctx_.ready;
  ready = ctx_.env;
  ready.state = EnvState::kReady;
  ready.container = ctx_.container;
  ready.ip = ctx_.ip;
  ready.spec = ctx_.spec;
  ready.commit = ctx_.merge.commit;
  ready.sourceCommit = ctx_.merge.sourceHead;
  ready.targetCommit = ctx_.merge.targetHead;
  ready.imageVersion = ctx_.imageVersion.version;
  ready.port = ctx_.port;
  ready.limits = ctx_.limits;
  ready.depsLayer = ctx_.depsHash;
  ready.dataLayer = ctx_.dataUse;
  ready.phases = phases_;
  ready.message.clear();
  ready.deployedAt = m_.time_.now();
  ready.updatedAt = ready.deployedAt;
  if (ctx_.spec.ttl) ready.expiresAt = ready.deployedAt + *ctx_.spec.ttl;
  QABOX_RETURN_IF_ERROR(m_.store_.transaction([&]() -> Status {
    QABOX_RETURN_IF_ERROR(m_.store_.putEnvironment(ready));
    return m_.store_.finishOperation(ctx_.opId, JournalOutcome::kOk, ctx_.merge.commit);
  }));
  m_.saveRecord(ready);
  ctx_.done = DeployStep::kSwitch;
  return Status::ok();
}

Environment DeployRun::finish() {
  ctx_.current = DeployStep::kFinish;
  const Ticket& t = ctx_.ticket;
  ctx_.env = ctx_.ready;
  m_.publishRoute(ctx_.env);
  const std::optional<Environment>& old = ctx_.existing;
  if (ctx_.redeploy && old->container != ctx_.container) {
    m_.drain(old->ip, static_cast<uint16_t>(old->port));
    QABOX_FAILPOINT("deploy.finish.destroy-old");
    if (Status d = m_.runtime_.destroy(old->container); !d.isOk()) {
      // Recovery's orphan sweep retries it.
      spdlog::warn("redeploy {}: destroying {}: {}", t.name, old->container, d.toString());
    } else if (Status r = m_.store_.releaseAddressesOf(old->container); !r.isOk()) {
      // The next start releases the leases of containers that are gone.
      spdlog::warn("redeploy {}: releasing the address of {}: {}", t.name, old->container,
                   r.toString());
    }
  }
  const Merge& merge = ctx_.merge;
  m_.event(t.name, ctx_.redeploy ? "redeploy" : "deploy", ctx_.in.actor, "ok",
           describeSource(ctx_.spec) +
               (merge.commit.empty() ? "" : " at " + merge.commit.substr(0, 12)));
  phase("ready", m_.config_.urlFor(t.slug));
  ctx_.done = DeployStep::kFinish;
  return ctx_.env;
}

}  // namespace qabox
