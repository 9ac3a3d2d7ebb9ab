# Shared by the torture scripts: build what the run needs in ./build (the
# configuration already there is kept), then run one torture binary.
set -euo pipefail
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# torture_run BINARY [gtest args...]
torture_run() {
  local bin=$1
  shift
  [[ $(id -u) == 0 ]] || { echo "run as root: the torture tests start real containers" >&2; exit 2; }
  if [[ ! -f $REPO_ROOT/build/CMakeCache.txt ]]; then
    cmake -S "$REPO_ROOT" -B "$REPO_ROOT/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  fi
  cmake --build "$REPO_ROOT/build" -j"$(nproc)" --target qaboxd qabox qabox-lxc qabox-init "$bin" >/dev/null
  "$REPO_ROOT/build/tests/torture/$bin" "$@"
}
