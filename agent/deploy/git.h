#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"
#include "core/status.h"
#include "sys/process.h"

namespace qabox {

// What a CI "merge before build" would test: the source branch merged into
// the target branch.
struct Merge {
  std::string commit;      // what to deploy
  std::string sourceHead;  // the heads it was computed from
  std::string targetHead;
  bool fastForward = false;    // target is an ancestor of source: commit == sourceHead
  bool alreadyMerged = false;  // source is contained in target: commit == targetHead
};

// What the reaper needs to know about a deployed branch pair.
struct BranchState {
  bool sourceExists = false;  // the source branch is still on the remote
  std::string sourceHead;     // its head, or the last known head when it is gone
  std::string targetHead;
  // sourceHead is an ancestor of (or equal to) targetHead. False when the
  // branch is gone and no last known head was given or it was never fetched.
  bool merged = false;
  std::string containedIn;  // the target commit that contains it (targetHead) when merged
};

// One branch pair for GitSource::branchStates(), as for branchState().
struct BranchQuery {
  std::string source;
  std::string target;
  std::string lastSourceHead;  // the head that was deployed, or empty
};

// How far a target branch has moved on since an environment merged it.
struct TargetQuery {
  std::string target;  // the branch
  std::string since;   // the target commit the environment merged (a full id)
};
struct TargetState {
  std::string head;     // the branch's head in the mirror
  uint32_t behind = 0;  // commits in head that `since` lacks; 0 when up to date
};

// The git side of a deploy and of the reaper: what EnvironmentManager and the
// Reaper ask of a repo. GitRepos below is the real one (the git CLI on bare
// mirrors); tests/fakes/fake_git.h is the one unit tests use.
class GitSource {
 public:
  virtual ~GitSource() = default;

  // Fetches, then computes the merge of `source` into `target`. The same heads
  // always give the same commit (fixed identity, dates from the heads), which
  // is how a redeploy of an unchanged pair is recognised.
  //   INVALID_ARGUMENT     a branch name git would reject or read as an option, a bad repo
  //   NOT_FOUND            source_branch "feature/x": no such branch on repo shop
  //   UNAVAILABLE          repo shop: cannot fetch <url>: <git's last lines>
  //   FAILED_PRECONDITION  merging feature/x into develop conflicts in: a.txt, dir/b.txt
  virtual Result<Merge> merge(const RepoConfig& repo, std::string_view source,
                              std::string_view target) = 0;

  // Writes the tree of `commit` into destDir (created if missing), without .git.
  virtual Status exportTree(const RepoConfig& repo, const std::string& commit,
                            const std::string& destDir) = 0;

  // The tree of `commit` as a tar archive written to `tarPath` (of its
  // tree: no pax header with the commit id, which some tars do not know),
  // for extracting inside a running container.
  virtual Status archiveTree(const RepoConfig& repo, const std::string& commit,
                             const std::string& tarPath) = 0;

  // The content of `path` at `commit`; NOT_FOUND when there is no such file.
  virtual Result<std::string> readFile(const RepoConfig& repo, const std::string& commit,
                                       const std::string& path) = 0;

  // The object id of `path` (a file or a directory) at `commit`, which
  // changes whenever anything in it does; NOT_FOUND when there is no such path.
  virtual Result<std::string> objectId(const RepoConfig& repo, const std::string& commit,
                                       const std::string& path) = 0;

  // Fetches the remote's branches (creating the local copy on first use).
  virtual Status fetch(const RepoConfig& repo) = 0;

  enum class FetchFirst { kYes, kNo };
  // For the reaper: fetch once per repo with fetch(), then ask with kNo for
  // each environment. `lastSourceHead` (the head that was deployed) still
  // answers "merged?" after the branch was deleted, as a merged pull request
  // usually is.
  virtual Result<BranchState> branchState(const RepoConfig& repo, std::string_view source,
                                          std::string_view target,
                                          FetchFirst fetchFirst = FetchFirst::kYes,
                                          std::string_view lastSourceHead = {}) = 0;

  // branchState(..., FetchFirst::kNo, lastSourceHead) for many pairs on one
  // repo, in the same order. A bad repo or an unreadable copy fails every
  // answer; a bad name, a bad head or a missing target only its own.
  virtual std::vector<Result<BranchState>> branchStates(
      const RepoConfig& repo, const std::vector<BranchQuery>& queries) = 0;

  // For each query, from the mirror as last fetched (no fetch): the target's
  // head and how many commits it is ahead of `since`, in the same order. A
  // bad repo or an unreadable mirror fails every answer; a bad name, a
  // missing branch or a `since` the mirror lacks only its own.
  virtual std::vector<Result<TargetState>> targetStates(
      const RepoConfig& repo, const std::vector<TargetQuery>& queries) = 0;

  // Drops the pins of commits not in `keep` and lets git pack and prune.
  // For the reaper, once per pass.
  virtual Status maintain(const RepoConfig& repo, const std::set<std::string>& keep) = 0;
};

// The git side of a deploy, through the git CLI on one bare mirror per repo:
//
//   <state_dir>/git/<repo>.git    refs/remotes/origin/*  the remote's branches (fetched, pruned)
//                                 refs/qabox/merges/<sha> every commit merge() handed out
//
// Branches are fetched into refs/remotes/origin/* rather than mirrored onto
// refs/* so that a pruning fetch never deletes the refs/qabox/* pins.
//
// merge() pins every commit it returns under refs/qabox/merges/<sha>: the merge
// commit it makes is otherwise unreachable, and even a fast-forward head can be
// force-pushed away between merge() and exportTree(). Pins are dropped by
// maintain() for commits no environment uses any more; git only prunes
// unreachable objects older than two weeks, so dropping the pin of a deploy
// still in flight loses nothing.
//
// merge() also remembers its answer per (branches, heads), so an unchanged
// redeploy costs a fetch, a ref lookup and a pin.
//
// Calls on one repo are serialised around fetch, merge and ref updates by an
// in-process mutex (git's ref locks cover the rest); different repos run in
// parallel. exportTree() and readFile() only read immutable objects and take
// no lock.
class GitRepos final : public GitSource {
 public:
  GitRepos(ProcessRunner& runner, std::string stateDir, std::chrono::milliseconds fetchTimeout);

  Result<Merge> merge(const RepoConfig& repo, std::string_view source,
                      std::string_view target) override;
  Status exportTree(const RepoConfig& repo, const std::string& commit,
                    const std::string& destDir) override;
  Status archiveTree(const RepoConfig& repo, const std::string& commit,
                     const std::string& tarPath) override;
  Result<std::string> objectId(const RepoConfig& repo, const std::string& commit,
                               const std::string& path) override;
  Result<std::string> readFile(const RepoConfig& repo, const std::string& commit,
                               const std::string& path) override;
  // Fetches requested while another one runs on the same repo reuse the next
  // one that starts after them instead of queueing one each.
  Status fetch(const RepoConfig& repo) override;
  Result<BranchState> branchState(const RepoConfig& repo, std::string_view source,
                                  std::string_view target, FetchFirst fetchFirst = FetchFirst::kYes,
                                  std::string_view lastSourceHead = {}) override;
  // Answered from the mirror as last fetched (fetched only when it does not
  // exist yet). Costs one git process for all heads, one per distinct
  // existing target, and one per deleted source with a last known head: a
  // reap pass stays fast however many environments share a repo.
  std::vector<Result<BranchState>> branchStates(const RepoConfig& repo,
                                                const std::vector<BranchQuery>& queries) override;
  // One git process for all heads and one `rev-list --count` per distinct
  // (since, head) pair that differ.
  std::vector<Result<TargetState>> targetStates(const RepoConfig& repo,
                                                const std::vector<TargetQuery>& queries) override;
  // Pins are dropped for commits not in `keep`, then `git gc --auto` runs in
  // the foreground.
  Status maintain(const RepoConfig& repo, const std::set<std::string>& keep) override;

  // Fixed identity of the merge commits made here.
  static constexpr const char* kMergeName = "qabox";
  static constexpr const char* kMergeEmail = "qabox@localhost";
  // Where merge() pins the commits it hands out.
  static constexpr const char* kPinPrefix = "refs/qabox/merges/";

 private:
  struct RepoState {
    std::mutex mu;
    // Written under mu, read before waiting for it: see fetch().
    std::atomic<uint64_t> fetchesStarted{0};
    uint64_t lastOkFetch = 0;  // guarded by mu; the number of the last good fetch, 0 for none
    // guarded by mu; "source\ntarget\nsourceHead\ntargetHead" -> the merge made for them
    std::map<std::string, Merge> merges;
  };
  struct Head {
    std::string sha;
    int64_t committerTime = 0;
  };

  RepoState& stateFor(const std::string& repo);
  std::string mirror(const RepoConfig& repo) const;
  // `git archive` of `treeish` (of `commit`) into `tarPath`.
  Status archive(const RepoConfig& repo, const std::string& treeish, const std::string& commit,
                 const std::string& tarPath);
  Status ensureMirror(const RepoConfig& repo, RepoState& state);
  // Called with state.mu held; `asked` is state.fetchesStarted read before
  // waiting for it.
  Status fetchLocked(const RepoConfig& repo, RepoState& state, uint64_t asked);
  // The named branches on the mirror (all of them when none is named), or
  // those whose tips `mergedInto` (a commit id) contains: branch -> head.
  Result<std::map<std::string, Head>> heads(const RepoConfig& repo,
                                            const std::vector<std::string>& branches,
                                            const std::string& mergedInto = {});
  Result<ProcessResult> git(const RepoConfig& repo, std::vector<std::string> args,
                            std::chrono::milliseconds timeout, std::string stdinData = {},
                            const std::map<std::string, std::string>& extraEnv = {});
  // `git cat-file MODE` (--batch, --batch-check) of commit:path, after the
  // checks of both; NOT_FOUND ("no WHAT path at commit ...") when missing.
  Result<ProcessResult> catFile(const RepoConfig& repo, const std::string& commit,
                                const std::string& path, const char* mode, const char* what);
  // `git rev-list --count since..head`: commits in head that since lacks.
  Result<uint32_t> countAhead(const RepoConfig& repo, const std::string& since,
                              const std::string& head);
  Result<Merge> computeMerge(const RepoConfig& repo, const std::string& src, const std::string& tgt,
                             const Head& s, const Head& t);

  ProcessRunner& runner_;
  std::string stateDir_;
  std::chrono::milliseconds fetchTimeout_;
  std::map<std::string, std::string> env_;

  std::mutex reposMu_;
  std::map<std::string, std::unique_ptr<RepoState>> repos_;
};

// 40 (SHA-1) or 64 (SHA-256) lower-case hex digits.
bool isCommitId(std::string_view s);

// The URL without any user:password@ part, for messages and logs.
std::string redactUrl(std::string_view url);

}  // namespace qabox
