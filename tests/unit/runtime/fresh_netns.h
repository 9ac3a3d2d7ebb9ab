#pragma once

#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <optional>
#include <string>

#include "core/status.h"

namespace qabox::testing {

// Runs `body` in a forked child inside a network namespace of its own (and
// a user namespace of its own when not root, so no privilege is needed):
// what it does to interfaces, routes and nftables is gone with the child.
// Returns what body returned ("" for success, else what failed), or
// nullopt when no namespace could be made here.
inline std::optional<std::string> inFreshNetns(const std::function<std::string()>& body) {
  int fds[2];
  if (pipe(fds) != 0) return "pipe: " + std::string(std::strerror(errno));
  pid_t child = fork();
  if (child == 0) {
    close(fds[0]);
    int flags = geteuid() == 0 ? CLONE_NEWNET : CLONE_NEWUSER | CLONE_NEWNET;
    // 'n': no namespace; 'r': ran, and what failed follows.
    std::string out(1, 'n');
    if (unshare(flags) == 0) {
      out[0] = 'r';
      out.append(body());
    }
    ssize_t w = write(fds[1], out.data(), out.size());
    _exit(w == static_cast<ssize_t>(out.size()) ? 0 : 1);
  }
  close(fds[1]);
  std::string got;
  char buf[4096];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;) got.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  int status = 0;
  if (child > 0) waitpid(child, &status, 0);
  if (got.empty()) return "the child died (status " + std::to_string(status) + ")";
  if (got[0] == 'n') return std::nullopt;
  return got.substr(1);
}

// What failed in a body run by inFreshNetns, a line each.
class Checks {
 public:
  void ok(const Status& s, const std::string& what) {
    if (!s.isOk()) out_ += what + ": " + s.toString() + "\n";
  }
  void expect(bool cond, const std::string& what) {
    if (!cond) out_ += what + "\n";
  }
  std::string result() const { return out_; }

 private:
  std::string out_;
};

}  // namespace qabox::testing

// Runs a body (a lambda returning "" or what failed) in a network namespace
// of its own; fails the test where none can be made (as the other unit tests
// that need root do: they run as root in CI).
#define RUN_IN_FRESH_NETNS(...)                                                     \
  do {                                                                              \
    auto failed = ::qabox::testing::inFreshNetns(__VA_ARGS__);                      \
    ASSERT_TRUE(failed) << "no network namespace of our own here (unshare failed)"; \
    EXPECT_EQ(*failed, "");                                                         \
  } while (0)
