#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

#include "core/status.h"

// Files outside SQLite are replaced whole (CONVENTIONS.md, "Recovery and
// durability"): a reader, or the agent after a crash or power loss, sees the
// old content or the new, never a part of either.
//
// The steps: a fresh temporary file `<name>.tmp` in the same directory
// (O_EXCL | O_NOFOLLOW: never an inode that was there, nor a link's target;
// a leftover one is removed first), `content` written in full, its mode set
// to `mode` whatever the umask, fsync, rename over `name`, then fsync of the
// directory so the rename itself is on disk. A full disk or quota (ENOSPC,
// EDQUOT) is kResourceExhausted; on any failure the temporary file is
// removed and `name` is left as it was.
namespace qabox {

// `name` (one path component) in the directory open as `dirFd`; errors
// name `shownAs`, the path as a person would know it.
Status writeFileAtomicallyAt(int dirFd, const std::string& name, std::string_view content,
                             mode_t mode, const std::string& shownAs);

// `path`, a host path the agent chose (its directory must exist).
Status writeFileAtomically(const std::string& path, std::string_view content, mode_t mode);

// Removes the temporary file a failed write left at `path`, logging (not
// returning) a failure: the caller is already reporting the first error.
void removeTemporaryFile(const std::string& path);

}  // namespace qabox
