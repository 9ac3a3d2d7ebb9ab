#pragma once

// The invariant checker: what a host of this agent must look like between
// operations, and every way it does not, by name. One function over plain
// facts (findViolations, unit-tested as a table), and the gatherer that
// reads those facts from the store and the host. `qaboxd --check` runs it
// offline (the agent stopped: recovery has not run, so any unfinished
// journal entry is a violation); the CheckInvariants RPC runs it inside the
// agent, where the route table and the calls in flight are known.
//
// The checker only lists directories the agent made and lstat()s their
// entries: it never descends into a container's root, follows a link or
// opens anything there (a container can put links and FIFOs in its layer).

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/environment.h"
#include "core/status.h"
#include "runtime/runtime.h"
#include "store/store.h"

namespace qabox {

class RouteTable;

// One thing wrong, printed "KIND NAME: what", e.g.
//   container qabox-exmp-1: no row owns it
//   lease 10.44.0.7: owner qabox-x has no row
struct Violation {
  std::string kind;  // container, row, lease, overlay, mount, veth, nft, route, logs, pool,
                     // layer, image, work, cgroup, journal
  std::string name;
  std::string what;

  std::string line() const { return kind + " " + name + ": " + what; }
  bool operator==(const Violation&) const = default;
};

// Everything the checker looks at, gathered before it looks.
struct InvariantFacts {
  std::string stateDir;
  bool inAgent = false;  // gathered inside a running agent: calls may be in flight
  // The calls in flight (inside the agent only), by slug: when each took
  // its ticket's lock. What they made is theirs until they finish.
  std::map<std::string, TimePoint> inFlight;

  std::vector<Environment> rows;
  std::vector<Lease> leases;
  std::vector<Operation> unfinished;        // the journal's open entries
  std::set<std::string> journalContainers;  // every container the journal named
  std::vector<ImageVersion> images;
  std::vector<CachedLayer> layers;
  std::vector<PooledContainer> pool;  // the warm pool's containers

  // lxc/<name>: whether it has a config (a defined container) and its state.
  struct Container {
    bool hasConfig = false;
    ContainerState state = ContainerState::kMissing;
  };
  std::map<std::string, Container> containers;  // every directory under the lxcpath
  std::vector<std::string> imageDirs;           // images/<name>-v<N>
  std::vector<std::string> layerDirs;           // layers/<kind>-<hash>[.part|.merged|.scratch]
  std::vector<std::string> logDirs;             // logs/<slug>
  std::vector<std::string> workEntries;         // work/*
  std::vector<std::string> mounts;              // mount points strictly beneath stateDir
  std::string bridge;
  std::string lxcPath;
  std::optional<std::vector<std::string>> bridgePorts;  // nullopt: the bridge is not there
  std::vector<PortBinding> nftBindings;                 // the bridge's bindings set
  std::optional<std::vector<std::string>> routes;       // route slugs (inside the agent only)
  // The empty .../lxc.monitor.<name> and .../lxc.payload.<name> directories.
  std::vector<std::string> cgroupDirs;
};

// Every violation, in the checks' order.
std::vector<Violation> findViolations(const InvariantFacts& facts);

// What a check reports: the first `cap` violations, and every one counted
// by kind, so a host with thousands of leftovers gives a bounded answer
// (gRPC's 4 MiB response) that still says how many of each there are.
struct ViolationReport {
  std::vector<Violation> listed;
  std::map<std::string, size_t> totals;  // by kind, every one found
  size_t total = 0;
  bool truncated() const { return total > listed.size(); }
};
constexpr size_t kMaxViolationsListed = 1000;
ViolationReport findViolations(const InvariantFacts& facts, size_t cap);

// The elements of `nft list set bridge qabox_<bridge> bindings`'s output.
std::vector<PortBinding> parseBindings(const std::string& nftOutput);

// The mount points of a /proc/<pid>/mountinfo text (octal escapes undone)
// strictly beneath `dir`.
std::vector<std::string> mountsBeneath(const std::string& mountinfo, const std::string& dir);

// Where the gatherer reads from. The bridge, the firewall listing and the
// route table are optional: without them, their facts are left empty.
struct FactSources {
  std::string stateDir;
  std::string bridgeName;
  Store* store = nullptr;
  ContainerRuntime* runtime = nullptr;
  Bridge* bridge = nullptr;
  // Runs nft commands and returns what nft printed (Nftables::run).
  std::function<Result<std::string>(const std::string&)> nft;
  const RouteTable* routes = nullptr;  // inside the agent
  std::map<std::string, TimePoint> inFlight;
  std::string cgroupRoot = "/sys/fs/cgroup";
  std::string mountinfo = "/proc/self/mountinfo";
};

// The store's tables first, then the host: an error only when the store or
// the lxcpath cannot be read (what is missing is a fact, not an error).
Result<InvariantFacts> gatherFacts(const FactSources& sources);

}  // namespace qabox
