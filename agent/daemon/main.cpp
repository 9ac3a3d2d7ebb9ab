// qaboxd: the per-host agent. Reads its config, recovers, then serves the
// gRPC API and the HTTP router until SIGTERM or SIGINT. main() wires and
// waits: the parts are in daemon/ (flags, host_setup, agent, api, usage,
// options).
#include <malloc.h>
#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <string>

#include "core/failpoint.h"
#include "daemon/agent.h"
#include "daemon/check.h"
#include "daemon/flags.h"
#include "daemon/host_setup.h"
#include "daemon/json_log.h"
#include "daemon/rebuild.h"

using namespace qabox;

namespace {

int fatal(const std::string& message) {
  std::cerr << "qaboxd: " << message << "\n";
  return 1;
}

void setUpLogging(const Config& config) {
  spdlog::set_default_logger(spdlog::stderr_color_mt("qaboxd"));
  spdlog::set_level(spdlog::level::from_str(config.logLevel));
  if (config.log.format == "json") {
    spdlog::set_formatter(std::make_unique<JsonLogFormatter>());
  } else {
    spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  }
}

// Signals are taken by one thread with sigwait; every other thread,
// including gRPC's, inherits the block.
sigset_t blockStopSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  return signals;
}

}  // namespace

int main(int argc, char** argv) {
  // What we were started with past stdio (a shell's or a test runner's
  // descriptors) is not for the containers either.
  ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
  // glibc gives each thread that allocates an arena of its own, up to 8 per
  // core, and seldom hands their free pages back: 500 deploy/delete cycles
  // grew RSS by 16 MiB (+0.045 MiB a cycle) with no leak behind it; with
  // two arenas, 4 MiB (+0.008 MiB a cycle; scripts/torture/soak.sh). The agent's
  // threads mostly wait: the 30 s concurrency run answered 123 calls/s with
  // two arenas, 122-156/s with glibc's default, within a shared host's noise.
  // MALLOC_ARENA_MAX in the environment still wins.
  if (std::getenv("MALLOC_ARENA_MAX") == nullptr) ::mallopt(M_ARENA_MAX, 2);
  Flags flags;
  if (auto exit = parseFlags(argc, argv, flags)) return *exit;
  if (flags.printDefaultConfig) {
    std::cout << defaultConfigToml();
    return 0;
  }
  // Before anything is touched: a build without failpoints asked to crash
  // at one must not run as if all were well.
  if (Status s = failpoint::init(); !s.isOk()) {
    fatal(s.message());
    return exitBeforeCheck(argc, argv);
  }
  auto config = configFrom(flags);
  if (!config) {
    // --check's 1 means violations found: a check that cannot run is 2.
    fatal(config.status().message());
    return exitBeforeCheck(argc, argv);
  }
  setUpLogging(*config);
  if (std::string armed = failpoint::armedSummary(); !armed.empty()) {
    spdlog::warn(
        "failpoints armed ({}): this agent kills itself at the point named; for the "
        "torture suite only",
        armed);
  }
  if (flags.rebuildState) {
    ::umask(077);
    return rebuildState(*config, std::cout);
  }
  if (flags.check) return runCheck(*config);
  sigset_t signals = blockStopSignals();
  // What the agent writes is its own: the database, the mirrors, the logs.
  // What must be shared is opened up explicitly (prepareHost, app files).
  ::umask(077);
  if (Status s = prepareHost(*config); !s.isOk()) return fatal(s.message());

  Agent agent(*config);
  if (Status s = agent.start(); !s.isOk()) return fatal(s.message());
  int sig = 0;
  sigwait(&signals, &sig);
  spdlog::info("signal {}: finishing in-flight operations, then exiting", sig);
  agent.stop();
  spdlog::info("stopped");
  return 0;
}
