#pragma once

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "core/config.h"
#include "deploy/manifest.h"
#include "store/store.h"
#include "sys/process.h"

namespace qabox {

// Builds immutable base image versions from recipes (images/<name>/): each
// build is a new version, a container of its own in the images lxcpath.
// Clones read a version's rootfs as their lower layer, so a version is never
// rebuilt in place, only deleted once no environment uses it.
class ImageBuilder {
 public:
  ImageBuilder(const Config& config, Store& store, ProcessRunner& runner);

  Result<ImageVersion> build(const std::string& name, const std::string& actor);
  // The recipe's manifest (defaults for apps deployed on the image).
  Result<ImageManifest> manifest(const std::string& name) const;
  std::vector<std::string> recipes() const;
  // Deletes `version` (0: every version that is not current) of `name` when
  // no environment uses it.
  Result<std::vector<ImageVersion>> remove(const std::string& name, uint32_t version,
                                           const std::string& actor);
  // Recovery: removes image directories whose build never finished.
  Status recover();

 private:
  std::mutex& lockFor(const std::string& name);

  const Config& config_;
  Store& store_;
  ProcessRunner& runner_;
  std::mutex mu_;
  std::map<std::string, std::mutex> locks_;
};

}  // namespace qabox
