#include <gtest/gtest.h>

#include "fakes/fake_time.h"

namespace qabox {
namespace {

using namespace std::chrono_literals;

TEST(SystemTime, FollowsTheRealClocks) {
  const TimeSource& t = systemTime();
  auto wall = Clock::now();
  EXPECT_LE(std::chrono::abs(t.now() - wall), 5s);
  auto before = std::chrono::steady_clock::now();
  auto mono = t.steadyNow();
  EXPECT_LE(before, mono);
  EXPECT_LE(mono, std::chrono::steady_clock::now());
}

TEST(FakeTime, MovesOnlyWhenTold) {
  FakeTime t;
  auto wall = t.now();
  auto mono = t.steadyNow();
  EXPECT_EQ(t.now(), wall);
  t.advance(90s);
  EXPECT_EQ(t.now() - wall, 90s);
  EXPECT_EQ(t.steadyNow() - mono, 90s);
  t.set(wall);
  EXPECT_EQ(t.now(), wall);
  EXPECT_EQ(t.steadyNow() - mono, 90s);  // monotonic time never goes back
}

}  // namespace
}  // namespace qabox
