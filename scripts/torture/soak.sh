#!/usr/bin/env bash
# Soak, full run (docs/reliability.md): 500 deploy/delete cycles of a busybox
# environment; the agent's fds, threads and RSS sampled after each, their
# least-squares slopes printed, the invariants checked at the end.
#   usage: scripts/torture/soak.sh [CYCLES]   (as root)
source "$(dirname "$0")/load_lib.sh"
export QABOX_SOAK_CYCLES=${1:-500}
torture_run soak_torture
