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
    if (op.kind == JournalKind::kImageBuild) continue;
    QABOX_ASSIGN_OR_RETURN(auto env, store_.getEnvironment(op.slug));
    std::string decision;
    JournalOutcome outcome = JournalOutcome::kRolledBack;
    Status destroyed;
    const bool ownsIt = env && env->container == op.container;
    if (op.kind == JournalKind::kCreate) {
      destroyed = runtime_.destroy(op.container);
      if (destroyed.isOk()) {
        QABOX_RETURN_IF_ERROR(store_.releaseAddressesOf(op.container));
        if (ownsIt && env->state != EnvState::kReady) {
          QABOX_RETURN_IF_ERROR(store_.deleteEnvironment(op.slug));
        }
        decision = "rolled back the unfinished create of " + op.container;
      }
    } else if (op.kind == JournalKind::kRedeploy) {
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
    } else if (op.kind == JournalKind::kDelete) {
      destroyed = runtime_.destroy(op.container);
      if (destroyed.isOk()) {
        QABOX_RETURN_IF_ERROR(store_.releaseAddressesOf(op.container));
        if (ownsIt) QABOX_RETURN_IF_ERROR(store_.deleteEnvironment(op.slug));
        decision = "completed the unfinished delete of " + op.container;
      }
    }
    if (!destroyed.isOk()) {
      decision = cannotDestroy(op.container, destroyed);
      outcome = JournalOutcome::kError;
      if (ownsIt && op.kind != JournalKind::kRedeploy) {
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
