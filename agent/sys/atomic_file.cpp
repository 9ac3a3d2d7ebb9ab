#include "sys/atomic_file.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "sys/disk_usage.h"
#include "sys/fd.h"

namespace qabox {
namespace {

Status writeAll(int fd, std::string_view content, const std::string& shownAs) {
  while (!content.empty()) {
    ssize_t n = ::write(fd, content.data(), content.size());
    if (n < 0 && errno == EINTR) continue;
    // A write that makes no progress is a full disk.
    if (n <= 0) return writeError("writing " + shownAs, n < 0 ? errno : ENOSPC);
    content.remove_prefix(static_cast<size_t>(n));
  }
  return Status::ok();
}

// Everything between creating the temporary file and renaming it; the
// caller removes it when this fails.
Status fillAndRename(int dirFd, int fd, const std::string& tmp, const std::string& name,
                     std::string_view content, mode_t mode, const std::string& shownTmp) {
  QABOX_RETURN_IF_ERROR(writeAll(fd, content, shownTmp));
  if (::fchmod(fd, mode) != 0) return writeError(shownTmp, errno);
  if (::fsync(fd) != 0) return writeError("syncing " + shownTmp, errno);
  if (::renameat(dirFd, tmp.c_str(), dirFd, name.c_str()) != 0) {
    return writeError("renaming " + shownTmp, errno);
  }
  return Status::ok();
}

// The rename is durable only once the directory is.
Status syncDir(int dirFd, const std::string& shownAs) {
  const std::string what = "syncing the directory of " + shownAs;
  if (::fsync(dirFd) == 0) return Status::ok();
  // EINVAL: this file system does not sync directories; nothing more to do.
  if (errno == EINVAL) return Status::ok();
  if (errno != EBADF) return writeError(what, errno);
  // An O_PATH descriptor (sys/safe_path's root) cannot be synced; "." is
  // that same directory, opened for real.
  int fd = ::openat(dirFd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return writeError(what, errno);
  UniqueFd dir(fd);
  if (::fsync(dir.get()) != 0 && errno != EINVAL) return writeError(what, errno);
  return Status::ok();
}

}  // namespace

Status writeFileAtomicallyAt(int dirFd, const std::string& name, std::string_view content,
                             mode_t mode, const std::string& shownAs) {
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos) {
    return invalidArgument(shownAs + ": not a file name");
  }
  const std::string tmp = name + ".tmp";
  const std::string shownTmp = shownAs + ".tmp";
  if (::unlinkat(dirFd, tmp.c_str(), 0) != 0 && errno != ENOENT) {
    return writeError(shownTmp, errno);
  }
  // O_EXCL: a fresh inode, never one that was there (nor a link's target).
  int fd = ::openat(dirFd, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                    mode & 0777);
  if (fd < 0) return writeError(shownTmp, errno);
  UniqueFd file(fd);
  if (Status s = fillAndRename(dirFd, file.get(), tmp, name, content, mode, shownTmp); !s.isOk()) {
    if (::unlinkat(dirFd, tmp.c_str(), 0) != 0 && errno != ENOENT) {
      spdlog::warn("{}: could not remove it after a failed write: {}", shownTmp,
                   std::strerror(errno));
    }
    return s;
  }
  return syncDir(dirFd, shownAs);
}

Status writeFileAtomically(const std::string& path, std::string_view content, mode_t mode) {
  size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);
  if (dir.empty()) dir = "/";
  const std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return writeError(dir, errno);
  UniqueFd dirFd(fd);
  return writeFileAtomicallyAt(dirFd.get(), name, content, mode, path);
}

void removeTemporaryFile(const std::string& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    spdlog::warn("{}: could not remove it after a failed write: {}", path, std::strerror(errno));
  }
}

}  // namespace qabox
