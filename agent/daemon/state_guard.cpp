#include "daemon/state_guard.h"

#include <sys/file.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "lifecycle/env_record.h"
#include "store/paths.h"

namespace qabox {

namespace fs = std::filesystem;

Result<UniqueFd> lockStateDir(const std::string& stateDir) {
  const std::string path = paths::agentLock(stateDir);
  std::error_code ec;
  fs::create_directories(paths::runDir(stateDir), ec);
  if (ec) return failedPrecondition("state_dir: cannot create " + paths::runDir(stateDir));
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd) return failedPrecondition("state_dir: open " + path + ": " + std::strerror(errno));
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK) {
      return failedPrecondition("state_dir: lock " + path + ": " + std::strerror(errno));
    }
    return failedPrecondition("state_dir " + stateDir +
                              ": another qaboxd (an agent or `qaboxd --rebuild-state`) is "
                              "running on it (" +
                              path + " is held); stop it, or wait for it to finish, first");
  }
  return fd;
}

std::vector<std::string> containersIn(const std::string& stateDir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(paths::lxcPath(stateDir), ec)) {
    std::error_code isDir;
    if (e.is_directory(isDir) && !e.is_symlink(isDir) && fs::exists(e.path() / "config", isDir)) {
      out.push_back(e.path().filename().string());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> recordedContainers(const Config& config) {
  std::vector<std::string> out;
  for (const std::string& name : containersIn(config.stateDir)) {
    if (readEnvRecord(config.stateDir, name, config.network.subnet)) out.push_back(name);
  }
  return out;
}

namespace {

Status lostState(const Config& config, const std::string& what,
                 const std::vector<std::string>& containers) {
  std::string names;
  for (size_t i = 0; i < containers.size() && i < 5; ++i) {
    names += (i ? ", " : "") + containers[i];
  }
  if (containers.size() > 5) names += ", ...";
  return failedPrecondition(
      "state_dir " + config.stateDir + ": " + what + ", but " + paths::lxcPath(config.stateDir) +
      " holds " + std::to_string(containers.size()) + " containers (" + names +
      "); starting with an empty database would destroy every one of them. Rebuild the state "
      "from what each container carries about itself: `qaboxd --config FILE --rebuild-state`, "
      "then start the agent again");
}

}  // namespace

Status refuseLostDatabase(const Config& config) {
  const std::string db = paths::database(config.stateDir);
  struct stat st {};
  if (::lstat(db.c_str(), &st) == 0 || errno != ENOENT) return Status::ok();
  const auto containers = containersIn(config.stateDir);
  if (containers.empty()) return Status::ok();
  return lostState(config, db + " is missing", containers);
}

Status refuseEmptyDatabase(const Config& config, Store& store) {
  QABOX_ASSIGN_OR_RETURN(uint32_t rows, store.countEnvironments());
  if (rows > 0) return Status::ok();
  const auto recorded = recordedContainers(config);
  if (recorded.empty()) return Status::ok();
  return lostState(config, paths::database(config.stateDir) + " holds no environment", recorded);
}

}  // namespace qabox
