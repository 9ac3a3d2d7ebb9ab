#pragma once

// Three real agents as one qabox, for the cluster's tests and its
// benchmark: each agent in a network namespace of its own (its own veth
// address on a backbone bridge, its own container bridge, subnet, firewall
// and router), talking real gRPC over mTLS to each other and to a real
// three-member etcd on the backbone. Hosts are named qa-a, qa-b, qa-c;
// everything goes when the test does, also when it failed.

#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "etcd_fixture.h"
#include "harness.h"
#include "netns_fixture.h"

namespace qabox::testing {

bool eventually(const std::function<bool()>& cond,
                std::chrono::milliseconds within = std::chrono::seconds(20));

class ClusterHostsTest : public ::testing::Test {
 protected:
  static constexpr int kHosts = 3;

  void SetUp() override;
  void TearDown() override;

  static std::string name(int k) { return "qa-" + std::string(1, static_cast<char>('a' + k)); }
  std::string addr(int k) const { return backbone_->address(static_cast<size_t>(k)); }
  TestHost& host(int k) { return *hosts_[static_cast<size_t>(k)]; }
  uint16_t apiPort(int k);

  // Writes host k's config with this capacity and starts it with busybox.
  void startHost(int k, uint32_t capacity = 10);
  // Every host, and waits until each sees all of them UP.
  void startAll(const std::vector<uint32_t>& capacities = {10, 10, 10});

  static std::string hostOf(const std::string& slug) { return slug + ".qa.test"; }
  // GET /who.txt of `slug` through host k's router.
  HttpReply who(int k, const std::string& slug);
  // Deploys `ticket` (image only) through host `via` (on host `on` when
  // given), writes the name of the host it landed on into its who.txt and
  // returns that name.
  std::string deployMarked(int via, const std::string& ticket, const std::string& on = "");

  std::unique_ptr<Backbone> backbone_;
  std::vector<std::string> ns_;
  std::string dir_;
  std::unique_ptr<EtcdFixture> etcd_;
  std::vector<std::unique_ptr<TestHost>> hosts_;
  // Branch "echo": an app that answers "ok", and echoes after a websocket
  // Upgrade.
  std::unique_ptr<GitFixture> app_;
  std::map<int, uint16_t> apiPorts_;
};

}  // namespace qabox::testing
