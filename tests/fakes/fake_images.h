#pragma once

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "deploy/image_builder.h"
#include "runtime/runtime.h"

namespace qabox::fakes {

// Layer mounts as a record, in place of overlayfs: mountLayers notes the
// mount (and makes `merged` so a provision can write there), unmountLayers
// forgets it. What a build mounted and never unmounted stays in `mounted`.
// Failures are injected per call ("mount", "unmount").
class FakeLayerMounter : public LayerMounter {
 public:
  Status mountLayers(const LayerMount& mount) override {
    std::lock_guard l(mu_);
    calls.push_back("mount " + mount.merged);
    if (auto it = fail.find("mount"); it != fail.end()) return it->second;
    mounts.push_back(mount);
    mounted[mount.merged] = mount;
    return Status::ok();
  }
  Status unmountLayers(const std::string& merged) override {
    std::lock_guard l(mu_);
    calls.push_back("unmount " + merged);
    if (auto it = fail.find("unmount"); it != fail.end()) return it->second;
    mounted.erase(merged);
    return Status::ok();
  }

  std::map<std::string, Status> fail;
  std::vector<std::string> calls;
  std::vector<LayerMount> mounts;             // every mount made, in order
  std::map<std::string, LayerMount> mounted;  // merged -> what is mounted now

 private:
  std::mutex mu_;
};

// Image recipes as a map, in place of images/<name>/ and their builds: what
// unit tests of the lifecycle and the API use. build() records a new
// version (current) in the store it is given, as the real builder does, but
// provisions nothing. Failures are injected per operation ("build",
// "manifest", "remove", "recover") with the Status to return.
class FakeImages : public ImageCatalog {
 public:
  explicit FakeImages(Store* store = nullptr) : store_(store) {}

  Result<ImageVersion> build(const std::string& name, const std::string& actor,
                             bool = false) override {
    std::lock_guard l(mu_);
    calls.push_back("build " + name + " " + actor);
    if (auto it = fail.find("build"); it != fail.end()) return it->second;
    if (!recipes_.count(name)) return notFound("image " + name + ": no such recipe");
    ImageVersion v;
    v.name = name;
    v.version = ++versions_[name];
    v.builtAt = Clock::now();
    v.current = true;
    v.description = recipes_[name].description;
    v.parent = recipes_[name].from;
    if (!v.parent.empty()) v.parentVersion = versions_[v.parent];
    if (store_) QABOX_RETURN_IF_ERROR(store_->putImage(v));
    return v;
  }

  Result<std::vector<std::string>> lowerDirs(const std::string&, uint32_t) override {
    return std::vector<std::string>{};
  }

  Result<ImageManifest> manifest(const std::string& name) const override {
    std::lock_guard l(mu_);
    calls.push_back("manifest " + name);
    if (auto it = fail.find("manifest"); it != fail.end()) return it->second;
    auto it = recipes_.find(name);
    if (it == recipes_.end()) return notFound("image " + name + ": no such recipe");
    return it->second;
  }

  std::vector<std::string> recipes() const override {
    std::lock_guard l(mu_);
    std::vector<std::string> out;
    for (const auto& [name, m] : recipes_) out.push_back(name);
    return out;
  }

  Result<std::vector<ImageVersion>> remove(const std::string& name, uint32_t version,
                                           const std::string& actor) override {
    std::lock_guard l(mu_);
    calls.push_back("remove " + name + " " + std::to_string(version) + " " + actor);
    if (auto it = fail.find("remove"); it != fail.end()) return it->second;
    return std::vector<ImageVersion>{};
  }

  Status recover() override {
    std::lock_guard l(mu_);
    calls.push_back("recover");
    if (auto it = fail.find("recover"); it != fail.end()) return it->second;
    return Status::ok();
  }

  // A recipe named `m.name`.
  void addRecipe(const ImageManifest& m) {
    std::lock_guard l(mu_);
    recipes_[m.name] = m;
  }

  std::map<std::string, Status> fail;  // operation -> what it returns
  mutable std::vector<std::string> calls;

 private:
  Store* store_;
  mutable std::mutex mu_;
  std::map<std::string, ImageManifest> recipes_;
  std::map<std::string, uint32_t> versions_;
};

}  // namespace qabox::fakes
