#!/usr/bin/env bash
# Builds and runs every test (ctest): unit tests, also under ASan/UBSan, and
# integration tests on real LXC containers, real git, real SQLite and the
# real daemon over gRPC. Integration tests need root; with CI=true a missing
# prerequisite fails them instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh

jobs=$(nproc)
echo "==> build (RelWithDebInfo)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"

echo "==> unit tests under ASan/UBSan"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DQABOX_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$jobs"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest -L unit --output-on-failure -j"$jobs")

echo "==> every test"
(cd build && ctest --output-on-failure)
