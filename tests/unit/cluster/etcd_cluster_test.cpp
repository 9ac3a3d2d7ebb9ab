// The cluster over a fake etcd: registration, placement, re-placement of a
// down host's tickets with the revision read, drain, etcd unreachable, and
// hostile entries.
#include "cluster/etcd_cluster.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "cluster/records.h"
#include "unit/cluster/fake_kv.h"

namespace qabox::cluster {
namespace {

using namespace std::chrono_literals;
using testing::FakeKv;

bool eventually(const std::function<bool()>& cond) {
  for (int i = 0; i < 300; ++i) {
    if (cond()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return cond();
}

ClusterOptions options(const std::string& name, uint32_t capacity = 10) {
  ClusterOptions o;
  o.prefix = "/t/";
  o.leaseTtl = 300ms;
  o.self.name = name;
  o.self.api = "10.0.0.1:7444";
  o.self.router = "10.0.0.1:80";
  o.self.capacity = capacity;
  return o;
}

class ClusterTest : public ::testing::Test {
 protected:
  std::unique_ptr<Cluster> member(const std::string& name, uint32_t capacity = 10,
                                  uint32_t envs = 0) {
    auto c = makeEtcdCluster(options(name, capacity), kv_.client());
    LocalHost local;
    local.sample = [envs](HostFacts& f) { f.environments = envs; };
    EXPECT_TRUE(c->start(local).isOk());
    return c;
  }
  FakeKv kv_;
};

TEST_F(ClusterTest, AMemberRegistersUnderItsLeaseAndSeesTheOthers) {
  auto a = member("qa-1");
  auto b = member("qa-2");
  EXPECT_TRUE(kv_.data().count("/t/hosts/qa-1"));
  EXPECT_NE(kv_.data()["/t/hosts/qa-1"].lease, 0);
  ASSERT_TRUE(eventually([&] { return a->hosts().size() == 2; }));
  EXPECT_TRUE(a->connected());
  auto hosts = a->hosts();
  EXPECT_EQ(hosts[0].facts.name, "qa-1");
  EXPECT_TRUE(hosts[0].self);
  EXPECT_EQ(hosts[1].state, HostState::kUp);
  b->stop();  // revokes: gone at once, not a TTL later
  EXPECT_FALSE(kv_.data().count("/t/hosts/qa-2"));
}

TEST_F(ClusterTest, PlacementGoesToTheFreestHostAndAnOwnerIsKept) {
  auto a = member("qa-1", 10, 8);
  auto b = member("qa-2", 10, 1);
  ASSERT_TRUE(eventually([&] { return a->hosts().size() == 2; }));
  auto o = a->place("EXMP-1", "exmp-1", "busybox", "");
  ASSERT_TRUE(o.isOk()) << o.status().message();
  EXPECT_EQ(o->host, "qa-2");
  ASSERT_TRUE(eventually([&] { return b->owner("exmp-1").has_value(); }));
  // Asked again, through either host, and naming another: the owner stays.
  EXPECT_EQ(b->place("EXMP-1", "exmp-1", "busybox", "")->host, "qa-2");
  EXPECT_EQ(a->place("EXMP-1", "exmp-1", "busybox", "qa-1")->host, "qa-2");
  // A named host is taken when the ticket is new.
  EXPECT_EQ(a->place("EXMP-2", "exmp-2", "busybox", "qa-1")->host, "qa-1");
  auto missing = a->place("EXMP-3", "exmp-3", "busybox", "qa-9");
  EXPECT_EQ(missing.status().code(), Code::kNotFound);
  EXPECT_NE(missing.status().message().find("qa-9"), std::string::npos);
}

TEST_F(ClusterTest, ABurstOfNewTicketsSpreadsByCapacityBeforeAnyHostRepublishes) {
  auto a = member("qa-1", 4);
  auto b = member("qa-2", 2);
  auto c = member("qa-3", 2);
  ASSERT_TRUE(eventually([&] { return a->hosts().size() == 3; }));
  std::map<std::string, int> placed;
  for (int i = 0; i < 8; ++i) {
    auto o = a->place("B-" + std::to_string(i), "b-" + std::to_string(i), "busybox", "");
    ASSERT_TRUE(o.isOk()) << o.status().message();
    ++placed[o->host];
  }
  EXPECT_EQ(placed, (std::map<std::string, int>{{"qa-1", 4}, {"qa-2", 2}, {"qa-3", 2}}));
  auto full = a->place("B-9", "b-9", "busybox", "");
  EXPECT_EQ(full.status().code(), Code::kFailedPrecondition);
}

TEST_F(ClusterTest, ConcurrentPlacementsOfOneTicketAgreeOnOneOwner) {
  std::vector<std::unique_ptr<Cluster>> m;
  for (int i = 0; i < 3; ++i) m.push_back(member("qa-" + std::to_string(i)));
  ASSERT_TRUE(eventually([&] {
    return m[0]->hosts().size() == 3 && m[1]->hosts().size() == 3 && m[2]->hosts().size() == 3;
  }));
  std::vector<std::thread> threads;
  std::mutex mu;
  std::map<std::string, std::set<std::string>> owners;
  for (int t = 0; t < 20; ++t) {
    threads.emplace_back([&, t] {
      const std::string slug = "t-" + std::to_string(t % 5);
      auto o = m[static_cast<size_t>(t % 3)]->place("T-" + std::to_string(t % 5), slug, "busybox",
                                                    "qa-" + std::to_string(t % 3));
      ASSERT_TRUE(o.isOk()) << o.status().message();
      std::lock_guard lock(mu);
      owners[slug].insert(o->host);
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_EQ(owners.size(), 5u);
  for (const auto& [slug, hosts] : owners) EXPECT_EQ(hosts.size(), 1u) << slug;
}

TEST_F(ClusterTest, ADownHostsTicketIsReplacedOnlyWithTheRevisionRead) {
  auto a = member("qa-1");
  ASSERT_TRUE(kv_.put("/t/tickets/exmp-5", encodeTicket({"EXMP-5", "qa-gone", 1}), 0).isOk());
  ASSERT_TRUE(eventually([&] { return a->owner("exmp-5").has_value(); }));
  auto gone = a->host("qa-gone");
  ASSERT_TRUE(gone);
  EXPECT_EQ(gone->state, HostState::kDown);
  auto o = a->place("EXMP-5", "exmp-5", "busybox", "");
  ASSERT_TRUE(o.isOk()) << o.status().message();
  EXPECT_EQ(o->host, "qa-1");
  EXPECT_EQ(decodeTicket(kv_.data()["/t/tickets/exmp-5"].value)->host, "qa-1");
}

TEST_F(ClusterTest, AnExpiredLeaseMakesTheHostDownAndItRegistersAgain) {
  auto a = member("qa-1");
  auto b = member("qa-2");
  ASSERT_TRUE(eventually([&] { return a->hosts().size() == 2; }));
  ASSERT_TRUE(a->place("EXMP-6", "exmp-6", "busybox", "qa-2").isOk());
  std::atomic<bool> sawDown{false};
  a->onChange([&] {
    auto h = a->host("qa-2");
    if (h && h->state == HostState::kDown) sawDown = true;
  });
  const int64_t lease = kv_.data()["/t/hosts/qa-2"].lease;
  kv_.expire(lease);
  EXPECT_TRUE(eventually([&] { return sawDown.load(); }));
  // qa-2's keeper finds its lease gone and registers under a new one.
  ASSERT_TRUE(eventually([&] {
    auto h = a->host("qa-2");
    return h && h->state == HostState::kUp && kv_.data().count("/t/hosts/qa-2") &&
           kv_.data()["/t/hosts/qa-2"].lease != lease;
  }));
  a->onChange(nullptr);
}

TEST_F(ClusterTest, DrainStopsNewPlacements) {
  auto a = member("qa-1");
  auto b = member("qa-2");
  ASSERT_TRUE(eventually([&] { return a->hosts().size() == 2; }));
  ASSERT_TRUE(a->setDraining("qa-2", true).isOk());
  ASSERT_TRUE(eventually([&] { return b->host("qa-2")->state == HostState::kDraining; }));
  for (int i = 0; i < 5; ++i) {
    const std::string t = "D-" + std::to_string(i);
    EXPECT_EQ(b->place(t, "d-" + std::to_string(i), "busybox", "")->host, "qa-1");
  }
  auto named = a->place("D-9", "d-9", "busybox", "qa-2");
  EXPECT_EQ(named.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(named.status().message().find("draining"), std::string::npos);
  EXPECT_EQ(a->setDraining("qa-9", true).code(), Code::kNotFound);
  ASSERT_TRUE(a->setDraining("qa-2", false).isOk());
  EXPECT_TRUE(eventually([&] { return b->host("qa-2")->state == HostState::kUp; }));
}

TEST_F(ClusterTest, WithEtcdDownPlacementIsUnavailableAndTheCacheStillAnswers) {
  auto a = member("qa-1");
  ASSERT_TRUE(a->place("EXMP-7", "exmp-7", "busybox", "").isOk());
  kv_.setDown(true);
  ASSERT_TRUE(eventually([&] { return !a->connected(); }));
  auto r = a->place("EXMP-8", "exmp-8", "busybox", "");
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
  EXPECT_NE(r.status().message().find("etcd is unreachable"), std::string::npos);
  // What was placed is still known, and its owner still answers for it.
  ASSERT_TRUE(a->owner("exmp-7"));
  EXPECT_EQ(a->owner("exmp-7")->host, "qa-1");
  auto again = a->place("EXMP-7", "exmp-7", "busybox", "");
  ASSERT_TRUE(again.isOk()) << again.status().message();
  EXPECT_EQ(again->host, "qa-1");
  kv_.setDown(false);
  ASSERT_TRUE(eventually([&] { return a->connected(); }));
  EXPECT_TRUE(a->place("EXMP-8", "exmp-8", "busybox", "").isOk());
}

TEST_F(ClusterTest, HostileEntriesAreIgnored) {
  auto a = member("qa-1");
  ASSERT_TRUE(kv_.put("/t/hosts/evil", "{not json", 0).isOk());
  ASSERT_TRUE(kv_.put("/t/hosts/qa-x", encodeHost([] {
                        HostFacts f;
                        f.name = "qa-y";  // not its key's
                        f.api = "1.2.3.4:1";
                        f.router = "1.2.3.4:2";
                        return f;
                      }()),
                      0)
                  .isOk());
  ASSERT_TRUE(kv_.put("/t/tickets/other", encodeTicket({"EXMP-9", "qa-1", 0}), 0).isOk());
  ASSERT_TRUE(kv_.put("/t/tickets/junk", std::string(100 * 1024, 'x'), 0).isOk());
  ASSERT_TRUE(kv_.put("/t/drain/../../x", "1", 0).isOk());
  ASSERT_TRUE(kv_.put("/t/tickets/exmp-10", encodeTicket({"EXMP-10", "qa-1", 0}), 0).isOk());
  ASSERT_TRUE(eventually([&] { return a->owner("exmp-10").has_value(); }));
  EXPECT_EQ(a->hosts().size(), 1u);
  EXPECT_FALSE(a->owner("other"));
  EXPECT_FALSE(a->owner("junk"));
  // A ticket whose entry is junk is placed over it.
  auto o = a->place("JUNK", "junk", "busybox", "");
  ASSERT_TRUE(o.isOk()) << o.status().message();
  EXPECT_EQ(o->host, "qa-1");
}

TEST_F(ClusterTest, ReleaseRemovesOnlyThisHostsEntry) {
  auto a = member("qa-1");
  auto b = member("qa-2");
  ASSERT_TRUE(eventually([&] { return a->hosts().size() == 2; }));
  ASSERT_TRUE(a->place("R-1", "r-1", "busybox", "qa-1").isOk());
  ASSERT_TRUE(a->place("R-2", "r-2", "busybox", "qa-2").isOk());
  EXPECT_TRUE(a->release("r-1").isOk());
  EXPECT_FALSE(kv_.data().count("/t/tickets/r-1"));
  EXPECT_EQ(a->release("r-2").code(), Code::kFailedPrecondition);
  EXPECT_TRUE(kv_.data().count("/t/tickets/r-2"));
  EXPECT_TRUE(a->release("never").isOk());
}

// Deleted while its host is down: the entry goes, and the host is told (a
// mark) so that it reclaims the container when it comes back rather than
// claiming the ticket again. A live host's ticket is not forgotten.
TEST_F(ClusterTest, ALostTicketIsForgottenWithAMarkForItsHost) {
  auto a = member("qa-1");
  auto b = member("qa-2");
  ASSERT_TRUE(eventually([&] { return a->hosts().size() == 2; }));
  ASSERT_TRUE(a->place("L-1", "l-1", "busybox", "qa-2").isOk());
  EXPECT_EQ(a->forgetLost("l-1").code(), Code::kFailedPrecondition);
  b->stop();
  ASSERT_TRUE(eventually([&] { return a->host("qa-2")->state == HostState::kDown; }));
  ASSERT_TRUE(a->forgetLost("l-1").isOk());
  EXPECT_FALSE(kv_.data().count("/t/tickets/l-1"));
  EXPECT_EQ(kv_.data()["/t/gone/l-1"].value, "qa-2");
  auto back = member("qa-2");
  ASSERT_TRUE(eventually([&] { return back->forgotten().size() == 1; }));
  EXPECT_EQ(back->forgotten()[0].host, "qa-2");
  ASSERT_TRUE(back->clearForgotten("l-1").isOk());
  EXPECT_FALSE(kv_.data().count("/t/gone/l-1"));
  EXPECT_TRUE(back->forgotten().empty());
}

// An environment the map does not name is claimed for its host, draining
// or not; one another host owns stays that host's.
TEST_F(ClusterTest, AClaimTakesOnlyWhatNoHostOwns) {
  auto a = member("qa-1");
  auto b = member("qa-2");
  ASSERT_TRUE(eventually([&] { return a->hosts().size() == 2; }));
  ASSERT_TRUE(a->setDraining("qa-1", true).isOk());
  auto mine = a->claim("C-1", "c-1");
  ASSERT_TRUE(mine.isOk()) << mine.status().message();
  EXPECT_EQ(mine->host, "qa-1");
  EXPECT_EQ(a->owner("c-1")->host, "qa-1");
  auto theirs = b->claim("C-1", "c-1");
  ASSERT_TRUE(theirs.isOk());
  EXPECT_EQ(theirs->host, "qa-1");
  EXPECT_EQ(decodeTicket(kv_.data()["/t/tickets/c-1"].value)->host, "qa-1");
}

}  // namespace
}  // namespace qabox::cluster
