// Issue 15: a real Prometheus scrapes the real agent while it deploys a real
// environment, routes requests to it and deletes it; its HTTP API returns the
// series and values, and promtool accepts the agent's text.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <thread>

#include "harness.h"

namespace qabox::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

uint16_t freePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

std::string urlEncode(const std::string& s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '_' || c == '.' || c == '-') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

// Debian's prometheus on loopback, scraping the agent every second, with its
// own tsdb under `dir`; killed when the test ends, also on failure.
class Prometheus {
 public:
  Prometheus(const std::string& dir, uint16_t target) : dir_(dir), port_(freePort()) {
    fs::create_directories(dir_ + "/data");
    std::ofstream(dir_ + "/prometheus.yml")
        << "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        << "scrape_configs:\n  - job_name: qabox\n    static_configs:\n"
        << "      - targets: ['127.0.0.1:" << target << "']\n";
    pid_ = ::fork();
    if (pid_ == 0) {
      std::string log = dir_ + "/prometheus.log";
      FILE* f = std::freopen(log.c_str(), "w", stderr);
      (void)f;
      std::string config = "--config.file=" + dir_ + "/prometheus.yml";
      std::string data = "--storage.tsdb.path=" + dir_ + "/data";
      std::string web = "--web.listen-address=127.0.0.1:" + std::to_string(port_);
      ::execl("/usr/bin/prometheus", "prometheus", config.c_str(), data.c_str(), web.c_str(),
              "--web.enable-lifecycle", static_cast<char*>(nullptr));
      ::_exit(127);
    }
  }
  ~Prometheus() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  Prometheus(const Prometheus&) = delete;
  Prometheus& operator=(const Prometheus&) = delete;

  bool ready() {
    for (int i = 0; i < 300; ++i) {
      if (httpGet("127.0.0.1", port_, "/-/ready").status == 200) return true;
      std::this_thread::sleep_for(100ms);
    }
    return false;
  }

  // The instant vector for `query`: each sample's labels and value.
  nlohmann::json query(const std::string& q) {
    auto r = httpGet("127.0.0.1", port_, "/api/v1/query?query=" + urlEncode(q));
    if (r.status != 200) return nlohmann::json::array();
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    if (j.is_discarded() || j["status"] != "success") return nlohmann::json::array();
    return j["data"]["result"];
  }

  // Polls until the query's single value is `want` (or, with no `want`,
  // until the query returns nothing), up to 30 s.
  bool waitFor(const std::string& q, std::optional<double> want) {
    for (int i = 0; i < 300; ++i) {
      auto res = query(q);
      if (!want && res.empty()) return true;
      if (want && res.size() == 1 && std::stod(res[0]["value"][1].get<std::string>()) == *want) {
        return true;
      }
      std::this_thread::sleep_for(100ms);
    }
    return false;
  }

  std::string log() { return readFile(dir_ + "/prometheus.log"); }

 private:
  std::string dir_;
  uint16_t port_;
  pid_t pid_ = -1;
};

uint16_t metricsPort(TestHost& host) {
  std::smatch m;
  std::string log = host.logText();
  if (!std::regex_search(log, m, std::regex(R"(metrics listening on \S+ \(port (\d+)\))"))) {
    return 0;
  }
  return static_cast<uint16_t>(std::stoi(m[1]));
}

TEST(LxcMetrics, PrometheusSeesDeploysRequestsAndTheDeleteOfAnEnvironment) {
  QABOX_REQUIRE_LXC();
  if (!fs::exists("/usr/bin/prometheus") || !fs::exists("/usr/bin/promtool")) {
    if (inCi()) FAIL() << "prometheus is missing (scripts/install-deps.sh installs it)";
    GTEST_SKIP() << "needs Debian's prometheus";
  }
  TestHost::Options o;
  o.metricsListen = "127.0.0.1:0";
  TestHost host(o);
  host.startWithBusybox();
  uint16_t port = metricsPort(host);
  ASSERT_NE(port, 0) << host.logText();
  Prometheus prom(host.stateDir() + "/prometheus", port);
  ASSERT_TRUE(prom.ready()) << prom.log();

  auto deploy = host.cli({"deploy", "MET-1", "--image", "busybox"});
  ASSERT_EQ(deploy.exitCode, 0) << deploy.err;
  for (int i = 0; i < 5; ++i) {
    auto r = httpGet("127.0.0.1", host.routerPort(), "/", "met-1." + host.domain(), 10s);
    EXPECT_EQ(r.status, 200) << r.error;
  }

  auto scrape = httpGet("127.0.0.1", port, "/metrics");
  ASSERT_EQ(scrape.status, 200);
  std::string file = host.stateDir() + "/scrape.txt";
  std::ofstream(file) << scrape.body;
  EXPECT_EQ(std::system(("promtool check metrics < " + file).c_str()), 0) << scrape.body;

  EXPECT_TRUE(prom.waitFor("qabox_deploys_total{outcome=\"ok\"}", 1));
  EXPECT_TRUE(prom.waitFor(
      "sum(qabox_router_requests_total{environment=\"met-1\",code_class=\"2xx\",method=\"GET\"})",
      5));
  EXPECT_TRUE(prom.waitFor("qabox_environments{state=\"ready\"}", 1));
  EXPECT_TRUE(
      prom.waitFor("qabox_router_request_duration_seconds_count{environment=\"met-1\"}", 5));
  EXPECT_TRUE(
      prom.waitFor("count(qabox_deploy_phase_duration_seconds_count{phase=\"health\"})", 1));
  EXPECT_TRUE(prom.waitFor("qabox_api_calls_total{rpc=\"Deploy\",code=\"OK\"}", 1));
  EXPECT_FALSE(prom.query("process_resident_memory_bytes").empty());

  auto del = host.cli({"delete", "MET-1"});
  ASSERT_EQ(del.exitCode, 0) << del.err;
  EXPECT_TRUE(prom.waitFor("qabox_router_requests_total{environment=\"met-1\"}", std::nullopt));
  EXPECT_TRUE(prom.waitFor("qabox_router_sent_bytes_total{environment=\"met-1\"}", std::nullopt));
  EXPECT_TRUE(prom.waitFor("qabox_environments{state=\"ready\"}", 0));
  EXPECT_TRUE(prom.waitFor("qabox_deploys_total{outcome=\"ok\"}", 1));
}

}  // namespace
}  // namespace qabox::testing
