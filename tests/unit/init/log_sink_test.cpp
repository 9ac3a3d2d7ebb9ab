#include "init/log_sink.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "init_fixture.h"

namespace qabox::init {
namespace {

class LogSinkTest : public ::testing::Test {
 protected:
  void SetUp() override { dirFd_.reset(::open(dir_.path().c_str(), O_RDONLY | O_DIRECTORY)); }
  std::string path(const std::string& n) { return dir_.path() + "/" + n; }
  test::TempDir dir_;
  UniqueFd dirFd_;
};

TEST_F(LogSinkTest, CreatedPrivateAndAppended) {
  {
    LogSink s;
    ASSERT_TRUE(s.open(dirFd_.get(), "a.log", 1 << 20).isOk());
    ASSERT_TRUE(s.write("one\n").isOk());
  }
  LogSink s;
  ASSERT_TRUE(s.open(dirFd_.get(), "a.log", 1 << 20).isOk());
  ASSERT_TRUE(s.write("two\n").isOk());
  EXPECT_EQ(test::slurp(path("a.log")), "one\ntwo\n");
  struct stat st {};
  ASSERT_EQ(::stat(path("a.log").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
}

TEST_F(LogSinkTest, CappedKeepsMarkerThenTail) {
  LogSink s;
  ASSERT_TRUE(s.open(dirFd_.get(), "c.log", 4096).isOk());
  for (int i = 0; i < 2000; ++i) ASSERT_TRUE(s.write("line " + std::to_string(i) + "\n").isOk());
  std::string text = test::slurp(path("c.log"));
  EXPECT_LE(text.size(), 4096u);
  EXPECT_EQ(text.rfind("[qabox: ", 0), 0u) << text.substr(0, 100);
  EXPECT_NE(text.find("bytes of output dropped here"), std::string::npos);
  EXPECT_EQ(text.find("[qabox: ", 1), std::string::npos);  // one marker, not one per compaction
  EXPECT_NE(text.find("line 1999\n"), std::string::npos);
  EXPECT_EQ(s.size(), text.size());
  // One write bigger than the cap: its tail stays.
  ASSERT_TRUE(s.write(std::string(100000, 'x') + "END\n").isOk());
  text = test::slurp(path("c.log"));
  EXPECT_LE(text.size(), 4096u);
  EXPECT_EQ(text.substr(text.size() - 4), "END\n");
}

TEST_F(LogSinkTest, RefusesSymlinkFifoAndHardLink) {
  std::string target = path("target");
  { std::ofstream(target) << "secret"; }
  ASSERT_EQ(::symlink(target.c_str(), path("s.log").c_str()), 0);
  LogSink s;
  Status st = s.open(dirFd_.get(), "s.log", 1 << 20);
  EXPECT_EQ(st.code(), Code::kPermissionDenied) << st.message();
  EXPECT_NE(st.message().find("symlink"), std::string::npos);
  EXPECT_FALSE(s.isOpen());
  ASSERT_EQ(::mkfifo(path("f.log").c_str(), 0600), 0);
  EXPECT_EQ(s.open(dirFd_.get(), "f.log", 1 << 20).code(), Code::kPermissionDenied);
  ASSERT_EQ(::link(target.c_str(), path("h.log").c_str()), 0);
  EXPECT_EQ(s.open(dirFd_.get(), "h.log", 1 << 20).code(), Code::kPermissionDenied);
  EXPECT_EQ(test::slurp(target), "secret");
}

TEST_F(LogSinkTest, CompactionDoesNotFollowAPlantedTmpLink) {
  std::string target = path("target");
  { std::ofstream(target) << "secret"; }
  LogSink s;
  ASSERT_TRUE(s.open(dirFd_.get(), "c.log", 4096).isOk());
  ASSERT_EQ(::symlink(target.c_str(), path("c.log.tmp").c_str()), 0);
  ASSERT_TRUE(s.write(std::string(10000, 'y')).isOk());
  EXPECT_EQ(test::slurp(target), "secret");
  EXPECT_LE(test::slurp(path("c.log")).size(), 4096u);
}

}  // namespace
}  // namespace qabox::init
