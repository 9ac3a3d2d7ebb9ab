// Cached dependency layers: the hash, the build in a container of its own,
// the layer taken from its delta, recovery and collection (deps.h).
#include "lifecycle/deps.h"

#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "lifecycle/internal.h"
#include "store/ipam.h"
#include "store/paths.h"
#include "sys/disk_usage.h"
#include "sys/idshift.h"
#include "sys/process.h"
#include "sys/safe_path.h"

namespace qabox {
namespace {

constexpr const char* kBuildPrefix = "qabox-deps-";
constexpr const char* kLayerPrefix = "deps-";

void addField(std::string& out, std::string_view field) {
  out += std::to_string(field.size());
  out += ':';
  out += field;
}

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

}  // namespace

std::string depsHash(const DepsInputs& in) {
  std::string text = "qabox deps layer 1\n";
  addField(text, in.image);
  addField(text, std::to_string(in.imageVersion));
  addField(text, in.install);
  addField(text, std::to_string(in.files.size()));
  for (const auto& [path, content] : in.files) {
    addField(text, path);
    addField(text, content);
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
  std::vector<std::string> parts;
  for (size_t start = 0; start <= relative.size();) {
    size_t end = std::min(relative.find('/', start), relative.size());
    parts.emplace_back(relative.substr(start, end - start));
    if (parts.back().empty() || parts.back() == "." || parts.back() == "..") {
      return invalidArgument("dropping " + std::string(relative) + ": not a plain path");
    }
    start = end + 1;
  }
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

bool collectable(const DepsLayer& layer, bool named, bool pinned, bool imageExists, TimePoint now,
                 std::chrono::milliseconds maxAge) {
  if (named || pinned) return false;
  if (!imageExists) return true;
  return now - layer.lastUsedAt >= maxAge;
}

DepsLayers::DepsLayers(const LifecycleOptions& config, Store& store, ContainerRuntime& runtime,
                       GitSource* git, const TimeSource& time)
    : config_(config), store_(store), runtime_(runtime), git_(git), time_(time) {}

std::string DepsLayers::layerDir(const std::string& hash) const {
  return layersDir(config_.stateDir) + "/" + kLayerPrefix + hash;
}

std::string DepsLayers::buildContainer(const std::string& hash) {
  return kBuildPrefix + hash.substr(0, 16);
}

std::mutex& DepsLayers::lockFor(const std::string& hash) {
  std::lock_guard l(mu_);
  auto& m = locks_[hash];
  if (!m) m = std::make_unique<std::mutex>();
  return *m;
}

DepsLayers::Pin& DepsLayers::Pin::operator=(Pin&& o) noexcept {
  if (this != &o) {
    release();
    owner_ = std::exchange(o.owner_, nullptr);
    hash_ = std::move(o.hash_);
  }
  return *this;
}

void DepsLayers::Pin::release() {
  if (!owner_) return;
  std::lock_guard l(owner_->mu_);
  if (--owner_->pins_[hash_] <= 0) owner_->pins_.erase(hash_);
  owner_ = nullptr;
}

DepsLayers::Pin DepsLayers::pin(const std::string& hash) {
  std::lock_guard l(mu_);
  ++pins_[hash];
  return Pin(this, hash);
}

bool DepsLayers::pinned(const std::string& hash) {
  std::lock_guard l(mu_);
  return pins_.count(hash) > 0;
}

Result<DepsLayers::Outcome> DepsLayers::ensure(const Request& r) {
  if (!isHex64(r.hash)) return invalidArgument("dependency layer: bad hash " + r.hash);
  // One build per hash: who comes second waits, then finds it stored.
  std::lock_guard held(lockFor(r.hash));
  QABOX_ASSIGN_OR_RETURN(auto row, store_.getDepsLayer(r.hash));
  std::error_code ec;
  if (row && fs::is_directory(layerDir(r.hash), ec)) {
    if (Status s = store_.touchDepsLayer(r.hash, time_.now()); !s.isOk()) {
      spdlog::warn("dependency layer {}: recording its use: {}", r.hash.substr(0, 12),
                   s.toString());
    }
    return Outcome{layerDir(r.hash), false, milliseconds(0)};
  }
  if (row) QABOX_RETURN_IF_ERROR(store_.deleteDepsLayer(r.hash));  // its directory is gone
  return build(r);
}

Result<DepsLayers::Outcome> DepsLayers::build(const Request& r) {
  if (!git_ || !r.repo) return failedPrecondition("[deps] needs a repo to export");
  const auto started = time_.steadyNow();
  const std::string name = buildContainer(r.hash);
  // A container of that name is a crashed build's that recovery missed.
  if (Status s = runtime_.destroy(name); !s.isOk()) return s.withContext("build container");
  QABOX_ASSIGN_OR_RETURN(std::string ip, store_.leaseAddress(config_.network.subnet, name));
  Operation op{0,           "", JournalKind::kDepsBuild,     name, ip,
               time_.now(), {}, JournalOutcome::kUnfinished, ""};
  auto opId = store_.beginOperation(op);
  if (!opId) {
    if (Status s = store_.releaseAddress(ip); !s.isOk()) {
      spdlog::warn("dependency layer: releasing {}: {}", ip, s.toString());
    }
    return opId.status();
  }
  Status s = runBuild(r, name, ip);
  if (!s.isOk()) cleanUp(name, r.hash);
  if (Status f = store_.finishOperation(
          *opId, s.isOk() ? JournalOutcome::kOk : JournalOutcome::kError, s.message());
      !f.isOk()) {
    spdlog::warn("dependency layer {}: closing its journal entry: {}", r.hash.substr(0, 12),
                 f.toString());
  }
  QABOX_RETURN_IF_ERROR(s);
  return Outcome{layerDir(r.hash), true,
                 std::chrono::duration_cast<milliseconds>(time_.steadyNow() - started)};
}

Status DepsLayers::runBuild(const Request& r, const std::string& name, const std::string& ip) {
  QABOX_ASSIGN_OR_RETURN(auto subnet, parseSubnet(config_.network.subnet));
  NetSpec net{config_.network.bridge, cidrOf(subnet, ip), gatewayOf(subnet)};
  QABOX_RETURN_IF_ERROR(runtime_.clone(paths::imagesLxcPath(config_.stateDir),
                                       paths::imageContainer(r.image, r.imageVersion), name,
                                       r.lowers, net, r.limits));
  QABOX_RETURN_IF_ERROR(installIn(r, name));
  QABOX_ASSIGN_OR_RETURN(uint64_t size, takeLayer(r, name));
  DepsLayer row{r.hash, r.image, r.imageVersion, size, time_.now(), time_.now()};
  QABOX_RETURN_IF_ERROR(store_.putDepsLayer(row));
  if (Status d = runtime_.destroy(name); !d.isOk()) {
    // The layer is made; the next start's orphan sweep retries it.
    spdlog::warn("dependency layer {}: destroying {}: {}", r.hash.substr(0, 12), name,
                 d.toString());
  } else if (Status l = store_.releaseAddressesOf(name); !l.isOk()) {
    spdlog::warn("dependency layer {}: releasing the address of {}: {}", r.hash.substr(0, 12), name,
                 l.toString());
  }
  return Status::ok();
}

// The merge result in /srv/app (opaque, as a deploy's), every listed file a
// regular file there, the container started, `install` run in /srv/app,
// the container stopped.
Status DepsLayers::installIn(const Request& r, const std::string& name) {
  const std::string upper = runtime_.upperDir(name);
  QABOX_RETURN_IF_ERROR(makeDirsBeneath(upper, paths::kAppDir, 0755).status());
  for (const char* attr : {"trusted.overlay.opaque", "user.overlay.opaque"}) {
    QABOX_RETURN_IF_ERROR(setDirXattrBeneath(upper, paths::kAppDir, attr, "y"));
  }
  QABOX_RETURN_IF_ERROR(git_->exportTree(*r.repo, r.commit, upper + paths::kAppDir));
  QABOX_RETURN_IF_ERROR(checkDepsFiles(upper + paths::kAppDir, r.deps.files));
  if (auto root = runtime_.mappedRoot(name)) QABOX_RETURN_IF_ERROR(shiftOwnership(upper, *root));
  QABOX_RETURN_IF_ERROR(runtime_.start(name));
  ExecSpec ex;
  ex.argv = {"/bin/sh", "-c", r.deps.install};
  ex.env = {{"PATH", kPath}, {"HOME", "/root"}, {"LANG", "C.UTF-8"}};
  ex.cwd = paths::kAppDir;
  ex.timeout = config_.deploy.hookTimeout;
  ex.onOutput = r.onOutput;
  auto ran = runtime_.exec(name, ex);
  Status stopped = runtime_.stop(name);
  if (!ran) return ran.status();
  if (!ran->ok()) {
    std::string tail = lastLines(ran->out + ran->err, 10);
    if (ran->timedOut) {
      return deadlineExceeded("[deps] install did not finish within " +
                              std::to_string(config_.deploy.hookTimeout.count() / 1000) +
                              "s; last output:\n" + tail);
    }
    return failedPrecondition("[deps] install failed with exit code " +
                              std::to_string(ran->exitCode) + "; last output:\n" + tail);
  }
  return stopped;
}

// The stopped container's delta becomes the layer: moved aside, what is
// not the install's dropped, given to the image's ids, then renamed into
// place (a layer directory exists only whole).
Result<uint64_t> DepsLayers::takeLayer(const Request& r, const std::string& name) {
  const std::string upper = runtime_.upperDir(name);
  const std::string part = layerDir(r.hash) + ".part";
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
  for (const char* dropped : kDepsDropped) QABOX_RETURN_IF_ERROR(dropBeneath(part, dropped));
  auto own = runtime_.mappedRoot(name);
  auto image = mappedRootOf(readText(paths::imagesLxcPath(config_.stateDir) + "/" +
                                     paths::imageContainer(r.image, r.imageVersion) + "/config"));
  if (own && image) QABOX_RETURN_IF_ERROR(moveOwnership(part, *own, *image));
  fs::permissions(part, fs::perms(0755), ec);
  if (ec) return internalError("chmod " + part + ": " + ec.message());
  // A layer is held to an environment's own disk limits (measured once
  // the install is done).
  TreeBounds bounds;
  bounds.maxEntries = config_.limits.maxFiles;
  QABOX_ASSIGN_OR_RETURN(auto usage, measureTree(part, bounds));
  if (usage.bound == TreeUsage::Bound::kEntries) {
    return resourceExhausted("[deps] install wrote more than " +
                             std::to_string(config_.limits.maxFiles) + " files (limits.max_files)");
  }
  auto maxDisk =
      config_.limits.maxDisk.empty() ? std::nullopt : parseMemorySize(config_.limits.maxDisk);
  if (maxDisk && usage.bytes > *maxDisk) {
    return resourceExhausted("[deps] install wrote " + formatBytes(usage.bytes) +
                             ", above limits.max_disk " + config_.limits.maxDisk);
  }
  fs::rename(part, layerDir(r.hash), ec);
  if (ec) return internalError("moving " + part + " into place: " + ec.message());
  return usage.bytes;
}

void DepsLayers::cleanUp(const std::string& name, const std::string& hash) {
  if (Status s = runtime_.destroy(name); !s.isOk()) {
    spdlog::warn("dependency layer {}: destroying {}: {}", hash.substr(0, 12), name, s.toString());
    return;  // its lease stays with it; recovery's sweep retries both
  }
  if (Status s = store_.releaseAddressesOf(name); !s.isOk()) {
    spdlog::warn("dependency layer {}: releasing the address of {}: {}", hash.substr(0, 12), name,
                 s.toString());
  }
  for (const std::string& dir : {layerDir(hash) + ".part", layerDir(hash)}) {
    std::error_code ec;
    fs::remove_all(dir, ec);
    if (ec)
      spdlog::warn("dependency layer {}: removing {}: {}", hash.substr(0, 12), dir, ec.message());
  }
}

Status DepsLayers::recover() {
  QABOX_ASSIGN_OR_RETURN(auto ops, store_.unfinishedOperations());
  for (const auto& op : ops) {
    if (op.kind != JournalKind::kDepsBuild) continue;
    const std::string& name = op.container;
    const bool ours = name.rfind(kBuildPrefix, 0) == 0 && name.find('/') == std::string::npos;
    if (ours) {
      QABOX_RETURN_IF_ERROR(runtime_.destroy(name));
      QABOX_RETURN_IF_ERROR(store_.releaseAddressesOf(name));
    } else {
      spdlog::warn("dependency layer recovery: journal entry {} names no build container (\"{}\")",
                   op.id, name);
    }
    QABOX_RETURN_IF_ERROR(
        store_.finishOperation(op.id, JournalOutcome::kRolledBack, "agent restarted mid-build"));
  }
  QABOX_ASSIGN_OR_RETURN(auto rows, store_.listDepsLayers());
  std::set<std::string> known;
  for (const auto& l : rows) {
    std::error_code ec;
    if (fs::is_directory(layerDir(l.hash), ec)) {
      known.insert(std::string(kLayerPrefix) + l.hash);
    } else if (Status s = store_.deleteDepsLayer(l.hash); !s.isOk()) {
      spdlog::warn("dependency layer recovery: {}: {}", l.hash.substr(0, 12), s.toString());
    }
  }
  // Whatever else is there is a half-made layer.
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(layersDir(config_.stateDir), ec)) {
    if (known.count(e.path().filename())) continue;
    std::error_code rm;
    fs::remove_all(e.path(), rm);
    if (rm) spdlog::warn("dependency layer recovery: {}: {}", e.path().string(), rm.message());
  }
  return Status::ok();
}

Result<std::vector<std::string>> DepsLayers::collect(const std::string& actor) {
  QABOX_ASSIGN_OR_RETURN(auto layers, store_.listDepsLayers());
  std::vector<std::string> removed;
  for (const auto& l : layers) {
    std::lock_guard held(lockFor(l.hash));
    // Read under the hash's lock: a deploy that pinned it first keeps it.
    QABOX_ASSIGN_OR_RETURN(auto envs, store_.listEnvironments());
    QABOX_ASSIGN_OR_RETURN(auto images, store_.listImages());
    bool named = false, imageExists = false;
    for (const auto& e : envs) named = named || e.depsLayer == l.hash;
    for (const auto& im : images) {
      imageExists = imageExists || (im.name == l.image && im.version == l.imageVersion);
    }
    if (!collectable(l, named, pinned(l.hash), imageExists, time_.now(),
                     config_.deploy.depsMaxAge)) {
      continue;
    }
    std::error_code ec;
    fs::remove_all(layerDir(l.hash), ec);
    if (ec) return internalError("removing " + layerDir(l.hash) + ": " + ec.message());
    QABOX_RETURN_IF_ERROR(store_.deleteDepsLayer(l.hash));
    removed.push_back(l.hash);
    if (Status s = store_.addEvent(
            {0, time_.now(), "", "deps.collect", actor, "ok",
             l.hash.substr(0, 12) + " (" + l.image + " v" + std::to_string(l.imageVersion) + ")"});
        !s.isOk()) {
      spdlog::warn("dependency layer {}: recording its collection: {}", l.hash.substr(0, 12),
                   s.toString());
    }
  }
  return removed;
}

}  // namespace qabox
