#include "sys/btrfs.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

namespace qabox {
namespace {

namespace fs = std::filesystem;

bool has(const Status& s, const std::string& text) {
  return s.message().find(text) != std::string::npos;
}

// A scratch directory on a filesystem that is no btrfs (tmpfs).
class BtrfsErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/dev/shm/qabox-btrfs-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto b = isBtrfs(dir_);
    ASSERT_TRUE(b.isOk()) << b.status().toString();
    ASSERT_FALSE(*b);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string dir_;
};

TEST_F(BtrfsErrors, IsBtrfsReadsTheFilesystemType) {
  auto proc = isBtrfs("/proc");
  ASSERT_TRUE(proc.isOk());
  EXPECT_FALSE(*proc);
  auto missing = isBtrfs(dir_ + "/missing");
  EXPECT_EQ(missing.status().code(), Code::kNotFound);
  EXPECT_TRUE(has(missing.status(), dir_ + "/missing")) << missing.status().toString();
  EXPECT_TRUE(has(missing.status(), "No such file or directory")) << missing.status().toString();
}

TEST_F(BtrfsErrors, EveryCallOffBtrfsFailsNamingThePath) {
  const std::string sub = dir_ + "/sub";
  Status s = createSubvolume(sub);
  EXPECT_FALSE(s.isOk());
  EXPECT_TRUE(has(s, sub)) << s.toString();
  EXPECT_FALSE(fs::exists(sub));
  s = snapshotSubvolume(dir_, dir_ + "/snap", true);
  EXPECT_FALSE(s.isOk());
  EXPECT_TRUE(has(s, dir_ + "/snap")) << s.toString();
  s = setSubvolumeReadOnly(dir_, true);
  EXPECT_FALSE(s.isOk());
  EXPECT_TRUE(has(s, dir_)) << s.toString();
  s = enableQuota(dir_);
  EXPECT_FALSE(s.isOk());
  EXPECT_TRUE(has(s, "enabling quota on " + dir_)) << s.toString();
  s = limitExclusiveBytes(dir_, 1 << 20);
  EXPECT_FALSE(s.isOk());
  EXPECT_TRUE(has(s, dir_)) << s.toString();
  auto isSub = isSubvolume(dir_);
  EXPECT_FALSE(isSub.isOk() && *isSub) << "a tmpfs directory is no subvolume";
  s = deleteSubvolume(dir_);
  EXPECT_FALSE(s.isOk());
  EXPECT_TRUE(has(s, "deleting subvolume " + dir_)) << s.toString();
  EXPECT_TRUE(fs::exists(dir_)) << "a failed delete removed the directory";
}

TEST_F(BtrfsErrors, DeletingWhatIsMissingIsNoError) {
  EXPECT_TRUE(deleteSubvolume(dir_ + "/missing").isOk());
}

}  // namespace
}  // namespace qabox
