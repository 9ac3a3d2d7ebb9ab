#!/usr/bin/env bash
# LxcPackage: the Debian package on this machine, as ops would use it. Builds
# it (scripts/package.sh; QABOX_PACKAGE_DEB names one built earlier in the
# same run instead), installs it with apt-get, starts the installed qaboxd the
# way qaboxd.service does (its ExecStart line, with its EnvironmentFile
# applied: no systemd runs here), builds the busybox image and deploys the
# busybox sample through the installed qabox, asks the router for the page,
# then removes the package (state kept, binaries gone) and purges it
# (nothing of the package left, /etc/subuid and /etc/subgid as they were).
#
# The agent gets its own state dir, socket, bridge, subnet, router port and
# metrics port through /etc/default/qaboxd (QABOX_* variables), so it never
# meets another test's agent or the quickstart's. The package is purged on
# the way out whatever happened: the machine is left without it.
#
# Needs root, apt-get and LXC. Exit 77 (ctest: skipped) on a developer's
# machine without them; with CI=true the same is a failure.
#
#   tests/integration/package_test.sh [REPO_ROOT]
set -euo pipefail
repo_root=$(cd "${1:-$(dirname "$0")/../..}" && pwd)
started=$(date +%s)

say() { printf '[package_test] %s\n' "$*" >&2; }
fail() {
  say "FAILED: $*"
  exit 1
}
cannot_run() {
  if [[ ${CI:-} == true ]]; then fail "needs root, apt-get and LXC in CI: $*"; fi
  say "skipped: needs root, apt-get and LXC: $*"
  exit 77
}

[[ $(id -u) -eq 0 ]] || cannot_run "not root"
command -v apt-get >/dev/null || cannot_run "no apt-get"
[[ -x /usr/bin/lxc-start && -x /bin/busybox ]] ||
  cannot_run "lxc or busybox-static is not installed (scripts/install-deps.sh)"
[[ -d /sys/fs/cgroup ]] || cannot_run "no cgroup filesystem"
# Purge deletes /var/lib/qabox and /etc/qabox: never run where they hold
# somebody's agent (a quickstart's, or an installed package).
if dpkg-query -W -f='${Status}' qabox 2>/dev/null | grep -q 'installed'; then
  fail "the qabox package is installed on this machine; this test installs and purges it"
fi
for d in /var/lib/qabox /etc/qabox /etc/default/qaboxd; do
  [[ -e $d ]] && fail "$d exists (another agent's?); this test would delete it on purge"
done

work=$(mktemp -d /var/tmp/qabox-pkg-XXXXXX)
chmod 0711 "$work"
id=$(printf '%04x' $((RANDOM % 65536)))
state=$work/state
socket=$work/qabox.sock
bridge=qbp$id
log=$work/qaboxd.log
daemon_pid=
export NO_COLOR=1 HOME=$work

# A 10.212.N.0/24 no interface has an address in (the harness takes 10.213.N).
used=$(ip -4 -o addr show)
subnet=
for n in $(shuf -i 1-250); do
  if [[ $used != *" 10.212.$n."* ]]; then
    subnet=10.212.$n.0/24
    break
  fi
done
[[ -n $subnet ]] || fail "no free 10.212.N.0/24"
router_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# What the package may change outside its own files, to compare after purge.
snap=$work/before
mkdir -p "$snap"
for f in /etc/subuid /etc/subgid; do
  if [[ -e $f ]]; then cp -p "$f" "$snap/"; fi
done
group_before=$(getent group qabox || true)

purge_package() {
  if dpkg-query -W -f='${Status}' qabox 2>/dev/null | grep -q 'installed\|config-files'; then
    DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq qabox >/dev/null 2>&1 ||
      dpkg --purge qabox >/dev/null 2>&1 || true
  fi
}

cleanup() {
  local rc=$?
  set +e
  if [[ -n $daemon_pid ]] && kill -0 "$daemon_pid" 2>/dev/null; then
    kill -TERM "$daemon_pid"
    for _ in $(seq 100); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$daemon_pid" 2>/dev/null
  fi
  # Containers and image containers the agent left, by the helper that made
  # them (the installed one, else the build tree's).
  local helper=/usr/libexec/qabox/qabox-lxc
  [[ -x $helper ]] || helper=$(compgen -G "$repo_root/build*/agent/runtime/qabox-lxc" | head -n 1)
  for lxcpath in "$state/lxc" "$state/images"; do
    [[ -d $lxcpath && -n $helper ]] || continue
    for c in "$lxcpath"/*/; do
      [[ -d $c ]] && timeout 30 "$helper" destroy "$lxcpath" "$(basename "$c")" >/dev/null 2>&1
    done
  done
  [[ -e /sys/class/net/$bridge ]] && ip link del "$bridge"
  for family in inet bridge; do nft delete table "$family" "qabox_$bridge" 2>/dev/null; done
  if [[ $rc -ne 0 && -f $log ]]; then
    say "qaboxd's log (last 40 lines):"
    tail -n 40 "$log" >&2
  fi
  purge_package
  # On a failure the purge may not have run its own cleanup: put shadow's
  # files back as they were.
  if [[ $rc -ne 0 ]]; then
    for f in /etc/subuid /etc/subgid; do
      if [[ -e $snap/$(basename "$f") ]]; then cp -p "$snap/$(basename "$f")" "$f"; else rm -f "$f"; fi
    done
    [[ -z $group_before ]] && getent group qabox >/dev/null && delgroup --system --quiet qabox
  fi
  rm -rf "$work"
  say "took $(($(date +%s) - started)) s"
  exit "$rc"
}
trap cleanup EXIT

# 1. The package.
deb=${QABOX_PACKAGE_DEB:-}
if [[ -n $deb ]]; then
  [[ -f $deb ]] || fail "QABOX_PACKAGE_DEB=$deb: no such file"
  deb=$(cd "$(dirname "$deb")" && pwd)/$(basename "$deb")
  say "using $deb (QABOX_PACKAGE_DEB)"
else
  say "building the package (scripts/package.sh)"
  "$repo_root/scripts/package.sh" "$work/pkg" >"$work/package.log" 2>&1 ||
    { tail -n 40 "$work/package.log" >&2; fail "scripts/package.sh failed"; }
  deb=$(compgen -G "$work/pkg/qabox_*.deb" | head -n 1)
fi
[[ $(dpkg-deb -f "$deb" Package) == qabox ]] || fail "$deb is not the qabox package"

# 2. Install. Without recommends: uidmap must stay off this host (it changes
# how liblxc maps every container's ids; scripts/install-deps.sh).
say "apt-get install $deb"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$deb" \
  >"$work/install.log" 2>&1 || { cat "$work/install.log" >&2; fail "apt-get install failed"; }

for f in /usr/bin/qaboxd /usr/bin/qabox /usr/libexec/qabox/qabox-lxc /usr/libexec/qabox/qabox-init; do
  [[ -x $f ]] || fail "$f is not installed"
done
for f in /usr/share/qabox/images/busybox/image.toml /usr/share/man/man1/qabox.1.gz \
  /usr/share/man/man8/qaboxd.8.gz /usr/share/bash-completion/completions/qabox \
  /etc/default/qaboxd /usr/share/doc/qabox/copyright; do
  [[ -f $f ]] || fail "$f is not installed"
done
unit=$(dpkg -L qabox | grep -m1 '/systemd/system/qaboxd.service$') || fail "no qaboxd.service"
dpkg -L qabox | grep -q '/systemd/system/qabox-reap.timer$' || fail "no qabox-reap.timer"
cmp -s /etc/qabox/qaboxd.toml <(/usr/bin/qaboxd --print-default-config) ||
  fail "/etc/qabox/qaboxd.toml is not the embedded default config"
grep -qx /etc/qabox/qaboxd.toml /var/lib/dpkg/info/qabox.conffiles || fail "qaboxd.toml is no conffile"
getent group qabox >/dev/null || fail "postinst made no qabox group"
range="root:1000000000:$((65536 * 201))"
for f in /etc/subuid /etc/subgid; do
  grep -q "^root:" "$f" || fail "$f gives root no range after install"
  if [[ ! -e $snap/$(basename "$f") ]] || ! grep -q '^root:' "$snap/$(basename "$f")"; then
    grep -qx "$range" "$f" || fail "$f: no $range (containers.id_base, 201 ranges)"
  fi
done
man -l /usr/share/man/man1/qabox.1.gz 2>/dev/null | grep -q "qabox deploy" ||
  zcat /usr/share/man/man1/qabox.1.gz | grep -q 'qabox deploy' || fail "qabox(1) lists no deploy command"

# 3. The agent, as the unit starts it, with this test's overrides in the
# unit's EnvironmentFile and the sample's repo in the config (a conffile ops
# edit for their repos).
cat >>/etc/default/qaboxd <<EOF
QABOX_STATE_DIR=$state
QABOX_LISTEN=unix://$socket
QABOX_BRIDGE=$bridge
QABOX_SUBNET=$subnet
QABOX_ROUTER_LISTEN=127.0.0.1:$router_port
QABOX_DOMAIN=pkg.test
QABOX_METRICS_LISTEN=127.0.0.1:0
EOF
remote=$work/sample.git
cat >>/etc/qabox/qaboxd.toml <<EOF

[[repos]]
name = "sample"
url = "$remote"
EOF

ticket=PKG-$id
src=$work/src
git init -q -b develop "$src"
cp -r "$repo_root/scripts/sample-busybox/." "$src/"
git -C "$src" add -A
git -C "$src" -c user.name=t -c user.email=t@example.com commit -qm sample
git -C "$src" checkout -qb "feature/$ticket"
echo "feature $ticket" >"$src/www/feature.txt"
git -C "$src" add -A
git -C "$src" -c user.name=t -c user.email=t@example.com commit -qm feature
git init -q --bare "$remote"
git -C "$src" push -q "$remote" develop "feature/$ticket"

exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
env_file=$(sed -n 's/^EnvironmentFile=-\{0,1\}//p' "$unit")
[[ $exec_start == "/usr/bin/qaboxd --config /etc/qabox/qaboxd.toml" ]] ||
  fail "ExecStart is \"$exec_start\"; this test starts what it says and expects the packaged config"
[[ $env_file == /etc/default/qaboxd ]] || fail "EnvironmentFile is \"$env_file\""
say "starting $exec_start (EnvironmentFile $env_file)"
# shellcheck disable=SC1090,SC2086  # the unit's EnvironmentFile; ExecStart's words, as systemd splits them
(set -a && . "$env_file" && set +a && exec $exec_start </dev/null >"$log" 2>&1) &
daemon_pid=$!

qabox() { /usr/bin/qabox --endpoint "unix://$socket" "$@"; }
for _ in $(seq 300); do
  qabox status -o json >/dev/null 2>&1 && break
  kill -0 "$daemon_pid" 2>/dev/null || fail "qaboxd exited at start"
  sleep 0.1
done
qabox status -o json >/dev/null || fail "qaboxd did not answer within 30 s"
grep -q "$state" "$log" || fail "qaboxd did not take QABOX_STATE_DIR from $env_file"
[[ -S $socket ]] || fail "no API socket at $socket (QABOX_LISTEN)"
# api.socket_group's default is the group postinst makes.
[[ $(stat -c %G "$socket") == qabox ]] || fail "the API socket's group is $(stat -c %G "$socket"), not qabox"

# 4. An environment through the installed CLI, and its page through the router.
say "qabox image build busybox"
qabox image build busybox >"$work/image.log" 2>&1 || { cat "$work/image.log" >&2; fail "image build"; }
say "qabox deploy $ticket"
qabox deploy "$ticket" --repo sample --source "feature/$ticket" --target develop --image busybox \
  >"$work/deploy.log" 2>&1 || { cat "$work/deploy.log" >&2; fail "deploy"; }
slug=$(qabox get "$ticket" -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["url"])')
host=${slug#http://}
host=${host%%/*}
host=${host%%:*}
page=$(curl -sS --max-time 10 -H "Host: $host" "http://127.0.0.1:$router_port/") ||
  fail "the router did not answer for $host"
[[ $page == *"Sample app: $ticket"* ]] || fail "the router's page for $host is not the sample's: $page"
feature=$(curl -sS --max-time 10 -H "Host: $host" "http://127.0.0.1:$router_port/feature.txt")
[[ $feature == "feature $ticket" ]] || fail "the page is not the merge of feature/$ticket: $feature"
say "the router serves $ticket at $host"
qabox delete "$ticket" >/dev/null || fail "delete"

kill -TERM "$daemon_pid"
for _ in $(seq 300); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$daemon_pid" 2>/dev/null && fail "qaboxd did not stop within 30 s of SIGTERM"
wait "$daemon_pid" || true
daemon_pid=

# 5. Remove: the binaries go, state and config stay.
files=$(dpkg -L qabox)
say "apt-get remove qabox"
DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq qabox >"$work/remove.log" 2>&1 ||
  { cat "$work/remove.log" >&2; fail "apt-get remove failed"; }
for f in /usr/bin/qaboxd /usr/bin/qabox /usr/libexec/qabox/qabox-lxc /usr/share/qabox/images; do
  [[ ! -e $f ]] || fail "$f is left after remove"
done
[[ -f $state/qabox.db ]] || fail "the agent's state ($state/qabox.db) went with remove"
[[ -f /var/lib/qabox/.package-subids ]] || fail "/var/lib/qabox went with remove"
grep -q '^\[\[repos\]\]' /etc/qabox/qaboxd.toml || fail "the edited config went with remove"
grep -q "^QABOX_STATE_DIR=" /etc/default/qaboxd || fail "/etc/default/qaboxd went with remove"
getent group qabox >/dev/null || fail "the qabox group went with remove"
grep -q '^root:' /etc/subuid || fail "/etc/subuid lost root's range with remove"

# 6. Purge: nothing of the package is left, shadow's files are as before.
say "apt-get purge qabox"
DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq qabox >"$work/purge.log" 2>&1 ||
  { cat "$work/purge.log" >&2; fail "apt-get purge failed"; }
dpkg-query -W -f='${Status}' qabox 2>/dev/null | grep -q 'installed\|config-files' &&
  fail "dpkg still knows qabox after purge"
for f in /var/lib/qabox /etc/qabox /etc/default/qaboxd; do
  [[ ! -e $f ]] || fail "$f is left after purge"
done
while IFS= read -r f; do
  # Directories the package shares with others (/usr/bin, /etc) stay.
  [[ -d $f ]] && continue
  [[ ! -e $f && ! -L $f ]] || fail "$f is left after purge"
done <<<"$files"
[[ -z $group_before ]] && getent group qabox >/dev/null && fail "the qabox group is left after purge"
# Shadow's files: every line from before is there, the package's own line
# as often as before, and a file the package made is gone unless an agent
# (another test's, with its own ranges) wrote lines of its own there since.
for f in /etc/subuid /etc/subgid; do
  before=$snap/$(basename "$f")
  if [[ -e $before ]]; then
    [[ -e $f ]] || fail "$f is gone after purge"
    missing=$(grep -vxF -f "$f" "$before" || true)
    [[ -z $missing ]] || fail "$f lost lines it had before the install: $missing"
    [[ $(grep -cxF "$range" "$f") == $(grep -cxF "$range" "$before") ]] ||
      fail "$f still has the package's $range after purge"
  elif [[ -e $f ]]; then
    [[ -s $f ]] || fail "$f was made by the package and is left, empty, after purge"
    grep -qxF "$range" "$f" && fail "$f still has the package's $range after purge"
    say "$f is left with lines another agent wrote meanwhile: $(tr '\n' ' ' <"$f")"
  fi
done
say "passed"
