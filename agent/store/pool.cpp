// The pool table: the warm pool's containers, keyed by container.

#include "store/sqlite_stmt.h"
#include "store/sqlite_store.h"

namespace qabox::store {

namespace {

constexpr const char* kPoolColumns =
    "container, image, image_version, ip, memory, cpus, pids, state, created_at";

Result<PooledContainer> readPooled(const Stmt& s) {
  PooledContainer p;
  p.container = s.text(0);
  p.image = s.text(1);
  p.imageVersion = static_cast<uint32_t>(s.int64(2));
  p.ip = s.text(3);
  p.limits.memory = s.text(4);
  p.limits.cpus = static_cast<uint32_t>(s.int64(5));
  p.limits.pids = static_cast<uint32_t>(s.int64(6));
  auto state = parsePoolState(s.text(7));
  if (!state) return dataLoss("pool container " + p.container + ": unknown state " + s.text(7));
  p.state = *state;
  p.createdAt = s.time(8);
  return p;
}

}  // namespace

Status SqliteStore::putPooled(const PooledContainer& p) {
  const std::string what = "write pool container " + p.container;
  return write(what, [&]() -> Status {
    Stmt s(db_,
           std::string("INSERT OR REPLACE INTO pool (") + kPoolColumns +
               ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
           what);
    s.bind(1, p.container)
        .bind(2, p.image)
        .bind(3, p.imageVersion)
        .bind(4, p.ip)
        .bind(5, p.limits.memory)
        .bind(6, p.limits.cpus)
        .bind(7, p.limits.pids)
        .bind(8, std::string(poolStateName(p.state)))
        .bind(9, p.createdAt);
    return s.run();
  });
}

Result<std::vector<PooledContainer>> SqliteStore::listPooled() {
  std::lock_guard lock(mu_);
  Stmt s(db_, std::string("SELECT ") + kPoolColumns + " FROM pool ORDER BY created_at, container",
         "list the pool");
  return readRows<PooledContainer>(s, readPooled);
}

Result<bool> SqliteStore::setPoolState(const std::string& container, PoolState from, PoolState to) {
  bool changed = false;
  const std::string what =
      "mark pool container " + container + " " + std::string(poolStateName(to));
  QABOX_RETURN_IF_ERROR(write(what, [&]() -> Status {
    Stmt s(db_, "UPDATE pool SET state = ? WHERE container = ? AND state = ?", what);
    s.bind(1, std::string(poolStateName(to)))
        .bind(2, container)
        .bind(3, std::string(poolStateName(from)));
    QABOX_RETURN_IF_ERROR(s.run());
    changed = sqlite3_changes(db_) > 0;
    return Status::ok();
  }));
  return changed;
}

Status SqliteStore::deletePooled(const std::string& container) {
  return writeOne("delete pool container " + container, "DELETE FROM pool WHERE container = ?",
                  container);
}

Result<std::optional<PooledContainer>> SqliteStore::takePooled(const std::string& image,
                                                               uint32_t version,
                                                               const ResourceLimits& limits) {
  std::optional<PooledContainer> taken;
  const std::string what = "claim a pool container of " + image;
  QABOX_RETURN_IF_ERROR(write(what, [&]() -> Status {
    Stmt s(db_,
           std::string("DELETE FROM pool WHERE container = (SELECT container FROM pool WHERE "
                       "image = ? AND image_version = ? AND memory = ? AND cpus = ? AND pids = ? "
                       "AND state = 'ready' ORDER BY created_at, container LIMIT 1) RETURNING ") +
               kPoolColumns,
           what);
    s.bind(1, image)
        .bind(2, version)
        .bind(3, limits.memory)
        .bind(4, limits.cpus)
        .bind(5, limits.pids);
    QABOX_ASSIGN_OR_RETURN(bool row, s.step());
    if (!row) return Status::ok();
    QABOX_ASSIGN_OR_RETURN(taken, readPooled(s));
    // RETURNING's statement is done only once stepped to its end.
    QABOX_ASSIGN_OR_RETURN(bool more, s.step());
    if (more) return internalError(what + ": more than one row taken");
    return Status::ok();
  }));
  return taken;
}

}  // namespace qabox::store
