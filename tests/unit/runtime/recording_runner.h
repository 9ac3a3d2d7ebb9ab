#pragma once

#include <string>
#include <vector>

#include "sys/process.h"

namespace qabox::testing {

// Answers every program with exit code 0 and keeps what it was asked.
class RecordingRunner : public ProcessRunner {
 public:
  Result<ProcessResult> run(const ProcessSpec& spec) override {
    calls.push_back(spec);
    ProcessResult r;
    r.exitCode = 0;
    return r;
  }
  // The last call, or the last one of the helper's `command`; empty when none.
  ProcessSpec last(const std::string& command = "") const {
    for (auto it = calls.rbegin(); it != calls.rend(); ++it) {
      if (command.empty() || (it->argv.size() > 1 && it->argv[1] == command)) return *it;
    }
    return {};
  }
  // The helper's commands (argv[1]), in order.
  std::vector<std::string> commands() const {
    std::vector<std::string> out;
    for (const auto& c : calls) out.push_back(c.argv.size() > 1 ? c.argv[1] : "");
    return out;
  }

  std::vector<ProcessSpec> calls;
};

}  // namespace qabox::testing
