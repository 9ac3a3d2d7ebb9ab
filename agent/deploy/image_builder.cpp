#include "deploy/image_builder.h"

#include <spdlog/spdlog.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "core/ticket.h"
#include "store/paths.h"
#include "sys/atomic_file.h"
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

ImageBuilder::ImageBuilder(const Config& config, Store& store, ProcessRunner& runner)
    : config_(config), store_(store), runner_(runner) {}

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

Result<ImageManifest> ImageBuilder::manifest(const std::string& name) const {
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

Result<std::vector<std::string>> ImageBuilder::lowerDirs(const std::string& name,
                                                         uint32_t version) {
  // TODO(layers): the parent's layers too.
  return std::vector<std::string>{paths::imagesLxcPath(config_.stateDir) + "/" +
                                  paths::imageContainer(name, version) + "/rootfs"};
}

Result<ImageVersion> ImageBuilder::build(const std::string& name, const std::string& actor,
                                         bool force) {
  (void)force;  // TODO(layers)
  QABOX_ASSIGN_OR_RETURN(ImageManifest m, manifest(name));
  std::lock_guard buildLock(lockFor(name));

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

  auto fail = [&](Status s) -> Status {
    std::error_code ec;
    fs::remove_all(dir, ec);
    recordBuildEnd(store_, opId, false, s.message(), actor, name + ": " + s.message());
    return s;
  };

  std::error_code ec;
  fs::create_directories(dir + "/rootfs", ec);
  if (ec) return fail(internalError("creating " + dir + ": " + ec.message()));
  // Whatever the agent's umask: the rootfs is the containers' "/".
  for (const auto& d : {dir, dir + "/rootfs"}) {
    fs::permissions(d, fs::perms(0755), ec);
    if (ec) return fail(internalError("chmod " + d + ": " + ec.message()));
  }

  std::string recipeDir = config_.imagesDir + "/" + name;
  ProcessSpec spec;
  // The agent's umask is 077; an image's files are the containers', made
  // with the usual one.
  spec.argv = {"/bin/sh", "-c", "umask 022 && exec /bin/sh \"$@\"", "provision",
               recipeDir + "/" + m.provision};
  spec.env = std::map<std::string, std::string>{
      {"PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
      {"ROOTFS", dir + "/rootfs"},
      {"IMAGE_DIR", recipeDir},
      {"IMAGE_NAME", name},
      {"IMAGE_VERSION", std::to_string(version)},
      {"LC_ALL", "C"}};
  spec.cwd = recipeDir;
  spec.timeout = std::chrono::minutes(30);
  auto r = runner_.run(spec);
  if (!r) return fail(r.status());
  if (!r->ok()) {
    return fail(failedPrecondition("image " + name + ": " + m.provision + " failed (exit " +
                                   std::to_string(r->exitCode) +
                                   "): " + lastLines(r->err + r->out, 5)));
  }
  if (config_.containers.unprivileged) {
    // Once per image version: every clone's lower layer is this rootfs.
    if (Status s = shiftOwnership(dir, config_.containers.idBase); !s.isOk()) return fail(s);
  }
  if (Status s = writeFileAtomically(dir + "/config", lxcConfig(container, dir, config_));
      !s.isOk()) {
    return fail(s);
  }

  ImageVersion iv;
  iv.name = name;
  iv.version = version;
  iv.builtAt = Clock::now();
  iv.current = true;
  iv.description = m.description;
  if (auto s = store_.putImage(iv); !s.isOk()) return fail(s);
  recordBuildEnd(store_, opId, true, "", actor, name + " v" + std::to_string(version));
  return iv;
}

Result<std::vector<ImageVersion>> ImageBuilder::remove(const std::string& name, uint32_t version,
                                                       const std::string& actor) {
  QABOX_RETURN_IF_ERROR(checkImageName(name));
  std::lock_guard buildLock(lockFor(name));
  QABOX_ASSIGN_OR_RETURN(auto images, store_.listImages());
  QABOX_ASSIGN_OR_RETURN(auto envs, store_.listEnvironments());
  std::set<uint32_t> used;
  for (const auto& e : envs) {
    if (e.spec.image == name) used.insert(e.imageVersion);
  }
  std::vector<ImageVersion> deleted;
  bool found = false;
  for (const auto& im : images) {
    if (im.name != name) continue;
    if (version != 0 && im.version != version) continue;
    found = true;
    if (used.count(im.version)) {
      if (version != 0) {
        return failedPrecondition("image " + name + " v" + std::to_string(version) +
                                  ": environments still use it; delete them first");
      }
      continue;
    }
    if (version == 0 && im.current) continue;
    std::error_code ec;
    fs::remove_all(
        paths::imagesLxcPath(config_.stateDir) + "/" + paths::imageContainer(name, im.version), ec);
    if (ec) return internalError("removing image " + name + ": " + ec.message());
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
  QABOX_ASSIGN_OR_RETURN(auto ops, store_.unfinishedOperations());
  for (const auto& op : ops) {
    if (op.kind != JournalKind::kImageBuild) continue;
    std::error_code ec;
    fs::remove_all(paths::imagesLxcPath(config_.stateDir) + "/" + op.container, ec);
    QABOX_RETURN_IF_ERROR(
        store_.finishOperation(op.id, JournalOutcome::kRolledBack, "agent restarted mid-build"));
  }
  // Directories no stored version names are leftovers too.
  QABOX_ASSIGN_OR_RETURN(auto images, store_.listImages());
  std::set<std::string> known;
  for (const auto& im : images) known.insert(paths::imageContainer(im.name, im.version));
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(paths::imagesLxcPath(config_.stateDir), ec)) {
    if (!known.count(e.path().filename())) fs::remove_all(e.path(), ec);
  }
  return Status::ok();
}

}  // namespace qabox
