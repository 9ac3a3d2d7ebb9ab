#!/usr/bin/env bash
# Concurrency, full run (docs/reliability.md): nproc x 8 clients for 300 s
# of random deploy, redeploy, delete, exec, sleep, wake, reap, list and logs
# calls on six shared tickets through the real agent; every answer judged
# against the API, the invariants checked, the agent's fds, threads and RSS
# compared with their level before.
#   usage: scripts/torture/concurrency.sh [SECONDS] [CLIENTS]   (as root)
source "$(dirname "$0")/load_lib.sh"
export QABOX_TORTURE_SECONDS=${1:-300}
[[ -n ${2:-} ]] && export QABOX_TORTURE_CLIENTS=$2
torture_run concurrency_torture
