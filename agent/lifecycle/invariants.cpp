// The invariant checker: the pure rules (findViolations, tested as a table
// in tests/unit/lifecycle/invariants_test.cpp) and the gatherer.
#include "lifecycle/invariants.h"

#include <algorithm>
#include <limits>
#include <regex>
#include <sstream>

#include "proxy/router.h"
#include "runtime/lxc_cgroups.h"
#include "store/paths.h"

namespace qabox {

namespace {

bool isBuild(JournalKind k) {
  return k == JournalKind::kImageBuild || k == JournalKind::kDepsBuild ||
         k == JournalKind::kDataBuild;
}

bool startsWith(const std::string& s, const std::string& prefix) {
  return s.size() >= prefix.size() && s.compare(0, prefix.size(), prefix) == 0;
}

// Who owns what, from the rows and (inside the agent) the calls in flight.
class Owners {
 public:
  explicit Owners(const InvariantFacts& f) : f_(f) {
    for (const auto& r : f.rows) {
      slugs_.insert(r.slug);
      if (!r.container.empty()) rowContainers_.insert(r.container);
    }
    for (const auto& [slug, at] : f.inFlight) {
      if (!oldest_ || at < *oldest_) oldest_ = at;
    }
    for (const auto& op : f.unfinished) {
      if (!live(op)) continue;
      anyLiveOp_ = true;
      if (!op.container.empty()) liveContainers_.insert(op.container);
      if (isBuild(op.kind)) liveBuild_ = true;
    }
    // The pool's are the agent's as a live operation's are: no row, a
    // lease, a veth and a binding of their own.
    // A filling one is only while the agent runs: outside it, what a crash
    // left (the next start removes it), reported by checkPool.
    for (const auto& p : f.pool) {
      if (p.state == PoolState::kReady || f.inAgent) liveContainers_.insert(p.container);
    }
    known_ = rowContainers_;
    known_.insert(f.journalContainers.begin(), f.journalContainers.end());
    for (const auto& [name, c] : f.containers) known_.insert(name);
  }

  // An open journal entry a call in flight is working on. Builds (images,
  // layers) run on threads of their own, outside any ticket's call: inside
  // the agent they are taken as in flight while open.
  bool live(const Operation& op) const {
    if (!f_.inAgent) return false;
    if (isBuild(op.kind) || f_.inFlight.count(op.slug) > 0) return true;
    return oldest_ && op.startedAt >= *oldest_;
  }
  bool inFlight(const std::string& slug) const { return f_.inAgent && f_.inFlight.count(slug) > 0; }
  // qabox-<slug> and its redeploys' qabox-<slug>_<n>, while <slug> is in flight.
  bool claimedInFlight(const std::string& container) const {
    if (!f_.inAgent) return false;
    for (const auto& [slug, at] : f_.inFlight) {
      const std::string base = containerNameFor(slug);
      if (container == base || startsWith(container, base + "_")) return true;
    }
    return false;
  }
  bool owns(const std::string& container) const {
    return rowContainers_.count(container) > 0 || liveContainers_.count(container) > 0 ||
           claimedInFlight(container);
  }
  bool hasRow(const std::string& slug) const { return slugs_.count(slug) > 0; }
  bool anyLiveOp() const { return anyLiveOp_ || (f_.inAgent && !f_.inFlight.empty()); }
  bool liveBuild() const { return liveBuild_; }
  bool liveContainer(const std::string& name) const { return liveContainers_.count(name) > 0; }
  const std::set<std::string>& known() const { return known_; }
  ContainerState stateOf(const std::string& container) const {
    auto it = f_.containers.find(container);
    return it == f_.containers.end() ? ContainerState::kMissing : it->second.state;
  }

 private:
  const InvariantFacts& f_;
  std::set<std::string> slugs_, rowContainers_, liveContainers_, known_;
  std::optional<TimePoint> oldest_;
  bool anyLiveOp_ = false;
  bool liveBuild_ = false;
};

// What the checks find: every one counted by kind, the first `cap` kept.
class Out {
 public:
  Out(ViolationReport& r, size_t cap) : r_(r), cap_(cap) {}
  void push_back(Violation v) {
    ++r_.total;
    ++r_.totals[v.kind];
    if (r_.listed.size() < cap_) r_.listed.push_back(std::move(v));
  }

 private:
  ViolationReport& r_;
  size_t cap_;
};

void checkContainers(const InvariantFacts& f, const Owners& o, Out& out) {
  for (const auto& [name, c] : f.containers) {
    if (o.owns(name)) continue;
    if (c.hasConfig) {
      out.push_back({"container", name, "no row owns it"});
    } else {
      out.push_back(
          {"overlay", "lxc/" + name, "a directory without a container config, no row owns it"});
    }
  }
}

bool missingExplained(const Environment& r) {
  return r.state == EnvState::kBroken ||
         (r.state == EnvState::kFailed && r.message.find("is gone") != std::string::npos);
}

void checkRows(const InvariantFacts& f, const Owners& o, Out& out) {
  std::set<std::pair<std::string, std::string>> leased;  // (ip, owner)
  for (const auto& l : f.leases) leased.emplace(l.ip, l.owner);
  std::map<std::string, std::vector<std::string>> byIp;
  for (const auto& r : f.rows) {
    const std::string state(stateName(r.state));
    if (!r.ip.empty()) byIp[r.ip].push_back(r.slug);
    if (o.inFlight(r.slug)) continue;
    if (inOperation(r.state)) {
      out.push_back({"row", r.slug, "state " + state + ", but no operation is in flight"});
    }
    auto c = f.containers.find(r.container);
    const bool missing = c == f.containers.end() || !c->second.hasConfig;
    if (missing && !missingExplained(r)) {
      out.push_back(
          {"row", r.slug, "container " + r.container + " is missing (state " + state + ")"});
    }
    if (r.ip.empty()) continue;
    if (leased.count({r.ip, r.container}) == 0) {
      out.push_back({"row", r.slug, "address " + r.ip + " is not leased to " + r.container});
    }
  }
  for (const auto& [ip, slugs] : byIp) {
    if (slugs.size() < 2) continue;
    std::string names;
    for (const auto& s : slugs) names += (names.empty() ? "" : ", ") + s;
    out.push_back({"lease", ip, "rows " + names + " share it"});
  }
}

void checkLeases(const InvariantFacts& f, const Owners& o, Out& out) {
  for (const auto& l : f.leases) {
    if (!o.owns(l.owner)) out.push_back({"lease", l.ip, "owner " + l.owner + " has no row"});
  }
}

void checkJournal(const InvariantFacts& f, const Owners& o, Out& out) {
  for (const auto& op : f.unfinished) {
    if (o.live(op)) continue;
    std::string what = "unfinished " + std::string(journalKindName(op.kind));
    if (!op.container.empty()) what += " of " + op.container;
    if (!op.slug.empty()) what += " (ticket " + op.slug + ")";
    what += f.inAgent ? ", older than every call in flight" : ", not recovered";
    out.push_back({"journal", std::to_string(op.id), what});
  }
}

// The directory of a layer without its build suffix, and whether it had one.
std::string layerBase(const std::string& dir, bool& partial) {
  for (const char* suffix : {".part", ".merged", ".scratch"}) {
    const std::string s = suffix;
    if (dir.size() > s.size() && dir.compare(dir.size() - s.size(), s.size(), s) == 0) {
      partial = true;
      return dir.substr(0, dir.size() - s.size());
    }
  }
  partial = false;
  return dir;
}

std::set<std::string> layerDirNames(const InvariantFacts& f) {
  std::set<std::string> out;
  for (const auto& l : f.layers) out.insert(std::string(layerKindName(l.kind)) + "-" + l.hash);
  return out;
}

std::set<std::string> imageDirNames(const InvariantFacts& f) {
  std::set<std::string> out;
  for (const auto& im : f.images) out.insert(paths::imageContainer(im.name, im.version));
  return out;
}

// The image and layer directories the tables name, computed once per check.
struct DirNames {
  std::set<std::string> images, layers;
};

bool mountOwned(const DirNames& names, const Owners& o, const std::string& rel) {
  const size_t slash = rel.find('/');
  const std::string top = rel.substr(0, slash);
  std::string second = slash == std::string::npos ? "" : rel.substr(slash + 1);
  second = second.substr(0, second.find('/'));
  if (top == "lxc") return !second.empty() && o.owns(second);
  if (top == "images") {
    return !second.empty() && (names.images.count(second) > 0 || o.liveContainer(second));
  }
  if (top == "layers") {
    bool partial = false;
    const std::string base = layerBase(second, partial);
    return !second.empty() && ((!partial && names.layers.count(base) > 0) || o.liveBuild());
  }
  if (top == "work") return o.anyLiveOp();
  return false;
}

void checkMounts(const InvariantFacts& f, const Owners& o, Out& out) {
  const DirNames names{imageDirNames(f), layerDirNames(f)};
  for (const auto& m : f.mounts) {
    if (!startsWith(m, f.stateDir + "/")) continue;
    if (!mountOwned(names, o, m.substr(f.stateDir.size() + 1))) {
      out.push_back({"mount", m, "nothing of this host's owns it"});
    }
  }
}

// Every container name this host knows, by its host-side veth.
std::map<std::string, std::string> vethOwners(const InvariantFacts& f, const Owners& o) {
  std::map<std::string, std::string> out;
  for (const auto& c : o.known()) out[vethName(f.bridge, f.lxcPath, c)] = c;
  return out;
}

void checkVeths(const InvariantFacts& f, const Owners& o, Out& out) {
  if (!f.bridgePorts) return;
  const auto owners = vethOwners(f, o);
  for (const auto& port : *f.bridgePorts) {
    auto it = owners.find(port);
    if (it == owners.end()) {
      out.push_back({"veth", port, "on bridge " + f.bridge + ", no container of this host's"});
      continue;
    }
    const std::string& c = it->second;
    if (o.claimedInFlight(c) || o.liveContainer(c)) continue;
    if (!o.owns(c)) {
      out.push_back({"veth", port, "container " + c + " has no row"});
    } else if (o.stateOf(c) != ContainerState::kRunning) {
      out.push_back({"veth", port, "container " + c + " is not running"});
    }
  }
}

void checkBindings(const InvariantFacts& f, const Owners& o, Out& out) {
  if (f.nftBindings.empty()) return;
  const auto owners = vethOwners(f, o);
  std::set<std::pair<std::string, std::string>> rowBindings;  // (ip, veth)
  for (const auto& r : f.rows)
    rowBindings.emplace(r.ip, vethName(f.bridge, f.lxcPath, r.container));
  for (const auto& b : f.nftBindings) {
    if (rowBindings.count({b.ip, b.port}) > 0) continue;
    auto it = owners.find(b.port);
    if (it != owners.end() && (o.claimedInFlight(it->second) || o.liveContainer(it->second))) {
      continue;
    }
    out.push_back(
        {"nft", b.ip, "the bridge's binding of " + b.port + " (" + b.mac + ") matches no row"});
  }
}

void checkPool(const InvariantFacts& f, const Owners&, Out& out) {
  for (const auto& p : f.pool) {
    if (p.state != PoolState::kReady) {
      if (!f.inAgent) {
        out.push_back(
            {"pool", p.container, "a fill that never finished (the next start removes it)"});
      }
      continue;
    }
    auto it = f.containers.find(p.container);
    if (it == f.containers.end()) {
      out.push_back({"pool", p.container, "ready in the pool, but its container is gone"});
    } else if (!it->second.hasConfig) {
      out.push_back({"pool", p.container, "ready in the pool, but its container has no config"});
    } else if (it->second.state != ContainerState::kRunning) {
      out.push_back({"pool", p.container, "ready in the pool, but its container is not running"});
    }
  }
}

void checkRoutes(const InvariantFacts& f, const Owners& o, Out& out) {
  if (!f.routes) return;
  for (const auto& slug : *f.routes) {
    if (slug == "qabox" || o.hasRow(slug) || o.inFlight(slug)) continue;
    out.push_back({"route", slug, "no row"});
  }
}

void checkDirs(const InvariantFacts& f, const Owners& o, Out& out) {
  for (const auto& slug : f.logDirs) {
    if (!o.hasRow(slug) && !o.inFlight(slug)) {
      out.push_back({"logs", "logs/" + slug, "no row for " + slug});
    }
  }
  const auto layerNames = layerDirNames(f);
  std::set<std::string> layerSeen;
  for (const auto& d : f.layerDirs) {
    bool partial = false;
    const std::string base = layerBase(d, partial);
    if (!partial) layerSeen.insert(base);
    if (partial ? o.liveBuild() : layerNames.count(base) > 0) continue;
    out.push_back({"layer", "layers/" + d,
                   partial ? "a half-made layer, no build in flight" : "not in the layers table"});
  }
  for (const auto& name : layerNames) {
    if (!layerSeen.count(name)) {
      out.push_back({"layer", "layers/" + name, "in the layers table, its directory is missing"});
    }
  }
  const auto imageNames = imageDirNames(f);
  const std::set<std::string> imageSeen(f.imageDirs.begin(), f.imageDirs.end());
  for (const auto& d : f.imageDirs) {
    if (!imageNames.count(d) && !o.liveContainer(d)) {
      out.push_back({"image", "images/" + d, "no version in the images table"});
    }
  }
  for (const auto& name : imageNames) {
    if (imageSeen.count(name) == 0) {
      out.push_back({"image", "images/" + name, "in the images table, its directory is missing"});
    }
  }
  if (o.anyLiveOp()) return;
  for (const auto& w : f.workEntries) {
    out.push_back({"work", "work/" + w, "left over: no operation is in flight"});
  }
}

// The container of this host's a cgroup directory is for, or "": its exact
// name first, then the name without liblxc's "-<digits>" (cgroupBelongsTo).
std::string cgroupOwner(const std::string& dirName, const Owners& o) {
  const std::string name = cgroupContainerName(dirName);
  if (o.known().count(name)) return name;
  const size_t dash = name.rfind('-');
  if (dash == std::string::npos) return "";
  const std::string base = name.substr(0, dash);
  auto isKnown = [&o](const std::string& c) { return o.known().count(c) > 0; };
  return isKnown(base) && cgroupBelongsTo(dirName, base, isKnown) ? base : "";
}

void checkCgroups(const InvariantFacts& f, const Owners& o, Out& out) {
  for (const auto& dir : f.cgroupDirs) {
    const std::string c = cgroupOwner(dir.substr(dir.rfind('/') + 1), o);
    // Another agent's (or anyone's) containers are not this host's to judge.
    if (c.empty() || o.stateOf(c) == ContainerState::kRunning || o.claimedInFlight(c) ||
        o.liveContainer(c)) {
      continue;
    }
    out.push_back({"cgroup", dir, "container " + c + " is not running"});
  }
}

}  // namespace

std::vector<Violation> findViolations(const InvariantFacts& facts) {
  return findViolations(facts, std::numeric_limits<size_t>::max()).listed;
}

ViolationReport findViolations(const InvariantFacts& facts, size_t cap) {
  const Owners owners(facts);
  ViolationReport report;
  Out out(report, cap);
  checkContainers(facts, owners, out);
  checkRows(facts, owners, out);
  checkLeases(facts, owners, out);
  checkJournal(facts, owners, out);
  checkMounts(facts, owners, out);
  checkVeths(facts, owners, out);
  checkBindings(facts, owners, out);
  checkPool(facts, owners, out);
  checkRoutes(facts, owners, out);
  checkDirs(facts, owners, out);
  checkCgroups(facts, owners, out);
  return report;
}

std::vector<PortBinding> parseBindings(const std::string& nftOutput) {
  static const std::regex element(
      R"re("([^"]+)"\s*\.\s*([0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5})\s*\.\s*([0-9]+(?:\.[0-9]+){3}))re");
  std::vector<PortBinding> out;
  for (std::sregex_iterator it(nftOutput.begin(), nftOutput.end(), element), end; it != end; ++it) {
    out.push_back({(*it)[1].str(), (*it)[2].str(), (*it)[3].str()});
  }
  return out;
}

namespace {

// "\040" in mountinfo is a space: the kernel escapes space, tab, newline, '\'.
std::string unescapeMount(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    const bool octal =
        s[i] == '\\' && i + 3 < s.size() && s.find_first_not_of("01234567", i + 1) >= i + 4;
    if (octal) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 3), nullptr, 8));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

}  // namespace

std::vector<std::string> mountsBeneath(const std::string& mountinfo, const std::string& dir) {
  std::vector<std::string> out;
  std::istringstream in(mountinfo);
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields(line);
    std::string id, parent, dev, root, point;
    if (!(fields >> id >> parent >> dev >> root >> point)) continue;
    point = unescapeMount(point);
    if (startsWith(point, dir + "/")) out.push_back(point);
  }
  return out;
}

}  // namespace qabox
