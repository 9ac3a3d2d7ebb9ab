#pragma once

// Named crash points for the torture suite (tests/torture/crash_test.cpp).
// `QABOX_FAILPOINT("deploy.clone.after");` marks a moment a crash must leave
// recoverable. Nothing is armed unless qaboxd's environment asks for it:
//   QABOX_FAILPOINT=NAME[@N]     SIGKILL this process at the N-th hit of NAME
//                                (default the first)
//   QABOX_FAILPOINT_TRACE=FILE   append each hit's name to FILE, one a line
// and only a build with QABOX_FAILPOINTS (never Release) honours them; one
// without refuses to start when either is set (failpoint::init). When nothing
// is armed a failpoint is one relaxed atomic load.

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"

namespace qabox::failpoint {

// What QABOX_FAILPOINT asks for: crash at the nth hit of name.
struct Spec {
  std::string name;
  uint64_t nth = 1;
};
// "deploy.clone.after" or "deploy.clone.after@3"; names are letters, digits,
// '.', '-' and '_'; n counts from 1.
Result<Spec> parseSpec(std::string_view text);

// Counts hits of each name and says which one is the armed one's nth.
class Counter {
 public:
  explicit Counter(std::optional<Spec> armed) : armed_(std::move(armed)) {}
  // This hit's number for its name (from 1), and whether it is the one to crash at.
  std::pair<uint64_t, bool> hit(std::string_view name);

 private:
  std::optional<Spec> armed_;
  std::mutex mu_;
  std::map<std::string, uint64_t, std::less<>> hits_;
};

// Whether this build honours failpoints (CMake option QABOX_FAILPOINTS).
bool compiledIn();

// Reads QABOX_FAILPOINT and QABOX_FAILPOINT_TRACE from the environment and
// arms what they ask. An error when they are malformed, when the trace file
// cannot be opened, or when this build has no failpoints and either is set.
// QABOX_FAILPOINT_TRACE must be an absolute path, and is never opened
// through a symbolic link.
Status init();

// What init() armed ("QABOX_FAILPOINT=... QABOX_FAILPOINT_TRACE=..."), ""
// when nothing: qaboxd warns of it at start.
std::string armedSummary();

namespace detail {
extern std::atomic<bool> armed;
void hit(std::string_view name);
}  // namespace detail

}  // namespace qabox::failpoint

// The name is evaluated only when something is armed, so it may be built.
#define QABOX_FAILPOINT(name)                                              \
  do {                                                                     \
    if (::qabox::failpoint::detail::armed.load(std::memory_order_relaxed)) \
      ::qabox::failpoint::detail::hit(name);                               \
  } while (0)
