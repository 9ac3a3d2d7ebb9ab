#!/usr/bin/env bash
# Installs every Debian package qabox needs to build, test and run.
# Idempotent, and quiet when everything is already there.
set -euo pipefail

packages=(
  # build
  cmake make g++ pkg-config
  libgrpc++-dev protobuf-compiler-grpc protobuf-compiler libprotobuf-dev
  lxc-dev libsqlite3-dev libtomlplusplus-dev libspdlog-dev libfmt-dev libcli11-dev
  libboost-dev libssl-dev
  # tests
  libgtest-dev libgmock-dev clang-format curl python3 openssl sqlite3
  python3-grpcio python3-protobuf  # the example Python client (tests/integration/cli_test.cpp)
  clang libclang-rt-14-dev  # libFuzzer over the router's request path (scripts/test.sh)
  # runtime: containers, their network, the base image, git
  lxc busybox-static iproute2 nftables git tar ca-certificates
)
if [[ "${QABOX_BENCH:-}" == 1 ]]; then packages+=(wrk nginx-light hyperfine); fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps: missing packages: ${missing[*]}; run as root (or: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
