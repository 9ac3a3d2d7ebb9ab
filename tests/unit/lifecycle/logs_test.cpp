// Following a log beneath a directory someone else controls: tails, chunks,
// the stop conditions, and what is never opened.
#include "lifecycle/logs.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "unit/store/temp_dir.h"

namespace qabox {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

class LogsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    log_ = {dir_.path() + "/upper", "var/log/app.log"};
    fs::create_directories(dir_.path() + "/upper/var/log");
  }

  std::string path() const { return log_.root + "/" + log_.relative; }
  void write(const std::string& text, std::ios::openmode mode = std::ios::trunc) {
    std::ofstream(path(), std::ios::out | mode) << text;
  }

  // Everything followLog sends, as chunks.
  Status follow(uint32_t tail, bool following, std::vector<std::string>& chunks,
                std::function<bool()> cancelled = {}, std::function<bool()> gone = {}) {
    LogSink sink;
    sink.write = [&](std::string chunk) {
      chunks.push_back(std::move(chunk));
      return true;
    };
    sink.cancelled = std::move(cancelled);
    sink.gone = std::move(gone);
    return followLog(log_, tail, following, sink, milliseconds(5));
  }

  // What a stream that does not follow sends from the last `tail` lines on.
  std::string sent(uint32_t tail) {
    std::vector<std::string> chunks;
    EXPECT_TRUE(follow(tail, false, chunks).isOk());
    std::string all;
    for (const auto& c : chunks) all += c;
    return all;
  }

  test::TempDir dir_;
  EnvironmentManager::LogFile log_;
};

TEST_F(LogsTest, AMissingLogIsEmpty) {
  std::vector<std::string> chunks;
  EXPECT_TRUE(follow(0, false, chunks).isOk());
  EXPECT_TRUE(chunks.empty());
  EXPECT_EQ(*tailOffset(log_, 10), 0);
}

TEST_F(LogsTest, TheWholeLogOrItsLastLines) {
  write("a\nbb\nccc");
  EXPECT_EQ(sent(0), "a\nbb\nccc");
  EXPECT_EQ(sent(2), "bb\nccc");
  EXPECT_EQ(*tailOffset(log_, 1), 5);
  EXPECT_EQ(*tailOffset(log_, 99), 0);
}

TEST_F(LogsTest, TheLastLinesOfALogEndingInANewlineAreWhole) {
  write("one\ntwo\nthree\n");
  EXPECT_EQ(sent(2), "two\nthree\n");
  EXPECT_EQ(sent(100), "one\ntwo\nthree\n");
  write("a\r\nb\r\n");
  EXPECT_EQ(*tailOffset(log_, 1), 3);
}

TEST_F(LogsTest, TheTailOfALogLongerThanTheWindowIsItsEnd) {
  std::string line(1023, 'x');
  line += '\n';
  {
    std::ofstream out(path());
    for (size_t i = 0; i < kLogTailWindow / line.size() + 10; ++i) out << line;
    out << "the end\n";
  }
  auto size = static_cast<off_t>(fs::file_size(path()));
  EXPECT_EQ(*tailOffset(log_, 2), size - static_cast<off_t>(line.size() + 8));
}

TEST_F(LogsTest, ALargeLogComesInBoundedChunks) {
  write(std::string(kLogChunkMax * 2 + 10, 'x'));
  std::vector<std::string> chunks;
  ASSERT_TRUE(follow(0, false, chunks).isOk());
  ASSERT_EQ(chunks.size(), 3u);
  EXPECT_EQ(chunks[0].size(), kLogChunkMax);
  EXPECT_EQ(chunks[1].size(), kLogChunkMax);
  EXPECT_EQ(chunks[2].size(), 10u);
}

TEST_F(LogsTest, AReaderThatIsGoneEndsTheStream) {
  write(std::string(kLogChunkMax * 3, 'x'));
  int writes = 0;
  LogSink sink;
  sink.write = [&](std::string) { return ++writes < 2; };
  EXPECT_TRUE(followLog(log_, 0, true, sink, milliseconds(5)).isOk());
  EXPECT_EQ(writes, 2);
}

TEST_F(LogsTest, FollowingSendsWhatIsAppendedUntilTheSourceIsGone) {
  write("first\n");
  std::atomic<int> ends{0};
  std::vector<std::string> chunks;
  auto gone = [&] {
    // At the end of the log: append once, then say the environment is gone.
    if (ends++ == 0) write("second\n", std::ios::app);
    return ends > 2;
  };
  ASSERT_TRUE(follow(0, true, chunks, {}, gone).isOk());
  ASSERT_EQ(chunks.size(), 2u);
  EXPECT_EQ(chunks[0], "first\n");
  EXPECT_EQ(chunks[1], "second\n");
}

TEST_F(LogsTest, ACancelledCallerStopsTheFollowing) {
  write("x");
  std::vector<std::string> chunks;
  int asked = 0;
  ASSERT_TRUE(follow(0, true, chunks, [&] { return ++asked > 3; }).isOk());
  EXPECT_EQ(chunks.size(), 1u);
  EXPECT_EQ(asked, 4);
}

TEST_F(LogsTest, AFifoIsNeverOpened) {
  ASSERT_EQ(mkfifo(path().c_str(), 0644), 0);
  std::vector<std::string> chunks;
  // Opening it would block: no writer ever comes.
  auto s = follow(0, false, chunks);
  EXPECT_EQ(s.code(), Code::kFailedPrecondition) << s.toString();
  EXPECT_EQ(tailOffset(log_, 3).status().code(), Code::kFailedPrecondition);
}

TEST_F(LogsTest, ALinkIsNeverFollowed) {
  std::ofstream(dir_.path() + "/secret") << "host only\n";
  fs::create_symlink(dir_.path() + "/secret", path());
  std::vector<std::string> chunks;
  EXPECT_EQ(follow(0, false, chunks).code(), Code::kFailedPrecondition);
  EXPECT_TRUE(chunks.empty());
  // Nor a link in a directory on the way.
  fs::remove(path());
  fs::remove_all(dir_.path() + "/upper/var/log");
  fs::create_directories(dir_.path() + "/elsewhere");
  std::ofstream(dir_.path() + "/elsewhere/app.log") << "host only\n";
  fs::create_directory_symlink(dir_.path() + "/elsewhere", dir_.path() + "/upper/var/log");
  EXPECT_EQ(follow(0, false, chunks).code(), Code::kFailedPrecondition);
  EXPECT_TRUE(chunks.empty());
}

TEST_F(LogsTest, ALogThatGotShorterIsReadFromItsStart) {
  write("0123456789");
  off_t offset = 0;
  ASSERT_EQ(*readLog(log_, offset, 100), "0123456789");
  write("abc");
  EXPECT_EQ(*readLog(log_, offset, 100), "abc");
}

}  // namespace
}  // namespace qabox
