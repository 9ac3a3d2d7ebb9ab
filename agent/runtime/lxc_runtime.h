#pragma once

#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/runtime.h"
#include "sys/process.h"

namespace qabox {

// Containers of one lxcpath through liblxc. Calls that fork (clone, start,
// attach) and the ones that change state run in the qabox-lxc helper
// process; reads (list, state) run here.
class LxcRuntime : public ContainerRuntime {
 public:
  LxcRuntime(std::string lxcPath, std::string helperPath, ProcessRunner& runner,
             std::chrono::milliseconds startTimeout = std::chrono::seconds(30));

  Status clone(const std::string& imageLxcPath, const std::string& image, const std::string& name,
               const NetSpec& net, const ResourceLimits& limits) override;
  Status start(const std::string& name) override;
  Status stop(const std::string& name) override;
  Status destroy(const std::string& name) override;
  Result<std::vector<std::string>> list() override;
  Result<ContainerState> state(const std::string& name) override;
  Result<ProcessResult> exec(const std::string& name, const ExecSpec& spec) override;
  std::string upperDir(const std::string& name) const override;
  std::optional<uint32_t> mappedRoot(const std::string& name) const override;

  const std::string& lxcPath() const { return lxcPath_; }
  // The seccomp profile file (seccompProfile()) clones made from now on run
  // under; "" for none.
  void setSeccompProfile(std::string path) { seccompProfile_ = std::move(path); }
  // Unprivileged clones made from now on get host ids of their own: the
  // lowest free slot k in 1..slots, ids base + k * 65536 on (slot 0 is the
  // images'). A slot is held by the container's config, so it is free again
  // when the container is destroyed and kept across agent restarts.
  void setIsolatedIds(uint32_t base, uint32_t slots) {
    idBase_ = base;
    idSlots_ = slots;
  }

 private:
  Status runHelper(const std::vector<std::string>& args, const std::string& what);
  Status bindPort(const std::string& bridge, const PortBinding& binding, bool add);

  std::string lxcPath_;
  std::string helperPath_;
  ProcessRunner& runner_;
  std::chrono::milliseconds startTimeout_;
  std::string seccompProfile_;
  uint32_t idBase_ = 0;
  uint32_t idSlots_ = 0;
  std::mutex idMu_;             // a slot is chosen under it
  std::set<uint64_t> cloning_;  // slots chosen whose clone's config is not written yet
};

// The seccomp deny list every container runs under, in LXC's format
// (lxc.seccomp.profile): LXC's own default list, what container engines add
// to it (kernel keyrings, bpf, userfaultfd, perf events, io_uring), and new
// user namespaces unless `allowNestedUserns`.
std::string seccompProfile(bool allowNestedUserns);

// The nftables ruleset `nft -f` gets for a bridge, both tables declared,
// deleted and declared again in one transaction, so applying it replaces the
// old rules (and the bindings set, filled from guard.bindings):
//  - bridge qabox_<bridge>: a frame from a container's port passes only as
//    IPv4 or ARP whose source MAC and address are its binding's (before the
//    bridge learns the MAC: prerouting); with isolate, no frame goes from one
//    container's port to another's.
//  - inet qabox_<bridge>: from the containers, the host accepts only the
//    router's ports, ping of the gateway and replies; forwarding (egress)
//    follows guard.egress, never to link-local addresses or over IPv6, with
//    NAT; nothing from outside is forwarded to a container but replies.
std::string bridgeRuleset(const std::string& bridge, const BridgeGuard& guard);
// Deletes both tables; not an error when they do not exist.
std::string bridgeRulesetRemoval(const std::string& bridge);
// Adds one port binding to the bridge's set, or removes it (also when it
// is not there).
std::string bindingUpdate(const std::string& bridge, const PortBinding& binding, bool add);

// The interfaces whose IPv4 forwarding egress needs besides the bridge: those
// of the routes (`ip -4 -o route show table main`) that lead to what the
// policy allows, but other bridges (other containers' and VMs' networks)
// reached directly, and lo. Empty for "none".
std::vector<std::string> forwardingInterfaces(std::string_view routes, const EgressPolicy& egress,
                                              const std::string& bridge,
                                              const std::set<std::string>& bridges);

// The bridge through iproute2's `ip`, its firewall through `nft`.
class IpBridge : public Bridge {
 public:
  explicit IpBridge(ProcessRunner& runner) : runner_(runner) {}
  Status ensure(const std::string& name, const std::string& gatewayCidr) override;
  Status guard(const std::string& name, const BridgeGuard& guard) override;
  Status forgetNeighbor(const std::string& name, const std::string& ip) override;
  Status remove(const std::string& name) override;
  Result<std::vector<std::string>> ports(const std::string& name) override;

 private:
  ProcessRunner& runner_;
};

// Where qabox-lxc lives: beside the running executable, else on PATH.
std::string defaultLxcHelperPath();

}  // namespace qabox
