#!/usr/bin/env bash
# Times reap passes: 500 environments in a real SQLite store, spread over 4
# local bare repos (a few merged, deleted, idle, expired and too old per
# repo; the rest not due), a reclaim callback that does nothing. Prints each
# pass's total time, the span of its git fetches, the time without them and
# the number of git processes. The target: under a second without fetches.
#
#   scripts/bench/reap.sh [--envs 500] [--repos 4] [--passes 5]
#
# Builds reap_bench in $BUILD_DIR (default build-bench, RelWithDebInfo).
set -euo pipefail
repo_root=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD_DIR:-$repo_root/build-bench}
cmake -S "$repo_root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQABOX_SANITIZE=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target reap_bench >/dev/null
exec "$build/tests/unit/reaper/reap_bench" "$@"
