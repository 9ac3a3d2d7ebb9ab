#include "sys/subid.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace qabox {
namespace {

namespace fs = std::filesystem;

TEST(SubIds, ParsesShadowsFormatAndSkipsWhatShadowSkips) {
  auto e = parseSubIds(
      "alice:100000:65536\n# comment\n\nbob:165536:65536\nbad\n:1:2\nx:1:0\n"
      "y:1:2:3\nz:a:1\n0:1000000000:65536");
  ASSERT_EQ(e.size(), 3u);
  EXPECT_EQ(e[0].owner, "alice");
  EXPECT_EQ(e[0].range, (IdRange{100000, 65536}));
  EXPECT_EQ(e[1].owner, "bob");
  EXPECT_EQ(e[2].owner, "0");
  EXPECT_EQ(e[2].range.end(), 1000065536u);
}

TEST(SubIds, AddsOnlyWhatTheAgentsUserDoesNotHold) {
  const std::vector<std::string> root = {"root", "0"};
  auto none = missingSubIdLines("", root, {{1000000000, 65536}});
  ASSERT_TRUE(none.isOk());
  EXPECT_EQ(*none, std::vector<std::string>{"root:1000000000:65536"});
  // Held already, under the name or the uid, or inside a larger range.
  for (const char* text : {"root:1000000000:65536\n", "0:1000000000:65536\n",
                           "alice:100000:65536\nroot:999000000:2000000000\n"}) {
    auto r = missingSubIdLines(text, root, {{1000000000, 65536}});
    ASSERT_TRUE(r.isOk()) << text;
    EXPECT_TRUE(r->empty()) << text;
  }
  // Two ranges, one held: the other is added, once.
  auto two = missingSubIdLines("root:100000:65536\n", root,
                               {{100000, 65536}, {1000000000, 65536}, {1000000000, 65536}});
  ASSERT_TRUE(two.isOk());
  EXPECT_EQ(*two, std::vector<std::string>{"root:1000000000:65536"});
}

TEST(SubIds, NeverTakesIdsALoginUserHolds) {
  // Debian's useradd gave alice the first range: the old default base.
  auto r = missingSubIdLines("alice:100000:65536\n", {"root", "0"}, {{100000, 65536}});
  ASSERT_FALSE(r.isOk());
  EXPECT_NE(r.status().message().find("\"alice:100000:65536\""), std::string::npos)
      << r.status().message();
  // A partial overlap is refused too.
  EXPECT_FALSE(missingSubIdLines("bob:1000030000:10\n", {"root"}, {{1000000000, 65536}}).isOk());
}

class SubIdFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("qabox-subid-" + std::to_string(getpid()));
    fs::create_directories(dir_);
    path_ = (dir_ / "subuid").string();
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string read() {
    std::ifstream in(path_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  fs::path dir_;
  std::string path_;
};

TEST_F(SubIdFile, AppendsKeepingEveryOtherLineAndIsIdempotent) {
  std::ofstream(path_) << "alice:100000:65536\n# kept\nbob:165536:65536";
  ASSERT_TRUE(reserveSubIds(path_, {"root", "0"}, {{1000000000, 65536}}).isOk());
  const std::string want = "alice:100000:65536\n# kept\nbob:165536:65536\nroot:1000000000:65536\n";
  EXPECT_EQ(read(), want);
  struct stat st {};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u);
  ASSERT_TRUE(reserveSubIds(path_, {"root", "0"}, {{1000000000, 65536}}).isOk());
  EXPECT_EQ(read(), want);
  EXPECT_FALSE(fs::exists(path_ + ".qabox-tmp"));
}

TEST_F(SubIdFile, CreatesAMissingFile) {
  ASSERT_TRUE(reserveSubIds(path_, {"root"}, {{1000000000, 65536}}).isOk());
  EXPECT_EQ(read(), "root:1000000000:65536\n");
}

TEST_F(SubIdFile, NamesTheLinesToAddWhenTheFileIsADirectory) {
  // What root cannot write either: the temporary file's place is taken.
  fs::create_directories(path_ + ".qabox-tmp/x");
  Status s = reserveSubIds(path_, {"root"}, {{1000000000, 65536}});
  ASSERT_FALSE(s.isOk());
  EXPECT_NE(s.message().find("add these lines to it yourself:\nroot:1000000000:65536\n"),
            std::string::npos)
      << s.message();
  EXPECT_FALSE(fs::exists(path_));
}

}  // namespace
}  // namespace qabox
