#!/usr/bin/env bash
# The main job, on a fresh Debian 12 machine as root: installs what qabox
# needs, builds it, starts qaboxd with its embedded default config, builds
# the busybox base image, deploys the bundled sample app's feature branch
# (merged into develop) as ticket EXMP-113, and prints the URL and the page
# the router serves there. Safe to run again: it reuses what is there.
set -euo pipefail
repo_root=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo_root"

ticket=${QABOX_TICKET:-EXMP-113}
work=/var/lib/qabox-quickstart          # the sample app's remote lives here
socket=/run/qabox/qabox.sock            # the embedded default api.listen
export QABOX_ENDPOINT="unix://$socket"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

say "installing Debian packages (if any are missing)"
scripts/install-deps.sh

say "building qaboxd and qabox"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target qaboxd qabox qabox-lxc >/dev/null
qabox=$repo_root/build/agent/cli/qabox
qaboxd=$repo_root/build/agent/daemon/qaboxd

say "making the sample app's remote: a bare repo with develop and feature/$ticket"
mkdir -p "$work"
remote=$work/sample-app.git
if [[ ! -d $remote ]]; then
  scratch=$(mktemp -d)
  trap 'rm -rf "$scratch"' EXIT
  git init -q -b develop "$scratch/app"
  cp -r scripts/sample-busybox/. "$scratch/app/"
  git -C "$scratch/app" add -A
  git -C "$scratch/app" -c user.name=qabox -c user.email=qabox@localhost commit -qm "Sample app"
  git -C "$scratch/app" checkout -qb "feature/$ticket"
  echo "<p>This line comes from feature/$ticket.</p>" > "$scratch/app/www/feature.html"
  git -C "$scratch/app" add -A
  git -C "$scratch/app" -c user.name=qabox -c user.email=qabox@localhost commit -qm "$ticket: a feature page"
  git clone -q --bare "$scratch/app" "$remote"
fi

if "$qabox" status -o json >/dev/null 2>&1; then
  say "qaboxd already runs at $QABOX_ENDPOINT"
else
  say "starting qaboxd (embedded default config; log: $work/qaboxd.log)"
  setsid "$qaboxd" --images-dir "$repo_root/images" --repo "sample=$remote" \
    >>"$work/qaboxd.log" 2>&1 < /dev/null &
  for _ in $(seq 100); do
    "$qabox" status -o json >/dev/null 2>&1 && break
    if ! kill -0 $! 2>/dev/null; then
      echo "quickstart: qaboxd exited; its log says:" >&2
      tail -n 20 "$work/qaboxd.log" >&2
      exit 1
    fi
    sleep 0.1
  done
fi

if ! "$qabox" image ls -o json | grep -q '"name": *"busybox"'; then
  say "building the busybox base image"
  "$qabox" image build busybox
fi

say "deploying sample feature/$ticket merged into develop as $ticket"
"$qabox" deploy "$ticket" --repo sample --source "feature/$ticket" --target develop

url=$("$qabox" get "$ticket" -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["url"])')
host=${url#http://}
host=${host%%/*}
router_port=${host##*:}
[[ $router_port == "$host" ]] && router_port=80
echo
echo "URL: $url"
echo "(a wildcard DNS record for *.qa.company.int points at this host; here the"
echo " router is asked directly at 127.0.0.1:$router_port with that Host header)"
echo
echo "The router serves at $url:"
curl -sS --max-time 10 -H "Host: ${host%%:*}" "http://127.0.0.1:$router_port/"
