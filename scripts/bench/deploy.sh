#!/usr/bin/env bash
# Time from the deploy call to READY for the sample app (merge, export,
# build/migrate/seed hooks, start, health) on the busybox image, with the
# per-phase breakdown the agent streams.
#   usage: scripts/bench/deploy.sh [-p] [N]   (default 10; run as root)
#   -p: with a warm pool of one: each deploy starts once it is full again.
source "$(dirname "$0")/lib.sh"
POOL=0
if [ "${1:-}" = "-p" ]; then POOL=1; shift; fi
N=${1:-10}
bench_build

bench_sample_repo

if [ "$POOL" = 1 ]; then bench_start_sample_agent "$(bench_pool_toml 1)"; else bench_start_sample_agent; fi

# One warm-up deploy fills the git mirror, as on a host that has deployed before.
"${QB[@]}" deploy WARM-0 --repo sample --source feature/BENCH --target develop >/dev/null 2>&1
for i in $(seq "$N"); do
  wait_pool 1
  t0=$(now_ms)
  "${QB[@]}" deploy "DEP-$i" --repo sample --source feature/BENCH --target develop \
    >/dev/null 2>"$out/progress-$i"
  echo $(( $(now_ms) - t0 )) >> "$out/total"
  # "clone 0.02s  ..." lines: one per phase.
  awk '$2 ~ /^[0-9.]+s$/ { sub(/s$/, "", $2); print $2 * 1000 >> "'"$out"'/phase-" $1 }' "$out/progress-$i"
done

ready=$("${QB[@]}" list -o json | grep -o '"READY"' | wc -l)
echo "qabox deploy benchmark: sample app on busybox, N=$N, $(nproc) cores; READY: $ready of $((N + 1))"
stats "deploy call -> READY (CLI wall)" < "$out/total"
for phase in merge claim clone export place start build migrate seed app health; do
  [[ -f $out/phase-$phase ]] && stats "  phase $phase" < "$out/phase-$phase"
done
p50=$(p50_of < "$out/total")
awk -v p="$p50" 'BEGIN { printf "p50 end to end: %.0f ms (target: under 60 ms)\n", p }'
