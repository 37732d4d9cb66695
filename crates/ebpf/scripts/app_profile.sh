#!/usr/bin/env bash
# Where the CPU goes while the application capture traces nginx + wrk: `perf record -a -g` for
# 8 s in the middle of a 14 s wrk run against nginx (1 worker, a 612-byte file), with the
# capture consumer `app_bench` attached, then the share of the capture's kernel symbols and of
# each process. Run as root.
#
# Usage: crates/ebpf/scripts/app_profile.sh [app_bench binary|none] [perf.data path]
#   none: the same run without the capture (baseline profile)
set -euo pipefail
BENCH=${1:-${CARGO_TARGET_DIR:-/work/target-app}/release/examples/app_bench}
OUT=${2:-/tmp/tapline-app-profile.data}
[[ $(id -u) == 0 ]] || { echo "run as root" >&2; exit 1; }
for t in perf wrk nginx; do command -v $t >/dev/null || { echo "$t missing" >&2; exit 1; }; done
DIR=$(mktemp -d /tmp/tapline-app-profile.XXXXXX)
NG= BP=
cleanup() {
  [[ -n $BP ]] && kill "$BP" 2>/dev/null
  [[ -n $NG ]] && kill "$NG" 2>/dev/null
  wait 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$DIR/www" "$DIR/tmp"
head -c 612 /dev/zero | tr '\0' a > "$DIR/www/index.html"
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
  server { listen 127.0.0.1:$PORT; root $DIR/www; }
}
CONF
nginx -p "$DIR" -c "$DIR/nginx.conf" -g 'daemon off;' &
NG=$!
for _ in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/" && break; sleep 0.1; done
if [[ $BENCH != none ]]; then
  "$BENCH" 25 > "$DIR/bench.out" 2> "$DIR/bench.err" &
  BP=$!
  for _ in $(seq 100); do grep -q attached "$DIR/bench.err" 2>/dev/null && break; sleep 0.1; done
fi
wrk -t1 -c32 -d14s "http://127.0.0.1:$PORT/" > "$DIR/wrk.out" &
WP=$!
sleep 2
perf record -q -a -g -o "$OUT" sleep 8 > /dev/null 2>&1
wait "$WP"
grep Requests/sec "$DIR/wrk.out"
perf report -i "$OUT" --no-children --sort comm,sym --stdio -g none 2>/dev/null | awk '
  /%/ {
    p = $1; sub("%", "", p); comm[$2] += p
    if ($4 ~ /^(bpf_prog_|bpf_trace_run|bpf_ringbuf|__bpf_ringbuf|bpf_sk_storage|copy_from_user_nofault|bpf_probe_read|bpf_task_pt_regs|bpf_get_current)/) { sym[$4] += p; cap += p }
  }
  END {
    for (c in comm) if (comm[c] >= 0.5) printf "process %-20s %6.2f %%\n", c, comm[c]
    for (s in sym) if (sym[s] >= 0.05) printf "  %-55s %5.2f %%\n", s, sym[s]
    printf "capture kernel symbols in all: %.2f %%\n", cap
  }'
echo "perf data: $OUT (perf report -i $OUT)"
