#!/usr/bin/env bash
# What unprivileged (user-namespaced, id-mapped) containers cost in clone and
# start time on overlay, beside the privileged containers qabox runs today:
# N times `lxc-copy -s -B overlay` + `lxc-start` + RUNNING of the same busybox
# image version, privileged, then unprivileged (the image's rootfs shifted to
# host ids 100000-165535 once, and `lxc.idmap` set), in the same run. The
# agent runs unprivileged by default; this is the measurement behind that.
#   usage: scripts/bench/unprivileged.sh [N]   (default 10; run as root)
source "$(dirname "$0")/lib.sh"
N=${1:-10}
bench_build
# The agent builds a privileged image here; the script shifts its own copy.
bench_start_agent "[containers]
unprivileged = false"
image=$(ls "$STATE/images" | head -1)
out=$STATE/samples
mkdir -p "$out" "$STATE/raw" "$STATE/unpriv"

# The unprivileged base: a full copy of the image, its rootfs owned by the
# mapped ids, and the map in its config. Done once, like an image build.
t0=$(now_ms)
mkdir -p "$STATE/unpriv/base"
cp -a "$STATE/images/$image/rootfs" "$STATE/unpriv/base/rootfs"
sed -e "s|^lxc.rootfs.path = .*|lxc.rootfs.path = dir:$STATE/unpriv/base/rootfs|" \
    -e "s|^lxc.uts.name = .*|lxc.uts.name = base|" "$STATE/images/$image/config" \
    > "$STATE/unpriv/base/config"
(cd "$STATE/unpriv/base/rootfs" && find . -print0 | while IFS= read -r -d '' f; do
  uid=$(stat -c %u "$f"); gid=$(stat -c %g "$f")
  chown -h "$((uid + 100000)):$((gid + 100000))" "$f"
done)
cat >> "$STATE/unpriv/base/config" <<CONF
lxc.idmap = u 0 100000 65536
lxc.idmap = g 0 100000 65536
CONF
chown 100000:100000 "$STATE/unpriv/base"
echo "unprivileged base prepared in $(( $(now_ms) - t0 )) ms (once per image version)"

run() { # run KIND LXCPATH BASE_LXCPATH BASE
  local kind=$1 path=$2 basepath=$3 base=$4
  for i in $(seq "$N"); do
    t0=$(now_ms)
    lxc-copy -P "$basepath" -n "$base" -p "$path" -N "$kind-$i" -s -B overlay >/dev/null
    t1=$(now_ms)
    lxc-start -P "$path" -n "$kind-$i"
    lxc-wait -P "$path" -n "$kind-$i" -s RUNNING -t 10
    t2=$(now_ms)
    echo $((t1 - t0)) >> "$out/$kind-clone"
    echo $((t2 - t1)) >> "$out/$kind-start"
    echo $((t2 - t0)) >> "$out/$kind-total"
  done
  # Prove it ran as asked: uid 0 inside is uid 100000 outside when unprivileged.
  local pid
  pid=$(lxc-info -P "$path" -n "$kind-1" -p -H)
  echo "$kind: container init runs as host uid $(stat -c %u /proc/"$pid")"
  for i in $(seq "$N"); do lxc-destroy -P "$path" -n "$kind-$i" -f >/dev/null; done
}

# Interleaved rounds, so drift in the machine's load hits both alike.
for round in 1 2; do
  run priv "$STATE/raw" "$STATE/images" "$image"
  run unpriv "$STATE/unpriv" "$STATE/unpriv" base
done

echo "unprivileged benchmark: N=$N x 2 rounds, $(nproc) cores, image $image"
for kind in priv unpriv; do
  stats "$kind clone (lxc-copy -s overlay)" < "$out/$kind-clone"
  stats "$kind start to RUNNING" < "$out/$kind-start"
  stats "$kind clone + start" < "$out/$kind-total"
done
p=$(p50_of < "$out/priv-total"); u=$(p50_of < "$out/unpriv-total")
awk -v p="$p" -v u="$u" 'BEGIN { printf "p50 clone+start: privileged %d ms, unprivileged %d ms (%+.0f%%, %+d ms)\n", p, u, (u - p) * 100 / p, u - p }'
