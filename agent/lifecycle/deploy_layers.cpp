// The deploy's part of the cached layers: each layer's hash at the merge
// (before anything is made), and the steps before the clone that find the
// layers or build them (lifecycle/deps.h, lifecycle/datasets.h).
#include <spdlog/spdlog.h>

#include "lifecycle/deploy_steps.h"
#include "runtime/data_pool.h"

namespace qabox {
namespace {

std::string seconds(std::chrono::milliseconds ms) {
  return std::to_string((ms.count() + 500) / 1000) + " s";
}

}  // namespace

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
  depsPin_ = m_.layers_->pin(ctx_.depsHash);
  return Status::ok();
}

// What every layer's build shares: over the image version's layers, with
// the deploy's limits.
Result<LayerCache::Request> DeployRun::layerRequest(LayerKind kind, const std::string& hash) {
  LayerCache::Request r;
  r.kind = kind;
  r.hash = hash;
  r.image = ctx_.image;
  r.imageVersion = ctx_.imageVersion.version;
  QABOX_ASSIGN_OR_RETURN(r.lowers, m_.images_.lowerDirs(ctx_.image, r.imageVersion));
  r.limits = ctx_.limits;
  return r;
}

BuildSource DeployRun::buildSource(const std::string& commit) {
  BuildSource b;
  b.runtime = &m_.runtime_;
  b.git = m_.git_;
  b.repo = ctx_.repo;
  b.commit = commit;
  b.timeout = m_.config_.deploy.hookTimeout;
  return b;
}

Status DeployRun::ensureDeps() {
  QABOX_ASSIGN_OR_RETURN(auto r, layerRequest(LayerKind::kDeps, ctx_.depsHash));
  r.drop = depsDropped();
  logHook(redactor_.redact("==> deps: " + ctx_.app.deps.install + "\n"));
  // The build's output is the deploy's log, one redactor a stream as a hook's.
  Redactor out(ctx_.secrets), err(ctx_.secrets);
  DepsFill fill{buildSource(ctx_.merge.commit), ctx_.app.deps};
  fill.onOutput = [&](bool isErr, std::string_view data) {
    logHook((isErr ? err : out).feed(data));
  };
  r.fill = fill;
  auto made = m_.layers_->ensure(r);
  logHook(out.finish());
  logHook(err.finish());
  if (!made) return made.status();
  ctx_.depsDir = made->dir;
  const std::string hash12 = ctx_.depsHash.substr(0, 12);
  phase("deps",
        made->built ? "built " + hash12 + " in " + seconds(made->took) : "cached " + hash12);
  return Status::ok();
}

// The dataset's hash from the target's head; then which layer this deploy
// uses: that one when it is stored, else its lineage's newest while it
// builds behind (started here when the dependency layer it builds over is
// already there, else at the data step), else none yet (built at the data
// step).
Status DeployRun::hashData() {
  const DataDef& data = ctx_.app.data;
  if (data.seed.empty()) return Status::ok();
  if (!ctx_.repo) return failedPrecondition("[data] needs a repo deploy");
  DataInputs in;
  in.lineage = dataLineage(ctx_.repo->name, ctx_.spec.targetBranch);
  in.image = ctx_.image;
  in.imageVersion = ctx_.imageVersion.version;
  in.depsHash = ctx_.depsHash;
  in.seed = data.seed;
  in.migrate = ctx_.app.migrate;
  for (const std::string& name : ctx_.app.services) {
    in.services.emplace_back(name, ctx_.imageManifest.services.at(name).data);
  }
  const std::string& target = ctx_.merge.targetHead;
  for (const auto& path : data.depends) {
    auto oid = m_.git_->objectId(*ctx_.repo, target, path);
    if (!oid) {
      if (oid.status().code() == Code::kNotFound) {
        return failedPrecondition("qabox.toml: data.depends \"" + path + "\": no such path on " +
                                  ctx_.spec.targetBranch + " (" + target.substr(0, 12) + ")");
      }
      return oid.status().withContext("qabox.toml: data.depends \"" + path + "\"");
    }
    in.depends.emplace_back(path, std::move(*oid));
  }
  ctx_.dataHash = dataHash(in);
  dataPin_ = m_.layers_->pin(ctx_.dataHash);
  QABOX_ASSIGN_OR_RETURN(auto found, m_.layers_->find(LayerKind::kData, ctx_.dataHash));
  ctx_.dataUse = ctx_.dataHash;
  if (found) {
    ctx_.dataDir = found->dir;
    return Status::ok();
  }
  QABOX_ASSIGN_OR_RETURN(auto newest, m_.layers_->newestOf(LayerKind::kData, in.lineage));
  if (!newest) return Status::ok();
  ctx_.dataUse = newest->hash;
  dataUsePin_ = m_.layers_->pin(newest->hash);
  ctx_.dataDir = m_.layers_->layerDir(LayerKind::kData, newest->hash);
  bool depsThere = ctx_.depsHash.empty();
  if (!depsThere) {
    QABOX_ASSIGN_OR_RETURN(auto deps, m_.layers_->find(LayerKind::kDeps, ctx_.depsHash));
    if (deps) {
      ctx_.depsDir = deps->dir;
      depsThere = true;
    }
  }
  if (depsThere) {
    QABOX_ASSIGN_OR_RETURN(auto r, dataRequest());
    m_.layers_->buildInBackground(std::move(r), ctx_.in.actor);
  }
  return Status::ok();
}

// What builds the dataset: over the dependency layer (ctx_.depsDir) and the
// image's, the target's tree at its head.
Result<LayerCache::Request> DeployRun::dataRequest() {
  QABOX_ASSIGN_OR_RETURN(auto r, layerRequest(LayerKind::kData, ctx_.dataHash));
  r.lineage = dataLineage(ctx_.repo->name, ctx_.spec.targetBranch);
  if (!ctx_.depsDir.empty()) {
    r.lowers.insert(r.lowers.begin(), ctx_.depsDir);
    r.holds.push_back(ctx_.depsHash);
  }
  r.keep = dataKept(ctx_.imageManifest, ctx_.app);
  DataFill fill{buildSource(ctx_.merge.targetHead), ctx_.spec.targetBranch, ctx_.imageManifest,
                ctx_.app, logMax_};
  r.fill = std::move(fill);
  return r;
}

Status DeployRun::ensureData() {
  const std::string hash12 = ctx_.dataHash.substr(0, 12);
  if (ctx_.dataUse != ctx_.dataHash) {
    // The previous layer serves; the new one builds behind.
    QABOX_ASSIGN_OR_RETURN(auto r, dataRequest());
    m_.layers_->buildInBackground(std::move(r), ctx_.in.actor);
    phase("data", "previous " + ctx_.dataUse.substr(0, 12) + " while " + hash12 + " builds");
    return Status::ok();
  }
  if (!ctx_.dataDir.empty()) {
    phase("data", "cached " + hash12);
    return Status::ok();
  }
  QABOX_ASSIGN_OR_RETURN(auto r, dataRequest());
  logHook(redactor_.redact("==> data: " + ctx_.app.data.seed + " on " + ctx_.spec.targetBranch +
                           " (" + ctx_.merge.targetHead.substr(0, 12) + ")\n"));
  auto* fill = r.fill.template target<DataFill>();
  if (fill)
    fill->onOutput = [this](bool, std::string_view data) { logHook(redactor_.redact(data)); };
  auto made = m_.layers_->ensure(r);
  if (!made) return made.status();
  ctx_.dataDir = made->dir;
  phase("data",
        made->built ? "built " + hash12 + " in " + seconds(made->took) : "cached " + hash12);
  return Status::ok();
}

// The dataset's volumes in the data pool, each snapshotted for this
// container and mounted at its data directory, its writes held to the
// environment's disk limit.
Status DeployRun::attachDataset() {
  const std::string& pool = m_.config_.storage.dataPool;
  std::vector<DataSnapshot> snaps;
  const auto kept = dataKept(ctx_.imageManifest, ctx_.app);
  for (size_t i = 0; i < kept.size(); ++i) {
    snaps.push_back({datasetVolume(pool, ctx_.dataUse, i), "/" + kept[i]});
    std::error_code ec;
    if (!fs::is_directory(snaps.back().source, ec)) {
      return failedPrecondition("dataset " + ctx_.dataUse.substr(0, 12) + " has no volume for " +
                                snaps.back().target + " in storage.data_pool");
    }
  }
  const std::string& max = m_.config_.limits.maxDisk;
  const uint64_t maxBytes = max.empty() ? 0 : parseMemorySize(max).value_or(0);
  return m_.runtime_.attachData(ctx_.container, snaps, maxBytes);
}

}  // namespace qabox
