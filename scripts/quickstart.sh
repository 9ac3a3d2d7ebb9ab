#!/usr/bin/env bash
# The main job, on a fresh Debian 12 machine as root: installs what qabox
# needs, builds it, starts qaboxd with its embedded default config, builds the
# python image (debian -> services -> python, from Debian's packages through
# the host's own apt sources: a few minutes the first time, cached after),
# deploys the sample app (Flask on gunicorn, Postgres 15, Redis) from its
# feature branch merged into develop as ticket EXMP-113, and prints the URL
# and the page the router serves there: rows read from that environment's own
# Postgres. Safe to run again: it reuses what is there.
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

say "building qaboxd, qabox and their helpers"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
# qabox-init: PID 1 of the Debian environments the images below install.
targets=(qaboxd qabox qabox-lxc qabox-init)
cmake --build build -j"$(nproc)" --target "${targets[@]}" >/dev/null
qabox=$repo_root/build/agent/cli/qabox
qaboxd=$repo_root/build/agent/daemon/qaboxd

# The remote is made again whenever the sample's files change (a machine that
# ran an older quickstart has the busybox sample there); the agent's mirror
# follows the new branches on its next fetch.
say "making the sample app's remote: a bare repo with develop and feature/$ticket"
mkdir -p "$work"
remote=$work/sample-app.git
stamp=$work/sample-app.stamp
sample_hash=$(tar -C scripts/sample-app --exclude=__pycache__ --sort=name --mtime=@0 \
  --owner=0 --group=0 --numeric-owner -cf - . | sha256sum | cut -d' ' -f1)
sample_hash="$sample_hash $ticket"
if [[ ! -d $remote || $(cat "$stamp" 2>/dev/null) != "$sample_hash" ]]; then
  rm -rf "$remote" "$stamp"
  scripts/sample-app/make-remote.sh "$remote" "$ticket" >&2
  echo "$sample_hash" > "$stamp"
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

# Cached by recipe: once built, this takes well under a second.
say "building the python image and the images it stands on (first run only)"
"$qabox" image build python >&2

say "deploying sample feature/$ticket merged into develop as $ticket on the python image"
# The same environment from an earlier run is left as it is; one of this
# ticket on another image or repo (an older quickstart's) is replaced.
force=()
if existing=$("$qabox" get "$ticket" -o json 2>/dev/null) &&
  ! python3 -c 'import json,sys; e=json.load(sys.stdin); sys.exit(e.get("image") != "python" or e.get("repo") != "sample")' <<<"$existing"; then
  say "replacing the $ticket environment an earlier run left on another image or repo"
  force=(--force)
fi
"$qabox" deploy "$ticket" --repo sample --source "feature/$ticket" --target develop --image python "${force[@]}"

url=$("$qabox" get "$ticket" -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["url"])')
host=${url#http://}
host=${host%%/*}
router_port=${host##*:}
[[ $router_port == "$host" ]] && router_port=80
echo
echo "URL: $url   (the pull request's page: $url/priority)"
echo "(a wildcard DNS record for *.qa.company.int points at this host; here the"
echo " router is asked directly at 127.0.0.1:$router_port with that Host header)"
echo
echo "The router serves at $url (as text; a browser gets the HTML page):"
curl -sS --max-time 10 -H "Host: ${host%%:*}" -H "Accept: text/plain" "http://127.0.0.1:$router_port/"

domain=${host#*.}
domain=${domain%%:*}
dashboard="http://qabox.${host#*.}/"
echo
echo "The dashboard: $dashboard   (sign in with a token: $qabox token create --role qa --name you)"
echo "Its sign-in page, as the router serves it:"
curl -sS --max-time 10 -o /dev/null -w '  %{http_code} %{content_type}\n' -H "Host: qabox.$domain" \
  "http://127.0.0.1:$router_port/login"
