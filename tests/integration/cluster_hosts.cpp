#include "cluster_hosts.h"

#include <filesystem>
#include <thread>

namespace qabox::testing {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

// A shell per connection that switches protocols on an Upgrade and echoes
// with cat, and answers anything else "ok": a websocket app busybox httpd
// cannot be.
constexpr const char* kEchoServer = R"(#!/bin/sh
cr=$(printf '\r')
read -r line || exit 0
upgrade=
while read -r h; do
  h=${h%"$cr"}
  [ -z "$h" ] && break
  case "$h" in [Uu]pgrade:*[Ww]eb[Ss]ocket*) upgrade=1 ;; esac
done
if [ -n "$upgrade" ]; then
  printf 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n'
  exec cat
fi
printf 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n'
)";

}  // namespace

bool eventually(const std::function<bool()>& cond, std::chrono::milliseconds within) {
  const auto deadline = Clock::now() + within;
  while (Clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return cond();
}

void ClusterHostsTest::SetUp() {
  QABOX_REQUIRE_LXC();
  QABOX_REQUIRE_ETCD();
  backbone_ = std::make_unique<Backbone>();
  for (int k = 0; k < kHosts; ++k) ns_.push_back(backbone_->add());
  dir_ = "/tmp/qabox-cluster-" + randomId();
  etcd_ = std::make_unique<EtcdFixture>(dir_, 3, backbone_->gateway());
  ASSERT_NO_FATAL_FAILURE(etcd_->start());
  // Each host's certificate from the CA etcd trusts, naming the host (the
  // name its peers check) and its address.
  TestPki pki(dir_ + "/pki");
  for (int k = 0; k < kHosts; ++k) {
    ASSERT_NO_FATAL_FAILURE(pki.leaf(name(k), "ca",
                                     "subjectAltName = DNS:" + name(k) + ", IP:" + addr(k) +
                                         "\nextendedKeyUsage = serverAuth, clientAuth\n"));
  }
  for (int k = 0; k < kHosts; ++k) hosts_.push_back(std::make_unique<TestHost>());
  app_ = hosts_[0]->appRepo({{"README", "the cluster tests' app\n"}});
  app_->checkout("echo", true);
  app_->write("qabox.toml",
              "[app]\nstart = \"exec nc -ll -p 8080 -e /srv/app/echo.sh\"\nport = 8080\n"
              "health = \"/ok\"\n[hooks]\nbuild = \"echo built on its owner\"\n");
  app_->write("echo.sh", kEchoServer);
  app_->makeExecutable("echo.sh");
  app_->commit("echo");
  app_->push("echo");
  app_->checkout("develop");
}

void ClusterHostsTest::TearDown() {
  app_.reset();
  hosts_.clear();  // their containers first, destroyed in their namespaces
  etcd_.reset();
  backbone_.reset();
  std::error_code ec;
  if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
}

uint16_t ClusterHostsTest::apiPort(int k) {
  auto& p = apiPorts_[k];
  if (p == 0) p = freeTcpPort();
  return p;
}

void ClusterHostsTest::startHost(int k, uint32_t capacity) {
  std::string endpoints;
  for (const auto& e : etcd_->endpoints()) {
    endpoints += (endpoints.empty() ? "\"" : ", \"") + e + "\"";
  }
  const std::string pki = dir_ + "/pki/";
  TestHost::Options o;
  o.netns = ns_[static_cast<size_t>(k)];
  o.routerHost = addr(k);
  o.repos = {{"app", app_->bare()}};
  o.extraToml = "[cluster]\netcd = [" + endpoints + "]\nca = \"" + pki + "ca.crt\"\ncert = \"" +
                pki + name(k) + ".crt\"\nkey = \"" + pki + name(k) + ".key\"\nname = \"" + name(k) +
                "\"\nadvertise_api = \"" + addr(k) + ":" + std::to_string(apiPort(k)) +
                "\"\nadvertise_router = \"" + addr(k) + ":" + std::to_string(host(k).routerPort()) +
                "\"\nlease_ttl = \"2s\"\n" + "prefix = \"/" + backbone_->bridge() +
                "/\"\ncapacity = " + std::to_string(capacity) + "\n";
  host(k).writeConfig(o);
  ASSERT_NO_FATAL_FAILURE(host(k).startWithBusybox());
}

void ClusterHostsTest::startAll(const std::vector<uint32_t>& capacities) {
  for (int k = 0; k < kHosts; ++k) {
    ASSERT_NO_FATAL_FAILURE(startHost(k, capacities[static_cast<size_t>(k)]));
  }
  auto upEverywhere = [&] {
    for (int k = 0; k < kHosts; ++k) {
      auto r = host(k).cli({"hosts"});
      size_t up = 0;
      for (size_t at = r.out.find(" UP"); at != std::string::npos; at = r.out.find(" UP", at + 1)) {
        ++up;
      }
      if (up != kHosts) return false;
    }
    return true;
  };
  ASSERT_TRUE(eventually(upEverywhere)) << host(0).cli({"hosts"}).out;
}

HttpReply ClusterHostsTest::who(int k, const std::string& slug) {
  return httpGet(addr(k), host(k).routerPort(), "/who.txt", hostOf(slug), 3s);
}

std::string ClusterHostsTest::deployMarked(int via, const std::string& ticket,
                                           const std::string& on) {
  std::vector<std::string> args = {"deploy", ticket};
  if (!on.empty()) args.insert(args.end(), {"--host", on});
  auto r = host(via).cli(args);
  EXPECT_EQ(r.exitCode, 0) << r.err;
  auto env = host(via).env(ticket);
  if (!env) {
    ADD_FAILURE() << "no " << ticket << " after its deploy";
    return "";
  }
  auto w = host(via).cli({"exec", ticket, "--", "sh", "-c", "echo " + env->host() + " > who.txt"});
  EXPECT_EQ(w.exitCode, 0) << w.err;
  return env->host();
}

}  // namespace qabox::testing
