#!/bin/sh
# The services image: PostgreSQL 15 and Redis over debian, configured small
# for an idle environment, both listening on 127.0.0.1 only.
set -eu
. "$IMAGE_DIR/../lib/apt-layer.sh"
apt_layer_install

PG=/usr/lib/postgresql/15/bin
DATA=/var/lib/postgresql/15/main
CONF=/etc/postgresql/15/main
# Debian's postgresql-15 postinst makes the cluster 15/main (its daemon kept
# from starting by policy-rc.d): it must be there.
if [ ! -f "$ROOTFS$DATA/PG_VERSION" ] || [ ! -f "$ROOTFS$CONF/postgresql.conf" ]; then
  echo "provision: the postgresql-15 package made no cluster 15/main" >&2
  exit 1
fi

# WAL in 1 MB segments, not 16: the first write after start copies the
# current segment whole into the environment's upper dir (and its page
# cache). Done on the cluster initdb left cleanly stopped, before it starts.
apt_layer_run runuser -u postgres -- "$PG/pg_resetwal" --wal-segsize=1 "$DATA" >/dev/null

# Read after postgresql.conf (its include_dir): these win. Every page an
# idle environment touches counts against its memory: its shared memory, and
# the page cache of each file Postgres writes, or opens for writing, which
# overlayfs first copies whole into the environment's upper dir.
cat > "$ROOTFS$CONF/conf.d/qabox.conf" <<'PGCONF'
# qabox: one small instance per environment, reached on 127.0.0.1 only.
listen_addresses = '127.0.0.1'
port = 5432
max_connections = 20
shared_buffers = 16MB
huge_pages = off
work_mem = 2MB
maintenance_work_mem = 16MB
wal_buffers = 1MB
max_wal_size = 128MB
min_wal_size = 8MB
max_worker_processes = 2
max_parallel_workers = 0
max_parallel_workers_per_gather = 0
# No logical replication here: no launcher process.
max_logical_replication_workers = 0
autovacuum_max_workers = 1
# System V segments take pages when touched; mmap and posix fill theirs
# whole at creation (the 1 MB of the statistics' first segment).
dynamic_shared_memory_type = sysv
ssl = off
jit = off
logging_collector = off
log_destination = 'stderr'
PGCONF
cat > "$ROOTFS$CONF/pg_hba.conf" <<'HBA'
# qabox: peer over the unix socket; the app's password over 127.0.0.1.
# TYPE  DATABASE  USER  ADDRESS       METHOD
local   all       all                 peer
host    all       all   127.0.0.1/32  scram-sha-256
HBA
apt_layer_run chown postgres:postgres "$CONF/pg_hba.conf"
chmod 0640 "$ROOTFS$CONF/pg_hba.conf"
apt_layer_run install -d -o postgres -g postgres -m 2775 /run/postgresql

# The role and database "app", made on the unix socket only (no TCP during
# the build), then a clean stop so the clone starts without recovery.
pgctl() {
  apt_layer_run runuser -u postgres -- "$PG/pg_ctl" -D "$DATA" -w -t 60 "$@"
}
pgctl -o "-c config_file=$CONF/postgresql.conf -c listen_addresses=''" -l /tmp/qabox-build-pg.log start ||
  { cat "$ROOTFS/tmp/qabox-build-pg.log" >&2; exit 1; }
if ! apt_layer_run runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 -h /run/postgresql -d postgres \
  -c "CREATE ROLE app LOGIN" -c "CREATE DATABASE app OWNER app"; then
  pgctl -m fast stop || true
  exit 1
fi
pgctl -m fast stop
rm -f "$ROOTFS/tmp/qabox-build-pg.log"
# No statistics from the build: the autovacuum of an environment visits only
# the databases with statistics, and each database it visits has its
# catalogs copied up (template1's 3.6 MB). Its own activity makes app's.
rm -f "$ROOTFS$DATA/pg_stat/pgstat.stat"

cat > "$ROOTFS/etc/redis/qabox.conf" <<'REDIS'
# qabox: one small Redis per environment, on 127.0.0.1 only, in the
# foreground under qabox-init; the password comes on the command line.
bind 127.0.0.1
port 6379
protected-mode yes
daemonize no
supervised no
logfile ""
dir /var/lib/redis
save ""
appendonly no
maxmemory 32mb
maxmemory-policy allkeys-lru
# Its event loop's tables are sized (and touched) for this many: 10000 by
# default, 0.3 MiB more.
maxclients 128
databases 16
REDIS
chmod 0644 "$ROOTFS/etc/redis/qabox.conf"
apt_layer_clean
