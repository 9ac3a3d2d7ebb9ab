#include "store/store.h"

#include <sqlite3.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <set>
#include <string_view>
#include <thread>
#include <utility>

#include "store/ipam.h"

namespace qabox {

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
};

// How long a statement waits for another connection's lock before BUSY.
constexpr std::chrono::milliseconds kBusyTimeout{5000};

constexpr const char* kTokenColumns =
    "name, role, hash, created_at, expires_at, revoked, revoked_at, last_used_at";

Status dataLoss(std::string message) { return {Code::kDataLoss, std::move(message)}; }

std::optional<int64_t> optMillis(const std::optional<TimePoint>& t) {
  if (!t) return std::nullopt;
  return toUnixMillis(*t);
}

std::optional<TimePoint> optTime(const std::optional<int64_t>& ms) {
  if (!ms) return std::nullopt;
  return fromUnixMillis(*ms);
}

// The env map and secret key list are stored as JSON text, so they stay
// readable (and queryable with SQLite's json functions) from the sqlite3 shell.
void appendJsonString(std::string& out, std::string_view s) {
  out += '"';
  for (char ch : s) {
    switch (ch) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (static_cast<unsigned char>(ch) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(ch));
          out += buf;
        } else {
          out += ch;
        }
    }
  }
  out += '"';
}

std::string encodeEnv(const std::map<std::string, std::string>& env) {
  std::string out = "{";
  bool first = true;
  for (const auto& [k, v] : env) {
    if (!first) out += ',';
    first = false;
    appendJsonString(out, k);
    out += ':';
    appendJsonString(out, v);
  }
  out += '}';
  return out;
}

std::string encodeList(const std::vector<std::string>& list) {
  std::string out = "[";
  for (size_t i = 0; i < list.size(); ++i) {
    if (i) out += ',';
    appendJsonString(out, list[i]);
  }
  out += ']';
  return out;
}

void appendUtf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xc0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xe0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  }
}

// Reads back what the encoders above write (and any other JSON object of
// strings or array of strings).
class JsonReader {
 public:
  explicit JsonReader(std::string_view s) : s_(s) {}

  bool readEnv(std::map<std::string, std::string>& out) {
    if (!take('{')) return false;
    if (take('}')) return atEnd();
    do {
      std::string k, v;
      if (!readString(k) || !take(':') || !readString(v)) return false;
      out[std::move(k)] = std::move(v);
    } while (take(','));
    return take('}') && atEnd();
  }

  bool readList(std::vector<std::string>& out) {
    if (!take('[')) return false;
    if (take(']')) return atEnd();
    do {
      std::string v;
      if (!readString(v)) return false;
      out.push_back(std::move(v));
    } while (take(','));
    return take(']') && atEnd();
  }

 private:
  void skipSpace() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r'))
      ++i_;
  }
  bool take(char c) {
    skipSpace();
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  bool atEnd() {
    skipSpace();
    return i_ == s_.size();
  }
  bool readHex4(uint32_t& out) {
    if (s_.size() - i_ < 4) return false;
    out = 0;
    for (int n = 0; n < 4; ++n) {
      char c = s_[i_++];
      out <<= 4;
      if (c >= '0' && c <= '9') {
        out |= static_cast<uint32_t>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        out |= static_cast<uint32_t>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        out |= static_cast<uint32_t>(c - 'A' + 10);
      } else {
        return false;
      }
    }
    return true;
  }
  bool readString(std::string& out) {
    if (!take('"')) return false;
    while (i_ < s_.size()) {
      char c = s_[i_++];
      if (c == '"') return true;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (i_ >= s_.size()) return false;
      char e = s_[i_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'u': {
          uint32_t cp = 0;
          if (!readHex4(cp)) return false;
          if (cp >= 0xd800 && cp < 0xdc00) {
            uint32_t low = 0;
            if (s_.substr(i_, 2) != "\\u") return false;
            i_ += 2;
            if (!readHex4(low) || low < 0xdc00 || low >= 0xe000) return false;
            cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
          } else if (cp >= 0xdc00 && cp < 0xe000) {
            return false;
          }
          appendUtf8(out, cp);
          break;
        }
        default: return false;
      }
    }
    return false;
  }

  std::string_view s_;
  size_t i_ = 0;
};

// A full disk is the operator's to fix, not the agent's bug: RESOURCE_EXHAUSTED
// naming the disk, so callers and clients can tell it from corruption.
Status sqliteError(sqlite3* db, int rc, const std::string& what, const std::string& detail) {
  int primary = rc & 0xff;
  int sys = sqlite3_system_errno(db);
  if (primary == SQLITE_FULL || (primary == SQLITE_IOERR && (sys == ENOSPC || sys == EDQUOT))) {
    const char* file = sqlite3_db_filename(db, "main");
    std::string name = file && *file ? file : "the database";
    return resourceExhausted(what + ": the disk holding " + name + " is full (" + detail +
                             "); free space on it");
  }
  return internalError(what + ": " + detail);
}

// One prepared statement. Bind errors are kept and reported by step(), so
// call sites bind in a row without checking each one.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql, std::string what) : db_(db), what_(std::move(what)) {
    rc_ = sqlite3_prepare_v2(db_, sql, -1, &stmt_, nullptr);
  }
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& bind(int i, std::string_view v) {
    // SQLITE_TRANSIENT: the statement outlives some of the temporaries bound to it.
    return check(
        sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
  }
  Stmt& bind(int i, const std::string& v) { return bind(i, std::string_view(v)); }
  Stmt& bind(int i, const char* v) { return bind(i, std::string_view(v)); }
  Stmt& bind(int i, int64_t v) { return check(sqlite3_bind_int64(stmt_, i, v)); }
  Stmt& bind(int i, uint64_t v) { return bind(i, static_cast<int64_t>(v)); }
  Stmt& bind(int i, uint32_t v) { return bind(i, static_cast<int64_t>(v)); }
  Stmt& bind(int i, bool v) { return bind(i, static_cast<int64_t>(v ? 1 : 0)); }
  Stmt& bind(int i, TimePoint t) { return bind(i, toUnixMillis(t)); }
  Stmt& bind(int i, const std::optional<int64_t>& v) {
    return v ? bind(i, *v) : check(sqlite3_bind_null(stmt_, i));
  }

  // true while there is a row to read.
  Result<bool> step() {
    if (rc_ != SQLITE_OK) return error();
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    rc_ = rc;
    return error();
  }
  Status run() {
    auto r = step();
    return r.status();
  }

  // Makes the statement ready to run again with new bindings.
  void reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }

  // The extended result code of the last failure, to tell constraint errors apart.
  int errorCode() const { return rc_; }

  std::string text(int col) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
    if (!p) return {};
    return std::string(p, static_cast<size_t>(sqlite3_column_bytes(stmt_, col)));
  }
  int64_t int64(int col) const { return sqlite3_column_int64(stmt_, col); }
  std::optional<int64_t> optInt64(int col) const {
    if (sqlite3_column_type(stmt_, col) == SQLITE_NULL) return std::nullopt;
    return int64(col);
  }
  TimePoint time(int col) const { return fromUnixMillis(int64(col)); }
  std::optional<TimePoint> optTimeAt(int col) const { return optTime(optInt64(col)); }

 private:
  Stmt& check(int rc) {
    if (rc != SQLITE_OK && rc_ == SQLITE_OK) rc_ = rc;
    return *this;
  }
  Status error() const {
    return sqliteError(db_, rc_, what_,
                       std::string(sqlite3_errstr(rc_)) + " (" + sqlite3_errmsg(db_) + ")");
  }

  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  std::string what_;
  int rc_ = SQLITE_OK;
};

constexpr const char* kEnvColumns =
    "slug, ticket, state, ip, container, image_version, image, repo, source_branch, "
    "target_branch, env_json, secret_keys_json, ttl_ms, commit_id, port, message, pinned, "
    "created_at, updated_at, deployed_at, last_access_at, expires_at, request_count, bytes_in, "
    "bytes_out, ask_memory, ask_cpus, ask_pids, memory, cpus, pids, source_commit, target_commit";

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
  e.spec.image = s.text(6);
  e.spec.repo = s.text(7);
  e.spec.sourceBranch = s.text(8);
  e.spec.targetBranch = s.text(9);
  if (!JsonReader(s.text(10)).readEnv(e.spec.env)) {
    return dataLoss("environment " + e.slug + ": env_json is not a JSON object of strings");
  }
  if (!JsonReader(s.text(11)).readList(e.spec.secretKeys)) {
    return dataLoss("environment " + e.slug + ": secret_keys_json is not a JSON array of strings");
  }
  if (auto ttl = s.optInt64(12)) e.spec.ttl = std::chrono::milliseconds(*ttl);
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
  e.spec.limits.memory = s.text(25);
  e.spec.limits.cpus = static_cast<uint32_t>(s.int64(26));
  e.spec.limits.pids = static_cast<uint32_t>(s.int64(27));
  e.limits.memory = s.text(28);
  e.limits.cpus = static_cast<uint32_t>(s.int64(29));
  e.limits.pids = static_cast<uint32_t>(s.int64(30));
  e.sourceCommit = s.text(31);
  e.targetCommit = s.text(32);
  return e;
}

Operation readOperation(const Stmt& s) {
  Operation op;
  op.id = s.int64(0);
  op.slug = s.text(1);
  op.kind = s.text(2);
  op.container = s.text(3);
  op.ip = s.text(4);
  op.startedAt = s.time(5);
  op.finishedAt = s.optTimeAt(6);
  op.outcome = s.text(7);
  op.detail = s.text(8);
  return op;
}

ImageVersion readImage(const Stmt& s) {
  return {s.text(0), static_cast<uint32_t>(s.int64(1)), s.time(2), s.int64(3) != 0, s.text(4)};
}

TokenRecord readToken(const Stmt& s) {
  return {s.text(0),      s.text(1),       s.text(2),      s.time(3),
          s.optTimeAt(4), s.int64(5) != 0, s.optTimeAt(6), s.optTimeAt(7)};
}

class SqliteStore final : public Store {
 public:
  explicit SqliteStore(std::string path) : path_(std::move(path)) {}
  ~SqliteStore() override { sqlite3_close_v2(db_); }

  Status open() {
    int rc =
        sqlite3_open_v2(path_.c_str(), &db_,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) {
      std::string msg = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
      return internalError("open database " + path_ + ": " + msg);
    }
    sqlite3_extended_result_codes(db_, 1);
    // The busy timeout comes first: switching to WAL itself may wait for
    // another process that holds the file.
    if (int rc = sqlite3_busy_timeout(db_, static_cast<int>(kBusyTimeout.count()));
        rc != SQLITE_OK) {
      return internalError("set busy_timeout on " + path_ + ": " + sqlite3_errstr(rc));
    }
    // Two connections switching a fresh file to WAL at once can deadlock on
    // the lock upgrade; SQLite then answers BUSY at once, without waiting
    // in the busy handler. Try again, for as long as the busy timeout.
    const auto giveUp = std::chrono::steady_clock::now() + kBusyTimeout;
    while (true) {
      Stmt s(db_, "PRAGMA journal_mode=WAL", "enable WAL on " + path_);
      auto row = s.step();
      if (!row && (sqlite3_errcode(db_) & 0xff) == SQLITE_BUSY &&
          std::chrono::steady_clock::now() < giveUp) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        continue;
      }
      if (!row) return row.status();
      std::string mode = *row ? s.text(0) : "";
      if (mode != "wal" && !(path_ == ":memory:" && mode == "memory")) {
        return internalError("enable WAL on " + path_ + ": journal_mode is \"" + mode + "\"");
      }
      break;
    }
    // FULL, not NORMAL: in WAL mode NORMAL skips the fsync at commit, so a
    // power cut can take back a commit the caller was told about: a token
    // revocation (the token works again) or a deploy's final write. Only
    // the frequent writes that may be lost (events, use counters) commit
    // with NORMAL, see write(); the next FULL commit makes them durable too,
    // as the WAL is synced in order.
    QABOX_RETURN_IF_ERROR(exec("PRAGMA synchronous=FULL", "set synchronous"));
    sync_ = Sync::kFull;
    QABOX_RETURN_IF_ERROR(exec("PRAGMA foreign_keys=ON", "enable foreign keys"));
    return migrate();
  }

  Status transaction(const std::function<Status()>& body) override {
    return write("transaction", body);
  }

  Result<std::optional<Environment>> getEnvironment(const std::string& slug) override {
    std::lock_guard lock(mu_);
    std::string sql = std::string("SELECT ") + kEnvColumns + " FROM environments WHERE slug = ?";
    Stmt s(db_, sql.c_str(), "read environment " + slug);
    s.bind(1, slug);
    QABOX_ASSIGN_OR_RETURN(bool row, s.step());
    if (!row) return std::optional<Environment>();
    QABOX_ASSIGN_OR_RETURN(auto env, readEnvironment(s));
    return std::optional<Environment>(std::move(env));
  }

  Result<std::vector<Environment>> listEnvironments() override {
    std::lock_guard lock(mu_);
    std::string sql =
        std::string("SELECT ") + kEnvColumns + " FROM environments ORDER BY created_at, slug";
    Stmt s(db_, sql.c_str(), "list environments");
    std::vector<Environment> out;
    while (true) {
      QABOX_ASSIGN_OR_RETURN(bool row, s.step());
      if (!row) break;
      QABOX_ASSIGN_OR_RETURN(auto env, readEnvironment(s));
      out.push_back(std::move(env));
    }
    return out;
  }

  Status putEnvironment(const Environment& e) override {
    return write("write environment " + e.slug, [&]() -> Status {
      // An upsert, not a replace: the router's use counters may have been
      // flushed since the caller read the row, and must not go back.
      std::string sql =
          std::string("INSERT INTO environments (") + kEnvColumns +
          ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON "
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
          "target_commit=excluded.target_commit, "
          "last_access_at=CASE WHEN last_access_at IS NULL THEN excluded.last_access_at "
          "WHEN excluded.last_access_at IS NULL THEN last_access_at "
          "ELSE max(last_access_at, excluded.last_access_at) END, "
          "request_count=max(request_count, excluded.request_count), "
          "bytes_in=max(bytes_in, excluded.bytes_in), bytes_out=max(bytes_out, excluded.bytes_out)";
      Stmt s(db_, sql.c_str(), "write environment " + e.slug);
      std::optional<int64_t> ttl;
      if (e.spec.ttl) ttl = e.spec.ttl->count();
      s.bind(1, e.slug)
          .bind(2, e.ticket)
          .bind(3, stateName(e.state))
          .bind(4, e.ip)
          .bind(5, e.container)
          .bind(6, e.imageVersion)
          .bind(7, e.spec.image)
          .bind(8, e.spec.repo)
          .bind(9, e.spec.sourceBranch)
          .bind(10, e.spec.targetBranch)
          .bind(11, encodeEnv(e.spec.env))
          .bind(12, encodeList(e.spec.secretKeys))
          .bind(13, ttl)
          .bind(14, e.commit)
          .bind(15, e.port)
          .bind(16, e.message)
          .bind(17, e.pinned)
          .bind(18, e.createdAt)
          .bind(19, e.updatedAt)
          .bind(20, e.deployedAt)
          .bind(21, optMillis(e.lastAccessAt))
          .bind(22, optMillis(e.expiresAt))
          .bind(23, e.requestCount)
          .bind(24, e.bytesIn)
          .bind(25, e.bytesOut)
          .bind(26, e.spec.limits.memory)
          .bind(27, e.spec.limits.cpus)
          .bind(28, e.spec.limits.pids)
          .bind(29, e.limits.memory)
          .bind(30, e.limits.cpus)
          .bind(31, e.limits.pids)
          .bind(32, e.sourceCommit)
          .bind(33, e.targetCommit);
      return s.run();
    });
  }

  Status deleteEnvironment(const std::string& slug) override {
    return write("delete environment " + slug, [&]() -> Status {
      Stmt s(db_, "DELETE FROM environments WHERE slug = ?", "delete environment " + slug);
      s.bind(1, slug);
      return s.run();
    });
  }

  Result<uint32_t> countEnvironments() override {
    std::lock_guard lock(mu_);
    Stmt s(db_, "SELECT count(*) FROM environments", "count environments");
    QABOX_ASSIGN_OR_RETURN(bool row, s.step());
    return row ? static_cast<uint32_t>(s.int64(0)) : 0u;
  }

  Result<std::string> leaseAddress(const std::string& subnetText,
                                   const std::string& owner) override {
    QABOX_ASSIGN_OR_RETURN(Subnet subnet, parseSubnet(subnetText));
    std::string ip;
    QABOX_RETURN_IF_ERROR(write("lease an address for " + owner, [&]() -> Status {
      std::set<uint32_t> used;
      {
        Stmt s(db_, "SELECT ip FROM leases", "read leases");
        while (true) {
          QABOX_ASSIGN_OR_RETURN(bool row, s.step());
          if (!row) break;
          // Leases from another subnet (the config changed) do not block this one.
          if (auto off = offsetOf(subnet, s.text(0))) used.insert(*off);
        }
      }
      const uint32_t first = 2;
      const uint32_t last = first + hostCount(subnet) - 1;
      uint32_t pick = first;
      for (uint32_t off : used) {
        if (off < pick) continue;
        if (off > pick) break;
        ++pick;
      }
      if (pick > last) {
        auto inUse = std::count_if(used.begin(), used.end(),
                                   [&](uint32_t off) { return off >= first && off <= last; });
        return resourceExhausted("network.subnet " + subnetText + ": no free address left (" +
                                 std::to_string(inUse) +
                                 " in use); delete environments or configure a larger subnet");
      }
      ip = addressAt(subnet, pick);
      Stmt s(db_, "INSERT INTO leases (ip, owner, created_at) VALUES (?, ?, ?)",
             "lease " + ip + " for " + owner);
      s.bind(1, ip).bind(2, owner).bind(3, Clock::now());
      return s.run();
    }));
    return ip;
  }

  Status releaseAddress(const std::string& ip) override {
    return write("release " + ip, [&]() -> Status {
      Stmt s(db_, "DELETE FROM leases WHERE ip = ?", "release " + ip);
      s.bind(1, ip);
      return s.run();
    });
  }

  Status releaseAddressesOf(const std::string& owner) override {
    return write("release the addresses of " + owner, [&]() -> Status {
      Stmt s(db_, "DELETE FROM leases WHERE owner = ?", "release the addresses of " + owner);
      s.bind(1, owner);
      return s.run();
    });
  }

  Result<std::vector<Lease>> listLeases() override {
    std::lock_guard lock(mu_);
    Stmt s(db_, "SELECT ip, owner, created_at FROM leases", "list leases");
    std::vector<Lease> out;
    while (true) {
      QABOX_ASSIGN_OR_RETURN(bool row, s.step());
      if (!row) break;
      out.push_back({s.text(0), s.text(1), s.time(2)});
    }
    // Numeric order, so 10.44.0.10 comes after 10.44.0.9 as a reader expects.
    std::sort(out.begin(), out.end(), [](const Lease& a, const Lease& b) {
      auto x = parseIpv4(a.ip), y = parseIpv4(b.ip);
      if (x && y) return *x < *y;
      if (x || y) return x.has_value();
      return a.ip < b.ip;
    });
    return out;
  }

  Result<int64_t> beginOperation(const Operation& op) override {
    int64_t id = 0;
    QABOX_RETURN_IF_ERROR(write("journal " + op.kind + " " + op.slug, [&]() -> Status {
      Stmt s(db_,
             "INSERT INTO operations (slug, kind, container, ip, started_at, finished_at, "
             "outcome, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
             "journal " + op.kind + " " + op.slug);
      s.bind(1, op.slug)
          .bind(2, op.kind)
          .bind(3, op.container)
          .bind(4, op.ip)
          .bind(5, op.startedAt)
          .bind(6, optMillis(op.finishedAt))
          .bind(7, op.outcome)
          .bind(8, op.detail);
      QABOX_RETURN_IF_ERROR(s.run());
      id = sqlite3_last_insert_rowid(db_);
      return Status::ok();
    }));
    return id;
  }

  Status finishOperation(int64_t id, const std::string& outcome,
                         const std::string& detail) override {
    const std::string what = "finish operation " + std::to_string(id);
    if (outcome.empty()) return invalidArgument(what + ": outcome must not be empty");
    return write(what, [&]() -> Status {
      Stmt s(db_, "UPDATE operations SET finished_at = ?, outcome = ?, detail = ? WHERE id = ?",
             what);
      s.bind(1, Clock::now()).bind(2, outcome).bind(3, detail).bind(4, id);
      QABOX_RETURN_IF_ERROR(s.run());
      if (sqlite3_changes(db_) == 0) {
        return notFound("operation " + std::to_string(id) + ": not in the journal");
      }
      return Status::ok();
    });
  }

  Result<std::vector<Operation>> unfinishedOperations() override {
    std::lock_guard lock(mu_);
    Stmt s(db_,
           "SELECT id, slug, kind, container, ip, started_at, finished_at, outcome, detail "
           "FROM operations WHERE finished_at IS NULL ORDER BY id",
           "read unfinished operations");
    std::vector<Operation> out;
    while (true) {
      QABOX_ASSIGN_OR_RETURN(bool row, s.step());
      if (!row) break;
      out.push_back(readOperation(s));
    }
    return out;
  }

  Status addEvent(const Event& e) override {
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

  Result<uint64_t> pruneEvents(TimePoint olderThan, uint64_t keepRows, uint32_t batch) override {
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

  Result<uint64_t> countEvents() override {
    std::lock_guard lock(mu_);
    Stmt s(db_, "SELECT count(*) FROM events", "count events");
    QABOX_ASSIGN_OR_RETURN(bool row, s.step());
    return row ? static_cast<uint64_t>(s.int64(0)) : uint64_t{0};
  }

  Result<std::vector<Event>> listEvents(const std::string& ticket, uint32_t limit) override {
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
    std::vector<Event> out;
    while (true) {
      QABOX_ASSIGN_OR_RETURN(bool row, s.step());
      if (!row) break;
      out.push_back({s.int64(0), s.time(1), s.text(2), s.text(3), s.text(4), s.text(5), s.text(6)});
    }
    return out;
  }

  Status putImage(const ImageVersion& image) override {
    const std::string what =
        "write image " + image.name + " version " + std::to_string(image.version);
    return write(what, [&]() -> Status {
      // Cleared first: the images_one_current index allows one current row per name.
      if (image.current) {
        Stmt clear(db_, "UPDATE images SET current = 0 WHERE name = ? AND version <> ?", what);
        clear.bind(1, image.name).bind(2, image.version);
        QABOX_RETURN_IF_ERROR(clear.run());
      }
      Stmt s(db_,
             "INSERT OR REPLACE INTO images (name, version, built_at, current, description) "
             "VALUES (?, ?, ?, ?, ?)",
             what);
      s.bind(1, image.name)
          .bind(2, image.version)
          .bind(3, image.builtAt)
          .bind(4, image.current)
          .bind(5, image.description);
      return s.run();
    });
  }

  Result<std::vector<ImageVersion>> listImages() override {
    std::lock_guard lock(mu_);
    Stmt s(db_,
           "SELECT name, version, built_at, current, description FROM images "
           "ORDER BY name, version",
           "list images");
    std::vector<ImageVersion> out;
    while (true) {
      QABOX_ASSIGN_OR_RETURN(bool row, s.step());
      if (!row) break;
      out.push_back(readImage(s));
    }
    return out;
  }

  Result<std::optional<ImageVersion>> currentImage(const std::string& name) override {
    std::lock_guard lock(mu_);
    Stmt s(db_,
           "SELECT name, version, built_at, current, description FROM images "
           "WHERE name = ? AND current = 1",
           "read the current version of image " + name);
    s.bind(1, name);
    QABOX_ASSIGN_OR_RETURN(bool row, s.step());
    if (!row) return std::optional<ImageVersion>();
    return std::optional<ImageVersion>(readImage(s));
  }

  Status deleteImage(const std::string& name, uint32_t version) override {
    const std::string what = "delete image " + name + " version " + std::to_string(version);
    return write(what, [&]() -> Status {
      Stmt s(db_, "DELETE FROM images WHERE name = ? AND version = ?", what);
      s.bind(1, name).bind(2, version);
      return s.run();
    });
  }

  Status putToken(const TokenRecord& t) override {
    const std::string what = "write token " + t.name;
    return write(what, [&]() -> Status {
      // An upsert, not INSERT OR REPLACE: a hash that collides with another
      // token must fail rather than silently delete that token.
      Stmt s(db_,
             "INSERT INTO tokens (name, role, hash, created_at, expires_at, revoked, revoked_at, "
             "last_used_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
             "role = excluded.role, hash = excluded.hash, created_at = excluded.created_at, "
             "expires_at = excluded.expires_at, revoked = excluded.revoked, "
             "revoked_at = excluded.revoked_at, last_used_at = excluded.last_used_at",
             what);
      // A revoked token always has a revocation time, and the reverse.
      std::optional<TimePoint> revokedAt = t.revokedAt;
      if (t.revoked && !revokedAt) revokedAt = t.createdAt;
      s.bind(1, t.name)
          .bind(2, t.role)
          .bind(3, t.hash)
          .bind(4, t.createdAt)
          .bind(5, optMillis(t.expiresAt))
          .bind(6, revokedAt.has_value())
          .bind(7, optMillis(revokedAt))
          .bind(8, optMillis(t.lastUsedAt));
      Status st = s.run();
      if (!st.isOk() && s.errorCode() == SQLITE_CONSTRAINT_UNIQUE) {
        return alreadyExists("token " + t.name + ": another token has the same secret");
      }
      return st;
    });
  }

  Result<std::optional<TokenRecord>> findTokenByHash(const std::string& hash) override {
    return oneToken("hash", hash, "find token");
  }

  Result<std::optional<TokenRecord>> getToken(const std::string& name) override {
    return oneToken("name", name, "read token " + name);
  }

  Result<std::vector<TokenRecord>> listTokens() override {
    std::lock_guard lock(mu_);
    std::string sql = std::string("SELECT ") + kTokenColumns + " FROM tokens ORDER BY name";
    Stmt s(db_, sql.c_str(), "list tokens");
    std::vector<TokenRecord> out;
    while (true) {
      QABOX_ASSIGN_OR_RETURN(bool row, s.step());
      if (!row) break;
      out.push_back(readToken(s));
    }
    return out;
  }

  Result<TokenRecord> revokeToken(const std::string& name, TimePoint at) override {
    const std::string what = "revoke token " + name;
    std::optional<TokenRecord> out;
    QABOX_RETURN_IF_ERROR(write(what, [&]() -> Status {
      Stmt s(db_,
             "UPDATE tokens SET revoked = 1, revoked_at = coalesce(revoked_at, ?) WHERE name = ?",
             what);
      s.bind(1, at).bind(2, name);
      QABOX_RETURN_IF_ERROR(s.run());
      if (sqlite3_changes(db_) == 0) return notFound("token " + name + ": no such token");
      QABOX_ASSIGN_OR_RETURN(out, getToken(name));
      return Status::ok();
    }));
    if (!out) return notFound("token " + name + ": no such token");
    return *out;
  }

  Status touchToken(const std::string& name, TimePoint at) override {
    const std::string what = "record the use of token " + name;
    return write(
        what,
        [&]() -> Status {
          Stmt s(db_,
                 "UPDATE tokens SET last_used_at = max(coalesce(last_used_at, ?1), ?1) "
                 "WHERE name = ?2",
                 what);
          s.bind(1, at).bind(2, name);
          return s.run();
        },
        Sync::kNormal);
  }

  Status recordAccess(const std::vector<AccessStats>& stats) override {
    if (stats.empty()) return Status::ok();
    return write(
        "record access counters",
        [&]() -> Status {
          Stmt s(db_,
                 "UPDATE environments SET "
                 "last_access_at = CASE WHEN ?1 IS NULL THEN last_access_at "
                 "ELSE max(coalesce(last_access_at, ?1), ?1) END, "
                 "request_count = request_count + ?2, bytes_in = bytes_in + ?3, "
                 "bytes_out = bytes_out + ?4 WHERE slug = ?5",
                 "record access counters");
          for (const auto& a : stats) {
            // A flush with no request in it carries no access time.
            std::optional<int64_t> at;
            if (a.lastAccessAt != TimePoint{}) at = toUnixMillis(a.lastAccessAt);
            s.reset();
            s.bind(1, at)
                .bind(2, a.requests)
                .bind(3, a.bytesIn)
                .bind(4, a.bytesOut)
                .bind(5, a.slug);
            QABOX_RETURN_IF_ERROR(s.run());
          }
          return Status::ok();
        },
        Sync::kNormal);
  }

 private:
  // How a write transaction commits: FULL syncs the WAL at commit, NORMAL
  // leaves it to the next sync (a power cut may lose it, never corrupt).
  enum class Sync { kFull, kNormal };

  Status setSync(Sync sync) {
    if (sync == sync_) return Status::ok();
    QABOX_RETURN_IF_ERROR(
        exec(sync == Sync::kFull ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL",
             "set synchronous"));
    sync_ = sync;
    return Status::ok();
  }

  Result<std::optional<TokenRecord>> oneToken(const char* column, const std::string& value,
                                              const std::string& what) {
    std::lock_guard lock(mu_);
    std::string sql =
        std::string("SELECT ") + kTokenColumns + " FROM tokens WHERE " + column + " = ?";
    Stmt s(db_, sql.c_str(), what);
    s.bind(1, value);
    QABOX_ASSIGN_OR_RETURN(bool row, s.step());
    if (!row) return std::optional<TokenRecord>();
    return std::optional<TokenRecord>(readToken(s));
  }

  Status exec(const char* sql, const std::string& what) {
    char* err = nullptr;
    int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
    if (rc == SQLITE_OK) return Status::ok();
    std::string msg = err ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    return sqliteError(db_, rc, what, msg);
  }

  // Runs `body` in a write transaction: BEGIN IMMEDIATE at the outermost
  // level (so the write lock is taken up front and busy_timeout applies,
  // instead of a deferred reader failing to upgrade), a savepoint when
  // nested, so a failing inner call undoes only its own writes.
  // `sync` applies to an outermost transaction only: a write nested in
  // another commits with it.
  Status write(const std::string& what, const std::function<Status()>& body,
               Sync sync = Sync::kFull) {
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

  // Rolls back on every way out that is not a commit, including an
  // exception thrown by a caller's body.
  class Scope {
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
      Status st = level_ == 0 ? store_.exec("COMMIT", what + ": commit")
                              : store_.exec(("RELEASE " + savepoint()).c_str(), what);
      if (!st.isOk() && level_ == 0 && !sqlite3_get_autocommit(store_.db_)) {
        (void)store_.exec("ROLLBACK", what + ": rollback");
      }
      return st;
    }

    void rollback() {
      if (!active_) return;
      active_ = false;
      --store_.depth_;
      if (sqlite3_get_autocommit(store_.db_)) return;
      if (level_ == 0) {
        (void)store_.exec("ROLLBACK", "rollback");
      } else {
        std::string sp = savepoint();
        (void)store_.exec(("ROLLBACK TO " + sp + "; RELEASE " + sp).c_str(), "rollback");
      }
    }

   private:
    std::string savepoint() const { return "qabox_sp" + std::to_string(level_); }

    SqliteStore& store_;
    int level_ = 0;
    bool active_ = false;
  };

  // Each migration runs in its own BEGIN IMMEDIATE transaction and reads
  // user_version inside it, so two processes opening a fresh file at once
  // do not both apply the same step.
  Status migrate() {
    const int latest = static_cast<int>(kMigrations.size());
    while (true) {
      std::lock_guard lock(mu_);
      Scope scope(*this);
      QABOX_RETURN_IF_ERROR(scope.begin("migrate " + path_));
      int version = 0;
      {
        Stmt s(db_, "PRAGMA user_version", "read the schema version of " + path_);
        QABOX_ASSIGN_OR_RETURN(bool row, s.step());
        if (row) version = static_cast<int>(s.int64(0));
      }
      if (version > latest) {
        return failedPrecondition("database " + path_ + ": schema version " +
                                  std::to_string(version) + " is newer than this agent's (" +
                                  std::to_string(latest) + "); upgrade qaboxd");
      }
      if (version == latest) return scope.commit("migrate " + path_);
      const std::string what =
          "migrate " + path_ + " to schema version " + std::to_string(version + 1);
      QABOX_RETURN_IF_ERROR(exec(kMigrations[static_cast<size_t>(version)], what));
      QABOX_RETURN_IF_ERROR(
          exec(("PRAGMA user_version = " + std::to_string(version + 1)).c_str(), what));
      QABOX_RETURN_IF_ERROR(scope.commit(what));
    }
  }

  std::string path_;
  sqlite3* db_ = nullptr;
  // Recursive: a transaction body calls the other methods on the same thread.
  std::recursive_mutex mu_;
  int depth_ = 0;
  Sync sync_ = Sync::kFull;  // guarded by mu_
};

}  // namespace

Result<std::unique_ptr<Store>> openSqliteStore(const std::string& path) {
  auto store = std::make_unique<SqliteStore>(path);
  QABOX_RETURN_IF_ERROR(store->open());
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace qabox
