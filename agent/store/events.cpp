// The events table: the audit log, newest first, pruned by age and count.

#include "store/sqlite_stmt.h"
#include "store/sqlite_store.h"

namespace qabox::store {

namespace {

Event readEvent(const Stmt& s) {
  return {s.int64(0), s.time(1), s.text(2), s.text(3), s.text(4), s.text(5), s.text(6)};
}

}  // namespace

Status SqliteStore::addEvent(const Event& e) {
  return write(
      "record event " + e.action,
      [&]() -> Status {
        Stmt s(db_,
               "INSERT INTO events (at, ticket, action, actor, outcome, detail) "
               "VALUES (?, ?, ?, ?, ?, ?)",
               "record event " + e.action);
        s.bind(1, e.at)
            .bind(2, e.ticket)
            .bind(3, e.action)
            .bind(4, e.actor)
            .bind(5, e.outcome)
            .bind(6, e.detail);
        return s.run();
      },
      Sync::kNormal);
}

Result<uint64_t> SqliteStore::pruneEvents(TimePoint olderThan, uint64_t keepRows, uint32_t batch) {
  uint64_t removed = 0;
  QABOX_RETURN_IF_ERROR(write("prune events", [&]() -> Status {
    // By age first, then the oldest beyond keepRows: ids grow with time, so
    // the newest keepRows rows are those above the keepRows-th highest id.
    Stmt age(db_,
             "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE at < ?1 "
             "ORDER BY at LIMIT ?2)",
             "prune events by age");
    age.bind(1, olderThan).bind(2, batch);
    QABOX_RETURN_IF_ERROR(age.run());
    removed += static_cast<uint64_t>(sqlite3_changes(db_));
    if (removed >= batch || keepRows == 0) return Status::ok();
    Stmt count(db_,
               "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE id <= "
               "(SELECT id FROM events ORDER BY id DESC LIMIT 1 OFFSET ?1) ORDER BY id "
               "LIMIT ?2)",
               "prune events by count");
    count.bind(1, keepRows).bind(2, static_cast<uint64_t>(batch - removed));
    QABOX_RETURN_IF_ERROR(count.run());
    removed += static_cast<uint64_t>(sqlite3_changes(db_));
    return Status::ok();
  }));
  return removed;
}

Result<uint64_t> SqliteStore::countEvents() {
  std::lock_guard lock(mu_);
  Stmt s(db_, "SELECT count(*) FROM events", "count events");
  QABOX_ASSIGN_OR_RETURN(bool row, s.step());
  return row ? static_cast<uint64_t>(s.int64(0)) : uint64_t{0};
}

Result<std::vector<Event>> SqliteStore::listEvents(const std::string& ticket, uint32_t limit) {
  std::lock_guard lock(mu_);
  // Newest is the last written (the highest id), whatever the clock said.
  // Two statements rather than "?1 = '' OR ticket = ?1", which would keep
  // the planner off the events_ticket index.
  const char* sql = ticket.empty()
                        ? "SELECT id, at, ticket, action, actor, outcome, detail FROM events "
                          "ORDER BY id DESC LIMIT ?2"
                        : "SELECT id, at, ticket, action, actor, outcome, detail FROM events "
                          "WHERE ticket = ?1 ORDER BY id DESC LIMIT ?2";
  Stmt s(db_, sql, "list events");
  if (!ticket.empty()) s.bind(1, ticket);
  s.bind(2, limit == 0 ? uint32_t{100} : limit);
  return readRows<Event>(s, readEvent);
}

}  // namespace qabox::store
