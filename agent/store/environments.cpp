// The environments table: one row per environment, keyed by slug, and the
// router's use counters on it.

#include <utility>

#include "store/json_columns.h"
#include "store/sqlite_stmt.h"
#include "store/sqlite_store.h"

namespace qabox::store {

namespace {

constexpr const char* kEnvColumns =
    "slug, ticket, state, ip, container, image_version, image, repo, source_branch, "
    "target_branch, env_json, secret_keys_json, ttl_ms, commit_id, port, message, pinned, "
    "created_at, updated_at, deployed_at, last_access_at, expires_at, request_count, bytes_in, "
    "bytes_out, ask_memory, ask_cpus, ask_pids, memory, cpus, pids, source_commit, target_commit, "
    "deps_layer, data_layer, access, phases_json, target_head, behind";

// An upsert, not a replace: the router's use counters may have been
// flushed since the caller read the row, and must not go back.
constexpr const char* kUpsertTail =
    ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
    "ON "
    "CONFLICT(slug) DO "
    "UPDATE SET "
    "ticket=excluded.ticket, state=excluded.state, ip=excluded.ip, "
    "container=excluded.container, image_version=excluded.image_version, "
    "image=excluded.image, repo=excluded.repo, source_branch=excluded.source_branch, "
    "target_branch=excluded.target_branch, env_json=excluded.env_json, "
    "secret_keys_json=excluded.secret_keys_json, ttl_ms=excluded.ttl_ms, "
    "commit_id=excluded.commit_id, port=excluded.port, message=excluded.message, "
    "pinned=excluded.pinned, created_at=excluded.created_at, "
    "updated_at=excluded.updated_at, deployed_at=excluded.deployed_at, "
    "expires_at=excluded.expires_at, ask_memory=excluded.ask_memory, "
    "ask_cpus=excluded.ask_cpus, ask_pids=excluded.ask_pids, memory=excluded.memory, "
    "cpus=excluded.cpus, pids=excluded.pids, source_commit=excluded.source_commit, "
    "target_commit=excluded.target_commit, deps_layer=excluded.deps_layer, "
    "data_layer=excluded.data_layer, access=excluded.access, phases_json=excluded.phases_json, "
    // What the target has gained is measured against the target commit: a
    // deploy of a new one starts level with it, and any other write keeps
    // the count setTargetState() stored last (newer than the caller's copy).
    "target_head=CASE WHEN target_commit=excluded.target_commit THEN target_head "
    "ELSE excluded.target_commit END, "
    "behind=CASE WHEN target_commit=excluded.target_commit THEN behind ELSE 0 END, "
    "last_access_at=CASE WHEN last_access_at IS NULL THEN excluded.last_access_at "
    "WHEN excluded.last_access_at IS NULL THEN last_access_at "
    "ELSE max(last_access_at, excluded.last_access_at) END, "
    "request_count=max(request_count, excluded.request_count), "
    "bytes_in=max(bytes_in, excluded.bytes_in), bytes_out=max(bytes_out, excluded.bytes_out)";

Status readSpec(const Stmt& s, const std::string& slug, DeploySpec& spec) {
  spec.image = s.text(6);
  spec.repo = s.text(7);
  spec.sourceBranch = s.text(8);
  spec.targetBranch = s.text(9);
  QABOX_ASSIGN_OR_RETURN(spec.env,
                         decodeStringMap(s.text(10), "environment " + slug + ": env_json"));
  QABOX_ASSIGN_OR_RETURN(
      spec.secretKeys, decodeStringList(s.text(11), "environment " + slug + ": secret_keys_json"));
  if (auto ttl = s.optInt64(12)) spec.ttl = std::chrono::milliseconds(*ttl);
  spec.limits.memory = s.text(25);
  spec.limits.cpus = static_cast<uint32_t>(s.int64(26));
  spec.limits.pids = static_cast<uint32_t>(s.int64(27));
  spec.access = s.text(35);
  return Status::ok();
}

Result<Environment> readEnvironment(const Stmt& s) {
  Environment e;
  e.slug = s.text(0);
  e.ticket = s.text(1);
  std::string state = s.text(2);
  auto parsed = parseState(state);
  if (!parsed) return dataLoss("environment " + e.slug + ": unknown state \"" + state + "\"");
  e.state = *parsed;
  e.ip = s.text(3);
  e.container = s.text(4);
  e.imageVersion = static_cast<uint32_t>(s.int64(5));
  QABOX_RETURN_IF_ERROR(readSpec(s, e.slug, e.spec));
  e.commit = s.text(13);
  e.port = static_cast<uint32_t>(s.int64(14));
  e.message = s.text(15);
  e.pinned = s.int64(16) != 0;
  e.createdAt = s.time(17);
  e.updatedAt = s.time(18);
  e.deployedAt = s.time(19);
  e.lastAccessAt = s.optTimeAt(20);
  e.expiresAt = s.optTimeAt(21);
  e.requestCount = static_cast<uint64_t>(s.int64(22));
  e.bytesIn = static_cast<uint64_t>(s.int64(23));
  e.bytesOut = static_cast<uint64_t>(s.int64(24));
  e.limits.memory = s.text(28);
  e.limits.cpus = static_cast<uint32_t>(s.int64(29));
  e.limits.pids = static_cast<uint32_t>(s.int64(30));
  e.sourceCommit = s.text(31);
  e.targetCommit = s.text(32);
  e.depsLayer = s.text(33);
  e.dataLayer = s.text(34);
  QABOX_ASSIGN_OR_RETURN(e.phases,
                         decodePhases(s.text(36), "environment " + e.slug + ": phases_json"));
  e.targetHead = s.text(37);
  e.behind = static_cast<uint32_t>(s.int64(38));
  return e;
}

// Binds every column of kEnvColumns, in order.
Status bindEnvironment(Stmt& s, const Environment& e) {
  QABOX_ASSIGN_OR_RETURN(std::string env,
                         encodeStringMap(e.spec.env, "environment " + e.slug + ": env"));
  QABOX_ASSIGN_OR_RETURN(
      std::string secretKeys,
      encodeStringList(e.spec.secretKeys, "environment " + e.slug + ": secret keys"));
  std::optional<int64_t> ttl;
  if (e.spec.ttl) ttl = e.spec.ttl->count();
  s.bind(1, e.slug).bind(2, e.ticket).bind(3, stateName(e.state)).bind(4, e.ip);
  s.bind(5, e.container).bind(6, e.imageVersion);
  s.bind(7, e.spec.image).bind(8, e.spec.repo).bind(9, e.spec.sourceBranch);
  s.bind(10, e.spec.targetBranch).bind(11, env).bind(12, secretKeys).bind(13, ttl);
  s.bind(14, e.commit).bind(15, e.port).bind(16, e.message).bind(17, e.pinned);
  s.bind(18, e.createdAt).bind(19, e.updatedAt).bind(20, e.deployedAt);
  s.bind(21, optMillis(e.lastAccessAt)).bind(22, optMillis(e.expiresAt));
  s.bind(23, e.requestCount).bind(24, e.bytesIn).bind(25, e.bytesOut);
  s.bind(26, e.spec.limits.memory).bind(27, e.spec.limits.cpus).bind(28, e.spec.limits.pids);
  s.bind(29, e.limits.memory).bind(30, e.limits.cpus).bind(31, e.limits.pids);
  s.bind(32, e.sourceCommit).bind(33, e.targetCommit).bind(34, e.depsLayer);
  QABOX_ASSIGN_OR_RETURN(std::string phases, encodePhases(e.phases));
  s.bind(35, e.dataLayer).bind(36, e.spec.access).bind(37, phases);
  s.bind(38, e.targetHead.empty() ? e.targetCommit : e.targetHead).bind(39, e.behind);
  return Status::ok();
}

}  // namespace

Result<std::optional<Environment>> SqliteStore::getEnvironment(const std::string& slug) {
  std::lock_guard lock(mu_);
  std::string sql = std::string("SELECT ") + kEnvColumns + " FROM environments WHERE slug = ?";
  Stmt s(db_, sql, "read environment " + slug);
  s.bind(1, slug);
  QABOX_ASSIGN_OR_RETURN(bool row, s.step());
  if (!row) return std::optional<Environment>();
  QABOX_ASSIGN_OR_RETURN(auto env, readEnvironment(s));
  return std::optional<Environment>(std::move(env));
}

Result<std::vector<Environment>> SqliteStore::listEnvironments() {
  std::lock_guard lock(mu_);
  std::string sql =
      std::string("SELECT ") + kEnvColumns + " FROM environments ORDER BY created_at, slug";
  Stmt s(db_, sql, "list environments");
  return readRows<Environment>(s, readEnvironment);
}

Status SqliteStore::putEnvironment(const Environment& e) {
  const std::string what = "write environment " + e.slug;
  return write(what, [&]() -> Status {
    Stmt s(db_, std::string("INSERT INTO environments (") + kEnvColumns + kUpsertTail, what);
    QABOX_RETURN_IF_ERROR(bindEnvironment(s, e));
    return s.run();
  });
}

Status SqliteStore::deleteEnvironment(const std::string& slug) {
  return writeOne("delete environment " + slug, "DELETE FROM environments WHERE slug = ?", slug);
}

Result<uint32_t> SqliteStore::countEnvironments() {
  std::lock_guard lock(mu_);
  Stmt s(db_, "SELECT count(*) FROM environments", "count environments");
  QABOX_ASSIGN_OR_RETURN(bool row, s.step());
  return row ? static_cast<uint32_t>(s.int64(0)) : 0u;
}

Result<bool> SqliteStore::setTargetState(const std::string& slug, const std::string& targetCommit,
                                         const std::string& targetHead, uint32_t behind) {
  const std::string what = "record how far environment " + slug + "'s target moved";
  bool changed = false;
  auto body = [&]() -> Status {
    Stmt s(db_,
           "UPDATE environments SET target_head = ?1, behind = ?2 "
           "WHERE slug = ?3 AND target_commit = ?4 AND (target_head != ?1 OR behind != ?2)",
           what);
    s.bind(1, targetHead).bind(2, behind).bind(3, slug).bind(4, targetCommit);
    QABOX_RETURN_IF_ERROR(s.run());
    changed = sqlite3_changes(db_) > 0;
    return Status::ok();
  };
  QABOX_RETURN_IF_ERROR(write(what, body, Sync::kNormal));
  return changed;
}

Status SqliteStore::recordAccess(const std::vector<AccessStats>& stats) {
  if (stats.empty()) return Status::ok();
  const std::string what = "record access counters";
  auto body = [&]() -> Status {
    Stmt s(db_,
           "UPDATE environments SET "
           "last_access_at = CASE WHEN ?1 IS NULL THEN last_access_at "
           "ELSE max(coalesce(last_access_at, ?1), ?1) END, "
           "request_count = request_count + ?2, bytes_in = bytes_in + ?3, "
           "bytes_out = bytes_out + ?4 WHERE slug = ?5",
           what);
    for (const auto& a : stats) {
      // A flush with no request in it carries no access time.
      std::optional<int64_t> at;
      if (a.lastAccessAt != TimePoint{}) at = toUnixMillis(a.lastAccessAt);
      s.reset();
      s.bind(1, at).bind(2, a.requests).bind(3, a.bytesIn).bind(4, a.bytesOut).bind(5, a.slug);
      QABOX_RETURN_IF_ERROR(s.run());
    }
    return Status::ok();
  };
  return write(what, body, Sync::kNormal);
}

}  // namespace qabox::store
