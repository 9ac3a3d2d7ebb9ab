#include "sys/safe_path.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "../store/temp_dir.h"
#include "sys/traverse.h"
#include "text_file.h"

namespace qabox {
namespace {

namespace fs = std::filesystem;

// A container's upper dir (root/) beside a host file it must never reach.
class SafePath : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = tmp_.path() + "/root";
    secret_ = tmp_.path() + "/secret";
    fs::create_directories(root_ + "/var/log/qabox");
    put(secret_, "HOST-SECRET\n");
  }
  static void put(const std::string& path, const std::string& text) { test::writeText(path, text); }
  static std::string get(const std::string& path) { return test::readText(path); }
  Result<std::string> read(const std::string& rel) {
    off_t off = 0;
    return readFileBeneath(root_, rel, off, 1 << 20);
  }
  void expectRefused(const std::string& rel, Code code, const std::string& words) {
    auto start = std::chrono::steady_clock::now();
    auto r = read(rel);
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1)) << rel;
    ASSERT_FALSE(r.isOk()) << rel << " read: " << *r;
    EXPECT_EQ(r.status().code(), code) << r.status().toString();
    EXPECT_NE(r.status().message().find(words), std::string::npos) << r.status().toString();
  }

  test::TempDir tmp_;
  std::string root_, secret_;
};

TEST_F(SafePath, ReadsARegularFile) {
  put(root_ + "/var/log/qabox/app.log", "hello\nworld\n");
  off_t off = 0;
  auto r = readFileBeneath(root_, "/var/log/qabox/app.log", off, 6);
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(*r, "hello\n");
  EXPECT_EQ(off, 6);
  r = readFileBeneath(root_, "var/log/qabox/app.log", off, 100);
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(*r, "world\n");
  // Shorter than where we were: from the start again.
  put(root_ + "/var/log/qabox/app.log", "x\n");
  r = readFileBeneath(root_, "var/log/qabox/app.log", off, 100);
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(*r, "x\n");
}

TEST_F(SafePath, AMissingFileIsNotFound) {
  expectRefused("var/log/qabox/app.log", Code::kNotFound, "no such file");
}

TEST_F(SafePath, RefusesASymlinkToAHostFile) {
  fs::create_symlink(secret_, root_ + "/var/log/qabox/app.log");
  expectRefused("var/log/qabox/app.log", Code::kFailedPrecondition, "symlink");
}

TEST_F(SafePath, RefusesARelativeSymlinkThatClimbsOut) {
  fs::create_symlink("../../../../secret", root_ + "/var/log/qabox/app.log");
  expectRefused("var/log/qabox/app.log", Code::kFailedPrecondition, "symlink");
}

TEST_F(SafePath, RefusesEvenASymlinkThatStaysInside) {
  // The rule is no links at all: simpler than deciding which stay inside.
  put(root_ + "/inside", "inside\n");
  fs::create_symlink("/inside", root_ + "/var/log/qabox/app.log");
  expectRefused("var/log/qabox/app.log", Code::kFailedPrecondition, "symlink");
  fs::remove(root_ + "/var/log/qabox/app.log");
  fs::create_symlink("../../../inside", root_ + "/var/log/qabox/app.log");
  expectRefused("var/log/qabox/app.log", Code::kFailedPrecondition, "symlink");
}

TEST_F(SafePath, RefusesASymlinkInAMiddleComponent) {
  fs::remove_all(root_ + "/var/log/qabox");
  fs::create_directories(tmp_.path() + "/hostlog");
  put(tmp_.path() + "/hostlog/app.log", "HOST-SECRET\n");
  fs::create_symlink(tmp_.path() + "/hostlog", root_ + "/var/log/qabox");
  expectRefused("var/log/qabox/app.log", Code::kFailedPrecondition, "symlink");
  // /var itself a link to /.
  fs::remove_all(root_ + "/var");
  fs::create_symlink("/", root_ + "/var");
  expectRefused("var/log/qabox/app.log", Code::kFailedPrecondition, "symlink");
}

TEST_F(SafePath, RefusesDotDotEscapes) {
  expectRefused("../secret", Code::kFailedPrecondition, "leaves");
  expectRefused("var/../../secret", Code::kFailedPrecondition, "leaves");
  // Inside, a '..' that stays beneath is fine.
  put(root_ + "/var/log/x", "x\n");
  auto r = read("var/log/qabox/../x");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(*r, "x\n");
}

TEST_F(SafePath, AFifoNeitherBlocksNorIsRead) {
  ASSERT_EQ(::mkfifo((root_ + "/var/log/qabox/app.log").c_str(), 0644), 0);
  expectRefused("var/log/qabox/app.log", Code::kFailedPrecondition, "a FIFO");
}

TEST_F(SafePath, ADeviceNodeIsNeverOpened) {
  ASSERT_EQ(geteuid(), 0u) << "needs root: mknod";
  // /dev/null's numbers; a device's open could have effects, so it is
  // refused from its O_PATH descriptor without ever being opened.
  ASSERT_EQ(::mknod((root_ + "/var/log/qabox/app.log").c_str(), S_IFCHR | 0644, makedev(1, 3)), 0);
  expectRefused("var/log/qabox/app.log", Code::kFailedPrecondition, "a character device");
}

TEST_F(SafePath, ADirectoryOrASocketIsRefused) {
  fs::create_directories(root_ + "/var/log/qabox/app.log");
  expectRefused("var/log/qabox/app.log", Code::kFailedPrecondition, "a directory");
  fs::remove_all(root_ + "/var/log/qabox/app.log");
  int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(s, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::string path = root_ + "/var/log/qabox/app.log";
  ASSERT_LT(path.size(), sizeof addr.sun_path);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  ASSERT_EQ(::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  expectRefused("var/log/qabox/app.log", Code::kFailedPrecondition, "a socket");
  ::close(s);
}

TEST_F(SafePath, AHardLinkReadsOnlyWhatItLinks) {
  // A container can hard-link only what it can name: its own files. The
  // link is read as the file it is; the host file stays out of reach.
  put(root_ + "/etc-shadow", "container's own\n");
  ASSERT_EQ(::link((root_ + "/etc-shadow").c_str(), (root_ + "/var/log/qabox/app.log").c_str()), 0);
  auto r = read("var/log/qabox/app.log");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(*r, "container's own\n");
}

TEST_F(SafePath, WritesBeneathTheRootWithItsModeWhateverTheUmask) {
  mode_t old = ::umask(077);
  Status s = writeFileBeneath(root_, "/etc/qabox/app.run", "exec httpd\n", 0740);
  ::umask(old);
  ASSERT_TRUE(s.isOk()) << s.toString();
  EXPECT_EQ(get(root_ + "/etc/qabox/app.run"), "exec httpd\n");
  struct stat st {};
  ASSERT_EQ(::stat((root_ + "/etc/qabox/app.run").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0740u);
  ASSERT_EQ(::stat((root_ + "/etc/qabox").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  EXPECT_FALSE(fs::exists(root_ + "/etc/qabox/app.run.tmp"));
  // Again: replaced whole.
  ASSERT_TRUE(writeFileBeneath(root_, "etc/qabox/app.run", "2\n", 0740).isOk());
  EXPECT_EQ(get(root_ + "/etc/qabox/app.run"), "2\n");
}

TEST_F(SafePath, AWriteNeverGoesThroughALink) {
  // A link where the file goes: replaced, the host file untouched.
  fs::create_directories(root_ + "/etc/qabox");
  fs::create_symlink(secret_, root_ + "/etc/qabox/app.env");
  ASSERT_TRUE(writeFileBeneath(root_, "etc/qabox/app.env", "A='1'\n", 0600).isOk());
  EXPECT_EQ(get(secret_), "HOST-SECRET\n");
  EXPECT_FALSE(fs::is_symlink(root_ + "/etc/qabox/app.env"));
  EXPECT_EQ(get(root_ + "/etc/qabox/app.env"), "A='1'\n");
  // A link where the temporary file goes: removed, not followed.
  fs::create_symlink(secret_, root_ + "/etc/qabox/app.env.tmp");
  ASSERT_TRUE(writeFileBeneath(root_, "etc/qabox/app.env", "B='2'\n", 0600).isOk());
  EXPECT_EQ(get(secret_), "HOST-SECRET\n");
  // A hard link to the file: the other name keeps its content.
  ASSERT_EQ(::link((root_ + "/etc/qabox/app.env").c_str(), (root_ + "/other").c_str()), 0);
  ASSERT_TRUE(writeFileBeneath(root_, "etc/qabox/app.env", "C='3'\n", 0600).isOk());
  EXPECT_EQ(get(root_ + "/other"), "B='2'\n");
  EXPECT_EQ(get(root_ + "/etc/qabox/app.env"), "C='3'\n");
}

TEST_F(SafePath, AWriteRefusesALinkedDirectory) {
  // /etc/qabox a link to a host directory (an image could plant one).
  fs::create_directories(root_ + "/etc");
  fs::create_directories(tmp_.path() + "/hostetc");
  fs::create_symlink(tmp_.path() + "/hostetc", root_ + "/etc/qabox");
  Status s = writeFileBeneath(root_, "etc/qabox/app.env", "A=1\n", 0600);
  EXPECT_EQ(s.code(), Code::kFailedPrecondition) << s.toString();
  EXPECT_NE(s.message().find("symlink"), std::string::npos) << s.toString();
  EXPECT_TRUE(fs::is_empty(tmp_.path() + "/hostetc"));
  // And a relative one, and a link as the first component.
  fs::remove(root_ + "/etc/qabox");
  fs::create_symlink("../../hostetc", root_ + "/etc/qabox");
  EXPECT_FALSE(writeFileBeneath(root_, "etc/qabox/app.env", "A=1\n", 0600).isOk());
  fs::remove_all(root_ + "/etc");
  fs::create_symlink(tmp_.path() + "/hostetc", root_ + "/etc");
  EXPECT_FALSE(writeFileBeneath(root_, "etc/qabox/app.env", "A=1\n", 0600).isOk());
  EXPECT_TRUE(fs::is_empty(tmp_.path() + "/hostetc"));
  EXPECT_FALSE(writeFileBeneath(root_, "../escape", "A=1\n", 0600).isOk());
  EXPECT_FALSE(makeDirsBeneath(root_, "a/../../b", 0755).isOk());
  EXPECT_FALSE(fs::exists(tmp_.path() + "/escape"));
  EXPECT_FALSE(fs::exists(tmp_.path() + "/b"));
}

TEST_F(SafePath, SetsAnXattrOnlyOnTheRealDirectory) {
  fs::create_directories(root_ + "/srv/app");
  Status s = setDirXattrBeneath(root_, "/srv/app", "user.qabox.test", "y");
  if (s.isOk()) {
    char v[4] = {};
    EXPECT_EQ(::getxattr((root_ + "/srv/app").c_str(), "user.qabox.test", v, sizeof v), 1);
  }
  fs::remove_all(root_ + "/srv");
  fs::create_symlink(tmp_.path(), root_ + "/srv");
  s = setDirXattrBeneath(root_, "/srv/app", "user.qabox.test", "y");
  EXPECT_EQ(s.code(), Code::kFailedPrecondition) << s.toString();
}

TEST(Traverse, NamesTheFirstDirectoryAnIdCannotEnter) {
  ASSERT_EQ(geteuid(), 0u) << "needs root: dropping to another uid";
  test::TempDir tmp;
  // A mktemp -d parent: 0700, root's.
  const std::string parent = tmp.path();
  fs::create_directories(parent + "/state/lxc");
  ASSERT_EQ(::chmod(parent.c_str(), 0700), 0);
  auto r = firstUnsearchableDir(parent + "/state/lxc", 100000, 100000);
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->value_or("(none)"), parent);
  // Root itself gets through; so does the id once others may enter.
  r = firstUnsearchableDir(parent + "/state/lxc", 0, 0);
  ASSERT_TRUE(r.isOk());
  EXPECT_FALSE(r->has_value());
  ASSERT_EQ(::chmod(parent.c_str(), 0711), 0);
  r = firstUnsearchableDir(parent + "/state/lxc/not-yet", 100000, 100000);
  ASSERT_TRUE(r.isOk());
  EXPECT_FALSE(r->has_value()) << **r;
  // Owned by the id, 0700 is enough for it.
  ASSERT_EQ(::chmod((parent + "/state").c_str(), 0700), 0);
  ASSERT_EQ(::chown((parent + "/state").c_str(), 100000, 100000), 0);
  r = firstUnsearchableDir(parent + "/state/lxc", 100000, 100000);
  ASSERT_TRUE(r.isOk());
  EXPECT_FALSE(r->has_value()) << **r;
}

}  // namespace
}  // namespace qabox
