#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/environment.h"
#include "core/status.h"

namespace qabox {

// What a journal entry does. The names are what the operations.kind column
// holds; rows in the field have them, so they never change.
enum class JournalKind {
  kCreate,      // "create": a new environment in a new container
  kRedeploy,    // "redeploy": a new container for an existing environment
  kDelete,      // "delete": an environment and its container go
  kImageBuild,  // "image.build": a new base image version
  kDepsBuild,   // "deps.build": a dependency layer built in a build container
  kDataBuild,   // "data.build": a dataset snapshot seeded in a build container
};
std::string_view journalKindName(JournalKind kind);
std::optional<JournalKind> parseJournalKind(std::string_view name);

// How a journal entry ended (operations.outcome). kUnfinished ("") is what a
// row holds until finishOperation; it is not an outcome to finish with.
enum class JournalOutcome {
  kUnfinished,  // ""
  kOk,          // "ok"
  kError,       // "error"
  kRolledBack,  // "rolled-back"
};
std::string_view journalOutcomeName(JournalOutcome outcome);
std::optional<JournalOutcome> parseJournalOutcome(std::string_view name);

// One entry of the operations journal: the intent is written before the host
// is touched, the outcome after. Recovery reads the unfinished ones.
struct Operation {
  int64_t id = 0;
  std::string slug;
  JournalKind kind = JournalKind::kCreate;
  std::string container;  // the container the operation makes or destroys
  std::string ip;         // the address it leased for it, if any
  TimePoint startedAt{};
  std::optional<TimePoint> finishedAt;
  JournalOutcome outcome = JournalOutcome::kUnfinished;
  std::string detail;
};

struct Event {
  int64_t id = 0;
  TimePoint at{};
  std::string ticket;
  std::string action;  // deploy, delete, reap, image.build, auth ...
  std::string actor;
  std::string outcome;  // ok, error, started
  std::string detail;
};

struct Lease {
  std::string ip;
  std::string owner;  // the container that holds it
  TimePoint createdAt{};
};

struct ImageVersion {
  std::string name;
  uint32_t version = 0;
  TimePoint builtAt{};
  bool current = false;  // what new environments are cloned from
  std::string description;
  // The version of `parent` it was built on ("" and 0 for a base image):
  // its rootfs holds only what its recipe added, over its parent's layers.
  std::string parent{};
  uint32_t parentVersion = 0;
  // SHA-256 hex of its recipe folder and its parent's version: a build whose
  // hash is the current version's makes no new version.
  std::string recipeHash{};
  // Not stored: set by a build that found the current version up to date.
  bool cached = false;
};

// A cached layer, built once per hash and shared copy-on-write by every
// environment cloned over it: what a [deps] install wrote (lifecycle/deps.h),
// or a [data] seed's services' data (lifecycle/datasets.h).
enum class LayerKind { kDeps, kData };
std::string_view layerKindName(LayerKind kind);  // "deps", "data"
std::optional<LayerKind> parseLayerKind(std::string_view name);

struct CachedLayer {
  std::string hash;  // SHA-256 hex (depsHash, dataHash)
  LayerKind kind = LayerKind::kDeps;
  // data: the repo and target branch it seeds ("REPO TARGET"): a newer one
  // of the same lineage replaces it.
  std::string lineage;
  std::string image;
  uint32_t imageVersion = 0;
  uint64_t sizeBytes = 0;
  TimePoint builtAt{};
  TimePoint lastUsedAt{};
};

// A container of the warm pool: cloned from an image version, addressed,
// started and waiting for a deploy to claim it. Never an environment: no
// row, no route, no ticket until a deploy takes it (lifecycle/pool.cpp).
enum class PoolState {
  kFilling,   // "filling": being cloned and started; recovery destroys it
  kReady,     // "ready": running, claimable
  kDropping,  // "dropping": going (its destroy is retried until it is gone)
};
std::string_view poolStateName(PoolState state);
std::optional<PoolState> parsePoolState(std::string_view name);

struct PooledContainer {
  std::string container;  // qaboxpool-<n>: never a ticket's name (core/environment.h)
  std::string image;
  uint32_t imageVersion = 0;
  std::string ip;         // its lease, owned by `container`
  ResourceLimits limits;  // what it was cloned with: a deploy asking others cannot claim it
  PoolState state = PoolState::kFilling;
  TimePoint createdAt{};
};

struct TokenRecord {
  std::string name;
  std::string role;
  std::string hash;  // SHA-256 hex of the secret; the secret itself is never stored
  TimePoint createdAt{};
  std::optional<TimePoint> expiresAt;
  bool revoked = false;
  std::optional<TimePoint> revokedAt;
  std::optional<TimePoint> lastUsedAt;
};

// Per-environment use counters the router accumulates and flushes.
struct AccessStats {
  std::string slug;
  TimePoint lastAccessAt{};
  uint64_t requests = 0;  // added to the stored count
  uint64_t bytesIn = 0;
  uint64_t bytesOut = 0;
};

// All agent state, in one SQLite file (WAL, busy timeout, BEGIN IMMEDIATE
// writers, numbered schema migrations in user_version). Safe to use from
// many threads: calls are serialised on one connection.
class Store {
 public:
  virtual ~Store() = default;

  // Runs `body` in one write transaction; commits when it returns ok.
  virtual Status transaction(const std::function<Status()>& body) = 0;

  // Environments, keyed by slug.
  virtual Result<std::optional<Environment>> getEnvironment(const std::string& slug) = 0;
  virtual Result<std::vector<Environment>> listEnvironments() = 0;
  // Insert or replace; the use columns (last_access_at, request and byte
  // counts) keep the larger of the stored and the given value.
  virtual Status putEnvironment(const Environment& env) = 0;
  virtual Status deleteEnvironment(const std::string& slug) = 0;
  virtual Result<uint32_t> countEnvironments() = 0;
  // Where the target branch is now and how far ahead of the environment's
  // target commit, only while that commit is still `targetCommit` (a deploy
  // in between wins). True when the row changed. Neither updated_at nor
  // anything else moves: this is news about the remote, not a change.
  virtual Result<bool> setTargetState(const std::string& slug, const std::string& targetCommit,
                                      const std::string& targetHead, uint32_t behind) = 0;

  // Static IPAM: the lowest free host address of `subnet` (CIDR) above
  // `first` offset, skipping the network, gateway (.1) and broadcast.
  // RESOURCE_EXHAUSTED when none is left.
  virtual Result<std::string> leaseAddress(const std::string& subnet, const std::string& owner) = 0;
  virtual Status releaseAddress(const std::string& ip) = 0;
  virtual Status releaseAddressesOf(const std::string& owner) = 0;
  virtual Result<std::vector<Lease>> listLeases() = 0;
  // Records that `owner` holds `ip`, as a rebuild of lost state found it:
  // ALREADY_EXISTS when another lease holds that address.
  virtual Status restoreLease(const std::string& ip, const std::string& owner) = 0;

  // Operations journal.
  virtual Result<int64_t> beginOperation(const Operation& op) = 0;
  // INVALID_ARGUMENT for kUnfinished; NOT_FOUND for an id not in the journal.
  virtual Status finishOperation(int64_t id, JournalOutcome outcome, const std::string& detail) = 0;
  virtual Result<std::vector<Operation>> unfinishedOperations() = 0;
  // Every container the journal ever named, finished or not: what the
  // agent made on this host (the invariant checker's claim on cgroups).
  virtual Result<std::vector<std::string>> journalContainers() = 0;

  // Events / audit, newest first.
  virtual Status addEvent(const Event& event) = 0;
  virtual Result<std::vector<Event>> listEvents(const std::string& ticket, uint32_t limit) = 0;
  // Deletes up to `batch` events: those written before `olderThan`, then the
  // oldest beyond the newest `keepRows` (0: no limit by count; an epoch
  // `olderThan`: none by age). Returns how many went; a caller
  // that gets `batch` back calls again (short transactions, so writers are
  // never held up for long).
  virtual Result<uint64_t> pruneEvents(TimePoint olderThan, uint64_t keepRows, uint32_t batch) = 0;
  virtual Result<uint64_t> countEvents() = 0;

  // Images.
  virtual Status putImage(const ImageVersion& image) = 0;  // setting current clears the others
  virtual Result<std::vector<ImageVersion>> listImages() = 0;
  virtual Result<std::optional<ImageVersion>> currentImage(const std::string& name) = 0;
  virtual Status deleteImage(const std::string& name, uint32_t version) = 0;

  // Cached layers ([deps], [data]), keyed by hash.
  virtual Status putLayer(const CachedLayer& layer) = 0;
  virtual Result<std::optional<CachedLayer>> getLayer(const std::string& hash) = 0;
  virtual Result<std::vector<CachedLayer>> listLayers() = 0;
  virtual Status touchLayer(const std::string& hash, TimePoint at) = 0;  // last_used_at
  virtual Status deleteLayer(const std::string& hash) = 0;

  // Tokens, keyed by name; the hash is unique too.
  virtual Status putToken(const TokenRecord& token) = 0;
  virtual Result<std::optional<TokenRecord>> findTokenByHash(const std::string& hash) = 0;
  virtual Result<std::optional<TokenRecord>> getToken(const std::string& name) = 0;
  virtual Result<std::vector<TokenRecord>> listTokens() = 0;
  // Marks the token revoked at `at` (the first revocation time stays);
  // NOT_FOUND when there is no such token.
  virtual Result<TokenRecord> revokeToken(const std::string& name, TimePoint at) = 0;
  virtual Status touchToken(const std::string& name, TimePoint at) = 0;  // last_used_at

  // The warm pool, keyed by container.
  virtual Status putPooled(const PooledContainer& pooled) = 0;
  virtual Result<std::vector<PooledContainer>> listPooled() = 0;
  // Moves it from `from` to `to`; false when it was not in `from` (a claim
  // may have taken a ready one first).
  virtual Result<bool> setPoolState(const std::string& container, PoolState from, PoolState to) = 0;
  virtual Status deletePooled(const std::string& container) = 0;
  // The oldest ready one of `image` at `version` cloned with `limits`,
  // removed from the pool in the same statement (inside a transaction: the
  // claim and the deploy's intent commit together); nullopt when none is.
  virtual Result<std::optional<PooledContainer>> takePooled(const std::string& image,
                                                            uint32_t version,
                                                            const ResourceLimits& limits) = 0;

  // Router use counters, applied in one transaction.
  virtual Status recordAccess(const std::vector<AccessStats>& stats) = 0;
};

// What the SQLite store needs from the configuration, and no more.
struct StoreOptions {
  std::string path;  // the database file (paths::database(stateDir))
  // How long a statement waits for another connection's lock before BUSY.
  std::chrono::milliseconds busyTimeout{5000};
  // What stamps the rows the store dates itself (lease created_at, journal
  // finished_at). Must outlive the store.
  const TimeSource* time = &systemTime();
  // The SQLite VFS by name; "": the default. Only tests name another
  // (store/fault_vfs.h).
  std::string vfs;
  // Read only: no WAL switch, no migration, nothing written (an existing
  // database of this agent's schema version, for qaboxd --check).
  bool readOnly = false;
};

// Opens (creating if needed) and migrates the database. A file that is
// corrupt or no SQLite database (SQLITE_CORRUPT, SQLITE_NOTADB, a failed
// `PRAGMA quick_check`) is DATA_LOSS naming it.
Result<std::unique_ptr<Store>> openSqliteStore(const StoreOptions& options);
// The same with the default options for `path`.
Result<std::unique_ptr<Store>> openSqliteStore(const std::string& path);

}  // namespace qabox
