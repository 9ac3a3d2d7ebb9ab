#!/usr/bin/env bash
# Checks the style (scripts/lint.sh: clang-format, and clang-tidy's
# function-size rule from .clang-tidy), then builds with warnings as errors
# and runs every test (ctest): unit tests, also under ASan/UBSan,
# integration tests on real LXC containers, real git, real SQLite and the
# real daemon over gRPC, the torture suite in its short form
# (tests/torture, label torture: crash points, concurrency, soak, a full
# disk, a lost database), and the Debian package installed, run and purged
# (LxcPackage).
# Integration tests need root; with CI=true a missing prerequisite fails them
# instead of skipping.
#
# From a cold cache this takes under 50 minutes on two cores (46 measured,
# the packages already installed): the builds are unity builds
# (CMAKE_UNITY_BUILD, a few sources per compiler run), the sanitizer build
# compiles the unit tests alone, and the second pass with newuidmap runs
# the suites whose containers map ids, not all of them.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh

jobs=$(nproc)
# ccache (installed by install-deps.sh) makes a second run, or another clone
# on the same machine, rebuild only what changed.
launcher=()
if command -v ccache >/dev/null; then
  export CCACHE_BASEDIR=$PWD
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
# Our own builds treat warnings as errors; a packager's build does not. A
# unity build compiles a few sources in one compiler run, each header once.
werror=(-DQABOX_WERROR=ON)
unity=(-DCMAKE_UNITY_BUILD=ON)

scripts/lint.sh

echo "==> build (RelWithDebInfo)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo "${werror[@]}" "${unity[@]}" "${launcher[@]}" >/dev/null
cmake --build build -j"$jobs"

echo "==> unit tests under ASan/UBSan"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DQABOX_SANITIZE=ON "${werror[@]}" \
  "${unity[@]}" "${launcher[@]}" >/dev/null
cmake --build build-asan -j"$jobs" --target qabox_unit_tests
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest -L unit --output-on-failure -j"$jobs")

cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
  -DQABOX_FUZZ=ON "${werror[@]}" "${unity[@]}" "${launcher[@]}" >/dev/null
cmake --build build-fuzz -j"$jobs" --target http_fuzz http_backend_fuzz login_fuzz webhook_fuzz
fuzz_work=$(mktemp -d)
trap 'rm -rf "$fuzz_work"' EXIT
# fuzz NAME CORPUS WHAT: a bounded libFuzzer run of build-fuzz/tests/fuzz/NAME
# over a copy of tests/fuzz/corpus/CORPUS. A crash, leak or sanitizer report
# exits non-zero and leaves the input in build-fuzz/ (crash-*) for that
# corpus once fixed.
fuzz() {
  local name=$1 corpus=$2 what=$3
  echo "==> libFuzzer over the router's ${what}, ${QABOX_FUZZ_SECONDS:-30} s"
  mkdir -p "$fuzz_work/$corpus"
  cp "tests/fuzz/corpus/$corpus"/* "$fuzz_work/$corpus/"
  if ! "build-fuzz/tests/fuzz/$name" -max_total_time="${QABOX_FUZZ_SECONDS:-30}" \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix=build-fuzz/ "$fuzz_work/$corpus" \
    >"build-fuzz/$name.log" 2>&1; then
    # The sanitizer's report with its stack, then the input that caused it.
    sed -n '/ERROR: /,$p' "build-fuzz/$name.log" | head -n 80
    grep -m1 "^http_backend_fuzz: " "build-fuzz/$name.log" || true
    echo "fuzz: $name failed; the input is in build-fuzz/crash-*, the whole log in build-fuzz/$name.log" >&2
    exit 1
  fi
  tail -n 12 "build-fuzz/$name.log"
}
fuzz http_fuzz http "request path (parse, check, route)"
fuzz http_backend_fuzz backend "backend response path (heads, chunked framing, trailers, 1xx, upgrades, early close)"
fuzz login_fuzz login "login check (Cookie headers, sealed values, a grant's query)"
fuzz webhook_fuzz webhook "webhook deliveries (payload parsers, signature checks)"

# The package once, here; the LxcPackage test installs, runs and purges it
# (QABOX_PACKAGE_DEB), instead of building it again.
echo "==> Debian package (scripts/package.sh, lintian)"
QABOX_PACKAGE_DEB=$(scripts/package.sh build/package)
export QABOX_PACKAGE_DEB

# Unit tests side by side; the rest (integration, torture, package) one at a
# time, as they start real containers and agents.
echo "==> every test"
(cd build && ctest -L unit -j"$jobs" --output-on-failure && ctest -LE unit --output-on-failure)

echo "==> integration tests again with newuidmap in use (a host with Debian's uidmap installed)"
scripts/test-with-uidmap.sh build
