#pragma once

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "core/config.h"
#include "deploy/manifest.h"
#include "runtime/runtime.h"
#include "store/store.h"
#include "sys/process.h"

namespace qabox {

// The base images environments are cloned from, as the lifecycle and the API
// see them. ImageBuilder below is the real one; tests/fakes/fake_images.h is
// the one unit tests use.
class ImageCatalog {
 public:
  virtual ~ImageCatalog() = default;

  // Builds `name` (and its parent first, when that has no version yet).
  // Unless `force`, a recipe unchanged since the current version (same
  // recipe hash, same parent version) returns that version with `cached`.
  virtual Result<ImageVersion> build(const std::string& name, const std::string& actor,
                                     bool force) = 0;
  // A version's read-only layers on the host, topmost first: its own
  // rootfs, then its parent's, down to the base image's.
  virtual Result<std::vector<std::string>> lowerDirs(const std::string& name, uint32_t version) = 0;
  // The recipe's manifest (defaults for apps deployed on the image).
  virtual Result<ImageManifest> manifest(const std::string& name) const = 0;
  virtual std::vector<std::string> recipes() const = 0;
  // Deletes `version` (0: every version that is not current) of `name` when
  // no environment uses it.
  virtual Result<std::vector<ImageVersion>> remove(const std::string& name, uint32_t version,
                                                   const std::string& actor) = 0;
  // Recovery: removes image directories whose build never finished.
  virtual Status recover() = 0;
};

// Builds immutable image versions from recipes (images/<name>/): each build
// is a new version, a container of its own in the images lxcpath. A base
// image's rootfs is a whole root filesystem; an image built `from` another
// is a layer: its rootfs holds only what its provision wrote over an overlay
// of its parent version's layers. Clones read a version's layers as their
// lower layers, so a version is never rebuilt in place, only deleted once
// no environment and no other version uses it. A build whose recipe hash
// (image_recipe.h) is the current version's makes no new version.
class ImageBuilder final : public ImageCatalog {
 public:
  // `initPath`: qabox-init, given to provision scripts as QABOX_INIT (and
  // hashed with recipes that install it); "" when there is none.
  ImageBuilder(const Config& config, Store& store, ProcessRunner& runner, LayerMounter& layers,
               std::string initPath);

  Result<ImageVersion> build(const std::string& name, const std::string& actor,
                             bool force) override;
  Result<std::vector<std::string>> lowerDirs(const std::string& name, uint32_t version) override;
  // Merged with its parents' (image_recipe.h inheritManifest).
  Result<ImageManifest> manifest(const std::string& name) const override;
  std::vector<std::string> recipes() const override;
  Result<std::vector<ImageVersion>> remove(const std::string& name, uint32_t version,
                                           const std::string& actor) override;
  Status recover() override;

 private:
  struct Plan;  // one version to build (image_builder.cpp)
  Result<ImageManifest> ownManifest(const std::string& name) const;
  std::mutex& lockFor(const std::string& name);
  Result<ImageVersion> buildVersion(const Plan& plan, const std::string& actor);
  Status provision(const Plan& plan, const std::string& dir, uint32_t version);
  Status provisionLayer(const Plan& plan, const std::string& dir, uint32_t version);
  Status runProvision(const Plan& plan, const std::string& rootfs, uint32_t version);
  // Unmounts a build's overlay (if mounted) and removes its directory.
  Status removeBuildDir(const std::string& dir);

  const Config& config_;
  Store& store_;
  ProcessRunner& runner_;
  LayerMounter& layers_;
  std::string initPath_;
  std::mutex mu_;
  std::map<std::string, std::mutex> locks_;
};

// qabox-init beside the running executable, in the build tree's agent/init/
// or in QABOX_LIBEXEC_DIR (installed); "" when there is none.
std::string defaultInitPath();

}  // namespace qabox
