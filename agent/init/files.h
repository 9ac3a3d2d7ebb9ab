#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"
#include "sys/fd.h"

namespace qabox::init {

// Every path qabox-init touches is below `root` ("" in a container; a
// scratch directory in tests, from QABOX_INIT_ROOT).
struct Paths {
  std::string root;
  std::string operator()(std::string_view path) const { return root + std::string(path); }
};

// At most `max` bytes of a regular file; a longer one is RESOURCE_EXHAUSTED,
// a missing one NOT_FOUND. Never blocks on a FIFO planted there.
Result<std::string> readBounded(const std::string& path, size_t max);

// mkdir -p with mode 0755; the last component opened without following a
// symlink, as a directory fd for the *at() calls.
Result<UniqueFd> openDir(const std::string& path);

// Writes `content` to NAME in dir through NAME.tmp and a rename, so a reader
// never sees half of it; neither name is followed if it is a symlink.
Status replaceFile(int dirFd, const std::string& name, std::string_view content, int mode);

Status writeAll(int fd, std::string_view data);

}  // namespace qabox::init
