#pragma once

// Datasets (qabox.toml [data]): `seed` runs once per hash, against the
// app's services, on the target branch (its tree, after its migrate hook),
// in a build container (lifecycle/layers.h). What the services keep (each
// service's `data` directory in image.toml) is the layer; every environment
// of that repo and target whose hash matches starts from a copy-on-write
// copy of it, and runs only its own new migrations on top.
//
// The hash is over the repo and target branch, the image version, the dependency layer, the seed
// and migrate commands, the services and their data directories, and the git object ids of
// `depends` at the target's head: a change to any of them on the target branch makes a new layer.
// While it builds (in the background) deploys use the newest layer of the same lineage (repo and
// target); with none, the deploy builds it.

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "deploy/git.h"
#include "deploy/manifest.h"
#include "lifecycle/deps.h"
#include "lifecycle/layers.h"

namespace qabox {

struct DataInputs {
  std::string lineage;  // dataLineage: each target has datasets of its own
  std::string image;
  uint32_t imageVersion = 0;
  std::string depsHash;  // "": none
  std::string seed;
  std::string migrate;
  std::vector<std::pair<std::string, std::string>> services;  // name, data dir; sorted
  std::vector<std::pair<std::string, std::string>> depends;   // path, object id; as listed
};
std::string dataHash(const DataInputs& in);

// A dataset's lineage: the repo and target branch it seeds.
std::string dataLineage(const std::string& repo, const std::string& target);

// What a data layer keeps: each turned-on service's data directory,
// relative to the root.
std::vector<std::string> dataKept(const ImageManifest& image, const AppManifest& app);

// The [data] build: the target's tree in /srv/app, the services alone
// supervised (with passwords of the build's own), the container started,
// the services awaited, `migrate` then `seed` run in /srv/app, the
// container stopped (so the services write their data down).
// Its commit is the target's head; its timeout each hook's and the
// services' readiness.
struct DataFill : BuildSource {
  std::string targetBranch;
  ImageManifest image;
  AppManifest app;
  uint64_t logMax = 0;
  Status operator()(const std::string& container) const;

 private:
  Status place(const std::string& container, std::map<std::string, std::string>& env,
               std::map<std::string, std::string>& secrets) const;
  Status run(const std::string& container, const std::string& what, const std::string& command,
             const std::map<std::string, std::string>& env,
             const std::map<std::string, std::string>& secrets) const;
};

}  // namespace qabox
