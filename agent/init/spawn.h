#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "init/users.h"

namespace qabox::init {

struct SpawnSpec {
  std::string command;           // run by /bin/sh -c
  std::vector<std::string> env;  // KEY=VALUE, the whole environment
  std::optional<UserIds> user;   // nullopt: stays as init's own ids
  std::string cwd;               // the directory it starts in (a path already under the root)
  int outFd = -1;                // its stdout and stderr; -1: /dev/null
  bool dieWithInit = false;      // PR_SET_PDEATHSIG (when init is not PID 1, in tests)
};

// Starts `command` in a session (and process group) of its own, whose id
// is its pid; stdin /dev/null; no descriptor of init's beyond 0, 1 and 2;
// every signal unblocked and at its default. What fails in the child
// (chdir, the switch of user, exec) is said on its stderr, and it exits 127.
Result<pid_t> spawn(const SpawnSpec& spec);

}  // namespace qabox::init
