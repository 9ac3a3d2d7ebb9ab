#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

#include "core/status.h"
#include "sys/fd.h"

// Host-side access into a directory tree someone else controls (a
// container's overlay upper dir, its rootfs). The agent runs as root there:
// a symlink, a `..`, a FIFO or a device node planted by the container must
// never make it read, write or block on something else.
//
// The rule is the simplest safe one: no symlinks in any component, not even
// ones that stay inside the root, no `..` above the root, no mount
// crossings (openat2 RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH | RESOLVE_NO_XDEV
// | RESOLVE_NO_MAGICLINKS), and only regular files are opened for reading or
// writing. Hard links are accepted: a container can only link files it can
// already name, which are its own (a lower-layer file is copied up first),
// so a link count above one exposes nothing the container could not read.
// Writes never go through an existing inode anyway: they create a fresh
// temporary file and rename it over the name.
namespace qabox {

// Opens `root` itself (a host path the agent chose) as a directory.
Result<UniqueFd> openRootDir(const std::string& root);

// Opens `relative` (no leading '/', or one that is ignored) beneath the
// directory `rootFd` under the rule above, with `flags` (O_CLOEXEC and
// O_NOFOLLOW are always added). Errors name `shownAs`, the path as a person
// would know it. ENOENT comes back as kNotFound.
Result<UniqueFd> openBeneath(int rootFd, std::string_view relative, int flags,
                             const std::string& shownAs, mode_t mode = 0);

// A regular file beneath `root`, open for reading: never a FIFO, socket,
// device or directory, and nothing is opened before its type is known (a
// device's open can have effects). kNotFound when it does not exist,
// kFailedPrecondition when it is not a regular file or a path component is
// a symlink.
Result<UniqueFd> openRegularFileBeneath(const std::string& root, std::string_view relative);

// Up to `max` bytes of a regular file beneath `root` from `offset` on;
// `offset` moves past what was read (back to 0 when the file got shorter).
Result<std::string> readFileBeneath(const std::string& root, std::string_view relative,
                                    off_t& offset, size_t max);

// Makes the directories of `relative` beneath `root` (each new one with
// `mode`, whatever the umask), refusing symlinks on the way; returns the
// last one, open.
Result<UniqueFd> makeDirsBeneath(const std::string& root, std::string_view relative, mode_t mode);

// Writes `content` to `relative` beneath `root`: the parents made as by
// makeDirsBeneath (0755), then the file replaced whole and durably within
// that directory's descriptor (sys/atomic_file.h: a new temporary file with
// `mode` from its first byte, fsynced, renamed over the name, the directory
// fsynced).
Status writeFileBeneath(const std::string& root, std::string_view relative,
                        std::string_view content, mode_t mode);

// Sets the extended attribute `name` on the directory `relative` beneath
// `root` (through an fd, never a path).
Status setDirXattrBeneath(const std::string& root, std::string_view relative,
                          const std::string& name, std::string_view value);

}  // namespace qabox
