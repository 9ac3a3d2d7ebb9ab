// The deploy's part of [deps]: the layer's hash at the merge (before
// anything is made), and the deps step before the clone that finds the
// layer or builds it (lifecycle/deps.h).
#include <spdlog/spdlog.h>

#include "lifecycle/deploy_steps.h"

namespace qabox {

Status DeployRun::hashDeps() {
  const DepsDef& deps = ctx_.app.deps;
  if (deps.install.empty()) return Status::ok();
  if (!ctx_.repo) return failedPrecondition("[deps] needs a repo deploy");
  DepsInputs in;
  in.image = ctx_.image;
  in.imageVersion = ctx_.imageVersion.version;
  in.install = deps.install;
  for (const auto& f : deps.files) {
    auto content = m_.git_->readFile(*ctx_.repo, ctx_.merge.commit, f);
    if (!content) {
      if (content.status().code() == Code::kNotFound) {
        return failedPrecondition("qabox.toml: deps.files \"" + f + "\": no such file at " +
                                  ctx_.merge.commit.substr(0, 12));
      }
      return content.status().withContext("qabox.toml: deps.files \"" + f + "\"");
    }
    in.files.emplace_back(f, std::move(*content));
  }
  ctx_.depsHash = depsHash(in);
  // From here to the run's end no collection takes it.
  depsPin_ = m_.deps_->pin(ctx_.depsHash);
  return Status::ok();
}

Status DeployRun::ensureDeps() {
  DepsLayers::Request r;
  r.hash = ctx_.depsHash;
  r.image = ctx_.image;
  r.imageVersion = ctx_.imageVersion.version;
  QABOX_ASSIGN_OR_RETURN(r.lowers, m_.images_.lowerDirs(ctx_.image, r.imageVersion));
  r.limits = ctx_.limits;
  r.repo = ctx_.repo;
  r.commit = ctx_.merge.commit;
  r.deps = ctx_.app.deps;
  logHook(redactor_.redact("==> deps: " + r.deps.install + "\n"));
  // The build's output is the deploy's log, one redactor a stream as a hook's.
  Redactor out(ctx_.secrets), err(ctx_.secrets);
  r.onOutput = [&](bool isErr, std::string_view data) { logHook((isErr ? err : out).feed(data)); };
  auto made = m_.deps_->ensure(r);
  logHook(out.finish());
  logHook(err.finish());
  if (!made) return made.status();
  ctx_.depsDir = made->dir;
  const std::string hash12 = ctx_.depsHash.substr(0, 12);
  if (made->built) {
    phase("deps",
          "built " + hash12 + " in " + std::to_string((made->took.count() + 500) / 1000) + " s");
  } else {
    phase("deps", "cached " + hash12);
  }
  return Status::ok();
}

}  // namespace qabox
