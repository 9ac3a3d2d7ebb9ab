// The operations table: the journal of host changes, and the names of its
// kinds and outcomes (and of the cached layers' kinds and the pool's states) as the rows hold them.

#include <array>
#include <utility>

#include "store/sqlite_stmt.h"
#include "store/sqlite_store.h"

namespace qabox {

namespace {

// The stored strings: rows in the field hold them, so they never change.
constexpr std::array<std::pair<JournalKind, std::string_view>, 6> kKindNames = {{
    {JournalKind::kCreate, "create"},
    {JournalKind::kRedeploy, "redeploy"},
    {JournalKind::kDelete, "delete"},
    {JournalKind::kImageBuild, "image.build"},
    {JournalKind::kDepsBuild, "deps.build"},
    {JournalKind::kDataBuild, "data.build"},
}};

constexpr std::array<std::pair<LayerKind, std::string_view>, 2> kLayerKindNames = {{
    {LayerKind::kDeps, "deps"},
    {LayerKind::kData, "data"},
}};

constexpr std::array<std::pair<PoolState, std::string_view>, 3> kPoolStateNames = {{
    {PoolState::kFilling, "filling"},
    {PoolState::kReady, "ready"},
    {PoolState::kDropping, "dropping"},
}};

constexpr std::array<std::pair<JournalOutcome, std::string_view>, 4> kOutcomeNames = {{
    {JournalOutcome::kUnfinished, ""},
    {JournalOutcome::kOk, "ok"},
    {JournalOutcome::kError, "error"},
    {JournalOutcome::kRolledBack, "rolled-back"},
}};

template <typename E, size_t N>
std::string_view nameOf(const std::array<std::pair<E, std::string_view>, N>& names, E value) {
  for (const auto& [v, name] : names) {
    if (v == value) return name;
  }
  return "?";  // not reached: every enumerator is in the table
}

template <typename E, size_t N>
std::optional<E> valueOf(const std::array<std::pair<E, std::string_view>, N>& names,
                         std::string_view name) {
  for (const auto& [v, n] : names) {
    if (n == name) return v;
  }
  return std::nullopt;
}

}  // namespace

std::string_view journalKindName(JournalKind kind) { return nameOf(kKindNames, kind); }
std::optional<JournalKind> parseJournalKind(std::string_view name) {
  return valueOf(kKindNames, name);
}
std::string_view poolStateName(PoolState state) { return nameOf(kPoolStateNames, state); }
std::optional<PoolState> parsePoolState(std::string_view name) {
  return valueOf(kPoolStateNames, name);
}
std::string_view journalOutcomeName(JournalOutcome outcome) {
  return nameOf(kOutcomeNames, outcome);
}
std::optional<JournalOutcome> parseJournalOutcome(std::string_view name) {
  return valueOf(kOutcomeNames, name);
}
std::string_view layerKindName(LayerKind kind) { return nameOf(kLayerKindNames, kind); }
std::optional<LayerKind> parseLayerKind(std::string_view name) {
  return valueOf(kLayerKindNames, name);
}

namespace store {

namespace {

Result<Operation> readOperation(const Stmt& s) {
  Operation op;
  op.id = s.int64(0);
  op.slug = s.text(1);
  const std::string where = "operation " + std::to_string(op.id);
  const std::string kind = s.text(2);
  auto parsedKind = parseJournalKind(kind);
  if (!parsedKind) return dataLoss(where + ": unknown kind \"" + kind + "\"");
  op.kind = *parsedKind;
  op.container = s.text(3);
  op.ip = s.text(4);
  op.startedAt = s.time(5);
  op.finishedAt = s.optTimeAt(6);
  const std::string outcome = s.text(7);
  auto parsedOutcome = parseJournalOutcome(outcome);
  if (!parsedOutcome) return dataLoss(where + ": unknown outcome \"" + outcome + "\"");
  op.outcome = *parsedOutcome;
  op.detail = s.text(8);
  return op;
}

}  // namespace

Result<int64_t> SqliteStore::beginOperation(const Operation& op) {
  const std::string what = "journal " + std::string(journalKindName(op.kind)) + " " + op.slug;
  int64_t id = 0;
  QABOX_RETURN_IF_ERROR(write(what, [&]() -> Status {
    Stmt s(db_,
           "INSERT INTO operations (slug, kind, container, ip, started_at, finished_at, "
           "outcome, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
           what);
    s.bind(1, op.slug)
        .bind(2, journalKindName(op.kind))
        .bind(3, op.container)
        .bind(4, op.ip)
        .bind(5, op.startedAt)
        .bind(6, optMillis(op.finishedAt))
        .bind(7, journalOutcomeName(op.outcome))
        .bind(8, op.detail);
    QABOX_RETURN_IF_ERROR(s.run());
    id = sqlite3_last_insert_rowid(db_);
    return Status::ok();
  }));
  return id;
}

Status SqliteStore::finishOperation(int64_t id, JournalOutcome outcome, const std::string& detail) {
  const std::string what = "finish operation " + std::to_string(id);
  if (outcome == JournalOutcome::kUnfinished) {
    return invalidArgument(what + ": outcome must not be empty");
  }
  return write(what, [&]() -> Status {
    Stmt s(db_, "UPDATE operations SET finished_at = ?, outcome = ?, detail = ? WHERE id = ?",
           what);
    s.bind(1, now()).bind(2, journalOutcomeName(outcome)).bind(3, detail).bind(4, id);
    QABOX_RETURN_IF_ERROR(s.run());
    if (sqlite3_changes(db_) == 0) {
      return notFound("operation " + std::to_string(id) + ": not in the journal");
    }
    return Status::ok();
  });
}

Result<std::vector<Operation>> SqliteStore::unfinishedOperations() {
  std::lock_guard lock(mu_);
  Stmt s(db_,
         "SELECT id, slug, kind, container, ip, started_at, finished_at, outcome, detail "
         "FROM operations WHERE finished_at IS NULL ORDER BY id",
         "read unfinished operations");
  return readRows<Operation>(s, readOperation);
}

Result<std::vector<std::string>> SqliteStore::journalContainers() {
  std::lock_guard lock(mu_);
  Stmt s(db_, "SELECT DISTINCT container FROM operations WHERE container != ''",
         "read the journal's containers");
  std::vector<std::string> out;
  while (true) {
    QABOX_ASSIGN_OR_RETURN(bool row, s.step());
    if (!row) break;
    out.push_back(s.text(0));
  }
  return out;
}

}  // namespace store

}  // namespace qabox
