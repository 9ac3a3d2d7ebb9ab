#pragma once

// What an image version is made of, before anything is built: the hash of
// its recipe (the build cache's key), the chain of recipes it is built on,
// and its manifest merged with its parents'.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/status.h"
#include "deploy/manifest.h"

namespace qabox {

// A recipe folder larger than this is refused: a recipe is scripts and
// small files, not data.
inline constexpr uint64_t kMaxRecipeBytes = uint64_t{64} << 20;

struct RecipeInputs {
  std::string dir;                  // images/<name>
  std::vector<std::string> shared;  // folders its scripts source (images/lib), hashed too
  std::string parent;               // "" for a base image
  uint32_t parentVersion = 0;
  std::vector<std::string> packages;  // as the build passes them, in order
  // qabox-init's path when the recipe says init = "qabox-init" (the image
  // installs it): its bytes are part of the image. "": not hashed.
  std::string initBinary;
};

// SHA-256 hex over the recipe folder (every file and folder under it by
// relative path, sorted: its type, mode, size and bytes), the shared
// folders (the same way, under their names), the parent's name
// and version, the packages and the init binary. A symbolic link or special
// file in the folder, or a folder over `maxBytes`, is refused.
Result<std::string> recipeHash(const RecipeInputs& in, uint64_t maxBytes = kMaxRecipeBytes);

// Reads one recipe's own manifest (image.toml).
using ManifestLoader = std::function<Result<ImageManifest>(const std::string& name)>;

// `name`'s manifest, then its parent's, down to the base image's. A `from`
// naming a missing recipe, or a cycle, is refused with the chain named:
// "image python: from services from debian: no recipe debian".
Result<std::vector<ImageManifest>> recipeChain(const std::string& name, const ManifestLoader& load);

// `child` over its (already merged) parent: init, services (by name),
// [app], [hooks] and [limits] are inherited where the child sets none;
// packages, provision, description and from are the child's own.
ImageManifest inheritManifest(const ImageManifest& child, const ImageManifest& parent);

}  // namespace qabox
