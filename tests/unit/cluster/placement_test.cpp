#include <gtest/gtest.h>

#include "cluster/cluster.h"

namespace qabox::cluster {
namespace {

HostView host(const std::string& name, uint32_t capacity, uint32_t envs,
              HostState state = HostState::kUp, std::vector<std::string> images = {},
              uint64_t freeMem = 0) {
  HostView h;
  h.facts.name = name;
  h.facts.capacity = capacity;
  h.facts.environments = envs;
  h.facts.images = std::move(images);
  h.facts.freeMemoryBytes = freeMem;
  h.state = state;
  return h;
}

TEST(Placement, TheHostWithTheMostFreePlacesWins) {
  EXPECT_EQ(choosePlacement({host("a", 10, 8), host("b", 10, 2), host("c", 20, 15)}, "busybox"),
            "b");
}

TEST(Placement, DrainingDownAndFullHostsTakeNothing) {
  EXPECT_EQ(choosePlacement({host("a", 10, 0, HostState::kDraining),
                             host("b", 10, 0, HostState::kDown), host("c", 5, 5), host("d", 5, 4)},
                            "busybox"),
            "d");
  EXPECT_EQ(
      choosePlacement({host("a", 10, 0, HostState::kDraining), host("c", 5, 5), host("e", 3, 7)},
                      "busybox"),
      std::nullopt);
  EXPECT_EQ(choosePlacement({}, "busybox"), std::nullopt);
}

TEST(Placement, TiesGoToTheImageThenMemoryThenName) {
  EXPECT_EQ(
      choosePlacement({host("a", 10, 5), host("b", 10, 5, HostState::kUp, {"debian"})}, "debian"),
      "b");
  EXPECT_EQ(choosePlacement(
                {host("a", 10, 5, HostState::kUp, {}, 1), host("b", 10, 5, HostState::kUp, {}, 2)},
                "debian"),
            "b");
  EXPECT_EQ(choosePlacement({host("b", 10, 5), host("a", 10, 5)}, "debian"), "a");
}

TEST(Placement, StateNames) {
  EXPECT_EQ(hostStateName(HostState::kUp), "UP");
  EXPECT_EQ(hostStateName(HostState::kDraining), "DRAINING");
  EXPECT_EQ(hostStateName(HostState::kDown), "DOWN");
}

}  // namespace
}  // namespace qabox::cluster
