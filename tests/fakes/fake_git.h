#pragma once

#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "deploy/git.h"

namespace qabox::fakes {

// One repo's branches as a map, in place of git mirrors: what unit tests of
// the deploy and the reaper use. merge() answers `nextMerge`; exportTree()
// writes `files` (the tree of every commit); readFile() reads them.
// Failures are injected per operation ("merge", "exportTree", "readFile", "objectId",
// "fetch", "branchState", "branchStates", "maintain") with the Status to
// return.
class FakeGit : public GitSource {
 public:
  FakeGit() {
    nextMerge.commit = std::string(40, 'c');
    nextMerge.sourceHead = std::string(40, 'a');
    nextMerge.targetHead = std::string(40, 'b');
  }

  Result<Merge> merge(const RepoConfig& repo, std::string_view source,
                      std::string_view target) override {
    std::lock_guard l(mu_);
    calls.push_back("merge " + repo.name + " " + std::string(source) + " " + std::string(target));
    if (auto it = fail.find("merge"); it != fail.end()) return it->second;
    return nextMerge;
  }

  Status archiveTree(const RepoConfig& repo, const std::string& commit,
                     const std::string& tarPath) override {
    std::lock_guard l(mu_);
    calls.push_back("archiveTree " + repo.name + " " + commit);
    if (auto it = fail.find("archiveTree"); it != fail.end()) return it->second;
    std::ofstream out(tarPath, std::ios::binary);
    for (const auto& [path, content] : files) out << path << "\n";
    return out ? Status::ok() : internalError("archive: writing " + tarPath);
  }
  Status exportTree(const RepoConfig& repo, const std::string& commit,
                    const std::string& destDir) override {
    std::lock_guard l(mu_);
    calls.push_back("exportTree " + repo.name + " " + commit);
    if (auto it = fail.find("exportTree"); it != fail.end()) return it->second;
    namespace fs = std::filesystem;
    std::error_code ec;
    fs::create_directories(destDir, ec);
    if (ec) return internalError("export: creating " + destDir + ": " + ec.message());
    for (const auto& [path, content] : files) {
      fs::path dest = fs::path(destDir) / path;
      fs::create_directories(dest.parent_path(), ec);
      std::ofstream out(dest, std::ios::binary);
      out << content;
      if (!out) return internalError("export: writing " + dest.string());
    }
    return Status::ok();
  }

  Result<std::string> readFile(const RepoConfig& repo, const std::string& commit,
                               const std::string& path) override {
    std::lock_guard l(mu_);
    calls.push_back("readFile " + repo.name + " " + commit + " " + path);
    if (auto it = fail.find("readFile"); it != fail.end()) return it->second;
    auto it = files.find(path);
    if (it == files.end()) return notFound("path \"" + path + "\": not in " + commit);
    return it->second;
  }

  // The id of a listed file: its content's length and first bytes, so a
  // change to it changes the id.
  Result<std::string> objectId(const RepoConfig& repo, const std::string& commit,
                               const std::string& path) override {
    std::lock_guard l(mu_);
    calls.push_back("objectId " + repo.name + " " + commit + " " + path);
    if (auto it = fail.find("objectId"); it != fail.end()) return it->second;
    auto it = files.find(path);
    if (it == files.end()) return notFound("path \"" + path + "\": not in " + commit);
    return std::to_string(it->second.size()) + ":" + it->second.substr(0, 32);
  }

  Status fetch(const RepoConfig& repo) override {
    std::lock_guard l(mu_);
    calls.push_back("fetch " + repo.name);
    if (auto it = fail.find("fetch"); it != fail.end()) return it->second;
    return Status::ok();
  }

  Result<BranchState> branchState(const RepoConfig& repo, std::string_view source,
                                  std::string_view target, FetchFirst = FetchFirst::kYes,
                                  std::string_view = {}) override {
    std::lock_guard l(mu_);
    calls.push_back("branchState " + repo.name + " " + std::string(source));
    if (auto it = fail.find("branchState"); it != fail.end()) return it->second;
    return stateOf(std::string(source), std::string(target));
  }

  std::vector<Result<BranchState>> branchStates(const RepoConfig& repo,
                                                const std::vector<BranchQuery>& queries) override {
    std::lock_guard l(mu_);
    calls.push_back("branchStates " + repo.name);
    std::vector<Result<BranchState>> out;
    for (const auto& q : queries) {
      if (auto it = fail.find("branchStates"); it != fail.end()) {
        out.emplace_back(it->second);
      } else {
        out.emplace_back(stateOf(q.source, q.target));
      }
    }
    return out;
  }

  std::vector<Result<TargetState>> targetStates(const RepoConfig& repo,
                                                const std::vector<TargetQuery>& queries) override {
    std::lock_guard l(mu_);
    calls.push_back("targetStates " + repo.name);
    std::vector<Result<TargetState>> out;
    for (const auto& q : queries) {
      auto head = targetHeads.find(q.target);
      if (auto it = fail.find("targetStates"); it != fail.end()) {
        out.emplace_back(it->second);
      } else if (head == targetHeads.end()) {
        out.emplace_back(notFound("target_branch \"" + q.target + "\": not on the fake repo"));
      } else {
        auto n = behindOf.find(q.since);
        uint32_t behind = head->second == q.since ? 0 : (n == behindOf.end() ? 1 : n->second);
        out.emplace_back(TargetState{head->second, behind});
      }
    }
    return out;
  }

  Status maintain(const RepoConfig& repo, const std::set<std::string>& keep) override {
    std::lock_guard l(mu_);
    calls.push_back("maintain " + repo.name);
    kept = keep;
    if (auto it = fail.find("maintain"); it != fail.end()) return it->second;
    return Status::ok();
  }

  // Calls made, one line each ("merge shop feature/x develop").
  std::vector<std::string> takeCalls() {
    std::lock_guard l(mu_);
    return std::exchange(calls, {});
  }

  Merge nextMerge;
  std::map<std::string, std::string> files;  // path in the tree -> content
  std::map<std::string, Status> fail;        // operation -> what it returns
  // (source, target) -> its state; a pair not here: target NOT_FOUND.
  std::map<std::pair<std::string, std::string>, BranchState> states;
  // targetStates(): target branch -> its head; since -> how far that head is
  // ahead of it (1 when not listed and not the head itself).
  std::map<std::string, std::string> targetHeads;
  std::map<std::string, uint32_t> behindOf;
  std::set<std::string> kept;  // what maintain() was last told to keep
  std::vector<std::string> calls;

 private:
  Result<BranchState> stateOf(const std::string& source, const std::string& target) const {
    auto it = states.find({source, target});
    if (it == states.end()) {
      return notFound("target_branch \"" + target + "\": no such branch on the fake repo");
    }
    return it->second;
  }

  std::mutex mu_;
};

}  // namespace qabox::fakes
