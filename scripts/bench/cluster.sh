#!/usr/bin/env bash
# What spanning hosts costs: three real agents, each in a network namespace
# of its own on one backbone bridge, over a real three-member etcd (the
# fixture of tests/integration/cluster_agents_test.cpp), measured by
# tests/integration/cluster_bench.cpp:
#   - the extra latency of a deploy sent to a host that does not own the
#     ticket (forwarded over mTLS to the owner), and of a plain Get;
#   - a routed request through another host's router against the owner's
#     router directly: requests/s and p99 under wrk;
#   - the time from kill -9 of a host to its ticket showing LOST elsewhere
#     (lease TTL 2 s).
# Targets (docs/ARCHITECTURE.md): forwarding adds under 2 ms to a deploy and
# under 1 ms p99 to a routed request; LOST within the TTL plus one second.
#
#   usage: scripts/bench/cluster.sh [ROUNDS]   (default 20; run as root)
#   QABOX_BENCH_WRK="-t1 -c1 -d5s;-t2 -c4 -d5s" sets wrk's loads (one run each).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
QABOX_BENCH=1 "$root/scripts/install-deps.sh"
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$root/build" -j"$(nproc)" --target cluster_bench >/dev/null
log="$(mktemp /tmp/qabox-cluster-bench.XXXXXX)"
rc=0
QABOX_BENCH_ROUNDS="${1:-20}" "$root/build/tests/integration/cluster_bench" >"$log" 2>&1 || rc=$?
echo "qabox cluster benchmark: 3 agents, 3 etcd members, $(nproc) cores"
grep -E '^(deploy|get|routed|lost)' "$log" || true
if [[ $rc -ne 0 ]]; then
  echo "cluster.sh: the benchmark failed; its output is in $log" >&2
  tail -40 "$log" >&2
  exit "$rc"
fi
rm -f "$log"
