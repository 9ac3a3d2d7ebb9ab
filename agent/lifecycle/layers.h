#pragma once

// Cached layers: a layer is built once per hash in a build container of its
// own on the agent's bridge (a clone of the image over the lowers given),
// and every environment with that hash is cloned over it copy-on-write (a
// lower layer above the image's, below the clone's delta). Two kinds share
// this machinery: [deps] layers (lifecycle/deps.h: what an install wrote)
// and [data] snapshots (lifecycle/datasets.h: the services' data after the
// target branch's migrations and seed).
//
// A layer lives under state_dir/layers/KIND-<hash>/ and exists there only
// whole (built in .part, renamed). Concurrent deploys that need one hash
// wait for one build. A build is journaled ("deps.build", "data.build"):
// recovery removes a half-made layer and its build container. Layers no
// environment names are collected once older than deploy.deps_max_age, at
// once when their image version is gone or (data) a newer layer of the same
// lineage replaced them.
//
// With a data pool (storage.data_pool, runtime/data_pool.h) a data layer is
// also copied, as its services' whole data directories (the layer over the
// image's, merged), into read-only btrfs subvolumes there; environments then
// get writable snapshots of those mounted at the data directories
// (ContainerRuntime::attachData) instead of the layer among their lowers, so
// a first write copies the blocks written, not the file.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "core/environment.h"
#include "lifecycle/options.h"
#include "runtime/runtime.h"
#include "store/store.h"

namespace qabox {

// SHA-256 hex over `fields`, each length-prefixed after `tag`: no two
// different inputs hash alike by moving bytes between fields.
std::string layerHash(std::string_view tag, const std::vector<std::string>& fields);

// Removes `relative` (its parts plain names) beneath `root`, following no
// link: a part that is not a real directory is itself what is removed.
Status dropBeneath(const std::string& root, std::string_view relative);

// Leaves beneath `root` only `kept` (plain relative paths) and the
// directories on the way to them, following no link: whatever else is
// there goes, and so does a link or file where a directory on the way
// should be. The directories on the way lose any overlay opaque mark, so
// the layer hides nothing of the layers below it but under `kept`.
Status keepOnlyBeneath(const std::string& root, const std::vector<std::string>& kept);

// Collection: whether a layer goes. `superseded`: a newer layer of its
// lineage is stored.
struct LayerUse {
  bool named = false;  // an environment is cloned over it
  bool pinned = false;
  bool imageExists = true;
  bool superseded = false;
};
bool collectable(const CachedLayer& layer, const LayerUse& use, TimePoint now,
                 std::chrono::milliseconds maxAge);

class LayerCache {
 public:
  LayerCache(const LifecycleOptions& config, Store& store, ContainerRuntime& runtime,
             const TimeSource& time);
  ~LayerCache();  // waits for the builds in the background
  LayerCache(const LayerCache&) = delete;
  LayerCache& operator=(const LayerCache&) = delete;

  // What a build does with its (stopped) container: places what it needs
  // beneath its upper dir, starts it, runs in it, and stops it.
  using Fill = std::function<Status(const std::string& container)>;
  struct Request {
    LayerKind kind = LayerKind::kDeps;
    std::string hash;
    std::string lineage;  // data: "REPO TARGET"
    std::string image;
    uint32_t imageVersion = 0;
    std::vector<std::string> lowers;  // topmost first: the image version's, and any layer below
    std::vector<std::string> holds;   // hashes of layers in `lowers`: pinned while it builds
    ResourceLimits limits;
    Fill fill;
    // What of the container's delta is the layer: only `keep` (relative
    // paths); empty: all but `drop`.
    std::vector<std::string> keep;
    std::vector<std::string> drop;
  };
  struct Outcome {
    std::string hash;
    std::string dir;  // the layer, for the clone's lowers
    bool built = false;
    std::chrono::milliseconds took{0};
  };
  // The layer of `r.hash`: the stored one (its last use now), or built.
  Result<Outcome> ensure(const Request& r);
  // The stored layer of `hash` whole on disk (its last use now), if there is one.
  Result<std::optional<Outcome>> find(LayerKind kind, const std::string& hash);
  // The newest stored layer of `lineage`, if any.
  Result<std::optional<CachedLayer>> newestOf(LayerKind kind, const std::string& lineage);
  // ensure(r) in a thread of its own, unless one already builds r.hash; the
  // outcome is an event ("data.build"). Returns whether it started one.
  bool buildInBackground(Request r, const std::string& actor);
  void setMounter(LayerMounter* mounter) { mounter_ = mounter; }
  bool building(const std::string& hash);

  // A layer a deploy is about to clone over stays until unpinned, whatever
  // collection decides.
  class Pin {
   public:
    Pin() = default;
    Pin(LayerCache* owner, std::string hash) : owner_(owner), hash_(std::move(hash)) {}
    Pin(Pin&& o) noexcept : owner_(std::exchange(o.owner_, nullptr)), hash_(std::move(o.hash_)) {}
    Pin& operator=(Pin&& o) noexcept;
    Pin(const Pin&) = delete;
    Pin& operator=(const Pin&) = delete;
    ~Pin() { release(); }

   private:
    void release();
    LayerCache* owner_ = nullptr;
    std::string hash_;
  };
  Pin pin(const std::string& hash);

  // At agent start: unfinished builds' containers, leases and directories,
  // directories no row names, rows whose directory is gone.
  Status recover();
  // Removes what collectable() says; returns the hashes removed.
  Result<std::vector<std::string>> collect(const std::string& actor);

  std::string layerDir(LayerKind kind, const std::string& hash) const;
  static std::string buildContainer(LayerKind kind, const std::string& hash);

 private:
  std::mutex& lockFor(const std::string& hash);
  bool pinned(const std::string& hash);
  Result<Outcome> build(const Request& r);
  Status runBuild(const Request& r, const std::string& name, const std::string& ip);
  Result<uint64_t> takeLayer(const Request& r, const std::string& name);
  void cleanUp(const Request& r, const std::string& name);
  Status makeVolumes(const Request& r);
  bool onPool(LayerKind kind) const;
  Status recoverPool(const std::set<std::string>& dataHashes);
  Status collectOne(const CachedLayer& l, const std::vector<CachedLayer>& all,
                    const std::string& actor, std::vector<std::string>& removed);

  const LifecycleOptions& config_;
  Store& store_;
  ContainerRuntime& runtime_;
  const TimeSource& time_;
  std::mutex mu_;
  std::map<std::string, std::unique_ptr<std::mutex>> locks_;
  std::map<std::string, int> pins_;
  std::set<std::string> building_;  // hashes a background build is making
  // Each background build's thread, and whether it has finished (joined at
  // the next start of one, or at the end).
  struct Background {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::vector<Background> background_;
  LayerMounter* mounter_ = nullptr;
};

}  // namespace qabox
