// The failpoints' slow path: taken only once init() armed something. This is
// the one file QABOX_FAILPOINTS_ENABLED reaches (agent/core/CMakeLists.txt),
// so turning failpoints on or off recompiles nothing else.
#include "core/failpoint.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace qabox::failpoint {

namespace {

bool nameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_';
}

struct Armed {
  std::unique_ptr<Counter> counter;
  int traceFd = -1;
  std::string summary;  // what is armed, for the warning at start
};
Armed& state() {
  static Armed armed;
  return armed;
}

void writeAll(int fd, const std::string& line) {
  // One write with O_APPEND: lines from threads never interleave.
  [[maybe_unused]] ssize_t n = ::write(fd, line.data(), line.size());
}

}  // namespace

Result<Spec> parseSpec(std::string_view text) {
  const std::string shown = "QABOX_FAILPOINT \"" + std::string(text) + "\"";
  Spec spec;
  const size_t at = text.find('@');
  std::string_view name = text.substr(0, at);
  if (name.empty()) return invalidArgument(shown + ": names no failpoint (NAME[@N])");
  for (char c : name) {
    if (!nameChar(c)) {
      return invalidArgument(shown + ": a name has only letters, digits, '.', '-' and '_'");
    }
  }
  spec.name = std::string(name);
  if (at == std::string_view::npos) return spec;
  std::string_view n = text.substr(at + 1);
  if (n.empty() || n.size() > 9) return invalidArgument(shown + ": N is a number from 1");
  uint64_t v = 0;
  for (char c : n) {
    if (c < '0' || c > '9') return invalidArgument(shown + ": N is a number from 1");
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (v == 0) return invalidArgument(shown + ": N counts from 1");
  spec.nth = v;
  return spec;
}

std::pair<uint64_t, bool> Counter::hit(std::string_view name) {
  std::lock_guard lock(mu_);
  auto it = hits_.find(name);
  if (it == hits_.end()) it = hits_.emplace(std::string(name), 0).first;
  const uint64_t n = ++it->second;
  return {n, armed_ && armed_->name == name && armed_->nth == n};
}

#ifdef QABOX_FAILPOINTS_ENABLED
bool compiledIn() { return true; }
#else
bool compiledIn() { return false; }
#endif

Status init() {
  const char* crash = std::getenv("QABOX_FAILPOINT");
  const char* trace = std::getenv("QABOX_FAILPOINT_TRACE");
  const bool asked = (crash && *crash) || (trace && *trace);
  if (!asked) return Status::ok();
  if (!compiledIn()) {
    return failedPrecondition(
        "QABOX_FAILPOINT or QABOX_FAILPOINT_TRACE is set, but this qaboxd was built without "
        "failpoints (CMake option QABOX_FAILPOINTS, never in a Release build): unset them");
  }
  std::optional<Spec> spec;
  if (crash && *crash) {
    QABOX_ASSIGN_OR_RETURN(spec, parseSpec(crash));
  }
  Armed& a = state();
  if (trace && *trace) {
    const std::string shown = "QABOX_FAILPOINT_TRACE \"" + std::string(trace) + "\"";
    if (trace[0] != '/') return invalidArgument(shown + ": must be an absolute path");
    // Never through a link: the agent runs as root.
    a.traceFd = ::open(trace, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (a.traceFd < 0) {
      return unavailable(shown + ": cannot open it (" + std::strerror(errno) + ")");
    }
  }
  a.summary.clear();
  if (crash && *crash) a.summary = "QABOX_FAILPOINT=" + std::string(crash);
  if (trace && *trace) {
    a.summary += (a.summary.empty() ? "" : " ") + std::string("QABOX_FAILPOINT_TRACE=") + trace;
  }
  a.counter = std::make_unique<Counter>(std::move(spec));
  detail::armed.store(true, std::memory_order_release);
  return Status::ok();
}

std::string armedSummary() {
  return detail::armed.load(std::memory_order_acquire) ? state().summary : "";
}

namespace detail {

std::atomic<bool> armed{false};

void hit(std::string_view name) {
  Armed& a = state();
  if (!a.counter) return;
  auto [n, crash] = a.counter->hit(name);
  if (a.traceFd >= 0) writeAll(a.traceFd, std::string(name) + "\n");
  if (!crash) return;
  writeAll(STDERR_FILENO, "qaboxd: failpoint " + std::string(name) + "@" + std::to_string(n) +
                              ": killing this process\n");
  ::kill(::getpid(), SIGKILL);
  ::pause();
}

}  // namespace detail

}  // namespace qabox::failpoint
