#!/usr/bin/env bash
# The full crash-point run (docs/reliability.md): every failpoint hit of every
# scenario (create from an image, create from a repo with hooks, redeploy,
# delete, sleep, wake, reap, image build, token revoke) becomes, in turn, the
# place the agent is SIGKILLed; then 30 rounds of kill -9 at random moments
# while four clients deploy and delete. The short form (30 points, 3 rounds)
# is the ctest entry crash_torture that scripts/test.sh runs.
#
#   scripts/torture/crash.sh [-b BUILD_DIR] [-p POINTS] [-r ROUNDS] [-s SEED]
#
# Needs root and LXC, and a build with failpoints (any build type but
# Release: CMake option QABOX_FAILPOINTS). Prints the points run, the points
# that killed the agent, the leaks found (each a failed check, named), and
# the random rounds' seed.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build="${BUILD_DIR:-$root/build}"
points=all
rounds=30
seed=""
while getopts "b:p:r:s:h" opt; do
  case "$opt" in
    b) build="$OPTARG" ;;
    p) points="$OPTARG" ;;
    r) rounds="$OPTARG" ;;
    s) seed="$OPTARG" ;;
    *) sed -n '2,15p' "$0"; exit 2 ;;
  esac
done
bin="$build/tests/torture/crash_torture"
[ -x "$bin" ] || { echo "crash.sh: $bin is not built (cmake --build $build --target crash_torture)" >&2; exit 2; }

log="$(mktemp /tmp/qabox-crash.XXXXXX.log)"
export CI="${CI:-true}" QABOX_TORTURE_POINTS="$points" QABOX_TORTURE_ROUNDS="$rounds"
[ -n "$seed" ] && export QABOX_TORTURE_SEED="$seed"
start=$(date +%s)
set +e
"$bin" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
took=$(( $(date +%s) - start ))
leaks=$(grep -c '^crash: FAILED at' "$log" || true)
echo "----"
grep -E '^(crash points:|kill -9 under load:)' "$log" || true
echo "crash points with a leak or half-made state: $leaks"
echo "took ${took}s; full log: $log"
exit "$rc"
