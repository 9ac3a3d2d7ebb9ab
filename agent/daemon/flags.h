#pragma once

// qaboxd's command line: a config file, and flags that override its keys.

#include <optional>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/status.h"

namespace qabox {

struct Flags {
  std::string configPath;  // empty: the embedded default config
  std::string stateDir, imagesDir, listen, routerListen, bridge, subnet, domain, logLevel;
  std::optional<std::string> metricsListen;  // "" turns /metrics off
  std::vector<std::string> repos;            // NAME=URL
  bool printDefaultConfig = false;
  bool rebuildState = false;  // a fresh qabox.db from the containers and images (daemon/rebuild.h)
  bool check = false;         // run the invariant checker and exit (daemon/check.h)
};

// Fills `flags` from argv. nullopt: go on; else the exit code of --help or
// of a bad flag, whose message is printed.
std::optional<int> parseFlags(int argc, char** argv, Flags& flags);

// A failure before --check ran: kCheckCannotRun when argv asks for
// --check (so it never reads as "violations"), else `otherwise`.
int exitBeforeCheck(int argc, char** argv, int otherwise = 1);

// The config file (or the embedded default) with the flags over it,
// validated. Errors name the key or the flag.
Result<Config> configFrom(const Flags& flags);

}  // namespace qabox
