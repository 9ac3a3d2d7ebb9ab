#include "store/sqlite_stmt.h"

#include <cerrno>
#include <cstring>
#include <utility>

namespace qabox::store {

Status dataLoss(std::string message) { return {Code::kDataLoss, std::move(message)}; }

namespace {

const char* ioFailure(int rc) {
  switch (rc) {
    case SQLITE_IOERR_READ:
    case SQLITE_IOERR_SHORT_READ: return "reading it failed";
    case SQLITE_IOERR_WRITE: return "writing it failed";
    case SQLITE_IOERR_FSYNC:
    case SQLITE_IOERR_DIR_FSYNC: return "syncing it to disk failed";
    case SQLITE_IOERR_TRUNCATE: return "truncating it failed";
    default: return "an I/O operation on it failed";
  }
}

}  // namespace

Status sqliteError(sqlite3* db, int rc, const std::string& what, const std::string& detail) {
  int primary = rc & 0xff;
  int sys = db ? sqlite3_system_errno(db) : 0;
  const char* file = db ? sqlite3_db_filename(db, "main") : nullptr;
  std::string name = file && *file ? file : "the database";
  if (primary == SQLITE_FULL || (primary == SQLITE_IOERR && (sys == ENOSPC || sys == EDQUOT))) {
    return resourceExhausted(what + ": the disk holding " + name + " is full (" + detail +
                             "); free space on it");
  }
  if (primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB) {
    return dataLoss(what + ": the store " + name + " is corrupt or not a database (" + detail +
                    "); " + kRebuildHint);
  }
  if (primary == SQLITE_IOERR) {
    return internalError(what + ": the store " + name + ": " + ioFailure(rc) +
                         (sys != 0 ? std::string(" (") + std::strerror(sys) + ")" : std::string()));
  }
  return internalError(what + ": " + detail);
}

std::optional<int64_t> optMillis(const std::optional<TimePoint>& t) {
  if (!t) return std::nullopt;
  return toUnixMillis(*t);
}

std::optional<TimePoint> optTime(const std::optional<int64_t>& ms) {
  if (!ms) return std::nullopt;
  return fromUnixMillis(*ms);
}

Stmt::Stmt(sqlite3* db, const char* sql, std::string what) : db_(db), what_(std::move(what)) {
  rc_ = sqlite3_prepare_v2(db_, sql, -1, &stmt_, nullptr);
}

// sqlite3_finalize repeats the last step's error, which step() already
// returned; there is nothing new to report.
Stmt::~Stmt() { sqlite3_finalize(stmt_); }

Stmt& Stmt::bind(int i, std::string_view v) {
  // SQLITE_TRANSIENT: the statement outlives some of the temporaries bound to it.
  return check(sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
}

Stmt& Stmt::bind(int i, int64_t v) { return check(sqlite3_bind_int64(stmt_, i, v)); }

Stmt& Stmt::bind(int i, const std::optional<int64_t>& v) {
  return v ? bind(i, *v) : check(sqlite3_bind_null(stmt_, i));
}

Result<bool> Stmt::step() {
  if (rc_ != SQLITE_OK) return error();
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  rc_ = rc;
  return error();
}

void Stmt::reset() {
  // sqlite3_reset returns the error of the last step, already reported by
  // step(); a statement that failed to prepare (no handle) has nothing to reset.
  sqlite3_reset(stmt_);
  if (stmt_) sqlite3_clear_bindings(stmt_);  // cannot fail on a live statement
}

std::string Stmt::text(int col) const {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
  if (!p) return {};
  return std::string(p, static_cast<size_t>(sqlite3_column_bytes(stmt_, col)));
}

std::optional<int64_t> Stmt::optInt64(int col) const {
  if (sqlite3_column_type(stmt_, col) == SQLITE_NULL) return std::nullopt;
  return int64(col);
}

Status Stmt::error() const {
  std::string code = sqlite3_errstr(rc_);
  std::string msg = sqlite3_errmsg(db_);
  return sqliteError(db_, rc_, what_, msg == code ? code : code + " (" + msg + ")");
}

}  // namespace qabox::store
