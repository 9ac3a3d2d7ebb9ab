#include "runtime/data_pool.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "sys/btrfs.h"
#include "sys/fd.h"
#include "sys/idshift.h"
#include "sys/safe_path.h"

namespace qabox {
namespace {

constexpr char kPartSuffix[] = ".part";
// Deeper trees are refused: the copy holds a descriptor per level.
constexpr int kMaxDepth = 200;

Status errnoStatus(const std::string& what) {
  const int saved = errno;
  if (saved == ENOSPC || saved == EDQUOT) {
    return resourceExhausted(what + ": " + std::strerror(saved));
  }
  return internalError(what + ": " + std::strerror(saved));
}

bool endsWith(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

Status mkdirMode(const std::string& path, mode_t mode) {
  if (::mkdir(path.c_str(), mode) != 0 && errno != EEXIST) return errnoStatus("mkdir " + path);
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return errnoStatus("stat " + path);
  if (!S_ISDIR(st.st_mode)) return failedPrecondition(path + ": not a directory");
  if (::chmod(path.c_str(), mode) != 0) return errnoStatus("chmod " + path);
  return Status::ok();
}

// What the copy keeps of one tree: where it is (for messages) and how ids move.
struct Copy {
  uint32_t fromRoot = 0;
  std::string shownRoot;
};

Result<uint32_t> containerId(const Copy& c, uint32_t id, const std::string& shown) {
  if (id >= c.fromRoot && id - c.fromRoot < kMappedIds) return id - c.fromRoot;
  return failedPrecondition(shown + ": owned by host id " + std::to_string(id) +
                            ", outside the container's ids " + std::to_string(c.fromRoot) + "-" +
                            std::to_string(c.fromRoot + kMappedIds - 1));
}

Status setOwner(const Copy& c, int fd, const char* name, const struct stat& st, int flags,
                const std::string& shown) {
  auto uid = containerId(c, st.st_uid, shown);
  if (!uid) return uid.status();
  auto gid = containerId(c, st.st_gid, shown);
  if (!gid) return gid.status();
  if (::fchownat(fd, name, *uid, *gid, flags) != 0) return errnoStatus("chown " + shown);
  return Status::ok();
}

// After chown (which clears setuid and setgid): the mode and the times.
Status setModeAndTimes(int fd, const struct stat& st, const std::string& shown) {
  if (::fchmod(fd, st.st_mode & 07777) != 0) return errnoStatus("chmod " + shown);
  const timespec times[2] = {st.st_atim, st.st_mtim};
  if (::futimens(fd, times) != 0) return errnoStatus("setting the times of " + shown);
  return Status::ok();
}

Status copyBytes(int from, int to, off_t size, const std::string& shown) {
  off_t done = 0;
  bool plain = false;
  std::vector<char> buf;
  while (done < size) {
    if (!plain) {
      ssize_t n =
          ::copy_file_range(from, nullptr, to, nullptr, static_cast<size_t>(size - done), 0);
      if (n > 0) {
        done += n;
        continue;
      }
      if (n == 0) break;  // the file got shorter
      if (errno != EXDEV && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP) {
        return errnoStatus("copying " + shown);
      }
      plain = true;
      buf.resize(1 << 20);
    }
    ssize_t n = ::read(from, buf.data(), buf.size());
    if (n < 0) return errnoStatus("reading " + shown);
    if (n == 0) break;
    for (ssize_t off = 0; off < n;) {
      ssize_t w = ::write(to, buf.data() + off, static_cast<size_t>(n - off));
      if (w < 0) return errnoStatus("writing the copy of " + shown);
      off += w;
    }
    done += n;
  }
  return Status::ok();
}

Status copyTree(const Copy& c, int srcDir, int dstDir, const std::string& shown, int depth);

Status copyEntry(const Copy& c, int srcDir, int dstDir, const char* name, const std::string& shown,
                 int depth) {
  struct stat st {};
  if (::fstatat(srcDir, name, &st, AT_SYMLINK_NOFOLLOW) != 0) return errnoStatus("stat " + shown);
  if (S_ISDIR(st.st_mode)) {
    UniqueFd src(::openat(srcDir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!src) return errnoStatus("opening " + shown);
    if (::mkdirat(dstDir, name, 0700) != 0) return errnoStatus("mkdir " + shown);
    UniqueFd dst(::openat(dstDir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!dst) return errnoStatus("opening the copy of " + shown);
    QABOX_RETURN_IF_ERROR(copyTree(c, src.get(), dst.get(), shown, depth + 1));
    QABOX_RETURN_IF_ERROR(setOwner(c, dst.get(), "", st, AT_EMPTY_PATH, shown));
    return setModeAndTimes(dst.get(), st, shown);
  }
  if (S_ISREG(st.st_mode)) {
    // O_NONBLOCK: should it have become a FIFO since the stat, the open
    // does not wait on it; the type is checked again on what was opened.
    UniqueFd src(::openat(srcDir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    if (!src) return errnoStatus("opening " + shown);
    if (::fstat(src.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
      return failedPrecondition(shown + ": changed while it was copied");
    }
    UniqueFd dst(
        ::openat(dstDir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!dst) return errnoStatus("creating the copy of " + shown);
    QABOX_RETURN_IF_ERROR(copyBytes(src.get(), dst.get(), st.st_size, shown));
    QABOX_RETURN_IF_ERROR(setOwner(c, dst.get(), "", st, AT_EMPTY_PATH, shown));
    return setModeAndTimes(dst.get(), st, shown);
  }
  if (S_ISLNK(st.st_mode)) {
    std::string target(static_cast<size_t>(st.st_size) + 1, '\0');
    ssize_t n = ::readlinkat(srcDir, name, target.data(), target.size());
    if (n < 0 || static_cast<size_t>(n) >= target.size()) return errnoStatus("readlink " + shown);
    target.resize(static_cast<size_t>(n));
    if (::symlinkat(target.c_str(), dstDir, name) != 0) return errnoStatus("symlink " + shown);
    QABOX_RETURN_IF_ERROR(setOwner(c, dstDir, name, st, AT_SYMLINK_NOFOLLOW, shown));
    const timespec times[2] = {st.st_atim, st.st_mtim};
    if (::utimensat(dstDir, name, times, AT_SYMLINK_NOFOLLOW) != 0) {
      return errnoStatus("setting the times of " + shown);
    }
    return Status::ok();
  }
  if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0)) return Status::ok();  // a whiteout
  return failedPrecondition(shown +
                            ": a special file (socket, FIFO or device); a dataset holds only "
                            "files, directories and symlinks");
}

Status copyTree(const Copy& c, int srcDir, int dstDir, const std::string& shown, int depth) {
  if (depth > kMaxDepth) {
    return failedPrecondition(shown + ": nested deeper than " + std::to_string(kMaxDepth) +
                              " directories");
  }
  int listFd = ::openat(srcDir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (listFd < 0) return errnoStatus("opening " + shown);
  DIR* dir = ::fdopendir(listFd);
  if (!dir) {
    ::close(listFd);
    return errnoStatus("listing " + shown);
  }
  std::vector<std::string> names;
  errno = 0;
  while (dirent* e = ::readdir(dir)) {
    std::string_view n = e->d_name;
    if (n != "." && n != "..") names.emplace_back(n);
  }
  const int err = errno;
  ::closedir(dir);
  if (err != 0) {
    errno = err;
    return errnoStatus("listing " + shown);
  }
  std::sort(names.begin(), names.end());
  for (const std::string& n : names) {
    QABOX_RETURN_IF_ERROR(copyEntry(c, srcDir, dstDir, n.c_str(), shown + "/" + n, depth));
  }
  return Status::ok();
}

// One kept path copied into a new subvolume at `volume`, made read-only.
Status makeVolume(const Copy& c, int fromRoot, const std::string& kept, const std::string& volume) {
  const std::string shown = c.shownRoot + "/" + kept;
  auto src = openBeneath(fromRoot, kept, O_RDONLY | O_DIRECTORY, shown);
  if (!src) return src.status();
  struct stat st {};
  if (::fstat(src->get(), &st) != 0) return errnoStatus("stat " + shown);
  QABOX_RETURN_IF_ERROR(createSubvolume(volume));
  UniqueFd dst(::open(volume.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!dst) return errnoStatus("opening " + volume);
  QABOX_RETURN_IF_ERROR(copyTree(c, src->get(), dst.get(), shown, 0));
  QABOX_RETURN_IF_ERROR(setOwner(c, dst.get(), "", st, AT_EMPTY_PATH, shown));
  QABOX_RETURN_IF_ERROR(setModeAndTimes(dst.get(), st, shown));
  if (::syncfs(dst.get()) != 0) return errnoStatus("syncing " + volume);
  return setSubvolumeReadOnly(volume, true);
}

Status checkKeptPath(const std::string& kept) {
  if (kept.empty() || kept[0] == '/') {
    return invalidArgument("kept path \"" + kept + "\": must be relative to the tree");
  }
  for (const auto& part : std::filesystem::path(kept)) {
    if (part == "..") return invalidArgument("kept path \"" + kept + "\": must not hold ..");
  }
  return Status::ok();
}

// Every subvolume directly in `dir` (a plain directory) deleted, then `dir`.
Status deleteVolumeDir(const std::string& dir) {
  std::error_code ec;
  if (!std::filesystem::exists(std::filesystem::symlink_status(dir, ec))) return Status::ok();
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    auto sub = isSubvolume(e.path().string());
    if (sub && *sub) {
      QABOX_RETURN_IF_ERROR(deleteSubvolume(e.path().string()));
    }
  }
  if (ec) return internalError("listing " + dir + ": " + ec.message());
  std::filesystem::remove_all(dir, ec);
  if (ec) return internalError("removing " + dir + ": " + ec.message());
  return Status::ok();
}

Result<std::vector<std::string>> entries(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    out.push_back(e.path().filename().string());
  }
  if (ec) return internalError("listing " + dir + ": " + ec.message());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

std::string poolDatasetsDir(const std::string& pool) { return pool + "/datasets"; }
std::string poolEnvsDir(const std::string& pool) { return pool + "/envs"; }
std::string datasetVolumeDir(const std::string& pool, const std::string& hash) {
  return poolDatasetsDir(pool) + "/" + hash;
}
std::string datasetVolume(const std::string& pool, const std::string& hash, size_t i) {
  return datasetVolumeDir(pool, hash) + "/" + std::to_string(i);
}
std::string envDataDir(const std::string& pool, const std::string& container) {
  return poolEnvsDir(pool) + "/" + container;
}

Status checkPoolName(const std::string& what, const std::string& name) {
  if (name.empty() || name[0] == '.' || endsWith(name, kPartSuffix)) {
    return invalidArgument(what + " \"" + name +
                           "\": must not be empty, start with '.' or end in .part");
  }
  for (char ch : name) {
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '_' && ch != '.') {
      return invalidArgument(what + " \"" + name +
                             "\": only letters, digits, '-', '_' and '.' are allowed");
    }
  }
  return Status::ok();
}

Status preparePool(const std::string& pool) {
  const std::string key = "storage.data_pool \"" + pool + "\"";
  if (pool.empty() || pool[0] != '/') return invalidArgument(key + ": must be an absolute path");
  struct stat st {};
  if (::stat(pool.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return failedPrecondition(key + ": no such directory (mkfs.btrfs a volume and mount it there)");
  }
  auto btrfs = isBtrfs(pool);
  if (!btrfs) return btrfs.status().withContext(key);
  if (!*btrfs) {
    return failedPrecondition(key + ": not on btrfs (mkfs.btrfs a volume and mount it there)");
  }
  QABOX_RETURN_IF_ERROR(enableQuota(pool).withContext(key));
  QABOX_RETURN_IF_ERROR(mkdirMode(poolDatasetsDir(pool), 0711).withContext(key));
  QABOX_RETURN_IF_ERROR(mkdirMode(poolEnvsDir(pool), 0711).withContext(key));
  return Status::ok();
}

Result<std::vector<std::string>> makeDatasetVolume(const std::string& pool, const std::string& hash,
                                                   const std::string& fromDir,
                                                   const std::vector<std::string>& keptPaths,
                                                   uint32_t fromRoot) {
  const std::string what = "dataset " + hash;
  QABOX_RETURN_IF_ERROR(checkPoolName("dataset hash", hash));
  if (keptPaths.empty()) return invalidArgument(what + ": no kept paths");
  for (const std::string& kept : keptPaths) QABOX_RETURN_IF_ERROR(checkKeptPath(kept));
  const std::string final = datasetVolumeDir(pool, hash);
  std::error_code ec;
  if (std::filesystem::exists(std::filesystem::symlink_status(final, ec))) {
    return alreadyExists(what + ": " + final + " exists");
  }
  const std::string part = final + kPartSuffix;
  QABOX_RETURN_IF_ERROR(deleteVolumeDir(part).withContext(what));
  if (::mkdir(part.c_str(), 0711) != 0 || ::chmod(part.c_str(), 0711) != 0) {
    return errnoStatus("mkdir " + part);
  }
  auto root = openRootDir(fromDir);
  Status made = root.status();
  Copy c{fromRoot, fromDir};
  std::vector<std::string> volumes;
  for (size_t i = 0; made.isOk() && i < keptPaths.size(); ++i) {
    made = makeVolume(c, root->get(), keptPaths[i], part + "/" + std::to_string(i));
    volumes.push_back(datasetVolume(pool, hash, i));
  }
  if (made.isOk() && ::rename(part.c_str(), final.c_str()) != 0) {
    made = errnoStatus("renaming " + part + " to " + final);
  }
  if (made.isOk()) {
    // The rename durable: a dataset the store records must be there after a crash.
    UniqueFd parent(::open(poolDatasetsDir(pool).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!parent || ::fsync(parent.get()) != 0)
      return errnoStatus("syncing " + poolDatasetsDir(pool));
  }
  if (!made.isOk()) {
    std::string msg = what + ": " + made.message();
    if (Status s = deleteVolumeDir(part); !s.isOk()) msg += "; cleaning up: " + s.message();
    return Status(made.code(), msg);
  }
  return volumes;
}

Status deleteDatasetVolume(const std::string& pool, const std::string& hash) {
  QABOX_RETURN_IF_ERROR(checkPoolName("dataset hash", hash));
  QABOX_RETURN_IF_ERROR(deleteVolumeDir(datasetVolumeDir(pool, hash) + kPartSuffix));
  return deleteVolumeDir(datasetVolumeDir(pool, hash));
}

Result<std::vector<std::string>> listDatasetVolumes(const std::string& pool) {
  auto all = entries(poolDatasetsDir(pool));
  if (!all) return all.status();
  std::vector<std::string> out;
  for (const std::string& n : *all) {
    if (!endsWith(n, kPartSuffix)) out.push_back(n);
  }
  return out;
}

Result<std::vector<std::string>> listEnvData(const std::string& pool) {
  return entries(poolEnvsDir(pool));
}

Result<std::vector<std::string>> removePartialDatasets(const std::string& pool) {
  auto all = entries(poolDatasetsDir(pool));
  if (!all) return all.status();
  std::vector<std::string> out;
  for (const std::string& n : *all) {
    if (!endsWith(n, kPartSuffix)) continue;
    QABOX_RETURN_IF_ERROR(deleteVolumeDir(poolDatasetsDir(pool) + "/" + n));
    out.push_back(n.substr(0, n.size() - std::strlen(kPartSuffix)));
  }
  return out;
}

Status deleteEnvData(const std::string& pool, const std::string& container) {
  QABOX_RETURN_IF_ERROR(checkPoolName("container", container));
  return deleteVolumeDir(envDataDir(pool, container));
}

}  // namespace qabox
