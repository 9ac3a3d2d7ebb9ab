#include "core/config.h"

#include <gtest/gtest.h>

namespace qabox {
namespace {

TEST(Config, DefaultConfigParses) {
  auto c = parseConfig(defaultConfigToml());
  ASSERT_TRUE(c.isOk()) << c.status().toString();
  EXPECT_EQ(c->stateDir, "/var/lib/qabox");
  EXPECT_EQ(c->network.subnet, "10.44.0.0/24");
  EXPECT_EQ(c->limits.maxEnvironments, 200u);
  EXPECT_EQ(c->urlFor("exmp-113"), "http://exmp-113.qa.company.int");
  EXPECT_TRUE(c->containers.unprivileged);
  EXPECT_EQ(c->containers.idBase, 1000000000u);
  EXPECT_FALSE(c->containers.allowNestedUserns);
}

TEST(Config, ReadsEveryContractKey) {
  auto c = parseConfig(R"(
state_dir = "/tmp/q"
images_dir = "/src/images"
[api]
listen = ["unix:///tmp/q/s.sock", "127.0.0.1:7443"]
tls_cert = "/etc/qabox/tls/server.crt"
tls_key = "/etc/qabox/tls/server.key"
client_ca = "/etc/qabox/tls/ca.crt"
socket_group = "qa-ops"
[network]
bridge = "qbt0"
subnet = "10.45.3.0/24"
[routing]
domain = "qa.example.test"
listen = "127.0.0.1:8080"
[limits]
max_environments = 3
[containers]
unprivileged = false
id_base = 200000
allow_nested_userns = true
[reaper]
interval = "0"
idle_after = "1h"
reclaim_deleted = false
[[repos]]
name = "shop"
url = "/tmp/shop.git"
)");
  ASSERT_TRUE(c.isOk()) << c.status().toString();
  EXPECT_EQ(c->api.listen.size(), 2u);
  EXPECT_EQ(c->api.tlsCert, "/etc/qabox/tls/server.crt");
  EXPECT_EQ(c->api.tlsKey, "/etc/qabox/tls/server.key");
  EXPECT_EQ(c->api.clientCa, "/etc/qabox/tls/ca.crt");
  EXPECT_EQ(c->api.socketGroup, "qa-ops");
  EXPECT_EQ(c->network.bridge, "qbt0");
  EXPECT_EQ(c->limits.maxEnvironments, 3u);
  EXPECT_FALSE(c->containers.unprivileged);
  EXPECT_EQ(c->containers.idBase, 200000u);
  EXPECT_TRUE(c->containers.allowNestedUserns);
  EXPECT_EQ(c->reaper.interval.count(), 0);
  EXPECT_FALSE(c->reaper.reclaimDeleted);
  ASSERT_EQ(c->repos.size(), 1u);
  EXPECT_EQ(c->findRepo("shop")->url, "/tmp/shop.git");
  EXPECT_EQ(c->findRepo("/tmp/shop.git")->name, "shop");
  EXPECT_EQ(c->findRepo("other"), nullptr);
  EXPECT_EQ(c->urlFor("a"), "http://a.qa.example.test:8080");
}

struct BadCase {
  const char* toml;
  const char* mustSay;
};

TEST(Config, ErrorsNameTheKeyAndTheProblem) {
  BadCase cases[] = {
      {"state_dir = \"relative\"", "state_dir \"relative\": must be an absolute path"},
      {"state_dir = 3", "state_dir: must be a string"},
      {"[network]\nsubnet = \"10.44.0.0/33\"", "network.subnet \"10.44.0.0/33\": prefix length"},
      {"[network]\nsubnet = \"10.44.0.5/24\"", "host bits must be zero"},
      {"[network]\nsubnet = \"banana\"", "network.subnet \"banana\": use an IPv4 CIDR"},
      {"[network]\nbridge = \"a-very-long-bridge-name\"", "network.bridge"},
      {"[limits]\nmax_environments = 0", "limits.max_environments: must be between 1"},
      {"[limits]\nmax_environments = \"many\"", "limits.max_environments: must be a whole number"},
      {"[limits]\nmax_memory = \"lots\"", "limits.max_memory \"lots\": must be a size"},
      {"[limits]\nmax_memory = \"2T\"", "limits.max_memory \"2T\""},
      {"[limits]\nmax_pids = -1", "limits.max_pids"},
      {"[containers]\nid_base = 1000", "containers.id_base: must be between 65536"},
      {"[containers]\nunprivileged = \"yes\"", "containers.unprivileged: must be true or false"},
      {"[reaper]\ninterval = \"10 minutes\"", "reaper.interval"},
      {"[reaper]\nreclaim_merged = 1", "reaper.reclaim_merged: must be true or false"},
      {"[routing]\nlisten = \"nowhere\"", "routing.listen \"nowhere\": use host:port"},
      {"[routing]\ndomain = \"..\"", "routing.domain"},
      {"[api]\nlisten = []", "api.listen: must name at least one address"},
      {"[api]\nlisten = [\"unix://relative\"]", "absolute path"},
      {"[api]\nlisten = [\"0.0.0.0:7443\"]",
       "api.listen \"0.0.0.0:7443\": a TCP address serves TLS only: set api.tls_cert and "
       "api.tls_key"},
      {"[api]\nlisten = [\"0.0.0.0:7443\"]\ntls_cert = \"/a.crt\"", "set both or neither"},
      {"[api]\nlisten = [\"0.0.0.0:7443\"]\ntls_cert = \"a.crt\"\ntls_key = \"/a.key\"",
       "api.tls_cert \"a.crt\": must be an absolute path"},
      {"[api]\nclient_ca = \"/ca.crt\"", "api.client_ca: needs api.tls_cert"},
      {"[api]\nsocket_group = \"\"", "api.socket_group"},
      {"[api]\ntls_certificate = \"/a\"", "api.tls_certificate: unknown key"},
      {"stat_dir = \"/x\"", "stat_dir: unknown key"},
      {"[network]\nbrige = \"x\"", "network.brige: unknown key"},
      {"[[repos]]\nname = \"shop\"", "repos: every entry needs name and url"},
      {"[[repos]]\nname = \"shop\"\nurl = \"/a\"\n[[repos]]\nname = \"shop\"\nurl = \"/b\"",
       "listed twice"},
      {"this is not toml", "config: line 1"},
  };
  for (const auto& c : cases) {
    auto r = parseConfig(c.toml);
    ASSERT_FALSE(r.isOk()) << c.toml;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
    EXPECT_NE(r.status().message().find(c.mustSay), std::string::npos)
        << "for " << c.toml << " got: " << r.status().message();
  }
}

}  // namespace
}  // namespace qabox
