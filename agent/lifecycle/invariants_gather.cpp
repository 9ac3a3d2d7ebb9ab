// The invariant checker's gatherer: the store's tables, then the host's
// directories, mounts, bridge, firewall set and cgroups, as plain facts.
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "lifecycle/invariants.h"
#include "lifecycle/manager.h"
#include "proxy/router.h"
#include "runtime/bridge_rules.h"
#include "runtime/lxc_cgroups.h"
#include "store/paths.h"

namespace qabox {

namespace fs = std::filesystem;

namespace {

// The names in one of the agent's own directories, by lstat: a link there is
// listed as what it is, never followed.
std::vector<std::string> entriesOf(const std::string& dir, bool dirsOnly) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    struct stat st {};
    if (::lstat(e.path().c_str(), &st) != 0) continue;
    if (dirsOnly && !S_ISDIR(st.st_mode)) continue;
    out.push_back(e.path().filename());
  }
  return out;
}

bool isRegularFile(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

Status gatherStore(Store& store, InvariantFacts& f) {
  // The pool first: a claim moves a container from it to a row and the
  // journal, read after it, so it is seen in one or the other.
  QABOX_ASSIGN_OR_RETURN(f.pool, store.listPooled());
  QABOX_ASSIGN_OR_RETURN(f.rows, store.listEnvironments());
  QABOX_ASSIGN_OR_RETURN(f.leases, store.listLeases());
  QABOX_ASSIGN_OR_RETURN(f.unfinished, store.unfinishedOperations());
  QABOX_ASSIGN_OR_RETURN(auto named, store.journalContainers());
  f.journalContainers.insert(named.begin(), named.end());
  QABOX_ASSIGN_OR_RETURN(f.images, store.listImages());
  QABOX_ASSIGN_OR_RETURN(f.layers, store.listLayers());
  return Status::ok();
}

Status gatherContainers(ContainerRuntime& runtime, InvariantFacts& f) {
  QABOX_ASSIGN_OR_RETURN(auto names, runtime.list());
  for (const auto& name : entriesOf(f.lxcPath, true)) names.push_back(name);
  for (const auto& name : names) {
    if (f.containers.count(name)) continue;
    InvariantFacts::Container c;
    c.hasConfig = isRegularFile(f.lxcPath + "/" + name + "/config");
    if (c.hasConfig) {
      auto st = runtime.state(name);
      c.state = st ? *st : ContainerState::kOther;
    }
    f.containers[name] = c;
  }
  return Status::ok();
}

void gatherNetwork(const FactSources& s, InvariantFacts& f) {
  if (s.bridge != nullptr) {
    if (auto ports = s.bridge->ports(s.bridgeName)) f.bridgePorts = *ports;
  }
  if (s.nft) {
    if (auto listed = s.nft(bindingsListing(s.bridgeName))) f.nftBindings = parseBindings(*listed);
  }
}

std::string readAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

Result<InvariantFacts> gatherFacts(const FactSources& s) {
  if (s.store == nullptr || s.runtime == nullptr) {
    return invalidArgument("gatherFacts: a store and a runtime are needed");
  }
  InvariantFacts f;
  f.stateDir = s.stateDir;
  f.lxcPath = paths::lxcPath(s.stateDir);
  f.bridge = s.bridgeName;
  f.inAgent = s.routes != nullptr;
  f.inFlight = s.inFlight;
  QABOX_RETURN_IF_ERROR(gatherStore(*s.store, f));
  QABOX_RETURN_IF_ERROR(gatherContainers(*s.runtime, f));
  f.imageDirs = entriesOf(paths::imagesLxcPath(s.stateDir), true);
  f.layerDirs = entriesOf(s.stateDir + "/layers", false);
  f.logDirs = entriesOf(s.stateDir + "/logs", false);
  f.workEntries = entriesOf(paths::workDir(s.stateDir), false);
  f.mounts = mountsBeneath(readAll(s.mountinfo), s.stateDir);
  gatherNetwork(s, f);
  if (s.routes != nullptr) {
    std::vector<std::string> slugs;
    for (const auto& r : s.routes->all()) {
      // Another host's (a cluster's remote route) is not this host's to own.
      if (r.via.empty()) slugs.push_back(r.slug);
    }
    f.routes = slugs;
  }
  // One that holds a process runs somewhere (another agent may have a
  // container of the same name): only empty ones are left behind.
  for (const auto& dir : lxcCgroupDirs(s.cgroupRoot)) {
    if (cgroupTreeEmpty(dir)) f.cgroupDirs.push_back(dir);
  }
  return f;
}

Result<EnvironmentManager::Checked> EnvironmentManager::checkInvariants() {
  FactSources sources;
  sources.stateDir = config_.stateDir;
  sources.bridgeName = config_.network.bridge;
  sources.store = &store_;
  sources.runtime = &runtime_;
  sources.bridge = &bridge_;
  sources.nft = nft_;
  sources.routes = &routes_;
  // The facts are read one after another while calls go on: every call in
  // flight at any moment of the reading owns what it made.
  watchCalls();
  auto facts = gatherFacts(sources);
  const auto calls = unwatchCalls();
  if (!facts) return facts.status();
  facts->inFlight = calls;
  Checked out;
  out.inFlight = calls.size();
  out.report = findViolations(*facts, kMaxViolationsListed);
  return out;
}

}  // namespace qabox
