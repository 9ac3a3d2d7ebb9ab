// The frames the agent sends `qabox-lxc place`: what parses, and every
// path and frame the helper must refuse before it attaches to anything.
#include "runtime/helper_protocol.h"

#include <gtest/gtest.h>

namespace qabox {
namespace {

TEST(PlaceFrames, RoundTripInOrder) {
  std::string in = placeWriteHeader("/etc/qabox/app.env", 0600, 9) + "A='b c'\n\n" +
                   placeWriteHeader("/etc/qabox/app.run", 0740, 0) + placeRemoveHeader("/x/y");
  std::string error;
  auto frames = parsePlaceFrames(in, error);
  ASSERT_EQ(error, "");
  ASSERT_EQ(frames.size(), 3u);
  EXPECT_EQ(frames[0].path, "/etc/qabox/app.env");
  EXPECT_EQ(frames[0].mode, 0600u);
  EXPECT_EQ(frames[0].content, "A='b c'\n\n");
  EXPECT_FALSE(frames[0].remove);
  EXPECT_EQ(frames[1].content, "");
  EXPECT_EQ(frames[1].mode, 0740u);
  EXPECT_TRUE(frames[2].remove);
  EXPECT_EQ(frames[2].path, "/x/y");
}

TEST(PlaceFrames, ContentMayHoldAnythingAHeaderWould) {
  const std::string tricky = "W 777 3 /etc/passwd\nD /etc/shadow\n\0x";
  std::string in = placeWriteHeader("/a", 0644, tricky.size()) + tricky;
  std::string error;
  auto frames = parsePlaceFrames(in, error);
  ASSERT_EQ(error, "");
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].content, tricky);
}

TEST(PlaceFrames, RefusesBadPathsAndFramesWhole) {
  for (const std::string& in : {
           placeWriteHeader("relative/x", 0644, 0),
           placeWriteHeader("/etc/../../host", 0644, 0),
           placeWriteHeader("/etc/./x", 0644, 0),
           placeWriteHeader("/etc//x", 0644, 0),
           placeWriteHeader("/etc/qabox/", 0644, 0),
           placeRemoveHeader("/"),
           placeRemoveHeader(""),
           std::string("W 644 10 /a\nshort"),    // fewer bytes than it says
           std::string("W 99999 0 /a\n"),        // a mode past 07777
           std::string("W 40000000644 0 /a\n"),  // one that would wrap to 0644
           std::string("W -644 0 /a\n"),
           std::string("W 644 -1 /a\n"),
           std::string("W 644 99999999999999999999999 /a\n"),
           std::string("W x 0 /a\n"),
           std::string("X /a\n"),
           std::string("W 644 0 /a"),  // no end to its header
           placeWriteHeader("/" + std::string(kPlaceMaxPath, 'a'), 0644, 0),
       }) {
    std::string error;
    // One good frame first: nothing is taken unless everything parses.
    auto frames = parsePlaceFrames(placeWriteHeader("/ok", 0644, 0) + in, error);
    EXPECT_NE(error, "") << in;
    EXPECT_TRUE(frames.empty()) << in;
  }
  std::string error;
  EXPECT_TRUE(parsePlaceFrames(std::string(kPlaceMaxBytes + 1, 'x'), error).empty());
  EXPECT_NE(error.find("bytes of files"), std::string::npos);
}

}  // namespace
}  // namespace qabox
