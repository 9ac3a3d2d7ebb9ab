#!/bin/sh
# The lost-database, full-disk and SQLite I/O error tests, repeated: the
# full form of what scripts/test.sh runs once. Needs root and LXC.
#   scripts/torture/state.sh [BUILD_DIR] [ROUNDS]
set -eu
build=${1:-build}
rounds=${2:-10}
export CI=true
"$build/tests/unit/store/store_test" --gtest_filter='StoreIoErrors*' --gtest_repeat="$rounds" |
  grep -E 'figures|FAILED|PASSED' | sort | uniq -c
start=$(date +%s)
"$build/tests/torture/state_torture" --gtest_repeat="$rounds" | grep -E '^\[ +(OK|FAILED) ' |
  sed 's/ ([0-9]* ms)//' | sort | uniq -c
echo "state_torture: $rounds rounds in $(( $(date +%s) - start )) s"
