// How far each environment's target branch has moved on since its deploy
// merged it: "behind develop by 3". Read from the repo's mirror, which the
// agent fetches anyway (deploys, reap passes, a push webhook); stored on
// the row so that list, get and the dashboard read it without git.

#include <map>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

#include "core/environment.h"
#include "core/short_sha.h"
#include "lifecycle/manager.h"

namespace qabox {

namespace {

// Environments the question makes sense for: a repo, a target branch, a
// target commit recorded by a deploy, and not a deploy of the target itself.
bool hasTarget(const Environment& e) {
  return !e.spec.targetBranch.empty() && !e.targetCommit.empty() &&
         e.spec.sourceBranch != e.spec.targetBranch;
}

}  // namespace

Result<std::vector<EnvironmentManager::TargetMoved>> EnvironmentManager::refreshBehind(
    const std::string& repoName, bool fetchFirst) {
  std::vector<TargetMoved> moved;
  if (git_ == nullptr) return moved;
  const RepoConfig* repo = config_.findRepo(repoName);
  if (repo == nullptr) {
    return notFound("repo \"" + repoName + "\": not in the agent's config (repos)");
  }
  if (fetchFirst) QABOX_RETURN_IF_ERROR(git_->fetch(*repo));

  QABOX_ASSIGN_OR_RETURN(auto envs, store_.listEnvironments());
  std::vector<Environment> mine;
  std::vector<TargetQuery> asks;
  for (auto& e : envs) {
    const RepoConfig* r = e.spec.repo.empty() ? nullptr : config_.findRepo(e.spec.repo);
    if (r == nullptr || r->name != repo->name || !hasTarget(e)) continue;
    asks.push_back({e.spec.targetBranch, e.targetCommit});
    mine.push_back(std::move(e));
  }
  if (mine.empty()) return moved;

  auto answers = git_->targetStates(*repo, asks);
  for (size_t i = 0; i < mine.size() && i < answers.size(); ++i) {
    const Environment& e = mine[i];
    if (!answers[i]) {
      // A target branch deleted, or a commit the mirror lost: the count
      // stays as it was; the reaper's own checks deal with the branches.
      spdlog::debug("ticket {}: how far {} moved: {}", e.ticket, e.spec.targetBranch,
                    answers[i].status().message());
      continue;
    }
    const TargetState& st = *answers[i];
    auto changed = store_.setTargetState(e.slug, e.targetCommit, st.head, st.behind);
    if (!changed) return changed.status().withContext("ticket " + e.ticket);
    // "Moved" is news: the head differs from the one this row last saw.
    if (*changed && st.behind > 0 && st.head != e.targetHead) {
      moved.push_back({e.ticket, e.spec.targetBranch, st.behind});
      // Also what tells the dashboard's live pages to look again.
      event(e.ticket, "behind", actors::kAgent, "ok",
            e.spec.targetBranch + " moved to " + shortSha(st.head) + ": " +
                std::to_string(st.behind) + (st.behind == 1 ? " commit" : " commits") +
                " the deployed merge lacks; deploy again to bring it up to date");
    }
  }
  return moved;
}

}  // namespace qabox
