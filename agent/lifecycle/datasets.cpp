// Datasets: the hash, what a data layer keeps, and the build's run in its
// container (datasets.h).
#include "lifecycle/datasets.h"

#include "core/redact.h"
#include "init/contract.h"
#include "lifecycle/deps.h"
#include "lifecycle/internal.h"
#include "lifecycle/manager.h"
#include "lifecycle/services.h"
#include "store/paths.h"
#include "sys/idshift.h"
#include "sys/safe_path.h"

namespace qabox {

std::string dataHash(const DataInputs& in) {
  std::vector<std::string> fields = {
      in.lineage, in.image,   std::to_string(in.imageVersion),   in.depsHash,
      in.seed,    in.migrate, std::to_string(in.services.size())};
  for (const auto& [name, dir] : in.services) {
    fields.push_back(name);
    fields.push_back(dir);
  }
  fields.push_back(std::to_string(in.depends.size()));
  for (const auto& [path, oid] : in.depends) {
    fields.push_back(path);
    fields.push_back(oid);
  }
  return layerHash("qabox data layer 1", fields);
}

std::string dataLineage(const std::string& repo, const std::string& target) {
  return repo + " " + target;
}

std::vector<std::string> dataKept(const ImageManifest& image, const AppManifest& app) {
  std::vector<std::string> kept;
  for (const std::string& name : app.services) {
    auto it = image.services.find(name);
    if (it != image.services.end() && it->second.data.size() > 1) {
      kept.push_back(it->second.data.substr(1));
    }
  }
  return kept;
}

Status DataFill::operator()(const std::string& container) const {
  std::map<std::string, std::string> env, secrets;
  QABOX_RETURN_IF_ERROR(place(container, env, secrets));
  QABOX_RETURN_IF_ERROR(runtime->start(container));
  Status s = awaitServices(runtime->upperDir(container), app.services, timeout, {});
  if (s.isOk() && !app.migrate.empty()) s = run(container, "migrate", app.migrate, env, secrets);
  if (s.isOk()) s = run(container, "seed", app.data.seed, env, secrets);
  // Stopped through its init, so the services shut down cleanly and what
  // they keep is whole on disk.
  Status stopped = runtime->stop(container);
  if (!s.isOk()) return Status(s.code(), Redactor(secrets).redact(s.message()));
  return stopped;
}

// The target's tree, app.env with the services' env (their passwords the
// build's own), and a supervise.json of the services alone: no app.run, so
// nothing but them starts.
Status DataFill::place(const std::string& container, std::map<std::string, std::string>& env,
                       std::map<std::string, std::string>& secrets) const {
  const std::string upper = runtime->upperDir(container);
  QABOX_RETURN_IF_ERROR(placeTree(*runtime, *git, *repo, commit, container));
  env["QABOX_COMMIT"] = commit;
  env["QABOX_TARGET_BRANCH"] = targetBranch;
  env["QABOX_DATASET"] = "1";
  QABOX_RETURN_IF_ERROR(addServiceEnv(image, app.services, env, secrets));
  QABOX_RETURN_IF_ERROR(writeFileBeneath(upper, paths::kAppEnvFile, envFileOf(env), 0600));
  auto file = superviseFileFor(image, app, logMax);
  std::erase_if(file.processes, [](const supervise::ProcessDef& p) {
    return p.stage != supervise::Stage::kService;
  });
  QABOX_RETURN_IF_ERROR(
      writeFileBeneath(upper, supervise::kSuperviseFile, supervise::toJson(file), 0644));
  if (auto root = runtime->mappedRoot(container)) {
    QABOX_RETURN_IF_ERROR(shiftOwnership(upper, *root));
  }
  return Status::ok();
}

Status DataFill::run(const std::string& container, const std::string& what,
                     const std::string& command, const std::map<std::string, std::string>& env,
                     const std::map<std::string, std::string>& secrets) const {
  Redactor out(secrets), err(secrets);
  auto emit = [&](bool isErr, std::string_view text) {
    if (onOutput && !text.empty()) onOutput(isErr, text);
  };
  emit(false, Redactor(secrets).redact("==> data " + what + ": " + command + "\n"));
  ExecSpec ex;
  ex.argv = {"/bin/sh", "-c", command};
  ex.env = env;
  ex.env["PATH"] = kPath;
  ex.env["HOME"] = "/root";
  ex.env["LANG"] = "C.UTF-8";
  ex.cwd = paths::kAppDir;
  ex.timeout = timeout;
  ex.onOutput = [&](bool isErr, std::string_view data) {
    emit(isErr, (isErr ? err : out).feed(data));
  };
  auto ran = runtime->exec(container, ex);
  emit(false, out.finish());
  emit(true, err.finish());
  if (!ran) return ran.status();
  if (!ran->ok()) return commandFailed("[data] " + what, *ran, timeout);
  return Status::ok();
}

}  // namespace qabox
