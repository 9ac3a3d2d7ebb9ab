// The cluster on a real three-member etcd (Debian's etcd-server, TLS with
// client certificates, on loopback): membership under a lease, one owner
// per ticket when hosts race, placement by capacity, a host cut off from
// etcd going DOWN within its lease and its tickets re-placed, and etcd
// losing one member, then all of them, then coming back.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <set>
#include <thread>

#include "cluster/etcd_cluster.h"
#include "etcd_fixture.h"
#include "harness.h"

namespace qabox::testing {
namespace {

using namespace std::chrono_literals;
using cluster::Cluster;
using cluster::HostState;
using cluster::Kv;

bool eventually(const std::function<bool()>& cond, std::chrono::milliseconds within = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + within;
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return cond();
}

// The real Kv, until cut(): then every call fails as an unreachable etcd
// would, and the watch ends. What a host sees when its network goes.
class CuttableKv final : public Kv {
 public:
  explicit CuttableKv(std::unique_ptr<Kv> inner) : inner_(std::move(inner)) {}
  void cut() {
    cut_ = true;
    inner_->cancelWatches();
  }

  Result<cluster::RangeResult> range(const std::string& p, int64_t limit) override {
    if (cut_) return down();
    return inner_->range(p, limit);
  }
  Result<std::optional<cluster::KeyValue>> get(const std::string& k) override {
    if (cut_) return down();
    return inner_->get(k);
  }
  Status put(const std::string& k, const std::string& v, int64_t lease) override {
    if (cut_) return down();
    return inner_->put(k, v, lease);
  }
  Status remove(const std::string& k) override {
    if (cut_) return down();
    return inner_->remove(k);
  }
  Result<std::optional<cluster::KeyValue>> createIfAbsent(const std::string& k,
                                                          const std::string& v) override {
    if (cut_) return down();
    return inner_->createIfAbsent(k, v);
  }
  Result<bool> swapIfRevision(const std::string& k, const std::string& v, int64_t rev) override {
    if (cut_) return down();
    return inner_->swapIfRevision(k, v, rev);
  }
  Result<bool> removeIfRevision(const std::string& k, int64_t rev) override {
    if (cut_) return down();
    return inner_->removeIfRevision(k, rev);
  }
  Result<int64_t> grantLease(std::chrono::seconds ttl) override {
    if (cut_) return down();
    return inner_->grantLease(ttl);
  }
  Status keepAlive(int64_t lease) override {
    if (cut_) return down();
    return inner_->keepAlive(lease);
  }
  Status revokeLease(int64_t lease) override {
    if (cut_) return down();
    return inner_->revokeLease(lease);
  }
  Status watch(const std::string& p, int64_t from,
               const std::function<void(const std::vector<cluster::KvEvent>&)>& fn) override {
    if (cut_) return down();
    return inner_->watch(p, from, fn);
  }
  void cancelWatches() override { inner_->cancelWatches(); }

 private:
  static Status down() { return unavailable("the network is cut"); }
  std::unique_ptr<Kv> inner_;
  std::atomic<bool> cut_{false};
};

class ClusterOnEtcd : public ::testing::Test {
 protected:
  void SetUp() override {
    QABOX_REQUIRE_ETCD();
    dir_ = "/tmp/qabox-etcd-" + std::to_string(getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    etcd_ = std::make_unique<EtcdFixture>(dir_);
    ASSERT_NO_FATAL_FAILURE(etcd_->start());
  }
  void TearDown() override {
    for (auto& [name, h] : hosts_) h.cluster->stop();
    hosts_.clear();
    etcd_.reset();
  }

  cluster::EtcdKvOptions kvOptions() const {
    cluster::EtcdKvOptions o = etcd_->kvOptions();
    o.callTimeout = 1s;
    return o;
  }

  // A member named `name`, registered before it returns.
  Cluster& join(const std::string& name, uint32_t capacity = 10) {
    auto kv = cluster::makeEtcdKv(kvOptions());
    EXPECT_TRUE(kv.isOk()) << kv.status().toString();
    auto cut = std::make_unique<CuttableKv>(std::move(*kv));
    Host& h = hosts_[name];
    h.kv = cut.get();
    cluster::ClusterOptions o;
    o.etcd = etcd_->endpoints();
    o.prefix = "/qabox-test/";
    o.leaseTtl = 2s;
    o.dialTimeout = 1s;
    o.self.name = name;
    o.self.api = "127.0.0.1:1";
    o.self.router = "127.0.0.1:2";
    o.self.capacity = capacity;
    h.cluster = cluster::makeEtcdCluster(o, std::move(cut));
    cluster::LocalHost local;
    local.sample = [](cluster::HostFacts& f) { f.environments = 0; };
    Status s = h.cluster->start(local);
    EXPECT_TRUE(s.isOk()) << s.toString();
    return *h.cluster;
  }
  bool allSee(size_t n) {
    for (auto& [name, h] : hosts_) {
      size_t up = 0;
      for (const auto& v : h.cluster->hosts()) up += v.state == HostState::kUp;
      if (up != n) return false;
    }
    return true;
  }

  struct Host {
    std::unique_ptr<Cluster> cluster;
    CuttableKv* kv = nullptr;
  };
  std::string dir_;
  std::unique_ptr<EtcdFixture> etcd_;
  std::map<std::string, Host> hosts_;
};

TEST_F(ClusterOnEtcd, TheKvWatchesLeasesAndComparesOnRealEtcd) {
  auto made = cluster::makeEtcdKv(kvOptions());
  ASSERT_TRUE(made.isOk()) << made.status().toString();
  Kv& kv = **made;
  std::atomic<int> seen{0};
  std::thread watcher([&] {
    Status s = kv.watch("/w/", 0, [&](const std::vector<cluster::KvEvent>& evs) {
      seen += static_cast<int>(evs.size());
    });
    EXPECT_EQ(s.code(), Code::kCancelled) << s.toString();
  });
  auto first = kv.createIfAbsent("/w/a", "1");
  ASSERT_TRUE(first.isOk()) << first.status().toString();
  EXPECT_FALSE(first->has_value());
  auto second = kv.createIfAbsent("/w/a", "2");
  ASSERT_TRUE(second.isOk() && second->has_value());
  EXPECT_EQ((*second)->value, "1");
  EXPECT_FALSE(*kv.swapIfRevision("/w/a", "3", (*second)->modRevision - 1));
  EXPECT_TRUE(*kv.swapIfRevision("/w/a", "3", (*second)->modRevision));
  auto lease = kv.grantLease(2s);
  ASSERT_TRUE(lease.isOk()) << lease.status().toString();
  ASSERT_TRUE(kv.put("/w/leased", "x", *lease).isOk());
  EXPECT_TRUE(kv.keepAlive(*lease).isOk());
  EXPECT_TRUE(eventually([&] { return seen.load() >= 3; }, 5s)) << seen.load();
  // Unrenewed, the lease and its key go.
  EXPECT_TRUE(eventually([&] { return !kv.get("/w/leased")->has_value(); }, 5s));
  EXPECT_EQ(kv.keepAlive(*lease).code(), Code::kNotFound);
  kv.cancelWatches();
  watcher.join();
}

TEST_F(ClusterOnEtcd, TwentyRacingDeploysOfFiveTicketsThroughThreeHostsCreateEachOnce) {
  Cluster* m[] = {&join("qa-a"), &join("qa-b"), &join("qa-c")};
  ASSERT_TRUE(eventually([&] { return allSee(3); }));
  std::mutex mu;
  std::map<std::string, std::set<std::string>> owners;
  std::vector<std::thread> threads;
  for (int t = 0; t < 20; ++t) {
    threads.emplace_back([&, t] {
      const std::string ticket = "RACE-" + std::to_string(t % 5);
      auto o = m[t % 3]->place(ticket, "race-" + std::to_string(t % 5), "busybox", "");
      std::lock_guard lock(mu);
      EXPECT_TRUE(o.isOk()) << o.status().toString();
      if (o) owners[ticket].insert(o->host);
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_EQ(owners.size(), 5u);
  for (const auto& [ticket, hosts] : owners) EXPECT_EQ(hosts.size(), 1u) << ticket;
  // And etcd holds exactly those five, each where every host thinks it is.
  auto kv = cluster::makeEtcdKv(kvOptions());
  ASSERT_TRUE(kv.isOk());
  auto tickets = (*kv)->range("/qabox-test/tickets/", 100);
  ASSERT_TRUE(tickets.isOk()) << tickets.status().toString();
  EXPECT_EQ(tickets->kvs.size(), 5u);
  for (Cluster* c : m) {
    ASSERT_TRUE(eventually([&] { return c->owners().size() == 5; }));
    for (const auto& o : c->owners()) EXPECT_EQ(owners[o.ticket], std::set{o.host}) << o.ticket;
  }
}

TEST_F(ClusterOnEtcd, PlacementSpreadsNewTicketsByFreeCapacity) {
  Cluster& a = join("qa-a", 4);
  join("qa-b", 2);
  join("qa-c", 2);
  ASSERT_TRUE(eventually([&] { return allSee(3); }));
  std::map<std::string, int> placed;
  for (int i = 0; i < 8; ++i) {
    auto o = a.place("SPREAD-" + std::to_string(i), "spread-" + std::to_string(i), "busybox", "");
    ASSERT_TRUE(o.isOk()) << o.status().toString();
    ++placed[o->host];
  }
  EXPECT_EQ(placed, (std::map<std::string, int>{{"qa-a", 4}, {"qa-b", 2}, {"qa-c", 2}}));
  // Full everywhere: refused, naming why.
  auto full = a.place("SPREAD-9", "spread-9", "busybox", "");
  EXPECT_EQ(full.status().code(), Code::kFailedPrecondition);
}

TEST_F(ClusterOnEtcd, AHostCutOffGoesDownWithinItsLeaseAndItsTicketsArePlacedElsewhere) {
  Cluster& a = join("qa-a");
  Cluster& b = join("qa-b");
  ASSERT_TRUE(eventually([&] { return allSee(2); }));
  auto o = a.place("LOST-1", "lost-1", "busybox", "qa-a");
  ASSERT_TRUE(o.isOk()) << o.status().toString();
  ASSERT_TRUE(eventually([&] { return b.owner("lost-1").has_value(); }));

  const auto cutAt = std::chrono::steady_clock::now();
  hosts_["qa-a"].kv->cut();
  ASSERT_TRUE(eventually(
      [&] {
        auto h = b.host("qa-a");
        return h && h->state == HostState::kDown;
      },
      5s));
  const auto down = std::chrono::steady_clock::now() - cutAt;
  // The lease is 2 s; etcd expires it on its own clock, within a second.
  EXPECT_LT(down, 3500ms);
  std::cout << "DOWN after " << std::chrono::duration_cast<std::chrono::milliseconds>(down).count()
            << " ms\n";

  auto again = b.place("LOST-1", "lost-1", "busybox", "");
  ASSERT_TRUE(again.isOk()) << again.status().toString();
  EXPECT_EQ(again->host, "qa-b");
  // The cut-off host refuses placements rather than guess, and keeps what
  // it last knew.
  auto refused = a.place("LOST-2", "lost-2", "busybox", "");
  EXPECT_EQ(refused.status().code(), Code::kUnavailable) << refused.status().toString();
  EXPECT_NE(refused.status().message().find("etcd is unreachable"), std::string::npos);
  EXPECT_TRUE(a.owner("lost-1").has_value());
}

TEST_F(ClusterOnEtcd, OneMemberDownChangesNothingAllDownRefusesAndBothRecover) {
  Cluster& a = join("qa-a");
  Cluster& b = join("qa-b");
  ASSERT_TRUE(eventually([&] { return allSee(2); }));
  ASSERT_TRUE(a.place("E-1", "e-1", "busybox", "").isOk());

  etcd_->stopMember(0);
  auto o = b.place("E-2", "e-2", "busybox", "");
  ASSERT_TRUE(o.isOk()) << o.status().toString();
  ASSERT_TRUE(eventually([&] { return a.owner("e-2").has_value(); }));
  std::this_thread::sleep_for(2500ms);  // past a lease TTL: no host lost it
  EXPECT_TRUE(allSee(2));

  etcd_->stopMember(1);
  etcd_->stopMember(2);
  auto refused = a.place("E-3", "e-3", "busybox", "");
  EXPECT_EQ(refused.status().code(), Code::kUnavailable) << refused.status().toString();
  EXPECT_NE(refused.status().message().find("etcd is unreachable"), std::string::npos);
  // What each host knew is still there to serve from.
  EXPECT_EQ(a.owner("e-2")->host, o->host);
  EXPECT_EQ(b.owners().size(), 2u);
  ASSERT_TRUE(eventually([&] { return !a.connected(); }, 5s));

  for (int i = 0; i < 3; ++i) ASSERT_NO_FATAL_FAILURE(etcd_->startMember(i));
  ASSERT_NO_FATAL_FAILURE(etcd_->waitReady());
  ASSERT_TRUE(eventually([&] { return a.connected() && b.connected() && allSee(2); }, 20s));
  auto after = a.place("E-3", "e-3", "busybox", "");
  ASSERT_TRUE(after.isOk()) << after.status().toString();
  ASSERT_TRUE(eventually([&] { return b.owner("e-3").has_value(); }));
}

}  // namespace
}  // namespace qabox::testing

namespace qabox::testing {
namespace {

// The real agent with [cluster] etcd: it registers, `qabox hosts` lists it
// with a second member, drain stops placements, a deploy claims its ticket
// in etcd and a delete gives it back, and a ticket another host owns is not
// deployed here too.
TEST(LxcClusterAgent, RegistersListsDrainsAndKeepsOneOwnerPerTicket) {
  QABOX_REQUIRE_LXC();
  QABOX_REQUIRE_ETCD();
  EtcdFixture etcd("/tmp/qabox-etcd-agent-" + std::to_string(getpid()));
  ASSERT_NO_FATAL_FAILURE(etcd.start());
  std::string endpoints;
  for (const auto& e : etcd.endpoints())
    endpoints += (endpoints.empty() ? "\"" : ", \"") + e + "\"";
  TestHost host;
  TestHost::Options o;
  o.extraToml =
      "[cluster]\netcd = [" + endpoints + "]\nca = \"" + etcd.caFile() + "\"\ncert = \"" +
      etcd.certFile() + "\"\nkey = \"" + etcd.keyFile() +
      "\"\nname = \"qa-it\"\nadvertise_api = \"127.0.0.1:" + std::to_string(freeTcpPort()) +
      "\"\n"
      "advertise_router = \"127.0.0.1:" +
      std::to_string(host.routerPort()) + "\"\nlease_ttl = \"2s\"\nprefix = \"/it/\"\n";
  host.writeConfig(o);
  ASSERT_NO_FATAL_FAILURE(host.startWithBusybox());

  // A second member, as another agent would be.
  auto kv = cluster::makeEtcdKv(etcd.kvOptions());
  ASSERT_TRUE(kv.isOk());
  cluster::ClusterOptions co;
  co.prefix = "/it/";
  co.leaseTtl = 2s;
  co.self.name = "qa-other";
  co.self.api = "127.0.0.2:7444";
  co.self.router = "127.0.0.2:80";
  co.self.capacity = 1;
  auto other = cluster::makeEtcdCluster(co, std::move(*kv));
  cluster::LocalHost local;
  local.sample = [](cluster::HostFacts& f) { f.environments = 0; };
  ASSERT_TRUE(other->start(local).isOk());

  ASSERT_TRUE(eventually([&] {
    auto r = host.cli({"hosts", "-o", "json"});
    return r.exitCode == 0 && r.out.find("qa-other") != std::string::npos &&
           r.out.find("clustered") != std::string::npos;
  })) << host.cli({"hosts"}).out;
  auto table = host.cli({"hosts"});
  EXPECT_NE(table.out.find("qa-it *"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("UP"), std::string::npos) << table.out;

  // Drained, this host takes no new ticket; undrained, it does, and the
  // map says so.
  ASSERT_EQ(host.cli({"host", "drain", "qa-it"}).exitCode, 0);
  ASSERT_EQ(host.cli({"host", "drain", "qa-other"}).exitCode, 0);
  ASSERT_TRUE(eventually([&] { return host.cli({"hosts"}).out.find("UP") == std::string::npos; }));
  auto refused = host.cli({"deploy", "CL-1", "--host", "qa-it"});
  EXPECT_NE(refused.exitCode, 0);
  EXPECT_NE(refused.err.find("draining"), std::string::npos) << refused.err;
  ASSERT_EQ(host.cli({"host", "undrain", "qa-it"}).exitCode, 0);
  ASSERT_TRUE(eventually([&] { return host.cli({"deploy", "CL-1"}).exitCode == 0; }));
  ASSERT_TRUE(eventually([&] { return other->owner("cl-1").has_value(); }));
  EXPECT_EQ(other->owner("cl-1")->host, "qa-it");

  // A ticket the other host owns is not made here as well.
  ASSERT_EQ(host.cli({"host", "undrain", "qa-other"}).exitCode, 0);
  ASSERT_TRUE(eventually([&] {
    auto h = other->host("qa-other");
    return h && h->state == cluster::HostState::kUp;
  }));
  ASSERT_TRUE(other->place("CL-2", "cl-2", "busybox", "qa-other").isOk());
  ASSERT_TRUE(eventually([&] {
    auto r = host.cli({"deploy", "CL-2"});
    // Forwarded to its owner, which is not there to answer.
    return r.exitCode != 0 && r.err.find("forwarded to host qa-other") != std::string::npos;
  }));
  auto elsewhere = host.cli({"get", "CL-2"});
  EXPECT_NE(elsewhere.exitCode, 0);
  EXPECT_NE(elsewhere.err.find("qa-other"), std::string::npos) << elsewhere.err;

  // Deleted, its ticket leaves the map.
  ASSERT_EQ(host.cli({"delete", "CL-1"}).exitCode, 0);
  EXPECT_TRUE(eventually([&] { return !other->owner("cl-1").has_value(); }));
  other->stop();
}

}  // namespace
}  // namespace qabox::testing
