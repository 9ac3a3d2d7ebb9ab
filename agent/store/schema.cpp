// The schema: numbered migrations in user_version, and the step that applies them.

#include <string>
#include <vector>

#include "store/sqlite_stmt.h"
#include "store/sqlite_store.h"

namespace qabox::store {

namespace {

// Migration N (1-based) moves user_version from N-1 to N. Append only: a
// released migration is never edited, since databases in the field already ran it.
const std::vector<const char*> kMigrations = {
    R"sql(
CREATE TABLE environments (
  slug TEXT PRIMARY KEY,
  ticket TEXT NOT NULL,
  state TEXT NOT NULL,
  ip TEXT NOT NULL DEFAULT '',
  container TEXT NOT NULL DEFAULT '',
  image_version INTEGER NOT NULL DEFAULT 0,
  image TEXT NOT NULL DEFAULT '',
  repo TEXT NOT NULL DEFAULT '',
  source_branch TEXT NOT NULL DEFAULT '',
  target_branch TEXT NOT NULL DEFAULT '',
  env_json TEXT NOT NULL DEFAULT '{}',
  secret_keys_json TEXT NOT NULL DEFAULT '[]',
  ttl_ms INTEGER,
  commit_id TEXT NOT NULL DEFAULT '',
  port INTEGER NOT NULL DEFAULT 80,
  message TEXT NOT NULL DEFAULT '',
  pinned INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  deployed_at INTEGER NOT NULL,
  last_access_at INTEGER,
  expires_at INTEGER,
  request_count INTEGER NOT NULL DEFAULT 0,
  bytes_in INTEGER NOT NULL DEFAULT 0,
  bytes_out INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE leases (
  ip TEXT PRIMARY KEY,
  owner TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE INDEX leases_owner ON leases(owner);
CREATE TABLE operations (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  slug TEXT NOT NULL,
  kind TEXT NOT NULL,
  container TEXT NOT NULL DEFAULT '',
  ip TEXT NOT NULL DEFAULT '',
  started_at INTEGER NOT NULL,
  finished_at INTEGER,
  outcome TEXT NOT NULL DEFAULT '',
  detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX operations_unfinished ON operations(id) WHERE finished_at IS NULL;
CREATE TABLE events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  at INTEGER NOT NULL,
  ticket TEXT NOT NULL,
  action TEXT NOT NULL,
  actor TEXT NOT NULL DEFAULT '',
  outcome TEXT NOT NULL DEFAULT '',
  detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX events_ticket ON events(ticket, id);
CREATE TABLE images (
  name TEXT NOT NULL,
  version INTEGER NOT NULL,
  built_at INTEGER NOT NULL,
  current INTEGER NOT NULL DEFAULT 0,
  description TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (name, version)
);
CREATE UNIQUE INDEX images_one_current ON images(name) WHERE current = 1;
CREATE TABLE tokens (
  name TEXT PRIMARY KEY,
  role TEXT NOT NULL,
  hash TEXT NOT NULL UNIQUE,
  created_at INTEGER NOT NULL,
  expires_at INTEGER,
  revoked INTEGER NOT NULL DEFAULT 0
);
)sql",
    // Tokens learn when they were revoked and last used.
    R"sql(
ALTER TABLE tokens ADD COLUMN revoked_at INTEGER;
ALTER TABLE tokens ADD COLUMN last_used_at INTEGER;
UPDATE tokens SET revoked_at = created_at WHERE revoked = 1;
)sql",
    // Resource limits: what the deploy asked for (ask_*) and what is in force.
    R"sql(
ALTER TABLE environments ADD COLUMN ask_memory TEXT NOT NULL DEFAULT '';
ALTER TABLE environments ADD COLUMN ask_cpus INTEGER NOT NULL DEFAULT 0;
ALTER TABLE environments ADD COLUMN ask_pids INTEGER NOT NULL DEFAULT 0;
ALTER TABLE environments ADD COLUMN memory TEXT NOT NULL DEFAULT '';
ALTER TABLE environments ADD COLUMN cpus INTEGER NOT NULL DEFAULT 0;
ALTER TABLE environments ADD COLUMN pids INTEGER NOT NULL DEFAULT 0;
)sql",
    // The heads a deploy merged: the reaper's merged policy asks whether the
    // source's own head is in the target. Rows from before stay '' (unknown).
    // events_at lets pruning by age use an index.
    R"sql(
ALTER TABLE environments ADD COLUMN source_commit TEXT NOT NULL DEFAULT '';
ALTER TABLE environments ADD COLUMN target_commit TEXT NOT NULL DEFAULT '';
CREATE INDEX events_at ON events(at);
)sql",
    // Images built on images: the parent version a layer was built on, and
    // the recipe hash a build is cached by. Rows from before are base images
    // with no hash ('': the next build makes a new version).
    R"sql(
ALTER TABLE images ADD COLUMN parent TEXT NOT NULL DEFAULT '';
ALTER TABLE images ADD COLUMN parent_version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE images ADD COLUMN recipe_hash TEXT NOT NULL DEFAULT '';
)sql",
    // Cached dependency layers (qabox.toml [deps]) and the one each
    // environment is cloned over ('': none).
    R"sql(
CREATE TABLE deps_layers (
  hash TEXT PRIMARY KEY,
  image TEXT NOT NULL,
  image_version INTEGER NOT NULL,
  size_bytes INTEGER NOT NULL DEFAULT 0,
  built_at INTEGER NOT NULL,
  last_used_at INTEGER NOT NULL
);
ALTER TABLE environments ADD COLUMN deps_layer TEXT NOT NULL DEFAULT '';
)sql",
    // Dataset snapshots ([data]) beside the dependency layers, in one
    // table of cached layers; the one each environment is cloned over.
    R"sql(
ALTER TABLE deps_layers RENAME TO layers;
ALTER TABLE layers ADD COLUMN kind TEXT NOT NULL DEFAULT 'deps';
ALTER TABLE layers ADD COLUMN lineage TEXT NOT NULL DEFAULT '';
ALTER TABLE environments ADD COLUMN data_layer TEXT NOT NULL DEFAULT '';
)sql",
    // 8: who may open an environment's URL, and its last deploy's phases.
    R"sql(
ALTER TABLE environments ADD COLUMN access TEXT NOT NULL DEFAULT '';
ALTER TABLE environments ADD COLUMN phases_json TEXT NOT NULL DEFAULT '[]';
)sql",
    // 9: the target's head as last seen in the mirror, and how many commits
    // it is ahead of target_commit (the environment's merge went stale).
    R"sql(
ALTER TABLE environments ADD COLUMN target_head TEXT NOT NULL DEFAULT '';
ALTER TABLE environments ADD COLUMN behind INTEGER NOT NULL DEFAULT 0;
)sql",
    // 10: the warm pool: containers started ahead of any deploy, each
    // holding its lease (leases.owner = container) until one claims it.
    R"sql(
CREATE TABLE pool (
  container     TEXT PRIMARY KEY,
  image         TEXT NOT NULL,
  image_version INTEGER NOT NULL,
  ip            TEXT NOT NULL,
  memory        TEXT NOT NULL DEFAULT '',
  cpus          INTEGER NOT NULL DEFAULT 0,
  pids          INTEGER NOT NULL DEFAULT 0,
  state         TEXT NOT NULL,
  created_at    INTEGER NOT NULL
);
)sql",
};

}  // namespace

// Each migration runs in its own BEGIN IMMEDIATE transaction and reads
// user_version inside it, so two processes opening a fresh file at once
// do not both apply the same step.
Status SqliteStore::migrate() {
  bool done = false;
  while (!done) {
    QABOX_RETURN_IF_ERROR(write("migrate " + options_.path, [&] { return migrateOneStep(done); }));
  }
  return Status::ok();
}

Status SqliteStore::checkSchemaVersion() {
  const std::string& path = options_.path;
  const int latest = static_cast<int>(kMigrations.size());
  Stmt s(db_, "PRAGMA user_version", "read the schema version of " + path);
  QABOX_ASSIGN_OR_RETURN(bool row, s.step());
  const int version = row ? static_cast<int>(s.int64(0)) : 0;
  if (version != latest) {
    return failedPrecondition("database " + path + ": schema version " + std::to_string(version) +
                              ", this qaboxd's is " + std::to_string(latest) +
                              "; start the agent of this version once to migrate it");
  }
  return Status::ok();
}

Status SqliteStore::migrateOneStep(bool& done) {
  const std::string& path = options_.path;
  const int latest = static_cast<int>(kMigrations.size());
  int version = 0;
  {
    Stmt s(db_, "PRAGMA user_version", "read the schema version of " + path);
    QABOX_ASSIGN_OR_RETURN(bool row, s.step());
    if (row) version = static_cast<int>(s.int64(0));
  }
  if (version > latest) {
    return failedPrecondition("database " + path + ": schema version " + std::to_string(version) +
                              " is newer than this agent's (" + std::to_string(latest) +
                              "); upgrade qaboxd");
  }
  done = version == latest;
  if (done) return Status::ok();
  const std::string what = "migrate " + path + " to schema version " + std::to_string(version + 1);
  QABOX_RETURN_IF_ERROR(exec(kMigrations[static_cast<size_t>(version)], what));
  return exec(("PRAGMA user_version = " + std::to_string(version + 1)).c_str(), what);
}

}  // namespace qabox::store
