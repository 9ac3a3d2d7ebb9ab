// The connection and its transactions: open (WAL, busy timeout, synchronous),
// write() with BEGIN IMMEDIATE or a savepoint, and the Scope that rolls back.

#include "store/sqlite_store.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdlib>
#include <thread>

#include "core/failpoint.h"
#include "store/sqlite_stmt.h"

namespace qabox {

namespace store {

SqliteStore::~SqliteStore() {
  if (int rc = sqlite3_close_v2(db_); rc != SQLITE_OK) {
    spdlog::warn("close database {}: {}", options_.path, sqlite3_errstr(rc));
  }
}

Status SqliteStore::connect(int flags) {
  const std::string& path = options_.path;
  int rc = sqlite3_open_v2(path.c_str(), &db_, flags | SQLITE_OPEN_NOMUTEX,
                           options_.vfs.empty() ? nullptr : options_.vfs.c_str());
  if (rc != SQLITE_OK) {
    std::string msg = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    return sqliteError(db_, rc, "open database " + path, msg);
  }
  sqlite3_extended_result_codes(db_, 1);
  // The busy timeout comes first: switching to WAL itself may wait for
  // another process that holds the file.
  if (int rc = sqlite3_busy_timeout(db_, static_cast<int>(options_.busyTimeout.count()));
      rc != SQLITE_OK) {
    return internalError("set busy_timeout on " + path + ": " + sqlite3_errstr(rc));
  }
  return Status::ok();
}

Status SqliteStore::open() {
  QABOX_RETURN_IF_ERROR(connect(SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE));
  QABOX_RETURN_IF_ERROR(enableWal());
  // FULL, not NORMAL: in WAL mode NORMAL skips the fsync at commit, so a
  // power cut can take back a commit the caller was told about: a token
  // revocation (the token works again) or a deploy's final write. Only
  // the frequent writes that may be lost (events, use counters) commit
  // with NORMAL, see write(); the next FULL commit makes them durable too,
  // as the WAL is synced in order.
  QABOX_RETURN_IF_ERROR(exec("PRAGMA synchronous=FULL", "set synchronous"));
  sync_ = Sync::kFull;
  QABOX_RETURN_IF_ERROR(exec("PRAGMA foreign_keys=ON", "enable foreign keys"));
  QABOX_RETURN_IF_ERROR(quickCheck());
  return migrate();
}

// A damaged page found now stops the agent before recovery acts on what
// the file says; found later, in the middle of a deploy, it would not.
Status SqliteStore::quickCheck() {
  Stmt s(db_, "PRAGMA quick_check", "check database " + options_.path);
  std::string verdict;
  while (true) {
    QABOX_ASSIGN_OR_RETURN(bool row, s.step());
    if (!row) break;
    verdict += (verdict.empty() ? "" : "; ") + s.text(0);
  }
  if (verdict == "ok") return Status::ok();
  // A page it could not read is reported as a row ("unable to get the
  // page. error code=266"): an I/O error, not corruption; rebuilding would
  // throw good state away.
  if (auto at = verdict.find("error code="); at != std::string::npos) {
    int rc = std::atoi(verdict.c_str() + at + 11);
    if ((rc & 0xff) == SQLITE_IOERR || (rc & 0xff) == SQLITE_NOMEM) {
      return sqliteError(db_, rc, "check database " + options_.path, verdict);
    }
  }
  return dataLoss("check database " + options_.path + ": quick_check: " + verdict + "; " +
                  kRebuildHint);
}

Status SqliteStore::openReadOnly() {
  QABOX_RETURN_IF_ERROR(connect(SQLITE_OPEN_READONLY));
  return checkSchemaVersion();
}

Status SqliteStore::enableWal() {
  const std::string& path = options_.path;
  // Two connections switching a fresh file to WAL at once can deadlock on
  // the lock upgrade; SQLite then answers BUSY at once, without waiting
  // in the busy handler. Try again, for as long as the busy timeout.
  const auto giveUp = std::chrono::steady_clock::now() + options_.busyTimeout;
  while (true) {
    Stmt s(db_, "PRAGMA journal_mode=WAL", "enable WAL on " + path);
    auto row = s.step();
    if (!row && (sqlite3_errcode(db_) & 0xff) == SQLITE_BUSY &&
        std::chrono::steady_clock::now() < giveUp) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      continue;
    }
    if (!row) return row.status();
    std::string mode = *row ? s.text(0) : "";
    if (mode != "wal" && !(path == ":memory:" && mode == "memory")) {
      return internalError("enable WAL on " + path + ": journal_mode is \"" + mode + "\"");
    }
    return Status::ok();
  }
}

Status SqliteStore::setSync(Sync sync) {
  if (sync == sync_) return Status::ok();
  QABOX_RETURN_IF_ERROR(
      exec(sync == Sync::kFull ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL",
           "set synchronous"));
  sync_ = sync;
  return Status::ok();
}

Status SqliteStore::exec(const char* sql, const std::string& what) {
  char* err = nullptr;
  int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
  if (rc == SQLITE_OK) return Status::ok();
  std::string msg = err ? err : sqlite3_errstr(rc);
  sqlite3_free(err);
  return sqliteError(db_, rc, what, msg);
}

// Rolls back on every way out that is not a commit, including an
// exception thrown by a caller's body.
class SqliteStore::Scope {
 public:
  explicit Scope(SqliteStore& store) : store_(store) {}
  ~Scope() {
    if (active_) rollback();
  }
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

  Status begin(const std::string& what) {
    level_ = store_.depth_;
    // A savepoint outside a transaction would open a new one and commit
    // this call's writes on its own after SQLite dropped the outer one.
    if (level_ > 0 && sqlite3_get_autocommit(store_.db_)) {
      return internalError(what + ": the enclosing transaction was rolled back by an error");
    }
    Status st = level_ == 0 ? store_.exec("BEGIN IMMEDIATE", what + ": begin")
                            : store_.exec(("SAVEPOINT " + savepoint()).c_str(), what);
    if (!st.isOk()) return st;
    active_ = true;
    ++store_.depth_;
    return Status::ok();
  }

  Status commit(const std::string& what) {
    active_ = false;
    --store_.depth_;
    // SQLite rolls the whole transaction back by itself on some errors
    // (disk full, I/O); committing then would report success for nothing.
    if (sqlite3_get_autocommit(store_.db_)) {
      return internalError(what + ": the transaction was rolled back by an earlier error");
    }
    if (level_ == 0) QABOX_FAILPOINT("store.commit.before");
    Status st = level_ == 0 ? store_.exec("COMMIT", what + ": commit")
                            : store_.exec(("RELEASE " + savepoint()).c_str(), what);
    if (level_ == 0 && st.isOk()) QABOX_FAILPOINT("store.commit.after");
    if (!st.isOk() && level_ == 0 && !sqlite3_get_autocommit(store_.db_)) {
      logIfFailed(store_.exec("ROLLBACK", what + ": rollback"));
    }
    return st;
  }

  void rollback() {
    if (!active_) return;
    active_ = false;
    --store_.depth_;
    if (sqlite3_get_autocommit(store_.db_)) return;
    if (level_ == 0) {
      logIfFailed(store_.exec("ROLLBACK", "rollback"));
    } else {
      std::string sp = savepoint();
      logIfFailed(store_.exec(("ROLLBACK TO " + sp + "; RELEASE " + sp).c_str(), "rollback"));
    }
  }

 private:
  std::string savepoint() const { return "qabox_sp" + std::to_string(level_); }

  // A failed rollback leaves SQLite to undo the transaction when the
  // connection next begins or closes; the caller already has the first error.
  static void logIfFailed(const Status& st) {
    if (!st.isOk()) spdlog::warn("store: {}", st.message());
  }

  SqliteStore& store_;
  int level_ = 0;
  bool active_ = false;
};

Status SqliteStore::write(const std::string& what, const std::function<Status()>& body, Sync sync) {
  std::lock_guard lock(mu_);
  if (depth_ == 0) QABOX_RETURN_IF_ERROR(setSync(sync));
  Scope scope(*this);
  QABOX_RETURN_IF_ERROR(scope.begin(what));
  Status st = body();
  if (!st.isOk()) {
    scope.rollback();
    return st;
  }
  return scope.commit(what);
}

Status SqliteStore::transaction(const std::function<Status()>& body) {
  return write("transaction", body);
}

}  // namespace store

Result<std::unique_ptr<Store>> openSqliteStore(const StoreOptions& options) {
  auto store = std::make_unique<store::SqliteStore>(options);
  QABOX_RETURN_IF_ERROR(options.readOnly ? store->openReadOnly() : store->open());
  return std::unique_ptr<Store>(std::move(store));
}

Result<std::unique_ptr<Store>> openSqliteStore(const std::string& path) {
  StoreOptions options;
  options.path = path;
  return openSqliteStore(options);
}

}  // namespace qabox
