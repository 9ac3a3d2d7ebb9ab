#pragma once

// What each container carries about itself: `lxc/<container>/qabox.json`,
// beside its lxc config and never inside its rootfs (which is the pull
// request's). Written at each switch to READY and at each change of state
// or pin, it holds what rebuilding the environment's row needs when
// qabox.db is lost (`qaboxd --rebuild-state`): never a secret's value, only
// the secrets' names.

#include <string>
#include <string_view>

#include "core/environment.h"
#include "core/status.h"

namespace qabox {

// The record's format, bumped if a field changes meaning.
inline constexpr int kEnvRecordVersion = 1;

std::string envRecordJson(const Environment& env);

// The row the record describes. INVALID_ARGUMENT naming the field for
// anything that is not a record of this format, or whose fields this agent
// would never have written: a slug that is not the ticket's, a container
// name that is not this agent's for that slug, an address that is not a
// container's in `subnet` (network.subnet), a port outside 1..65535, a
// layer hash that is not 64 lowercase hex digits, image version 0.
Result<Environment> parseEnvRecord(std::string_view text, const std::string& subnet);

// The largest qabox.json (or image.json) read back.
inline constexpr size_t kMaxRecordBytes = 64 * 1024;

// The text of a record file: a regular file, not followed through a
// symlink, at most kMaxRecordBytes. NOT_FOUND when there is none.
Result<std::string> readRecordFile(const std::string& path);

// lxc/<container>/qabox.json, parsed and checked to name `container`.
Result<Environment> readEnvRecord(const std::string& stateDir, const std::string& container,
                                  const std::string& subnet);

// Writes `env`'s record beside its container's config (atomically), if that
// container's directory exists.
Status writeEnvRecord(const std::string& stateDir, const Environment& env);

}  // namespace qabox
