#!/usr/bin/env bash
# Throughput and tail latency of the qabox router against Debian's nginx as a
# reverse proxy, both in front of the same backend, under the same wrk load.
#
#   scripts/bench/router.sh [-b BUILD_DIR] [-B BACKEND_IP:PORT] [-P PATH]
#                           [-c CONNECTIONS] [-t WRK_THREADS] [-d DURATION]
#                           [-w PROXY_THREADS] [-r ROUNDS] [-L] [-C] [-T]
#
# -C sends "Connection: close" with every request: a new connection per
# request, as many browsers' and health checkers' requests are.
# -T measures both over TLS: nginx `listen ssl` and the router's
# routing.tls_listen with the same self-signed P-256 certificate.
#
# -L also runs a second router whose route is behind a login (routing.access
# = "login", the agent's real PreviewGate, a valid preview cookie on every
# request) and reports what the login check adds per request.
#
# Without -B, a second nginx serves a small static file on 127.0.0.1 as the
# backend. Each round runs wrk through nginx, then through the router; the
# median of the rounds is reported. Prints requests/s and p99 for both, and
# the ratios the targets are set for (router/nginx: rps >= 1.00, p99 <=
# 1.00, in every shape; one run moves a few per cent either way on a
# loaded machine: use -r 5 and a quiet one).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build="${BUILD_DIR:-}"
backend=""
path="/"
conns=64
wrk_threads=2
duration=10s
proxy_threads=2
rounds=3
login=0
close=0
tls=0

while getopts "b:B:P:c:t:d:w:r:LCTh" opt; do
  case "$opt" in
    b) build="$OPTARG" ;;
    B) backend="$OPTARG" ;;
    P) path="$OPTARG" ;;
    c) conns="$OPTARG" ;;
    t) wrk_threads="$OPTARG" ;;
    d) duration="$OPTARG" ;;
    w) proxy_threads="$OPTARG" ;;
    r) rounds="$OPTARG" ;;
    L) login=1 ;;
    C) close=1 ;;
    T) tls=1 ;;
    *) sed -n '2,25p' "$0"; exit 2 ;;
  esac
done

for tool in wrk nginx python3; do
  command -v "$tool" >/dev/null || { echo "router.sh: $tool is required" >&2; exit 1; }
done

bench_bin=""
for dir in $build "$root/build-proxy" "$root/build"; do
  if [ -x "$dir/agent/proxy/qabox-router-bench" ]; then
    bench_bin="$dir/agent/proxy/qabox-router-bench"
    break
  fi
done
if [ -z "$bench_bin" ]; then
  echo "router.sh: qabox-router-bench not found; build it (make qabox-router-bench) or pass -b" >&2
  exit 1
fi

work="$(mktemp -d /tmp/qabox-bench.XXXXXX)"
chmod 755 "$work"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() {
  for _ in $(seq 1 100); do
    if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),0.2)" 2>/dev/null; then
      return 0
    fi
    sleep 0.05
  done
  echo "router.sh: nothing listens on port $1" >&2
  exit 1
}

user_line=""
if [ "$(id -u)" = 0 ]; then user_line="user root root;"; fi

# nginx_conf NAME WORKERS SERVER_BLOCK: a self-contained config under $work.
nginx_conf() {
  local name="$1" workers="$2" server="$3" dir="$work/$1"
  mkdir -p "$dir/tmp"
  cat >"$dir/nginx.conf" <<EOF
$user_line
worker_processes $workers;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  keepalive_requests 1000000;
  $server
}
EOF
  echo "$dir/nginx.conf"
}

if [ -z "$backend" ]; then
  bport="$(free_port)"
  mkdir -p "$work/www"
  # The size of nginx's own welcome page.
  head -c 612 /dev/zero | tr '\0' 'x' >"$work/www/index.html"
  conf="$(nginx_conf backend 1 "server { listen 127.0.0.1:$bport; root $work/www; index index.html; }")"
  nginx -p "$work/backend" -e "$work/backend/error.log" -c "$conf" &
  pids+=($!)
  wait_port "$bport"
  backend="127.0.0.1:$bport"
fi

nport="$(free_port)"
scheme=http listen_ssl="" tls_args=()
if [ "$tls" = 1 ]; then
  mkdir -p "$work/tls"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=bench.bench.local" -keyout "$work/tls/key.pem" -out "$work/tls/cert.pem" \
    2>/dev/null
  scheme=https
  listen_ssl="ssl; ssl_certificate $work/tls/cert.pem; ssl_certificate_key $work/tls/key.pem"
  tls_args=(--tls-cert "$work/tls/cert.pem" --tls-key "$work/tls/key.pem")
fi
conf="$(nginx_conf proxy "$proxy_threads" "
  upstream app { server $backend; keepalive 256; }
  server {
    listen 127.0.0.1:$nport $listen_ssl;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_set_header X-Forwarded-Host \$host;
    }
  }")"
nginx -p "$work/proxy" -e "$work/proxy/error.log" -c "$conf" &
pids+=($!)
wait_port "$nport"

# start_router OUT [ARGS...]: a qabox-router-bench in the background; sets
# router_port once it listens.
start_router() {
  local out="$1"
  shift
  "$bench_bin" --backend "$backend" --listen 127.0.0.1:0 --domain bench.local --slug bench \
    --threads "$proxy_threads" "$@" >"$out" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do
    grep -q '^listening' "$out" 2>/dev/null && break
    sleep 0.05
  done
  router_port="$(awk '/^listening/ {print $2}' "$out")"
  if [ "$tls" = 1 ]; then router_port="$(awk '/^tls/ {print $2}' "$out")"; fi
  [ -n "$router_port" ] || { cat "$out" >&2; exit 1; }
}

start_router "$work/router.out" "${tls_args[@]}"
qport="$router_port"
lport="" cookie=""
if [ "$login" = 1 ]; then
  mkdir -p "$work/login"
  start_router "$work/login.out" --login "$work/login"
  lport="$router_port"
  cookie="$(awk '/^cookie/ {print $2}' "$work/login.out")"
  [ -n "$cookie" ] || { cat "$work/login.out" >&2; exit 1; }
fi

host="bench.bench.local"
# run_wrk PORT [HEADER]: prints "<requests/s> <p99 in ms> <p50 in ms>".
run_wrk() {
  local out extra=(-H "X-Bench: 1")
  [ -n "${2:-}" ] && extra=(-H "$2")
  [ "$close" = 1 ] && extra+=(-H "Connection: close")
  out="$(wrk -t "$wrk_threads" -c "$conns" -d "$duration" --latency -H "Host: $host" \
    "${extra[@]}" "$scheme://127.0.0.1:$1$path")"
  if echo "$out" | grep -q 'Non-2xx\|Socket errors'; then
    echo "$out" | grep 'Non-2xx\|Socket errors' >&2
  fi
  echo "$out" | awk '
    function ms(v) {
      if (v ~ /us$/) { sub(/us$/, "", v); return v / 1000 }
      if (v ~ /ms$/) { sub(/ms$/, "", v); return v + 0 }
      if (v ~ /s$/)  { sub(/s$/, "", v);  return v * 1000 }
      return v
    }
    /Requests\/sec:/ { rps = $2 }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    END { printf "%s %s %s\n", rps, p99, p50 }'
}

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

for port in "$nport" "$qport"; do
  wrk -t "$wrk_threads" -c "$conns" -d 2s -H "Host: $host" "$scheme://127.0.0.1:$port$path" >/dev/null
done

: >"$work/nginx.txt"
: >"$work/qabox.txt"
: >"$work/login.txt"
for round in $(seq 1 "$rounds"); do
  run_wrk "$nport" >>"$work/nginx.txt"
  run_wrk "$qport" >>"$work/qabox.txt"
  if [ -n "$lport" ]; then run_wrk "$lport" "Cookie: theme=dark; $cookie" >>"$work/login.txt"; fi
  echo "round $round: nginx $(tail -1 "$work/nginx.txt")  qabox $(tail -1 "$work/qabox.txt")  $([ -n "$lport" ] && echo "login $(tail -1 "$work/login.txt")")  (rps p99ms p50ms)" >&2
done

n_rps="$(awk '{print $1}' "$work/nginx.txt" | median)"
n_p99="$(awk '{print $2}' "$work/nginx.txt" | median)"
q_rps="$(awk '{print $1}' "$work/qabox.txt" | median)"
q_p99="$(awk '{print $2}' "$work/qabox.txt" | median)"

echo "backend $backend, path $path, wrk -t$wrk_threads -c$conns -d$duration$([ "$close" = 1 ] && echo ", a connection per request")$([ "$tls" = 1 ] && echo ", TLS"), proxy threads/workers $proxy_threads, median of $rounds"
printf "%-8s %12s %10s\n" "proxy" "requests/s" "p99 ms"
printf "%-8s %12.0f %10.2f\n" "nginx" "$n_rps" "$n_p99"
printf "%-8s %12.0f %10.2f\n" "qabox" "$q_rps" "$q_p99"
awk -v qr="$q_rps" -v nr="$n_rps" -v qp="$q_p99" -v np="$n_p99" 'BEGIN {
  r = qr / nr; p = qp / np
  printf "rps ratio qabox/nginx %.3f (target >= 1.00: %s)\n", r, (r >= 1.00 ? "met" : "NOT met")
  printf "p99 ratio qabox/nginx %.3f (target <= 1.00: %s)\n", p, (p <= 1.00 ? "met" : "NOT met")
}'
if [ -n "$lport" ]; then
  l_rps="$(awk '{print $1}' "$work/login.txt" | median)"
  l_p99="$(awk '{print $2}' "$work/login.txt" | median)"
  l_p50="$(awk '{print $3}' "$work/login.txt" | median)"
  q_p50="$(awk '{print $3}' "$work/qabox.txt" | median)"
  printf "%-8s %12.0f %10.2f   (route behind a login, a valid preview cookie)\n" "login" "$l_rps" "$l_p99"
  mkdir -p "$work/loop"
  "$bench_bin" --backend "$backend" --domain bench.local --slug bench --login "$work/loop" \
    --gate-loops 200000
  # At saturation each request costs threads/rps of router CPU; the
  # difference between the two routers is what the login check adds.
  awk -v qr="$q_rps" -v lr="$l_rps" -v w="$proxy_threads" -v q50="$q_p50" -v l50="$l_p50" 'BEGIN {
    us = w * (1 / lr - 1 / qr) * 1e6
    printf "login check: %.1f us of router CPU per request (target < 50: %s); p50 %.3f -> %.3f ms\n", \
      us, (us < 50 ? "met" : "NOT met"), q50, l50
  }'
fi
