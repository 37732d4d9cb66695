#!/usr/bin/env bash
# What the application capture costs a traced thread per socket call, without the noise of a
# two-process benchmark. examples/sock_pingpong plays both ends of an nginx + wrk style
# HTTP/1.1 exchange on one thread (5 socket calls per request: write, read, writev, sendfile,
# read) and reports its CPU time per request. Each measurement runs two copies at the same time
# on CPU 0, one traced and one not (`sock_pingpong_b`, excluded), while the consumer runs on
# CPU 1: both copies see the same machine during the same seconds, so the difference of their
# CPU times per request is the capture's cost, even on a VM whose speed drifts by 10 %.
# Run as root.
#
# Usage: crates/ebpf/scripts/app_event_cost.sh [requests=100000] [rounds=10] ARM...
#   ARM is `none` (nothing attached: the two copies' own difference), or a command that
#   attaches the capture and writes "attached" to its stderr once it did (stopped with SIGTERM
#   after each round), in which these words are replaced:
#     {A}       the pid of the copy to trace
#     {B}       the pid of the copy not to trace
#     {CONFIG}  a tapline configuration: the app receiver alone (metrics to Prometheus on a
#               free port), default discovery but for `exclude: [{exe_path: "*/sock_pingpong_b"}]`
#   e.g. '/work/target-app/release/examples/app_bench 3600 --only {A}'
#        '/tmp/tapline run --config {CONFIG}'
#   A label can prefix the command: 'new=/tmp/tapline run --config {CONFIG}'.
#   Default arms: none, and app_bench (built here) tracing copy A.
# Prints each round's difference (traced - untraced CPU ns per request) per arm, then per arm
# the median and range of the differences, per request and per socket call.
set -euo pipefail
REQS=${1:-100000}
ROUNDS=${2:-10}
shift $(( $# >= 2 ? 2 : $# ))
[[ $(id -u) == 0 ]] || { echo "run as root (loads eBPF programs)" >&2; exit 1; }
cd "$(dirname "$0")/../../.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target-app}
cargo build -q --release -p tapline-ebpf --example sock_pingpong
ARMS=("$@")
if (( ${#ARMS[@]} == 0 )); then
  cargo build -q --release -p tapline-ebpf --example app_bench
  ARMS=(none "app_bench=$CARGO_TARGET_DIR/release/examples/app_bench 3600 --only {A}")
fi
DIR=$(mktemp -d /tmp/tapline-event-cost.XXXXXX)
cp "$CARGO_TARGET_DIR/release/examples/sock_pingpong" "$DIR/sock_pingpong"
cp "$CARGO_TARGET_DIR/release/examples/sock_pingpong" "$DIR/sock_pingpong_b"
CPID=
cleanup() {
  [[ -n $CPID ]] && kill -TERM "$CPID" 2>/dev/null && wait "$CPID" 2>/dev/null
  pkill -f "$DIR/sock_pingpong" 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT
source crates/receivers/scripts/agent_config.sh
refuse_if_capture_attached
cat > "$DIR/agent.yaml" <<YAML
receivers:
  app:
    metrics_interval: 1s
    discovery: { exclude: [{ exe_path: "*/sock_pingpong_b" }], poll_interval: 200ms }
exporters:
  prometheus: { endpoint: "127.0.0.1:$(free_port)" }
service:
  pipelines:
    metrics: { receivers: [app], exporters: [prometheus] }
  telemetry: { metrics: { endpoint: "127.0.0.1:$(free_port)" } }
YAML

label() { [[ $1 =~ ^([A-Za-z0-9_-]+)=(.*)$ ]] && echo "${BASH_REMATCH[1]}" || echo "${1%% *}"; }
command_of() { [[ $1 =~ ^([A-Za-z0-9_-]+)=(.*)$ ]] && echo "${BASH_REMATCH[2]}" || echo "$1"; }
cpu_of() { sed -n 's/.*cpu_ns_per_request=\([0-9.]*\).*/\1/p' "$1"; }

: > "$DIR/results"
for r in $(seq "$ROUNDS"); do
  line="round $r:"
  for arm in "${ARMS[@]}"; do
    name=$(label "$arm")
    rm -f "$DIR/go"
    "$DIR/sock_pingpong" "$REQS" 0 "$DIR/go" > "$DIR/a.out" & A=$!
    "$DIR/sock_pingpong_b" "$REQS" 0 "$DIR/go" > "$DIR/b.out" & B=$!
    if [[ $arm != none ]]; then
      cmd=$(command_of "$arm"); cmd=${cmd//\{A\}/$A}; cmd=${cmd//\{B\}/$B}
      cmd=${cmd//\{CONFIG\}/$DIR/agent.yaml}
      # word splitting of the command is intended (a path and its arguments)
      # shellcheck disable=SC2086
      taskset -c 1 $cmd > "$DIR/consumer.out" 2> "$DIR/consumer.err" &
      CPID=$!
      for _ in $(seq 200); do grep -q attached "$DIR/consumer.err" && break; sleep 0.1; done
      grep -q attached "$DIR/consumer.err" || { cat "$DIR/consumer.err" >&2; exit 1; }
      sleep 1 # discovery saw both copies (polls every 200 ms), start-up work settled
    fi
    touch "$DIR/go"
    wait "$A" "$B"
    if [[ -n $CPID ]]; then kill -TERM "$CPID"; wait "$CPID" || true; CPID=; fi
    a=$(cpu_of "$DIR/a.out"); b=$(cpu_of "$DIR/b.out")
    echo "$r $name $a $b" >> "$DIR/results"
    line+=" $name $(awk -v a="$a" -v b="$b" 'BEGIN {printf "%+.0f", a - b}')"
  done
  echo "$line ns/request (traced - untraced)"
done
python3 - "$DIR/results" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
for arm in dict.fromkeys(r[1] for r in rows):
    a = [float(r[2]) for r in rows if r[1] == arm]
    d = [float(r[2]) - float(r[3]) for r in rows if r[1] == arm]
    m = statistics.median(d)
    print(f"{arm:<10} traced copy {statistics.median(a):7.0f} ns/request; traced - untraced: "
          f"median {m:+6.0f} ns/request ({m / 5:+5.0f} per call), range {min(d):+.0f}..{max(d):+.0f}")
PY
