#pragma once

// Cached dependency layers (qabox.toml [deps]): `install` runs once per hash
// of (the image version, the install command, the listed files' contents),
// in a build container (lifecycle/layers.h), into a layer every environment
// with that hash is cloned over.

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "deploy/git.h"
#include "deploy/manifest.h"
#include "lifecycle/layers.h"

namespace qabox {

// What a layer's hash is made of.
struct DepsInputs {
  std::string image;
  uint32_t imageVersion = 0;
  std::string install;
  std::vector<std::pair<std::string, std::string>> files;  // path, content; in listed order
};
std::string depsHash(const DepsInputs& in);

// What a build container's delta loses before it is a layer: the app's
// tree and the agent's and the run's scratch, relative to the root.
inline constexpr const char* kDepsDropped[] = {"srv/app", "etc/qabox", "run", "tmp", "var/log"};
std::vector<std::string> depsDropped();

// Each of `files` is a regular file beneath `appDir` (the exported tree),
// reached through no link: FAILED_PRECONDITION naming the entry otherwise.
Status checkDepsFiles(const std::string& appDir, const std::vector<std::string>& files);

// Places `tree` (exported from `commit`) at /srv/app beneath `container`'s
// upper dir, opaque over the image's, owned by the container's root.
Status placeTree(ContainerRuntime& runtime, GitSource& git, const RepoConfig& repo,
                 const std::string& commit, const std::string& container);

// What a build container runs on: a repo's tree at a commit, each command
// given `timeout`, their output to `onOutput`.
struct BuildSource {
  ContainerRuntime* runtime = nullptr;
  GitSource* git = nullptr;
  const RepoConfig* repo = nullptr;
  std::string commit;
  std::chrono::milliseconds timeout{0};
  std::function<void(bool isStderr, std::string_view data)> onOutput;
};

// The [deps] build: the merge result in /srv/app, every listed file a
// regular file there, the container started, `install` run in /srv/app,
// the container stopped.
struct DepsFill : BuildSource {
  DepsDef deps;
  Status operator()(const std::string& container) const;
};

}  // namespace qabox
