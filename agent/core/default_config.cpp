#include "core/config.h"

// The configuration `qaboxd --print-default-config` prints and a fresh install
// starts from: every key with its default and what it means.
namespace qabox {
namespace {

constexpr std::string_view kDefaultToml = R"(# qaboxd default configuration
state_dir = "/var/lib/qabox"
images_dir = "/usr/share/qabox/images"
default_image = "busybox"

[api]
# unix:///path is plaintext, mode 0660, group socket_group: root and that
# group's members act as ops. host:port serves TLS only, and every call on it
# needs a token (qabox token create --role ci --name jenkins).
listen = ["unix:///run/qabox/qabox.sock"]
# listen = ["unix:///run/qabox/qabox.sock", "0.0.0.0:7443"]
# tls_cert = "/etc/qabox/tls/server.crt"   # PEM; needed by any host:port listener
# tls_key = "/etc/qabox/tls/server.key"
# client_ca = "/etc/qabox/tls/clients-ca.crt"   # set: clients need a certificate it signed
# socket_group = "qabox"   # groupadd --system qabox; members may use the socket

[network]
bridge = "qabox0"
subnet = "10.44.0.0/24"
isolate = true         # containers cannot reach each other on the bridge
# What containers may reach beyond the host, through NAT: "all", "none", or a
# list of "CIDR[:port]" (e.g. ["10.0.0.0/8", "198.51.100.7/32:443"]). The
# metadata service (169.254.0.0/16, fd00:ec2::254) and the host's own ports
# but the router's stay closed whatever it says.
egress = "all"

[routing]
domain = "qa.company.int"
listen = "0.0.0.0:80"
# "open": anyone who reaches the router opens an environment's URL. "login":
# only people signed in to the dashboard (qabox.<domain>), or a client with
# "Authorization: Bearer <token>"; qabox deploy --access chooses per ticket.
access = "open"
access_allow = []      # networks let in without a login, as ["10.20.0.0/16"]

[dashboard]
enabled = true         # served at qabox.<domain>; people sign in with their token
session_ttl = "12h"    # a sign-in lasts this long in one browser

[limits]
max_environments = 200
max_memory = "2G"      # the most one environment may have ("": no maximum)
max_cpus = 0           # whole CPUs (0: no maximum)
max_pids = 4096        # processes (0: no maximum)
max_disk = "10G"       # what one environment may write to the state dir's disk ("": no maximum)
max_files = 1000000    # files one environment may create
disk_check_interval = "30s"   # how often running environments are measured

[containers]
unprivileged = true    # root in a container is id_base on the host, not root
id_base = 1000000000   # container ids 0-65535 map to host ids from here (above useradd's ranges)
allow_nested_userns = false  # true: processes in a container may make user namespaces
isolated_ids = true    # each environment's root is 65536 host ids of its own above id_base

[storage]
data_pool = ""         # a btrfs mount: datasets as subvolumes, written block by block ("": overlay)

[deploy]
log_max = "8M"         # deploy.log and app.log keep their first line and their last part
deps_max_age = "168h"  # an unused [deps] layer goes once its last use is this old

[pool]
size = 0               # containers of each image kept started for deploys to claim (0: no pool)
min_free_memory = "1G" # below it, or below min_free_disk, the pool shrinks and fills no more
min_free_disk = "5G"
interval = "2s"        # how often it is tended, besides right after a claim
# [pool.images]        # per image, over size: python = 2, busybox = 0

[reaper]
interval = "10m"
idle_after = "72h"
max_age = "336h"
reclaim_merged = true
reclaim_deleted = true
sleep_after = "2h"     # stop idle containers; the first request wakes them ("0": never)
wake_timeout = "30s"

[events]
max_age = "720h"       # the audit log keeps 30 days ("0": no age limit)
max_rows = 100000      # and at most this many rows (0: no limit)
refused_burst = 10     # refused calls recorded per peer at once,
refused_every = "6s"   # then one every this long (the rest summed up)

# Git hosts deliver to https://qabox.<domain>/hooks/github (or gitlab, gitea);
# a repo takes webhooks once it has full_name and webhook_secret (or
# webhook_secret_file), with on_merged, on_closed, on_push, on_target_push,
# deploy_phrase and ticket_pattern in its [[repos]] entry.
[webhooks]
max_body = "1M"        # a bigger delivery is refused (413)
queue = 256            # tickets with a pending action; beyond it 503 + Retry-After
workers = 4            # actions at once, never two for one ticket

[metrics]
listen = "127.0.0.1:9464"  # Prometheus scrapes http://<listen>/metrics ("": none)

[log]
format = "text"        # or "json": one object per line, for log shippers
)";

}  // namespace

std::string_view defaultConfigToml() { return kDefaultToml; }

}  // namespace qabox
