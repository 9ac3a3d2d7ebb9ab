#include "sys/process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

namespace qabox {
namespace {

TEST(Process, CapturesOutputAndExitCode) {
  RealProcessRunner runner;
  ProcessSpec spec;
  spec.argv = {"sh", "-c", "echo out; echo err >&2; exit 7"};
  auto r = runner.run(spec);
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->exitCode, 7);
  EXPECT_EQ(r->out, "out\n");
  EXPECT_EQ(r->err, "err\n");
}

TEST(Process, FeedsStdinAndArgumentsVerbatim) {
  RealProcessRunner runner;
  ProcessSpec spec;
  spec.argv = {"sh", "-c", "cat; printf '%s|' \"$1\"", "sh", "$(rm -rf /) ; `x` 'q'"};
  spec.stdinData = std::string(200000, 'a');
  auto r = runner.run(spec);
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r->out, std::string(200000, 'a') + "$(rm -rf /) ; `x` 'q'|");
}

TEST(Process, StdinMayBeAFile) {
  char path[] = "/tmp/qabox-stdin-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  const std::string big(300000, 'b');
  ASSERT_EQ(write(fd, big.data(), big.size()), static_cast<ssize_t>(big.size()));
  close(fd);
  RealProcessRunner runner;
  ProcessSpec spec;
  spec.argv = {"wc", "-c"};
  spec.stdinFile = path;
  auto r = runner.run(spec);
  unlink(path);
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->out, "300000\n");
}

// Field 19 of /proc/PID/stat: the nice value.
TEST(Process, IdleSpawnsRunAtNice19AndOnlyWhileOneLives) {
  RealProcessRunner runner;
  ProcessSpec spec;
  spec.argv = {"sh", "-c", "cut -d')' -f2 /proc/$$/stat | awk '{ print $17 }'"};
  {
    IdleSpawns idle;
    auto r = runner.run(spec);
    ASSERT_TRUE(r.isOk());
    EXPECT_EQ(r->out, "19\n");
  }
  auto r = runner.run(spec);
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r->out, "0\n");
}

TEST(Process, TimeoutKillsTheWholeGroup) {
  RealProcessRunner runner;
  ProcessSpec spec;
  spec.argv = {"sh", "-c", "sleep 30 & sleep 30"};
  spec.timeout = std::chrono::milliseconds(200);
  auto start = std::chrono::steady_clock::now();
  auto r = runner.run(spec);
  ASSERT_TRUE(r.isOk());
  EXPECT_TRUE(r->timedOut);
  EXPECT_EQ(r->exitCode, -1);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
}

TEST(Process, MissingProgramIsAnError) {
  RealProcessRunner runner;
  ProcessSpec spec;
  spec.argv = {"/no/such/program"};
  auto r = runner.run(spec);
  ASSERT_FALSE(r.isOk());
  EXPECT_NE(r.status().message().find("/no/such/program"), std::string::npos);
}

TEST(Process, EnvironmentAndWorkingDirectory) {
  RealProcessRunner runner;
  ProcessSpec spec;
  spec.argv = {"/bin/sh", "-c", "echo $ONLY; pwd"};
  spec.env = std::map<std::string, std::string>{{"ONLY", "this"}};
  spec.cwd = "/tmp";
  auto r = runner.run(spec);
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r->out, "this\n/tmp\n");
}

TEST(Process, KeepsOnlyTheTailOfHugeOutputAndStreamsIt) {
  RealProcessRunner runner;
  ProcessSpec spec;
  spec.argv = {"sh", "-c", "head -c 3000000 /dev/zero | tr '\\0' x; echo END"};
  spec.maxCapture = 1000;
  size_t streamed = 0;
  spec.onOutput = [&](bool, std::string_view d) { streamed += d.size(); };
  auto r = runner.run(spec);
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r->out.size(), 1000u);
  EXPECT_EQ(r->out.substr(996), "END\n");
  EXPECT_EQ(streamed, 3000004u);
}

TEST(Process, ManyThreadsAtOnce) {
  RealProcessRunner runner;
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      ProcessSpec spec;
      spec.argv = {"sh", "-c", "echo " + std::to_string(i)};
      auto r = runner.run(spec);
      if (r && r->out == std::to_string(i) + "\n") ++ok;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 8);
}

TEST(LastLines, TakesTheTail) {
  EXPECT_EQ(lastLines("a\nb\nc\n", 2), "b\nc");
  EXPECT_EQ(lastLines("a\nb\nc", 5), "a\nb\nc");
  EXPECT_EQ(lastLines("", 3), "");
  EXPECT_EQ(lastLines("one", 1), "one");
}

TEST(Process, AChildGetsOnlyStdioWhateverTheParentLeftOpen) {
  // What a library opened without O_CLOEXEC (Asio's listening sockets): a
  // listening TCP socket, a pipe and a file, all inheritable.
  int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(listener, 1), 0);
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  int file = ::open("/dev/null", O_RDONLY);
  ASSERT_GE(file, 0);
  ASSERT_EQ(::fcntl(listener, F_GETFD) & FD_CLOEXEC, 0);

  RealProcessRunner runner;
  ProcessSpec spec;
  // ls runs as the shell's child and lists the shell's descriptors.
  spec.argv = {"sh", "-c", "ls /proc/$$/fd"};
  auto r = runner.run(spec);
  ::close(listener);
  ::close(p[0]);
  ::close(p[1]);
  ::close(file);
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->exitCode, 0) << r->err;
  EXPECT_EQ(r->out, "0\n1\n2\n");
}

}  // namespace
}  // namespace qabox
