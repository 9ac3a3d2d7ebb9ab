#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace qabox {

// [network] egress: where containers may open connections beyond the host
// (through NAT). Whatever it says, link-local addresses (the cloud's metadata
// service among them), IPv6 and the host's own addresses stay closed.
struct EgressPolicy {
  enum class Mode { kNone, kAll, kList };
  struct Rule {
    std::string cidr;   // normalised: "198.51.100.0/24"
    uint16_t port = 0;  // 0: every port; else that TCP and UDP port only
  };
  Mode mode = Mode::kNone;
  std::vector<Rule> allow;  // kList only
};

// "none", "all", or one "CIDR[:port]" of a list (an address alone is a /32).
// Errors name network.egress and the value.
Result<EgressPolicy::Rule> parseEgressRule(std::string_view text);

// An access mode ("open" or "login"), for `field` in the error.
Status checkAccessMode(std::string_view field, std::string_view mode);

struct RepoConfig {
  std::string name;
  std::string url;
  // Webhooks (agent/hooks): the repo's name on its git host ("acme/shop":
  // GitHub's and Gitea's repository.full_name, GitLab's
  // project.path_with_namespace), matched case-insensitively; "" takes none.
  std::string fullName{};
  // The shared secret; webhook_secret_file names a 0600 file read at start
  // instead (the daemon reads it into webhookSecret).
  std::string webhookSecret{};
  std::string webhookSecretFile{};
  std::string onMerged = "reclaim";                     // reclaim | ignore
  std::string onClosed = "reclaim";                     // reclaim | keep
  std::string onPush = "redeploy";                      // redeploy | ignore
  std::string onTargetPush = "mark";                    // mark | redeploy
  std::string deployPhrase{};                           // "": comments deploy nothing
  std::string ticketPattern = "[A-Z][A-Z0-9]+-[0-9]+";  // finds the ticket in a source branch

  bool hasWebhook() const { return !fullName.empty() && !webhookSecret.empty(); }
};

// The repo of the allowlist with that name or URL; null when none has it.
const RepoConfig* findRepo(const std::vector<RepoConfig>& repos, std::string_view nameOrUrl);

// Everything qaboxd reads from its TOML file. Defaults are the production
// layout; tests and quickstart point state_dir, sockets, bridge, subnet and
// router port elsewhere so several agents run side by side.
struct Config {
  std::string stateDir = "/var/lib/qabox";
  std::string imagesDir = "/usr/share/qabox/images";
  std::string defaultImage = "busybox";

  // Unix sockets are plaintext and trust the caller's uid (root or
  // socket_group acts as ops); TCP addresses serve TLS only, every call with
  // a bearer token, and client certificates too when client_ca is set.
  struct Api {
    std::vector<std::string> listen = {"unix:///run/qabox/qabox.sock"};
    std::string tlsCert;
    std::string tlsKey;
    std::string clientCa;
    std::string socketGroup = "qabox";
    uint32_t maxMessageBytes = 4 * 1024 * 1024;
  } api;

  struct Network {
    std::string bridge = "qabox0";
    std::string subnet = "10.44.0.0/24";
    bool isolate = true;  // containers cannot reach each other on the bridge
    // Builds fetch packages: the default lets them out (metadata and the
    // host stay closed); "none" or an allow-list for tighter hosts.
    EgressPolicy egress{EgressPolicy::Mode::kAll, {}};
  } network;

  struct Routing {
    std::string domain = "qa.company.int";
    std::string listen = "0.0.0.0:80";
    std::string tlsListen;
    std::string tlsCert;
    std::string tlsKey;
    std::chrono::milliseconds idleTimeout{60'000};
    std::chrono::milliseconds headerTimeout{10'000};
    std::chrono::milliseconds backendTimeout{30'000};
    std::chrono::milliseconds statsFlushInterval{10'000};
    // Who may open an environment's URL: "open" (anyone who reaches the
    // router) or "login" (people signed in to the dashboard, or a bearer
    // token); a deploy may choose for its own environment.
    std::string access = "open";
    // Networks let in without a login (IPv4 CIDRs, normalised: 10.0.0.0/8).
    std::vector<std::string> accessAllow;
  } routing;

  // The web dashboard at qabox.<domain> on the router's listeners.
  struct Dashboard {
    bool enabled = true;
    std::chrono::milliseconds sessionTtl{12 * 3600 * 1000};  // a sign-in lasts this long
  } dashboard;

  struct Limits {
    uint32_t maxEnvironments = 200;
    // The most one environment may have; a deploy (or an image) asking for
    // more is refused. Also what an environment gets when nothing else says.
    std::string maxMemory = "2G";  // empty: no maximum
    uint32_t maxCpus = 0;          // 0: no maximum
    uint32_t maxPids = 4096;       // 0: no maximum
    // What one environment's own layer (its overlay upper directory) may
    // hold on the state dir's disk, measured every disk_check_interval and
    // all along its deploy's hooks; above it the environment is FAILED and
    // its container stopped. max_files bounds its inodes the same way.
    std::string maxDisk = "10G";  // empty: no maximum
    uint32_t maxFiles = 1'000'000;
    std::chrono::milliseconds diskCheckInterval{30'000};
  } limits;

  // Unprivileged containers run in a user namespace: root inside is
  // id_base on the host, so a process that escapes the container holds no
  // host privilege. Images are built with their files owned by the mapped
  // ids; an image version keeps the mode it was built with.
  struct Containers {
    bool unprivileged = true;
    // Above what Debian's useradd hands login users in /etc/subuid (SUB_UID_MIN
    // 100000 to SUB_UID_MAX 600100000) and below 2^31.
    uint32_t idBase = 1000000000;  // container ids 0-65535 are host ids id_base-id_base+65535
    // Every container runs under a seccomp deny list (runtime/seccomp); new
    // user namespaces inside one are part of it unless this lets them.
    bool allowNestedUserns = false;
    // Each environment's root is host ids of its own: slot k (1..
    // max_environments) of id_base + k * 65536; the image versions' files
    // keep slot 0 and reach the clones through an idmapped lower layer.
    bool isolatedIds = true;
  } containers;

  // Where datasets' data lives. Empty: overlay layers in the state dir, as
  // everything else. A directory on btrfs: datasets are read-only subvolumes
  // there and each environment writes on snapshots of them, block by block
  // (runtime/data_pool.h).
  struct Storage {
    std::string dataPool;
  } storage;

  struct Deploy {
    std::chrono::milliseconds fetchTimeout{120'000};
    std::chrono::milliseconds hookTimeout{600'000};
    std::chrono::milliseconds healthTimeout{60'000};
    std::chrono::milliseconds startTimeout{30'000};
    // The most a deploy.log (hook output) and an app.log keep: past it,
    // their first line and their last part.
    std::string logMax = "8M";
    // A dependency layer no environment uses is collected once its last use
    // is this old (at once when its image version is gone).
    std::chrono::milliseconds depsMaxAge{7 * 24 * 3'600'000LL};
  } deploy;

  // A warm pool: environments cloned, addressed and started ahead of
  // time, per image version, for deploys to claim. 0: no pool.
  struct Pool {
    uint32_t size = 0;                       // per image, unless images says
    std::map<std::string, uint32_t> images;  // [pool.images] name = size
    // Below either the pool shrinks (a pooled container goes per pass)
    // and fills no more: it must never take what deploys need.
    std::string minFreeMemory = "1G";
    std::string minFreeDisk = "5G";
    std::chrono::milliseconds interval{2'000};  // how often it checks, besides after a claim
    uint32_t sizeOf(const std::string& image) const {
      auto it = images.find(image);
      return it == images.end() ? size : it->second;
    }
  } pool;

  struct Reaper {
    std::chrono::milliseconds interval{600'000};
    std::chrono::milliseconds idleAfter{72 * 3'600'000LL};
    std::chrono::milliseconds maxAge{336 * 3'600'000LL};
    std::chrono::milliseconds sleepAfter{2 * 3'600'000LL};
    std::chrono::milliseconds wakeTimeout{30'000};
    bool reclaimMerged = true;
    bool reclaimDeleted = true;
  } reaper;

  // The audit log (qabox events) is pruned in the background: rows older
  // than max_age, and the oldest beyond max_rows. 0 turns either off.
  struct Events {
    std::chrono::milliseconds maxAge{720 * 3'600'000LL};
    uint32_t maxRows = 100'000;
    // Refused calls recorded per peer (address or uid): this many at once,
    // then one every refused_every; the rest are summed up in one event.
    uint32_t refusedBurst = 10;
    std::chrono::milliseconds refusedEvery{6'000};
  } events;

  std::vector<RepoConfig> repos;

  // Deliveries from git hosts at https://qabox.<domain>/hooks/<provider>.
  struct Webhooks {
    std::string maxBody = "1M";  // a bigger body is refused (413)
    uint32_t queue = 256;        // pending actions; beyond it 503 with Retry-After
    uint32_t workers = 4;        // actions run at once (one per ticket at most)
  } webhooks;

  std::string logLevel = "info";

  // Prometheus text on http://<listen>/metrics; "" serves none. Port 0 picks
  // a free one (the daemon logs it).
  struct Metrics {
    std::string listen = "127.0.0.1:9464";
  } metrics;

  // "text" for people, "json" (one object per line) for log shippers.
  struct Log {
    std::string format = "text";
  } log;

  // Many agents as one qabox, coordinated through etcd. Without etcd
  // endpoints the agent is a host of its own and needs no etcd.
  struct Cluster {
    std::vector<std::string> etcd;  // https://host:port (http:// on loopback only)
    // TLS to etcd and between agents: a CA all members trust, and this
    // host's certificate (serverAuth and clientAuth) and key.
    std::string ca, cert, key;
    std::string name;          // a DNS label; "": the host's name
    std::string advertiseApi;  // host:port where peers reach this host's API
    // Where this host serves its peers (mTLS, certificates signed by `ca`
    // only): calls forwarded to the tickets it owns. "": advertise_api.
    std::string peerListen;
    std::string advertiseRouter;  // host:port where peers' routers forward requests
    uint32_t capacity = 0;        // environments it takes; 0: limits.max_environments
    std::chrono::milliseconds leaseTtl{10'000};
    std::string prefix = "/qabox/";
    bool enabled() const { return !etcd.empty(); }
  } cluster;

  // The host part of router URLs: http://<slug>.<domain>, with the port when
  // the router does not listen on 80.
  std::string urlFor(std::string_view slug) const;
  const RepoConfig* findRepo(std::string_view nameOrUrl) const;
};

// This host's name in the cluster: cluster.name, else the first label of
// the machine's host name, lower-case ("qabox" when that is no DNS label).
std::string localHostName(const Config& config);

// Parses and validates. Every error names the key and the problem:
//   network.subnet "10.44.0.0/33": prefix length must be between 8 and 30
Result<Config> parseConfig(std::string_view toml);
Result<Config> loadConfig(const std::string& path);
Status validateConfig(const Config& config);

// The config quickstart and a bare `qaboxd` start with.
std::string_view defaultConfigToml();

}  // namespace qabox
