// Cached dependency layers: the hash, the listed files' check, and the
// build's run in its container (deps.h).
#include "lifecycle/deps.h"

#include "lifecycle/internal.h"
#include "store/paths.h"
#include "sys/idshift.h"
#include "sys/process.h"
#include "sys/safe_path.h"

namespace qabox {

std::string depsHash(const DepsInputs& in) {
  std::vector<std::string> fields = {in.image, std::to_string(in.imageVersion), in.install,
                                     std::to_string(in.files.size())};
  for (const auto& [path, content] : in.files) {
    fields.push_back(path);
    fields.push_back(content);
  }
  return layerHash("qabox deps layer 1", fields);
}

std::vector<std::string> depsDropped() {
  return std::vector<std::string>(std::begin(kDepsDropped), std::end(kDepsDropped));
}

Status checkDepsFiles(const std::string& appDir, const std::vector<std::string>& files) {
  for (const auto& f : files) {
    auto fd = openRegularFileBeneath(appDir, f);
    if (fd) continue;
    if (fd.status().code() == Code::kNotFound) {
      return failedPrecondition("[deps] files: " + f + ": no such file in the tree");
    }
    if (fd.status().code() == Code::kFailedPrecondition) {
      return failedPrecondition("[deps] files: " + f +
                                ": must be a regular file reached through no symbolic link");
    }
    return fd.status().withContext("[deps] files: " + f);
  }
  return Status::ok();
}

Status placeTree(ContainerRuntime& runtime, GitSource& git, const RepoConfig& repo,
                 const std::string& commit, const std::string& container) {
  const std::string upper = runtime.upperDir(container);
  QABOX_RETURN_IF_ERROR(makeDirsBeneath(upper, paths::kAppDir, 0755).status());
  for (const char* attr : {"trusted.overlay.opaque", "user.overlay.opaque"}) {
    QABOX_RETURN_IF_ERROR(setDirXattrBeneath(upper, paths::kAppDir, attr, "y"));
  }
  return git.exportTree(repo, commit, upper + paths::kAppDir);
}

Status DepsFill::operator()(const std::string& container) const {
  const std::string upper = runtime->upperDir(container);
  QABOX_RETURN_IF_ERROR(placeTree(*runtime, *git, *repo, commit, container));
  QABOX_RETURN_IF_ERROR(checkDepsFiles(upper + paths::kAppDir, deps.files));
  if (auto root = runtime->mappedRoot(container)) {
    QABOX_RETURN_IF_ERROR(shiftOwnership(upper, *root));
  }
  QABOX_RETURN_IF_ERROR(runtime->start(container));
  ExecSpec ex;
  ex.argv = {"/bin/sh", "-c", deps.install};
  ex.env = {{"PATH", kPath}, {"HOME", "/root"}, {"LANG", "C.UTF-8"}};
  ex.cwd = paths::kAppDir;
  ex.timeout = timeout;
  ex.onOutput = onOutput;
  auto ran = runtime->exec(container, ex);
  Status stopped = runtime->stop(container);
  if (!ran) return ran.status();
  if (!ran->ok()) return commandFailed("[deps] install", *ran, timeout);
  return stopped;
}

}  // namespace qabox
