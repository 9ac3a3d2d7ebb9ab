#include "sys/idshift.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "../store/temp_dir.h"

namespace qabox {
namespace {

namespace fs = std::filesystem;

TEST(IdShift, MapsContainerIdsAndLeavesOthers) {
  EXPECT_EQ(shiftedId(0, 100000), 100000u);
  EXPECT_EQ(shiftedId(65534, 100000), 165534u);
  EXPECT_EQ(shiftedId(100000, 100000), 100000u);  // already shifted
  EXPECT_EQ(shiftedId(165535, 100000), 165535u);
}

TEST(IdShift, ReadsTheMappedRootFromAnLxcConfig) {
  EXPECT_EQ(mappedRootOf("lxc.uts.name = x\nlxc.idmap = g 0 200000 65536\n"
                         "lxc.idmap = u 0 100000 65536\n"),
            100000u);
  EXPECT_EQ(mappedRootOf("lxc.uts.name = x\n"), std::nullopt);
  EXPECT_EQ(mappedRootOf("lxc.idmap = u 1000 100000 1\n"), std::nullopt);
  EXPECT_EQ(mappedRootOf("lxc.idmap = u 0 banana 65536\n"), std::nullopt);
}

struct Owner {
  uid_t uid;
  gid_t gid;
  mode_t mode;
};
Owner ownerOf(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(lstat(p.c_str(), &st), 0) << p;
  return {st.st_uid, st.st_gid, st.st_mode & 07777};
}

TEST(IdShift, GivesATreeToTheMappedIdsKeepingSetuidAndNotFollowingLinks) {
  // Giving files to other ids needs root; unit tests run as root in CI.
  ASSERT_EQ(geteuid(), 0u) << "needs root: chown to other ids";
  test::TempDir dir;
  test::TempDir outside;
  fs::path root = dir.path();
  fs::create_directories(root / "etc/qabox");
  std::ofstream(root / "etc/qabox/app.env") << "A=1\n";
  std::ofstream(root / "suid") << "x";
  chmod((root / "suid").c_str(), 04755);
  ASSERT_EQ(chown((root / "etc").c_str(), 65534, 65534), 0);
  std::ofstream(fs::path(outside.path()) / "host-file") << "host";
  fs::create_symlink(fs::path(outside.path()) / "host-file", root / "link");

  ASSERT_TRUE(shiftOwnership(root, 100000).isOk());
  EXPECT_EQ(ownerOf(root).uid, 100000u);
  EXPECT_EQ(ownerOf(root / "etc").uid, 165534u);
  EXPECT_EQ(ownerOf(root / "etc").gid, 165534u);
  EXPECT_EQ(ownerOf(root / "etc/qabox/app.env").uid, 100000u);
  EXPECT_EQ(ownerOf(root / "suid").mode, 04755u);
  EXPECT_EQ(ownerOf(root / "link").uid, 100000u);
  EXPECT_EQ(ownerOf(fs::path(outside.path()) / "host-file").uid, 0u);  // not followed

  ASSERT_TRUE(shiftOwnership(root, 100000).isOk());  // again: nothing moves
  EXPECT_EQ(ownerOf(root / "etc").uid, 165534u);
}

TEST(IdShift, NeverDescendsThroughADirectoryLink) {
  ASSERT_EQ(geteuid(), 0u) << "needs root: chown to other ids";
  test::TempDir dir;
  test::TempDir outside;
  fs::path root = dir.path();
  fs::path host = outside.path();
  fs::create_directories(host / "etc");
  std::ofstream(host / "etc/passwd") << "root:x:0:0\n";
  chmod((host / "etc/passwd").c_str(), 04755);
  // A tree holding links named like the host's directories, absolute and
  // relative (what a git tree exported into /srv/app may hold).
  fs::create_directories(root / "srv/app");
  fs::create_directory_symlink(host / "etc", root / "srv/app/etc");
  fs::create_directory_symlink("../../../../" + host.filename().string(), root / "srv/app/up");
  fs::create_directory_symlink("/", root / "srv/app/srv");
  ASSERT_TRUE(shiftOwnership(root, 100000).isOk());
  EXPECT_EQ(ownerOf(host / "etc").uid, 0u);
  EXPECT_EQ(ownerOf(host / "etc/passwd").uid, 0u);
  EXPECT_EQ(ownerOf(host / "etc/passwd").mode, 04755u);
  EXPECT_EQ(ownerOf(host).uid, 0u);
  EXPECT_EQ(ownerOf("/etc").uid, 0u);
  EXPECT_EQ(ownerOf(root / "srv/app/etc").uid, 100000u);  // the link itself
}

TEST(IdShift, AMissingTreeIsAnError) {
  auto s = shiftOwnership("/nonexistent/qabox-idshift", 100000);
  EXPECT_FALSE(s.isOk());
  EXPECT_NE(s.message().find("/nonexistent/qabox-idshift"), std::string::npos);
}

}  // namespace
}  // namespace qabox
