#pragma once

// The deploy as explicit steps: the enum of steps in the order they run, the
// one context they fill in, and the one rollback that undoes what the steps
// that ran did. For the lifecycle's own files and its unit tests.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "core/redact.h"
#include "lifecycle/datasets.h"
#include "lifecycle/deps.h"
#include "lifecycle/internal.h"
#include "lifecycle/manager.h"
#include "store/ipam.h"
#include "sys/capped_log.h"

namespace qabox {

enum class DeployStep {
  kNone,      // nothing ran yet
  kCheck,     // the image is built, the limits fit, the row allows it (a sleeping one is woken)
  kMerge,     // the source fetched and merged, qabox.toml read; or nothing changed
  kReserve,   // intent: lease, journal entry and row in one transaction; a new ticket's route
  kDeps,      // the [deps] layer found by its hash, or built (lifecycle/deps.h)
  kData,      // the [data] layer: found, the previous one (the new one built behind), or built
  kClone,     // the container cloned from the image, the bridge's neighbour entry forgotten
  kExport,    // the merge result exported into /srv/app (only when deploying a repo)
  kAppFiles,  // app.env and app.run (app.run.pending while hooks are to run) placed
  kStart,     // the container started
  kServices,  // every service the app turns on ready (qabox-init's status.json)
  kBuild,     // the manifest's hooks, each only when the manifest has it
  kMigrate,
  kSeed,
  kApp,     // with hooks, app.run.pending renamed to app.run; the last disk check
  kHealth,  // the app answers its health check
  kSwitch,  // the row READY on the new container and the journal entry ok, in one transaction
  kFinish,  // the route on the new container; a redeploy's old one drained and destroyed
};

// The name a failure of `step` is reported under ("<name> failed: ..."). An
// image-only deploy has no export, and what it writes into the clone counts
// as part of the clone.
std::string_view stepName(DeployStep step, bool hasRepo);
// The failpoint at a step's edge: "deploy.clone.before", "deploy.app.after".
std::string failpointName(DeployStep step, std::string_view when);

// What a deploy that failed in `failed` leaves to undo.
enum class DeployUndo {
  kNothing,        // failed before its intent was written: there is nothing to undo
  kRestoreOld,     // a redeploy: the new container and its lease go; the old one serves on
  kKeepFailed,     // a new ticket: a FAILED row with its container and lease, for inspection
  kRollBackWhole,  // a new ticket: no container, lease, row, route or journal entry left open
};
// `diskFull`: the state dir's disk is nearly full, which no environment may
// keep for inspection.
DeployUndo undoFor(DeployStep failed, bool redeploy, bool hasRepo, bool diskFull);

// What the steps produce, in the order they produce it.
struct DeployContext {
  DeployContext(const Ticket& t, const DeployInput& i, std::string img)
      : ticket(t), in(i), image(std::move(img)) {}

  const Ticket& ticket;
  const DeployInput& in;
  std::string image;

  // kCheck
  DeploySpec spec;              // as asked, on `image`, with the secrets' names
  ImageVersion imageVersion;    // the image's current version: what is cloned
  ImageManifest imageManifest;  // its recipe
  ResourceLimits limits;
  std::optional<Environment> existing;  // the row before this deploy (woken if it slept)
  Subnet subnet;

  // kMerge
  const RepoConfig* repo = nullptr;  // null: an image-only deploy
  Merge merge;
  AppManifest app;
  std::map<std::string, std::string> appEnv;  // app.env: the app's environment and secrets
  // The deploy's secrets and each service's password (passwordSecretName):
  // what the redactors look for.
  std::map<std::string, std::string> secrets;
  uint16_t port = 80;
  bool hasHooks = false;
  std::string depsHash;  // [deps]: the layer's hash; "": none
  std::string dataHash;  // [data]: the hash of the layer it asks for; "": none
  // The data layer it is cloned over: dataHash once that is built, until
  // then its lineage's newest (while dataHash builds in the background).
  std::string dataUse;
  std::string dataDir;  // its directory (kData)

  // kDeps
  std::string depsDir;  // the layer, over the image's among the clone's lowers

  // kReserve
  bool redeploy = false;
  std::string container;  // the new container
  std::string ip;         // its leased address
  // The new container is the warm pool's, claimed in the intent's
  // transaction: cloned and running already, with its lease.
  bool claimed = false;
  // The intent failed for want of an address (the warm pool may hold the
  // last ones).
  bool addressShort = false;
  int64_t opId = 0;  // its journal entry
  Environment env;   // the row that serves until the switch (a redeploy's old one)

  // kClone
  std::string upper;  // the new container's upper dir

  // kSwitch
  Environment ready;  // the row after the switch

  // How far the deploy got. rollback() undoes by `current`, the step after
  // `done` that failed (undoFor).
  DeployStep done = DeployStep::kNone;     // the last step that completed
  DeployStep current = DeployStep::kNone;  // the step running, or the one that failed
};

// One deploy of one ticket, run under the ticket's lock.
class DeployRun {
 public:
  DeployRun(EnvironmentManager& manager, const Ticket& t, const DeployInput& in,
            const std::string& image, const ProgressFn& progress);
  DeployRun(const DeployRun&) = delete;
  DeployRun& operator=(const DeployRun&) = delete;

  Result<Environment> run();
  // After run(): whether it failed (a redeploy's restored old one included),
  // and at which step.
  bool failed() const { return failed_; }
  std::string failedStep() const;

 private:
  // Before the intent: a failure here leaves nothing to undo.
  Status check();
  Status checkExisting();
  Status mergeSource();
  Status prepareApp();
  Status addServices();
  Status hashDeps();
  Status hashData();
  Result<LayerCache::Request> layerRequest(LayerKind kind, const std::string& hash);
  BuildSource buildSource(const std::string& commit);
  Result<LayerCache::Request> dataRequest();
  bool unchanged() const;
  Status reserve();
  Status writeIntent(Environment& row);
  // Whether this deploy may take a pooled container: the pool keeps its
  // image, and it asks for nothing a pooled one lacks (layers of its own,
  // a data pool's snapshots, limits but the image's).
  bool mayClaim() const;

  // On the host, into the new container.
  void openLog();
  Status hostSteps();
  bool applies(DeployStep step) const;
  Status runStep(DeployStep step);
  Status ensureDeps();
  Status ensureData();
  Status attachDataset();
  Status clone();
  Status claimed();
  Status exportSource();
  Status exportIntoRunning();
  Status writeAppFiles();
  Status placeAppFiles();
  Status start();
  Status waitForServices();
  Status runHook(DeployStep step);
  Status startApp();
  Status healthCheck();

  // After them.
  Status switchOver();
  Environment finish();

  // The one rollback: undoes what the steps up to ctx_.current did.
  Result<Environment> rollback(Status s);
  Result<Environment> restoreOld(const std::string& message);
  bool keepFailed(const std::string& message, bool overDisk);
  Status rollBackWhole(const Status& s, const std::string& message, bool full);
  Status recordFailure(const std::string& message);

  void phase(const std::string& name, const std::string& detail);
  void failedPhase(const std::string& detail);
  void logHook(std::string_view text);

  EnvironmentManager& m_;
  const ProgressFn& progress_;
  DeployContext ctx_;
  // Hooks get the secrets and may print them: whatever the deploy keeps or
  // streams passes through this first.
  Redactor redactor_;
  std::chrono::steady_clock::time_point phaseStart_;
  std::vector<PhaseTime> phases_;  // what phase() reported, for the row
  CappedLog hookLog_;
  bool logFailed_ = false;
  bool failed_ = false;
  uint64_t logMax_ = 0;
  // The layers this deploy clones over stay until the run ends.
  LayerCache::Pin depsPin_;
  LayerCache::Pin dataPin_;
  LayerCache::Pin dataUsePin_;
  // Last: stopped (its thread joined) before anything it reads goes.
  DiskWatch watch_;
};

}  // namespace qabox
