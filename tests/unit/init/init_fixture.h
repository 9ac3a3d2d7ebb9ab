#pragma once

// Runs the real qabox-init binary, not as PID 1 (it makes itself a child
// subreaper), with every path below a scratch root and short timings.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "init/contract.h"
#include "unit/store/temp_dir.h"

namespace qabox::test {

inline std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Polls `done` every 5 ms for at most `limit`.
inline bool waitFor(const std::function<bool()>& done,
                    std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return done();
}

class InitFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = dir_.path();
    std::filesystem::create_directories(root_ + "/etc/qabox");
    std::filesystem::create_directories(root_ + "/srv/app");
  }

  void TearDown() override {
    if (pid_ > 0) {
      // Whatever a test left running, with init.
      if (auto s = status()) {
        for (const auto& p : s->processes) {
          if (p.pid > 0) ::kill(-static_cast<pid_t>(p.pid), SIGKILL);
        }
      }
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }

  std::string path(const std::string& rel) const { return root_ + rel; }

  void write(const std::string& rel, const std::string& text) {
    std::filesystem::create_directories(std::filesystem::path(path(rel)).parent_path());
    std::ofstream(path(rel), std::ios::trunc) << text;
  }
  bool exists(const std::string& rel) const {
    struct stat st {};
    return ::lstat(path(rel).c_str(), &st) == 0;
  }

  void supervise(const std::vector<supervise::ProcessDef>& procs, uint64_t logMax = 1 << 20) {
    supervise::SuperviseFile f;
    f.processes = procs;
    f.logMax = logMax;
    write(supervise::kSuperviseFile, supervise::toJson(f));
  }

  static supervise::ProcessDef proc(const std::string& name, supervise::Stage stage,
                                    const std::string& command, const std::string& ready = "") {
    supervise::ProcessDef d;
    d.name = name;
    d.stage = stage;
    d.command = command;
    d.ready = ready;
    d.stopTimeoutMs = 2000;
    return d;
  }

  void start(std::map<std::string, std::string> env = {}) {
    std::map<std::string, std::string> all{{"QABOX_INIT_ROOT", root_},
                                           {"QABOX_INIT_BACKOFF_MS", "100"},
                                           {"QABOX_INIT_BACKOFF_MAX_MS", "1000"},
                                           {"QABOX_INIT_RESET_MS", "5000"},
                                           {"QABOX_INIT_CHECK_TIMEOUT_MS", "300"},
                                           {"QABOX_INIT_KILL_GRACE_MS", "1000"},
                                           {"PATH", "/usr/sbin:/usr/bin:/sbin:/bin"}};
    for (auto& [k, v] : env) all[k] = v;
    std::vector<std::string> strings;
    for (auto& [k, v] : all) strings.push_back(k + "=" + v);
    std::vector<char*> envp;
    for (auto& s : strings) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::string bin = QABOX_INIT_BIN;
    char* argv[] = {bin.data(), nullptr};
    pid_ = ::fork();
    ASSERT_GE(pid_, 0);
    if (pid_ == 0) {
      ::execve(bin.c_str(), argv, envp.data());
      ::_exit(127);
    }
  }

  std::optional<supervise::InitStatus> status() const {
    auto s = supervise::parseStatus(slurp(path(supervise::kStatusFile)));
    if (!s) return std::nullopt;
    return *s;
  }
  std::optional<supervise::ProcessStatus> proc(const std::string& name) const {
    auto s = status();
    if (!s) return std::nullopt;
    for (const auto& p : s->processes) {
      if (p.name == name) return p;
    }
    return std::nullopt;
  }
  bool inState(const std::string& name, supervise::ProcState state) const {
    auto p = proc(name);
    return p && p->state == state;
  }
  std::string initLog() const { return slurp(path("/var/log/qabox/init.log")); }
  std::string log(const std::string& name) const {
    return slurp(path("/var/log/qabox/" + name + ".log"));
  }

  // SIGTERM to init; its exit code, or -1 if it did not exit within `limit`.
  int stop(std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    ::kill(pid_, SIGTERM);
    int status = 0;
    bool exited = waitFor(
        [&] {
          if (::waitpid(pid_, &status, WNOHANG) != pid_) return false;
          return true;
        },
        limit);
    if (!exited) return -1;
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  bool alive() const { return pid_ > 0 && ::waitpid(pid_, nullptr, WNOHANG) == 0; }

  TempDir dir_;
  std::string root_;
  pid_t pid_ = -1;
};

}  // namespace qabox::test
