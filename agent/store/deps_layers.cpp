// The deps_layers table: the cached dependency layers, keyed by hash.

#include "store/sqlite_stmt.h"
#include "store/sqlite_store.h"

namespace qabox::store {

namespace {

constexpr const char* kLayerColumns =
    "hash, image, image_version, size_bytes, built_at, last_used_at";

DepsLayer readLayer(const Stmt& s) {
  DepsLayer l;
  l.hash = s.text(0);
  l.image = s.text(1);
  l.imageVersion = static_cast<uint32_t>(s.int64(2));
  l.sizeBytes = static_cast<uint64_t>(s.int64(3));
  l.builtAt = s.time(4);
  l.lastUsedAt = s.time(5);
  return l;
}

}  // namespace

Status SqliteStore::putDepsLayer(const DepsLayer& layer) {
  const std::string what = "write dependency layer " + layer.hash.substr(0, 12);
  return write(what, [&]() -> Status {
    Stmt s(db_,
           std::string("INSERT OR REPLACE INTO deps_layers (") + kLayerColumns +
               ") VALUES (?, ?, ?, ?, ?, ?)",
           what);
    s.bind(1, layer.hash)
        .bind(2, layer.image)
        .bind(3, layer.imageVersion)
        .bind(4, layer.sizeBytes)
        .bind(5, layer.builtAt)
        .bind(6, layer.lastUsedAt);
    return s.run();
  });
}

Result<std::optional<DepsLayer>> SqliteStore::getDepsLayer(const std::string& hash) {
  std::lock_guard lock(mu_);
  Stmt s(db_, std::string("SELECT ") + kLayerColumns + " FROM deps_layers WHERE hash = ?",
         "read dependency layer " + hash.substr(0, 12));
  s.bind(1, hash);
  QABOX_ASSIGN_OR_RETURN(bool row, s.step());
  if (!row) return std::optional<DepsLayer>();
  return std::optional<DepsLayer>(readLayer(s));
}

Result<std::vector<DepsLayer>> SqliteStore::listDepsLayers() {
  std::lock_guard lock(mu_);
  Stmt s(db_, std::string("SELECT ") + kLayerColumns + " FROM deps_layers ORDER BY built_at, hash",
         "list dependency layers");
  return readRows<DepsLayer>(s, readLayer);
}

Status SqliteStore::touchDepsLayer(const std::string& hash, TimePoint at) {
  return writeOne("touch dependency layer " + hash.substr(0, 12),
                  "UPDATE deps_layers SET last_used_at = max(last_used_at, ?) WHERE hash = ?", at,
                  hash);
}

Status SqliteStore::deleteDepsLayer(const std::string& hash) {
  return writeOne("delete dependency layer " + hash.substr(0, 12),
                  "DELETE FROM deps_layers WHERE hash = ?", hash);
}

}  // namespace qabox::store
