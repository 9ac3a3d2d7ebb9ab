#pragma once

// The SQLite plumbing every table file shares: errors, one prepared
// statement, and the conversions between rows and times.

#include <sqlite3.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/environment.h"
#include "core/status.h"

namespace qabox::store {

Status dataLoss(std::string message);

// What a corrupt database's error tells the operator to do.
inline constexpr const char* kRebuildHint =
    "stop the agent and run `qaboxd --rebuild-state`: it moves the file aside and rebuilds the "
    "state from the containers and image versions on disk";

// A full disk is the operator's to fix, not the agent's bug: RESOURCE_EXHAUSTED
// naming the disk, so callers and clients can tell it from corruption. A
// corrupt file is DATA_LOSS saying how to rebuild; an I/O error INTERNAL
// naming the store's file and what failed, never SQLite's codes alone.
Status sqliteError(sqlite3* db, int rc, const std::string& what, const std::string& detail);

std::optional<int64_t> optMillis(const std::optional<TimePoint>& t);
std::optional<TimePoint> optTime(const std::optional<int64_t>& ms);

// One prepared statement. Bind errors are kept and reported by step(), so
// call sites bind in a row without checking each one.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql, std::string what);
  Stmt(sqlite3* db, const std::string& sql, std::string what) : Stmt(db, sql.c_str(), what) {}
  ~Stmt();
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& bind(int i, std::string_view v);
  Stmt& bind(int i, const std::string& v) { return bind(i, std::string_view(v)); }
  Stmt& bind(int i, const char* v) { return bind(i, std::string_view(v)); }
  Stmt& bind(int i, int64_t v);
  Stmt& bind(int i, uint64_t v) { return bind(i, static_cast<int64_t>(v)); }
  Stmt& bind(int i, uint32_t v) { return bind(i, static_cast<int64_t>(v)); }
  Stmt& bind(int i, bool v) { return bind(i, static_cast<int64_t>(v ? 1 : 0)); }
  Stmt& bind(int i, TimePoint t) { return bind(i, toUnixMillis(t)); }
  Stmt& bind(int i, const std::optional<int64_t>& v);

  // true while there is a row to read.
  Result<bool> step();
  Status run() { return step().status(); }

  // Makes the statement ready to run again with new bindings.
  void reset();

  // The extended result code of the last failure, to tell constraint errors apart.
  int errorCode() const { return rc_; }

  std::string text(int col) const;
  int64_t int64(int col) const { return sqlite3_column_int64(stmt_, col); }
  std::optional<int64_t> optInt64(int col) const;
  TimePoint time(int col) const { return fromUnixMillis(int64(col)); }
  std::optional<TimePoint> optTimeAt(int col) const { return optTime(optInt64(col)); }

 private:
  Stmt& check(int rc) {
    if (rc != SQLITE_OK && rc_ == SQLITE_OK) rc_ = rc;
    return *this;
  }
  Status error() const;

  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  std::string what_;
  int rc_ = SQLITE_OK;
};

// Every (remaining) row of `s`, each made into a T by `read`, which returns
// a T or a Result<T>; the first error ends the read.
template <typename T, typename Read>
Result<std::vector<T>> readRows(Stmt& s, Read read) {
  std::vector<T> out;
  while (true) {
    QABOX_ASSIGN_OR_RETURN(bool row, s.step());
    if (!row) return out;
    if constexpr (std::is_same_v<std::invoke_result_t<Read, const Stmt&>, T>) {
      out.push_back(read(s));
    } else {
      QABOX_ASSIGN_OR_RETURN(T item, read(s));
      out.push_back(std::move(item));
    }
  }
}

}  // namespace qabox::store
