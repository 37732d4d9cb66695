#!/usr/bin/env bash
# OTLP receive → export pass-through: tapline beside rotel, in the same run, on this machine.
#
# A load generator (examples/otlp_load.rs) sends pre-encoded OTLP/gRPC span batches as fast as
# the candidate acknowledges them; the candidate forwards everything over OTLP/gRPC to a sink
# (a second tapline, OTLP receiver → nop) whose counter gives the spans each candidate
# delivered. Spans a candidate accepted but did not deliver do not count. Each candidate's CPU time is read from /proc, so the
# figure is spans per CPU-second ("per core") even though generator, candidate and sink share
# the machine's cores. Prints both figures and tapline's ratio to rotel.
#
# usage: crates/exporters/scripts/otlp_passthrough.sh [seconds per candidate, default 10]
# needs: rotel (pip install rotel), python3 (free ports), a Rust toolchain.
set -euo pipefail
SECS=${1:-10}
ROOT=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
cd "$ROOT"

ROTEL=$(command -v rotel-agent || python3 -c 'import rotel, os; print(os.path.join(os.path.dirname(rotel.__file__), "rotel-agent"))' 2>/dev/null || true)
[ -x "$ROTEL" ] || { echo "rotel-agent not found: pip install rotel" >&2; exit 1; }

cargo build --release -q --bin tapline
cargo build --release -q -p tapline-exporters --example otlp_load
TAPLINE=$ROOT/target/release/tapline
LOAD=$ROOT/target/release/examples/otlp_load

TMP=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 1 100); do
    (echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on port $1" >&2; exit 1
}
CLK=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# The sink is a tapline (OTLP receiver → nop exporter): it answers as soon as it has taken a
# batch, and its own counter says exactly how many spans each candidate delivered.
SINK_GRPC=$(free_port); SINK_TELEMETRY=$(free_port)
cat > "$TMP/sink.yaml" <<YAML
receivers:
  otlp:
    protocols:
      grpc: {endpoint: "127.0.0.1:$SINK_GRPC", max_recv_msg_size: 64MiB}
exporters:
  nop: {}
service:
  pipelines:
    traces: {receivers: [otlp], exporters: [nop]}
  telemetry:
    metrics: {endpoint: "127.0.0.1:$SINK_TELEMETRY"}
    logs: {level: warn}
YAML
"$TAPLINE" run --config "$TMP/sink.yaml" > "$TMP/sink.log" 2>&1 &
PIDS+=($!)
wait_port "$SINK_GRPC"
sink_received() {
  python3 - "$SINK_TELEMETRY" <<'PY'
import sys, urllib.request
text = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=5).read().decode()
print(sum(int(l.split()[-1]) for l in text.splitlines()
          if l.startswith("tapline_items_accepted_total") and 'kind="receiver"' in l))
PY
}

# run NAME PORT CMD...: starts the candidate, loads it, prints "NAME spans cpu_seconds".
run() {
  local name=$1 port=$2; shift 2
  "$@" > "$TMP/$name.log" 2>&1 &
  local pid=$!
  PIDS+=($pid)
  wait_port "$port"
  local t0; t0=$(cpu_ticks "$pid")
  local r0; r0=$(sink_received)
  local out; out=$("$LOAD" "127.0.0.1:$port" --seconds "$SECS" --batch 1000 --connections 4)
  sleep 2 # let what was accepted drain to the sink
  local t1; t1=$(cpu_ticks "$pid")
  local r1; r1=$(sink_received)
  if [ "$name" = tapline ]; then
    # Pass-through, not buffering: what the exporter delivered and dropped, from tapline itself.
    python3 - "$TP_TELEMETRY" >&2 <<'PY'
import re, sys, urllib.request
text = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=5).read().decode()
for name in ("tapline_items_sent_total", "tapline_items_dropped_total", "tapline_items_refused_total"):
    for line in text.splitlines():
        if line.startswith(name) and 'component="otlp"' in line:
            print("tapline telemetry:", line)
PY
  fi
  kill "$pid"; wait "$pid" 2>/dev/null || true
  local spans=$((r1 - r0))
  local cpu; cpu=$(awk -v a="$t0" -v b="$t1" -v c="$CLK" 'BEGIN { printf "%.2f", (b - a) / c }')
  echo "$name: delivered to the sink $spans, cpu ${cpu}s; load generator: $out" >&2
  echo "$name $spans $cpu"
}

TP_GRPC=$(free_port); TP_TELEMETRY=$(free_port)
cat > "$TMP/tapline.yaml" <<YAML
receivers:
  otlp:
    protocols:
      grpc: {endpoint: "127.0.0.1:$TP_GRPC", max_recv_msg_size: 16MiB}
exporters:
  otlp:
    endpoint: "127.0.0.1:$SINK_GRPC"
    temporality: delta
    # Gateway setting: a full queue stops the pipeline, so the receiver refuses (UNAVAILABLE)
    # instead of accepting spans that would be dropped later.
    queue: {size: 64, when_full: block}
service:
  pipelines:
    traces: {receivers: [otlp], exporters: [otlp]}
  telemetry:
    metrics: {endpoint: "127.0.0.1:$TP_TELEMETRY"}
    logs: {level: warn}
YAML

RO_GRPC=$(free_port); RO_HTTP=$(free_port)
read -r _ T_SPANS T_CPU < <(run tapline "$TP_GRPC" "$TAPLINE" run --config "$TMP/tapline.yaml")
read -r _ R_SPANS R_CPU < <(run rotel "$RO_GRPC" "$ROTEL" start \
  --otlp-grpc-endpoint "127.0.0.1:$RO_GRPC" --otlp-http-endpoint "127.0.0.1:$RO_HTTP" \
  --exporter otlp --otlp-exporter-endpoint "http://127.0.0.1:$SINK_GRPC")

awk -v ts="$T_SPANS" -v tc="$T_CPU" -v rs="$R_SPANS" -v rc="$R_CPU" -v secs="$SECS" 'BEGIN {
  t = (tc > 0) ? ts / tc : 0; r = (rc > 0) ? rs / rc : 0
  printf "candidate  delivered/s(wall)  cpu_s   delivered spans per cpu-second\n"
  printf "tapline    %12.0f  %6.2f  %12.0f\n", ts / secs, tc, t
  printf "rotel      %12.0f  %6.2f  %12.0f\n", rs / secs, rc, r
  printf "ratio tapline/rotel (spans per cpu-second): %.2f\n", (r > 0) ? t / r : 0
}'
