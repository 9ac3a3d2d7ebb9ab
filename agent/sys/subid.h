#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace qabox {

// Host ids [start, start + count).
struct IdRange {
  uint64_t start = 0;
  uint64_t count = 0;
  uint64_t end() const { return start + count; }
  bool operator==(const IdRange&) const = default;
};

// One line of /etc/subuid or /etc/subgid: "owner:start:count", the owner a
// user name or a numeric uid.
struct SubIdEntry {
  std::string owner;
  IdRange range;
};

// The well-formed lines of a subuid/subgid file; comments, blank and
// malformed lines are skipped (shadow skips them too).
std::vector<SubIdEntry> parseSubIds(std::string_view text);

// What a file needs so that `owners` (the agent's user: its name and its
// uid as a number) holds every range in `wanted`: the lines to append, in
// the file's own format. A range another owner holds any part of is an
// error naming that owner's line: shadow hands those to login users, and
// two owners of one id would share files.
Result<std::vector<std::string>> missingSubIdLines(std::string_view text,
                                                   const std::vector<std::string>& owners,
                                                   const std::vector<IdRange>& wanted);

// Makes `path` (/etc/subuid or /etc/subgid) give `owners[0]` every range in
// `wanted`: appends the missing lines, keeping every other line, with a
// temporary file renamed over it (mode 0644, like shadow's). When it cannot
// be written, the error names the exact lines to add.
Status reserveSubIds(const std::string& path, const std::vector<std::string>& owners,
                     const std::vector<IdRange>& wanted);

// Whether liblxc maps a container's ids through shadow's newuidmap and
// newgidmap: it does when both are on PATH (Debian's `uidmap`), and then
// only ranges /etc/subuid and /etc/subgid give the caller can be mapped.
bool shadowMapsIds();

}  // namespace qabox
