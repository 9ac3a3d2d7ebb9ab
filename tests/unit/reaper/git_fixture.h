#pragma once

#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "store/paths.h"
#include "sys/process.h"

// Real git in temporary directories, shared by the reaper's tests and its
// benchmark. Failures throw: gtest reports them as the test's failure and the
// benchmark exits non-zero.
namespace qabox::test {

// A fresh directory, removed with everything in it at the end.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "qabox-reaper-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp " + tmpl);
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// git with a fixed identity and neither the user's nor the system's config,
// so the fixture behaves the same on every machine.
class GitCli {
 public:
  explicit GitCli(const std::string& home) {
    const char* path = getenv("PATH");
    env_ = {{"PATH", path ? path : "/usr/bin:/bin"},
            {"HOME", home},
            {"LC_ALL", "C"},
            {"GIT_CONFIG_NOSYSTEM", "1"},
            {"GIT_CONFIG_GLOBAL", "/dev/null"},
            {"GIT_AUTHOR_NAME", "Dev"},
            {"GIT_AUTHOR_EMAIL", "dev@example.com"},
            {"GIT_COMMITTER_NAME", "Dev"},
            {"GIT_COMMITTER_EMAIL", "dev@example.com"}};
  }

  // Runs `git args...` and returns its output without the trailing newline.
  std::string operator()(std::vector<std::string> args, const std::string& stdinData = "") {
    ProcessSpec spec;
    spec.argv = {"git"};
    spec.argv.insert(spec.argv.end(), args.begin(), args.end());
    spec.env = env_;
    spec.stdinData = stdinData;
    spec.timeout = std::chrono::seconds(60);
    auto r = runner_.run(spec);
    std::string cmd;
    for (const auto& a : spec.argv) cmd += a + " ";
    if (!r) throw std::runtime_error(cmd + ": " + r.status().toString());
    if (!r->ok())
      throw std::runtime_error(cmd + ": exit " + std::to_string(r->exitCode) + ": " + r->err);
    std::string out = r->out;
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
  }

 private:
  RealProcessRunner runner_;
  std::map<std::string, std::string> env_;
};

// A bare repository standing in for the remote (GitHub, GitLab), and a work
// clone that plays the developers: commits, merges and deletes are pushed.
class GitRemote {
 public:
  GitRemote(GitCli& git, const std::string& dir)
      : git_(git), bare_(dir + "/remote.git"), work_(dir + "/work") {
    git_({"init", "--quiet", "--bare", "--initial-branch=develop", bare_});
    git_({"init", "--quiet", "--initial-branch=develop", work_});
    git_({"-C", work_, "remote", "add", "origin", bare_});
    commitFile("README", "base\n", "base");
    git_({"-C", work_, "push", "--quiet", "origin", "develop"});
  }

  const std::string& url() const { return bare_; }

  // A new branch off `from` with one commit of its own, pushed; its head.
  std::string createBranch(const std::string& name, const std::string& from = "develop") {
    git_({"-C", work_, "checkout", "--quiet", "-b", name, from});
    std::string head = commitFile(fileFor(name), name + "\n", "work on " + name);
    git_({"-C", work_, "push", "--quiet", "origin", name});
    return head;
  }

  // One more commit on an existing branch, pushed; the new head.
  std::string addCommit(const std::string& branch, const std::string& text) {
    git_({"-C", work_, "checkout", "--quiet", branch});
    std::string head = commitFile(fileFor(branch) + ".more", text + "\n", text);
    git_({"-C", work_, "push", "--quiet", "origin", branch});
    return head;
  }

  // What the merge button does: a merge commit on `target`, pushed; its id.
  std::string merge(const std::string& source, const std::string& target = "develop") {
    git_({"-C", work_, "checkout", "--quiet", target});
    git_({"-C", work_, "merge", "--quiet", "--no-ff", "-m", "Merge " + source, source});
    git_({"-C", work_, "push", "--quiet", "origin", target});
    return git_({"-C", work_, "rev-parse", "HEAD"});
  }

  void deleteBranch(const std::string& name) {
    git_({"-C", work_, "push", "--quiet", "origin", "--delete", name});
  }

  std::string head(const std::string& branch) {
    return git_({"--git-dir=" + bare_, "rev-parse", "refs/heads/" + branch});
  }

 private:
  static std::string fileFor(const std::string& branch) {
    std::string f = branch;
    for (char& c : f) {
      if (c == '/') c = '_';
    }
    return f + ".txt";
  }

  std::string commitFile(const std::string& file, const std::string& text,
                         const std::string& message) {
    std::string path = work_ + "/" + file;
    if (FILE* f = fopen(path.c_str(), "w")) {
      fputs(text.c_str(), f);
      fclose(f);
    } else {
      throw std::runtime_error("cannot write " + path);
    }
    git_({"-C", work_, "add", "--", file});
    git_({"-C", work_, "commit", "--quiet", "-m", message});
    return git_({"-C", work_, "rev-parse", "HEAD"});
  }

  GitCli& git_;
  std::string bare_;
  std::string work_;
};

// Runs the real thing and counts the fetches into each mirror.
class CountingRunner : public ProcessRunner {
 public:
  Result<ProcessResult> run(const ProcessSpec& spec) override {
    if (spec.argv.size() > 2 && spec.argv[0] == "git" && spec.argv[2] == "fetch") {
      std::lock_guard lock(mu_);
      ++fetches_[spec.argv[1]];
    }
    return real_.run(spec);
  }

  // Fetches into the mirror of `repo` under `stateDir` since the last reset.
  int fetches(const std::string& stateDir, const std::string& repo) {
    std::lock_guard lock(mu_);
    auto it = fetches_.find("--git-dir=" + paths::gitMirror(stateDir, repo));
    return it == fetches_.end() ? 0 : it->second;
  }
  int totalFetches() {
    std::lock_guard lock(mu_);
    int n = 0;
    for (const auto& [dir, count] : fetches_) n += count;
    return n;
  }
  void reset() {
    std::lock_guard lock(mu_);
    fetches_.clear();
  }

 private:
  RealProcessRunner real_;
  std::mutex mu_;
  std::map<std::string, int> fetches_;
};

}  // namespace qabox::test
