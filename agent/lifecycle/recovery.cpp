// Recovery at start-up: the decisions (pure, tested as a table in
// tests/unit/lifecycle/recovery_test.cpp) and the manager carrying them out.
#include "lifecycle/recovery.h"

#include <spdlog/spdlog.h>

#include <filesystem>

#include "core/failpoint.h"
#include "lifecycle/env_record.h"
#include "lifecycle/internal.h"
#include "lifecycle/manager.h"
#include "runtime/lxc_cgroups.h"
#include "store/ipam.h"
#include "store/paths.h"

namespace qabox {
namespace recovery {

namespace {

constexpr const char* kRedeployInterrupted = "redeploy interrupted by an agent restart";

std::string cannotRead(const std::string& container, const Status& why) {
  return "recovery could not read the state of container " + container + ": " + why.message();
}

JournalDecision rollBackRedeploy(const Operation& op, const std::optional<Environment>& row,
                                 const std::optional<Result<ContainerState>>& serving) {
  JournalDecision d;
  d.action = JournalAction::kRollBackRedeploy;
  d.destroy = true;
  d.done = "rolled back the unfinished redeploy into " + op.container;
  if (!row) return d;
  if (!serving || !serving->isOk()) {
    d.restore = RowRestore::kBroken;
    d.restoreMessage =
        cannotRead(row->container, serving ? serving->status() : internalError("not asked"));
    return d;
  }
  d.restore = **serving == ContainerState::kMissing ? RowRestore::kFailed : RowRestore::kReady;
  d.restoreMessage = kRedeployInterrupted;
  return d;
}

}  // namespace

bool needsServingState(const Operation& op, const std::optional<Environment>& row) {
  return op.kind == JournalKind::kRedeploy && row && row->container != op.container;
}

JournalDecision decideJournal(const Operation& op, const std::optional<Environment>& row,
                              const std::optional<Result<ContainerState>>& serving) {
  const bool ownsIt = row && row->container == op.container;
  JournalDecision d;
  if (op.kind == JournalKind::kImageBuild || op.kind == JournalKind::kDepsBuild ||
      op.kind == JournalKind::kDataBuild) {
    d.action = JournalAction::kSkip;
  } else if (op.kind == JournalKind::kCreate) {
    d.action = JournalAction::kRollBackCreate;
    d.destroy = true;
    d.deleteRowWhenDestroyed = ownsIt && row->state != EnvState::kReady;
    d.breakRowWhenStuck = ownsIt;
    d.done = "rolled back the unfinished create of " + op.container;
  } else if (op.kind == JournalKind::kRedeploy) {
    if (!ownsIt) return rollBackRedeploy(op, row, serving);
    d.action = JournalAction::kKeepSwitched;
    d.done = "kept " + op.container + ": the redeploy had already switched";
  } else if (op.kind == JournalKind::kDelete) {
    d.action = JournalAction::kCompleteDelete;
    d.destroy = true;
    d.deleteRowWhenDestroyed = ownsIt;
    d.breakRowWhenStuck = ownsIt;
    d.done = "completed the unfinished delete of " + op.container;
  }
  return d;
}

std::string cannotDestroy(const std::string& container, const Status& why) {
  return "recovery could not destroy container " + container + ": " + why.message() +
         "; out of service until qabox delete gets it removed";
}

bool ownedOrStuck(const std::string& container, const std::set<std::string>& owned,
                  const std::set<std::string>& stuck) {
  return owned.count(container) > 0 || stuck.count(container) > 0;
}

bool needsContainerState(const Environment& row) { return row.state != EnvState::kBroken; }

RowDecision decideRow(const Environment& row,
                      const std::optional<Result<ContainerState>>& container) {
  RowDecision d;
  if (!needsContainerState(row)) {
    d.action = RowAction::kLeaveBroken;
    return d;
  }
  if (!container || !container->isOk()) {
    d.action = RowAction::kBreak;
    d.message =
        cannotRead(row.container, container ? container->status() : internalError("not asked"));
    return d;
  }
  if (**container == ContainerState::kMissing) {
    // Once recorded, a later start leaves it (and its updated_at) alone.
    if (row.state != EnvState::kFailed || row.message.find("is gone") == std::string::npos) {
      d.action = RowAction::kMarkGone;
      d.message = "container " + row.container + " is gone (found missing at agent start)";
    }
    return d;
  }
  const bool stopped = **container == ContainerState::kStopped;
  if (stopped && (row.state == EnvState::kReady || row.state == EnvState::kDeploying)) {
    d.action = RowAction::kSleep;
    return d;
  }
  if (stopped && row.state != EnvState::kSleeping) d.action = RowAction::kStart;
  if (**container == ContainerState::kRunning && row.state == EnvState::kSleeping) {
    d.action = RowAction::kStop;
  }
  if (inOperation(row.state)) {
    d.settle = row.state == EnvState::kDeleting ? EnvState::kFailed : EnvState::kReady;
  }
  return d;
}

}  // namespace recovery

using recovery::JournalAction;
using recovery::RowAction;
using recovery::RowRestore;

Status EnvironmentManager::recover() {
  QABOX_RETURN_IF_ERROR(guardBridge());
  QABOX_RETURN_IF_ERROR(images_.recover());
  // Before the orphan sweep: a half-built dependency layer and its build
  // container go, and its lease with them.
  QABOX_RETURN_IF_ERROR(layers_->recover());
  recovery::Run run;
  // 1. Operations a crash left unfinished are rolled back (or, for deletes,
  //    completed).
  QABOX_ASSIGN_OR_RETURN(auto ops, store_.unfinishedOperations());
  for (const auto& op : ops) {
    if (op.kind == JournalKind::kImageBuild || op.kind == JournalKind::kDepsBuild ||
        op.kind == JournalKind::kDataBuild)
      continue;
    QABOX_ASSIGN_OR_RETURN(auto row, store_.getEnvironment(op.slug));
    std::optional<Result<ContainerState>> serving;
    if (recovery::needsServingState(op, row)) serving = runtime_.state(row->container);
    QABOX_RETURN_IF_ERROR(carryOut(op, row, recovery::decideJournal(op, row, serving), run));
  }
  // A destroy above whose container was already gone (the agent died after
  // destroying it) could not take its address out of the bridge's set,
  // which guardBridge filled from the rows before: fill it again from the
  // rows that remain.
  if (!ops.empty()) QABOX_RETURN_IF_ERROR(guardBridge());
  // 2. The warm pool: what a fill left half-made, or stopped, goes; then
  //    what exists against what the store says.
  QABOX_RETURN_IF_ERROR(recoverPool());
  QABOX_ASSIGN_OR_RETURN(auto envs, store_.listEnvironments());
  QABOX_RETURN_IF_ERROR(sweepOrphans(envs, run));
  // 3. Each row against its container.
  for (auto& e : envs) {
    std::optional<Result<ContainerState>> state;
    if (recovery::needsContainerState(e)) state = runtime_.state(e.container);
    QABOX_RETURN_IF_ERROR(carryOut(e, recovery::decideRow(e, state), run));
    publishRoute(e);
  }
  sweepCgroups(envs);
  if (run.broken > 0) {
    spdlog::error("recover: {} environment(s) BROKEN (qabox list shows them); starting anyway",
                  run.broken);
  }
  // Layers unused for long (or over a gone image version) go at each start.
  if (auto c = layers_->collect(actors::kAgent); !c) {
    spdlog::warn("recover: collecting dependency layers: {}", c.status().toString());
  }
  return Status::ok();
}

Status EnvironmentManager::guardBridge() {
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
  guard.hostTcpPorts = config_.hostTcpPorts;
  guard.routerTcpPorts = config_.routerTcpPorts;
  // Every container's port binding, from the rows (the set starts empty
  // with the rules); recovery's destroys take theirs out again.
  QABOX_ASSIGN_OR_RETURN(auto rows, store_.listEnvironments());
  for (const auto& row : rows) {
    if (row.container.empty() || row.ip.empty()) continue;
    guard.bindings.push_back(
        {vethName(config_.network.bridge, paths::lxcPath(config_.stateDir), row.container),
         macForAddress(row.ip), row.ip});
  }
  // The warm pool's ready ones too: they stay across a restart. A filling
  // one goes (recoverPool), and may never have had a container.
  QABOX_ASSIGN_OR_RETURN(auto pooled, store_.listPooled());
  for (const auto& p : pooled) {
    if (p.state != PoolState::kReady) continue;
    guard.bindings.push_back(
        {vethName(config_.network.bridge, paths::lxcPath(config_.stateDir), p.container),
         macForAddress(p.ip), p.ip});
  }
  return bridge_.guard(config_.network.bridge, guard);
}

// A container recovery cannot destroy (stuck in D state, busy mount, a
// failing helper) must not keep the whole host from routing: its
// environment becomes BROKEN, with an event and a message, its lease stays
// (something may still use the address), and recovery goes on.
Status EnvironmentManager::markBroken(Environment& e, const std::string& container,
                                      const std::string& message, recovery::Run& run) {
  e.state = EnvState::kBroken;
  e.message = message;
  e.updatedAt = time_.now();
  QABOX_RETURN_IF_ERROR(putRow(e));
  spdlog::error("recover: {}: {}", e.ticket, message);
  event(e.ticket, "recover", actors::kAgent, "error", message);
  run.stuck.insert(container);
  ++run.broken;
  return Status::ok();
}

Status EnvironmentManager::carryOut(const Operation& op, std::optional<Environment>& row,
                                    const recovery::JournalDecision& d, recovery::Run& run) {
  if (d.action == JournalAction::kSkip) return Status::ok();
  QABOX_FAILPOINT("recover.journal.before");
  Status destroyed;
  if (d.destroy) {
    destroyed = runtime_.destroy(op.container);
    if (destroyed.isOk()) {
      QABOX_RETURN_IF_ERROR(store_.releaseAddressesOf(op.container));
      if (d.deleteRowWhenDestroyed) QABOX_RETURN_IF_ERROR(store_.deleteEnvironment(op.slug));
      if (d.deleteRowWhenDestroyed || !row) removeLogs(op.slug);
    }
  }
  if (d.restore == RowRestore::kBroken) {
    QABOX_RETURN_IF_ERROR(markBroken(*row, row->container, d.restoreMessage, run));
  } else if (d.restore != RowRestore::kNone) {
    row->state = d.restore == RowRestore::kFailed ? EnvState::kFailed : EnvState::kReady;
    row->message = d.restoreMessage;
    QABOX_RETURN_IF_ERROR(putRow(*row));
  }
  std::string detail = d.done;
  JournalOutcome outcome = JournalOutcome::kRolledBack;
  if (!destroyed.isOk()) {
    detail = recovery::cannotDestroy(op.container, destroyed);
    outcome = JournalOutcome::kError;
    if (d.breakRowWhenStuck) {
      QABOX_RETURN_IF_ERROR(markBroken(*row, op.container, detail, run));
    } else {
      run.stuck.insert(op.container);
      spdlog::error("recover: {}", detail);
      event(op.slug, "recover", actors::kAgent, "error", detail);
    }
  } else {
    spdlog::info("recover: {}", detail);
    event(op.slug, "recover", actors::kAgent, "ok", detail);
  }
  return store_.finishOperation(op.id, outcome, detail);
}

// An orphan whose record names an environment the store does not hold is
// not garbage but lost state (qabox.db emptied or replaced): destroying it
// would lose the environment for good.
Status EnvironmentManager::refuseRecordedOrphans(const std::vector<Environment>& envs,
                                                 const std::vector<std::string>& orphans) {
  std::set<std::string> slugs;
  for (const auto& e : envs) slugs.insert(e.slug);
  for (const auto& c : orphans) {
    auto record = readEnvRecord(config_.stateDir, c, config_.network.subnet);
    if (!record || slugs.contains(record->slug)) continue;
    return {Code::kDataLoss,
            "recovery: container " + c + " carries the record of " + record->ticket +
                ", which qabox.db does not hold: the state was lost; not destroying it. "
                "Stop, move qabox.db aside and run `qaboxd --config FILE --rebuild-state`"};
  }
  return Status::ok();
}

Status EnvironmentManager::sweepOrphans(const std::vector<Environment>& envs, recovery::Run& run) {
  std::set<std::string> owned;
  for (const auto& e : envs) owned.insert(e.container);
  QABOX_ASSIGN_OR_RETURN(auto pooled, store_.listPooled());
  for (const auto& p : pooled) owned.insert(p.container);
  QABOX_ASSIGN_OR_RETURN(auto listed, runtime_.list());
  std::vector<std::string> containers;
  for (const auto& c : listed) {
    if (!recovery::ownedOrStuck(c, owned, run.stuck)) containers.push_back(c);
  }
  QABOX_RETURN_IF_ERROR(refuseRecordedOrphans(envs, containers));
  for (const auto& c : containers) {
    spdlog::info("recover: destroying {}: no environment owns it", c);
    QABOX_FAILPOINT("recover.orphan.before");
    if (Status d = runtime_.destroy(c); !d.isOk()) {
      // No environment to mark: the lease stays and the next start retries.
      std::string message = "could not destroy orphan container " + c + ": " + d.message() +
                            " (retried at the next start)";
      spdlog::error("recover: {}", message);
      event("", "recover", actors::kAgent, "error", message);
      run.stuck.insert(c);
      continue;
    }
    std::error_code ec;
    fs::remove_all(paths::containerDir(config_.stateDir, c), ec);
    if (ec) spdlog::warn("recover: removing the files of orphan {}: {}", c, ec.message());
    event("", "recover", actors::kAgent, "ok", "destroyed orphan container " + c);
  }
  QABOX_ASSIGN_OR_RETURN(auto leases, store_.listLeases());
  for (const auto& l : leases) {
    if (recovery::ownedOrStuck(l.owner, owned, run.stuck)) continue;
    spdlog::info("recover: releasing {}: {} no longer exists", l.ip, l.owner);
    QABOX_FAILPOINT("recover.lease.before");
    QABOX_RETURN_IF_ERROR(store_.releaseAddress(l.ip));
  }
  return Status::ok();
}

void EnvironmentManager::sweepCgroups(const std::vector<Environment>& envs) {
  std::set<std::string> ours;
  for (const auto& e : envs) ours.insert(e.container);
  if (auto named = store_.journalContainers()) ours.insert(named->begin(), named->end());
  if (auto listed = runtime_.list()) ours.insert(listed->begin(), listed->end());
  // One listing of the hierarchies for all of them, grouped by owner.
  const auto owned = cgroupDirsByOwner(
      lxcCgroupDirs(), ours, [&ours](const std::string& other) { return ours.count(other) > 0; });
  size_t removed = 0;
  for (const auto& [c, dirs] : owned) {
    auto st = runtime_.state(c);
    if (st && *st == ContainerState::kRunning) continue;
    removed += removeEmptyCgroups(dirs);
  }
  if (removed > 0) {
    spdlog::info("recover: removed {} cgroup directories of containers that do not run", removed);
  }
}

Status EnvironmentManager::carryOut(Environment& e, const recovery::RowDecision& d,
                                    recovery::Run& run) {
  switch (d.action) {
    case RowAction::kLeaveBroken:
    case RowAction::kKeep: break;
    case RowAction::kBreak: return markBroken(e, e.container, d.message, run);
    case RowAction::kMarkGone:
      e.state = EnvState::kFailed;
      e.message = d.message;
      e.updatedAt = time_.now();
      QABOX_RETURN_IF_ERROR(putRow(e));
      spdlog::warn("recover: {}: {}", e.ticket, e.message);
      break;
    case RowAction::kSleep:
      e.state = EnvState::kSleeping;
      e.updatedAt = time_.now();
      QABOX_RETURN_IF_ERROR(putRow(e));
      spdlog::info("recover: {} was stopped (a host restart): asleep until its next request",
                   e.container);
      break;
    case RowAction::kStop:
      if (Status s = runtime_.stop(e.container); !s.isOk()) {
        // Still running: a wake finds it up and only checks its health.
        spdlog::warn("recover: stopping {} (SLEEPING but running): {}", e.container, s.toString());
      } else {
        spdlog::info("recover: stopped {}: SLEEPING, found running (an interrupted wake)",
                     e.container);
      }
      break;
    case RowAction::kStart: {
      // A host reboot stops every container; bring it back.
      Status s = runtime_.start(e.container);
      spdlog::info("recover: starting stopped {}: {}", e.container, s.toString());
      if (!s.isOk()) {
        e.state = EnvState::kFailed;
        e.message = "restarting " + e.container + " after an agent restart failed: " + s.message();
        QABOX_RETURN_IF_ERROR(putRow(e));
      }
      break;
    }
  }
  // A failed start made it FAILED: then there is nothing to settle.
  if (d.settle && inOperation(e.state)) {
    e.state = *d.settle;
    QABOX_RETURN_IF_ERROR(putRow(e));
  }
  return Status::ok();
}

}  // namespace qabox
