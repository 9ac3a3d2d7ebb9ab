// Soak (issue 17): deploy and delete one busybox environment again and
// again through the real agent, sampling its descriptors, threads and RSS
// after every cycle. Fails when one grows past a small fixed allowance over
// its level after the warm-up, and prints each least-squares slope per
// cycle; the invariants (no container, cgroup, veth, lease or log dir left
// without an owner) must hold at the end. QABOX_SOAK_CYCLES sets the count
// (40 here; scripts/torture/soak.sh runs 500).
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <iostream>
#include <thread>

#include "harness.h"
#include "load.h"

namespace qabox::testing {
namespace {

// After the warm-up a cycle leaves nothing behind, so any growth is a leak;
// the allowances absorb what is not: a descriptor or two the gRPC
// completion queue or a late log flush holds at the moment of a sample
// (fds +8, as LXD's fdleak test), a thread of gRPC's sync pool that has not
// exited yet (+4), and the allocator's high-water mark moving as request
// sizes vary (+16 MiB: a leaked deploy context of a few KiB a cycle still
// shows in the slope long before).
constexpr long kFdAllowance = 8;
constexpr long kThreadAllowance = 4;
constexpr long kRssAllowanceKb = 16 * 1024;
constexpr int kWarmup = 5;

grpc::Status deployOnce(v1::Qabox::Stub& stub, const std::string& ticket, v1::Environment* env) {
  grpc::ClientContext c;
  c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
  v1::DeployRequest r;
  r.set_ticket(ticket);
  r.set_image("busybox");
  auto reader = stub.Deploy(&c, r);
  v1::DeployEvent ev;
  while (reader->Read(&ev)) {
    if (ev.has_environment()) *env = ev.environment();
  }
  return reader->Finish();
}

grpc::Status deleteOnce(v1::Qabox::Stub& stub, const std::string& ticket) {
  grpc::ClientContext c;
  c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
  v1::DeleteEnvironmentRequest r;
  r.set_ticket(ticket);
  v1::DeleteEnvironmentResponse resp;
  return stub.DeleteEnvironment(&c, r, &resp);
}

TEST(LxcSoak, DeployDeleteCyclesLeakNoDescriptorThreadOrMemory) {
  QABOX_REQUIRE_LXC();
  TestHost::Options o;
  o.extraToml = "[reaper]\ninterval = \"0\"\n";
  TestHost host(o);
  host.startWithBusybox();
  auto stub = unixStub(host.socket());
  const long cycles = envNumber("QABOX_SOAK_CYCLES", 40);
  std::vector<double> fds, threads, rssMiB;
  AgentSample base;
  for (long i = 0; i < kWarmup + cycles; ++i) {
    v1::Environment env;
    grpc::Status s = deployOnce(*stub, "SOAK-1", &env);
    ASSERT_TRUE(s.ok()) << "cycle " << i << ": deploy: " << s.error_message();
    ASSERT_EQ(env.state(), v1::Environment::READY) << "cycle " << i << ": " << env.message();
    s = deleteOnce(*stub, "SOAK-1");
    ASSERT_TRUE(s.ok()) << "cycle " << i << ": delete: " << s.error_message();
    AgentSample now = sampleAgent(host.daemonPid());
    if (i + 1 == kWarmup) base = now;
    if (i < kWarmup) continue;
    fds.push_back(static_cast<double>(now.fds));
    threads.push_back(static_cast<double>(now.threads));
    rssMiB.push_back(static_cast<double>(now.rssKb) / 1024.0);
    ASSERT_LE(now.fds, base.fds + kFdAllowance) << "cycle " << i << ": " << describe(now);
    ASSERT_LE(now.threads, base.threads + kThreadAllowance)
        << "cycle " << i << ": " << describe(now);
    ASSERT_LE(now.rssKb, base.rssKb + kRssAllowanceKb) << "cycle " << i << ": " << describe(now);
  }
  AgentSample last = sampleAgent(host.daemonPid());
  std::printf(
      "%ld cycles after %d of warm-up: agent at the warm-up's end %s, at the end %s\n"
      "slope per cycle: fds %+.4f, threads %+.4f, RSS %+.4f MiB\n",
      cycles, kWarmup, describe(base).c_str(), describe(last).c_str(), slope(fds), slope(threads),
      slope(rssMiB));
  for (const auto& v : host.violations()) ADD_FAILURE() << "after the soak: " << v;
  EXPECT_TRUE(host.containers().empty());
  EXPECT_TRUE(host.bridgePorts().empty());
  EXPECT_TRUE(host.overlayDirs().empty());
  EXPECT_EQ(host.leaseCount(), 0);
}

}  // namespace
}  // namespace qabox::testing
