#include "runtime/data_pool.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "runtime/lxc_runtime.h"

namespace qabox {
namespace {

namespace fs = std::filesystem;

bool has(const Status& s, const std::string& text) {
  return s.message().find(text) != std::string::npos;
}

TEST(DataPool, PathsFollowTheLayout) {
  EXPECT_EQ(datasetVolume("/p", "abc", 1), "/p/datasets/abc/1");
  EXPECT_EQ(datasetVolumeDir("/p", "abc"), "/p/datasets/abc");
  EXPECT_EQ(envDataDir("/p", "qabox-x"), "/p/envs/qabox-x");
}

TEST(DataPool, APoolOffBtrfsIsRefusedSayingWhatToDo) {
  char tmpl[] = "/dev/shm/qabox-pool-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  Status s = preparePool(dir);
  EXPECT_EQ(s.code(), Code::kFailedPrecondition);
  EXPECT_TRUE(has(s, "storage.data_pool \"" + dir + "\": not on btrfs")) << s.toString();
  EXPECT_TRUE(has(s, "mkfs.btrfs a volume and mount it there")) << s.toString();
  EXPECT_FALSE(fs::exists(dir + "/datasets")) << "nothing is made in a refused pool";
  s = preparePool(dir + "/missing");
  EXPECT_EQ(s.code(), Code::kFailedPrecondition);
  EXPECT_TRUE(has(s, "no such directory (mkfs.btrfs")) << s.toString();
  s = preparePool("relative");
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  fs::remove_all(dir);
}

TEST(DataPool, NamesAndKeptPathsAreCheckedBeforeAnythingIsTouched) {
  for (const char* bad : {"", ".hidden", "a/b", "x.part", "a b", "..", "a\n"}) {
    EXPECT_EQ(checkPoolName("dataset hash", bad).code(), Code::kInvalidArgument) << bad;
  }
  EXPECT_TRUE(checkPoolName("container", "qabox-exmp-1").isOk());
  EXPECT_TRUE(checkPoolName("dataset hash", "3f2a9c.v1").isOk());
  // The pool need not exist: these are refused first.
  for (const std::vector<std::string>& kept :
       std::vector<std::vector<std::string>>{{}, {"/var/lib/x"}, {"var/../../etc"}, {""}}) {
    auto r = makeDatasetVolume("/nonexistent", "h", "/nonexistent-src", kept, 0);
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << r.status().toString();
  }
  EXPECT_EQ(deleteDatasetVolume("/nonexistent", "../x").code(), Code::kInvalidArgument);
  EXPECT_EQ(deleteEnvData("/nonexistent", "a/b").code(), Code::kInvalidArgument);
}

TEST(DataMountEntry, IsARelativeBindWithoutSuidOrDevices) {
  auto e = dataMountEntry("/pool/envs/qabox-a/0", "/var/lib/postgresql/15/main", true);
  ASSERT_TRUE(e.isOk()) << e.status().toString();
  EXPECT_EQ(*e,
            "/pool/envs/qabox-a/0 var/lib/postgresql/15/main none "
            "bind,nosuid,nodev,idmap=container 0 0");
  e = dataMountEntry("/pool/envs/qabox-a/1", "/var/lib/redis", false);
  ASSERT_TRUE(e.isOk());
  EXPECT_EQ(*e, "/pool/envs/qabox-a/1 var/lib/redis none bind,nosuid,nodev 0 0");
}

TEST(DataMountEntry, RefusesWhatWouldBreakTheLineOrLeaveTheRootfs) {
  for (const char* target : {"", "/", "relative", "/a/../etc", "/a//b", "/a/./b", "/a/", "/a b",
                             "/a\tb", "/a\nlxc.hook.pre-start = /x", "/a\\040b", "/a,b"}) {
    auto e = dataMountEntry("/pool/envs/x/0", target, false);
    EXPECT_EQ(e.status().code(), Code::kInvalidArgument) << target;
  }
  EXPECT_EQ(dataMountEntry("/po ol/0", "/a", false).status().code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace qabox
