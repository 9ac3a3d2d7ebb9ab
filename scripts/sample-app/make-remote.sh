#!/usr/bin/env bash
# Makes the sample app's remote: a bare git repository at DIR with
#   develop             the app with migrations 001 and 002 and the seed
#   feature/TICKET      develop plus what feature/ holds (migration 003, the
#                       priority page): the pull request qabox deploys
#   usage: scripts/sample-app/make-remote.sh DIR [TICKET]   (TICKET: EXMP-113)
# DIR must not exist yet. Used by scripts/quickstart.sh, the realapp
# integration test and scripts/bench/realapp.sh.
set -euo pipefail
if [[ $# -lt 1 || $# -gt 2 ]]; then
  echo "usage: $0 DIR [TICKET]" >&2
  exit 2
fi
dir=$1
ticket=${2:-EXMP-113}
src=$(cd "$(dirname "$0")" && pwd)
if [[ -e $dir ]]; then
  echo "make-remote: $dir exists already" >&2
  exit 1
fi

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
work=$scratch/app
git init -q -b develop "$work"
g() { git -C "$work" -c user.name=qabox -c user.email=qabox@localhost "$@"; }

# develop: everything here except the feature's files and this script.
tar -C "$src" --exclude=./feature --exclude=./make-remote.sh --exclude=__pycache__ -cf - . |
  tar -C "$work" -xf -
g add -A
g commit -qm "Sample app: items in Postgres, a visit counter and a worker heartbeat in Redis"

g checkout -qb "feature/$ticket"
tar -C "$src/feature" --exclude=__pycache__ -cf - . | tar -C "$work" -xf -
g add -A
g commit -qm "$ticket: items have a priority (migration 003) and a page listing them by it"
g checkout -q develop

git clone -q --bare "$work" "$dir"
echo "made $dir: develop $(g rev-parse --short develop), feature/$ticket $(g rev-parse --short "feature/$ticket")"
