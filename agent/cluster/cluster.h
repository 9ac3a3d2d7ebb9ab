#pragma once

// Many agents as one qabox: membership, the ticket -> host map and placement,
// kept in etcd. Each host's SQLite stays the truth about its own containers;
// etcd holds only who is in the cluster, which host owns which ticket, and
// the facts placement needs. Without [cluster] etcd the agent makes no
// Cluster at all and everything stays on one host.

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"

namespace qabox::cluster {

// What a host says of itself under its lease (key <prefix>hosts/<name>).
struct HostFacts {
  std::string name;    // [cluster] name: a DNS label
  std::string api;     // host:port where peers reach its peer gRPC listener (mTLS)
  std::string router;  // host:port where peers' routers forward requests
  std::string version;
  uint32_t capacity = 0;      // environments it takes ([cluster] capacity)
  uint32_t environments = 0;  // environments it holds now
  uint64_t freeMemoryBytes = 0;
  uint64_t freeDiskBytes = 0;
  std::vector<std::string> images;  // images it has built (name only)
  int64_t startedAtUnix = 0;
};

enum class HostState : uint8_t {
  kUp,        // its lease is alive
  kDraining,  // alive, takes no new placements (qabox host drain)
  kDown,      // its lease expired (or it never came back) and it owns tickets
};
std::string_view hostStateName(HostState s);  // "UP", "DRAINING", "DOWN"

struct HostView {
  HostFacts facts;
  HostState state = HostState::kUp;
  bool self = false;
};

// Who owns a ticket (key <prefix>tickets/<slug>); created if absent in one
// transaction, so two hosts can never both own it.
struct Owner {
  std::string slug;
  std::string ticket;  // as given, e.g. EXMP-113
  std::string host;
  int64_t modRevision = 0;  // etcd's, for compare-and-swap
};

struct ClusterOptions {
  std::vector<std::string> etcd;          // endpoints: https://host:port (http:// on loopback only)
  std::string caFile, certFile, keyFile;  // TLS to etcd and to peers
  std::string prefix = "/qabox/";         // every key lives under it
  std::chrono::milliseconds leaseTtl{10'000};
  std::chrono::milliseconds dialTimeout{2'000};  // one etcd call, connect included
  HostFacts self;                                // name, api, router, version, capacity
};

// What the cluster asks of the local agent each time it keeps its lease
// (never blocks long): one sample of what changes, filled into `facts`
// (environments, free memory and disk, images).
struct LocalHost {
  std::function<void(HostFacts& facts)> sample;
};

class Cluster {
 public:
  virtual ~Cluster() = default;

  virtual const std::string& self() const = 0;

  // From the watched cache: never waits for etcd. Nullopt: no owner known.
  virtual std::optional<Owner> owner(const std::string& slug) const = 0;
  virtual std::vector<Owner> owners() const = 0;  // every ticket in the map
  virtual std::vector<HostView> hosts() const = 0;
  virtual std::optional<HostView> host(const std::string& name) const = 0;
  // True while etcd answers (the last call or watch event came through).
  virtual bool connected() const = 0;

  // The owner of a ticket about to be deployed: the existing owner when it is
  // up (or draining); otherwise a host is chosen (`wanted` when not empty,
  // else placement) and claimed in one transaction: a map entry of a DOWN
  // host is replaced only if it still has the revision this host read.
  // kUnavailable naming etcd while etcd does not answer; kFailedPrecondition
  // when `wanted` is down or draining or no host can take it;
  // kNotFound when `wanted` is not a member.
  virtual Result<Owner> place(const std::string& ticket, const std::string& slug,
                              const std::string& image, const std::string& wanted) = 0;
  // An environment this host has that the map does not name (made before
  // the host joined, or its entry lost) is claimed for this host, draining
  // or not; the owner it has when another host got there first.
  virtual Result<Owner> claim(const std::string& ticket, const std::string& slug) = 0;
  // The owner deleted the ticket's environment: its map entry goes, if it is
  // still this host's.
  virtual Status release(const std::string& slug) = 0;
  // A ticket whose host is down leaves the map (deleted while LOST), if
  // that host still owns it; kFailedPrecondition when its host is up. The
  // host is told (key <prefix>gone/<slug>) so that it reclaims the old
  // container when it comes back instead of claiming the ticket again.
  virtual Status forgetLost(const std::string& slug) = 0;
  // Tickets deleted while LOST, with the host that had them (Owner::host).
  virtual std::vector<Owner> forgotten() const = 0;
  // That host reclaimed the container: the mark goes.
  virtual Status clearForgotten(const std::string& slug) = 0;
  virtual Status setDraining(const std::string& host, bool draining) = 0;

  // Called (from the cluster's own thread) after the cache changed: hosts or
  // owners. The daemon uses it to refresh remote routes and reclaim
  // containers of tickets re-placed elsewhere.
  virtual void onChange(std::function<void()> fn) = 0;

  // Registers this host under its lease and starts watching. Returns once
  // registered (or kUnavailable when etcd could not be reached within the
  // dial timeout: the caller may go on and the cluster keeps trying).
  virtual Status start(LocalHost local) = 0;
  virtual void stop() = 0;  // revokes the lease: peers see this host gone at once
};

// Pure placement: the up, not draining host with the most free capacity
// (capacity - environments); ties go to a host that has `image`, then to
// more free memory, then by name. Nullopt when none has room.
std::optional<std::string> choosePlacement(const std::vector<HostView>& hosts,
                                           const std::string& image);

}  // namespace qabox::cluster
