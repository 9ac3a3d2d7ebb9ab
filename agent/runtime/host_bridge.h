#pragma once

#include <string>
#include <vector>

#include "runtime/nftables.h"
#include "runtime/runtime.h"

namespace qabox {

// The bridge through rtnetlink (runtime/netlink.h), its firewall through
// nftables (bridge_rules.h's text), IPv4 forwarding through /proc/sys.
class HostBridge : public Bridge {
 public:
  explicit HostBridge(Firewall& firewall) : firewall_(firewall) {}
  Status ensure(const std::string& name, const std::string& gatewayCidr) override;
  Status guard(const std::string& name, const BridgeGuard& guard) override;
  Status forgetNeighbor(const std::string& name, const std::string& ip) override;
  Status remove(const std::string& name) override;
  Result<std::vector<std::string>> ports(const std::string& name) override;

 private:
  Firewall& firewall_;
};

}  // namespace qabox
