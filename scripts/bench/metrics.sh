#!/usr/bin/env bash
# How long the agent's /metrics takes with many environments (issue 15: under
# 50 ms with 300). qabox-metrics-bench seeds a real SQLite store with N
# environment rows and a route table with N routes carrying traffic counters,
# registers the daemon's sources, serves them on loopback, and times whole
# HTTP scrapes; it prints p50/p95/max over the runs.
#
#   scripts/bench/metrics.sh [-b BUILD_DIR] [-n ENVIRONMENTS] [-s SCRAPES]
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build="$root/build"
envs=300
scrapes=200
while getopts "b:n:s:h" opt; do
  case "$opt" in
    b) build="$OPTARG" ;;
    n) envs="$OPTARG" ;;
    s) scrapes="$OPTARG" ;;
    *) sed -n '2,9p' "$0"; exit 2 ;;
  esac
done
bin="$build/agent/daemon/qabox-metrics-bench"
if [ ! -x "$bin" ]; then
  echo "metrics.sh: $bin not found; build it (cmake --build $build --target qabox-metrics-bench)" >&2
  exit 1
fi
work="$(mktemp -d /tmp/qabox-metrics-bench.XXXXXX)"
trap 'rm -rf "$work"' EXIT
"$bin" --environments "$envs" --scrapes "$scrapes" --dir "$work/state"
