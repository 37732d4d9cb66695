#!/usr/bin/env bash
# CPU and memory of the tapline agent while the app receiver watches nginx serve about 5,000
# requests/s, and whether it counted every request.
#
#   crates/receivers/scripts/app_load.sh [TAPLINE_BINARY] [SECONDS=10]
#
# Root required. Builds `target/release/tapline` when no binary is given. nginx (one worker)
# on 127.0.0.1; wrk -t2 -c50 with a 10 ms Lua delay() per request and connection (wrk cannot
# fix a rate; this paces it to about 5,000 requests/s). tapline runs the `app` receiver
# (default discovery: every process) with a metrics pipeline to a Prometheus exporter and a
# traces pipeline to `nop` (spans are built, then dropped). Prints the agent's CPU time over
# the wrk run (utime + stime from /proc/PID/stat), VmRSS sampled every second, VmHWM, and
# the request counts of wrk, nginx's access log and tapline, with tapline's lost-event counter.
set -euo pipefail
cd "$(dirname "$0")/../../.."
BIN=${1:-}
SECS=${2:-10}
if [ -z "$BIN" ]; then
  cargo build --release --bin tapline >&2
  BIN=target/release/tapline
fi
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
for tool in nginx wrk curl; do command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 1; }; done

TMP=$(mktemp -d)
NGINX= PID= SAMPLER=
cleanup() {
  for p in $SAMPLER $PID $NGINX; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

source crates/receivers/scripts/agent_config.sh
refuse_if_capture_attached
PORT=$(free_port); PROM=$(free_port); TEL=$(free_port)

mkdir -p "$TMP/www" "$TMP/logs" "$TMP/tmp"
echo "hello from nginx" > "$TMP/www/index.html"
cat > "$TMP/nginx.conf" <<CONF
daemon off; master_process off; worker_processes 1; pid $TMP/nginx.pid;
error_log $TMP/logs/error.log;
events { worker_connections 1024; }
http {
  access_log $TMP/logs/access.log;
  client_body_temp_path $TMP/tmp; proxy_temp_path $TMP/tmp; fastcgi_temp_path $TMP/tmp;
  uwsgi_temp_path $TMP/tmp; scgi_temp_path $TMP/tmp;
  keepalive_requests 100000;
  server { listen 127.0.0.1:$PORT; root $TMP/www; }
}
CONF
nginx -p "$TMP" -c "$TMP/nginx.conf" & NGINX=$!

app_agent_config "$TMP/config.yaml" "$PROM" "$TEL" warn
"$BIN" run --config "$TMP/config.yaml" > "$TMP/tapline.log" 2>&1 & PID=$!

# Ready when a warm-up request shows up in tapline's metrics.
for _ in $(seq 60); do
  curl -s -o /dev/null "http://127.0.0.1:$PORT/warmup" || true
  # (saved first: `curl | grep -q` fails under pipefail when grep exits before curl is done)
  curl -s "http://127.0.0.1:$PROM/metrics" > "$TMP/metrics.txt" || true
  if grep -q 'http_route="/warmup"' "$TMP/metrics.txt"; then break; fi
  kill -0 "$PID" 2>/dev/null || { cat "$TMP/tapline.log"; exit 1; }
  sleep 0.5
done
grep -q 'http_route="/warmup"' "$TMP/metrics.txt" || { echo "tapline saw no request"; cat "$TMP/tapline.log"; exit 1; }

cpu() { awk '{print $14 + $15}' "/proc/$PID/stat"; }   # clock ticks
status() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$PID/status"; }
(while sleep 1; do echo "VmRSS $(status VmRSS) kB"; done) > "$TMP/rss.log" & SAMPLER=$!

logged0=$(wc -l < "$TMP/logs/access.log")
echo 'function delay() return 10 end' > "$TMP/pace.lua"
cpu0=$(cpu); t0=$(date +%s.%N)
wrk -t2 -c50 -d"${SECS}s" -s "$TMP/pace.lua" "http://127.0.0.1:$PORT/index.html" > "$TMP/wrk.txt"
cpu1=$(cpu); t1=$(date +%s.%N)
kill "$SAMPLER"; SAMPLER=
sleep 3   # the last metrics interval reaches the exporter
logged=$(( $(wc -l < "$TMP/logs/access.log") - logged0 ))
seen=$(curl -s "http://127.0.0.1:$PROM/metrics" |
  awk '/^http_server_request_duration_seconds_count/ && /http_route="\/index.html"/ {s += $NF} END {print s + 0}')
lost=$(curl -s "http://127.0.0.1:$TEL/metrics" |
  awk '/^tapline_ebpf_events_lost_total/ {s += $NF} END {print s + 0}')
hz=$(getconf CLK_TCK)

grep -E "requests in|Requests/sec" "$TMP/wrk.txt"
python3 - "$cpu0" "$cpu1" "$hz" "$t0" "$t1" "$logged" "$seen" "$lost" "$TMP/rss.log" "$(status VmHWM)" <<'PY'
import sys
c0, c1, hz, t0, t1 = (float(x) for x in sys.argv[1:6])
logged, seen, lost = (int(float(x)) for x in sys.argv[6:9])
rss = [int(l.split()[1]) for l in open(sys.argv[9]) if l.split()[1:2] and l.split()[1].isdigit()]
wall = t1 - t0
print(f"nginx logged {logged} requests ({logged / wall:.0f}/s); tapline counted {seen}; lost events {lost}")
print(f"agent CPU {(c1 - c0) / hz:.2f} s over {wall:.1f} s = {100 * (c1 - c0) / hz / wall:.1f}% of one core")
if rss:
    print(f"agent VmRSS during the run {min(rss) / 1024:.1f}-{max(rss) / 1024:.1f} MiB; VmHWM {int(sys.argv[10]) / 1024:.1f} MiB")
PY
