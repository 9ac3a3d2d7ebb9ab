// Issue: route <ticket>.<domain> to each environment. Through the real
// router inside the real daemon to real containers.
#include <utility>

#include <sys/wait.h>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <thread>

#include "harness.h"

namespace qabox::testing {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace asio = boost::asio;

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

}  // namespace
}  // namespace qabox::testing
