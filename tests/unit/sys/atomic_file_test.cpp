#include "sys/atomic_file.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include "../store/temp_dir.h"
#include "sys/fd.h"
#include "text_file.h"

namespace qabox {
namespace {

namespace fs = std::filesystem;

class AtomicFile : public ::testing::Test {
 protected:
  static void put(const std::string& path, const std::string& text) { test::writeText(path, text); }
  static std::string get(const std::string& path) { return test::readText(path); }
  static mode_t modeOf(const std::string& path) {
    struct stat st {};
    EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
    return st.st_mode & 07777;
  }

  test::TempDir tmp_;
};

TEST_F(AtomicFile, WritesTheWholeContentWithItsModeWhateverTheUmask) {
  const std::string path = tmp_.path() + "/config";
  mode_t old = ::umask(077);
  Status s = writeFileAtomically(path, "lxc.uts.name = x\n", 0644);
  ::umask(old);
  ASSERT_TRUE(s.isOk()) << s.toString();
  EXPECT_EQ(get(path), "lxc.uts.name = x\n");
  EXPECT_EQ(modeOf(path), 0644u);
  EXPECT_FALSE(fs::exists(path + ".tmp"));
}

TEST_F(AtomicFile, ReplacesAFileWithAFreshInode) {
  const std::string path = tmp_.path() + "/config";
  put(path, "old\n");
  // A hard link to the old file keeps the old content: nothing is written
  // through an inode that was there.
  ASSERT_EQ(::link(path.c_str(), (tmp_.path() + "/other").c_str()), 0);
  ASSERT_TRUE(writeFileAtomically(path, "new\n", 0600).isOk());
  EXPECT_EQ(get(path), "new\n");
  EXPECT_EQ(modeOf(path), 0600u);
  EXPECT_EQ(get(tmp_.path() + "/other"), "old\n");
  // Empty content is a file too.
  ASSERT_TRUE(writeFileAtomically(path, "", 0600).isOk());
  EXPECT_TRUE(fs::exists(path));
  EXPECT_EQ(fs::file_size(path), 0u);
}

TEST_F(AtomicFile, NeverWritesThroughALink) {
  const std::string secret = tmp_.path() + "/secret";
  put(secret, "SECRET\n");
  // A link where the file goes is replaced; a link (or a leftover file)
  // where the temporary file goes is removed, not followed.
  const std::string path = tmp_.path() + "/config";
  fs::create_symlink(secret, path);
  fs::create_symlink(secret, path + ".tmp");
  ASSERT_TRUE(writeFileAtomically(path, "mine\n", 0644).isOk());
  EXPECT_EQ(get(secret), "SECRET\n");
  EXPECT_FALSE(fs::is_symlink(path));
  EXPECT_EQ(get(path), "mine\n");
  EXPECT_FALSE(fs::exists(path + ".tmp"));
}

TEST_F(AtomicFile, WritesInADirectoryOpenedOnlyAsAPath) {
  // sys/safe_path hands over an O_PATH descriptor of a root, which fsync
  // refuses; the directory is still synced and the file written.
  int fd = ::open(tmp_.path().c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  UniqueFd dir(fd);
  Status s = writeFileAtomicallyAt(dir.get(), "app.env", "A=1\n", 0600, "shown/app.env");
  ASSERT_TRUE(s.isOk()) << s.toString();
  EXPECT_EQ(get(tmp_.path() + "/app.env"), "A=1\n");
  EXPECT_EQ(modeOf(tmp_.path() + "/app.env"), 0600u);
}

TEST_F(AtomicFile, RefusesANameThatIsNotOneComponent) {
  int fd = ::open(tmp_.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  UniqueFd dir(fd);
  for (const char* name : {"", ".", "..", "a/b"}) {
    Status s = writeFileAtomicallyAt(dir.get(), name, "x", 0600, "shown");
    EXPECT_EQ(s.code(), Code::kInvalidArgument) << name << ": " << s.toString();
  }
  EXPECT_TRUE(fs::is_empty(tmp_.path()));
}

TEST_F(AtomicFile, AMissingDirectoryIsAnErrorNamingIt) {
  Status s = writeFileAtomically(tmp_.path() + "/no/such/config", "x", 0644);
  ASSERT_FALSE(s.isOk());
  EXPECT_NE(s.message().find(tmp_.path() + "/no/such"), std::string::npos) << s.toString();
}

// A full disk is RESOURCE_EXHAUSTED naming the file, the old content stays
// and no temporary file is left. The disk is a 64 KiB tmpfs in a mount
// namespace of a child process.
TEST_F(AtomicFile, AFullDiskIsResourceExhaustedAndKeepsTheOldFile) {
  ASSERT_EQ(geteuid(), 0u) << "needs root: mounts a small tmpfs in a mount namespace";
  const std::string small = tmp_.path() + "/small";
  ASSERT_EQ(::mkdir(small.c_str(), 0700), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (unshare(CLONE_NEWNS) != 0 || mount("", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
        mount("tmpfs", small.c_str(), "tmpfs", 0, "size=64k") != 0) {
      _exit(2);
    }
    const std::string path = small + "/state";
    if (!writeFileAtomically(path, "old\n", 0644).isOk()) _exit(3);
    Status s = writeFileAtomically(path, std::string(1 << 20, 'x'), 0644);
    fprintf(stderr, "%s\n", s.toString().c_str());
    if (s.code() != Code::kResourceExhausted) _exit(4);
    if (s.message().find(path) == std::string::npos) _exit(5);
    if (get(path) != "old\n" || fs::exists(path + ".tmp")) _exit(6);
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0)
      << "2: no mount namespace; 3: the first write failed; 4: not RESOURCE_EXHAUSTED; "
         "5: the message does not name the file; 6: the old file changed or the temporary stayed";
}

}  // namespace
}  // namespace qabox
