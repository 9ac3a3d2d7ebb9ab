// qabox-init: PID 1 of a Debian environment (see contract.h and
// supervisor.h); `qabox-init status` prints /run/qabox/status.json.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "init/status_table.h"
#include "init/supervisor.h"

int main(int argc, char** argv) {
  qabox::init::InitOptions o;
  if (const char* root = std::getenv("QABOX_INIT_ROOT"); root != nullptr) o.paths.root = root;
  if (argc >= 2 && std::strcmp(argv[1], "status") == 0) {
    return qabox::init::printStatus(o.paths(qabox::supervise::kStatusFile), stdout, stderr);
  }
  if (argc >= 2) {
    std::fprintf(stderr,
                 "usage: qabox-init            (as PID 1)\n"
                 "       qabox-init status     the state of each supervised process\n");
    return 2;
  }
  o.pid1 = ::getpid() == 1;
  if (!o.pid1 && o.paths.root.empty()) {
    // By hand in a running environment: a second supervisor would start
    // every process again.
    std::fprintf(stderr, "qabox-init: not PID 1 (QABOX_INIT_ROOT runs it on another root)\n");
    return 2;
  }
  o.timings = qabox::init::Timings::fromEnv();
  ::unsetenv("QABOX_INIT_ROOT");
  return qabox::init::Supervisor(std::move(o)).run();
}
