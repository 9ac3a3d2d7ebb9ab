#!/usr/bin/env bash
# The real sample app (scripts/sample-app: Flask on gunicorn, Postgres 15,
# Redis, a worker) on the python image: time from the deploy call to READY
# over N deploys with the images warm, the phase that dominates, and each
# idle environment's memory from its container's cgroup (memory.current and
# memory.stat's anon on cgroup v2, memory.usage_in_bytes and total_rss on v1),
# with the share of init, Postgres, gunicorn, the worker and Redis (PSS); then
# the first deploy after a change to requirements.txt ([deps] layer built) and
# one with it unchanged (the layer cached); then the same deploys over a
# ~1 GiB dataset ([data]), and the first statement that touches its table.
#   usage: scripts/bench/realapp.sh [N]   (default 10; run as root)
#   QABOX_BENCH_SETTLE=SECONDS: how long the environments idle before their
#   memory is read (default 20)
#   QABOX_BENCH_BIG_ROWS=N: rows of the big table (default 1300000, ~1 GiB)
#   QABOX_BENCH_STORAGE=pool: datasets on a data pool (a loop-mounted btrfs
#   the benchmark makes and removes), not overlay layers
source "$(dirname "$0")/lib.sh"
N=${1:-10}
SETTLE=${QABOX_BENCH_SETTLE:-20}
bench_build
# PID 1 of Debian environments, where this tree has it.
if cmake --build "$REPO_ROOT/build" --target help | grep -w qabox-init >/dev/null; then
  cmake --build "$REPO_ROOT/build" -j"$(nproc)" --target qabox-init >/dev/null
fi

# The machine's load while measuring (others may build on it too).
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
SAMPLE_SRC=$(mktemp -d /tmp/qabox-bench-src-XXXXXX)
SAMPLE_REPO=$SAMPLE_SRC/sample.git
"$REPO_ROOT/scripts/sample-app/make-remote.sh" "$SAMPLE_REPO" >/dev/null
# QABOX_BENCH_STORAGE=pool: datasets in a data pool (storage.data_pool), a
# loop-mounted btrfs of the benchmark's own, unmounted at exit.
POOL_DIR="" POOL_DEV=""
pool_down() {
  if [[ -n $POOL_DIR ]]; then
    umount "$POOL_DIR/pool" 2>/dev/null || umount -l "$POOL_DIR/pool" 2>/dev/null
    [[ -n $POOL_DEV ]] && losetup -d "$POOL_DEV" 2>/dev/null
    rm -rf "$POOL_DIR"
  fi
}
pool_toml=""
if [[ ${QABOX_BENCH_STORAGE:-overlay} == pool ]]; then
  command -v mkfs.btrfs >/dev/null || apt-get install -y --no-install-recommends btrfs-progs >/dev/null
  POOL_DIR=$(mktemp -d /tmp/qabox-bench-pool-XXXXXX)
  trap pool_down EXIT
  truncate -s 16G "$POOL_DIR/pool.img"
  POOL_DEV=$(losetup --find --show "$POOL_DIR/pool.img")
  mkfs.btrfs -q "$POOL_DEV" && mkdir -p "$POOL_DIR/pool" && mount "$POOL_DEV" "$POOL_DIR/pool"
  chmod 0711 "$POOL_DIR" "$POOL_DIR/pool"
  pool_toml="[storage]
data_pool = \"$POOL_DIR/pool\""
fi
bench_start_sample_agent "$pool_toml"
trap 'bench_stop_agent; rm -rf "$SAMPLE_SRC"; pool_down' EXIT

# Warm images: the first build may take minutes (debian, services, python
# from Debian's packages); the second must come from the cache.
t0=$(now_ms)
"${QB[@]}" image build python >/dev/null
build_first=$(( $(now_ms) - t0 ))
t0=$(now_ms)
"${QB[@]}" image build python >/dev/null
build_cached=$(( $(now_ms) - t0 ))

deploy() {  # deploy TICKET PROGRESS-FILE
  "${QB[@]}" deploy "$1" --repo sample --source feature/EXMP-113 --target develop --image python \
    >/dev/null 2>"$2"
}

# One warm-up deploy fills the git mirror and the page cache, as on a host
# that has deployed before.
deploy WARM-0 "$out/progress-0" || { cat "$out/progress-0" >&2; exit 1; }
for i in $(seq "$N"); do
  t0=$(now_ms)
  deploy "REAL-$i" "$out/progress-$i" || { cat "$out/progress-$i" >&2; exit 1; }
  echo $(( $(now_ms) - t0 )) >> "$out/total"
  # "migrate 0.31s  ..." lines: one per phase, in the order they ran.
  awk '$2 ~ /^[0-9.]+s$/ { sub(/s$/, "", $2); print $2 * 1000 >> "'"$out"'/phase-" $1
                           print $1 >> "'"$out"'/phase-order" }' "$out/progress-$i"
done

# The container's memory cgroup, from its init's /proc/PID/cgroup: the v1
# memory hierarchy where there is one (a hybrid host), else the v2 one. The
# path is cut after lxc.payload.NAME, so processes its init put in child
# cgroups count too. Prints "DIR v1|v2".
container_cgroup() {
  local pid=$1 line path
  if line=$(grep -E '^[0-9]+:([^:]*,)?memory(,[^:]*)?:' "/proc/$pid/cgroup"); then
    path=${line#*:*:}
    path=$(sed -E 's#(/lxc\.payload\.[^/]+).*#\1#' <<< "$path")
    echo "/sys/fs/cgroup/memory$path v1"
  else
    line=$(grep '^0::' "/proc/$pid/cgroup")
    path=$(sed -E 's#(/lxc\.payload\.[^/]+).*#\1#' <<< "${line#0::}")
    echo "/sys/fs/cgroup$path v2"
  fi
}

# memory_of TICKET: "charged_kib anon_kib" and, in $out/pss-NAME, each
# process kind's PSS in KiB.
memory_of() {
  local name pid dir kind charged anon p cmd pss what
  name=$("${QB[@]}" get "$1" -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["container"])')
  pid=$(lxc-info -P "$STATE/lxc" -n "$name" -pH)
  read -r dir kind < <(container_cgroup "$pid")
  if [[ $kind == v1 ]]; then
    charged=$(cat "$dir/memory.usage_in_bytes")
    anon=$(awk '$1 == "total_rss" { print $2 }' "$dir/memory.stat")
  else
    charged=$(cat "$dir/memory.current")
    anon=$(awk '$1 == "anon" { print $2 }' "$dir/memory.stat")
  fi
  echo "$kind" > "$out/cgroup-kind"
  echo $((charged / 1024)) $((anon / 1024))
  # Every process below the container's cgroup, by what it is.
  find "$dir" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -un | while read -r p; do
    cmd=$(tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null) || continue
    pss=$(awk '$1 == "Pss:" { print $2 }' "/proc/$p/smaps_rollup" 2>/dev/null) || continue
    case "$p:$cmd" in
      "$pid":*) what=init ;;
      *gunicorn*) what=gunicorn ;;
      *worker.py*) what=worker ;;
      *postgres*) what=postgres ;;
      *redis-server*) what=redis ;;
      *) what=other ;;
    esac
    echo "${pss:-0}" >> "$out/pss-$what"
  done
}

# Inside the container, from qabox-init's status.json: when each process
# entered the state it is in (ready for the services; spawned, for processes
# without a ready check), in ms after init started. "postgres 160 redis 190
# web 420 worker 420".
boot_times() {
  "${QB[@]}" exec "$1" -- cat /run/qabox/status.json | python3 -c '
import json, sys
s = json.load(sys.stdin)
print(" ".join("%s %d" % (p["name"], p["since_ms"] - s["boot_ms"]) for p in s["processes"]))'
}

sleep "$SETTLE"
for i in $(seq "$N"); do
  read -r charged anon < <(memory_of "REAL-$i")
  echo "$charged" >> "$out/mem-charged"
  echo "$anon" >> "$out/mem-anon"
  boot_times "REAL-$i" | awk -v d="$out" '{ for (f = 1; f < NF; f += 2) print $(f + 1) >> (d "/boot-" $f) }'
done

# Dependency layers: the sample with a requirements.txt naming a local
# package (wheels built here, no network) and [deps]. The first deploy after
# a change to requirements.txt builds the layer; the next one with the same
# file reuses it.
deps_work=$SAMPLE_SRC/deps-work
git clone -q -b develop "$SAMPLE_REPO" "$deps_work"
for v in 1.0 1.1; do python3 "$REPO_ROOT/tests/integration/make_wheel.py" "$deps_work/wheels" "$v"; done
cat >> "$deps_work/qabox.toml" <<'TOML'

[deps]
files = ["requirements.txt"]
install = "python3 -m venv --system-site-packages /opt/venv && /opt/venv/bin/pip install --no-index --no-cache-dir --disable-pip-version-check --find-links wheels -r requirements.txt"
TOML
dg() { git -C "$deps_work" -c user.name=qabox -c user.email=qabox@localhost "$@"; }
dg checkout -q -b bench/deps develop
dg add -A && dg commit -qm "the sample with [deps] and its wheels"
for v in 1.0 1.1; do
  dg checkout -q -B "bench/deps-$v" bench/deps
  echo "qaboxdemo==$v" > "$deps_work/requirements.txt"
  dg add -A && dg commit -qm "requirements.txt: qaboxdemo $v" && dg push -q origin "bench/deps-$v"
done
deps_deploy() {  # deps_deploy TICKET BRANCH: prints "ms deps-phase-detail"
  local t0 ms
  t0=$(now_ms)
  "${QB[@]}" deploy "$1" --repo sample --source "$2" --target develop --image python \
    >/dev/null 2>"$out/deps-$1" || { cat "$out/deps-$1" >&2; exit 1; }
  ms=$(( $(now_ms) - t0 ))
  echo "$ms $(awk '$1 == "deps" { $1 = ""; $2 = ""; sub(/^ +/, ""); print }' "$out/deps-$1")"
}
read -r deps_first_ms deps_first < <(deps_deploy DEPS-1 bench/deps-1.0)
read -r deps_cached_ms deps_cached < <(deps_deploy DEPS-2 bench/deps-1.0)
read -r deps_change_ms deps_change < <(deps_deploy DEPS-3 bench/deps-1.1)

# A dataset of ~1 GiB: develop-big is develop plus a migration that fills
# the table `bulk` with ~1 GiB (one relation segment). On the target branch,
# it is the dataset's: seeded once (timed), then N deploys timed like the
# empty one's; then, in one environment, the first and second statement
# that touch the big table (the first copies the table's file up on an
# overlay; on a btrfs data pool it copies only the blocks written).
BIG_ROWS=${QABOX_BENCH_BIG_ROWS:-1300000}
big_work=$SAMPLE_SRC/big-work
git clone -q -b develop "$SAMPLE_REPO" "$big_work"
cat > "$big_work/migrations/010_bulk.sql" <<SQL
CREATE TABLE bulk (id bigint PRIMARY KEY, payload text NOT NULL);
INSERT INTO bulk SELECT g, repeat(md5(g::text), 24) FROM generate_series(1, $BIG_ROWS) g;
SQL
bg() { git -C "$big_work" -c user.name=qabox -c user.email=qabox@localhost "$@"; }
bg checkout -q -b develop-big
bg add -A && bg commit -qm "a ~1 GiB table in the dataset" && bg push -q origin develop-big
big_deploy() {  # big_deploy TICKET: prints the ms from the call to READY
  local t0
  t0=$(now_ms)
  "${QB[@]}" deploy "$1" --repo sample --source feature/EXMP-113 --target develop-big \
    --image python >/dev/null 2>"$out/big-$1" || { cat "$out/big-$1" >&2; exit 1; }
  echo $(( $(now_ms) - t0 ))
}
big_build_ms=$(big_deploy BIG-0)
big_build=$(awk '$1 == "data" { $1 = ""; $2 = ""; sub(/^ +/, ""); print }' "$out/big-BIG-0")
"${QB[@]}" delete BIG-0 >/dev/null
for i in $(seq "$N"); do
  big_deploy "BIG-$i" >> "$out/total-big"
  awk '$2 ~ /^[0-9.]+s$/ { sub(/s$/, "", $2); print $2 * 1000 >> "'"$out"'/bigphase-" $1 }' "$out/big-BIG-$i"
done
psql_in() {  # psql_in TICKET SQL: psql's own timing of SQL, in ms
  "${QB[@]}" exec "$1" -- sh -c "set -a && . /etc/qabox/app.env && psql -qtA -c '\\timing on' -c \"$2\"" |
    awk '/^Time:/ { print $2 }'
}
big_bytes=$("${QB[@]}" exec BIG-1 -- sh -c "set -a && . /etc/qabox/app.env && psql -qtAc \"SELECT pg_total_relation_size('bulk')\"")
big_upper_before=$(du -sk "$STATE/lxc/$("${QB[@]}" get BIG-1 -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["container"])')" | cut -f1)
big_first=$(psql_in BIG-1 "UPDATE bulk SET payload = 'touched' WHERE id = $((BIG_ROWS / 2))")
big_second=$(psql_in BIG-1 "UPDATE bulk SET payload = 'again' WHERE id = $((BIG_ROWS / 3))")
big_upper_after=$(du -sk "$STATE/lxc/$("${QB[@]}" get BIG-1 -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["container"])')" | cut -f1)
big_pool_excl=""
if [[ -n $POOL_DIR ]]; then  # what the environment's snapshot holds of its own
  sync
  big_pool_excl=$(btrfs filesystem du -s --raw "$POOL_DIR/pool/envs/$("${QB[@]}" get BIG-1 -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["container"])')" | awk 'NR == 2 { print $2 }')
fi

ready=$("${QB[@]}" list -o json | grep -o '"READY"' | wc -l || true)
ready_of=$((N + 4 + N))
echo "qabox real app benchmark: sample app (Flask, Postgres 15, Redis) on the python image,"
echo "N=$N, $(nproc) cores; READY: $ready of $ready_of"
echo "load average (1, 5, 15 min): $load_before at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
printf 'image build python: %d ms the first time in this run, %d ms again (cached)\n' \
  "$build_first" "$build_cached"
stats "deploy call -> READY (CLI wall)" < "$out/total"
dominant="" dominant_p50=0
for phase in $(awk '!seen[$1]++' "$out/phase-order"); do
  stats "  phase $phase" < "$out/phase-$phase"
  p=$(p50_of < "$out/phase-$phase")
  if [[ $phase != ready ]] && awk -v a="$p" -v b="$dominant_p50" 'BEGIN { exit !(a > b) }'; then
    dominant=$phase dominant_p50=$p
  fi
done
echo "inside the container, ms after qabox-init started (status.json): each service ready, each process spawned"
for what in postgres redis web worker; do
  [[ -f $out/boot-$what ]] && stats "  $what" < "$out/boot-$what"
done
p50=$(p50_of < "$out/total")
awk -v p="$p50" 'BEGIN { printf "p50 end to end: %.0f ms (target: under 1500 ms)\n", p }'
awk -v p="$dominant_p50" -v t="$p50" -v n="$dominant" \
  'BEGIN { printf "phase that dominates: %s, p50 %.0f ms (%.0f%% of the p50 deploy)\n", n, p, t ? 100 * p / t : 0 }'

echo "idle memory per environment after ${SETTLE}s, from the cgroup ($(cat "$out/cgroup-kind")):"
mib() { awk '{ printf "%.1f\n", $1 / 1024 }'; }
awk '{ print $1 }' "$out/mem-charged" | mib | sort -n | awk '{ v[NR] = $1 } END {
  printf "  charged (page cache included): p50 %.1f MiB, max %.1f MiB\n", v[int((NR + 1) / 2)], v[NR] }'
awk '{ print $1 }' "$out/mem-anon" | mib | sort -n | awk '{ v[NR] = $1 } END {
  printf "  anonymous (rss):               p50 %.1f MiB, max %.1f MiB (target: under 80 MiB)\n", v[int((NR + 1) / 2)], v[NR] }'
echo "  by process, PSS averaged over the $N environments:"
for what in init postgres gunicorn worker redis other; do
  [[ -f $out/pss-$what ]] || continue
  awk -v w="$what" -v n="$N" '{ s += $1; c++ } END {
    printf "    %-9s %6.1f MiB  (%.1f processes)\n", w, s / n / 1024, c / n }' "$out/pss-$what"
done
echo "dependency layer ([deps], pip from a local wheel):"
printf '  first deploy after a requirements.txt change: %d ms (deps: %s)\n' "$deps_change_ms" "$deps_change"
printf '  the first deploy with [deps] at all:         %d ms (deps: %s)\n' "$deps_first_ms" "$deps_first"
printf '  the same requirements.txt again:             %d ms (deps: %s)\n' "$deps_cached_ms" "$deps_cached"
echo "dataset of ~1 GiB ([data], table bulk of $(awk -v b="$big_bytes" 'BEGIN { printf "%.0f", b / 1048576 }') MiB, storage: ${QABOX_BENCH_STORAGE:-overlay}):"
printf '  first deploy, the dataset built: %d ms (data: %s)\n' "$big_build_ms" "$big_build"
stats "  deploy call -> READY, dataset warm" < "$out/total-big"
big_p50=$(p50_of < "$out/total-big")
awk -v a="$big_p50" -v b="$p50" 'BEGIN { printf "  p50 %.0f ms against %.0f ms with the small dataset: %.2fx (target: within 1.2x)\n", a, b, b ? a / b : 0 }'
for phase in $(awk '!seen[$1]++' "$out/phase-order"); do  # where the difference is
  [[ -f $out/bigphase-$phase ]] || continue
  awk -v n="$phase" -v a="$(p50_of < "$out/bigphase-$phase")" -v b="$(p50_of < "$out/phase-$phase")" \
    'BEGIN { if (a - b >= 20 || b - a >= 20) printf "    phase %-9s p50 %4.0f ms against %4.0f ms\n", n, a, b }'
done
printf '  first UPDATE of one row of bulk in a fresh environment: %s ms, the second: %s ms\n' "$big_first" "$big_second"
printf "  the environment's container dir grew by %d MiB on the first UPDATE\n" $(( (big_upper_after - big_upper_before) / 1024 ))
[[ -n $big_pool_excl ]] && printf "  its data pool snapshot holds %d KiB of its own (btrfs exclusive)\n" $(( big_pool_excl / 1024 ))
