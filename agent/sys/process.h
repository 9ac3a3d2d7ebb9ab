#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"

namespace qabox {

struct ProcessSpec {
  std::vector<std::string> argv;  // argv[0] is looked up in PATH; never a shell
  std::optional<std::string> cwd;
  // Replaces the environment when set; otherwise the child inherits ours.
  std::optional<std::map<std::string, std::string>> env;
  std::string stdinData;
  // The child's stdin read from this file instead (stdinData unused): what
  // is too big to hold in memory, such as a tree's archive.
  std::string stdinFile;
  std::chrono::milliseconds timeout{0};  // 0: none
  size_t maxCapture = 1 << 20;           // keep at most this much of each stream (the tail)
  // Called with each piece of output as it arrives (is_stderr, data).
  std::function<void(bool, std::string_view)> onOutput;
};

struct ProcessResult {
  int exitCode = -1;  // -1 when killed by a signal or timed out
  int signal = 0;
  bool timedOut = false;
  std::string out;
  std::string err;
  bool ok() const { return exitCode == 0; }
};

// Runs programs. An interface so unit tests can script what git, hooks and
// helpers answer without running them.
class ProcessRunner {
 public:
  virtual ~ProcessRunner() = default;
  // Fails only when the program could not be started at all.
  virtual Result<ProcessResult> run(const ProcessSpec& spec) = 0;
};

// posix_spawn, pipes and poll. Safe to call from many threads at once: the
// child is spawned with vfork semantics and execs at once.
class RealProcessRunner : public ProcessRunner {
 public:
  Result<ProcessResult> run(const ProcessSpec& spec) override;
};

// While one lives, what its thread spawns runs at nice 19 (and what that
// spawns inherits it): background work such as the warm pool's fills, done
// without lowering the thread itself, which takes locks others wait for.
class IdleSpawns {
 public:
  IdleSpawns();
  ~IdleSpawns();
  IdleSpawns(const IdleSpawns&) = delete;
  IdleSpawns& operator=(const IdleSpawns&) = delete;

 private:
  bool was_;
};

// The last `lines` lines of text, for error messages.
std::string lastLines(std::string_view text, size_t lines);

}  // namespace qabox
