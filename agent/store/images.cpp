// The images table: the versions of each base image, one of them current.

#include "store/sqlite_stmt.h"
#include "store/sqlite_store.h"

namespace qabox::store {

namespace {

ImageVersion readImage(const Stmt& s) {
  ImageVersion v;
  v.name = s.text(0);
  v.version = static_cast<uint32_t>(s.int64(1));
  v.builtAt = s.time(2);
  v.current = s.int64(3) != 0;
  v.description = s.text(4);
  v.parent = s.text(5);
  v.parentVersion = static_cast<uint32_t>(s.int64(6));
  v.recipeHash = s.text(7);
  return v;
}

constexpr const char* kImageColumns =
    "name, version, built_at, current, description, parent, parent_version, recipe_hash";

}  // namespace

Status SqliteStore::putImage(const ImageVersion& image) {
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
           std::string("INSERT OR REPLACE INTO images (") + kImageColumns +
               ") VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
           what);
    s.bind(1, image.name)
        .bind(2, image.version)
        .bind(3, image.builtAt)
        .bind(4, image.current)
        .bind(5, image.description)
        .bind(6, image.parent)
        .bind(7, image.parentVersion)
        .bind(8, image.recipeHash);
    return s.run();
  });
}

Result<std::vector<ImageVersion>> SqliteStore::listImages() {
  std::lock_guard lock(mu_);
  Stmt s(db_, std::string("SELECT ") + kImageColumns + " FROM images ORDER BY name, version",
         "list images");
  return readRows<ImageVersion>(s, readImage);
}

Result<std::optional<ImageVersion>> SqliteStore::currentImage(const std::string& name) {
  std::lock_guard lock(mu_);
  Stmt s(db_,
         std::string("SELECT ") + kImageColumns + " FROM images WHERE name = ? AND current = 1",
         "read the current version of image " + name);
  s.bind(1, name);
  QABOX_ASSIGN_OR_RETURN(bool row, s.step());
  if (!row) return std::optional<ImageVersion>();
  return std::optional<ImageVersion>(readImage(s));
}

Status SqliteStore::deleteImage(const std::string& name, uint32_t version) {
  const std::string what = "delete image " + name + " version " + std::to_string(version);
  return writeOne(what, "DELETE FROM images WHERE name = ? AND version = ?", name, version);
}

}  // namespace qabox::store
