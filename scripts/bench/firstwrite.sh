#!/usr/bin/env bash
# The cost of the first write to a large file in a fresh environment, on an
# overlay clone (as qabox makes them: lowerdir=...,upperdir,workdir on the
# host's filesystem, where a write copies the whole file up) beside a btrfs
# subvolume snapshot (block-level copy-on-write) on a loop-mounted btrfs.
#  (a) file level: a SIZE MiB file in the lower layer / base subvolume; a
#      fresh overlay mount / snapshot over it; one 8 KiB write
#      (open + pwrite + fsync, by dd conv=notrunc,fsync) in the middle of the
#      file, then a second one; the extra disk the environment used. dd
#      opens O_WRONLY, not O_RDWR: overlayfs copies up at any open for
#      writing, so the two cost the same.
#  (b) database level: Postgres 15 with a table of about SIZE MiB (one
#      relation segment is 1 GiB) in a data dir in the lower layer / base
#      subvolume: start, first SELECT of one row (Postgres opens relation
#      files O_RDWR, so a read copies up too), first and second UPDATE of
#      one row, each in a fresh environment.
# Everything lives under its own /tmp dir and its own loop device, and is
# removed at exit, also on failure. No network: Postgres listens on a unix
# socket in that dir only.
#   usage: scripts/bench/firstwrite.sh [SIZE_MIB]   (default 1024; run as root)
#   FW_PG=0 skips (b).
set -euo pipefail
export LC_ALL=C
SIZE_MIB=${1:-1024}
FW_PG=${FW_PG:-1}
PGBIN=/usr/lib/postgresql/15/bin

[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
grep -qw btrfs /proc/filesystems || modprobe btrfs 2>/dev/null || true
grep -qw btrfs /proc/filesystems || { echo "this kernel has no btrfs" >&2; exit 1; }
apt_install() { # PACKAGE...: idempotent, only what is missing
  apt-get install -y -q "$@" >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null && apt-get install -y -q "$@" >/dev/null; }
}
command -v mkfs.btrfs >/dev/null || apt_install btrfs-progs
[ "$FW_PG" = 0 ] || [ -x "$PGBIN/postgres" ] || apt_install postgresql-15

W=$(mktemp -d /tmp/qabox-firstwrite-XXXXXX)
chmod 711 "$W" # postgres (uid postgres) must reach its data dirs beneath
LOOP=""
PG_DIRS=()

cleanup() {
  set +e
  local d m
  for d in "${PG_DIRS[@]}"; do pg_stop "$d"; done
  # Every mount beneath $W, deepest first (overlays, the btrfs).
  for m in $(findmnt -rn -o TARGET | grep "^$W/" | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m"
  done
  [ -n "$LOOP" ] && losetup -d "$LOOP"
  if findmnt -rn -o TARGET | grep -q "^$W/"; then
    echo "firstwrite: something is still mounted beneath $W; left in place" >&2
  else
    rm -rf "$W"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# timed CMD...: runs it, T = its wall time in ms (bash's microsecond clock).
timed() {
  local t0=$EPOCHREALTIME
  "$@"
  T=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", (b - a) * 1000 }')
}
kib() { du -sk "$1" | cut -f1; }
# Drop one file's pages from the page cache (posix_fadvise DONTNEED), so a
# "cold" case reads from disk without dropping the whole host's cache.
uncache() { find "$@" -type f -size +1M -exec sh -c 'for f; do dd if="$f" iflag=nocache count=0 status=none; done' _ {} +; }

BLOCK=$W/block8k
head -c 8192 /dev/urandom > "$BLOCK"
MID=$((SIZE_MIB * 128 / 2)) # 8 KiB blocks: the middle of the file
write8k() { dd if="$BLOCK" of="$1" bs=8192 count=1 seek="$MID" conv=notrunc,fsync status=none; }
# two_writes FILE: w1, w2 = the first and second write's ms.
two_writes() {
  timed write8k "$1"
  w1=$T
  timed write8k "$1"
  w2=$T
}

ROWS=()
row() { ROWS+=("$(printf '%-26s %12s %15s %16s %14s' "$@")"); }

# --- (a) file level -------------------------------------------------------

mkdir -p "$W/lower"
echo "making the ${SIZE_MIB} MiB file (real blocks, not sparse)..."
dd if=/dev/urandom of="$W/lower/data.bin" bs=1M count="$SIZE_MIB" conv=fsync status=none

# Baseline: the same write into the file in place on the host's filesystem
# (what dd + fsync cost with no copy-on-write at all). Done before any mount
# uses the lower dir.
uncache "$W/lower"
two_writes "$W/lower/data.bin"
row "ext4 in place (baseline)" - "$w1" "$w2" 0

# overlay_env NAME cold|warm [EXTRA_OPTS]: a fresh overlay clone over
# $W/lower; sets OV to its merged dir and OVU to its upper dir; T = mount ms.
overlay_env() {
  local d=$W/ov-$1
  mkdir -p "$d/upper" "$d/work" "$d/merged"
  if [ "$2" = cold ]; then uncache "$W/lower"; else cat "$W/lower/data.bin" > /dev/null; fi
  timed mount -t overlay overlay \
    -o "lowerdir=$W/lower,upperdir=$d/upper,workdir=$d/work${3:+,$3}" "$d/merged"
  OV=$d/merged
  OVU=$d/upper
}

for cache in cold warm; do
  overlay_env "$cache" "$cache"
  snap=$T
  two_writes "$OV/data.bin"
  sync -f "$OVU"
  row "overlay ($cache lower)" "$snap" "$w1" "$w2" "$(kib "$OVU")"
  umount "$OV"
  rm -rf "$W/ov-$cache"
done

# metacopy=on: a metadata-only change (chmod) copies up no data; the first
# write still copies the whole file. Not allowed with userxattr (isolated ids).
METACOPY="kernel default metacopy=$(cat /sys/module/overlay/parameters/metacopy 2>/dev/null || echo '?')"
if overlay_env meta cold metacopy=on 2>/dev/null; then
  snap=$T
  timed chmod 0600 "$OV/data.bin"
  c=$T
  sync -f "$OVU"
  after_chmod=$(kib "$OVU")
  two_writes "$OV/data.bin"
  sync -f "$OVU"
  row "overlay metacopy=on" "$snap" "$w1" "$w2" "$(kib "$OVU")"
  METACOPY="$METACOPY; metacopy=on mounts: chmod ${c} ms and ${after_chmod} KiB of upper, then the first write copied the data up"
  umount "$OV"
else
  METACOPY="$METACOPY; metacopy=on mount refused"
fi
d=$W/ov-mx
mkdir -p "$d/upper" "$d/work" "$d/merged"
if mount -t overlay overlay -o "lowerdir=$W/lower,upperdir=$d/upper,workdir=$d/work,userxattr,metacopy=on" \
  "$d/merged" 2>/dev/null; then
  METACOPY="$METACOPY; userxattr,metacopy=on accepted"
  umount "$d/merged"
else
  METACOPY="$METACOPY; userxattr,metacopy=on refused (as in isolated id mode)"
fi
rm -rf "$W/ov-meta" "$W/ov-mx"

# The btrfs: a sparse image file on the host's filesystem, on our own loop
# device, mkfs'd with the defaults (metadata DUP).
truncate -s "$((SIZE_MIB * 6 + 2048))M" "$W/btrfs.img"
LOOP=$(losetup --find --show "$W/btrfs.img")
mkfs.btrfs -q -f "$LOOP" >/dev/null
BT=$W/btrfs
mkdir -p "$BT"
mount -t btrfs "$LOOP" "$BT"
bt_used() { btrfs filesystem sync "$BT" && btrfs filesystem usage -b "$BT" 2>/dev/null | awk '/^ *Used:/ { print $2; exit }'; }
bt_excl() { btrfs filesystem sync "$BT" && btrfs filesystem du -s --raw "$1" | awk 'NR == 2 { print $2 }'; }

btrfs subvolume create "$BT/base" >/dev/null
cp --sparse=never "$W/lower/data.bin" "$BT/base/data.bin"
sync -f "$BT"
# Cold: btrfs's pages of the file and the loop's pages of its image file.
uncache "$BT/base" "$W/btrfs.img"
used0=$(bt_used)
timed btrfs subvolume snapshot "$BT/base" "$BT/env1" >/dev/null
snap=$T
two_writes "$BT/env1/data.bin"
used1=$(bt_used)
excl=$(bt_excl "$BT/env1")
row "btrfs snapshot" "$snap" "$w1" "$w2" "$((excl / 1024))"
BT_NOTE="btrfs: snapshot's exclusive data $((excl / 1024)) KiB (btrfs filesystem du); filesystem Used delta $(((used1 - used0) / 1024)) KiB (data + metadata, DUP)"

# --- (b) database level ---------------------------------------------------

PGROWS=()
pgrow() { PGROWS+=("$(printf '%-22s %9s %9s %9s %9s %9s %11s %12s' "$@")"); }
pg() { setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"; }
# pg_start DATADIR: sets T_READY (ms from exec to accepting connections).
pg_start() {
  local sock=$W/sock
  mkdir -p "$sock"
  chown postgres: "$sock"
  PG_DIRS+=("$1")
  local t0=$EPOCHREALTIME
  pg "$PGBIN/postgres" -D "$1" -c listen_addresses= -c unix_socket_directories="$sock" \
    -c port=5432 -c wal_level=minimal -c max_wal_senders=0 -c fsync=on \
    >"$W/pg-$(basename "$(dirname "$1")").log" 2>&1 &
  for _ in $(seq 3000); do
    pg "$PGBIN/pg_isready" -q -h "$sock" -p 5432 && break
    sleep 0.01
  done
  T_READY=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", (b - a) * 1000 }')
  T_START=$t0
}
pg_stop() {
  [ -f "$1/postmaster.pid" ] || return 0
  pg "$PGBIN/pg_ctl" -D "$1" -m fast -w -t 60 stop >/dev/null 2>&1 ||
    kill -9 "$(head -1 "$1/postmaster.pid")" 2>/dev/null
  local keep=() d
  for d in "${PG_DIRS[@]}"; do [ "$d" = "$1" ] || keep+=("$d"); done
  PG_DIRS=("${keep[@]}")
}
psql_() { pg "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$W/sock" -p 5432 -d postgres "$@"; }

# pg_env LABEL DATADIR SNAPSHOT_MS DISKFN WITH_SELECT: start Postgres on a
# fresh environment's data dir, one session: [SELECT one row,] UPDATE one
# row, UPDATE another; statement times from psql's \timing; then the wall
# time from the start of postgres to the end of the first UPDATE.
pg_env() {
  local label=$1 dir=$2 snap=$3 diskfn=$4 sel=$5 id1=$((PG_N / 2)) id2=$((PG_N / 2 + 1000))
  pg_start "$dir"
  local ready=$T_READY sql="\\timing on"$'\n'
  [ "$sel" = 1 ] && sql+="SELECT v FROM t WHERE id = $((id1 - 1));"$'\n'
  sql+="UPDATE t SET v = v + 1 WHERE id = $id1;"$'\n'
  sql+="\\! echo stamp \$(date +%s.%N)"$'\n'
  sql+="UPDATE t SET v = v + 1 WHERE id = $id2;"$'\n'
  local out tend
  # The first UPDATE's end: psql runs `date` right after it (\! waits).
  out=$(psql_ <<<"$sql")
  tend=$(awk '/^stamp/ { print $2 }' <<<"$out")
  mapfile -t times < <(awk '/^Time:/ { printf "%.1f\n", $2 }' <<<"$out")
  local s=- u1 u2
  if [ "$sel" = 1 ]; then s=${times[0]}; u1=${times[1]}; u2=${times[2]}; else u1=${times[0]}; u2=${times[1]}; fi
  local total
  total=$(awk -v a="$T_START" -v b="$tend" 'BEGIN { printf "%.1f", (b - a) * 1000 }')
  pg_stop "$dir"
  pgrow "$label" "$snap" "$ready" "$s" "$u1" "$u2" "$total" "$($diskfn)"
}

if [ "$FW_PG" != 0 ]; then
  # ~SIZE MiB of heap: 240-byte rows, 33 to an 8 KiB page, 1% under the size
  # so the table stays one segment; the primary key's index beside it.
  PG_N=$((SIZE_MIB * 128 * 33 * 99 / 100))
  mkdir -p "$W/pg/lower"
  chown postgres: "$W/pg/lower"
  echo "making a Postgres 15 cluster with a $PG_N-row table..."
  pg "$PGBIN/initdb" -D "$W/pg/lower/data" -A trust -U postgres --no-sync >"$W/initdb.log"
  pg_start "$W/pg/lower/data"
  psql_ <<SQL >/dev/null
CREATE TABLE t (id int, v int, pad text);
BEGIN;
TRUNCATE t;
INSERT INTO t SELECT g, 0, repeat('x', 200) FROM generate_series(1, $PG_N) g;
COMMIT;
ALTER TABLE t ADD PRIMARY KEY (id);
VACUUM (FREEZE, ANALYZE) t;
CHECKPOINT;
SQL
  HEAP=$(psql_ -At -c "SELECT pg_relation_size('t') / 1048576 || ' MiB heap, ' || pg_indexes_size('t') / 1048576 || ' MiB index, ' || pg_relation_filepath('t')")
  pg_stop "$W/pg/lower/data"
  find "$W/pg/lower/data" -type f -exec sync {} +

  # Overlay: a fresh clone for each run (the lower's pages dropped first).
  for sel in 1 0; do
    d=$W/pg/ov$sel
    mkdir -p "$d/upper" "$d/work" "$d/merged"
    uncache "$W/pg/lower"
    timed mount -t overlay overlay -o "lowerdir=$W/pg/lower,upperdir=$d/upper,workdir=$d/work" "$d/merged"
    snap=$T
    ov_disk() { sync -f "$d/upper"; echo "$(($(kib "$d/upper") / 1024)) MiB"; }
    pg_env "overlay" "$d/merged/data" "$snap" ov_disk "$sel"
    umount "$d/merged"
    rm -rf "$d"
  done

  # btrfs: the same data dir in a base subvolume, a snapshot for each run.
  btrfs subvolume create "$BT/pgbase" >/dev/null
  cp -a --sparse=never "$W/pg/lower/data" "$BT/pgbase/data"
  sync -f "$BT"
  for sel in 1 0; do
    uncache "$BT/pgbase" "$W/btrfs.img"
    timed btrfs subvolume snapshot "$BT/pgbase" "$BT/pg$sel" >/dev/null
    snap=$T
    bt_disk() { echo "$(($(bt_excl "$BT/pg$sel") / 1024)) KiB"; }
    pg_env "btrfs snapshot" "$BT/pg$sel/data" "$snap" bt_disk "$sel"
  done
fi

# --- report ---------------------------------------------------------------

echo
echo "first write to a ${SIZE_MIB} MiB file, one 8 KiB dd conv=notrunc,fsync in its middle (ms)"
printf '%-26s %12s %15s %16s %14s\n' backend "snapshot ms" "first write ms" "second write ms" "extra disk KiB"
printf '%s\n' "${ROWS[@]}"
echo "overlay: $METACOPY"
echo "$BT_NOTE"
if [ "$FW_PG" != 0 ]; then
  echo
  echo "Postgres 15, table t: $HEAP; lower pages dropped before each run (ms)"
  printf '%-22s %9s %9s %9s %9s %9s %11s %12s\n' backend snapshot ready "1st SEL" "1st UPD" "2nd UPD" "start->UPD" "extra disk"
  printf '%s\n' "${PGROWS[@]}"
  echo "(ready: postgres exec to pg_isready; SEL/UPD: psql's timing in one session, SEL row before the first UPD when given;"
  echo " start->UPD: postgres exec to the end of the first UPDATE; extra disk after a clean stop)"
fi
echo
uptime
