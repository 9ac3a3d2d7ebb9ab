#pragma once

// Pure text helpers of the dashboard: HTML escaping (every byte that came
// from an environment goes through escape()), query and form parsing, and the short human forms of
// times and sizes.

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "core/environment.h"
#include "core/url.h"  // urlEncode, urlDecode

namespace qabox::web {

// & < > " ' escaped; control characters but \n and \t shown as U+FFFD, so a
// log or a commit message can carry no markup and no terminal escapes.
std::string escape(std::string_view text);

// "a=1&b=x+y" -> {a: 1, b: "x y"}; a malformed pair is dropped, the first
// of a repeated name kept, at most 64 pairs read.
std::map<std::string, std::string> parseQuery(std::string_view query);

// "/env/X?tab=logs" -> "/env/X" and "tab=logs".
struct Target {
  std::string path;
  std::string query;
};
Target splitTarget(std::string_view target);

// "3m ago", "2h ago", "5d ago"; "never" for nullopt; "just now" under 5 s.
std::string ago(std::optional<TimePoint> t, TimePoint now);
// "1.5 GiB", "512 MiB", "12 KiB", "100 B".
std::string bytes(uint64_t n);
// "2026-12-01 20:23:44 UTC"
std::string utc(TimePoint t);
// "1.2 s", "340 ms"
std::string took(std::chrono::milliseconds d);

}  // namespace qabox::web
