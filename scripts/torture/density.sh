#!/usr/bin/env bash
# Density (docs/reliability.md), by hand only, never in ctest: how many idle
# environments this host holds. A private agent (own state dir, bridge, a
# /22 subnet, max_environments 1000) deploys N busybox environments one
# after the other and reports, every 50 and at the end: the agent's RSS, fds
# and threads; memory per environment (MemAvailable before/after over the
# count, and the containers' own cgroup memory); the time of `qabox list`,
# of a routed request (curl to the router with a Host header), of a reaper
# pass (`qabox reap --dry-run`); the host's limits as the count grows
# (neighbour entries against gc_thresh, bridge ports, inotify instances,
# keys, open files); then what sleeping them all frees. Then, unless
# skipped, the real sample app (Python + Postgres + Redis) in steps of ten
# while MemAvailable stays above 2 GiB. Everything it made goes at exit.
#   usage: scripts/torture/density.sh [N] [REAL_MAX]   (as root)
#   N: busybox environments (default 300); REAL_MAX: the most real-app ones
#   to try (default 200; 0 skips them)
#   QABOX_DENSITY_REAL_MINUTES: stop the real-app steps after this long
#   (default 25), reporting how far they got
source "$(dirname "$0")/../bench/lib.sh"
N=${1:-300}
REAL_MAX=${2:-200}
REAL_MINUTES=${QABOX_DENSITY_REAL_MINUTES:-25}
[[ $(id -u) == 0 ]] || { echo "run as root" >&2; exit 2; }
read -r load1 _ < /proc/loadavg
if awk -v l="$load1" 'BEGIN { exit !(l >= 3) }'; then
  echo "density: load average $load1 >= 3: another heavy job runs; try later" >&2
  exit 1
fi
cmake --build "$REPO_ROOT/build" -j2 --target qaboxd qabox qabox-lxc qabox-init >/dev/null

# A /22 (1021 addresses) and room for 1000; the sample app's remote is made
# below, when the real-app steps begin.
SAMPLE_SRC=$(mktemp -d /tmp/qabox-density-src-XXXXXX)
export QABOX_BENCH_SUBNET=10.$((RANDOM % 40 + 180)).0.0/22 QABOX_BENCH_MAX_ENVS=1000
bench_start_agent "[reaper]
interval = \"0\"
sleep_after = \"0\"
wake_timeout = \"60s\"
[[repos]]
name = \"sample\"
url = \"$SAMPLE_SRC/sample.git\""
trap 'bench_stop_agent; rm -rf "$SAMPLE_SRC"' EXIT
DOMAIN=qa.bench

mem_avail_kb() { awk '$1 == "MemAvailable:" { print $2 }' /proc/meminfo; }
max_of() { sort -n | tail -1; }
agent_figures() {
  local rss fds threads inotify
  rss=$(awk '$1 == "VmRSS:" { print $2 }' "/proc/$AGENT_PID/status")
  fds=$(ls "/proc/$AGENT_PID/fd" | wc -l)
  threads=$(ls "/proc/$AGENT_PID/task" | wc -l)
  inotify=$(find "/proc/$AGENT_PID/fd" -lname 'anon_inode:inotify' 2>/dev/null | wc -l)
  echo "agent RSS $((rss / 1024)) MiB, fds $fds (limit $(awk '/Max open files/ { print $4 }' "/proc/$AGENT_PID/limits")), threads $threads, inotify instances $inotify"
}
host_figures() {
  local neigh ports keys
  neigh=$(ip neigh show dev "$BRIDGE" 2>/dev/null | wc -l)
  ports=$(ls "/sys/class/net/$BRIDGE/brif" 2>/dev/null | wc -l)
  keys=$(wc -l < /proc/keys)
  echo "host: neighbours on $BRIDGE $neigh (gc_thresh1/2/3 $(sysctl -n net.ipv4.neigh.default.gc_thresh1)/$(sysctl -n net.ipv4.neigh.default.gc_thresh2)/$(sysctl -n net.ipv4.neigh.default.gc_thresh3)), bridge ports $ports (kernel maximum 1024), keys $keys, open files $(cut -f1 /proc/sys/fs/file-nr)/$(cut -f3 /proc/sys/fs/file-nr), pids $(ls -d /proc/[0-9]* | wc -l)/$(sysctl -n kernel.pid_max), inotify instances per user $(sysctl -n fs.inotify.max_user_instances)"
}
# The containers' own memory: the sum of their memory cgroups (v1 hybrid:
# memory.usage_in_bytes of lxc.payload.NAME; v2: memory.current), in KiB.
cgroup_memory_kb() {
  local sum=0 name pid line path f
  for name in $(ls "$STATE/lxc"); do
    pid=$(lxc-info -P "$STATE/lxc" -n "$name" -pH 2>/dev/null) || continue
    [[ -n $pid ]] || continue
    if line=$(grep -E '^[0-9]+:([^:]*,)?memory(,[^:]*)?:' "/proc/$pid/cgroup" 2>/dev/null); then
      path=$(sed -E 's#(/lxc\.payload\.[^/]+).*#\1#' <<< "${line#*:*:}")
      f=/sys/fs/cgroup/memory$path/memory.usage_in_bytes
    else
      line=$(grep '^0::' "/proc/$pid/cgroup")
      path=$(sed -E 's#(/lxc\.payload\.[^/]+).*#\1#' <<< "${line#0::}")
      f=/sys/fs/cgroup$path/memory.current
    fi
    [[ -r $f ]] && sum=$((sum + $(cat "$f")))
  done
  echo $((sum / 1024))
}
# timings COUNT: `qabox list`, a routed request and a reaper dry run, p50/max
timings() {
  local count=$1 i t0 slug lists="" routes="" reaps="" code
  for i in 1 2 3 4 5; do
    t0=$(now_ms); "${QB[@]}" list >/dev/null; lists+="$(($(now_ms) - t0))"$'\n'
  done
  for i in $(seq 20); do
    slug=$(echo "$PREFIX-$((RANDOM % count + 1))" | tr 'A-Z' 'a-z')
    read -r code t < <(curl -s -o /dev/null -w '%{http_code} %{time_total}\n' \
      -H "Host: $slug.$DOMAIN" "http://127.0.0.1:$ROUTER_PORT/")
    [[ $code == 200 ]] || echo "  routed request to $slug: HTTP $code"
    routes+="$(awk -v t="$t" 'BEGIN { printf "%.1f", t * 1000 }')"$'\n'
  done
  for i in 1 2 3; do
    t0=$(now_ms); "${QB[@]}" reap --dry-run >/dev/null; reaps+="$(($(now_ms) - t0))"$'\n'
  done
  echo "at $count: qabox list p50 $(p50_of <<< "$lists") ms max $(max_of <<< "$lists") ms;" \
    "routed request p50 $(p50_of <<< "$routes") ms max $(max_of <<< "$routes") ms;" \
    "reap --dry-run p50 $(p50_of <<< "$reaps") ms max $(max_of <<< "$reaps") ms"
}

echo "== host"
echo "$(nproc) cores, $(awk '$1 == "MemTotal:" { print int($2 / 1048576) }' /proc/meminfo) GiB, kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
host_figures
sleep 2
before_kb=$(mem_avail_kb)
echo "== $N busybox environments (MemAvailable before: $((before_kb / 1024)) MiB)"
echo "$(agent_figures)"
PREFIX=DENS
deployed=0
started=$(now_ms)
deploy_ms=""
for i in $(seq "$N"); do
  t0=$(now_ms)
  if ! err=$("${QB[@]}" deploy "$PREFIX-$i" --image busybox 2>&1 >/dev/null); then
    echo "FIRST FAILURE at environment $i: $err"
    tail -5 "$STATE/qaboxd.log"
    break
  fi
  deploy_ms+="$(($(now_ms) - t0))"$'\n'
  deployed=$i
  if ((i % 50 == 0)); then
    echo "-- $i deployed in $((($(now_ms) - started) / 1000)) s; deploy p50 $(tail -50 <<< "$deploy_ms" | p50_of) ms; MemAvailable $(($(mem_avail_kb) / 1024)) MiB"
    echo "   $(agent_figures)"
    echo "   $(host_figures)"
  fi
done
sleep 5
after_kb=$(mem_avail_kb)
echo "== at $deployed busybox environments"
echo "$(agent_figures)"
echo "$(host_figures)"
cg_kb=$(cgroup_memory_kb)
echo "memory per environment: MemAvailable $(((before_kb - after_kb) / deployed)) KiB" \
  "($((before_kb / 1024)) -> $((after_kb / 1024)) MiB), cgroup $((cg_kb / deployed)) KiB (sum $((cg_kb / 1024)) MiB)"
echo "deploy p50 $(p50_of <<< "$deploy_ms") ms, last 50 p50 $(tail -50 <<< "$deploy_ms" | p50_of) ms"
timings "$deployed"
t0=$(now_ms)
for i in $(seq "$deployed"); do "${QB[@]}" sleep "$PREFIX-$i" >/dev/null; done
slept_ms=$(($(now_ms) - t0))
sleep 5
slept_kb=$(mem_avail_kb)
echo "sleeping all $deployed took $slept_ms ms; it freed $(((slept_kb - after_kb) / 1024)) MiB ($(((slept_kb - after_kb) / deployed)) KiB each); MemAvailable $((slept_kb / 1024)) MiB"
echo "$(agent_figures)"
t0=$(now_ms)
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Host: dens-1.$DOMAIN" "http://127.0.0.1:$ROUTER_PORT/")
echo "a routed request to a sleeping one: HTTP $code in $(($(now_ms) - t0)) ms (woken)"
t0=$(now_ms)
for i in $(seq "$deployed"); do "${QB[@]}" delete "$PREFIX-$i" >/dev/null; done
echo "deleting $deployed took $(($(now_ms) - t0)) ms"
echo "$(agent_figures)"

((REAL_MAX > 0)) || exit 0
echo "== real app (Python + Postgres + Redis) in steps of 10 while MemAvailable > 2 GiB"
"$REPO_ROOT/scripts/sample-app/make-remote.sh" "$SAMPLE_SRC/sample.git" >/dev/null
t0=$(now_ms)
"${QB[@]}" image build python >/dev/null
echo "python image built in $((($(now_ms) - t0) / 1000)) s"
PREFIX=REAL
sleep 2
before_kb=$(mem_avail_kb)
deadline=$(($(now_ms) + REAL_MINUTES * 60000))
real=0
stop=""
while ((real < REAL_MAX)) && [[ -z $stop ]]; do
  for _ in $(seq 10); do
    t0=$(now_ms)
    if ! err=$("${QB[@]}" deploy "$PREFIX-$((real + 1))" --repo sample --source feature/EXMP-113 \
      --target develop --image python 2>&1 >/dev/null); then
      stop="deploy $((real + 1)) failed: $(tail -3 <<< "$err")"
      break
    fi
    real=$((real + 1))
    last_ms=$(($(now_ms) - t0))
  done
  sleep 10
  avail=$(mem_avail_kb)
  echo "-- $real real-app environments: MemAvailable $((avail / 1024)) MiB ($(((before_kb - avail) / real)) KiB each), last deploy $last_ms ms, load $(cut -d' ' -f1 /proc/loadavg)"
  echo "   $(agent_figures)"
  ((avail > 2 * 1048576)) || stop="MemAvailable below 2 GiB"
  (($(now_ms) < deadline)) || stop="time budget of $REAL_MINUTES min spent (partial run)"
done
echo "real-app density: $real environments ($stop)"
cg_kb=$(cgroup_memory_kb)
echo "cgroup memory per real-app environment $((cg_kb / real)) KiB"
timings "$real"
