#!/usr/bin/env bash
# Installs every Debian package qabox needs to build, test and run.
# Idempotent, and quiet when everything is already there.
set -euo pipefail

packages=(
  # build
  cmake make g++ pkg-config ccache
  libgrpc++-dev protobuf-compiler-grpc protobuf-compiler libprotobuf-dev
  lxc-dev libsqlite3-dev libtomlplusplus-dev libspdlog-dev libfmt-dev libcli11-dev
  libboost-dev libssl-dev libmnl-dev libnftables-dev nlohmann-json3-dev
  libbtrfsutil-dev  # block-level dataset volumes (storage.data_pool)
  prometheus-cpp-dev  # /metrics (agent/metrics)
  libsodium-dev  # signed sessions of the dashboard and previews behind a login
  golang-etcd-server-dev  # etcd's v3 protos, for the cluster's etcd client (proto/CMakeLists.txt)
  # tests
  libgtest-dev libgmock-dev clang-format clang-tidy curl python3 openssl sqlite3
  python3-grpcio python3-protobuf  # the example Python client (tests/integration/cli_test.cpp)
  etcd-server  # a real etcd cluster for the cluster tests (tests/integration/etcd_fixture.cpp)
  prometheus  # a real Prometheus scrapes the agent, and promtool (tests/integration/metrics_test.cpp)
  clang libclang-rt-14-dev  # libFuzzer over the router's request path (scripts/test.sh)
  # runtime: containers, their network, the base image, git
  lxc busybox-static iproute2 nftables git tar ca-certificates
  btrfs-progs  # mkfs.btrfs for a data pool; the integration tests make one on a loop device
  # the Debian images (images/debian), built in root mode: without recommends,
  # so uidmap, which mmdebstrap recommends, stays out
  mmdebstrap
  chromium  # the dashboard's browser test (tests/integration/dashboard_test.cpp)
)
# node and npm for the browser test's driver: Debian's unless a node is
# already installed (Debian 12's nodejs is 18, enough for playwright-core).
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  packages+=(nodejs npm)
fi
if [[ "${QABOX_BENCH:-}" == 1 ]]; then packages+=(wrk nginx-light hyperfine); fi

# uidmap (newuidmap/newgidmap) is never installed: the integration tests run
# it unpacked from its package file, in one test only (LxcUidmap), since
# installing it changes how liblxc maps ids for every container on the host.
uidmap_cache=/var/cache/qabox-test
fetch_uidmap() {
  compgen -G "$uidmap_cache/uidmap_*.deb" >/dev/null && return 0
  [[ $(id -u) -eq 0 ]] || return 0
  mkdir -p "$uidmap_cache"
  (cd "$uidmap_cache" && apt-get download -q uidmap >/dev/null 2>&1) ||
    (apt-get update -qq && cd "$uidmap_cache" && apt-get download -q uidmap >/dev/null) ||
    echo "install-deps: could not download uidmap's package file (LxcUidmap needs it)" >&2
}

# playwright-core from npm, as tests/browser/package-lock.json pins it, in a
# cache dir the browser test reads (QABOX_BROWSER_MODULES); again only when
# the lock file changed. No browser is downloaded: the test drives Debian's.
browser_cache=${QABOX_BROWSER_CACHE:-/var/cache/qabox-test/browser}
install_browser_driver() {
  local src
  src="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/browser"
  command -v npm >/dev/null 2>&1 || return 0
  mkdir -p "$browser_cache" 2>/dev/null || return 0
  if [[ -d "$browser_cache/node_modules/playwright-core" ]] &&
    cmp -s "$src/package-lock.json" "$browser_cache/package-lock.json"; then
    return 0
  fi
  cp "$src/package.json" "$src/package-lock.json" "$browser_cache/"
  (cd "$browser_cache" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null) ||
    echo "install-deps: npm could not install playwright-core (the browser test needs it)" >&2
}

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if [[ ${#missing[@]} -eq 0 ]]; then
  fetch_uidmap
  install_browser_driver
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps: missing packages: ${missing[*]}; run as root (or: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fetch_uidmap
install_browser_driver
