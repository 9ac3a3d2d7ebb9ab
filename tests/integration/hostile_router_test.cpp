// Issue 12, item 2: an environment's app answers the router (and the health
// check) with hostile bytes. The agent must stay up, cut or 502 only that
// request, keep serving every other environment, and hold no more memory
// than its bounded buffers. The app is a shell behind busybox nc, one per
// connection, choosing its answer by path.
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <fstream>
#include <string_view>
#include <thread>
#include <utility>

#include "harness.h"

namespace qabox::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr long kMiBKb = 1024;

// /ok answers well (the health check); every other path is one attack.
constexpr const char* kBadApp = R"(#!/bin/sh
cr=$(printf '\r')
read -r method path rest || exit 0
while read -r h; do
  h=${h%"$cr"}
  [ -z "$h" ] && break
done
chunked='HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n'
case "$path" in
  /chunk-ext) printf "$chunked"'1;'; head -c 102400 /dev/zero | tr '\0' a; sleep 20 ;;
  /chunk-size) printf "$chunked"'ffffffffffffffffffff\r\nabc'; sleep 20 ;;
  /headers) printf 'HTTP/1.1 200 OK\r\n'; yes "X-Endless: yes$cr" ;;
  /big-head) printf 'HTTP/1.1 200 OK\r\nX-Big: '; head -c 102400 /dev/zero | tr '\0' b
             printf '\r\n\r\n'; sleep 20 ;;
  /trailers) printf "$chunked"'3\r\nabc\r\n0\r\n'; yes "X-Trailer: yes$cr" ;;
  /short) printf 'HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\nonly this' ;;
  /ws) printf 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n'
       sleep 30 ;;
  /flood) printf 'HTTP/1.1 200 OK\r\nContent-Length: 100000000000\r\n\r\n'; exec cat /dev/zero ;;
  /health-head) printf 'HTTP/1.1 200 OK\r\n'; yes "X-Endless: yes$cr" ;;
  /health-body) printf 'HTTP/1.1 200 OK\r\n\r\n'; exec cat /dev/zero ;;
  *) printf 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n' ;;
esac
)";

std::string badToml(const std::string& health) {
  return "[app]\nstart = \"exec nc -ll -p 8080 -e /srv/app/bad.sh\"\nport = 8080\nhealth = \"" +
         health + "\"\n";
}

long rssKb(int pid) { return procStatusKb(pid, "VmRSS"); }

class LxcHostile : public ::testing::Test {
 protected:
  static void TearDownTestSuite() {
    git_.reset();
    host_.reset();
  }

  void SetUp() override {
    QABOX_REQUIRE_LXC();
    if (setupFailed_) FAIL() << "the suite's host could not be set up (see the first test)";
    if (host_) return;
    setupFailed_ = true;
    TestHost::Options o;
    o.healthTimeout = "4s";
    host_ = std::make_unique<TestHost>();
    git_ = std::make_unique<GitFixture>(host_->stateDir() + "/src");
    git_->write("qabox.toml", "[app]\nstart = \"exec httpd -f -p 80 -h /srv/app\"\n");
    git_->write("index.html", "good app\n");
    git_->commit("good app");
    git_->push("develop");
    pushBad("hostile", "/ok");
    pushBad("sick-head", "/health-head");
    pushBad("sick-body", "/health-body");
    o.repos = {{"app", git_->bare()}};
    host_->writeConfig(o);
    host_->startDaemon();
    ASSERT_EQ(host_->cli({"image", "build", "busybox"}).exitCode, 0);
    auto good = deploy("GOOD-1", "develop");
    ASSERT_EQ(good.exitCode, 0) << good.out << good.err;
    auto bad = deploy("BAD-1", "hostile");
    ASSERT_EQ(bad.exitCode, 0) << bad.out << bad.err;
    setupFailed_ = false;
  }

  static void pushBad(const std::string& branch, const std::string& health) {
    git_->checkout("develop");
    git_->checkout(branch, true);
    git_->write("qabox.toml", badToml(health));
    git_->write("bad.sh", kBadApp);
    git_->makeExecutable("bad.sh");
    git_->commit(branch);
    git_->push(branch);
    git_->checkout("develop");
  }

  static CliResult deploy(const std::string& ticket, const std::string& branch) {
    return host_->cli(
        {"deploy", ticket, "--repo", "app", "--source", branch, "--target", "develop"});
  }

  std::string badRequest(const std::string& path) {
    return "GET " + path + " HTTP/1.1\r\nHost: bad-1." + host_->domain() + "\r\n\r\n";
  }

  // The agent is up and another environment answers through the router.
  void expectAgentServing() {
    ASSERT_TRUE(host_->daemonRunning()) << host_->logText();
    auto r = httpGet("127.0.0.1", host_->routerPort(), "/index.html", "good-1." + host_->domain());
    EXPECT_EQ(r.status, 200) << r.error;
    EXPECT_EQ(r.body, "good app\n");
    // And the hostile one's well-behaved path, on a new connection.
    EXPECT_EQ(httpGet("127.0.0.1", host_->routerPort(), "/ok", "bad-1." + host_->domain()).status,
              200);
  }

  // The response head may be out already: the client sees the connection
  // cut, promptly, before a whole response.
  void expectCut(const std::string& path) {
    long before = rssKb(host_->daemonPid());
    RawClient c(host_->routerPort());
    ASSERT_TRUE(c.connected());
    ASSERT_TRUE(c.send(badRequest(path)));
    auto t0 = Clock::now();
    std::string got = c.readAll(10s);
    EXPECT_TRUE(c.eof()) << "the router held the connection: " << got.substr(0, 200);
    EXPECT_LT(Clock::now() - t0, 8s);
    expectAgentServing();
    EXPECT_LT(rssKb(host_->daemonPid()), before + 32 * kMiBKb);
  }

  void expect502(const std::string& path, const std::string& why) {
    long before = rssKb(host_->daemonPid());
    auto r = httpGet("127.0.0.1", host_->routerPort(), path, "bad-1." + host_->domain(), 10s);
    EXPECT_EQ(r.status, 502) << r.error;
    EXPECT_NE(r.body.find(why), std::string::npos) << r.body;
    expectAgentServing();
    EXPECT_LT(rssKb(host_->daemonPid()), before + 32 * kMiBKb);
  }

  // A deploy whose health endpoint answers without end fails its health
  // step within the deadline, with a message naming the bound it broke.
  void expectHealthFails(const std::string& ticket, const std::string& branch,
                         const std::string& why) {
    auto t0 = Clock::now();
    auto r = deploy(ticket, branch);
    EXPECT_NE(r.exitCode, 0);
    EXPECT_LT(Clock::now() - t0, 90s);
    auto env = host_->env(ticket);
    ASSERT_TRUE(env);
    EXPECT_EQ(env->state(), v1::Environment::FAILED);
    EXPECT_NE(env->message().find("health"), std::string::npos) << env->message();
    EXPECT_NE(env->message().find(why), std::string::npos) << env->message();
  }

  static inline std::unique_ptr<TestHost> host_;
  static inline std::unique_ptr<GitFixture> git_;
  static inline bool setupFailed_ = false;
};

TEST_F(LxcHostile, BackendEndlessChunkExtensionCutsOnlyItsConnection) {
  // The answer from the issue: "1;" and 100 KB of 'a', no CRLF.
  expectCut("/chunk-ext");
  // Again, and on several connections at once.
  std::vector<std::unique_ptr<RawClient>> many;
  for (int i = 0; i < 8; ++i) {
    many.push_back(std::make_unique<RawClient>(host_->routerPort()));
    ASSERT_TRUE(many.back()->send(badRequest("/chunk-ext")));
  }
  for (auto& c : many) {
    c->readAll(10s);
    EXPECT_TRUE(c->eof());
  }
  expectAgentServing();
}

TEST_F(LxcHostile, BackendHugeChunkSizeDigitsCutOnlyItsConnection) { expectCut("/chunk-size"); }

TEST_F(LxcHostile, BackendEndlessTrailersCutOnlyItsConnection) { expectCut("/trailers"); }

TEST_F(LxcHostile, BackendBodyShorterThanContentLengthThenCloseIsCut) { expectCut("/short"); }

TEST_F(LxcHostile, BackendEndlessHeaderLinesIs502) {
  expect502("/headers", "response head larger than 64 KiB");
}

TEST_F(LxcHostile, BackendHeadLargerThanTheLimitIs502) {
  expect502("/big-head", "response head larger than 64 KiB");
}

TEST_F(LxcHostile, WebSocketBackendThatNeverReadsHoldsNoClientBytes) {
  long before = rssKb(host_->daemonPid());
  RawClient c(host_->routerPort());
  ASSERT_TRUE(
      c.send("GET /ws HTTP/1.1\r\nHost: bad-1." + host_->domain() +
             "\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"));
  std::string head = c.readUntil("\r\n\r\n", 10s);
  ASSERT_NE(head.find(" 101 "), std::string::npos) << head;
  // Frames' worth of bytes until the tunnel pushes back, for up to 3 s.
  std::string block(64 * 1024, 'w');
  size_t sent = 0;
  auto deadline = Clock::now() + 3s;
  while (Clock::now() < deadline && sent < 1024u * 1024 * 1024) {
    pollfd p{c.fd(), POLLOUT, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    ssize_t n = ::send(c.fd(), block.data(), block.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) sent += static_cast<size_t>(n);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) break;
  }
  std::printf("[ figure ] websocket backend that never reads: the client got %zu KiB in\n",
              sent / 1024);
  EXPECT_LT(sent, 64u * 1024 * 1024) << "the agent buffers what the backend does not read";
  long during = rssKb(host_->daemonPid());
  std::printf("[ figure ] agent RSS %ld KiB before, %ld KiB with the tunnel stalled\n", before,
              during);
  EXPECT_LT(during, before + 32 * kMiBKb);
  expectAgentServing();
}

TEST_F(LxcHostile, ClientThatNeverReadsHoldsNoBackendBytes) {
  long before = rssKb(host_->daemonPid());
  RawClient c(host_->routerPort());
  ASSERT_TRUE(c.send(badRequest("/flood")));
  // The app writes as fast as it can; the client reads nothing for 3 s.
  std::this_thread::sleep_for(3s);
  long during = rssKb(host_->daemonPid());
  std::printf("[ figure ] agent RSS %ld KiB before, %ld KiB with a client that never reads\n",
              before, during);
  EXPECT_LT(during, before + 32 * kMiBKb);
  expectAgentServing();
}

TEST_F(LxcHostile, HealthEndpointWithEndlessHeadFailsTheDeploy) {
  expectHealthFails("SICK-1", "sick-head", "head is larger than 16 KiB");
  expectAgentServing();
}

TEST_F(LxcHostile, HealthEndpointWithEndlessBodyFailsTheDeploy) {
  expectHealthFails("SICK-2", "sick-body", "body is larger than 1 MiB");
  expectAgentServing();
}

}  // namespace
}  // namespace qabox::testing
