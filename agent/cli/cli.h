#pragma once

#include <istream>
#include <ostream>

namespace qabox::cli {

// What only the real process knows; tests leave the defaults.
struct RunOptions {
  bool stdoutIsTerminal = false;
  bool stderrIsTerminal = false;
  // `exec --stdin` sends what this holds; null: nothing.
  std::istream* in = nullptr;
};

// The whole `qabox` command: parses argv, talks to the agent, writes results
// to `out` and messages to `err`, and returns the exit code (see
// exit_code.h). Never calls exit(), so tests run it in-process.
int runCli(int argc, char** argv, std::ostream& out, std::ostream& err, const RunOptions& options);
int runCli(int argc, char** argv, std::ostream& out, std::ostream& err);

}  // namespace qabox::cli
