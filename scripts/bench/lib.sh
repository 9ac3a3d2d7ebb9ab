# Shared by the benchmarks: a private qaboxd (own state dir, socket, bridge,
# subnet, router port) started from the build tree, and statistics.
# Source it; it sets $QB (the CLI with the endpoint), $STATE, $BRIDGE.
set -euo pipefail
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

bench_build() {
  "$REPO_ROOT/scripts/install-deps.sh"
  cmake -S "$REPO_ROOT" -B "$REPO_ROOT/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$REPO_ROOT/build" -j"$(nproc)" --target qaboxd qabox qabox-lxc >/dev/null
}

# bench_start_agent [extra toml]
# QABOX_BENCH_SUBNET and QABOX_BENCH_MAX_ENVS: a bigger subnet and maximum
# than the /24 and 250 (scripts/torture/density.sh).
bench_start_agent() {
  local id=$((RANDOM % 200 + 20))
  STATE=$(mktemp -d /tmp/qabox-bench-XXXXXX)
  BRIDGE=qbb$RANDOM
  SUBNET=${QABOX_BENCH_SUBNET:-10.214.$id.0/24}
  ROUTER_PORT=$((20000 + RANDOM % 20000))
  cat > "$STATE/qaboxd.toml" <<TOML
state_dir = "$STATE"
images_dir = "$REPO_ROOT/images"
log_level = "warn"
[api]
listen = ["unix://$STATE/qabox.sock"]
[network]
bridge = "$BRIDGE"
subnet = "$SUBNET"
egress = "none"   # a benchmark needs no way out, and leaves the host's forwarding alone
[routing]
domain = "qa.bench"
listen = "127.0.0.1:$ROUTER_PORT"
[limits]
max_environments = ${QABOX_BENCH_MAX_ENVS:-250}
${1:-}
TOML
  "$REPO_ROOT/build/agent/daemon/qaboxd" --config "$STATE/qaboxd.toml" >"$STATE/qaboxd.log" 2>&1 &
  AGENT_PID=$!
  QB=("$REPO_ROOT/build/agent/cli/qabox" --endpoint "unix://$STATE/qabox.sock")
  for _ in $(seq 200); do "${QB[@]}" status -o json >/dev/null 2>&1 && break; sleep 0.05; done
  trap bench_stop_agent EXIT
  "${QB[@]}" image build busybox >/dev/null
}

bench_stop_agent() {
  set +e
  for t in $("${QB[@]}" list -o name 2>/dev/null); do "${QB[@]}" delete "$t" >/dev/null 2>&1; done
  kill "$AGENT_PID" 2>/dev/null; wait "$AGENT_PID" 2>/dev/null
  # The agent's own helper for its containers (a warm pool's stay when the
  # agent stops): it unmounts the idmapped layers lxc-destroy knows nothing of.
  for p in "$STATE/lxc" "$STATE/images"; do
    for c in $(ls "$p" 2>/dev/null); do
      "$REPO_ROOT/build/agent/runtime/qabox-lxc" destroy "$p" "$c" >/dev/null 2>&1
    done
  done
  for p in "$STATE/raw" "$STATE/unpriv"; do
    for c in $(ls "$p" 2>/dev/null); do lxc-destroy -P "$p" -n "$c" -f >/dev/null 2>&1; done
  done
  ip link del "$BRIDGE" 2>/dev/null
  nft delete table inet "qabox_$BRIDGE" 2>/dev/null
  nft delete table bridge "qabox_$BRIDGE" 2>/dev/null
  rm -rf "$STATE"
}

# bench_pool_toml N: the config of a warm pool of N per image, tended often.
bench_pool_toml() {
  printf '\n[pool]\nsize = %s\ninterval = "200ms"\nmin_free_memory = "256M"\nmin_free_disk = "1G"\n' "$1"
}

# pool_ready [IMAGE]: how many containers of IMAGE (busybox) the pool holds ready.
pool_ready() {
  "${QB[@]}" status -o json | tr -d ' \n' | grep -o '"pool_ready":{[^}]*}' |
    grep -o "\"${1:-busybox}\":[0-9]*" | cut -d: -f2 || echo 0
}

# wait_pool N [IMAGE]: with POOL=1, until the pool holds N ready (not timed:
# a refill is work done ahead of time). Without, returns at once.
wait_pool() {
  [ "${POOL:-0}" = 1 ] || return 0
  for _ in $(seq 600); do
    [ "$(pool_ready "${2:-busybox}")" -ge "$1" ] 2>/dev/null && return 0
    sleep 0.05
  done
  echo "the pool never held $1 ready" >&2
  return 1
}

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# stats NAME < one number a line (ms): prints p50 p95 min max
stats() {
  sort -n | awk -v name="$1" '{ v[NR] = $1 } END {
    if (NR == 0) { print name ": no samples"; exit }
    p50 = v[int((NR + 1) * 0.50)]; if (!p50) p50 = v[1]
    i95 = int(NR * 0.95 + 0.999); if (i95 > NR) i95 = NR; p95 = v[i95]
    printf "%-34s n=%-3d p50=%6.1f ms  p95=%6.1f ms  min=%6.1f  max=%6.1f\n", name, NR, p50, p95, v[1], v[NR] }'
}

p50_of() { sort -n | awk '{ v[NR] = $1 } END { p = v[int((NR + 1) * 0.5)]; if (!p) p = v[1]; print p }'; }

# bench_sample_repo: a bare repo of the busybox sample with develop and
# feature/BENCH (which adds a page); sets $SAMPLE_REPO and $SAMPLE_SRC.
bench_sample_repo() {
  SAMPLE_SRC=$(mktemp -d /tmp/qabox-bench-src-XXXXXX)
  local app=$SAMPLE_SRC/app
  git init -q -b develop "$app"
  cp -r "$REPO_ROOT/scripts/sample-busybox/." "$app/"
  git -C "$app" add -A
  git -C "$app" -c user.name=b -c user.email=b@localhost commit -qm app
  git -C "$app" checkout -qb feature/BENCH
  echo "<p>feature</p>" > "$app/www/feature.html"
  git -C "$app" add -A
  git -C "$app" -c user.name=b -c user.email=b@localhost commit -qm feature
  git -C "$app" checkout -q develop
  echo "develop moved" > "$app/www/develop.txt"
  git -C "$app" add -A
  git -C "$app" -c user.name=b -c user.email=b@localhost commit -qm develop
  git clone -q --bare "$app" "$SAMPLE_SRC/sample.git"
  SAMPLE_REPO=$SAMPLE_SRC/sample.git
}

# bench_start_sample_agent [TOML]: bench_start_agent with $SAMPLE_REPO
# allowed as repo "sample" (and TOML after it), both removed at exit; sets
# $out, a directory for samples.
bench_start_sample_agent() {
  bench_start_agent "[[repos]]
name = \"sample\"
url = \"$SAMPLE_REPO\"
${1:-}"
  trap 'bench_stop_agent; rm -rf "$SAMPLE_SRC"' EXIT
  out=$STATE/samples
  mkdir -p "$out"
}
