#include "daemon/host_setup.h"

#include <pwd.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "runtime/data_pool.h"
#include "runtime/lxc_runtime.h"
#include "store/paths.h"
#include "sys/idshift.h"
#include "sys/safe_path.h"
#include "sys/subid.h"
#include "sys/traverse.h"

namespace qabox {

namespace fs = std::filesystem;

namespace {

// The state dir is the agent's alone (the umask is 077), except the path
// down to the containers' files: an unprivileged container's root is host
// uid containers.id_base, and it must be able to enter state_dir, lxc/ and
// images/ to reach its rootfs and overlay (0711: enter, never list). The
// git mirrors (private source), the deploy logs (hook output), the database
// and the scratch space stay 0700.
Status prepareDirs(const Config& c) {
  std::error_code ec;
  // Privileged containers run as host root: nothing needs to be shared.
  const mode_t shared = c.containers.unprivileged ? 0711 : 0700;
  const std::vector<std::pair<std::string, mode_t>> dirs = {
      {c.stateDir, shared},
      {paths::lxcPath(c.stateDir), shared},
      {paths::imagesLxcPath(c.stateDir), shared},
      {c.stateDir + "/git", 0700},
      {paths::workDir(c.stateDir), 0700},
      {c.stateDir + "/logs", 0700},
      {paths::runDir(c.stateDir), 0700}};
  for (const auto& [dir, mode] : dirs) {
    fs::create_directories(dir, ec);
    if (ec) return failedPrecondition("state_dir: cannot create " + dir + ": " + ec.message());
    // Also what an earlier version left more open.
    if (::chmod(dir.c_str(), mode) != 0) {
      return failedPrecondition("state_dir: cannot chmod " + dir + ": " + std::strerror(errno));
    }
  }
  for (const char* suffix : {"", "-wal", "-shm"}) {
    const std::string file = paths::database(c.stateDir) + suffix;
    if (::chmod(file.c_str(), 0600) != 0 && errno != ENOENT) {
      spdlog::warn("state_dir: chmod 0600 {}: {}", file, std::strerror(errno));
    }
  }
  // Scratch from an earlier run is never needed again.
  for (const auto& e : fs::directory_iterator(paths::workDir(c.stateDir), ec)) {
    std::error_code removed;
    fs::remove_all(e.path(), removed);
    if (removed)
      spdlog::warn("state_dir: removing old scratch {}: {}", e.path().string(), removed.message());
  }
  return Status::ok();
}

// With Debian's uidmap installed, liblxc maps a container's ids through
// newuidmap and newgidmap, which map only what /etc/subuid and /etc/subgid
// give the caller: the agent's user (root) must hold its containers' ranges
// there. Reserving them also keeps useradd from handing them to a login
// user. Where shadow's files are not in use, nothing reads them: they are
// left alone.
Status reserveIdRanges(const Config& c) {
  const bool shadow = shadowMapsIds();
  if (!shadow && !fs::exists("/etc/subuid") && !fs::exists("/etc/subgid")) return Status::ok();
  std::vector<std::string> owners;
  if (const passwd* pw = getpwuid(geteuid())) owners.emplace_back(pw->pw_name);
  owners.push_back(std::to_string(geteuid()));
  auto reserve = [&](const IdRange& range) -> Status {
    for (const char* file : {"/etc/subuid", "/etc/subgid"}) {
      QABOX_RETURN_IF_ERROR(reserveSubIds(file, owners, {range}));
    }
    return Status::ok();
  };
  // The images' ids, then one range per environment when isolated.
  const IdRange own{c.containers.idBase,
                    kMappedIds * (c.containers.isolatedIds ? c.limits.maxEnvironments + 1ULL : 1)};
  if (c.containers.unprivileged) {
    if (Status s = reserve(own); !s.isOk()) {
      if (shadow) return s.withContext("containers.id_base");
      spdlog::warn("containers.id_base: {}", s.message());
    }
  }
  // Image versions (and their clones) keep the base they were built with.
  std::map<uint32_t, std::string> older;
  std::error_code ec;
  for (const auto& lxcpath : {paths::imagesLxcPath(c.stateDir), paths::lxcPath(c.stateDir)}) {
    for (const auto& e : fs::directory_iterator(lxcpath, ec)) {
      std::ifstream in(e.path() / "config");
      std::stringstream text;
      text << in.rdbuf();
      auto base = mappedRootOf(text.str());
      bool inOwn = c.containers.unprivileged && base && *base >= own.start &&
                   *base + uint64_t{kMappedIds} <= own.end();
      if (base && !inOwn) {
        older.emplace(*base, e.path().filename().string());
      }
    }
  }
  for (const auto& [base, name] : older) {
    if (Status s = reserve({base, kMappedIds}); !s.isOk()) {
      spdlog::warn(
          "{} maps its ids from {}: {}{}", name, base, s.message(),
          shadow ? " (it cannot start while newuidmap is in use: build its image again)" : "");
    }
  }
  return Status::ok();
}

// Rewritten at every start, so a changed allow_nested_userns (or a newer
// agent's list) applies from each container's next start.
Status writeSeccompProfile(const Config& c) {
  const std::string path = paths::seccompProfile(c.stateDir);
  const fs::path p(path);
  if (Status s = writeFileBeneath(p.parent_path(), p.filename().string(),
                                  seccompProfile(c.containers.allowNestedUserns), 0600);
      !s.isOk()) {
    return s.withContext("state_dir: writing the containers' seccomp profile");
  }
  return Status::ok();
}

// An unprivileged container's root (host uid containers.id_base) must be
// able to enter every directory down to lxc/ and images/; if it cannot,
// every deploy would fail at start, far from the cause. Checked on each
// start, so a changed id_base is checked too.
Status checkContainersCanReach(const Config& c, const std::string& path) {
  if (!c.containers.unprivileged) return Status::ok();
  const uid_t root = c.containers.idBase;
  QABOX_ASSIGN_OR_RETURN(auto blocked, firstUnsearchableDir(path, root, root));
  if (!blocked) return Status::ok();
  struct stat st {};
  std::string what;
  if (::stat(blocked->c_str(), &st) == 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
    what = " (mode " + std::string(mode) + ", owner uid " + std::to_string(st.st_uid) + ")";
  }
  return failedPrecondition(
      "state_dir " + c.stateDir + ": the containers' root, host uid " + std::to_string(root) +
      " (containers.id_base), cannot enter " + *blocked + what +
      ", so no unprivileged container could start; let others enter it (chmod o+x " + *blocked +
      ") or choose a state_dir whose parents others may enter");
}

}  // namespace

Status prepareHost(const Config& config) {
  // Before anything is created: a state_dir the containers cannot reach
  // leaves nothing behind. Its parents only: the state dir itself is the
  // agent's, and prepareDirs gives it its mode (checked with lxc/ below).
  fs::path stateRoot = fs::path(config.stateDir).lexically_normal();
  if (!stateRoot.has_filename()) stateRoot = stateRoot.parent_path();  // "/var/lib/qabox/"
  QABOX_RETURN_IF_ERROR(checkContainersCanReach(config, stateRoot.parent_path()));
  QABOX_RETURN_IF_ERROR(prepareDirs(config));
  QABOX_RETURN_IF_ERROR(reserveIdRanges(config));
  QABOX_RETURN_IF_ERROR(writeSeccompProfile(config));
  for (const auto& dir : {paths::lxcPath(config.stateDir), paths::imagesLxcPath(config.stateDir)}) {
    QABOX_RETURN_IF_ERROR(checkContainersCanReach(config, dir));
  }
  // A data pool that is no btrfs (or has no quota) fails here, not at the
  // first deploy with a dataset.
  if (!config.storage.dataPool.empty()) {
    QABOX_RETURN_IF_ERROR(preparePool(config.storage.dataPool));
    spdlog::info("data pool {}: btrfs, quota on", config.storage.dataPool);
  }
  return Status::ok();
}

}  // namespace qabox
