#include <gtest/gtest.h>

#include "proxy/router.h"

namespace qabox {
namespace {

Route ready(std::string slug, std::string ip, uint16_t port, uint64_t generation = 1) {
  Route r;
  r.slug = std::move(slug);
  r.state = EnvState::kReady;
  r.ip = std::move(ip);
  r.port = port;
  r.generation = generation;
  return r;
}

TEST(RouteTable, SetLookupRemove) {
  RouteTable t;
  EXPECT_FALSE(t.lookup("alpha").has_value());
  t.set(ready("Alpha", "10.44.0.2", 8080));
  auto r = t.lookup("ALPHA");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->slug, "alpha");
  EXPECT_EQ(r->ip, "10.44.0.2");
  EXPECT_EQ(r->port, 8080);
  t.set(ready("beta", "10.44.0.3", 80));
  auto all = t.all();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].slug, "alpha");
  EXPECT_EQ(all[1].slug, "beta");
  t.remove("alpha");
  EXPECT_FALSE(t.lookup("alpha").has_value());
  EXPECT_EQ(t.all().size(), 1u);
  t.remove("missing");
  EXPECT_EQ(t.all().size(), 1u);
}

TEST(RouteTable, AnotherHostsRoutesNeverReplaceNorRemoveThisHostsOwn) {
  RouteTable t;
  Route remote = ready("exmp-1", "10.9.0.3", 80);
  remote.via = "qa-2";
  t.setRemote(remote);
  EXPECT_EQ(t.lookup("exmp-1")->via, "qa-2");
  // Deployed here: this host's route wins, and the cluster can not take it.
  t.set(ready("exmp-1", "10.44.0.2", 8080));
  t.setRemote(remote);
  EXPECT_EQ(t.lookup("exmp-1")->ip, "10.44.0.2");
  t.removeRemote("exmp-1");
  ASSERT_TRUE(t.lookup("exmp-1").has_value());
  EXPECT_TRUE(t.lookup("exmp-1")->via.empty());
  // Gone from here: the cluster's route takes its place, and goes when told.
  t.remove("exmp-1");
  t.setRemote(remote);
  EXPECT_EQ(t.lookup("exmp-1")->via, "qa-2");
  t.removeRemote("exmp-1");
  EXPECT_FALSE(t.lookup("exmp-1").has_value());
}

TEST(RouteTable, ChangesBumpTheVersionAndEqualSetsDoNot) {
  RouteTable t;
  uint64_t v0 = t.version();
  t.set(ready("alpha", "10.44.0.2", 80));
  uint64_t v1 = t.version();
  EXPECT_GT(v1, v0);
  t.set(ready("alpha", "10.44.0.2", 80));
  EXPECT_EQ(t.version(), v1);
  t.set(ready("alpha", "10.44.0.2", 80, 2));
  EXPECT_GT(t.version(), v1);
  uint64_t v2 = t.version();
  t.remove("alpha");
  EXPECT_GT(t.version(), v2);
}

TEST(RouteTable, ReadersKeepTheirSnapshot) {
  RouteTable t;
  t.set(ready("alpha", "10.44.0.2", 80));
  auto before = t.snapshot();
  t.remove("alpha");
  EXPECT_FALSE(t.lookup("alpha").has_value());
  EXPECT_NE(before, t.snapshot());
}

TEST(RouteTable, NoStatsWithoutUse) {
  RouteTable t;
  t.set(ready("alpha", "10.44.0.2", 80));
  EXPECT_TRUE(t.takeStats().empty());
  EXPECT_EQ(t.inFlight("10.44.0.2", 80), 0);
}

}  // namespace
}  // namespace qabox
