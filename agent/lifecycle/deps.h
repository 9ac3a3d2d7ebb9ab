#pragma once

// Cached dependency layers (qabox.toml [deps]). `install` runs once per
// hash of (the image version, the install command, the listed files'
// contents), in a build container on the agent's bridge, into a layer under
// state_dir/layers/deps-<hash>/ that every environment with that hash is
// cloned over (a lower layer above the image's, below the clone's delta).
// Concurrent deploys that need one hash wait for one build. A build is
// journaled ("deps.build"): recovery removes a half-made layer and its build
// container. Layers no environment names are collected once older than
// deploy.deps_max_age, or at once when their image version is gone.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "core/environment.h"
#include "deploy/git.h"
#include "deploy/manifest.h"
#include "lifecycle/options.h"
#include "runtime/runtime.h"
#include "store/store.h"

namespace qabox {

// What a layer's hash is made of.
struct DepsInputs {
  std::string image;
  uint32_t imageVersion = 0;
  std::string install;
  std::vector<std::pair<std::string, std::string>> files;  // path, content; in listed order
};
// SHA-256 hex over every input, each length-prefixed: no two different
// inputs hash alike by moving bytes between fields.
std::string depsHash(const DepsInputs& in);

// What a build container's delta loses before it is a layer: the app's
// tree and the agent's and the run's scratch, relative to the root.
inline constexpr const char* kDepsDropped[] = {"srv/app", "etc/qabox", "run", "tmp", "var/log"};

// Removes `relative` (its parts plain names) beneath `root`, following no
// link: a part that is not a real directory is itself what is removed.
Status dropBeneath(const std::string& root, std::string_view relative);

// Each of `files` is a regular file beneath `appDir` (the exported tree),
// reached through no link: FAILED_PRECONDITION naming the entry otherwise.
Status checkDepsFiles(const std::string& appDir, const std::vector<std::string>& files);

// Collection: whether a layer goes.
bool collectable(const DepsLayer& layer, bool named, bool pinned, bool imageExists, TimePoint now,
                 std::chrono::milliseconds maxAge);

class DepsLayers {
 public:
  DepsLayers(const LifecycleOptions& config, Store& store, ContainerRuntime& runtime,
             GitSource* git, const TimeSource& time);

  struct Request {
    std::string hash;
    std::string image;
    uint32_t imageVersion = 0;
    std::vector<std::string> lowers;  // the image version's layers, topmost first
    ResourceLimits limits;
    const RepoConfig* repo = nullptr;
    std::string commit;
    DepsDef deps;
    std::function<void(bool isStderr, std::string_view data)> onOutput;
  };
  struct Outcome {
    std::string dir;  // the layer, for the clone's lowers
    bool built = false;
    std::chrono::milliseconds took{0};
  };
  // The layer of `r.hash`: the stored one (its last use now), or built.
  Result<Outcome> ensure(const Request& r);

  // A layer a deploy is about to clone over stays until unpinned, whatever
  // collection decides.
  class Pin {
   public:
    Pin() = default;
    Pin(DepsLayers* owner, std::string hash) : owner_(owner), hash_(std::move(hash)) {}
    Pin(Pin&& o) noexcept : owner_(std::exchange(o.owner_, nullptr)), hash_(std::move(o.hash_)) {}
    Pin& operator=(Pin&& o) noexcept;
    Pin(const Pin&) = delete;
    Pin& operator=(const Pin&) = delete;
    ~Pin() { release(); }

   private:
    void release();
    DepsLayers* owner_ = nullptr;
    std::string hash_;
  };
  Pin pin(const std::string& hash);

  // At agent start: unfinished builds' containers, leases and directories,
  // directories no row names, rows whose directory is gone.
  Status recover();
  // Removes what collectable() says; returns the hashes removed.
  Result<std::vector<std::string>> collect(const std::string& actor);

  std::string layerDir(const std::string& hash) const;
  static std::string buildContainer(const std::string& hash);

 private:
  std::mutex& lockFor(const std::string& hash);
  bool pinned(const std::string& hash);
  Result<Outcome> build(const Request& r);
  Status runBuild(const Request& r, const std::string& name, const std::string& ip);
  Status installIn(const Request& r, const std::string& name);
  Result<uint64_t> takeLayer(const Request& r, const std::string& name);
  void cleanUp(const std::string& name, const std::string& hash);

  const LifecycleOptions& config_;
  Store& store_;
  ContainerRuntime& runtime_;
  GitSource* git_;
  const TimeSource& time_;
  std::mutex mu_;
  std::map<std::string, std::unique_ptr<std::mutex>> locks_;
  std::map<std::string, int> pins_;
};

}  // namespace qabox
