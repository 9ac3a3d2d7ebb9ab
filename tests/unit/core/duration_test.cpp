#include "core/duration.h"

#include <gtest/gtest.h>

namespace qabox {
namespace {

using std::chrono::milliseconds;

TEST(Duration, ParsesUnits) {
  EXPECT_EQ(*parseDuration("0"), milliseconds(0));
  EXPECT_EQ(*parseDuration("90s"), milliseconds(90'000));
  EXPECT_EQ(*parseDuration("10m"), milliseconds(600'000));
  EXPECT_EQ(*parseDuration("72h"), milliseconds(72 * 3'600'000LL));
  EXPECT_EQ(*parseDuration("14d"), milliseconds(14 * 86'400'000LL));
  EXPECT_EQ(*parseDuration("1h30m"), milliseconds(5'400'000));
  EXPECT_EQ(*parseDuration("250ms"), milliseconds(250));
}

TEST(Duration, RejectsWithTheRule) {
  for (const char* bad : {"", "10", "h", "-1h", "1x", "1.5h", "10 m", "99999999999999d"}) {
    auto d = parseDuration(bad);
    ASSERT_FALSE(d.isOk()) << bad;
    EXPECT_NE(d.status().message().find("unit s, m, h or d"), std::string::npos);
  }
}

TEST(Duration, Formats) {
  EXPECT_EQ(formatDuration(milliseconds(45'000)), "45s");
  EXPECT_EQ(formatDuration(milliseconds(3 * 3'600'000)), "3h");
  EXPECT_EQ(formatDuration(milliseconds(2 * 86'400'000LL + 4 * 3'600'000)), "2d4h");
  EXPECT_EQ(formatDuration(milliseconds(120)), "120ms");
}

}  // namespace
}  // namespace qabox
