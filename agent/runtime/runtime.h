#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/environment.h"
#include "core/status.h"
#include "sys/process.h"

namespace qabox {

// Where a container plugs into the agent's bridge. The address is leased
// before the clone, so it is in the config before the container starts.
struct NetSpec {
  std::string bridge;
  std::string address;  // CIDR, e.g. 10.44.0.7/24
  std::string gateway;  // e.g. 10.44.0.1
};

struct ExecSpec {
  std::vector<std::string> argv;
  std::map<std::string, std::string> env;  // the whole environment of the command
  std::string cwd = "/";
  std::string stdinData;
  std::string stdinFile;  // instead of stdinData: stdin read from this host file
  std::chrono::milliseconds timeout{0};
  std::function<void(bool isStderr, std::string_view data)> onOutput;
};

// A dataset volume to give a container: a writable snapshot of `source` (a
// read-only subvolume in the data pool, runtime/data_pool.h) mounted at
// `target`, an absolute directory in the container.
struct DataSnapshot {
  std::string source;
  std::string target;
};

// A file for a running container: written by the container's own root,
// inside its namespaces (ContainerRuntime::place).
struct PlacedFile {
  std::string path;  // absolute, inside the container
  std::string content;
  uint32_t mode = 0644;
};

enum class ContainerState { kMissing, kStopped, kRunning, kOther };

// The containers of one lxcpath. Every OS call on containers goes through
// this interface; the agent never touches containers outside its lxcpath.
class ContainerRuntime {
 public:
  virtual ~ContainerRuntime() = default;

  // An overlay snapshot of `image` (a container in `imageLxcPath`) named
  // `name`, with its network set to `net` and its cgroup limited to
  // `limits`. `lowers` are the clone's read-only layers, topmost first (an
  // image's own layer, then its parent's, ...); empty: the image's rootfs
  // alone. Layers must never change afterwards.
  virtual Status clone(const std::string& imageLxcPath, const std::string& image,
                       const std::string& name, const std::vector<std::string>& lowers,
                       const NetSpec& net, const ResourceLimits& limits) = 0;
  virtual Status start(const std::string& name) = 0;
  virtual Status stop(const std::string& name) = 0;
  // Stops (if running) and destroys, with its overlay. A missing container
  // is not an error: destroy is what recovery repeats.
  virtual Status destroy(const std::string& name) = 0;
  virtual Result<std::vector<std::string>> list() = 0;
  virtual Result<ContainerState> state(const std::string& name) = 0;
  // Runs a command inside a running container and waits for it.
  virtual Result<ProcessResult> exec(const std::string& name, const ExecSpec& spec) = 0;
  // Into the running container `name`, as its root and through its own
  // mount namespace (never a host path, whatever its files are): each of
  // `files` written atomically (a temporary file beside it, renamed over
  // it; a link in its place is replaced, never followed), in order, then
  // each of `remove` unlinked (one that is not there is no error); then its
  // init gets SIGUSR1 (a waiting one wakes; one without a handler never
  // sees it). For a container that runs already: a warm pool's, claimed.
  virtual Status place(const std::string& name, const std::vector<PlacedFile>& files,
                       const std::vector<std::string>& remove) = 0;
  // For a cloned, stopped container: each of `snaps`' sources snapshotted
  // writable into the data pool (envs/<name>/<i>), each snapshot's exclusive
  // bytes limited to `maxBytes` (0: no limit), and mounted at its target on
  // every start (nosuid, nodev; idmapped to the container's ids when it is
  // unprivileged: the pool's files are 0-based). Each target must be a
  // directory in the clone's rootfs (its image's layers or its upper dir),
  // reached without a symlink. destroy deletes the snapshots. Replaces what
  // an earlier attachData gave it.
  virtual Status attachData(const std::string& name, const std::vector<DataSnapshot>& snaps,
                            uint64_t maxBytes) = 0;
  // The host path of the clone's writable upper layer, where files may be
  // placed before the container starts.
  virtual std::string upperDir(const std::string& name) const = 0;
  // The host id root in the container runs as when it is unprivileged
  // (files placed in its upper layer must belong to it); nullopt when it is
  // privileged. A clone is what its image version was built as.
  virtual std::optional<uint32_t> mappedRoot(const std::string& name) const = 0;
};

// An overlay of read-only layers on the host, for building a layer on top of
// them (an image built `from` another): what is written in `merged` lands in
// `upper`.
struct LayerMount {
  std::string merged;
  std::string upper;
  std::string work;                 // overlayfs' work dir, on upper's filesystem
  std::vector<std::string> lowers;  // topmost first
  // Unprivileged layers are owned by container ids from this host id on:
  // `merged` shows them as 0.. (host root builds as container root), and
  // opaque directories and whiteouts are user.overlay.* as clones read them.
  std::optional<uint32_t> idBase;
};

class LayerMounter {
 public:
  virtual ~LayerMounter() = default;
  virtual Status mountLayers(const LayerMount& mount) = 0;
  // Unmounts `merged` and what mountLayers mounted for it; nothing mounted
  // is not an error.
  virtual Status unmountLayers(const std::string& merged) = 0;
};

// A container's port on the bridge (its host-side veth) and the only
// source MAC and IPv4 address the bridge takes from it.
struct PortBinding {
  std::string port;  // the veth's host-side name
  std::string mac;   // aa:bb:cc:dd:ee:ff
  std::string ip;    // 10.44.0.7
};

// A container's host-side veth: 15 characters (a Linux interface name),
// vethPrefix(bridge) then a hash of its lxcpath and name, so it is the same
// on every start and unique on the host even with several agents.
std::string vethPrefix(const std::string& bridge);
std::string vethName(const std::string& bridge, const std::string& lxcPath,
                     const std::string& container);
// The container's MAC, derived from its address: 02:71 (locally
// administered, unicast) and the address's four bytes.
std::string macForAddress(const std::string& ipv4);

// What the bridge's firewall keeps containers from.
struct BridgeGuard {
  std::string subnet;                    // the containers' subnet (CIDR)
  std::string gateway;                   // the bridge's own address, e.g. 10.44.0.1
  std::vector<uint16_t> hostTcpPorts;    // the agent's API ports: unreachable from containers
  std::vector<uint16_t> routerTcpPorts;  // the router's: the only host ports containers reach
  bool isolate = true;                   // containers cannot reach each other
  EgressPolicy egress;                   // beyond the host (none unless set)
  std::vector<PortBinding> bindings;     // every container's port, as the store knows them
};

// The agent's bridge: created with the subnet's gateway address if missing,
// and its firewall (nftables tables named after the bridge, owned by the
// agent) put in place before any container starts on it.
class Bridge {
 public:
  virtual ~Bridge() = default;
  virtual Status ensure(const std::string& name, const std::string& gatewayCidr) = 0;
  // Replaces the bridge's firewall rules (with its port bindings), atomically;
  // with egress, turns on the IPv4 forwarding it needs.
  virtual Status guard(const std::string& name, const BridgeGuard& guard) = 0;
  // Drops the host's neighbour (ARP) entry for `ip` on the bridge: an
  // address leased again belongs to a new container with a new MAC, which
  // the host would not ask for while the old entry still looks reachable.
  virtual Status forgetNeighbor(const std::string& name, const std::string& ip) = 0;
  // Removes the bridge and its firewall rules.
  virtual Status remove(const std::string& name) = 0;
  // Interfaces attached to the bridge (the containers' host-side veths).
  virtual Result<std::vector<std::string>> ports(const std::string& name) = 0;
};

}  // namespace qabox
