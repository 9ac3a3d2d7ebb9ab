#!/usr/bin/env bash
# Time to READY of image-only deploys through the CLI against a running
# agent, one after another and N at once, beside raw `lxc-copy -s -B overlay`
# + `lxc-start` of the same image version measured in the same run.
#   usage: scripts/bench/create.sh [-p] [N]   (default 10; run as root)
#   -p: with a warm pool ([pool] size = N): each deploy starts once the pool
#       is full again (its refill is work done ahead of time); the N at once
#       start from a pool of N. Also reports what a pooled container costs.
#   QABOX_BENCH_TOML: more config for the agent, e.g. "[containers]
#   isolated_ids = false" to measure what a setting costs.
source "$(dirname "$0")/lib.sh"
POOL=0
if [ "${1:-}" = "-p" ]; then POOL=1; shift; fi
N=${1:-10}
bench_build
toml=${QABOX_BENCH_TOML:-}
[ "$POOL" = 1 ] && toml+=$(bench_pool_toml "$N")
bench_start_agent "$toml"
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

if [ "$POOL" = 1 ]; then
  # What one pooled container holds: its memory (the container's cgroup)
  # and its own layer on disk, from the containers of a full pool.
  wait_pool "$N"
  mem=0; disk=0; n=0
  for c in $(ls "$STATE/lxc" | grep '^qaboxpool-'); do
    kb=$(lxc-info -P "$STATE/lxc" -n "$c" -H -S 2>/dev/null | awk '/^Memory use/ { print int($3 / 1024) }')
    mem=$((mem + ${kb:-0}))
    disk=$((disk + $(du -skx "$STATE/lxc/$c" | cut -f1)))
    n=$((n + 1))
  done
  [ "$n" -gt 0 ] && echo "a pooled container: memory $((mem / n)) KiB, disk $((disk / n)) KiB (mean of $n)"
fi

for i in $(seq "$N"); do
  wait_pool "$N"
  t0=$(now_ms)
  "${QB[@]}" deploy "SEQ-$i" --image busybox >/dev/null 2>&1
  echo $(( $(now_ms) - t0 )) >> "$out/seq"
done

wait_pool "$N"
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
par=$(p50_of < "$out/par")
target="within 1.2x"; [ "$POOL" = 1 ] && target="below 1.0x, with a warm pool"
awk -v a="$seq" -v b="$raw" -v t="$target" \
  'BEGIN { printf "ratio p50 sequential/raw: %.2fx (target: %s)\n", a / b, t }'
echo "p50 of $N at once: $par ms (target: under 150 ms)"
claimed=$("${QB[@]}" list -o json | grep -o '"container": *"qaboxpool-[0-9]*"' | wc -l)
[ "$POOL" = 1 ] && echo "deploys that claimed a pooled container: $claimed of $((2 * N))"
true
