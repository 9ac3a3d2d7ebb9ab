// Issue: route <ticket>.<domain> to each environment. Through the real
// router inside the real daemon to real containers.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <fstream>
#include <optional>
#include <string_view>
#include <thread>
#include <utility>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "harness.h"

namespace qabox::testing {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace asio = boost::asio;

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr size_t kMiB = 1024 * 1024;
constexpr size_t kBigBytes = 256 * kMiB;
// What the big transfers carry: 32-byte lines, so a byte lost, doubled or
// moved shows at its offset, and no CR, so the chunked counter below can
// split the stream on CR.
constexpr std::string_view kLine = "abcdefghijklmnopqrstuvwxyz01234\n";

// Busybox httpd hands a CGI the request body only by Content-Length: this
// one counts it.
constexpr const char* kCountCgi =
    "#!/bin/sh\nn=$(wc -c)\nprintf 'Content-Type: text/plain\\r\\n\\r\\n%s\\n' \"$n\"\n";

// Records every request that reaches the app.
constexpr const char* kHitCgi =
    "#!/bin/sh\necho \"$QUERY_STRING\" >> /tmp/hits\n"
    "printf 'Content-Type: text/plain\\r\\n\\r\\nhit\\n'\n";

// A server busybox httpd can not be: one shell per connection (nc -ll -e)
// that switches protocols on an Upgrade and then echoes bytes with cat,
// counts a chunked body (dechunk.awk), and answers anything else "ok".
constexpr const char* kRawServer = R"(#!/bin/sh
cr=$(printf '\r')
read -r line || exit 0
upgrade= chunked=
while read -r h; do
  h=${h%"$cr"}
  [ -z "$h" ] && break
  case "$h" in
    [Uu]pgrade:*[Ww]eb[Ss]ocket*) upgrade=1 ;;
    [Tt]ransfer-[Ee]ncoding:*chunked*) chunked=1 ;;
  esac
done
if [ -n "$upgrade" ]; then
  printf 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n'
  exec cat
fi
body=ok
[ -n "$chunked" ] && body=$(awk -f /srv/app/dechunk.awk)
printf 'HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s\n' $((${#body} + 1)) "$body"
)";

// Reads a chunked body of CR-free data in one process (a dd per chunk would
// take minutes for 256 MiB): split on CR, records alternate between a size
// line and that many bytes of data. Prints the data's byte count, or what
// was wrong.
constexpr const char* kDechunkAwk = R"(function hex(s,   i, n, d) {
  n = 0
  for (i = 1; i <= length(s); i++) {
    d = index("0123456789abcdef", tolower(substr(s, i, 1)))
    if (d == 0) return -1
    n = n * 16 + d - 1
  }
  return n
}
BEGIN { RS = "\r"; want = -1 }
{
  rec = $0
  if (NR > 1) {
    if (substr(rec, 1, 1) != "\n") { bad = "no LF after CR"; exit }
    rec = substr(rec, 2)
  }
  if (want < 0) {
    want = hex(rec)
    if (want < 0) { bad = "bad chunk size " rec; exit }
    if (want == 0) exit
  } else {
    if (length(rec) != want) { bad = "chunk of " length(rec) " bytes, its size said " want; exit }
    total += want
    want = -1
  }
}
END { print bad ? bad : total + 0 }
)";

// kB of a /proc/<pid>/status field ("VmRSS", "VmHWM"); -1 when missing.
// A whole response as bytes (chunked bodies decoded), or just its head.
HttpReply parseResponse(const std::string& raw) {
  HttpReply reply;
  http::response_parser<http::string_body> p;
  p.eager(true);
  p.body_limit(UINT64_MAX);
  beast::error_code ec;
  size_t off = 0;
  while (off < raw.size() && !p.is_done()) {
    size_t n = p.put(asio::buffer(raw.data() + off, raw.size() - off), ec);
    off += n;
    if (ec == http::error::need_more) {
      ec = {};
      break;
    }
    if (ec) {
      reply.error = ec.message();
      break;
    }
    if (n == 0) break;
  }
  if (!p.is_header_done()) {
    if (reply.error.empty()) reply.error = "no complete response head in: " + raw.substr(0, 200);
    return reply;
  }
  reply.status = static_cast<int>(p.get().result_int());
  reply.body = p.get().body();
  for (const auto& f : p.get()) {
    std::string name(f.name_string());
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    reply.headers[name] = std::string(f.value());
  }
  return reply;
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

class LxcRouter : public ::testing::Test {
 protected:
  void SetUp() override {
    QABOX_REQUIRE_LXC();
    host_ = std::make_unique<TestHost>();
    git_ = std::make_unique<GitFixture>(host_->stateDir() + "/src");
    git_->write("qabox.toml",
                "[app]\nstart = \"exec httpd -f -p 80 -h /srv/app\"\nhealth = \"/ok.txt\"\n"
                "[hooks]\nbuild = \"sleep ${BUILD_SLEEP:-0} && echo ok > ok.txt\"\n");
    git_->write("index.html", "slow app\n");
    git_->commit("app");
    git_->push("develop");
    TestHost::Options o;
    o.repos = {{"app", git_->bare()}};
    host_->writeConfig(o);
    host_->startDaemon();
    ASSERT_EQ(host_->cli({"image", "build", "busybox"}).exitCode, 0);
  }

  HttpReply get(const std::string& slug, const std::string& path = "/") {
    return httpGet("127.0.0.1", host_->routerPort(), path, slug + "." + host_->domain());
  }

  // Pushes `branch`: develop with its own qabox.toml and files.
  void pushApp(const std::string& branch, const std::string& toml,
               const std::vector<std::pair<std::string, std::string>>& files,
               const std::vector<std::string>& executables = {}) {
    git_->checkout("develop");
    git_->checkout(branch, true);
    git_->write("qabox.toml", toml);
    for (const auto& [path, content] : files) git_->write(path, content);
    for (const auto& path : executables) git_->makeExecutable(path);
    git_->commit(branch);
    git_->push(branch);
    git_->checkout("develop");
  }

  CliResult deployApp(const std::string& ticket, const std::string& branch) {
    return host_->cli(
        {"deploy", ticket, "--repo", "app", "--source", branch, "--target", "develop"});
  }

  CliResult exec(const std::string& ticket, const std::vector<std::string>& argv) {
    std::vector<std::string> args = {"exec", ticket, "--"};
    args.insert(args.end(), argv.begin(), argv.end());
    return host_->cli(args);
  }

  // httpd on 8080 serving www/ with its count and hit CGIs, logging each
  // request; with `bigFile` the build hook makes www/big.bin, kBigBytes of
  // kLine, with dd.
  void pushHttpdApp(const std::string& branch, bool bigFile) {
    std::string build = "echo ok > www/ok.txt";
    if (bigFile) {
      build += " && yes " + std::string(kLine.substr(0, kLine.size() - 1)) +
               " | dd of=www/big.bin bs=1M count=" + std::to_string(kBigBytes / kMiB) +
               " iflag=fullblock";
    }
    pushApp(branch,
            "[app]\nstart = \"exec httpd -f -vv -p 8080 -h /srv/app/www\"\nport = 8080\n"
            "health = \"/ok.txt\"\n[hooks]\nbuild = \"" +
                build + "\"\n",
            {{"www/cgi-bin/count", kCountCgi}, {"www/cgi-bin/hit", kHitCgi}},
            {"www/cgi-bin/count", "www/cgi-bin/hit"});
  }

  void pushRawApp(const std::string& branch) {
    pushApp(branch,
            "[app]\nstart = \"exec nc -ll -p 8080 -e /srv/app/raw.sh\"\nport = 8080\n"
            "health = \"/ok\"\n",
            {{"raw.sh", kRawServer}, {"dechunk.awk", kDechunkAwk}}, {"raw.sh"});
  }

  std::string hostOf(const std::string& slug) { return slug + "." + host_->domain(); }

  std::unique_ptr<TestHost> host_;
  std::unique_ptr<GitFixture> git_;
};

TEST_F(LxcRouter, RoutesEachHostToItsOwnContainer) {
  for (const char* t : {"ONE-1", "TWO-2", "THREE-3"}) {
    ASSERT_EQ(host_->cli({"deploy", t}).exitCode, 0);
    ASSERT_EQ(
        host_->cli({"exec", t, "--", "sh", "-c", std::string("echo ") + t + " > who.txt"}).exitCode,
        0);
  }
  for (int round = 0; round < 3; ++round) {
    EXPECT_EQ(get("one-1", "/who.txt").body, "ONE-1\n");
    EXPECT_EQ(get("two-2", "/who.txt").body, "TWO-2\n");
    // Host is matched case-insensitively and its port ignored.
    auto r = httpGet("127.0.0.1", host_->routerPort(), "/who.txt",
                     "THREE-3." + host_->domain() + ":" + std::to_string(host_->routerPort()));
    EXPECT_EQ(r.body, "THREE-3\n");
  }
  auto unknown = get("nobody-1");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_NE(unknown.body.find("No such environment"), std::string::npos) << unknown.body;
  // A name outside the domain is no host this router serves.
  EXPECT_EQ(httpGet("127.0.0.1", host_->routerPort(), "/", "one-1.other.domain").status, 400);
  EXPECT_EQ(httpGet("127.0.0.1", host_->routerPort(), "/", "bad host!").status, 400);
}

TEST_F(LxcRouter, KeepAliveServesManyRequestsOnOneConnection) {
  ASSERT_EQ(host_->cli({"deploy", "KA-1"}).exitCode, 0);
  asio::io_context ioc;
  beast::tcp_stream stream(ioc);
  stream.expires_after(std::chrono::seconds(10));
  stream.connect(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), host_->routerPort()));
  beast::flat_buffer buf;
  for (int i = 0; i < 20; ++i) {
    http::request<http::empty_body> req{http::verb::get, "/", 11};
    req.set(http::field::host, "ka-1." + host_->domain());
    http::write(stream, req);
    http::response<http::string_body> res;
    http::read(stream, buf, res);
    ASSERT_EQ(res.result_int(), 200u) << i;
    EXPECT_TRUE(res.keep_alive());
  }
  auto env = host_->env("KA-1");
  ASSERT_TRUE(env);
  // Use is tracked: the counters reach SQLite at the flush interval (1s).
  bool counted = false;
  for (int i = 0; i < 50 && !counted; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    auto e = host_->env("KA-1");
    counted = e && e->request_count() >= 20 && e->has_last_access_at();
  }
  EXPECT_TRUE(counted);
}

TEST_F(LxcRouter, DeployingIs503FailedIs502RefusedIs502) {
  int pid = host_->cliAsync({"deploy", "SLOW-1", "--repo", "app", "--source", "develop", "--target",
                             "develop", "--env", "BUILD_SLEEP=4"});
  HttpReply during;
  for (int i = 0; i < 100; ++i) {
    during = get("slow-1");
    if (during.status == 503) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(during.status, 503);
  EXPECT_FALSE(during.headers["retry-after"].empty());
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_EQ(get("slow-1", "/index.html").body, "slow app\n");

  // A failed deploy: 502 with its state and message.
  ASSERT_NE(host_
                ->cli({"deploy", "FAIL-1", "--repo", "app", "--source", "develop", "--target",
                       "develop", "--env", "BUILD_SLEEP=x"})
                .exitCode,
            0);
  auto failed = get("fail-1");
  EXPECT_EQ(failed.status, 502);
  EXPECT_NE(failed.body.find("FAILED"), std::string::npos) << failed.body;
  EXPECT_NE(failed.body.find("build"), std::string::npos) << failed.body;

  // The app stops answering: the router says the backend refused.
  ASSERT_EQ(host_->cli({"deploy", "DOWN-1"}).exitCode, 0);
  ASSERT_EQ(host_
                ->cli({"exec", "DOWN-1", "--", "sh", "-c",
                       "rm /etc/qabox/app.run; killall httpd; sleep 0.2"})
                .exitCode,
            0);
  auto down = get("down-1");
  EXPECT_EQ(down.status, 502);
}

TEST_F(LxcRouter, DeleteSwitchesTheRouteAtOnce) {
  ASSERT_EQ(host_->cli({"deploy", "GONE-1"}).exitCode, 0);
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, notFound{0}, other{0};
  std::thread poller([&] {
    while (!stop) {
      int s = get("gone-1").status;
      (s == 200 ? ok : s == 404 ? notFound : other)++;
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ASSERT_EQ(host_->cli({"delete", "GONE-1"}).exitCode, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  stop = true;
  poller.join();
  EXPECT_GT(ok.load(), 0);
  EXPECT_GT(notFound.load(), 0);
  // Every request got the app or the 404 page: none reached a container
  // being destroyed.
  EXPECT_EQ(other.load(), 0);
  EXPECT_EQ(get("gone-1").status, 404);
}

TEST_F(LxcRouter, LargeBodiesStreamBothWaysInBoundedMemory) {
  pushHttpdApp("big", true);
  pushRawApp("raw");
  auto r = deployApp("BIG-1", "big");
  ASSERT_EQ(r.exitCode, 0) << r.err << host_->logText();
  r = deployApp("RAW-1", "raw");
  ASSERT_EQ(r.exitCode, 0) << r.err << host_->logText();
  ASSERT_EQ(exec("BIG-1", {"wc", "-c", "www/big.bin"}).out,
            std::to_string(kBigBytes) + " www/big.bin\n");

  const int pid = host_->daemonPid();
  ASSERT_GT(pid, 0);
  // Resets VmHWM to the current RSS, so it reads as the peak of the transfers.
  std::ofstream("/proc/" + std::to_string(pid) + "/clear_refs") << "5";
  const long rssBefore = procStatusKb(pid, "VmRSS");
  ASSERT_GT(rssBefore, 0);

  std::string block;
  while (block.size() < kMiB) block += kLine;
  auto mibPerS = [](Clock::time_point t0) {
    double s = std::chrono::duration<double>(Clock::now() - t0).count();
    return static_cast<double>(kBigBytes / kMiB) / s;
  };

  {
    SCOPED_TRACE("upload with Content-Length to the CGI");
    auto t0 = Clock::now();
    RawClient c(host_->routerPort());
    ASSERT_TRUE(c.connected());
    ASSERT_TRUE(c.send("POST /cgi-bin/count HTTP/1.1\r\nHost: " + hostOf("big-1") +
                       "\r\nContent-Type: application/octet-stream\r\nContent-Length: " +
                       std::to_string(kBigBytes) + "\r\nConnection: close\r\n\r\n"));
    for (size_t sent = 0; sent < kBigBytes; sent += block.size()) {
      ASSERT_TRUE(c.send(block, 30s)) << "stalled after " << sent << " bytes";
    }
    auto reply = parseResponse(c.readAll(60s));
    EXPECT_EQ(reply.status, 200) << reply.error;
    EXPECT_EQ(reply.body, std::to_string(kBigBytes) + "\n");
    std::printf("[   info   ] upload, Content-Length: %.0f MiB/s\n", mibPerS(t0));
  }
  {
    SCOPED_TRACE("chunked upload");
    auto t0 = Clock::now();
    RawClient c(host_->routerPort());
    ASSERT_TRUE(c.connected());
    ASSERT_TRUE(c.send("POST /count HTTP/1.1\r\nHost: " + hostOf("raw-1") +
                       "\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"));
    char size[32];
    std::snprintf(size, sizeof size, "%zx\r\n", block.size());
    const std::string chunk = size + block + "\r\n";
    for (size_t sent = 0; sent < kBigBytes; sent += block.size()) {
      ASSERT_TRUE(c.send(chunk, 30s)) << "stalled after " << sent << " bytes";
    }
    ASSERT_TRUE(c.send("0\r\n\r\n"));
    auto reply = parseResponse(c.readAll(60s));
    EXPECT_EQ(reply.status, 200) << reply.error;
    EXPECT_EQ(reply.body, std::to_string(kBigBytes) + "\n");
    std::printf("[   info   ] upload, chunked: %.0f MiB/s\n", mibPerS(t0));
  }
  {
    SCOPED_TRACE("download");
    auto t0 = Clock::now();
    RawClient c(host_->routerPort());
    ASSERT_TRUE(c.connected());
    ASSERT_TRUE(c.send("GET /big.bin HTTP/1.1\r\nHost: " + hostOf("big-1") +
                       "\r\nConnection: close\r\n\r\n"));
    auto head = parseResponse(c.readUntil("\r\n\r\n", 30s));
    ASSERT_EQ(head.status, 200) << head.error;
    EXPECT_EQ(head.headers["content-length"], std::to_string(kBigBytes));
    size_t got = 0, wrong = 0, firstWrong = 0;
    bool paused = false;
    // To the router's close, so a byte too many would show.
    for (std::string part; !(part = c.recvSome(kMiB, 30s)).empty();) {
      for (char ch : part) {
        if (ch != kLine[got % kLine.size()] && wrong++ == 0) firstWrong = got;
        ++got;
      }
      if (!paused && got >= kBigBytes / 4) {
        // A reader that stops: the app keeps sending, the router must not
        // buffer it.
        paused = true;
        std::this_thread::sleep_for(2s);
      }
    }
    EXPECT_TRUE(c.eof());
    EXPECT_EQ(got, kBigBytes);
    EXPECT_EQ(wrong, 0u) << "first wrong byte at " << firstWrong;
    std::printf("[   info   ] download with a 2 s pause: %.0f MiB/s\n", mibPerS(t0));
  }

  const long rssAfter = procStatusKb(pid, "VmRSS");
  const long hwmAfter = procStatusKb(pid, "VmHWM");
  std::printf("[   info   ] qaboxd VmRSS before %ld kB, after %ld kB; VmHWM during %ld kB\n",
              rssBefore, rssAfter, hwmAfter);
  RecordProperty("rss_before_kb", std::to_string(rssBefore));
  RecordProperty("rss_after_kb", std::to_string(rssAfter));
  RecordProperty("hwm_kb", std::to_string(hwmAfter));
  constexpr long kBoundKb = 64 * 1024;
  EXPECT_LT(hwmAfter - rssBefore, kBoundKb) << "the daemon buffered what it relayed";
  EXPECT_LT(rssAfter - rssBefore, kBoundKb);
}

TEST_F(LxcRouter, WebSocketUpgradeIsTunnelledToTheContainer) {
  pushRawApp("raw");
  auto r = deployApp("WS-1", "raw");
  ASSERT_EQ(r.exitCode, 0) << r.err << host_->logText();

  RawClient c(host_->routerPort());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.send("GET /chat HTTP/1.1\r\nHost: " + hostOf("ws-1") +
                     "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                     "\r\n"));
  auto head = parseResponse(c.readUntil("\r\n\r\n"));
  ASSERT_EQ(head.status, 101) << head.error;
  EXPECT_EQ(lower(head.headers["upgrade"]), "websocket");
  EXPECT_EQ(lower(head.headers["connection"]), "upgrade");

  auto readExactly = [&](size_t n) {
    std::string got;
    while (got.size() < n) {
      std::string part = c.recvSome(n - got.size(), 10s);
      if (part.empty()) break;
      got += part;
    }
    return got;
  };
  const std::string hello = maskedFrame(0x1, "hello through the router", 0x1a2b3c4d);
  ASSERT_TRUE(c.send(hello));
  EXPECT_EQ(readExactly(hello.size()), hello);

  // A frame bigger than every buffer on the way, sent while the echo comes
  // back.
  std::string payload(1 * kMiB, '\0');
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(i * 7 + i / 251);
  const std::string big = maskedFrame(0x2, payload, 0xdeadbeef);
  std::atomic<bool> sent{false};
  std::thread sender([&] { sent = c.send(big, 10s); });
  std::string echoed = readExactly(big.size());
  sender.join();
  EXPECT_TRUE(sent);
  EXPECT_EQ(echoed.size(), big.size());
  EXPECT_TRUE(echoed == big) << "the echo differs from what was sent";
  c.send(maskedFrame(0x8, "", 0));

  // The environment still answers plain requests.
  auto ok = get("ws-1", "/ok");
  EXPECT_EQ(ok.status, 200) << ok.error;
  EXPECT_EQ(ok.body, "ok\n");
}

TEST_F(LxcRouter, SmugglingShapesAndOversizedHeadsNeverReachTheApp) {
  pushHttpdApp("hits", false);
  auto r = deployApp("HIT-1", "hits");
  ASSERT_EQ(r.exitCode, 0) << r.err << host_->logText();

  const std::string h = "Host: " + hostOf("hit-1") + "\r\n";
  // What a backend reading the framing differently from the router would
  // take as a second request.
  const std::string smuggled = "GET /cgi-bin/hit?smuggled HTTP/1.1\r\n" + h + "\r\n";
  std::string manyFields;
  for (int i = 0; i < 120; ++i) manyFields += "X-" + std::to_string(i) + ": v\r\n";
  struct Shape {
    const char* name;
    std::string request;
    int status;
  };
  for (const Shape& s : std::vector<Shape>{
           {"CL and TE",
            "POST /cgi-bin/hit?cl-te HTTP/1.1\r\n" + h +
                "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled,
            400},
           {"TE and CL",
            "POST /cgi-bin/hit?te-cl HTTP/1.1\r\n" + h +
                "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n" + smuggled,
            400},
           {"two differing CL",
            "POST /cgi-bin/hit?cl-cl HTTP/1.1\r\n" + h + "Content-Length: 0\r\nContent-Length: " +
                std::to_string(smuggled.size()) + "\r\n\r\n" + smuggled,
            400},
           {"TE not chunked",
            "POST /cgi-bin/hit?te-gzip HTTP/1.1\r\n" + h + "Transfer-Encoding: gzip\r\n\r\n" +
                smuggled,
            400},
           {"TE chunked not last",
            "POST /cgi-bin/hit?te-list HTTP/1.1\r\n" + h +
                "Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n" + smuggled,
            400},
           {"obs-fold",
            "POST /cgi-bin/hit?fold HTTP/1.1\r\n" + h +
                "X-A: 1\r\n Transfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n" + smuggled,
            400},
           {"bare LF", "GET /cgi-bin/hit?lf HTTP/1.1\nHost: " + hostOf("hit-1") + "\n\n", 400},
           {"bare LF in a field",
            "GET /cgi-bin/hit?lf-field HTTP/1.1\r\n" + h + "X-A: 1\nX-B: 2\r\n\r\n", 400},
           {"head too large",
            "GET /cgi-bin/hit?big HTTP/1.1\r\n" + h + "X-Big: " + std::string(20000, 'x') +
                "\r\n\r\n",
            431},
           {"too many fields", "GET /cgi-bin/hit?many HTTP/1.1\r\n" + h + manyFields + "\r\n", 431},
       }) {
    RawClient c(host_->routerPort());
    ASSERT_TRUE(c.connected()) << s.name;
    EXPECT_TRUE(c.send(s.request)) << s.name;
    std::string all = c.readAll(10s);
    EXPECT_TRUE(all.starts_with("HTTP/1.1 " + std::to_string(s.status) + " "))
        << s.name << ": " << all.substr(0, 300);
    EXPECT_NE(lower(all).find("connection: close"), std::string::npos) << s.name;
    EXPECT_TRUE(c.eof()) << s.name << ": the router kept the connection";
  }

  // The app counts what reaches it: this one does, none of the above did.
  auto control = get("hit-1", "/cgi-bin/hit?control");
  EXPECT_EQ(control.status, 200) << control.error;
  EXPECT_EQ(control.body, "hit\n");
  EXPECT_EQ(exec("HIT-1", {"cat", "/tmp/hits"}).out, "control\n");
  std::string log = exec("HIT-1", {"cat", "/var/log/qabox/app.log"}).out;
  size_t seen = 0;
  for (size_t at = log.find("url:/cgi-bin/"); at != std::string::npos;
       at = log.find("url:/cgi-bin/", at + 1)) {
    ++seen;
  }
  EXPECT_EQ(seen, 1u) << log;
}

TEST_F(LxcRouter, StalledAndDribblingHeadsAreCutAtTheHeaderTimeout) {
  host_->stopDaemon();
  TestHost::Options o;
  o.repos = {{"app", git_->bare()}};
  o.routingToml = "header_timeout = \"1s\"\n";
  host_->writeConfig(o);
  host_->startDaemon();
  ASSERT_EQ(host_->cli({"deploy", "SLOW-2"}).exitCode, 0);
  const std::string host = hostOf("slow-2");

  // A keep-alive connection between requests is idle, not slow: the header
  // timeout does not apply to it.
  RawClient keep(host_->routerPort());
  ASSERT_TRUE(keep.send("HEAD / HTTP/1.1\r\nHost: " + host + "\r\n\r\n"));
  ASSERT_TRUE(keep.readUntil("\r\n\r\n").starts_with("HTTP/1.1 200 "));

  RawClient stalled(host_->routerPort());
  RawClient dribbling(host_->routerPort());
  const auto t0 = Clock::now();
  ASSERT_TRUE(stalled.send("GET / HTTP/1.1\r\nHost: " + host + "\r\nX-Sl"));
  ASSERT_TRUE(dribbling.send("GET / HTTP/1.1\r\nHost: " + host + "\r\nX-Drip: "));
  std::optional<Clock::duration> stalledCut, dribblingCut;
  int served = 0, failed = 0;
  while ((!stalledCut || !dribblingCut) && Clock::now() - t0 < 8s) {
    auto reply = get("slow-2", "/");
    (reply.status == 200 ? served : failed)++;
    if (!stalledCut) {
      stalled.recvSome(4096, 0ms);
      if (stalled.eof()) stalledCut = Clock::now() - t0;
    }
    if (!dribblingCut) {
      // Each byte is progress, but the head as a whole is late.
      if (!dribbling.send("x", 100ms)) dribbling.readAll(0ms);
      dribbling.recvSome(4096, 0ms);
      if (dribbling.eof()) dribblingCut = Clock::now() - t0;
    }
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(stalledCut) << "a stalled head was not cut within 8 s";
  ASSERT_TRUE(dribblingCut) << "a dribbling head was not cut within 8 s";
  auto ms = [](Clock::duration d) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  };
  std::printf("[   info   ] stalled head cut after %lld ms, dribbling head after %lld ms\n",
              static_cast<long long>(ms(*stalledCut)), static_cast<long long>(ms(*dribblingCut)));
  EXPECT_GE(ms(*stalledCut), 900);
  EXPECT_LE(ms(*stalledCut), 4000);
  EXPECT_GE(ms(*dribblingCut), 900);
  EXPECT_LE(ms(*dribblingCut), 4000);
  EXPECT_GE(served, 5);
  EXPECT_EQ(failed, 0);

  // Idle for longer than the header timeout, the keep-alive connection
  // still serves.
  ASSERT_TRUE(keep.send("HEAD / HTTP/1.1\r\nHost: " + host + "\r\n\r\n"));
  EXPECT_TRUE(keep.readUntil("\r\n\r\n").starts_with("HTTP/1.1 200 "));
}

}  // namespace
}  // namespace qabox::testing
