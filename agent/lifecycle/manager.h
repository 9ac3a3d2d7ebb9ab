#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/config.h"
#include "core/environment.h"
#include "core/ticket.h"
#include "deploy/git.h"
#include "deploy/image_builder.h"
#include "deploy/manifest.h"
#include "init/contract.h"
#include "lifecycle/invariants.h"
#include "lifecycle/layers.h"
#include "lifecycle/options.h"
#include "lifecycle/periodic.h"
#include "lifecycle/recovery.h"
#include "proxy/router.h"
#include "runtime/runtime.h"
#include "store/store.h"

namespace qabox {

class Metrics;

struct DeployInput {
  std::string ticket;
  DeploySpec spec;
  std::map<std::string, std::string> secrets;  // values never stored, logged or returned
  bool force = false;
  std::string actor;
  // A redeploy: only of an environment that still exists when the ticket's
  // lock is taken (NOT_FOUND once a delete got there first).
  bool redeploy = false;
};

struct Progress {
  // The phase of a deploy's last progress event when it failed; the wire
  // string the transport and the CLI compare with.
  static constexpr const char* kFailed = "failed";
  std::string phase;
  std::string detail;
  std::chrono::milliseconds took{0};
};
using ProgressFn = std::function<void(const Progress&)>;

using HealthCheck = std::function<Status(const std::string& ip, uint16_t port,
                                         const std::string& path, std::chrono::milliseconds)>;

// The lifecycle of environments: deploy, redeploy, delete, exec, recovery.
// Every mutation writes its intent to the journal before it touches the
// host; operations on one ticket are serialised, different tickets proceed
// in parallel.
class EnvironmentManager {
 public:
  // `options` from daemon/options.h (lifecycleOptions); the references must
  // outlive the manager.
  EnvironmentManager(LifecycleOptions options, Store& store, ContainerRuntime& runtime,
                     Bridge& bridge, ImageCatalog& images, GitSource* git, RouteTable& routes,
                     HealthCheck health, const TimeSource& time = systemTime());
  ~EnvironmentManager();

  // Start-up, before the API listens: reconciles the journal and the store
  // with the containers that really exist, and fills the route table.
  Status recover();

  Result<Environment> deploy(const DeployInput& in, const ProgressFn& progress);
  // deploy() again from what `ticket` was deployed from, fetching its
  // branches' new commits. FAILED_PRECONDITION when it was deployed with
  // secrets: their values were never kept.
  Result<Environment> redeploy(const std::string& ticket, bool force, const std::string& actor,
                               const ProgressFn& progress);
  Result<Environment> get(const std::string& ticket);
  Result<std::vector<Environment>> list();
  // `stillDue`, when given, is checked under the ticket's lock: the reaper's
  // reason may no longer hold once a redeploy or pin got there first.
  Status remove(const std::string& ticket, const std::string& actor, const std::string& why = "",
                const std::function<Status(const Environment&)>& stillDue = {});
  // The reaper's delete path (Reaper::ReclaimFn): remove() as the reaper,
  // with its "still due?" re-check under the ticket's lock, so a redeploy, a
  // pin or a wake that got the lock first wins over the reaper's decision.
  Status reclaim(const std::string& ticket, const std::string& why,
                 const std::function<Status(const Environment&)>& stillDue);
  Result<Environment> setPinned(const std::string& ticket, bool pinned, const std::string& actor);
  Result<ProcessResult> exec(const std::string& ticket, const std::vector<std::string>& argv,
                             const std::map<std::string, std::string>& env,
                             const std::string& stdinData, std::chrono::milliseconds timeout,
                             const std::function<void(bool, std::string_view)>& onOutput,
                             const std::string& actor);
  // How long exec waits for the ticket's lock (a deploy or delete holds it)
  // before it answers FAILED_PRECONDITION: 2 s; tests shorten it.
  void setExecLockWait(std::chrono::milliseconds wait) { execLockWait_ = wait; }
  // Sleeping: the container stops, its rootfs, address, route and row stay.
  // Waking starts it and waits for the app's health check.
  Result<Environment> sleep(const std::string& ticket, const std::string& actor);
  Result<Environment> wake(const std::string& ticket, const std::string& actor);
  // The router's wake hook: by slug, as the route table knows it.
  Status wakeSlug(const std::string& slug);
  // Puts every READY, unpinned environment idle for sleep_after to sleep.
  Result<std::vector<std::string>> sleepIdle(TimePoint now);

  // How far each environment of `repoName` has fallen behind its target
  // branch since its deploy merged it (Environment::behind, targetHead;
  // staleness.cpp). `fetchFirst` fetches the repo's mirror first (a push
  // to the target); otherwise the mirror is read as the last fetch left it
  // (after a deploy or a reap pass). Returns the environments whose target
  // moved in this refresh (the target-push webhook redeploys them when the
  // repo says on_target_push = "redeploy"). NOT_FOUND for a repo not in the
  // config; the fetch's error as it is.
  struct TargetMoved {
    std::string ticket;
    std::string target;
    uint32_t behind = 0;
  };
  Result<std::vector<TargetMoved>> refreshBehind(const std::string& repoName, bool fetchFirst);

  // Measures the own layer of every running environment against
  // limits.max_disk and limits.max_files; one above is FAILED, with a message
  // naming the limit and its use, and its container stopped so it cannot
  // write more (its lease stays until it is deleted). The tickets failed.
  Result<std::vector<std::string>> enforceDiskLimits();

  // Where the app log (in the container's upper layer) or the last deploy's
  // hook output is: a directory the agent made, and the file beneath it, to
  // be read without following links (sys/safe_path.h): the container owns
  // everything below its upper dir.
  struct LogFile {
    std::string root;
    std::string relative;
  };
  // `process` (a supervised environment's process or service, by name):
  // its own log; empty: the routed process's log, or app.log when the
  // image has no qabox-init.
  Result<LogFile> logPath(const std::string& ticket, bool deployLog,
                          const std::string& process = "");

  // What qabox-init says of each process (its status.json, which the app
  // can forge: shown, never acted on), and whether it is a service. Empty
  // when the environment is not supervised, sleeps, or the file is not
  // there or not qabox-init's.
  struct ProcessInfo {
    supervise::ProcessStatus status;
    bool service = false;
  };
  std::vector<ProcessInfo> processesOf(const Environment& env);

  // New mutations are refused from now on; in-flight ones finish.
  // The cached layers ([deps] and [data]), and their collection: those no
  // environment names, unused for deploy.deps_max_age, whose image version
  // is gone, or (data) replaced by a newer one, are removed (their hashes
  // returned).
  Result<std::vector<CachedLayer>> layers();
  Result<std::vector<std::string>> collectLayers(const std::string& actor);

  void beginShutdown() { stopping_ = true; }

  // The warm pool (pool.cpp; config [pool]). startPool() starts its keeper
  // thread when the config asks for a pool (after recover()); stopPool()
  // stops it, letting a fill in progress finish. tendPool() is one pass of
  // its upkeep: a pooled container no deploy may claim (its image version
  // no longer current, beyond its image's size, of limits a deploy no
  // longer gets, or stopped) goes;
  // below pool.min_free_memory or min_free_disk the newest goes; else one is
  // filled for the first image short of its size. True when it changed
  // something.
  void startPool();
  void stopPool();
  bool tendPool();
  // The invariant checker (lifecycle/invariants.h) over this agent's host,
  // with its route table and the calls in flight known.
  struct Checked {
    ViolationReport report;  // the first kMaxViolationsListed, and the totals
    size_t inFlight = 0;
  };
  Result<Checked> checkInvariants();
  // The calls in flight by slug: when the oldest of each took its ticket's lock.
  std::map<std::string, TimePoint> inFlight() const;
  // What lists the bridge's firewall set for the checker (Nftables::run);
  // without it, the checker leaves the set out.
  void setFirewallLister(std::function<Result<std::string>(const std::string&)> nft) {
    nft_ = std::move(nft);
  }
  // What mounts a dataset's layers to copy them into the data pool
  // (storage.data_pool); the runtime, in the agent.
  void setLayerMounter(LayerMounter* mounter) { layers_->setMounter(mounter); }
  // Deploys and their phases, and wakes, are counted there; may be null.
  void setMetrics(Metrics* metrics) { metrics_ = metrics; }
  Metrics* metrics() const { return metrics_; }

  const LifecycleOptions& options() const { return config_; }

 private:
  friend class DeployRun;  // the deploy's steps (lifecycle/deploy_steps.h)

  struct Target {
    std::string container;
    std::string ip;
  };

  std::shared_ptr<std::timed_mutex> ticketLock(const std::string& slug);
  // Marks a call on `slug` in flight from now until the mark is let go:
  // taken with the ticket's lock, so what the call makes is its own to the
  // invariant checker.
  std::shared_ptr<void> markInFlight(const std::string& slug);
  void watchCalls();                                // calls from now on are watched_
  std::map<std::string, TimePoint> unwatchCalls();  // and what was
  // A ticket's row read under the ticket's lock, which `lock` holds.
  struct LockedRow {
    std::shared_ptr<std::timed_mutex> mutex;
    // Taken after the lock, let go after it (members go in reverse order).
    std::shared_ptr<void> inFlight;
    std::unique_lock<std::timed_mutex> lock;
    Ticket ticket;
    Environment env;
  };
  // Parses the ticket, takes its lock, reads its row: INVALID_ARGUMENT for
  // a bad ticket, NOT_FOUND naming it when it has no environment. With
  // `wait`, FAILED_PRECONDITION when the lock is not had within it.
  Result<LockedRow> lockRow(const std::string& ticket,
                            std::optional<std::chrono::milliseconds> wait = std::nullopt);
  // Records a use of `slug` now (its last_access_at), as a proxied request does.
  void touch(const std::string& slug);
  // UNAVAILABLE once beginShutdown() was called.
  Status refuseWhenStopping() const;
  // recover()'s steps (recovery.cpp): the bridge and its guard, then the
  // decisions of lifecycle/recovery.h carried out.
  Status guardBridge();
  Status carryOut(const Operation& op, std::optional<Environment>& row,
                  const recovery::JournalDecision& d, recovery::Run& run);
  Status refuseRecordedOrphans(const std::vector<Environment>& envs,
                               const std::vector<std::string>& orphans);
  Status sweepOrphans(const std::vector<Environment>& envs, recovery::Run& run);
  // The cgroup directories liblxc left for containers of this host's that
  // do not run (a failed start, a crash), removed.
  void sweepCgroups(const std::vector<Environment>& envs);
  Status carryOut(Environment& row, const recovery::RowDecision& d, recovery::Run& run);
  // logs/<slug> of an environment that is no more (a delete, a rolled back create).
  void removeLogs(const std::string& slug);
  Status markBroken(Environment& e, const std::string& container, const std::string& message,
                    recovery::Run& run);
  Status validate(const DeployInput& in, Ticket& ticket, std::string& image) const;
  Result<Environment> deployLocked(const Ticket& t, const DeployInput& in, const std::string& image,
                                   const ProgressFn& progress);
  Result<Environment> wakeLocked(Environment env, const std::string& actor);
  // exec()'s environment, woken when it sleeps: FAILED_PRECONDITION saying
  // why a command cannot run in it now.
  Result<Environment> execTarget(LockedRow& row, const std::string& actor);
  // While one lives, its ticket has a command running: sleep refuses, the
  // sleep schedule passes it by.
  class ExecHold {
   public:
    ExecHold(EnvironmentManager& m, std::string slug);
    ~ExecHold();
    ExecHold(const ExecHold&) = delete;
    ExecHold& operator=(const ExecHold&) = delete;

   private:
    EnvironmentManager& m_;
    std::string slug_;
  };
  int execsRunning(const std::string& slug);
  // What became of `e`'s container while a command ran in it ("went away
  // (the environment was deleted)"); "" when it is still there and running.
  std::string execCutShort(const Environment& e);
  Result<Environment> sleepLocked(Environment env, const std::string& actor);
  Result<AppManifest> appManifestOf(const Environment& env);
  Status removeLocked(const Environment& env, const std::string& actor, const std::string& why);
  void publishRoute(const Environment& env);
  // The container's own record of `env` (env_record.h), after the row
  // changed; a failure is logged: the row is what counts while it exists.
  // Every change of a row's state or message goes through putRow: the row,
  // then the record beside its container (qabox.json), so that a rebuild
  // of lost state brings back FAILED and BROKEN as they were. Inside a
  // transaction, store_.putEnvironment then saveRecord after the commit.
  Status putRow(const Environment& env);
  void saveRecord(const Environment& env);
  // "" when the container's own layer is within the disk limits, else what
  // is over, naming the limit.
  std::string diskBreach(const std::string& container) const;
  void drain(const std::string& ip, uint16_t port);
  std::string nextContainerName(const std::string& slug, const std::string& current) const;
  // The pool's parts (pool.cpp): whether the config asks for one; why it
  // must shrink now ("" when it need not); one container cloned and
  // started; one gone with its lease (false when a claim took it first or
  // its destroy failed: a dropping one is retried); and at start, what a
  // crash or a stop left (the pool's numbering continues above every name
  // in use).
  bool poolWanted() const;
  std::string poolPressure() const;
  Result<ResourceLimits> poolLimits(const std::string& image) const;
  Status fillPool(const std::string& image, uint32_t version);
  bool dropPooled(const PooledContainer& p, const std::string& why);
  Status forgetPooled(const std::string& container);  // its entry and lease, in one transaction
  // A deploy short of what pooled containers hold (an address, an id range)
  // has the newest ready one destroyed, its lease released: false when the
  // pool holds none.
  bool poolGivesWay(const std::string& why);
  Status recoverPool();
  void pokePool();
  // The pool's thread, made with the manager (never replaced, so any
  // thread may poke it), started by startPool(); null without a pool.
  std::unique_ptr<Periodic> makePoolKeeper();
  void event(const std::string& ticket, const std::string& action, const std::string& actor,
             const std::string& outcome, const std::string& detail);

  const LifecycleOptions config_;
  Store& store_;
  ContainerRuntime& runtime_;
  Bridge& bridge_;
  ImageCatalog& images_;
  GitSource* git_;
  RouteTable& routes_;
  HealthCheck health_;
  const TimeSource& time_;
  Metrics* metrics_ = nullptr;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> generation_{1};
  std::mutex locksMu_;
  std::map<std::string, std::shared_ptr<std::timed_mutex>> locks_;
  std::chrono::milliseconds execLockWait_{2000};
  std::map<std::string, int> execs_;  // commands running, by slug (under locksMu_)
  // The calls in flight, by a number of their own: slug and start.
  mutable std::mutex callsMu_;
  uint64_t nextCall_ = 0;
  std::map<uint64_t, std::pair<std::string, TimePoint>> calls_;
  // While a check reads the host (watching_ > 0): every call in flight at
  // some moment of it, by slug and start, so one that began or ended
  // half-way is still taken as in flight.
  int watching_ = 0;
  std::map<std::string, TimePoint> watched_;
  std::function<Result<std::string>(const std::string&)> nft_;
  std::atomic<uint64_t> poolSeq_{0};
  std::unique_ptr<Periodic> pool_;
  // Last: its background builds are waited for before anything they use goes.
  std::unique_ptr<LayerCache> layers_;
};

// Shell single-quoting for the app.env file the container's init sources.
std::string shellQuote(std::string_view value);
// The app.env text of `env`: KEY='value' lines, each value shellQuote'd.
std::string envFileOf(const std::map<std::string, std::string>& env);

}  // namespace qabox
