#include "netns_fixture.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "harness.h"

namespace qabox::testing {

std::vector<std::string> inNetns(const std::string& ns, std::vector<std::string> argv) {
  if (ns.empty()) return argv;
  // The namespace's network, and a mount namespace of its own with a /sys of
  // that network (what liblxc and the agent read there: whether a link is a
  // bridge, a bridge's ports) as `ip netns exec` gives; but where that one
  // drops the cgroup mounts below /sys, these are moved onto the new /sys,
  // so liblxc can still limit containers. Every step execs: the pid is the
  // program's.
  static constexpr const char* kScript =
      "set -e; cg=$(mktemp -d /tmp/qabox-netns-cg.XXXXXX); "
      "mount --rbind /sys/fs/cgroup \"$cg\"; mount -t sysfs sysfs /sys; "
      "mount --move \"$cg\" /sys/fs/cgroup; rmdir \"$cg\"; exec \"$@\"";
  std::vector<std::string> wrapped = {"/usr/bin/nsenter",
                                      "--net=/run/netns/" + ns,
                                      "/usr/bin/unshare",
                                      "--mount",
                                      "--propagation",
                                      "private",
                                      "/bin/sh",
                                      "-c",
                                      kScript,
                                      "sh"};
  wrapped.insert(wrapped.end(), argv.begin(), argv.end());
  return wrapped;
}

namespace {

void mustRun(const std::vector<std::string>& argv) {
  auto r = runOrDie(argv);
  std::string line;
  for (const auto& a : argv) line += a + " ";
  ASSERT_EQ(r.exitCode, 0) << line << ": " << r.err;
}

}  // namespace

Backbone::Backbone() {
  id_ = randomId();
  bridge_ = "qbb" + id_;
  std::string subnet = unusedSubnet("10.214");
  prefix_ = subnet.substr(0, subnet.rfind('.') + 1);
  mustRun({"ip", "link", "add", bridge_, "type", "bridge"});
  mustRun({"ip", "addr", "add", gateway() + "/24", "dev", bridge_});
  mustRun({"ip", "link", "set", bridge_, "up"});
}

Backbone::~Backbone() {
  for (const auto& ns : namespaces_) (void)runOrDie({"ip", "netns", "del", ns});
  if (std::filesystem::exists("/sys/class/net/" + bridge_)) {
    (void)runOrDie({"ip", "link", "del", bridge_});
  }
}

std::string Backbone::add() {
  const size_t k = namespaces_.size();
  const std::string ns = "qbn" + id_ + std::to_string(k);
  const std::string outside = "qbv" + id_ + std::to_string(k);
  namespaces_.push_back(ns);  // removed by the destructor from here on
  mustRun({"ip", "netns", "add", ns});
  mustRun({"ip", "link", "add", outside, "type", "veth", "peer", "name", "eth0", "netns", ns});
  mustRun({"ip", "link", "set", outside, "master", bridge_, "up"});
  mustRun({"ip", "-n", ns, "addr", "add", address(k) + "/24", "dev", "eth0"});
  mustRun({"ip", "-n", ns, "link", "set", "eth0", "up"});
  mustRun({"ip", "-n", ns, "link", "set", "lo", "up"});
  return ns;
}

std::string Backbone::address(size_t k) const { return prefix_ + std::to_string(k + 2); }

}  // namespace qabox::testing
