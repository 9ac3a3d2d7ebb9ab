// The layers table: the cached dependency and data layers, keyed by hash.

#include "store/sqlite_stmt.h"
#include "store/sqlite_store.h"

namespace qabox::store {

namespace {

constexpr const char* kLayerColumns =
    "hash, image, image_version, size_bytes, built_at, last_used_at, kind, lineage";

Result<CachedLayer> readLayer(const Stmt& s) {
  CachedLayer l;
  l.hash = s.text(0);
  l.image = s.text(1);
  l.imageVersion = static_cast<uint32_t>(s.int64(2));
  l.sizeBytes = static_cast<uint64_t>(s.int64(3));
  l.builtAt = s.time(4);
  l.lastUsedAt = s.time(5);
  auto kind = parseLayerKind(s.text(6));
  if (!kind) return internalError("layer " + l.hash.substr(0, 12) + ": unknown kind " + s.text(6));
  l.kind = *kind;
  l.lineage = s.text(7);
  return l;
}

}  // namespace

Status SqliteStore::putLayer(const CachedLayer& layer) {
  const std::string what = "write layer " + layer.hash.substr(0, 12);
  return write(what, [&]() -> Status {
    Stmt s(db_,
           std::string("INSERT OR REPLACE INTO layers (") + kLayerColumns +
               ") VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
           what);
    s.bind(1, layer.hash)
        .bind(2, layer.image)
        .bind(3, layer.imageVersion)
        .bind(4, layer.sizeBytes)
        .bind(5, layer.builtAt)
        .bind(6, layer.lastUsedAt)
        .bind(7, std::string(layerKindName(layer.kind)))
        .bind(8, layer.lineage);
    return s.run();
  });
}

Result<std::optional<CachedLayer>> SqliteStore::getLayer(const std::string& hash) {
  std::lock_guard lock(mu_);
  Stmt s(db_, std::string("SELECT ") + kLayerColumns + " FROM layers WHERE hash = ?",
         "read layer " + hash.substr(0, 12));
  s.bind(1, hash);
  QABOX_ASSIGN_OR_RETURN(bool row, s.step());
  if (!row) return std::optional<CachedLayer>();
  QABOX_ASSIGN_OR_RETURN(CachedLayer l, readLayer(s));
  return std::optional<CachedLayer>(std::move(l));
}

Result<std::vector<CachedLayer>> SqliteStore::listLayers() {
  std::lock_guard lock(mu_);
  Stmt s(db_, std::string("SELECT ") + kLayerColumns + " FROM layers ORDER BY built_at, hash",
         "list cached layers");
  return readRows<CachedLayer>(s, readLayer);
}

Status SqliteStore::touchLayer(const std::string& hash, TimePoint at) {
  return writeOne("touch layer " + hash.substr(0, 12),
                  "UPDATE layers SET last_used_at = max(last_used_at, ?) WHERE hash = ?", at, hash);
}

Status SqliteStore::deleteLayer(const std::string& hash) {
  return writeOne("delete layer " + hash.substr(0, 12), "DELETE FROM layers WHERE hash = ?", hash);
}

}  // namespace qabox::store
