#include "core/config.h"

#include <gtest/gtest.h>

namespace qabox {
namespace {

// Each config is refused with INVALID_ARGUMENT, saying what it must.
struct Refused {
  std::string toml;
  std::string mustSay;
};
void expectRefused(const std::vector<Refused>& cases) {
  for (const auto& c : cases) {
    auto res = parseConfig(c.toml);
    ASSERT_FALSE(res.isOk()) << c.toml;
    EXPECT_EQ(res.status().code(), Code::kInvalidArgument);
    EXPECT_NE(res.status().message().find(c.mustSay), std::string::npos)
        << "for " << c.toml << " got: " << res.status().message();
  }
}

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
  EXPECT_EQ(c->limits.maxDisk, "10G");
  EXPECT_EQ(c->limits.maxFiles, 1000000u);
  EXPECT_EQ(c->limits.diskCheckInterval, std::chrono::seconds(30));
  EXPECT_EQ(c->deploy.logMax, "8M");
  EXPECT_EQ(c->deploy.depsMaxAge, std::chrono::hours(168));
  EXPECT_EQ(c->storage.dataPool, "") << "overlay layers unless a pool is set";
}

TEST(Config, ReadsTheWarmPool) {
  auto d = parseConfig(defaultConfigToml());
  ASSERT_TRUE(d.isOk()) << d.status().toString();
  EXPECT_EQ(d->pool.size, 0u) << "no pool unless asked";
  auto c = parseConfig(
      "[pool]\nsize = 2\nmin_free_memory = \"512M\"\nmin_free_disk = \"1G\"\n"
      "interval = \"500ms\"\n[pool.images]\npython = 1\nbusybox = 0\n");
  ASSERT_TRUE(c.isOk()) << c.status().toString();
  EXPECT_EQ(c->pool.size, 2u);
  EXPECT_EQ(c->pool.sizeOf("python"), 1u);
  EXPECT_EQ(c->pool.sizeOf("busybox"), 0u);
  EXPECT_EQ(c->pool.sizeOf("node"), 2u);
  EXPECT_EQ(c->pool.minFreeMemory, "512M");
  EXPECT_EQ(c->pool.interval, std::chrono::milliseconds(500));
  expectRefused({
      {"[pool]\nsize = -1\n", "pool.size: must be between 0 and 64"},
      {"[pool]\nsize = 65\n", "pool.size: must be between 0 and 64"},
      {"[pool]\nsise = 1\n", "pool.sise: unknown key"},
      {"[pool]\nmin_free_memory = \"lots\"\n", "pool.min_free_memory: \"lots\" is not a size"},
      {"[pool]\nmin_free_disk = \"5 G\"\n", "pool.min_free_disk"},
      {"[pool]\ninterval = \"10ms\"\n", "pool.interval: must be at least 100ms"},
      {"[pool]\nimages = 3\n", "pool.images: must be a table"},
      {"[pool.images]\n\"Bad Name\" = 1\n", "pool.images.Bad Name"},
      {"[pool.images]\npython = \"2\"\n", "pool.images.python: must be a whole number"},
      {"[pool.images]\npython = 100\n", "between 0 and 64"},
  });
}

TEST(Config, ReadsTheDataPool) {
  auto c = parseConfig("[storage]\ndata_pool = \"/srv/qabox-data\"\n");
  ASSERT_TRUE(c.isOk()) << c.status().toString();
  EXPECT_EQ(c->storage.dataPool, "/srv/qabox-data");
}

TEST(Config, ReadsTheDiskKeys) {
  auto c = parseConfig(
      "[limits]\nmax_disk = \"2G\"\nmax_files = 5000\ndisk_check_interval = \"5s\"\n"
      "[deploy]\nlog_max = \"256K\"\ndeps_max_age = \"0\"\n");
  ASSERT_TRUE(c.isOk()) << c.status().toString();
  EXPECT_EQ(c->limits.maxDisk, "2G");
  EXPECT_EQ(c->limits.maxFiles, 5000u);
  EXPECT_EQ(c->limits.diskCheckInterval, std::chrono::seconds(5));
  EXPECT_EQ(c->deploy.logMax, "256K");
  EXPECT_EQ(c->deploy.depsMaxAge, std::chrono::milliseconds(0));
  auto none = parseConfig("[limits]\nmax_disk = \"\"\n");
  ASSERT_TRUE(none.isOk()) << none.status().toString();
  EXPECT_EQ(none->limits.maxDisk, "");
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

TEST(Config, EventsPruningKeys) {
  auto d = parseConfig(defaultConfigToml());
  ASSERT_TRUE(d.isOk());
  EXPECT_EQ(d->events.maxAge, std::chrono::hours(720));
  EXPECT_EQ(d->events.maxRows, 100000u);
  auto c = parseConfig("[events]\nmax_age = \"0\"\nmax_rows = 0\n");
  ASSERT_TRUE(c.isOk()) << c.status().toString();
  EXPECT_EQ(c->events.maxAge.count(), 0);
  EXPECT_EQ(c->events.maxRows, 0u);
  c = parseConfig("[events]\nmax_age = \"24h\"\nmax_rows = 5000\n");
  ASSERT_TRUE(c.isOk()) << c.status().toString();
  EXPECT_EQ(c->events.maxAge, std::chrono::hours(24));
  EXPECT_EQ(c->events.maxRows, 5000u);
}

TEST(Config, ErrorsNameTheKeyAndTheProblem) {
  BadCase cases[] = {
      {"state_dir = \"relative\"", "state_dir \"relative\": must be an absolute path"},
      {"state_dir = 3", "state_dir: must be a string"},
      {"[storage]\ndata_pool = \"pool\"", "storage.data_pool \"pool\": must be an absolute path"},
      {"[storage]\ndata_pool = \"/srv/my pool\"", "storage.data_pool \"/srv/my pool\": must be"},
      {"[storage]\ndata_pool = \"/srv/a,b\"", "storage.data_pool \"/srv/a,b\": must be"},
      {"[storage]\npool = \"/srv\"", "storage.pool: unknown key"},
      {"[network]\nsubnet = \"10.44.0.0/33\"", "network.subnet \"10.44.0.0/33\": prefix length"},
      {"[network]\nsubnet = \"10.44.0.5/24\"", "host bits must be zero"},
      {"[network]\nsubnet = \"banana\"", "network.subnet \"banana\": use an IPv4 CIDR"},
      {"[network]\nbridge = \"a-very-long-bridge-name\"", "network.bridge"},
      {"[limits]\nmax_environments = 0", "limits.max_environments: must be between 1"},
      {"[limits]\nmax_environments = \"many\"", "limits.max_environments: must be a whole number"},
      {"[limits]\nmax_memory = \"lots\"", "limits.max_memory \"lots\": must be a size"},
      {"[limits]\nmax_memory = \"2T\"", "limits.max_memory \"2T\""},
      {"[limits]\nmax_pids = -1", "limits.max_pids"},
      {"[limits]\nmax_disk = \"a lot\"", "limits.max_disk \"a lot\": must be a size"},
      {"[limits]\nmax_files = 10", "limits.max_files: must be between 1000"},
      {"[limits]\ndisk_check_interval = \"10ms\"", "limits.disk_check_interval: must be at least"},
      {"[deploy]\nlog_max = \"1K\"", "deploy.log_max \"1K\": must be a size between 64K and 1G"},
      {"[deploy]\nlog_max = 8", "deploy.log_max: must be a string"},
      {"[deploy]\ndeps_max_age = \"a week\"", "deploy.deps_max_age: duration"},
      {"[containers]\nid_base = 1000", "containers.id_base: must be between 65536"},
      {"[containers]\nunprivileged = \"yes\"", "containers.unprivileged: must be true or false"},
      {"[reaper]\ninterval = \"10 minutes\"", "reaper.interval"},
      {"[reaper]\nreclaim_merged = 1", "reaper.reclaim_merged: must be true or false"},
      {"[events]\nmax_age = \"30 days\"", "events.max_age"},
      {"[events]\nmax_age = \"10s\"",
       "events.max_age \"10s\": must be \"0\" (no age limit) or at least \"1m\""},
      {"[events]\nmax_rows = 5", "events.max_rows 5: must be 0 (no limit) or at least 100"},
      {"[events]\nmax_rows = -1", "events.max_rows: must be between 0"},
      {"[events]\nmax_rows = \"lots\"", "events.max_rows: must be a whole number"},
      {"[events]\nkeep = 3", "events.keep: unknown key"},
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

TEST(Config, RefusedCallsRecordedPerPeer) {
  auto c = parseConfig("[events]\nrefused_burst = 50\nrefused_every = \"1s\"\n");
  ASSERT_TRUE(c.isOk()) << c.status().toString();
  EXPECT_EQ(c->events.refusedBurst, 50u);
  EXPECT_EQ(c->events.refusedEvery, std::chrono::seconds(1));
  auto zero = parseConfig("[events]\nrefused_burst = 0\n");
  ASSERT_FALSE(zero.isOk());
  EXPECT_NE(zero.status().message().find("events.refused_burst"), std::string::npos)
      << zero.status().message();
  auto fast = parseConfig("[events]\nrefused_every = \"1ms\"\n");
  ASSERT_FALSE(fast.isOk());
  EXPECT_NE(fast.status().message().find("events.refused_every"), std::string::npos)
      << fast.status().message();
}

}  // namespace
}  // namespace qabox

namespace qabox {
namespace {

Result<Config> withEgress(const std::string& value) {
  return parseConfig("[network]\negress = " + value + "\n");
}

TEST(ConfigEgress, DefaultIsAllAndNoneAndAllAreRead) {
  // Real apps' builds fetch packages: the default lets them out.
  EXPECT_EQ(Config{}.network.egress.mode, EgressPolicy::Mode::kAll);
  auto d = parseConfig(defaultConfigToml());
  ASSERT_TRUE(d.isOk()) << d.status().toString();
  EXPECT_EQ(d->network.egress.mode, EgressPolicy::Mode::kAll);
  auto none = withEgress("\"none\"");
  ASSERT_TRUE(none.isOk()) << none.status().toString();
  EXPECT_EQ(none->network.egress.mode, EgressPolicy::Mode::kNone);
  auto all = withEgress("\"all\"");
  ASSERT_TRUE(all.isOk());
  EXPECT_EQ(all->network.egress.mode, EgressPolicy::Mode::kAll);
}

TEST(ConfigEgress, AllowListOfCidrsWithOptionalPorts) {
  auto c = withEgress(R"(["10.0.0.0/8", "198.51.100.7:443", "0.0.0.0/0:53", "192.0.2.0/24:8080"])");
  ASSERT_TRUE(c.isOk()) << c.status().toString();
  const auto& e = c->network.egress;
  EXPECT_EQ(e.mode, EgressPolicy::Mode::kList);
  ASSERT_EQ(e.allow.size(), 4u);
  EXPECT_EQ(e.allow[0].cidr, "10.0.0.0/8");
  EXPECT_EQ(e.allow[0].port, 0);
  EXPECT_EQ(e.allow[1].cidr, "198.51.100.7/32");  // an address alone is one host
  EXPECT_EQ(e.allow[1].port, 443);
  EXPECT_EQ(e.allow[2].cidr, "0.0.0.0/0");
  EXPECT_EQ(e.allow[3].port, 8080);
  // An empty list lets nothing out.
  auto empty = withEgress("[]");
  ASSERT_TRUE(empty.isOk());
  EXPECT_EQ(empty->network.egress.mode, EgressPolicy::Mode::kList);
  EXPECT_TRUE(empty->network.egress.allow.empty());
}

TEST(ConfigEgress, BadValuesNameTheKeyAndTheValue) {
  auto msg = [](const std::string& v) { return withEgress(v).status().message(); };
  EXPECT_EQ(msg("\"some\""),
            "network.egress \"some\": use \"none\", \"all\" or a list of \"CIDR[:port]\" such as "
            "[\"10.0.0.0/8\", \"198.51.100.7/32:443\"]");
  EXPECT_NE(msg("true").find("network.egress: use \"none\""), std::string::npos) << msg("true");
  EXPECT_NE(msg("[1]").find("network.egress: every entry"), std::string::npos);
  EXPECT_EQ(msg("[\"10.0.0.1/8\"]"),
            "network.egress \"10.0.0.1/8\": host bits must be zero (10.0.0.0/8)");
  EXPECT_EQ(msg("[\"10.0.0.0/33\"]"),
            "network.egress \"10.0.0.0/33\": the prefix length must be a number from 0 to 32");
  EXPECT_EQ(msg("[\"10.0.0.0/8:0\"]"),
            "network.egress \"10.0.0.0/8:0\": the port after ':' must be a number from 1 to 65535");
  EXPECT_NE(msg("[\"10.0.0.0/8:99999\"]").find("from 1 to 65535"), std::string::npos);
  EXPECT_NE(msg("[\"10.0.0.0/8:\"]").find("from 1 to 65535"), std::string::npos);
  EXPECT_NE(msg("[\"example.com\"]").find("use an IPv4 CIDR[:port]"), std::string::npos);
  EXPECT_NE(msg("[\"010.0.0.0/8\"]").find("use an IPv4 CIDR[:port]"), std::string::npos);
  EXPECT_NE(msg("[\"fd00:ec2::254\"]").find("IPv6 is not supported"), std::string::npos);
  EXPECT_TRUE(withEgress("[\"10.0.0.0/8\"]\nbogus = 1")
                  .status()
                  .message()
                  .find("network.bogus: unknown key") != std::string::npos);
}

}  // namespace
}  // namespace qabox

namespace qabox {
namespace {

TEST(Config, ReadsAccessAndTheDashboard) {
  auto c = parseConfig(
      "[routing]\naccess = \"login\"\naccess_allow = [\"10.20.0.0/16\", \"192.0.2.7\"]\n"
      "[dashboard]\nenabled = false\nsession_ttl = \"8h\"\n");
  ASSERT_TRUE(c.isOk()) << c.status().toString();
  EXPECT_EQ(c->routing.access, "login");
  EXPECT_EQ(c->routing.accessAllow.size(), 2u);
  EXPECT_FALSE(c->dashboard.enabled);
  EXPECT_EQ(c->dashboard.sessionTtl, std::chrono::hours(8));
  auto d = parseConfig(defaultConfigToml());
  ASSERT_TRUE(d.isOk());
  EXPECT_EQ(d->routing.access, "open");
  EXPECT_TRUE(d->dashboard.enabled);
}

TEST(Config, RefusesBadAccessValuesNamingTheKey) {
  for (const char* toml :
       {"[routing]\naccess = \"closed\"\n", "[routing]\naccess_allow = [\"10.0.0.1/8\"]\n",
        "[routing]\naccess_allow = [\"10.0.0.0/8:443\"]\n",
        "[routing]\naccess_allow = [\"fd00::/8\"]\n", "[routing]\naccess_allow = [\"nope\"]\n",
        "[dashboard]\nsession_ttl = \"10s\"\n", "[dashboard]\ncolour = \"red\"\n"}) {
    auto c = parseConfig(toml);
    ASSERT_FALSE(c.isOk()) << toml;
    const std::string m = c.status().message();
    EXPECT_TRUE(m.find("routing.access") != std::string::npos ||
                m.find("dashboard") != std::string::npos)
        << m;
  }
}

}  // namespace
}  // namespace qabox

namespace qabox {
namespace {

constexpr const char* kHookRepo =
    "[[repos]]\nname = \"shop\"\nurl = \"/srv/shop.git\"\nfull_name = \"acme/shop\"\n";

TEST(Config, ReadsTheWebhookKeys) {
  std::string toml = std::string(kHookRepo) +
                     "webhook_secret = \"0123456789abcdef\"\non_merged = \"ignore\"\n"
                     "on_closed = \"keep\"\non_push = \"ignore\"\non_target_push = \"redeploy\"\n"
                     "deploy_phrase = \"deploy this please\"\nticket_pattern = \"[A-Z]+-[0-9]+\"\n"
                     "[webhooks]\nmax_body = \"2M\"\nqueue = 10\nworkers = 2\n";
  auto c = parseConfig(toml);
  ASSERT_TRUE(c.isOk()) << c.status().toString();
  const RepoConfig& r = c->repos.at(0);
  EXPECT_EQ(r.fullName, "acme/shop");
  EXPECT_TRUE(r.hasWebhook());
  EXPECT_EQ(r.onMerged, "ignore");
  EXPECT_EQ(r.onClosed, "keep");
  EXPECT_EQ(r.onPush, "ignore");
  EXPECT_EQ(r.onTargetPush, "redeploy");
  EXPECT_EQ(r.deployPhrase, "deploy this please");
  EXPECT_EQ(c->webhooks.maxBody, "2M");
  EXPECT_EQ(c->webhooks.queue, 10u);
  EXPECT_EQ(c->webhooks.workers, 2u);
  auto d = parseConfig(kHookRepo);
  ASSERT_TRUE(d.isOk()) << d.status().toString();
  EXPECT_FALSE(d->repos.at(0).hasWebhook());  // no secret: no webhooks
  EXPECT_EQ(d->repos.at(0).onMerged, "reclaim");
  EXPECT_EQ(d->repos.at(0).onPush, "redeploy");
  EXPECT_EQ(d->repos.at(0).onTargetPush, "mark");
  EXPECT_EQ(d->repos.at(0).deployPhrase, "");
  EXPECT_EQ(d->webhooks.maxBody, "1M");
}

TEST(Config, WebhookErrorsNameTheKey) {
  std::string r = kHookRepo;
  std::vector<Refused> cases = {
      {r + "on_merged = \"delete\"",
       "repos.on_merged \"delete\" (repo shop): must be reclaim or ignore"},
      {r + "on_closed = \"reclaim!\"", "repos.on_closed"},
      {r + "on_push = \"\"", "repos.on_push"},
      {r + "on_target_push = \"x\"", "repos.on_target_push"},
      {r + "ticket_pattern = \"([\"", "repos.ticket_pattern"},
      {r + "ticket_pattern = \"\"", "repos.ticket_pattern"},
      {r + "webhook_secret = \"short\"", "repos.webhook_secret (repo shop): must be at least 16"},
      {r + "webhook_secret = \"0123456789abcdef\"\nwebhook_secret_file = \"/etc/s\"", "not both"},
      {r + "webhook_secret_file = \"relative\"", "repos.webhook_secret_file \"relative\""},
      {r + "webhook_secrets = \"x\"", "repos.webhook_secrets: unknown key"},
      {"[[repos]]\nname = \"shop\"\nurl = \"/a\"\nwebhook_secret = \"0123456789abcdef\"",
       "needs full_name"},
      {"[[repos]]\nname = \"shop\"\nurl = \"/a\"\nfull_name = \"https://github.com/acme/shop\"",
       "repos.full_name \"https://github.com/acme/shop\""},
      {"[[repos]]\nname = \"shop\"\nurl = \"/a\"\nfull_name = \"shop\"", "must be owner/name"},
      {r + "[[repos]]\nname = \"shop2\"\nurl = \"/b\"\nfull_name = \"ACME/shop\"",
       "repos.full_name \"ACME/shop\": listed twice"},
      {"[webhooks]\nmax_body = \"1T\"", "webhooks.max_body"},
      {"[webhooks]\nmax_body = \"1K\"", "webhooks.max_body"},
      {"[webhooks]\nqueue = 0", "webhooks.queue"},
      {"[webhooks]\nworkers = 100", "webhooks.workers"},
      {"[webhooks]\nlisten = \":9000\"", "webhooks.listen: unknown key"},
  };
  expectRefused(cases);
}

constexpr const char* kCluster =
    "[cluster]\netcd = [\"https://10.0.0.5:2379\", \"https://10.0.0.6:2379\"]\n"
    "ca = \"/etc/qabox/cluster/ca.crt\"\ncert = \"/etc/qabox/cluster/host.crt\"\n"
    "key = \"/etc/qabox/cluster/host.key\"\n"
    "advertise_api = \"10.0.0.5:7444\"\nadvertise_router = \"10.0.0.5:80\"\n";

TEST(ConfigCluster, OffByDefaultAndEveryKeyRead) {
  auto plain = parseConfig("");
  ASSERT_TRUE(plain.isOk());
  EXPECT_FALSE(plain->cluster.enabled());
  auto c = parseConfig(std::string(kCluster) +
                       "name = \"qa-1\"\ncapacity = 40\nlease_ttl = \"5s\"\nprefix = \"/q/\"\n"
                       "peer_listen = \"0.0.0.0:7444\"\n");
  ASSERT_TRUE(c.isOk()) << c.status().message();
  EXPECT_TRUE(c->cluster.enabled());
  EXPECT_EQ(c->cluster.etcd.size(), 2u);
  EXPECT_EQ(c->cluster.name, "qa-1");
  EXPECT_EQ(c->cluster.capacity, 40u);
  EXPECT_EQ(c->cluster.leaseTtl, std::chrono::seconds(5));
  EXPECT_EQ(c->cluster.advertiseRouter, "10.0.0.5:80");
  EXPECT_EQ(c->cluster.prefix, "/q/");
  EXPECT_EQ(c->cluster.peerListen, "0.0.0.0:7444");
}

TEST(ConfigCluster, BadValuesNameTheKey) {
  const std::string k = kCluster;
  std::vector<Refused> cases = {
      {"[cluster]\netcd = [\"10.0.0.5:2379\"]", "cluster.etcd \"10.0.0.5:2379\": use https://"},
      {"[cluster]\netcd = [\"https://10.0.0.5:2379\"]", "cluster.ca: needed"},
      {k + "name = \"QA_1\"", "cluster.name \"QA_1\": use lower-case letters"},
      {k + "lease_ttl = \"1s\"", "cluster.lease_ttl: must be between 2s and 5m"},
      {k + "prefix = \"qabox\"", "cluster.prefix \"qabox\""},
      {k + "capacity = -1", "cluster.capacity"},
      {k + "etcd_endpoints = []", "cluster.etcd_endpoints: unknown key"},
      {k + "peer_listen = \"7444\"", "cluster.peer_listen"},
      // Peers speak mTLS even when etcd is plain http on loopback.
      {"[cluster]\netcd = [\"http://127.0.0.1:2379\"]", "cluster.ca: needed"},
      {"[cluster]\netcd = [\"https://a:1\"]\nca = \"ca.crt\"\ncert = \"/c\"\nkey = \"/k\"",
       "cluster.ca \"ca.crt\": must be an absolute path"},
      {"[cluster]\netcd = [\"https://a:1\"]\nca = \"/a\"\ncert = \"/c\"\nkey = \"/k\"",
       "cluster.advertise_api: needed"},
      {"[cluster]\netcd = \"https://a:1\"\nca = \"/a\"\ncert = \"/c\"\nkey = \"/k\"\n"
       "advertise_api = \"a:1\"",
       "cluster.advertise_router: needed"},
  };
  expectRefused(cases);
}

}  // namespace
}  // namespace qabox
