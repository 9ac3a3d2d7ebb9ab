#include "sys/disk_usage.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "../store/temp_dir.h"

namespace qabox {
namespace {

namespace fs = std::filesystem;

void writeBytes(const fs::path& p, size_t n) {
  std::ofstream out(p, std::ios::binary);
  std::string chunk(64 << 10, 'x');
  while (n > 0) {
    size_t k = std::min(n, chunk.size());
    out.write(chunk.data(), static_cast<std::streamsize>(k));
    n -= k;
  }
}

uint64_t measured(const std::string& root, const TreeBounds& b = {}) {
  auto u = measureTree(root, b);
  EXPECT_TRUE(u.isOk()) << u.status().toString();
  if (!u) return 0;
  EXPECT_EQ(u->bound, TreeUsage::Bound::kNone) << u->why;
  return u->bytes;
}

TEST(MeasureTree, CountsAllocatedBlocksOfFilesAndDirectories) {
  test::TempDir dir;
  uint64_t empty = measured(dir.path());
  fs::create_directories(dir.path() + "/a/b");
  writeBytes(dir.path() + "/a/b/one", 1 << 20);
  writeBytes(dir.path() + "/two", 512 << 10);
  ::sync();
  uint64_t bytes = measured(dir.path());
  EXPECT_GE(bytes, empty + (1 << 20) + (512 << 10));
  EXPECT_LT(bytes, empty + (1 << 20) + (512 << 10) + (256 << 10));
  auto u = measureTree(dir.path());
  ASSERT_TRUE(u.isOk());
  EXPECT_EQ(u->entries, 5u);  // the root, a, a/b, a/b/one, two
}

TEST(MeasureTree, SparseFilesCountTheBlocksTheyHoldNotTheirSize) {
  test::TempDir dir;
  std::string p = dir.path() + "/sparse";
  int fd = ::open(p.c_str(), O_WRONLY | O_CREAT, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, off_t{1} << 34), 0);  // 16 GiB apparent
  ASSERT_EQ(::pwrite(fd, "data", 4, off_t{1} << 30), 4);
  ::close(fd);
  EXPECT_LT(measured(dir.path()), 1u << 20);
}

TEST(MeasureTree, HardLinksCountOnce) {
  test::TempDir dir;
  writeBytes(dir.path() + "/f", 2 << 20);
  fs::create_directories(dir.path() + "/d");
  for (int i = 0; i < 10; ++i) {
    ASSERT_EQ(
        ::link((dir.path() + "/f").c_str(), (dir.path() + "/d/l" + std::to_string(i)).c_str()), 0);
  }
  uint64_t bytes = measured(dir.path());
  EXPECT_GE(bytes, 2u << 20);
  EXPECT_LT(bytes, 3u << 20);
}

TEST(MeasureTree, FollowsNoSymbolicLinkInsideOrAtTheRoot) {
  test::TempDir outside, tree;
  writeBytes(outside.path() + "/big", 4 << 20);
  fs::create_directory_symlink(outside.path(), tree.path() + "/srv");
  fs::create_symlink(outside.path() + "/big", tree.path() + "/file");
  fs::create_directory_symlink("/", tree.path() + "/root");
  EXPECT_LT(measured(tree.path()), 1u << 20);

  std::string link = outside.path() + "/link-to-tree";
  fs::create_directory_symlink(tree.path(), link);
  auto viaLink = measureTree(link);
  EXPECT_FALSE(viaLink.isOk());  // a root that is a link is refused, not followed
}

TEST(MeasureTree, NeverOpensFifosOrDevices) {
  test::TempDir dir;
  ASSERT_EQ(::mkfifo((dir.path() + "/fifo").c_str(), 0600), 0);
  fs::create_directories(dir.path() + "/d");
  ASSERT_EQ(::mkfifo((dir.path() + "/d/fifo").c_str(), 0600), 0);
  auto u = measureTree(dir.path());  // would hang in open() if it opened them
  ASSERT_TRUE(u.isOk());
  EXPECT_EQ(u->entries, 4u);
}

TEST(MeasureTree, DeepTreesAreWalkedToTheDepthBoundAndThenReported) {
  test::TempDir dir;
  // 400 levels, made relative to each parent: the path is far beyond PATH_MAX.
  int fd = ::open(dir.path().c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(fd, 0);
  std::string name(200, 'd');
  for (int i = 0; i < 400; ++i) {
    ASSERT_EQ(::mkdirat(fd, name.c_str(), 0700), 0) << i;
    int next = ::openat(fd, name.c_str(), O_RDONLY | O_DIRECTORY);
    ::close(fd);
    ASSERT_GE(next, 0);
    fd = next;
  }
  int f = ::openat(fd, "deepest", O_WRONLY | O_CREAT, 0600);
  std::string mb(1 << 20, 'x');
  ASSERT_EQ(::write(f, mb.data(), mb.size()), static_cast<ssize_t>(mb.size()));
  ::close(f);
  ::close(fd);

  TreeBounds roomy;
  roomy.maxDepth = 500;
  auto whole = measureTree(dir.path(), roomy);
  ASSERT_TRUE(whole.isOk());
  EXPECT_EQ(whole->bound, TreeUsage::Bound::kNone) << whole->why;
  EXPECT_EQ(whole->entries, 402u);
  EXPECT_GE(whole->bytes, 1u << 20);

  auto bounded = measureTree(dir.path());  // 256 levels by default
  ASSERT_TRUE(bounded.isOk());
  EXPECT_EQ(bounded->bound, TreeUsage::Bound::kDepth);
  EXPECT_NE(bounded->why.find("256"), std::string::npos) << bounded->why;

  // Clean up without PATH_MAX trouble either.
  std::error_code ec;
  fs::remove_all(dir.path(), ec);
}

TEST(MeasureTree, StopsAtTheEntryBound) {
  test::TempDir dir;
  for (int i = 0; i < 100; ++i) std::ofstream(dir.path() + "/f" + std::to_string(i)) << "x";
  TreeBounds b;
  b.maxEntries = 50;
  auto u = measureTree(dir.path(), b);
  ASSERT_TRUE(u.isOk());
  EXPECT_EQ(u->bound, TreeUsage::Bound::kEntries);
  EXPECT_NE(u->why.find("more than 50 files"), std::string::npos) << u->why;
}

TEST(MeasureTree, AMissingRootIsNotFound) {
  auto u = measureTree("/nonexistent/qabox/upper");
  ASSERT_FALSE(u.isOk());
  EXPECT_EQ(u.status().code(), Code::kNotFound);
}

TEST(DiskSpace, FormatsAndJudgesFullness) {
  EXPECT_EQ(formatBytes(512), "512B");
  EXPECT_EQ(formatBytes(1536), "1.5K");
  EXPECT_EQ(formatBytes(10ULL << 30), "10.0G");
  EXPECT_TRUE(nearlyFull({1 << 20, 10ULL << 30, 1000, 100000}));
  EXPECT_FALSE(nearlyFull({1ULL << 30, 10ULL << 30, 50000, 100000}));
  EXPECT_TRUE(nearlyFull({1ULL << 30, 10ULL << 30, 10, 100000}));  // out of inodes
  auto s = fsSpace("/");
  ASSERT_TRUE(s.isOk());
  EXPECT_GT(s->total, 0u);
  EXPECT_EQ(writeError("writing x", ENOSPC).code(), Code::kResourceExhausted);
  EXPECT_EQ(writeError("writing x", EIO).code(), Code::kInternal);
}

}  // namespace
}  // namespace qabox
