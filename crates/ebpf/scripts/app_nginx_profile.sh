#!/usr/bin/env bash
# Where the application capture's time goes inside the traced program: perf samples of nginx's
# worker thread while wrk drives it, in alternating runs without and with the capture, turned
# into nanoseconds per request per symbol. The budget for app_overhead.sh's ratio is here: at
# 0.95 the capture may add 5 % to the worker's time per request.
#
# Usage (root): crates/ebpf/scripts/app_nginx_profile.sh [seconds_per_run=5] [pairs=2]
#   env: AGENT=<tapline binary> (`tapline run`, the embedded default configuration) or
#        APP_BENCH=<app_bench binary> (the capture alone, with a consumer that only counts);
#        FILE_BYTES (served file, default 612), CONNS (wrk -c, default 32).
# Prints each run's requests and the worker's CPU per request (from /proc), then, summed over
# the pairs, the symbols of the capture's kernel path (programs, dispatch, helpers, the user
# copy, the ring buffer, the clock) with their ns per request added, their total, and the
# change of everything else in the worker.
set -euo pipefail
SECS=${1:-5}
PAIRS=${2:-2}
CONNS=${CONNS:-32}
FILE_BYTES=${FILE_BYTES:-612}
[[ $(id -u) == 0 ]] || { echo "run as root (loads eBPF programs)" >&2; exit 1; }
for tool in nginx wrk perf curl; do command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 1; }; done
if [[ -n ${AGENT:-} ]]; then
  CAPTURE=("$AGENT" run)
elif [[ -n ${APP_BENCH:-} ]]; then
  CAPTURE=("$APP_BENCH" 3600)
else
  echo "set AGENT=<tapline binary> or APP_BENCH=<app_bench binary>" >&2; exit 1
fi
cd "$(dirname "$0")/../../.."
DIR=$(mktemp -d /tmp/tapline-nginx-profile.XXXXXX)
NGINX_PID= CPID=
cleanup() {
  [[ -n $CPID ]] && kill -TERM "$CPID" 2>/dev/null && wait "$CPID" 2>/dev/null
  [[ -n $NGINX_PID ]] && kill "$NGINX_PID" 2>/dev/null && wait "$NGINX_PID" 2>/dev/null
  rm -rf "$DIR"
}
trap cleanup EXIT
source crates/receivers/scripts/agent_config.sh
refuse_if_capture_attached
start_bench_nginx "$DIR" "$FILE_BYTES"
wrk -t1 -c4 -d2s "http://127.0.0.1:$PORT/" > /dev/null # warm up
run=0
for _ in $(seq "$PAIRS"); do
  for arm in without with; do
    run=$((run + 1))
    if [[ $arm == with ]]; then
      "${CAPTURE[@]}" > "$DIR/capture.out" 2> "$DIR/capture.err" &
      CPID=$!
      for _ in $(seq 100); do grep -q attached "$DIR/capture.err" && break; sleep 0.1; done
      grep -q attached "$DIR/capture.err" || { cat "$DIR/capture.err" >&2; exit 1; }
      sleep 2 # start-up work settled
    fi
    perf record -F 4000 -t "$WORKER" -o "$DIR/$run.perf" sleep "$SECS" > /dev/null 2>&1 &
    PERF=$!
    t0=$(cpu_ticks "$WORKER")
    reqs=$(wrk -t1 -c"$CONNS" -d"${SECS}s" "http://127.0.0.1:$PORT/" | awk '/requests in/ {print $1}')
    t1=$(cpu_ticks "$WORKER")
    wait "$PERF"
    if [[ -n $CPID ]]; then kill -TERM "$CPID"; wait "$CPID" || true; CPID=; fi
    echo "run $run $arm: $reqs requests, nginx worker $(( (t1 - t0) * 1000000000 / $(getconf CLK_TCK) / reqs )) ns/request"
    perf report -i "$DIR/$run.perf" --no-children -g none --sort sym -F sample,sym --stdio 2> /dev/null |
      awk -v run="$run" -v arm="$arm" -v reqs="$reqs" '/^ *[0-9]+ +\[/ {n = $1; $1 = ""; $2 = ""; sub(/^ +/, ""); print run "\t" arm "\t" reqs "\t" n "\t" $0}' >> "$DIR/samples"
  done
done
python3 - "$DIR/samples" <<'PY'
import re, sys
# perf samples at 4000 Hz: 250 µs each; per request over all runs of an arm
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
reqs = {"without": 0, "with": 0}
runs = set()
samples = {"without": {}, "with": {}}
for run, arm, r, n, sym in rows:
    if run not in runs:
        runs.add(run)
        reqs[arm] += int(r)
    samples[arm][sym] = samples[arm].get(sym, 0) + int(n)
ns = lambda arm, sym: samples[arm].get(sym, 0) * 250_000 / reqs[arm]
capture = re.compile(r"bpf|ringbuf|copy_from_user_nofault|check_object_size|check_heap_object|"
                     r"virt_addr_valid|call_trace_sock|read_tsc|ktime_get_mono_fast|sk_storage|task_storage")
syms = sorted(set(samples["with"]) | set(samples["without"]), key=lambda s: ns("without", s) - ns("with", s))
total = lambda arm: sum(ns(arm, s) for s in samples[arm])
print(f"worker, sampled: {total('without'):.0f} ns/request without, {total('with'):.0f} with")
added = 0.0
for s in syms:
    if capture.search(s) and not s.startswith("bpf_lsm_"):  # LSM hooks: not the capture's
        d = ns("with", s) - ns("without", s)
        added += d
        if abs(d) >= 5:
            print(f"  {d:+7.0f}  {s}")
print(f"capture's kernel path: {added:+.0f} ns/request; everything else in the worker: "
      f"{total('with') - total('without') - added:+.0f} ns/request")
PY
