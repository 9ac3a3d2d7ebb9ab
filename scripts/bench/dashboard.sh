#!/usr/bin/env bash
# The dashboard's list with 300 environments, rendered server-side: the
# handler alone and over loopback HTTP through the dashboard's server,
# p50/p95 over 200 rounds. Target: under 100 ms. No root, no containers: the
# rows are seeded in a temporary SQLite store behind the real lifecycle.
#
#   scripts/bench/dashboard.sh [environments] [rounds]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${QABOX_BUILD_DIR:-$root/build}"
if [[ ! -f "$build/CMakeCache.txt" ]]; then
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
nice cmake --build "$build" -j2 --target qabox-dashboard-bench >/dev/null
"$build/tests/unit/web/qabox-dashboard-bench" "${1:-300}" "${2:-200}"
