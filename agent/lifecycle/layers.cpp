// Cached layers: the hash, the build in a container of its own, the layer
// taken from its delta, builds in the background, recovery and collection
// (layers.h).
#include "lifecycle/layers.h"

#include <openssl/evp.h>
#include <spdlog/spdlog.h>
#include <sys/xattr.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "lifecycle/internal.h"
#include "runtime/data_pool.h"
#include "store/ipam.h"
#include "store/paths.h"
#include "sys/disk_usage.h"
#include "sys/idshift.h"

namespace qabox {
namespace {

constexpr const char* kBuildPrefix = "qabox-";  // + "deps-" or "data-" + 16 hex

std::string layersDir(const std::string& stateDir) { return stateDir + "/layers"; }

std::string readText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool isHex64(std::string_view s) {
  return s.size() == 64 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

std::string kindPrefix(LayerKind kind) { return std::string(layerKindName(kind)) + "-"; }

JournalKind journalKindOf(LayerKind kind) {
  return kind == LayerKind::kDeps ? JournalKind::kDepsBuild : JournalKind::kDataBuild;
}

const char* whatOf(LayerKind kind) {
  return kind == LayerKind::kDeps ? "dependency layer" : "data layer";
}

// "a/b/c" as its parts, each a plain name.
Result<std::vector<std::string>> plainParts(std::string_view relative) {
  std::vector<std::string> parts;
  for (size_t start = 0; start <= relative.size();) {
    size_t end = std::min(relative.find('/', start), relative.size());
    parts.emplace_back(relative.substr(start, end - start));
    if (parts.back().empty() || parts.back() == "." || parts.back() == "..") {
      return invalidArgument("layer path " + std::string(relative) + ": not a plain path");
    }
    start = end + 1;
  }
  return parts;
}

Status keepOnlyIn(const fs::path& dir, const std::vector<std::vector<std::string>>& kept,
                  size_t depth) {
  // What this level keeps: each name and what beneath it.
  std::map<std::string, std::vector<std::vector<std::string>>> below;
  for (const auto& parts : kept) {
    if (parts.size() == depth) return Status::ok();  // this directory is kept whole
    below[parts[depth]].push_back(parts);
  }
  for (const char* attr : {"trusted.overlay.opaque", "user.overlay.opaque"}) {
    if (::lremovexattr(dir.c_str(), attr) != 0 && errno != ENODATA && errno != ENOTSUP) {
      return internalError("removing " + std::string(attr) + " from " + dir.string() + ": " +
                           std::strerror(errno));
    }
  }
  std::error_code ec;
  std::vector<fs::path> entries;
  for (const auto& e : fs::directory_iterator(dir, ec)) entries.push_back(e.path());
  if (ec) return internalError("listing " + dir.string() + ": " + ec.message());
  for (const auto& path : entries) {
    auto it = below.find(path.filename().string());
    auto st = fs::symlink_status(path, ec);
    if (ec) return internalError("reading " + path.string() + ": " + ec.message());
    bool keptWhole =
        it != below.end() && std::any_of(it->second.begin(), it->second.end(),
                                         [&](const auto& p) { return p.size() == depth + 1; });
    if (it != below.end() && (keptWhole || fs::is_directory(st))) {
      if (!keptWhole) QABOX_RETURN_IF_ERROR(keepOnlyIn(path, it->second, depth + 1));
      continue;
    }
    fs::remove_all(path, ec);  // never follows a link
    if (ec) return internalError("removing " + path.string() + ": " + ec.message());
  }
  return Status::ok();
}

}  // namespace

std::string layerHash(std::string_view tag, const std::vector<std::string>& fields) {
  std::string text(tag);
  text += '\n';
  for (const std::string& f : fields) {
    text += std::to_string(f.size());
    text += ':';
    text += f;
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(text.data(), text.size(), digest, &len, EVP_sha256(), nullptr);
  static const char* kHex = "0123456789abcdef";
  std::string hex;
  for (unsigned i = 0; i < len; ++i) {
    hex += kHex[digest[i] >> 4];
    hex += kHex[digest[i] & 0xf];
  }
  return hex;
}

Status dropBeneath(const std::string& root, std::string_view relative) {
  QABOX_ASSIGN_OR_RETURN(auto parts, plainParts(relative));
  fs::path at(root);
  for (size_t i = 0; i < parts.size(); ++i) {
    at /= parts[i];
    std::error_code ec;
    auto st = fs::symlink_status(at, ec);
    if (ec || !fs::exists(st)) return Status::ok();  // nothing there: nothing to drop
    // A link or a file where a directory should be is dropped itself: what
    // lies beyond it is never reached through it.
    if (i + 1 == parts.size() || !fs::is_directory(st)) {
      fs::remove_all(at, ec);  // never follows a link
      if (ec) return internalError("removing " + at.string() + ": " + ec.message());
      return Status::ok();
    }
  }
  return Status::ok();
}

Status keepOnlyBeneath(const std::string& root, const std::vector<std::string>& kept) {
  std::vector<std::vector<std::string>> parts;
  for (const auto& k : kept) {
    QABOX_ASSIGN_OR_RETURN(auto p, plainParts(k));
    parts.push_back(std::move(p));
  }
  if (parts.empty()) return invalidArgument("keeping nothing of " + root);
  return keepOnlyIn(root, parts, 0);
}

bool collectable(const CachedLayer& layer, const LayerUse& use, TimePoint now,
                 std::chrono::milliseconds maxAge) {
  if (use.named || use.pinned) return false;
  if (!use.imageExists || use.superseded) return true;
  return now - layer.lastUsedAt >= maxAge;
}

LayerCache::LayerCache(const LifecycleOptions& config, Store& store, ContainerRuntime& runtime,
                       const TimeSource& time)
    : config_(config), store_(store), runtime_(runtime), time_(time) {}

LayerCache::~LayerCache() {
  std::vector<Background> threads;
  {
    std::lock_guard l(mu_);
    threads.swap(background_);
  }
  for (auto& b : threads) b.thread.join();
}

std::string LayerCache::layerDir(LayerKind kind, const std::string& hash) const {
  return layersDir(config_.stateDir) + "/" + kindPrefix(kind) + hash;
}

std::string LayerCache::buildContainer(LayerKind kind, const std::string& hash) {
  return kBuildPrefix + kindPrefix(kind) + hash.substr(0, 16);
}

std::mutex& LayerCache::lockFor(const std::string& hash) {
  std::lock_guard l(mu_);
  auto& m = locks_[hash];
  if (!m) m = std::make_unique<std::mutex>();
  return *m;
}

LayerCache::Pin& LayerCache::Pin::operator=(Pin&& o) noexcept {
  if (this != &o) {
    release();
    owner_ = std::exchange(o.owner_, nullptr);
    hash_ = std::move(o.hash_);
  }
  return *this;
}

void LayerCache::Pin::release() {
  if (!owner_) return;
  std::lock_guard l(owner_->mu_);
  if (--owner_->pins_[hash_] <= 0) owner_->pins_.erase(hash_);
  owner_ = nullptr;
}

LayerCache::Pin LayerCache::pin(const std::string& hash) {
  std::lock_guard l(mu_);
  ++pins_[hash];
  return Pin(this, hash);
}

bool LayerCache::pinned(const std::string& hash) {
  std::lock_guard l(mu_);
  return pins_.count(hash) > 0;
}

bool LayerCache::building(const std::string& hash) {
  std::lock_guard l(mu_);
  return building_.count(hash) > 0;
}

Result<std::optional<LayerCache::Outcome>> LayerCache::find(LayerKind kind,
                                                            const std::string& hash) {
  QABOX_ASSIGN_OR_RETURN(auto row, store_.getLayer(hash));
  std::error_code ec;
  if (!row || row->kind != kind || !fs::is_directory(layerDir(kind, hash), ec)) {
    return std::optional<Outcome>();
  }
  if (onPool(kind) && !fs::is_directory(datasetVolumeDir(config_.storage.dataPool, hash), ec)) {
    return std::optional<Outcome>();  // made before the pool was configured: made again
  }
  if (Status s = store_.touchLayer(hash, time_.now()); !s.isOk()) {
    spdlog::warn("{} {}: recording its use: {}", whatOf(kind), hash.substr(0, 12), s.toString());
  }
  return std::optional<Outcome>(Outcome{hash, layerDir(kind, hash), false, milliseconds(0)});
}

Result<std::optional<CachedLayer>> LayerCache::newestOf(LayerKind kind,
                                                        const std::string& lineage) {
  QABOX_ASSIGN_OR_RETURN(auto rows, store_.listLayers());
  std::optional<CachedLayer> newest;
  for (const auto& l : rows) {  // in build order
    std::error_code ec;
    if (l.kind == kind && l.lineage == lineage && fs::is_directory(layerDir(kind, l.hash), ec)) {
      newest = l;
    }
  }
  return newest;
}

Result<LayerCache::Outcome> LayerCache::ensure(const Request& r) {
  if (!isHex64(r.hash))
    return invalidArgument(std::string(whatOf(r.kind)) + ": bad hash " + r.hash);
  // One build per hash: who comes second waits, then finds it stored.
  std::lock_guard held(lockFor(r.hash));
  QABOX_ASSIGN_OR_RETURN(auto found, find(r.kind, r.hash));
  if (found) return *found;
  QABOX_ASSIGN_OR_RETURN(auto row, store_.getLayer(r.hash));
  if (row) QABOX_RETURN_IF_ERROR(store_.deleteLayer(r.hash));  // its directory is gone
  return build(r);
}

bool LayerCache::buildInBackground(Request r, const std::string& actor) {
  if (auto stored = find(r.kind, r.hash); stored && *stored) return false;
  std::lock_guard l(mu_);
  // The threads of builds that are done are joined here, not kept.
  for (auto it = background_.begin(); it != background_.end();) {
    if (!it->done->load()) {
      ++it;
      continue;
    }
    it->thread.join();
    it = background_.erase(it);
  }
  if (!building_.insert(r.hash).second) return false;
  auto done = std::make_shared<std::atomic<bool>>(false);
  // What it builds over stays until it is done.
  for (const auto& h : r.holds) ++pins_[h];
  std::thread t([this, r = std::move(r), actor, done] {
    auto made = ensure(r);
    const std::string hash12 = r.hash.substr(0, 12);
    std::string detail =
        made ? hash12 + (made->built ? " built in " + std::to_string(made->took.count()) + " ms"
                                     : " already stored")
             : hash12 + ": " + made.status().message();
    if (!made) spdlog::warn("{} {}", whatOf(r.kind), detail);
    if (Status s =
            store_.addEvent({0, time_.now(), "", std::string(layerKindName(r.kind)) + ".build",
                             actor, made ? "ok" : "error", detail.substr(0, 2000)});
        !s.isOk()) {
      spdlog::warn("{} {}: recording its build: {}", whatOf(r.kind), hash12, s.toString());
    }
    std::lock_guard held(mu_);
    building_.erase(r.hash);
    for (const auto& h : r.holds) {
      if (--pins_[h] <= 0) pins_.erase(h);
    }
    done->store(true);
  });
  background_.push_back({std::move(t), done});
  return true;
}

Result<LayerCache::Outcome> LayerCache::build(const Request& r) {
  const auto started = time_.steadyNow();
  const std::string name = buildContainer(r.kind, r.hash);
  const std::string hash12 = r.hash.substr(0, 12);
  // A container of that name is a crashed build's that recovery missed.
  if (Status s = runtime_.destroy(name); !s.isOk()) return s.withContext("build container");
  QABOX_ASSIGN_OR_RETURN(std::string ip, store_.leaseAddress(config_.network.subnet, name));
  Operation op{0,           "", journalKindOf(r.kind),       name, ip,
               time_.now(), {}, JournalOutcome::kUnfinished, ""};
  auto opId = store_.beginOperation(op);
  if (!opId) {
    if (Status s = store_.releaseAddress(ip); !s.isOk()) {
      spdlog::warn("{}: releasing {}: {}", whatOf(r.kind), ip, s.toString());
    }
    return opId.status();
  }
  Status s = runBuild(r, name, ip);
  if (!s.isOk()) cleanUp(r, name);
  if (Status f = store_.finishOperation(
          *opId, s.isOk() ? JournalOutcome::kOk : JournalOutcome::kError, s.message());
      !f.isOk()) {
    spdlog::warn("{} {}: closing its journal entry: {}", whatOf(r.kind), hash12, f.toString());
  }
  QABOX_RETURN_IF_ERROR(s);
  return Outcome{r.hash, layerDir(r.kind, r.hash), true,
                 std::chrono::duration_cast<milliseconds>(time_.steadyNow() - started)};
}

Status LayerCache::runBuild(const Request& r, const std::string& name, const std::string& ip) {
  QABOX_ASSIGN_OR_RETURN(auto subnet, parseSubnet(config_.network.subnet));
  QABOX_RETURN_IF_ERROR(
      cloneImage(runtime_, config_, subnet, r.image, r.imageVersion, name, ip, r.lowers, r.limits));
  QABOX_RETURN_IF_ERROR(r.fill(name));
  QABOX_ASSIGN_OR_RETURN(uint64_t size, takeLayer(r, name));
  if (onPool(r.kind)) QABOX_RETURN_IF_ERROR(makeVolumes(r));
  CachedLayer row{r.hash,         r.kind, r.lineage,   r.image,
                  r.imageVersion, size,   time_.now(), time_.now()};
  QABOX_RETURN_IF_ERROR(store_.putLayer(row));
  const std::string hash12 = r.hash.substr(0, 12);
  if (Status d = runtime_.destroy(name); !d.isOk()) {
    // The layer is made; the next start's orphan sweep retries it.
    spdlog::warn("{} {}: destroying {}: {}", whatOf(r.kind), hash12, name, d.toString());
  } else if (Status l = store_.releaseAddressesOf(name); !l.isOk()) {
    spdlog::warn("{} {}: releasing the address of {}: {}", whatOf(r.kind), hash12, name,
                 l.toString());
  }
  return Status::ok();
}

// The stopped container's delta becomes the layer: moved aside, what is
// not the layer's dropped, given to the image's ids, then renamed into
// place (a layer directory exists only whole).
Result<uint64_t> LayerCache::takeLayer(const Request& r, const std::string& name) {
  const std::string upper = runtime_.upperDir(name);
  const std::string dir = layerDir(r.kind, r.hash);
  const std::string part = dir + ".part";
  std::error_code ec;
  fs::create_directories(layersDir(config_.stateDir), ec);
  if (ec) return internalError("creating " + layersDir(config_.stateDir) + ": " + ec.message());
  // Its clones' mapped roots pass through, as through images/.
  fs::permissions(layersDir(config_.stateDir), fs::perms(0711), ec);
  fs::remove_all(part, ec);
  fs::rename(upper, part, ec);
  if (ec) return internalError("moving " + upper + " to " + part + ": " + ec.message());
  // The container keeps an (empty) delta, as liblxc's destroy expects.
  fs::create_directory(upper, ec);
  if (!r.keep.empty()) {
    QABOX_RETURN_IF_ERROR(keepOnlyBeneath(part, r.keep));
  } else {
    for (const auto& dropped : r.drop) QABOX_RETURN_IF_ERROR(dropBeneath(part, dropped));
  }
  auto own = runtime_.mappedRoot(name);
  auto image = mappedRootOf(readText(paths::imagesLxcPath(config_.stateDir) + "/" +
                                     paths::imageContainer(r.image, r.imageVersion) + "/config"));
  if (own && image) QABOX_RETURN_IF_ERROR(moveOwnership(part, *own, *image));
  fs::permissions(part, fs::perms(0755), ec);
  if (ec) return internalError("chmod " + part + ": " + ec.message());
  // A layer is held to an environment's own disk limits (measured once
  // its build is done).
  const std::string what = r.kind == LayerKind::kDeps ? "[deps] install" : "[data] seed";
  TreeBounds bounds;
  bounds.maxEntries = config_.limits.maxFiles;
  QABOX_ASSIGN_OR_RETURN(auto usage, measureTree(part, bounds));
  if (usage.bound == TreeUsage::Bound::kEntries) {
    return resourceExhausted(what + " wrote more than " + std::to_string(config_.limits.maxFiles) +
                             " files (limits.max_files)");
  }
  auto maxDisk =
      config_.limits.maxDisk.empty() ? std::nullopt : parseMemorySize(config_.limits.maxDisk);
  if (maxDisk && usage.bytes > *maxDisk) {
    return resourceExhausted(what + " wrote " + formatBytes(usage.bytes) +
                             ", above limits.max_disk " + config_.limits.maxDisk);
  }
  fs::rename(part, dir, ec);
  if (ec) return internalError("moving " + part + " into place: " + ec.message());
  return usage.bytes;
}

void LayerCache::cleanUp(const Request& r, const std::string& name) {
  const std::string hash12 = r.hash.substr(0, 12);
  if (Status s = runtime_.destroy(name); !s.isOk()) {
    spdlog::warn("{} {}: destroying {}: {}", whatOf(r.kind), hash12, name, s.toString());
    return;  // its lease stays with it; recovery's sweep retries both
  }
  if (Status s = store_.releaseAddressesOf(name); !s.isOk()) {
    spdlog::warn("{} {}: releasing the address of {}: {}", whatOf(r.kind), hash12, name,
                 s.toString());
  }
  const std::string dir = layerDir(r.kind, r.hash);
  for (const std::string& d : {dir + ".part", dir, dir + ".merged", dir + ".scratch"}) {
    std::error_code ec;
    fs::remove_all(d, ec);
    if (ec) spdlog::warn("{} {}: removing {}: {}", whatOf(r.kind), hash12, d, ec.message());
  }
  if (onPool(r.kind)) {
    if (Status s = deleteDatasetVolume(config_.storage.dataPool, r.hash); !s.isOk()) {
      spdlog::warn("{} {}: removing its pool volumes: {}", whatOf(r.kind), hash12, s.toString());
    }
  }
}

bool LayerCache::onPool(LayerKind kind) const {
  return kind == LayerKind::kData && !config_.storage.dataPool.empty();
}

// The data directories whole, as the environment would see them (the layer
// over the image's layers, merged by a read-only view whose ids show from
// 0), copied into the pool's read-only subvolumes of the dataset.
Status LayerCache::makeVolumes(const Request& r) {
  if (!mounter_) return internalError("storage.data_pool: this agent has no layer mounter");
  const std::string dir = layerDir(r.kind, r.hash);
  const std::string merged = dir + ".merged", scratch = dir + ".scratch";
  std::error_code ec;
  for (const auto& d : {merged, scratch + "/upper", scratch + "/work"}) {
    fs::create_directories(d, ec);
    if (ec) return internalError("creating " + d + ": " + ec.message());
  }
  LayerMount m;
  m.merged = merged;
  m.upper = scratch + "/upper";
  m.work = scratch + "/work";
  m.lowers = r.lowers;
  m.lowers.insert(m.lowers.begin(), dir);
  m.idBase = mappedRootOf(readText(paths::imagesLxcPath(config_.stateDir) + "/" +
                                   paths::imageContainer(r.image, r.imageVersion) + "/config"));
  QABOX_RETURN_IF_ERROR(mounter_->mountLayers(m));
  auto made = makeDatasetVolume(config_.storage.dataPool, r.hash, merged, r.keep, 0);
  Status unmounted = mounter_->unmountLayers(merged);
  if (!made) return made.status().withContext("storage.data_pool");
  QABOX_RETURN_IF_ERROR(unmounted);
  for (const auto& d : {merged, scratch}) {
    fs::remove_all(d, ec);
    if (ec)
      spdlog::warn("{} {}: removing {}: {}", whatOf(r.kind), r.hash.substr(0, 12), d, ec.message());
  }
  return Status::ok();
}

Status LayerCache::recover() {
  QABOX_ASSIGN_OR_RETURN(auto ops, store_.unfinishedOperations());
  for (const auto& op : ops) {
    if (op.kind != JournalKind::kDepsBuild && op.kind != JournalKind::kDataBuild) continue;
    const std::string& name = op.container;
    // Only a build container of the entry's own kind: never an environment's.
    const LayerKind kind = op.kind == JournalKind::kDepsBuild ? LayerKind::kDeps : LayerKind::kData;
    const bool ours =
        name.rfind(kBuildPrefix + kindPrefix(kind), 0) == 0 && name.find('/') == std::string::npos;
    if (ours) {
      QABOX_RETURN_IF_ERROR(runtime_.destroy(name));
      QABOX_RETURN_IF_ERROR(store_.releaseAddressesOf(name));
    } else {
      spdlog::warn("layer recovery: journal entry {} names no build container (\"{}\")", op.id,
                   name);
    }
    QABOX_RETURN_IF_ERROR(
        store_.finishOperation(op.id, JournalOutcome::kRolledBack, "agent restarted mid-build"));
  }
  QABOX_ASSIGN_OR_RETURN(auto rows, store_.listLayers());
  std::set<std::string> known;
  for (const auto& l : rows) {
    std::error_code ec;
    const std::string dir = layerDir(l.kind, l.hash);
    if (fs::is_directory(dir, ec)) {
      known.insert(fs::path(dir).filename());
    } else if (Status s = store_.deleteLayer(l.hash); !s.isOk()) {
      spdlog::warn("layer recovery: {}: {}", l.hash.substr(0, 12), s.toString());
    }
  }
  std::set<std::string> dataHashes;
  for (const auto& l : rows) {
    if (l.kind == LayerKind::kData) dataHashes.insert(l.hash);
  }
  if (!config_.storage.dataPool.empty()) QABOX_RETURN_IF_ERROR(recoverPool(dataHashes));
  // Whatever else is there is a half-made layer.
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(layersDir(config_.stateDir), ec)) {
    if (known.count(e.path().filename())) continue;
    // A dataset's copy into the pool that a crash cut short: its view
    // unmounted first, so nothing is removed through it.
    if (e.path().extension() == ".merged" && mounter_) {
      QABOX_RETURN_IF_ERROR(mounter_->unmountLayers(e.path().string()));
    }
    std::error_code rm;
    fs::remove_all(e.path(), rm);
    if (rm) spdlog::warn("layer recovery: {}: {}", e.path().string(), rm.message());
  }
  return Status::ok();
}

// The pool: half-made datasets, datasets no row names, and environments'
// snapshots whose container is gone (a crash between destroying it and
// deleting them).
Status LayerCache::recoverPool(const std::set<std::string>& dataHashes) {
  const std::string& pool = config_.storage.dataPool;
  QABOX_RETURN_IF_ERROR(removePartialDatasets(pool).status());
  QABOX_ASSIGN_OR_RETURN(auto volumes, listDatasetVolumes(pool));
  for (const auto& hash : volumes) {
    if (!dataHashes.count(hash)) QABOX_RETURN_IF_ERROR(deleteDatasetVolume(pool, hash));
  }
  QABOX_ASSIGN_OR_RETURN(auto envs, listEnvData(pool));
  for (const auto& container : envs) {
    QABOX_ASSIGN_OR_RETURN(auto state, runtime_.state(container));
    if (state == ContainerState::kMissing) QABOX_RETURN_IF_ERROR(deleteEnvData(pool, container));
  }
  return Status::ok();
}

Result<std::vector<std::string>> LayerCache::collect(const std::string& actor) {
  QABOX_ASSIGN_OR_RETURN(auto layers, store_.listLayers());
  std::vector<std::string> removed;
  for (const auto& l : layers) QABOX_RETURN_IF_ERROR(collectOne(l, layers, actor, removed));
  return removed;
}

Status LayerCache::collectOne(const CachedLayer& l, const std::vector<CachedLayer>& all,
                              const std::string& actor, std::vector<std::string>& removed) {
  std::lock_guard held(lockFor(l.hash));
  // Read under the hash's lock: a deploy that pinned it first keeps it.
  QABOX_ASSIGN_OR_RETURN(auto envs, store_.listEnvironments());
  QABOX_ASSIGN_OR_RETURN(auto images, store_.listImages());
  LayerUse use;
  use.pinned = pinned(l.hash);
  use.imageExists = false;
  for (const auto& e : envs)
    use.named = use.named || e.depsLayer == l.hash || e.dataLayer == l.hash;
  for (const auto& im : images) {
    use.imageExists = use.imageExists || (im.name == l.image && im.version == l.imageVersion);
  }
  for (const auto& o : all) {
    use.superseded =
        use.superseded || (l.kind == LayerKind::kData && o.kind == l.kind &&
                           o.lineage == l.lineage && o.hash != l.hash && o.builtAt > l.builtAt);
  }
  if (!collectable(l, use, time_.now(), config_.deploy.depsMaxAge)) return Status::ok();
  const std::string dir = layerDir(l.kind, l.hash);
  std::error_code ec;
  fs::remove_all(dir, ec);
  if (ec) return internalError("removing " + dir + ": " + ec.message());
  if (onPool(l.kind)) {
    QABOX_RETURN_IF_ERROR(deleteDatasetVolume(config_.storage.dataPool, l.hash));
  }
  QABOX_RETURN_IF_ERROR(store_.deleteLayer(l.hash));
  removed.push_back(l.hash);
  if (Status s = store_.addEvent(
          {0, time_.now(), "", std::string(layerKindName(l.kind)) + ".collect", actor, "ok",
           l.hash.substr(0, 12) + " (" + l.image + " v" + std::to_string(l.imageVersion) + ")"});
      !s.isOk()) {
    spdlog::warn("{} {}: recording its collection: {}", whatOf(l.kind), l.hash.substr(0, 12),
                 s.toString());
  }
  return Status::ok();
}

}  // namespace qabox
