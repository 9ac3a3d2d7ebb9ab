// The tokens table: API tokens by name, found by the hash of their secret.

#include "store/sqlite_stmt.h"
#include "store/sqlite_store.h"

namespace qabox::store {

namespace {

constexpr const char* kTokenColumns =
    "name, role, hash, created_at, expires_at, revoked, revoked_at, last_used_at";

TokenRecord readToken(const Stmt& s) {
  return {s.text(0),      s.text(1),       s.text(2),      s.time(3),
          s.optTimeAt(4), s.int64(5) != 0, s.optTimeAt(6), s.optTimeAt(7)};
}

}  // namespace

Status SqliteStore::putToken(const TokenRecord& t) {
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

Result<std::optional<TokenRecord>> SqliteStore::findTokenByHash(const std::string& hash) {
  return oneToken("hash", hash, "find token");
}

Result<std::optional<TokenRecord>> SqliteStore::getToken(const std::string& name) {
  return oneToken("name", name, "read token " + name);
}

Result<std::vector<TokenRecord>> SqliteStore::listTokens() {
  std::lock_guard lock(mu_);
  std::string sql = std::string("SELECT ") + kTokenColumns + " FROM tokens ORDER BY name";
  Stmt s(db_, sql, "list tokens");
  return readRows<TokenRecord>(s, readToken);
}

Result<TokenRecord> SqliteStore::revokeToken(const std::string& name, TimePoint at) {
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

Status SqliteStore::touchToken(const std::string& name, TimePoint at) {
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

Result<std::optional<TokenRecord>> SqliteStore::oneToken(const char* column,
                                                         const std::string& value,
                                                         const std::string& what) {
  std::lock_guard lock(mu_);
  std::string sql =
      std::string("SELECT ") + kTokenColumns + " FROM tokens WHERE " + column + " = ?";
  Stmt s(db_, sql, what);
  s.bind(1, value);
  QABOX_ASSIGN_OR_RETURN(bool row, s.step());
  if (!row) return std::optional<TokenRecord>();
  return std::optional<TokenRecord>(readToken(s));
}

}  // namespace qabox::store
