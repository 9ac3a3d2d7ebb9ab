#include "sys/idshift.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <sstream>

namespace qabox {

uint32_t shiftedId(uint32_t id, uint32_t base) { return id < kMappedIds ? base + id : id; }

namespace {

// Gives `path` (never followed) the ids `map` makes of its own.
template <typename Map>
Status remapOne(const std::string& path, const Map& map) {
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0) {
    return internalError("stat " + path + ": " + std::strerror(errno));
  }
  uid_t uid = map(st.st_uid);
  gid_t gid = map(st.st_gid);
  if (uid == st.st_uid && gid == st.st_gid) return Status::ok();
  if (lchown(path.c_str(), uid, gid) != 0) {
    return internalError("chown " + path + ": " + std::strerror(errno));
  }
  // chown clears setuid and setgid; what the image made setuid stays so.
  // Never through a link: a link swapped in since the lstat is left alone.
  if (!S_ISLNK(st.st_mode) && (st.st_mode & (S_ISUID | S_ISGID)) &&
      fchmodat(AT_FDCWD, path.c_str(), st.st_mode & 07777, AT_SYMLINK_NOFOLLOW) != 0) {
    return internalError("chmod " + path + ": " + std::strerror(errno));
  }
  return Status::ok();
}

template <typename Map>
Status remapTree(const std::string& root, const Map& map, const std::string& what) {
  namespace fs = std::filesystem;
  Status s = remapOne(root, map);
  std::error_code ec;
  // Symlinks are not followed: the walk stays inside `root`.
  for (fs::recursive_directory_iterator it(root, ec), end; s.isOk() && !ec && it != end;
       it.increment(ec)) {
    s = remapOne(it->path().string(), map);
  }
  if (!s.isOk()) return s.withContext(what);
  if (ec) return internalError(what + ": " + ec.message());
  return Status::ok();
}

}  // namespace

Status shiftOwnership(const std::string& root, uint32_t base) {
  return remapTree(
      root, [base](uint32_t id) { return shiftedId(id, base); },
      "giving " + root + " to the container's ids");
}

Status moveOwnership(const std::string& root, uint32_t from, uint32_t to) {
  if (from == to) return Status::ok();
  return remapTree(
      root,
      [from, to](uint32_t id) -> uint32_t {
        return id >= from && id - from < kMappedIds ? to + (id - from) : to;
      },
      "giving " + root + " to the image's ids");
}

std::optional<uint32_t> mappedRootOf(std::string_view lxcConfig) {
  std::istringstream in{std::string(lxcConfig)};
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string key, eq, kind;
    uint64_t inside = 1, outside = 0;
    if (words >> key >> eq >> kind >> inside >> outside && key == "lxc.idmap" && eq == "=" &&
        kind == "u" && inside == 0 && outside <= UINT32_MAX) {
      return static_cast<uint32_t>(outside);
    }
  }
  return std::nullopt;
}

}  // namespace qabox
