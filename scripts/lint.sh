#!/usr/bin/env bash
# The style checks, scripts/test.sh's first step and quick to run before a
# commit: clang-format over every C++ file we wrote, then clang-tidy's rules
# from .clang-tidy (a function in agent/ fits readability-function-size)
# over agent/, about three minutes on two cores; give files to check only
# those:
#
#   scripts/lint.sh                        (everything)
#   scripts/lint.sh agent/lifecycle/pool.cpp
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

echo "==> clang-format (.clang-format)"
find agent tests \( -name '*.cpp' -o -name '*.h' \) -print0 | sort -z |
  xargs -0 clang-format --dry-run --Werror

# clang-tidy reads each source's compile command, which a unity build
# (scripts/test.sh's) does not list, so it gets a plain configure of its own,
# with the generated proto headers it includes.
echo "==> configure build-lint (compile_commands.json, generated protos)"
cmake -S . -B build-lint -DCMAKE_BUILD_TYPE=Debug -DCMAKE_UNITY_BUILD=OFF >/dev/null
cmake --build build-lint -j"$jobs" --target qabox_proto qabox_etcd_proto >/dev/null
echo "==> clang-tidy (.clang-tidy: readability-function-size)"
if [[ $# -gt 0 ]]; then
  printf '%s\0' "$@"
else
  find agent -name '*.cpp' -print0 | sort -z
fi | xargs -0 -n1 -P"$jobs" clang-tidy -p build-lint --quiet --warnings-as-errors='*' \
  --extra-arg=-Wno-unknown-warning-option
