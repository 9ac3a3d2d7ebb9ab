#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"

// Btrfs subvolumes, snapshots and qgroup limits (libbtrfsutil and two
// ioctls it has no call for). Deleting, quota and limits need
// CAP_SYS_ADMIN; making a subvolume or snapshot needs only write access to
// the parent, which is why containers' seccomp profile denies btrfs ioctls.
// Errors name the path and the errno text.
namespace qabox {

// Whether `path` is on a btrfs filesystem (statfs f_type).
Result<bool> isBtrfs(const std::string& path);
// Whether `path` is the root of a subvolume.
Result<bool> isSubvolume(const std::string& path);

// A new, empty subvolume at `path` (its parent must exist, `path` must not).
Status createSubvolume(const std::string& path);
// A snapshot of the subvolume `source` at `dest`: writable, or read-only.
// Subvolumes nested in `source` are not in it (btrfs snapshots one).
Status snapshotSubvolume(const std::string& source, const std::string& dest, bool readOnly);
// Deletes the subvolume at `path` and every subvolume nested beneath it
// (read-only ones too). A missing `path` is not an error.
Status deleteSubvolume(const std::string& path);
Status setSubvolumeReadOnly(const std::string& path, bool readOnly);

// Turns quota (qgroups) on for the filesystem holding `path`; on already is
// fine. Subvolumes made afterwards each get a level-0 qgroup of their own.
Status enableQuota(const std::string& path);
// Limits the exclusive bytes of the subvolume at `path` (its level-0
// qgroup): what it holds that no snapshot shares. 0 removes the limit.
// Writes beyond it fail with EDQUOT.
Status limitExclusiveBytes(const std::string& path, uint64_t bytes);

}  // namespace qabox
