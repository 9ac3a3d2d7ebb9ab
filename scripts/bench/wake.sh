#!/usr/bin/env bash
# Latency of the first request to a sleeping environment (the router holds
# it, starts the container and waits for the app's health check) beside a
# request to the same environment awake, in the same run. Sample app on the
# busybox image.
#   usage: scripts/bench/wake.sh [N]   (default 10; run as root)
source "$(dirname "$0")/lib.sh"
N=${1:-10}
bench_build
bench_sample_repo
bench_start_agent "[reaper]
interval = \"0\"
[[repos]]
name = \"sample\"
url = \"$SAMPLE_REPO\""
trap 'bench_stop_agent; rm -rf "$SAMPLE_SRC"' EXIT
out=$STATE/samples
mkdir -p "$out"
"${QB[@]}" deploy WAKE-1 --repo sample --source feature/BENCH --target develop >/dev/null 2>&1
url="http://127.0.0.1:$ROUTER_PORT/"
host="wake-1.qa.bench"
get_ms() { curl -s -o /dev/null -w '%{http_code} %{time_total}\n' -H "Host: $host" "$url" | awk '{ if ($1 != 200) print "HTTP " $1 > "/dev/stderr"; printf "%.1f\n", $2 * 1000 }'; }

for i in $(seq "$N"); do
  "${QB[@]}" sleep WAKE-1 >/dev/null
  get_ms >> "$out/first"
  get_ms >> "$out/awake"
done
echo "qabox wake benchmark: sample app on busybox, N=$N, $(nproc) cores"
stats "first request, sleeping env" < "$out/first"
stats "request, awake env" < "$out/awake"
p50=$(p50_of < "$out/first")
awk -v p="$p50" 'BEGIN { printf "first-request p50: %.0f ms (target: under 300 ms)\n", p }'
