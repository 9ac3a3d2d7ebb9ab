#pragma once

// The env map and secret key list are stored as JSON text, so they stay
// readable (and queryable with SQLite's json functions) from the sqlite3 shell.
// Compact, keys in byte order: the same bytes the rows in the field hold.

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/environment.h"
#include "core/status.h"

namespace qabox::store {

// INVALID_ARGUMENT naming `where` when a string is not UTF-8 (JSON text is).
Result<std::string> encodeStringMap(const std::map<std::string, std::string>& map,
                                    const std::string& where);
Result<std::string> encodeStringList(const std::vector<std::string>& list,
                                     const std::string& where);

// DATA_LOSS naming `where` (the row and column) for anything but a JSON
// object of strings / array of strings.
Result<std::map<std::string, std::string>> decodeStringMap(std::string_view text,
                                                           const std::string& where);
Result<std::vector<std::string>> decodeStringList(std::string_view text, const std::string& where);

// A deploy's phases: [{"phase":"merge","ms":12}, ...].
Result<std::string> encodePhases(const std::vector<PhaseTime>& phases);
Result<std::vector<PhaseTime>> decodePhases(std::string_view text, const std::string& where);

}  // namespace qabox::store
