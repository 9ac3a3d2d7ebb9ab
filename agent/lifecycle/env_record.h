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
// anything that is not a record of this format.
Result<Environment> parseEnvRecord(std::string_view text);

// Writes `env`'s record beside its container's config (atomically), if that
// container's directory exists.
Status writeEnvRecord(const std::string& stateDir, const Environment& env);

}  // namespace qabox
