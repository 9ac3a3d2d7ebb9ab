#include "sys/btrfs.h"

#include <btrfsutil.h>
#include <fcntl.h>
#include <linux/btrfs.h>
#include <linux/magic.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include <cerrno>
#include <cstring>

#include "sys/fd.h"

namespace qabox {
namespace {

// libbtrfsutil's message and the errno it left.
Status utilError(const std::string& what, const std::string& path, btrfs_util_error err) {
  const int saved = errno;
  std::string msg = what + " " + path + ": " + btrfs_util_strerror(err);
  if (saved != 0) msg += ": " + std::string(std::strerror(saved));
  if (err == BTRFS_UTIL_ERROR_NOT_BTRFS || err == BTRFS_UTIL_ERROR_NOT_SUBVOLUME) {
    return failedPrecondition(msg);
  }
  if (saved == ENOENT) return notFound(msg);
  if (saved == EEXIST) return alreadyExists(msg);
  return internalError(msg);
}

Status errnoError(const std::string& what, const std::string& path) {
  const int saved = errno;
  std::string msg = what + " " + path + ": " + std::strerror(saved);
  if (saved == ENOENT) return notFound(msg);
  return internalError(msg);
}

Result<UniqueFd> openDir(const std::string& what, const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return errnoError(what, path);
  return fd;
}

}  // namespace

Result<bool> isBtrfs(const std::string& path) {
  struct statfs st {};
  if (::statfs(path.c_str(), &st) != 0) return errnoError("statfs", path);
  return static_cast<unsigned long>(st.f_type) == BTRFS_SUPER_MAGIC;
}

Result<bool> isSubvolume(const std::string& path) {
  errno = 0;
  btrfs_util_error err = btrfs_util_is_subvolume(path.c_str());
  if (err == BTRFS_UTIL_OK) return true;
  if (err == BTRFS_UTIL_ERROR_NOT_SUBVOLUME) return false;
  return utilError("checking for a subvolume at", path, err);
}

Status createSubvolume(const std::string& path) {
  errno = 0;
  btrfs_util_error err = btrfs_util_create_subvolume(path.c_str(), 0, nullptr, nullptr);
  if (err != BTRFS_UTIL_OK) return utilError("creating subvolume", path, err);
  return Status::ok();
}

Status snapshotSubvolume(const std::string& source, const std::string& dest, bool readOnly) {
  errno = 0;
  btrfs_util_error err = btrfs_util_create_snapshot(
      source.c_str(), dest.c_str(), readOnly ? BTRFS_UTIL_CREATE_SNAPSHOT_READ_ONLY : 0, nullptr,
      nullptr);
  if (err != BTRFS_UTIL_OK) return utilError("snapshotting " + source + " as", dest, err);
  return Status::ok();
}

Status deleteSubvolume(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0 && errno == ENOENT) return Status::ok();
  errno = 0;
  btrfs_util_error err =
      btrfs_util_delete_subvolume(path.c_str(), BTRFS_UTIL_DELETE_SUBVOLUME_RECURSIVE);
  if (err != BTRFS_UTIL_OK) return utilError("deleting subvolume", path, err);
  return Status::ok();
}

Status setSubvolumeReadOnly(const std::string& path, bool readOnly) {
  errno = 0;
  btrfs_util_error err = btrfs_util_set_subvolume_read_only(path.c_str(), readOnly);
  if (err != BTRFS_UTIL_OK) return utilError("setting read-only on subvolume", path, err);
  return Status::ok();
}

Status enableQuota(const std::string& path) {
  auto fd = openDir("enabling quota on", path);
  if (!fd) return fd.status();
  btrfs_ioctl_quota_ctl_args args{};
  args.cmd = BTRFS_QUOTA_CTL_ENABLE;
  if (::ioctl(fd->get(), BTRFS_IOC_QUOTA_CTL, &args) != 0) {
    return errnoError("enabling quota on", path);
  }
  return Status::ok();
}

Status limitExclusiveBytes(const std::string& path, uint64_t bytes) {
  uint64_t id = 0;
  errno = 0;
  btrfs_util_error err = btrfs_util_subvolume_id(path.c_str(), &id);
  if (err != BTRFS_UTIL_OK) return utilError("limiting the qgroup of", path, err);
  auto fd = openDir("limiting the qgroup of", path);
  if (!fd) return fd.status();
  btrfs_ioctl_qgroup_limit_args args{};
  args.qgroupid = id;  // level 0: the subvolume's own qgroup
  args.lim.flags = BTRFS_QGROUP_LIMIT_MAX_EXCL;
  // No limit is the largest one (what `btrfs qgroup limit none` sets).
  args.lim.max_excl = bytes == 0 ? UINT64_MAX : bytes;
  if (::ioctl(fd->get(), BTRFS_IOC_QGROUP_LIMIT, &args) != 0) {
    return errnoError("limiting the qgroup of", path);
  }
  return Status::ok();
}

}  // namespace qabox
