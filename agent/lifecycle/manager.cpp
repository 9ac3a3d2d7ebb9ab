#include "lifecycle/manager.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <set>
#include <thread>

#include "core/failpoint.h"
#include "core/redact.h"
#include "deploy/manifest.h"
#include "lifecycle/env_record.h"
#include "lifecycle/input_check.h"
#include "lifecycle/internal.h"
#include "lifecycle/services.h"
#include "store/ipam.h"
#include "store/paths.h"
#include "sys/capped_log.h"
#include "sys/disk_usage.h"
#include "sys/idshift.h"
#include "sys/safe_path.h"

namespace qabox {
std::string envFileOf(const std::map<std::string, std::string>& env) {
  std::string text;
  for (const auto& [k, v] : env) text += k + "=" + shellQuote(v) + "\n";
  return text;
}

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

EnvironmentManager::EnvironmentManager(LifecycleOptions options, Store& store,
                                       ContainerRuntime& runtime, Bridge& bridge,
                                       ImageCatalog& images, GitSource* git, RouteTable& routes,
                                       HealthCheck health, const TimeSource& time)
    : config_(std::move(options)),
      store_(store),
      runtime_(runtime),
      bridge_(bridge),
      images_(images),
      git_(git),
      routes_(routes),
      health_(std::move(health)),
      time_(time),
      layers_(std::make_unique<LayerCache>(config_, store_, runtime_, time_)) {
  pool_ = makePoolKeeper();
}

EnvironmentManager::~EnvironmentManager() { stopPool(); }

Result<std::vector<CachedLayer>> EnvironmentManager::layers() { return store_.listLayers(); }

Result<std::vector<std::string>> EnvironmentManager::collectLayers(const std::string& actor) {
  return layers_->collect(actor);
}

std::shared_ptr<std::timed_mutex> EnvironmentManager::ticketLock(const std::string& slug) {
  std::lock_guard l(locksMu_);
  auto& m = locks_[slug];
  if (!m) m = std::make_shared<std::timed_mutex>();
  return m;
}

std::shared_ptr<void> EnvironmentManager::markInFlight(const std::string& slug) {
  std::lock_guard l(callsMu_);
  const uint64_t id = nextCall_++;
  const TimePoint now = time_.now();
  calls_[id] = {slug, now};
  if (watching_ > 0) watched_.emplace(slug, now);
  return std::shared_ptr<void>(nullptr, [this, id](void*) {
    std::lock_guard l2(callsMu_);
    calls_.erase(id);
  });
}

std::map<std::string, TimePoint> EnvironmentManager::inFlight() const {
  std::lock_guard l(callsMu_);
  std::map<std::string, TimePoint> out;
  for (const auto& [id, call] : calls_) {
    auto [it, added] = out.emplace(call.first, call.second);
    if (!added && call.second < it->second) it->second = call.second;
  }
  return out;
}

void EnvironmentManager::watchCalls() {
  std::lock_guard l(callsMu_);
  if (watching_++ == 0) watched_.clear();
  for (const auto& [id, call] : calls_) {
    auto [it, added] = watched_.emplace(call.first, call.second);
    if (!added && call.second < it->second) it->second = call.second;
  }
}

std::map<std::string, TimePoint> EnvironmentManager::unwatchCalls() {
  std::lock_guard l(callsMu_);
  --watching_;
  return watched_;
}

Status EnvironmentManager::refuseWhenStopping() const {
  if (stopping_) return unavailable("the agent is shutting down; try again when it is back");
  return Status::ok();
}

Result<EnvironmentManager::LockedRow> EnvironmentManager::lockRow(
    const std::string& ticket, std::optional<std::chrono::milliseconds> wait) {
  LockedRow row;
  QABOX_ASSIGN_OR_RETURN(row.ticket, parseTicket(ticket));
  row.mutex = ticketLock(row.ticket.slug);
  if (!wait) {
    row.lock = std::unique_lock(*row.mutex);
  } else if (row.lock = std::unique_lock(*row.mutex, *wait); !row.lock.owns_lock()) {
    return failedPrecondition("a deploy (or delete) of " + row.ticket.name +
                              " is running; try again when it ends");
  }
  row.inFlight = markInFlight(row.ticket.slug);
  QABOX_ASSIGN_OR_RETURN(row.env, get(row.ticket.name));
  return row;
}

void EnvironmentManager::touch(const std::string& slug) {
  AccessStats a;
  a.slug = slug;
  a.lastAccessAt = time_.now();
  if (Status s = store_.recordAccess({a}); !s.isOk()) {
    spdlog::warn("{}: recording its use: {}", slug, s.toString());
  }
}

void EnvironmentManager::event(const std::string& ticket, const std::string& action,
                               const std::string& actor, const std::string& outcome,
                               const std::string& detail) {
  auto s = store_.addEvent({0, time_.now(), ticket, action, actor, outcome, detail});
  if (!s.isOk()) spdlog::warn("recording event {} {}: {}", action, ticket, s.toString());
}

Status EnvironmentManager::putRow(const Environment& env) {
  QABOX_RETURN_IF_ERROR(store_.putEnvironment(env));
  saveRecord(env);
  return Status::ok();
}

void EnvironmentManager::saveRecord(const Environment& env) {
  if (Status s = writeEnvRecord(config_.stateDir, env); !s.isOk()) {
    spdlog::warn("{}: writing its record beside the container: {}", env.ticket, s.toString());
  }
}

void EnvironmentManager::publishRoute(const Environment& env) {
  Route r;
  r.slug = env.slug;
  r.state = env.state;
  r.ip = env.ip;
  r.port = static_cast<uint16_t>(env.port);
  r.message = env.message;
  r.login = config_.accessOf(env.spec) == "login";
  r.generation = generation_++;
  QABOX_FAILPOINT("route.publish.before");
  routes_.set(std::move(r));
  QABOX_FAILPOINT("route.publish.after");
}

void EnvironmentManager::drain(const std::string& ip, uint16_t port) {
  // Requests the router already sent to a container finish before it goes;
  // new ones go to the new route (or get the 404 page).
  auto deadline = time_.steadyNow() + std::chrono::seconds(10);
  while (routes_.inFlight(ip, port) > 0 && time_.steadyNow() < deadline) {
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
  QABOX_RETURN_IF_ERROR(refuseWhenStopping());
  QABOX_ASSIGN_OR_RETURN(LockedRow row, lockRow(ticket));
  if (stillDue) QABOX_RETURN_IF_ERROR(stillDue(row.env));
  QABOX_RETURN_IF_ERROR(removeLocked(row.env, actor, why));
  row.lock.unlock();
  if (!row.env.depsLayer.empty() || !row.env.dataLayer.empty()) {
    // Its layers may be unused now; collection decides.
    if (auto c = layers_->collect(actor); !c) {
      spdlog::warn("delete {}: collecting cached layers: {}", row.env.ticket,
                   c.status().toString());
    }
  }
  return Status::ok();
}

Status EnvironmentManager::reclaim(const std::string& ticket, const std::string& why,
                                   const std::function<Status(const Environment&)>& stillDue) {
  return remove(ticket, actors::kReaper, why, stillDue);
}

Status EnvironmentManager::removeLocked(const Environment& env, const std::string& actor,
                                        const std::string& why) {
  QABOX_ASSIGN_OR_RETURN(
      int64_t opId,
      store_.beginOperation({0, env.slug, JournalKind::kDelete, env.container, env.ip, time_.now(),
                             std::nullopt, JournalOutcome::kUnfinished, why}));
  Environment row = env;
  row.state = EnvState::kDeleting;
  row.updatedAt = time_.now();
  QABOX_FAILPOINT("delete.begun");
  QABOX_RETURN_IF_ERROR(putRow(row));
  // The route goes first: no request may reach a container being destroyed.
  routes_.remove(env.slug);
  QABOX_FAILPOINT("delete.unrouted");
  drain(env.ip, static_cast<uint16_t>(env.port));
  Status s = runtime_.destroy(env.container);
  QABOX_FAILPOINT("delete.destroyed");
  if (!s.isOk()) {
    // The container is still there and could not be removed: out of
    // service until a delete gets through (each delete tries again).
    row.state = EnvState::kBroken;
    row.message =
        "delete failed: " + s.message() + " (qabox delete " + env.ticket + " tries again)";
    if (Status w = putRow(row); !w.isOk()) {
      spdlog::warn("delete {}: recording it BROKEN: {}", env.ticket, w.toString());
    }
    if (Status w = store_.finishOperation(opId, JournalOutcome::kError, s.message()); !w.isOk()) {
      spdlog::warn("delete {}: closing its journal entry: {}", env.ticket, w.toString());
    }
    publishRoute(row);
    event(env.ticket, "delete", actor, "error", s.message());
    return s;
  }
  // The logs go before the row: once the row is gone nothing would own
  // them, while a crash before the commit leaves a journal entry that
  // recovery completes (logs included).
  removeLogs(env.slug);
  QABOX_FAILPOINT("delete.logs-removed");
  QABOX_RETURN_IF_ERROR(store_.transaction([&]() -> Status {
    QABOX_RETURN_IF_ERROR(store_.releaseAddressesOf(env.container));
    QABOX_RETURN_IF_ERROR(store_.deleteEnvironment(env.slug));
    return store_.finishOperation(opId, JournalOutcome::kOk, "");
  }));
  QABOX_FAILPOINT("delete.recorded");
  event(env.ticket, "delete", actor, "ok", why.empty() ? env.container : why);
  return Status::ok();
}

void EnvironmentManager::removeLogs(const std::string& slug) {
  std::error_code ec;
  fs::remove_all(paths::logDir(config_.stateDir, slug), ec);
  if (ec) spdlog::warn("{}: removing its deploy log: {}", slug, ec.message());
}

Result<Environment> EnvironmentManager::setPinned(const std::string& ticket, bool pinned,
                                                  const std::string& actor) {
  QABOX_RETURN_IF_ERROR(
      refuseWhenDiskFull(config_.stateDir, pinned ? "pin " + ticket : "unpin " + ticket));
  QABOX_ASSIGN_OR_RETURN(LockedRow row, lockRow(ticket));
  row.env.pinned = pinned;
  row.env.updatedAt = time_.now();
  QABOX_RETURN_IF_ERROR(putRow(row.env));
  event(row.env.ticket, pinned ? "pin" : "unpin", actor, "ok", "");
  return row.env;
}

EnvironmentManager::ExecHold::ExecHold(EnvironmentManager& m, std::string slug)
    : m_(m), slug_(std::move(slug)) {
  std::lock_guard l(m_.locksMu_);
  ++m_.execs_[slug_];
}

EnvironmentManager::ExecHold::~ExecHold() {
  std::lock_guard l(m_.locksMu_);
  if (--m_.execs_[slug_] == 0) m_.execs_.erase(slug_);
}

int EnvironmentManager::execsRunning(const std::string& slug) {
  std::lock_guard l(locksMu_);
  auto it = execs_.find(slug);
  return it == execs_.end() ? 0 : it->second;
}

Result<Environment> EnvironmentManager::execTarget(LockedRow& row, const std::string& actor) {
  // Under the ticket's lock: a sleep, delete or redeploy either finished
  // before this look or waits until the command holds the environment.
  if (row.env.state == EnvState::kSleeping) {
    QABOX_ASSIGN_OR_RETURN(row.env, wakeLocked(row.env, actor));
  }
  const Environment& e = row.env;
  if (e.state != EnvState::kReady && e.state != EnvState::kFailed) {
    return failedPrecondition("ticket " + e.ticket +
                              ": commands run in a READY environment (it is " +
                              std::string(stateName(e.state)) + ")");
  }
  QABOX_ASSIGN_OR_RETURN(auto st, runtime_.state(e.container));
  if (st != ContainerState::kRunning) {
    return failedPrecondition("ticket " + e.ticket + ": container " + e.container +
                              " is not running (the environment is " +
                              std::string(stateName(e.state)) + ": " +
                              (e.message.empty() ? "redeploy it" : e.message) + ")");
  }
  return e;
}

std::string EnvironmentManager::execCutShort(const Environment& e) {
  auto now = store_.getEnvironment(e.slug);
  if (!now) return "";
  if (!*now) return "went away (the environment was deleted)";
  if ((*now)->container != e.container) {
    return "went away (the environment was redeployed as " + (*now)->container + ")";
  }
  if ((*now)->state == EnvState::kDeleting) return "went away (the environment is being deleted)";
  auto st = runtime_.state(e.container);
  if (st && *st != ContainerState::kRunning) {
    return "stopped (the environment is " + std::string(stateName((*now)->state)) + ")";
  }
  return "";
}

Result<ProcessResult> EnvironmentManager::exec(
    const std::string& ticket, const std::vector<std::string>& argv,
    const std::map<std::string, std::string>& env, const std::string& stdinData,
    milliseconds timeout, const std::function<void(bool, std::string_view)>& onOutput,
    const std::string& actor) {
  QABOX_RETURN_IF_ERROR(checkExecInput(argv, env));
  QABOX_RETURN_IF_ERROR(refuseWhenStopping());
  // Bounded: a deploy holds the lock up to its hooks' timeout, and this
  // call a gRPC thread meanwhile.
  QABOX_ASSIGN_OR_RETURN(LockedRow row, lockRow(ticket, execLockWait_));
  QABOX_ASSIGN_OR_RETURN(Environment e, execTarget(row, actor));
  touch(e.slug);
  // The command holds the environment awake (sleep refuses while it runs),
  // not the ticket's lock: a deploy or delete need not wait for it.
  ExecHold hold(*this, e.slug);
  row.lock.unlock();
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
  // A use of the environment, at its end too: the idle sleep counts from
  // when the command ended, not from when it began.
  touch(e.slug);
  if (!r || r->exitCode != 0) {
    // A delete or a redeploy may have taken the container away meanwhile:
    // say so rather than what liblxc, or the command it cut short, said.
    if (std::string gone = execCutShort(e); !gone.empty()) {
      r = failedPrecondition("ticket " + e.ticket + ": container " + e.container + " " + gone +
                             " while the command ran");
    }
  }
  event(e.ticket, "exec", actor, r ? "ok" : "error",
        argv.front() + (r ? " exit " + std::to_string(r->exitCode) : ": " + r.status().message()));
  return r;
}

Result<EnvironmentManager::LogFile> EnvironmentManager::logPath(const std::string& ticket,
                                                                bool deployLog,
                                                                const std::string& process) {
  if (!process.empty() && !supervise::validName(process)) {
    return invalidArgument("process " + printable(process, 40) +
                           ": must match [a-z][a-z0-9_-]{0,31}");
  }
  if (deployLog && !process.empty()) {
    return invalidArgument("process: the deploy log is one for all processes");
  }
  QABOX_ASSIGN_OR_RETURN(Environment e, get(ticket));
  if (!deployLog && e.state == EnvState::kSleeping) {
    QABOX_ASSIGN_OR_RETURN(e, wake(ticket, actors::kLogs));
  }
  if (deployLog) return LogFile{paths::logDir(config_.stateDir, e.slug), "deploy.log"};
  const std::string upper = runtime_.upperDir(e.container);
  QABOX_ASSIGN_OR_RETURN(auto image, images_.manifest(e.spec.image));
  auto app = appManifestOf(e);
  if (!app && process.empty()) {
    // The log is still there to read: the default process's, as the image says.
    spdlog::warn("logs {}: reading its qabox.toml: {}", ticket, app.status().toString());
    app = image.defaults;
  }
  if (!app) return app.status();
  if (process.empty()) return LogFile{upper, appLogOf(image, *app)};
  std::vector<std::string> names = app->services;
  if (app->process.empty()) names.push_back(kDefaultProcess);
  for (const auto& [name, command] : app->processes) names.push_back(name);
  if (image.init != kSupervisorInit) names = {kDefaultProcess};
  if (std::find(names.begin(), names.end(), process) == names.end()) {
    std::string all;
    for (const std::string& n : names) all += (all.empty() ? "" : ", ") + n;
    return notFound("ticket " + e.ticket + ": no process " + process + " (it has: " + all + ")");
  }
  if (image.init != kSupervisorInit) return LogFile{upper, paths::kAppLog};
  return LogFile{upper, processLog(process)};
}

std::vector<EnvironmentManager::ProcessInfo> EnvironmentManager::processesOf(
    const Environment& env) {
  if (env.container.empty() || env.state == EnvState::kSleeping) return {};
  auto image = images_.manifest(env.spec.image);
  if (!image || image->init != kSupervisorInit) return {};
  auto status = readInitStatus(runtime_.upperDir(env.container));
  if (!status) {
    if (status.status().code() != Code::kNotFound) {
      spdlog::warn("get {}: {}", env.ticket, status.status().toString());
    }
    return {};
  }
  std::vector<std::string> services;
  if (auto app = appManifestOf(env)) {
    services = app->services;
  } else {
    spdlog::warn("get {}: reading its qabox.toml: {}", env.ticket, app.status().toString());
    for (const auto& [name, def] : image->services) services.push_back(name);
  }
  std::vector<ProcessInfo> out;
  for (auto& p : status->processes) {
    p.message = printable(p.message, 200);
    bool service = std::find(services.begin(), services.end(), p.name) != services.end();
    out.push_back({std::move(p), service});
  }
  return out;
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
}  // namespace qabox
