#!/usr/bin/env bash
# Time to READY of image-only deploys through the CLI against a running
# agent, one after another and N at once, beside raw `lxc-copy -s -B overlay`
# + `lxc-start` of the same image version measured in the same run.
#   usage: scripts/bench/create.sh [N]   (default 10; run as root)
#   QABOX_BENCH_TOML: more config for the agent, e.g. "[containers]
#   isolated_ids = false" to measure what a setting costs.
source "$(dirname "$0")/lib.sh"
N=${1:-10}
bench_build
bench_start_agent "${QABOX_BENCH_TOML:-}"
image=$(ls "$STATE/images" | head -1)
out=$STATE/samples
mkdir -p "$out" "$STATE/raw"

for i in $(seq "$N"); do
  t0=$(now_ms)
  lxc-copy -P "$STATE/images" -n "$image" -p "$STATE/raw" -N "raw-$i" -s -B overlay >/dev/null
  lxc-start -P "$STATE/raw" -n "raw-$i"
  lxc-wait -P "$STATE/raw" -n "raw-$i" -s RUNNING -t 10
  echo $(( $(now_ms) - t0 )) >> "$out/raw"
done
for i in $(seq "$N"); do lxc-destroy -P "$STATE/raw" -n "raw-$i" -f >/dev/null; done

for i in $(seq "$N"); do
  t0=$(now_ms)
  "${QB[@]}" deploy "SEQ-$i" --image busybox >/dev/null 2>&1
  echo $(( $(now_ms) - t0 )) >> "$out/seq"
done

pids=()
for i in $(seq "$N"); do
  ( t0=$(now_ms); "${QB[@]}" deploy "PAR-$i" --image busybox >/dev/null 2>&1
    echo $(( $(now_ms) - t0 )) >> "$out/par" ) &
  pids+=($!)
done
wait "${pids[@]}"

ready=$("${QB[@]}" list -o json | grep -o '"READY"' | wc -l)
echo "qabox create benchmark: N=$N, $(nproc) cores, image $image; READY: $ready of $((2 * N))"
stats "raw lxc-copy -s -B overlay + start" < "$out/raw"
stats "qabox deploy, one after another" < "$out/seq"
stats "qabox deploy, $N at once" < "$out/par"
raw=$(p50_of < "$out/raw"); seq=$(p50_of < "$out/seq")
awk -v a="$seq" -v b="$raw" 'BEGIN { printf "ratio p50 sequential/raw: %.2fx (target: within 1.5x)\n", a / b }'
