#pragma once

// The SQLite Store. One class, its methods defined in one file per table
// family (environments.cpp, leases.cpp, journal.cpp, events.cpp, images.cpp,
// tokens.cpp); the connection and transactions in sqlite_store.cpp, the
// schema in schema.cpp. Internal to agent/store: callers see store.h only.

#include <sqlite3.h>

#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include "store/sqlite_stmt.h"
#include "store/store.h"

namespace qabox::store {

class SqliteStore final : public Store {
 public:
  explicit SqliteStore(StoreOptions options) : options_(std::move(options)) {}
  ~SqliteStore() override;
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  Status open();
  Status openReadOnly();

  Status transaction(const std::function<Status()>& body) override;

  // environments.cpp
  Result<std::optional<Environment>> getEnvironment(const std::string& slug) override;
  Result<std::vector<Environment>> listEnvironments() override;
  Status putEnvironment(const Environment& env) override;
  Status deleteEnvironment(const std::string& slug) override;
  Result<uint32_t> countEnvironments() override;
  Result<bool> setTargetState(const std::string& slug, const std::string& targetCommit,
                              const std::string& targetHead, uint32_t behind) override;
  Status recordAccess(const std::vector<AccessStats>& stats) override;

  // leases.cpp
  Result<std::string> leaseAddress(const std::string& subnet, const std::string& owner) override;
  Status releaseAddress(const std::string& ip) override;
  Status releaseAddressesOf(const std::string& owner) override;
  Result<std::vector<Lease>> listLeases() override;
  Status restoreLease(const std::string& ip, const std::string& owner) override;

  // journal.cpp
  Result<int64_t> beginOperation(const Operation& op) override;
  Status finishOperation(int64_t id, JournalOutcome outcome, const std::string& detail) override;
  Result<std::vector<Operation>> unfinishedOperations() override;
  Result<std::vector<std::string>> journalContainers() override;

  // events.cpp
  Status addEvent(const Event& event) override;
  Result<std::vector<Event>> listEvents(const std::string& ticket, uint32_t limit) override;
  Result<uint64_t> pruneEvents(TimePoint olderThan, uint64_t keepRows, uint32_t batch) override;
  Result<uint64_t> countEvents() override;

  // images.cpp
  Status putImage(const ImageVersion& image) override;
  Result<std::vector<ImageVersion>> listImages() override;
  Result<std::optional<ImageVersion>> currentImage(const std::string& name) override;
  Status deleteImage(const std::string& name, uint32_t version) override;
  Status putLayer(const CachedLayer& layer) override;
  Result<std::optional<CachedLayer>> getLayer(const std::string& hash) override;
  Result<std::vector<CachedLayer>> listLayers() override;
  Status touchLayer(const std::string& hash, TimePoint at) override;
  Status deleteLayer(const std::string& hash) override;

  // pool.cpp
  Status putPooled(const PooledContainer& pooled) override;
  Result<std::vector<PooledContainer>> listPooled() override;
  Result<bool> setPoolState(const std::string& container, PoolState from, PoolState to) override;
  Status deletePooled(const std::string& container) override;
  Result<std::optional<PooledContainer>> takePooled(const std::string& image, uint32_t version,
                                                    const ResourceLimits& limits) override;

  // tokens.cpp
  Status putToken(const TokenRecord& token) override;
  Result<std::optional<TokenRecord>> findTokenByHash(const std::string& hash) override;
  Result<std::optional<TokenRecord>> getToken(const std::string& name) override;
  Result<std::vector<TokenRecord>> listTokens() override;
  Result<TokenRecord> revokeToken(const std::string& name, TimePoint at) override;
  Status touchToken(const std::string& name, TimePoint at) override;

 private:
  // How a write transaction commits: FULL syncs the WAL at commit, NORMAL
  // leaves it to the next sync (a power cut may lose it, never corrupt).
  enum class Sync { kFull, kNormal };
  class Scope;

  Status connect(int flags);  // sqlite3_open_v2 with `flags`, and the busy timeout
  Status quickCheck();
  Status enableWal();
  Status setSync(Sync sync);
  Status exec(const char* sql, const std::string& what);
  // Runs `body` in a write transaction: BEGIN IMMEDIATE at the outermost
  // level (so the write lock is taken up front and busy_timeout applies,
  // instead of a deferred reader failing to upgrade), a savepoint when
  // nested, so a failing inner call undoes only its own writes.
  // `sync` applies to an outermost transaction only: a write nested in
  // another commits with it.
  Status write(const std::string& what, const std::function<Status()>& body,
               Sync sync = Sync::kFull);
  // One statement in its own write, its parameters bound to `args` in order.
  template <typename... Args>
  Status writeOne(const std::string& what, const char* sql, const Args&... args) {
    return write(what, [&]() -> Status {
      Stmt s(db_, sql, what);
      int i = 0;
      (s.bind(++i, args), ...);
      return s.run();
    });
  }
  // schema.cpp
  Status migrate();
  Status checkSchemaVersion();  // read only: the schema must be this agent's
  Status migrateOneStep(bool& done);
  // tokens.cpp
  Result<std::optional<TokenRecord>> oneToken(const char* column, const std::string& value,
                                              const std::string& what);

  TimePoint now() const { return options_.time->now(); }

  const StoreOptions options_;
  sqlite3* db_ = nullptr;
  // Recursive: a transaction body calls the other methods on the same thread.
  std::recursive_mutex mu_;
  int depth_ = 0;
  Sync sync_ = Sync::kFull;  // guarded by mu_
};

}  // namespace qabox::store
