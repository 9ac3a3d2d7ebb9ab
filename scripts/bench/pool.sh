#!/usr/bin/env bash
# What a warm pool's refill does to routed traffic: the p99 and requests/s
# of one environment through the router, quiet and while the whole pool is
# replaced (a new image version: every pooled container destroyed and
# filled again at the lowest priority), in the same run.
#   usage: scripts/bench/pool.sh [SIZE] [DURATION]   (default 6, 5s; run as root)
source "$(dirname "$0")/lib.sh"
SIZE=${1:-6}
DUR=${2:-5s}
POOL=1
command -v wrk >/dev/null || { echo "pool.sh: wrk is required (QABOX_BENCH=1 scripts/install-deps.sh)" >&2; exit 1; }
bench_build
bench_start_agent "$(bench_pool_toml "$SIZE")"
"${QB[@]}" deploy R-1 --image busybox >/dev/null 2>&1
wait_pool "$SIZE"

# load NAME: wrk through the router to R-1; prints NAME, requests/s, p99.
load() {
  wrk -t1 -c8 -d"$DUR" --latency -H "Host: r-1.qa.bench" "http://127.0.0.1:$ROUTER_PORT/" |
    awk -v name="$1" '/Requests\/sec/ { rps = $2 } $1 == "99%" { p99 = $2 }
      END { printf "%-28s %9s req/s  p99 %s\n", name, rps, p99 }'
}
sleep 1
load "quiet (pool full)"
before=$(ls "$STATE/lxc" | grep -c '^qaboxpool-')
"${QB[@]}" image build busybox --force >/dev/null
t0=$(now_ms)
load "while the pool is replaced"
# How much of the replacement ran inside the load's window.
wait_pool "$SIZE"
echo "pool of $SIZE replaced in $(( $(now_ms) - t0 )) ms after the build (the load took $DUR of it)"
echo "pooled containers before: $before; the router's p99 target: no worse than quiet"
