#pragma once

// Hosts on one machine: a backbone bridge in the test's own network
// namespace, on an unused /24 with .1 on the bridge, and one network
// namespace per host, joined to it by a veth named eth0 at .k+2. What a
// test sends to a host's address crosses a real link; what each host makes
// (its bridge, firewall tables, containers' links) stays in its namespace.
// Everything is removed when the fixture goes, also when the test failed:
// destroy the hosts living in the namespaces first.

#include <string>
#include <vector>

namespace qabox::testing {

class Backbone {
 public:
  Backbone();
  ~Backbone();
  Backbone(const Backbone&) = delete;
  Backbone& operator=(const Backbone&) = delete;

  // A new namespace on the backbone: its name (under /run/netns).
  std::string add();
  // The address of the k-th namespace added; gateway() is the bridge's.
  std::string address(size_t k) const;
  std::string gateway() const { return prefix_ + "1"; }
  const std::string& bridge() const { return bridge_; }

 private:
  std::string id_, bridge_, prefix_;  // prefix_: "10.214.N."
  std::vector<std::string> namespaces_;
};

// Runs argv inside network namespace `ns` with a /sys of that namespace, as
// `ip netns exec` does, but keeping the host's cgroup mounts; or as it is
// when `ns` is empty. argv[0] must be a path: nothing searches PATH.
std::vector<std::string> inNetns(const std::string& ns, std::vector<std::string> argv);

}  // namespace qabox::testing
