#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

#include "core/status.h"

namespace qabox {

// The first directory on the way to `path` ("/" first, `path` itself last;
// the part that does not exist yet is left out) that a process running as
// uid:gid, with no supplementary groups, cannot search. nullopt when it can
// reach all of it. Asked of the kernel itself (a forked child drops to those
// ids and calls access(X_OK)), so ACLs and every other rule count.
Result<std::optional<std::string>> firstUnsearchableDir(const std::string& path, uid_t uid,
                                                        gid_t gid);

}  // namespace qabox
