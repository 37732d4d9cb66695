#!/usr/bin/env bash
# Measures what the TLS (libssl uprobe) capture costs: max req/s of nginx over HTTPS with wrk
# (keep-alive), alternating, in the same session and against the same nginx:
#   none     - nothing attached
#   capture  - the syscall capture only (examples/app_bench): TLS records flow as socket data
#   tls      - the syscall capture + the libssl uprobes (app_bench --tls): plaintext events,
#              the sockets' syscalls suppressed
# nginx and wrk both use the system libssl, so both are probed (as in a real deployment where
# client and server run on the node). Run as root.
#
# Usage: crates/ebpf/scripts/tls_overhead.sh [seconds_per_run=10] [rounds=3] [mode=all|only-nginx]
#   only-nginx: PidFilterMode::Only with the worker, TLS probes scoped to it (wrk takes no traps)
#   env: CONNS (wrk -c, default 32), THREADS (wrk -t, default 1), CAPTURE_BYTES (default 256),
#        FILE_BYTES (size of the served file, default 612), CARGO_TARGET_DIR,
#        APP_BENCH (path of a prebuilt app_bench example: skips the cargo build)
# Prints one line per run and finally the medians and
#   ratio_tls_vs_none=<median tls>/<median none>  ratio_tls_vs_capture=<median tls>/<median capture>
set -euo pipefail
SECS=${1:-10}
ROUNDS=${2:-3}
MODE=${3:-all}
CONNS=${CONNS:-32}
THREADS=${THREADS:-1}
CAPTURE_BYTES=${CAPTURE_BYTES:-256}
FILE_BYTES=${FILE_BYTES:-612}
[[ $(id -u) == 0 ]] || { echo "run as root (loads eBPF programs)" >&2; exit 1; }
for tool in wrk nginx openssl curl; do
  command -v $tool >/dev/null || { echo "$tool missing: apt-get install -y wrk nginx-light openssl curl" >&2; exit 1; }
done
cd "$(dirname "$0")/../../.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target-app}
if [[ -z ${APP_BENCH:-} ]]; then
  cargo build -q --release -p tapline-ebpf --example app_bench
fi
BENCH=${APP_BENCH:-$CARGO_TARGET_DIR/release/examples/app_bench}

DIR=$(mktemp -d /tmp/tapline-tls-overhead.XXXXXX)
NGINX_PID=
BPID=
cleanup() {
  [[ -n $BPID ]] && kill "$BPID" 2>/dev/null && wait "$BPID" 2>/dev/null
  [[ -n $NGINX_PID ]] && kill "$NGINX_PID" 2>/dev/null && wait "$NGINX_PID" 2>/dev/null
  rm -rf "$DIR"
}
trap cleanup EXIT
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$DIR/www" "$DIR/tmp"
head -c "$FILE_BYTES" /dev/zero | tr '\0' 'a' > "$DIR/www/index.html"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
  -subj /CN=127.0.0.1 -keyout "$DIR/key.pem" -out "$DIR/cert.pem" 2>/dev/null
cat > "$DIR/nginx.conf" <<CONF
worker_processes 1;
user root;
pid $DIR/nginx.pid;
error_log $DIR/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  keepalive_requests 1000000;
  client_body_temp_path $DIR/tmp/body;
  proxy_temp_path $DIR/tmp/proxy;
  fastcgi_temp_path $DIR/tmp/fastcgi;
  uwsgi_temp_path $DIR/tmp/uwsgi;
  scgi_temp_path $DIR/tmp/scgi;
  server {
    listen 127.0.0.1:$PORT ssl;
    ssl_certificate $DIR/cert.pem;
    ssl_certificate_key $DIR/key.pem;
    root $DIR/www;
  }
}
CONF
nginx -p "$DIR" -c "$DIR/nginx.conf" -g 'daemon off;' &
NGINX_PID=$!
for _ in $(seq 50); do curl -skf -o /dev/null "https://127.0.0.1:$PORT/" && break; sleep 0.1; done
WORKER=$(pgrep -P "$NGINX_PID" | head -1)
ONLY=()
[[ $MODE == only-nginx ]] && ONLY=(--only "$WORKER")
echo "nginx (TLS) master=$NGINX_PID worker=$WORKER port=$PORT mode=$MODE wrk -t$THREADS -c$CONNS -d${SECS}s capture_bytes=$CAPTURE_BYTES file=$FILE_BYTES"

run_wrk() { wrk -t"$THREADS" -c"$CONNS" -d"${SECS}s" "https://127.0.0.1:$PORT/" | awk '/Requests\/sec/ {print $2}'; }
# run_with <label> <app_bench args...>: one wrk run with app_bench attached
run_with() {
  local label=$1; shift
  "$BENCH" $((SECS + 3)) --capture-bytes "$CAPTURE_BYTES" "${ONLY[@]}" "$@" > "$DIR/bench.out" 2> "$DIR/bench.err" &
  BPID=$!
  for _ in $(seq 100); do grep -q attached "$DIR/bench.err" 2>/dev/null && break; sleep 0.1; done
  grep -q attached "$DIR/bench.err" || { cat "$DIR/bench.err" >&2; exit 1; }
  rps=$(run_wrk)
  wait "$BPID"; BPID=
  echo "round $r $label: $rps req/s   $(cat "$DIR/bench.out")"
}
none=() capture=() tls=()
wrk -t1 -c4 -d2s "https://127.0.0.1:$PORT/" >/dev/null  # warm up
for r in $(seq "$ROUNDS"); do
  rps=$(run_wrk); none+=("$rps"); echo "round $r none:    $rps req/s"
  run_with "capture" ; capture+=("$rps")
  run_with "tls    " --tls; tls+=("$rps")
done
grep "TLS probes" "$DIR/bench.err" || true
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
mn=$(median "${none[@]}"); mc=$(median "${capture[@]}"); mt=$(median "${tls[@]}")
echo "median none=$mn capture=$mc tls=$mt"
awk -v t="$mt" -v n="$mn" -v c="$mc" \
  'BEGIN {printf "ratio_tls_vs_none=%.3f ratio_tls_vs_capture=%.3f ratio_capture_vs_none=%.3f\n", t/n, t/c, c/n}'
