#!/usr/bin/env bash
# Time from a webhook's arrival to its effect, for the busybox sample:
#   merge: a GitHub "pull_request closed, merged" delivery -> the environment
#          is gone (its URL no longer served);
#   push:  a GitHub "push" delivery -> the new head is served.
# Each delivery is signed with the repo's secret and POSTed through the
# router to https://qabox.<domain>/hooks/github (plain HTTP here). p50 over N.
#   usage: scripts/bench/webhook.sh [N]   (default 10; run as root)
source "$(dirname "$0")/lib.sh"
N=${1:-10}
[[ -n ${QABOX_BENCH_NO_BUILD:-} ]] || bench_build
SECRET=bench-webhook-secret-0123

bench_sample_repo
app=$SAMPLE_SRC/app
git -C "$app" remote add origin "$SAMPLE_REPO"
gitc() { git -C "$app" -c user.name=b -c user.email=b@localhost "$@"; }

bench_start_sample_agent "full_name = \"bench/sample\"
webhook_secret = \"$SECRET\"
[reaper]
interval = \"0\""

deliver() {  # EVENT BODY ID: prints the HTTP status
  local sig
  sig=$(printf '%s' "$2" | openssl dgst -sha256 -hmac "$SECRET" -r | cut -d' ' -f1)
  curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$ROUTER_PORT/hooks/github" \
    -H "Host: qabox.qa.bench" -H "Content-Type: application/json" -H "X-GitHub-Event: $1" \
    -H "X-GitHub-Delivery: $3" -H "X-Hub-Signature-256: sha256=$sig" --data-binary "$2"
}
page() { curl -s -m 2 -H "Host: $1.qa.bench" "http://127.0.0.1:$ROUTER_PORT/${2:-}"; }
code() { curl -s -o /dev/null -m 2 -w '%{http_code}' -H "Host: $1.qa.bench" "http://127.0.0.1:$ROUTER_PORT/"; }

# One warm-up deploy fills the git mirror, as on a host that has deployed before.
"${QB[@]}" deploy WARM-0 --repo sample --source feature/BENCH --target develop >/dev/null 2>&1

for i in $(seq "$N"); do
  b=feature/MRG-$i
  gitc checkout -q -b "$b" feature/BENCH
  echo "mrg $i" > "$app/www/mrg-$i.txt"
  gitc add -A && gitc commit -qm "mrg $i" && gitc push -q origin "$b"
  "${QB[@]}" deploy "MRG-$i" --repo sample --source "$b" --target develop >/dev/null 2>&1
  head=$(gitc rev-parse HEAD)
  gitc checkout -q develop && gitc merge -q --no-ff -m "Merge $b" "$b" && gitc push -q origin develop
  body=$(printf '{"action":"closed","number":%d,"pull_request":{"number":%d,"merged":true,"head":{"ref":"%s","sha":"%s"},"base":{"ref":"develop"}},"repository":{"full_name":"bench/sample"}}' "$i" "$i" "$b" "$head")
  t0=$(now_ms)
  st=$(deliver pull_request "$body" "merge-$i")
  while [[ $(code "mrg-$i") == 200 ]]; do :; done
  echo $(( $(now_ms) - t0 )) >> "$out/merge"
  [[ $st == 202 ]] || echo "merge $i: delivery answered $st" >&2
done

gitc checkout -q -b feature/PUSH-1 feature/BENCH && gitc push -q origin feature/PUSH-1
"${QB[@]}" deploy PUSH-1 --repo sample --source feature/PUSH-1 --target develop >/dev/null 2>&1
for i in $(seq "$N"); do
  gitc checkout -q feature/PUSH-1
  echo "push $i" > "$app/www/push.txt"
  gitc add -A && gitc commit -qm "push $i" && gitc push -q origin feature/PUSH-1
  body=$(printf '{"ref":"refs/heads/feature/PUSH-1","after":"%s","repository":{"full_name":"bench/sample"}}' "$(gitc rev-parse HEAD)")
  t0=$(now_ms)
  st=$(deliver push "$body" "push-$i")
  until [[ $(page push-1 push.txt) == "push $i" ]]; do :; done
  echo $(( $(now_ms) - t0 )) >> "$out/push"
  [[ $st == 202 ]] || echo "push $i: delivery answered $st" >&2
done
gitc checkout -q develop

echo "qabox webhook benchmark: sample app on busybox, N=$N, $(nproc) cores"
stats "merge delivery -> environment gone" < "$out/merge"
stats "push delivery -> new head served" < "$out/push"
awk -v m="$(p50_of < "$out/merge")" -v p="$(p50_of < "$out/push")" 'BEGIN {
  printf "p50 reclaim: %.0f ms (target: under 200 ms); p50 redeploy: %.0f ms (target: under 300 ms)\n", m, p }'
