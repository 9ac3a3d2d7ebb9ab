#include "deploy/image_builder.h"

#include <spdlog/spdlog.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "core/failpoint.h"
#include "core/ticket.h"
#include "deploy/image_recipe.h"
#include "deploy/image_record.h"
#include "store/paths.h"
#include "sys/atomic_file.h"
#include "sys/disk_usage.h"
#include "sys/idshift.h"

namespace qabox {
namespace fs = std::filesystem;
namespace {

// The end of a build in the journal (`detail` for an error) and the events
// (`what`). A row the store refuses is said in the log, and does not change
// the build's answer.
void recordBuildEnd(Store& store, int64_t opId, bool ok, const std::string& detail,
                    const std::string& actor, const std::string& what) {
  if (Status s =
          store.finishOperation(opId, ok ? JournalOutcome::kOk : JournalOutcome::kError, detail);
      !s.isOk()) {
    spdlog::warn("image build {}: closing its journal entry: {}", what, s.toString());
  }
  if (Status s =
          store.addEvent({0, Clock::now(), "", "image.build", actor, ok ? "ok" : "error", what});
      !s.isOk()) {
    spdlog::warn("image build {}: recording its event: {}", what, s.toString());
  }
}

// Every clone reads this config: replaced whole and durably.
Status writeFileAtomically(const std::string& path, const std::string& content) {
  return qabox::writeFileAtomically(path, content, 0644);
}

std::string lxcConfig(const std::string& name, const std::string& dir, const Config& config) {
  std::ostringstream c;
  c << "# qabox base image " << name << ": clones read rootfs/ as their lower layer.\n"
    << "lxc.uts.name = " << name << "\n"
    << "lxc.rootfs.path = dir:" << dir << "/rootfs\n"
    << "lxc.init.cmd = /sbin/init\n"
    << "lxc.mount.auto = proc:mixed sys:ro cgroup:mixed\n"
    << "lxc.autodev = 1\n"
    << "lxc.tty.max = 0\n"
    << "lxc.pty.max = 16\n"
    << "lxc.signal.halt = SIGTERM\n"
    << "lxc.apparmor.profile = unconfined\n"
    // What an app needs and nothing more (the set container engines grant
    // by default): no sys_admin (mounts), no net_admin, no module loading,
    // raw I/O, clock, reboot or MAC policy changes.
    << "lxc.cap.keep = chown dac_override fowner fsetid kill setgid setuid setpcap setfcap "
       "net_bind_service net_raw sys_chroot mknod audit_write\n";
  // The standard devices only: null, zero, full, random, urandom, tty,
  // console, ptmx and ptys; any other device node is unusable even if made.
  const char* devices = access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0
                            ? "lxc.cgroup2.devices."
                            : "lxc.cgroup.devices.";
  c << devices << "deny = a\n";
  for (const char* rule : {"c *:* m", "b *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm",
                           "c 1:9 rwm", "c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm"}) {
    c << devices << "allow = " << rule << "\n";
  }
  if (config.containers.unprivileged) {
    // Root inside is id_base outside; the rootfs was given to those ids.
    // The clones' overlay is mounted inside their user namespace, where
    // only user.overlay.* xattrs (opaque directories) can be read.
    c << "lxc.idmap = u 0 " << config.containers.idBase << " " << kMappedIds << "\n"
      << "lxc.idmap = g 0 " << config.containers.idBase << " " << kMappedIds << "\n"
      << "lxc.rootfs.options = userxattr\n";
  }
  c << "lxc.net.0.type = veth\n"
    << "lxc.net.0.flags = up\n"
    << "lxc.net.0.link = " << config.network.bridge << "\n"
    << "lxc.net.0.hwaddr = 00:16:3e:xx:xx:xx\n"
    << "lxc.net.0.name = eth0\n";
  return c.str();
}

}  // namespace

// What one build makes: the recipe's own manifest, the parent version it
// is built on (none for a base image) and its hash.
struct ImageBuilder::Plan {
  ImageManifest own;
  std::optional<ImageVersion> parent;
  std::string hash;
};

ImageBuilder::ImageBuilder(const Config& config, Store& store, ProcessRunner& runner,
                           LayerMounter& layers, std::string initPath)
    : config_(config),
      store_(store),
      runner_(runner),
      layers_(layers),
      initPath_(std::move(initPath)) {}

std::mutex& ImageBuilder::lockFor(const std::string& name) {
  std::lock_guard l(mu_);
  return locks_[name];
}

std::vector<std::string> ImageBuilder::recipes() const {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(config_.imagesDir, ec)) {
    if (fs::exists(e.path() / "image.toml")) out.push_back(e.path().filename());
  }
  std::sort(out.begin(), out.end());
  return out;
}

Result<ImageManifest> ImageBuilder::ownManifest(const std::string& name) const {
  QABOX_RETURN_IF_ERROR(checkImageName(name));
  std::string path = config_.imagesDir + "/" + name + "/image.toml";
  std::ifstream in(path);
  if (!in) {
    return notFound("image " + name + ": no recipe at " + path +
                    " (images_dir holds one folder per image)");
  }
  std::stringstream ss;
  ss << in.rdbuf();
  auto m = parseImageManifest(ss.str(), name);
  if (!m) return m.status().withContext(path);
  return m;
}

Result<ImageManifest> ImageBuilder::manifest(const std::string& name) const {
  QABOX_ASSIGN_OR_RETURN(
      auto chain, recipeChain(name, [this](const std::string& n) { return ownManifest(n); }));
  ImageManifest merged = chain.back();
  for (size_t i = chain.size() - 1; i-- > 0;) merged = inheritManifest(chain[i], merged);
  return merged;
}

Result<std::vector<std::string>> ImageBuilder::lowerDirs(const std::string& name,
                                                         uint32_t version) {
  QABOX_ASSIGN_OR_RETURN(auto images, store_.listImages());
  std::vector<std::string> out;
  std::string n = name;
  uint32_t v = version;
  // A chain is as long as the recipes made it; a stored loop is refused.
  for (size_t depth = 0; !n.empty(); ++depth) {
    auto it = std::find_if(images.begin(), images.end(),
                           [&](const ImageVersion& im) { return im.name == n && im.version == v; });
    if (it == images.end()) {
      return notFound("image " + n + " v" + std::to_string(v) + ": no such image version" +
                      (n == name ? "" : " (" + name + " is built on it)"));
    }
    if (depth >= 32) return failedPrecondition("image " + name + ": its layers loop");
    out.push_back(paths::imageRootfs(config_.stateDir, n, v));
    n = it->parent;
    v = it->parentVersion;
  }
  return out;
}

Result<ImageVersion> ImageBuilder::build(const std::string& name, const std::string& actor,
                                         bool force) {
  QABOX_RETURN_IF_ERROR(refuseWhenDiskFull(config_.stateDir, "image " + name));
  QABOX_ASSIGN_OR_RETURN(
      auto chain, recipeChain(name, [this](const std::string& n) { return ownManifest(n); }));
  Plan plan;
  plan.own = chain.front();
  if (!plan.own.from.empty()) {
    QABOX_ASSIGN_OR_RETURN(auto parent, store_.currentImage(plan.own.from));
    if (!parent) {
      auto built = build(plan.own.from, actor, false);
      if (!built) return built.status().withContext("image " + name + ": building its parent");
    }
  }
  // The chain's locks, base first: no version this build stands on goes
  // (remove) or changes (build) under it.
  std::vector<std::unique_lock<std::mutex>> held;
  for (auto it = chain.rbegin(); it != chain.rend(); ++it) held.emplace_back(lockFor(it->name));
  if (!plan.own.from.empty()) {
    QABOX_ASSIGN_OR_RETURN(plan.parent, store_.currentImage(plan.own.from));
    if (!plan.parent) {
      return failedPrecondition("image " + name + ": its parent " + plan.own.from +
                                " has no version");
    }
  }
  RecipeInputs in;
  in.dir = config_.imagesDir + "/" + name;
  // Shell every recipe may source: a change there is a change of recipe.
  if (fs::is_directory(config_.imagesDir + "/lib")) in.shared = {config_.imagesDir + "/lib"};
  if (plan.parent) {
    in.parent = plan.parent->name;
    in.parentVersion = plan.parent->version;
  }
  in.packages = plan.own.packages;
  if (plan.own.init == "qabox-init") {
    if (initPath_.empty()) {
      return failedPrecondition("image " + name +
                                ": init = \"qabox-init\", but qabox-init is not installed beside "
                                "qaboxd");
    }
    in.initBinary = initPath_;
  }
  auto hash = recipeHash(in);
  if (!hash) return hash.status().withContext("image " + name);
  plan.hash = *hash;
  QABOX_ASSIGN_OR_RETURN(auto current, store_.currentImage(name));
  if (!force && current && current->recipeHash == plan.hash) {
    current->cached = true;
    if (Status s = store_.addEvent(
            {0, Clock::now(), "", "image.build", actor, "ok",
             name + " v" + std::to_string(current->version) + ": cached, recipe unchanged"});
        !s.isOk()) {
      spdlog::warn("image build {}: recording its event: {}", name, s.toString());
    }
    return *current;
  }
  return buildVersion(plan, actor);
}

Result<ImageVersion> ImageBuilder::buildVersion(const Plan& plan, const std::string& actor) {
  const std::string& name = plan.own.name;
  QABOX_ASSIGN_OR_RETURN(auto existing, store_.listImages());
  uint32_t version = 1;
  for (const auto& im : existing) {
    if (im.name == name) version = std::max(version, im.version + 1);
  }
  std::string imagesPath = paths::imagesLxcPath(config_.stateDir);
  // A directory left by a crashed build must not be reused.
  while (fs::exists(imagesPath + "/" + paths::imageContainer(name, version))) ++version;
  std::string container = paths::imageContainer(name, version);
  std::string dir = imagesPath + "/" + container;

  Operation op;
  op.slug = "";
  op.kind = JournalKind::kImageBuild;
  op.container = container;
  op.startedAt = Clock::now();
  QABOX_ASSIGN_OR_RETURN(int64_t opId, store_.beginOperation(op));
  QABOX_FAILPOINT("image.build.begun");

  auto fail = [&](Status s) -> Status {
    if (Status r = removeBuildDir(dir); !r.isOk()) {
      spdlog::warn("image build {}: cleaning up {}: {}", name, dir, r.toString());
    }
    recordBuildEnd(store_, opId, false, s.message(), actor, name + ": " + s.message());
    return s;
  };
  if (Status s = provision(plan, dir, version); !s.isOk()) return fail(s);
  QABOX_FAILPOINT("image.build.provisioned");
  if (Status s = writeFileAtomically(dir + "/config", lxcConfig(container, dir, config_));
      !s.isOk()) {
    return fail(s);
  }
  QABOX_FAILPOINT("image.build.configured");

  ImageVersion iv;
  iv.name = name;
  iv.version = version;
  iv.builtAt = Clock::now();
  iv.current = true;
  iv.description = plan.own.description;
  if (plan.parent) {
    iv.parent = plan.parent->name;
    iv.parentVersion = plan.parent->version;
  }
  iv.recipeHash = plan.hash;
  // Before the row: a version the store knows always carries its record.
  if (Status s = writeFileAtomically(imageRecordPath(dir), imageRecordJson(iv)); !s.isOk()) {
    return fail(s);
  }
  if (auto s = store_.putImage(iv); !s.isOk()) return fail(s);
  QABOX_FAILPOINT("image.build.recorded");
  recordBuildEnd(store_, opId, true, "", actor, name + " v" + std::to_string(version));
  QABOX_FAILPOINT("image.build.finished");
  return iv;
}

Status ImageBuilder::provision(const Plan& plan, const std::string& dir, uint32_t version) {
  std::error_code ec;
  fs::create_directories(dir + "/rootfs", ec);
  if (ec) return internalError("creating " + dir + ": " + ec.message());
  // Whatever the agent's umask: the rootfs is the containers' "/".
  for (const auto& d : {dir, dir + "/rootfs"}) {
    fs::permissions(d, fs::perms(0755), ec);
    if (ec) return internalError("chmod " + d + ": " + ec.message());
  }
  QABOX_FAILPOINT("image.build.provision.before");
  if (plan.parent) {
    QABOX_RETURN_IF_ERROR(provisionLayer(plan, dir, version));
  } else {
    QABOX_RETURN_IF_ERROR(runProvision(plan, dir + "/rootfs", version));
  }
  QABOX_FAILPOINT("image.build.provision.after");
  if (config_.containers.unprivileged) {
    // Once per image version: every clone's lower layer is this rootfs. A
    // layer's whiteouts (0:0 devices) and opaque folders (xattrs) keep
    // what they are: chown changes neither.
    QABOX_RETURN_IF_ERROR(shiftOwnership(dir + "/rootfs", config_.containers.idBase));
  }
  return Status::ok();
}

// The parent's layers as an overlay at <dir>/build, this version's layer
// (<dir>/rootfs) its upper: provision writes there as into a whole rootfs.
Status ImageBuilder::provisionLayer(const Plan& plan, const std::string& dir, uint32_t version) {
  QABOX_ASSIGN_OR_RETURN(auto lowers, lowerDirs(plan.parent->name, plan.parent->version));
  LayerMount mount;
  mount.merged = dir + "/build";
  mount.upper = dir + "/rootfs";
  mount.work = dir + "/work";
  mount.lowers = std::move(lowers);
  if (config_.containers.unprivileged) mount.idBase = config_.containers.idBase;
  for (const auto& d : {mount.merged, mount.work}) {
    std::error_code ec;
    fs::create_directories(d, ec);
    if (ec) return internalError("creating " + d + ": " + ec.message());
  }
  QABOX_RETURN_IF_ERROR(layers_.mountLayers(mount));
  Status ran = runProvision(plan, mount.merged, version);
  Status unmounted = layers_.unmountLayers(mount.merged);
  QABOX_RETURN_IF_ERROR(ran);
  QABOX_RETURN_IF_ERROR(unmounted);
  for (const auto& d : {mount.merged, mount.work}) {
    std::error_code ec;
    fs::remove_all(d, ec);
    if (ec) return internalError("removing " + d + ": " + ec.message());
  }
  return Status::ok();
}

Status ImageBuilder::runProvision(const Plan& plan, const std::string& rootfs, uint32_t version) {
  const ImageManifest& m = plan.own;
  std::string recipeDir = config_.imagesDir + "/" + m.name;
  std::string packages;
  for (const auto& p : m.packages) packages += (packages.empty() ? "" : " ") + p;
  ProcessSpec spec;
  // The agent's umask is 077; an image's files are the containers', made
  // with the usual one.
  spec.argv = {"/bin/sh", "-c", "umask 022 && exec /bin/sh \"$@\"", "provision",
               recipeDir + "/" + m.provision};
  spec.env = std::map<std::string, std::string>{
      {"PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
      {"ROOTFS", rootfs},
      {"IMAGE_DIR", recipeDir},
      {"IMAGES_DIR", config_.imagesDir},
      {"IMAGE_NAME", m.name},
      {"IMAGE_VERSION", std::to_string(version)},
      {"QABOX_PACKAGES", packages},
      {"QABOX_INIT", initPath_},
      {"LC_ALL", "C"}};
  spec.cwd = recipeDir;
  spec.timeout = std::chrono::minutes(30);
  auto r = runner_.run(spec);
  if (!r) return r.status();
  if (!r->ok()) {
    return failedPrecondition("image " + m.name + ": " + m.provision + " failed (exit " +
                              std::to_string(r->exitCode) + "): " + lastLines(r->err + r->out, 5));
  }
  return Status::ok();
}

Status ImageBuilder::removeBuildDir(const std::string& dir) {
  // Never remove through a mounted overlay: that would reach the layers.
  if (fs::exists(dir + "/build")) QABOX_RETURN_IF_ERROR(layers_.unmountLayers(dir + "/build"));
  std::error_code ec;
  fs::remove_all(dir, ec);
  if (ec) return internalError("removing " + dir + ": " + ec.message());
  return Status::ok();
}

Result<std::vector<ImageVersion>> ImageBuilder::remove(const std::string& name, uint32_t version,
                                                       const std::string& actor) {
  QABOX_RETURN_IF_ERROR(checkImageName(name));
  std::lock_guard buildLock(lockFor(name));
  QABOX_ASSIGN_OR_RETURN(auto images, store_.listImages());
  QABOX_ASSIGN_OR_RETURN(auto envs, store_.listEnvironments());
  // What each version holds up: environments cloned from it, and versions
  // built on it (their layers lie over its own).
  std::map<uint32_t, std::string> used;
  for (const auto& e : envs) {
    if (e.spec.image == name) used.emplace(e.imageVersion, "environments still use it");
  }
  QABOX_ASSIGN_OR_RETURN(auto pooled, store_.listPooled());
  for (const auto& p : pooled) {
    if (p.image == name) {
      used.emplace(p.imageVersion,
                   "the warm pool holds containers of it (set pool.images." + name +
                       " = 0 and restart the agent, or build a newer version: the pool lets "
                       "go of a version once it is not current)");
    }
  }
  for (const auto& im : images) {
    if (im.parent == name) {
      used.emplace(im.parentVersion,
                   "image " + im.name + " v" + std::to_string(im.version) + " is built on it");
    }
  }
  std::vector<ImageVersion> deleted;
  bool found = false;
  for (const auto& im : images) {
    if (im.name != name) continue;
    if (version != 0 && im.version != version) continue;
    found = true;
    if (auto u = used.find(im.version); u != used.end()) {
      if (version != 0) {
        return failedPrecondition("image " + name + " v" + std::to_string(version) + ": " +
                                  u->second + "; delete them first");
      }
      continue;
    }
    if (version == 0 && im.current) continue;
    QABOX_RETURN_IF_ERROR(removeBuildDir(paths::imagesLxcPath(config_.stateDir) + "/" +
                                         paths::imageContainer(name, im.version)));
    QABOX_RETURN_IF_ERROR(store_.deleteImage(name, im.version));
    deleted.push_back(im);
    if (Status s = store_.addEvent({0, Clock::now(), "", "image.delete", actor, "ok",
                                    name + " v" + std::to_string(im.version)});
        !s.isOk()) {
      spdlog::warn("image delete {}: recording its event: {}", name, s.toString());
    }
  }
  if (!found) {
    return notFound("image " + name + (version ? " v" + std::to_string(version) : "") +
                    ": no such image version");
  }
  return deleted;
}

Status ImageBuilder::recover() {
  const std::string imagesPath = paths::imagesLxcPath(config_.stateDir);
  QABOX_ASSIGN_OR_RETURN(auto ops, store_.unfinishedOperations());
  QABOX_ASSIGN_OR_RETURN(auto recorded, store_.listImages());
  std::set<std::string> stored;
  for (const auto& im : recorded) stored.insert(paths::imageContainer(im.name, im.version));
  for (const auto& op : ops) {
    if (op.kind != JournalKind::kImageBuild) continue;
    if (stored.count(op.container)) {
      // Its version was recorded (the agent died before closing the entry):
      // the build is done, and removing its directory would leave a current
      // version nothing can be cloned from.
      QABOX_RETURN_IF_ERROR(store_.finishOperation(op.id, JournalOutcome::kOk,
                                                   "recorded before the agent restarted"));
      continue;
    }
    // A build's overlay is unmounted before its directory goes. The row
    // names one directory of the images lxcpath, never the lxcpath itself.
    if (!op.container.empty() && op.container.find('/') == std::string::npos &&
        op.container != "." && op.container != "..") {
      QABOX_RETURN_IF_ERROR(removeBuildDir(imagesPath + "/" + op.container));
    } else {
      spdlog::warn("image recovery: journal entry {} names no image directory (\"{}\")", op.id,
                   op.container);
    }
    QABOX_RETURN_IF_ERROR(
        store_.finishOperation(op.id, JournalOutcome::kRolledBack, "agent restarted mid-build"));
  }
  // Directories no stored version names are leftovers too.
  QABOX_ASSIGN_OR_RETURN(auto images, store_.listImages());
  std::set<std::string> known;
  for (const auto& im : images) known.insert(paths::imageContainer(im.name, im.version));
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(imagesPath, ec)) {
    if (known.count(e.path().filename())) continue;
    if (Status s = removeBuildDir(e.path()); !s.isOk()) {
      spdlog::warn("image recovery: leftover {}: {}", e.path().string(), s.toString());
    }
  }
  return Status::ok();
}

std::string defaultInitPath() {
  std::error_code ec;
  auto self = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return "";
  if (auto beside = self.parent_path() / "qabox-init"; fs::exists(beside)) return beside;
  // In the build tree qabox-init sits in agent/init.
  for (auto dir = self.parent_path(); dir != dir.root_path(); dir = dir.parent_path()) {
    if (auto inBuild = dir / "agent/init/qabox-init"; fs::exists(inBuild)) return inBuild;
  }
  if (auto installed = fs::path(QABOX_LIBEXEC_DIR) / "qabox-init"; fs::exists(installed, ec)) {
    return installed;
  }
  return "";
}

}  // namespace qabox
