#include "sys/capped_log.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "../store/temp_dir.h"

namespace qabox {
namespace {

namespace fs = std::filesystem;

std::string slurp(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(CappedLog, UnderTheCapKeepsEverything) {
  test::TempDir dir;
  CappedLog log;
  ASSERT_TRUE(log.open(dir.path() + "/deploy.log", 1 << 20).isOk());
  ASSERT_TRUE(log.write("==> build: make\n").isOk());
  ASSERT_TRUE(log.write("ok\n").isOk());
  EXPECT_EQ(slurp(dir.path() + "/deploy.log"), "==> build: make\nok\n");
  EXPECT_EQ(log.dropped(), 0u);
  struct stat st {};
  ASSERT_EQ(::stat((dir.path() + "/deploy.log").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(CappedLog, EndlessOutputKeepsTheHeadLineAMarkerAndTheTail) {
  test::TempDir dir;
  const std::string path = dir.path() + "/deploy.log";
  const uint64_t cap = 64 << 10;
  CappedLog log;
  ASSERT_TRUE(log.open(path, cap).isOk());
  ASSERT_TRUE(log.write("==> build: yes\n").isOk());
  std::string chunk;
  for (int i = 0; i < 2000; ++i) chunk += "y\n";
  uint64_t total = 15;
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(log.write(chunk).isOk());
    total += chunk.size();
    ASSERT_LE(fs::file_size(path), cap);
  }
  ASSERT_TRUE(log.write("the last line\n").isOk());
  total += 14;
  std::string text = slurp(path);
  EXPECT_LE(text.size(), cap);
  EXPECT_EQ(text.rfind("==> build: yes\n[qabox: ", 0), 0u) << text.substr(0, 200);
  EXPECT_NE(text.find(std::to_string(log.dropped()) + " bytes of output dropped here"),
            std::string::npos);
  EXPECT_EQ(text.substr(text.size() - 16), "y\nthe last line\n");
  // Every byte is either kept or counted as dropped.
  size_t markerEnd = text.find("]\n") + 2;
  EXPECT_EQ(log.dropped() + text.size() - markerEnd + 15, total);
  EXPECT_FALSE(fs::exists(path + ".tmp"));
}

TEST(CappedLog, OneWriteLargerThanTheCap) {
  test::TempDir dir;
  const std::string path = dir.path() + "/deploy.log";
  CappedLog log;
  ASSERT_TRUE(log.open(path, 32 << 10).isOk());
  std::string big(1 << 20, 'a');
  big += "\nend\n";
  ASSERT_TRUE(log.write(big).isOk());
  std::string text = slurp(path);
  EXPECT_LE(text.size(), 32u << 10);
  EXPECT_EQ(text.substr(text.size() - 4), "end\n");
}

TEST(CappedLog, RefusesToWriteThroughALink) {
  test::TempDir dir;
  std::ofstream(dir.path() + "/target") << "keep";
  fs::create_symlink(dir.path() + "/target", dir.path() + "/deploy.log");
  CappedLog log;
  EXPECT_FALSE(log.open(dir.path() + "/deploy.log", 1 << 20).isOk());
  EXPECT_EQ(slurp(dir.path() + "/target"), "keep");
}

}  // namespace
}  // namespace qabox
