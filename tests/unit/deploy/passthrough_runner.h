#pragma once

#include <atomic>
#include <mutex>
#include <string>
#include <vector>

#include "sys/process.h"

namespace qabox::testing {

// Runs the real thing and remembers every spec; optionally answers some
// calls itself (a git that "times out") or refuses to run anything.
class PassthroughRunner : public ProcessRunner {
 public:
  Result<ProcessResult> run(const ProcessSpec& spec) override {
    {
      std::lock_guard lock(mu_);
      calls_.push_back(spec);
    }
    if (refuseAll) return internalError("test: no process may run here");
    if (fakeFetchTimeout && spec.argv.size() > 2 && spec.argv[2] == "fetch") {
      ProcessResult r;
      r.timedOut = true;
      return r;
    }
    return real_.run(spec);
  }
  std::vector<ProcessSpec> calls() {
    std::lock_guard lock(mu_);
    return calls_;
  }
  // How many calls ran the subcommand (argv[2], as in `git -C dir fetch`).
  size_t count(const std::string& subcommand) {
    std::lock_guard lock(mu_);
    size_t n = 0;
    for (const auto& c : calls_) {
      if (c.argv.size() > 2 && c.argv[2] == subcommand) ++n;
    }
    return n;
  }
  // The environment variable `key` the i-th call ran with.
  std::string env(size_t i, const std::string& key) {
    std::lock_guard lock(mu_);
    return calls_.at(i).env->at(key);
  }

  std::atomic<bool> refuseAll{false};
  std::atomic<bool> fakeFetchTimeout{false};

 private:
  RealProcessRunner real_;
  std::mutex mu_;
  std::vector<ProcessSpec> calls_;
};

}  // namespace qabox::testing
