// The deploy's one rollback: what a failure undoes depends on the step it
// happened in (undoFor), and nothing else.
#include <spdlog/spdlog.h>

#include <filesystem>
#include <system_error>

#include "core/failpoint.h"
#include "lifecycle/deploy_steps.h"
#include "store/paths.h"
#include "sys/disk_usage.h"

namespace qabox {

DeployUndo undoFor(DeployStep failed, bool redeploy, bool hasRepo, bool diskFull) {
  // Up to and with the intent's transaction nothing was written.
  if (failed <= DeployStep::kReserve) return DeployUndo::kNothing;
  if (redeploy) return DeployUndo::kRestoreOld;
  // A full disk is the host's emergency, not something this environment
  // may keep for inspection: what the deploy wrote goes at once, so the
  // other environments (and the agent's own writes) have room again. A
  // failed clone leaves nothing to inspect.
  // Nor does a failed dependency or data layer (its build cleans up after
  // itself).
  if (diskFull || failed == DeployStep::kDeps || failed == DeployStep::kData ||
      stepName(failed, hasRepo) == "clone") {
    return DeployUndo::kRollBackWhole;
  }
  return DeployUndo::kKeepFailed;
}

Result<Environment> DeployRun::rollback(Status s) {
  failed_ = true;
  const bool hasRepo = ctx_.repo != nullptr;
  if (undoFor(ctx_.current, ctx_.redeploy, hasRepo, false) == DeployUndo::kNothing) return s;
  const auto& config = m_.config_;
  s = Status(s.code(), redactor_.redact(s.message()));
  bool full = false;
  if (auto space = fsSpace(config.stateDir); !space) {
    spdlog::warn("deploy {}: measuring the disk of {}: {}", ctx_.ticket.name, config.stateDir,
                 space.status().toString());
  } else if (nearlyFull(*space)) {
    full = true;
    s = resourceExhausted(s.message() + "; the disk of the state dir " + config.stateDir +
                          " is full (" + formatBytes(space->available) + " left of " +
                          formatBytes(space->total) + ")");
  }
  const std::string message = failedStep() + " failed: " + s.message();
  spdlog::warn("deploy {}: {}", ctx_.ticket.name, message);
  QABOX_FAILPOINT("deploy.rollback.begin");
  switch (undoFor(ctx_.current, ctx_.redeploy, hasRepo, full)) {
    case DeployUndo::kRestoreOld: return restoreOld(message);
    case DeployUndo::kKeepFailed:
      if (keepFailed(message, !watch_.breach().empty())) {
        m_.event(ctx_.ticket.name, "deploy", ctx_.in.actor, "error", message);
        failedPhase(message);
        return ctx_.env;
      }
      // Its failure could not be recorded: rolled back instead.
      return rollBackWhole(s, message, full);
    case DeployUndo::kRollBackWhole: return rollBackWhole(s, message, full);
    case DeployUndo::kNothing: break;
  }
  return s;
}

Status DeployRun::recordFailure(const std::string& message) {
  QABOX_RETURN_IF_ERROR(m_.store_.transaction([&]() -> Status {
    QABOX_RETURN_IF_ERROR(m_.store_.putEnvironment(ctx_.env));
    return m_.store_.finishOperation(ctx_.opId, JournalOutcome::kError, message);
  }));
  // FAILED (or the old row kept) in the record too: a rebuild must not
  // bring the environment back as it was before.
  m_.saveRecord(ctx_.env);
  return Status::ok();
}

Result<Environment> DeployRun::restoreOld(const std::string& message) {
  const Ticket& t = ctx_.ticket;
  // The old container keeps serving: drop the new one (first: its writes
  // may be what fills the disk), keep the row.
  QABOX_FAILPOINT("deploy.rollback.restore-old");
  if (Status d = m_.runtime_.destroy(ctx_.container); !d.isOk()) {
    // Its lease stays; the next start's orphan sweep retries the destroy.
    spdlog::warn("redeploy {}: destroying {}: {}", t.name, ctx_.container, d.toString());
  } else if (Status r = m_.store_.releaseAddressesOf(ctx_.container); !r.isOk()) {
    spdlog::warn("redeploy {}: releasing the address of {}: {}", t.name, ctx_.container,
                 r.toString());
  }
  ctx_.env.message = "redeploy failed: " + message;
  ctx_.env.updatedAt = m_.time_.now();
  if (Status w = recordFailure(message); !w.isOk()) {
    spdlog::error("redeploy {}: recording the failure: {}", t.name, w.toString());
  }
  m_.publishRoute(ctx_.env);
  m_.event(t.name, "redeploy", ctx_.in.actor, "error", message);
  failedPhase(message);
  return ctx_.env;
}

bool DeployRun::keepFailed(const std::string& message, bool overDisk) {
  const Ticket& t = ctx_.ticket;
  // Kept for inspection until deleted, holding its lease: a FAILED row.
  if (overDisk) {
    // Over its disk limit: stopped, so it cannot write more.
    if (Status st = m_.runtime_.stop(ctx_.container); !st.isOk()) {
      spdlog::warn("deploy {}: stopping {}: {}", t.name, ctx_.container, st.toString());
    }
  }
  ctx_.env.state = EnvState::kFailed;
  ctx_.env.message = message;
  ctx_.env.updatedAt = m_.time_.now();
  if (Status w = recordFailure(message); !w.isOk()) {
    spdlog::warn("deploy {}: recording the failure: {}; rolling it back instead", t.name,
                 w.toString());
    return false;
  }
  m_.publishRoute(ctx_.env);
  return true;
}

Status DeployRun::rollBackWhole(const Status& s, const std::string& message, bool full) {
  const Ticket& t = ctx_.ticket;
  Store& store = m_.store_;
  // Rolled back whole: no container, no lease, no row.
  QABOX_FAILPOINT("deploy.rollback.whole");
  if (Status d = m_.runtime_.destroy(ctx_.container); !d.isOk()) {
    // The next start's orphan sweep retries it.
    spdlog::warn("deploy {}: destroying {}: {}", t.name, ctx_.container, d.toString());
  }
  Status w = store.transaction([&]() -> Status {
    QABOX_RETURN_IF_ERROR(store.releaseAddressesOf(ctx_.container));
    QABOX_RETURN_IF_ERROR(store.deleteEnvironment(t.slug));
    return store.finishOperation(ctx_.opId, JournalOutcome::kRolledBack, message);
  });
  if (!w.isOk()) {
    // The journal still says create: the next start rolls it back.
    spdlog::error("deploy {}: rolling back: {}", t.name, w.toString());
  }
  QABOX_FAILPOINT("deploy.rollback.recorded");
  m_.routes_.remove(t.slug);
  const bool cloneFailed = failedStep() == "clone";
  if (!cloneFailed) {
    std::error_code ec;
    const std::string logs = paths::logDir(m_.config_.stateDir, t.slug);
    fs::remove_all(logs, ec);
    if (ec) spdlog::warn("deploy {}: removing {}: {}", t.name, logs, ec.message());
  }
  m_.event(t.name, "deploy", ctx_.in.actor, "error", message);
  if (cloneFailed && !full) return s;
  failedPhase(message + " (rolled back)");
  return Status(s.code(), message + " (rolled back: nothing of it is left)");
}

}  // namespace qabox
