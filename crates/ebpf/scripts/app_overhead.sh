#!/usr/bin/env bash
# Measures what the application capture costs nginx: max req/s with wrk, alternating runs
# without and with the capture attached (same nginx, same machine, same session), and the
# events/s the ring buffer sustained plus the lost count. Run as root.
#
# Usage: crates/ebpf/scripts/app_overhead.sh [seconds_per_run=10] [rounds=3] [mode=all|only-nginx]
#   env: CONNS (wrk -c, default 32), THREADS (wrk -t, default 1), CAPTURE_BYTES (default 256),
#        FILE_BYTES (size of the served file, default 612), CARGO_TARGET_DIR,
#        APP_BENCH (path of a prebuilt app_bench example: skips the cargo build),
#        AGENT=<tapline binary> (run the whole agent instead of app_bench; after each run its
#        count of requests is checked against wrk's), with AGENT_CONFIG=
#          default: `tapline run` with its embedded default configuration (flows + app, metrics
#            only, Prometheus on 127.0.0.1:9400: that port must be free), what a user runs;
#          spans: only the app receiver, a metrics pipeline to a Prometheus exporter and a
#            traces pipeline to `nop` (one span built per request and side, then dropped),
#          server: the default configuration with `app.discovery.instrument` set to nginx's
#            port (`open_ports`), as a user instruments the service under test: wrk's calls
#            still run the hooks but are not captured, as for a client on another machine,
#        FLOOR_OBJ (attach this object's programs with examples/attach_object instead of the
#        capture: the hooks' own cost, see scripts/app_floor.sh),
#        PROFILE=<perf.data path> (perf record -a -g during round 1's run with the capture,
#        then each process's share and the capture's kernel symbols'),
#        PIN=1 (nginx's worker on CPU 0, wrk on CPU 1: the run no longer depends on where the
#        scheduler put the two; the capture's consumer stays unpinned),
#        STATS=1 (enable kernel.bpf_stats_enabled during the runs with the capture and print
#        each program's ns/run and runs/request over the wrk run; costs ~50 ns per run, so
#        leave it off for the ratio)
# Prints one line per run (req/s and wrk's p99 latency) and finally
# ratio=<median with>/<median without>, each round's with/without ratio and their median
# (pair_ratio_median: adjacent runs, so slow drifts of the machine cancel) with the interval that
# holds the true median with >= 90 % confidence (order statistics), and the medians of
# p99 with and without.
# Each run also prints the CPU time spent per request (nginx worker + wrk + the consumer, user
# + system, from /proc and getrusage: tracepoint programs run in the traced tasks' system
# time); its ratio (cpu_ratio=<median without>/<median with>) depends much less than req/s on
# what else the machine runs, so it is the steadier figure on a shared machine.
set -euo pipefail
SECS=${1:-10}
ROUNDS=${2:-3}
MODE=${3:-all}
CONNS=${CONNS:-32}
THREADS=${THREADS:-1}
CAPTURE_BYTES=${CAPTURE_BYTES:-256}
FILE_BYTES=${FILE_BYTES:-612}
[[ $(id -u) == 0 ]] || { echo "run as root (loads eBPF programs)" >&2; exit 1; }
command -v wrk >/dev/null || { echo "wrk missing: apt-get install -y wrk" >&2; exit 1; }
command -v nginx >/dev/null || { echo "nginx missing: apt-get install -y nginx-light" >&2; exit 1; }
cd "$(dirname "$0")/../../.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target-app}
if [[ -n ${AGENT:-} ]]; then
  [[ $MODE == all ]] || { echo "AGENT runs with default discovery: mode all only" >&2; exit 1; }
elif [[ -n ${FLOOR_OBJ:-} ]]; then
  [[ -n ${TP_ATTACH:-} ]] || cargo build -q --release -p tapline-ebpf --example attach_object
  TP_ATTACH=${TP_ATTACH:-$CARGO_TARGET_DIR/release/examples/attach_object}
elif [[ -z ${APP_BENCH:-} ]]; then
  cargo build -q --release -p tapline-ebpf --example app_bench
fi
BENCH=${APP_BENCH:-$CARGO_TARGET_DIR/release/examples/app_bench}
STATS_WAS=$(sysctl -n kernel.bpf_stats_enabled)
[[ ${STATS:-0} == 1 ]] && sysctl -qw kernel.bpf_stats_enabled=1

DIR=$(mktemp -d /tmp/tapline-app-overhead.XXXXXX)
NGINX_PID=
cleanup() {
  sysctl -qw kernel.bpf_stats_enabled="$STATS_WAS"
  [[ -n $NGINX_PID ]] && kill "$NGINX_PID" 2>/dev/null && wait "$NGINX_PID" 2>/dev/null
  rm -rf "$DIR"
}
trap cleanup EXIT
source crates/receivers/scripts/agent_config.sh
refuse_if_capture_attached
start_bench_nginx "$DIR" "$FILE_BYTES"
WRK=(wrk)
if [[ ${PIN:-0} == 1 ]]; then
  taskset -pc 0 "$WORKER" > /dev/null
  WRK=(taskset -c 1 wrk)
fi
ONLY=()
[[ $MODE == only-nginx ]] && ONLY=(--only "$WORKER")
AGENT_CONFIG=${AGENT_CONFIG:-default}
AGENT_ARGS=()
if [[ -n ${AGENT:-} && $AGENT_CONFIG == default ]]; then
  PROM=9400 TEL=9401
elif [[ -n ${AGENT:-} && $AGENT_CONFIG == server ]]; then
  PROM=9400 TEL=9401
  AGENT_ARGS=(--config "$DIR/agent.yaml")
  sed "s|^  app: {}|  app: { discovery: { instrument: [{ open_ports: \"$PORT\" }] } }|" configs/default.yaml > "$DIR/agent.yaml"
  grep -q "open_ports: \"$PORT\"" "$DIR/agent.yaml" || { echo "configs/default.yaml: no '  app: {}' line to edit" >&2; exit 1; }
elif [[ -n ${AGENT:-} ]]; then
  [[ $AGENT_CONFIG == spans ]] || { echo "AGENT_CONFIG is default, server or spans" >&2; exit 1; }
  AGENT_ARGS=(--config "$DIR/agent.yaml")
  PROM=$(free_port) TEL=$(free_port)
  app_agent_config "$DIR/agent.yaml" "$PROM" "$TEL" info "$CAPTURE_BYTES"
fi
# requests of route / the agent counted so far
agent_count() {
  curl -s "http://127.0.0.1:$PROM/metrics" |
    awk '/^http_server_request_duration_seconds_count/ && /http_route="\/"/ {s += $NF} END {print s + 0}'
}
[[ -n ${AGENT:-} ]] && echo "agent $AGENT, configuration $AGENT_CONFIG"
echo "nginx master=$NGINX_PID worker=$WORKER port=$PORT mode=$MODE pin=${PIN:-0} wrk -t$THREADS -c$CONNS -d${SECS}s capture_bytes=$CAPTURE_BYTES file=$FILE_BYTES"

TCK=$(getconf CLK_TCK)
# "<req/s> <p99 in ms> <cpu µs per request>" from wrk --latency (it prints the percentile with a
# unit: us, ms or s) and the CPU time of the nginx worker, wrk and, if given, process $1 (the
# total, then nginx, wrk and $1 alone)
run_wrk() {
  local extra=${1:-} n0 n1 e0=0 e1=0
  n0=$(cpu_ticks "$WORKER"); [[ -n $extra ]] && e0=$(cpu_ticks "$extra")
  /usr/bin/time -f '%U %S' -o "$DIR/wrk.cpu" "${WRK[@]}" --latency -t"$THREADS" -c"$CONNS" -d"${SECS}s" "http://127.0.0.1:$PORT/" | awk '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    /Requests\/sec/ {rps = $2} /requests in/ {reqs = $1} $1 == "99%" {p99 = ms($2)}
    END {print rps, p99, reqs}' > "$DIR/wrk.out"
  n1=$(cpu_ticks "$WORKER"); [[ -n $extra ]] && e1=$(cpu_ticks "$extra")
  read -r rps p99 reqs < "$DIR/wrk.out"
  read -r wu ws < "$DIR/wrk.cpu"
  awk -v r="$rps" -v p="$p99" -v q="$reqs" -v t="$TCK" -v n=$((n1 - n0)) -v e=$((e1 - e0)) -v w="$wu" -v s="$ws" \
    'BEGIN {printf "%s %s %.2f %.2f %.2f %.2f\n", r, p, ((n + e) / t + w + s) * 1e6 / q, n / t * 1e6 / q, (w + s) * 1e6 / q, e / t * 1e6 / q}'
}
without=() with=() p99_without=() p99_with=() cpu_without=() cpu_with=()
wrk -t1 -c4 -d2s "http://127.0.0.1:$PORT/" >/dev/null  # warm up
for r in $(seq "$ROUNDS"); do
  read -r rps p99 cpu cn cw _ < <(run_wrk); without+=("$rps"); p99_without+=("$p99"); cpu_without+=("$cpu")
  echo "round $r without capture: $rps req/s, p99 $p99 ms, cpu $cpu µs/req (nginx $cn, wrk $cw)"
  if [[ -n ${AGENT:-} ]]; then
    "$AGENT" run "${AGENT_ARGS[@]}" > "$DIR/bench.out" 2> "$DIR/bench.err" &
  elif [[ -n ${FLOOR_OBJ:-} ]]; then
    "$TP_ATTACH" "$FLOOR_OBJ" $((SECS + 3)) > "$DIR/bench.out" 2> "$DIR/bench.err" &
  else
    "$BENCH" $((SECS + 3)) --capture-bytes "$CAPTURE_BYTES" "${ONLY[@]}" > "$DIR/bench.out" 2> "$DIR/bench.err" &
  fi
  BPID=$!
  for _ in $(seq 100); do grep -q attached "$DIR/bench.err" 2>/dev/null && break; sleep 0.1; done
  if [[ -n ${AGENT:-} ]]; then
    # ready once a request shows in its metrics (the pipeline runs, not only the capture)
    for _ in $(seq 100); do
      curl -s -o /dev/null "http://127.0.0.1:$PORT/"
      [[ $(agent_count) -gt 0 ]] && break
      sleep 0.2
    done
    counted0=$(agent_count)
  fi
  [[ ${STATS:-0} == 1 ]] && bpftool -j prog show > "$DIR/stats.before"
  # PROFILE: perf record -a -g over the middle of round 1's run with the capture
  PERF_PID=
  if [[ -n ${PROFILE:-} && $r == 1 ]]; then
    (sleep 1; perf record -q -a -g -o "$PROFILE" sleep $((SECS - 2)) > /dev/null 2>&1) &
    PERF_PID=$!
  fi
  read -r rps p99 cpu cn cw cb < <(run_wrk "$BPID"); with+=("$rps"); p99_with+=("$p99"); cpu_with+=("$cpu")
  [[ -n $PERF_PID ]] && wait "$PERF_PID"
  [[ ${STATS:-0} == 1 ]] && bpftool -j prog show > "$DIR/stats.after"
  if [[ -n ${AGENT:-} ]]; then
    # until the last metrics interval reached the exporter (at most 15 s)
    reqs=$(awk '{print $3}' "$DIR/wrk.out")
    for _ in $(seq 30); do
      counted=$(( $(agent_count) - counted0 ))
      (( counted >= reqs )) && break
      sleep 0.5
    done
    lost=$(curl -s "http://127.0.0.1:$TEL/metrics" | awk '/^tapline_ebpf_events_lost_total/ {s += $NF} END {print s + 0}')
    kill -INT "$BPID"
    echo "agent counted $counted of wrk's $(awk '{print $3}' "$DIR/wrk.out") requests, lost events $lost" > "$DIR/bench.out"
  fi
  wait "$BPID" || { cat "$DIR/bench.err" >&2; exit 1; }
  echo "round $r with capture:    $rps req/s, p99 $p99 ms, cpu $cpu µs/req (nginx $cn, wrk $cw, consumer $cb)   $(cat "$DIR/bench.out")"
  if [[ ${STATS:-0} == 1 ]]; then
    # per program (names cut at 15 characters by the kernel): runs, ns/run, runs per request
    python3 - "$DIR/stats.before" "$DIR/stats.after" "$rps" "$SECS" <<'PY'
import json, sys
before = {p["id"]: p for p in json.load(open(sys.argv[1]))}
after = json.load(open(sys.argv[2]))
reqs = float(sys.argv[3]) * float(sys.argv[4])
tot_ns = tot_runs = 0
for p in sorted(after, key=lambda p: p.get("name", "")):
    b = before.get(p["id"], {})
    runs = p.get("run_cnt", 0) - b.get("run_cnt", 0)
    ns = p.get("run_time_ns", 0) - b.get("run_time_ns", 0)
    if runs <= 0 or p.get("type") not in ("tracepoint", "tracing", "raw_tracepoint"):
        continue
    tot_ns += ns; tot_runs += runs
    print(f"  {p['name']:<16} runs={runs:>9} ns/run={ns / runs:7.0f} runs/req={runs / reqs:5.2f}")
if tot_runs:
    print(f"  total: {tot_runs / reqs:.2f} runs/req, {tot_ns / reqs:.0f} ns of BPF per request")
PY
  fi
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
mw=$(median "${without[@]}"); mc=$(median "${with[@]}")
echo "median without=$mw with=$mc"
awk -v a="$mc" -v b="$mw" 'BEGIN {printf "ratio=%.3f\n", a/b}'
# each round's with/without (adjacent runs: slow drifts of the machine cancel), and their median
pairs=()
for i in "${!with[@]}"; do pairs+=("$(awk -v a="${with[$i]}" -v b="${without[$i]}" 'BEGIN {printf "%.3f", a/b}')"); done
echo "pair_ratios=${pairs[*]} pair_ratio_median=$(median "${pairs[@]}")"
# where the true median of pair ratios lies, with >= 90 % confidence: the order statistics
# x(k) and x(n+1-k) with the largest k whose binomial coverage is still >= 0.90 (no assumption
# on the pairs' distribution); too few pairs for 90 % gives the full range
python3 - "${pairs[@]}" <<'PY'
import math, sys
x = sorted(float(v) for v in sys.argv[1:])
n = len(x)
def coverage(k):  # P(x(k) <= median <= x(n+1-k)) = 1 - 2 P(Binomial(n, 1/2) < k)
    return 1 - 2 * sum(math.comb(n, i) for i in range(k)) / 2 ** n
k = 1
while k + 1 <= n // 2 and coverage(k + 1) >= 0.90:
    k += 1
print(f"pair_ratio_median {100 * coverage(k):.0f} % interval: {x[k - 1]:.3f} .. {x[n - k]:.3f} ({n} pairs)")
PY
pw=$(median "${p99_without[@]}"); pc=$(median "${p99_with[@]}")
awk -v a="$pc" -v b="$pw" 'BEGIN {printf "p99 median without=%.3f ms with=%.3f ms (+%.3f ms, x%.2f)\n", b, a, a - b, a / b}'
cw=$(median "${cpu_without[@]}"); cc=$(median "${cpu_with[@]}")
awk -v a="$cc" -v b="$cw" 'BEGIN {printf "cpu µs/req median without=%.2f with=%.2f (+%.2f) cpu_ratio=%.3f\n", b, a, a - b, b / a}'
if [[ -n ${PROFILE:-} ]]; then
  # share of each process and of the capture's kernel symbols in the profile
  perf report -i "$PROFILE" --no-children --sort comm,sym --stdio -g none 2>/dev/null | awk -v data="$PROFILE" '
    /%/ {
      p = $1; sub("%", "", p); comm[$2] += p
      if ($4 ~ /^(bpf_prog_|bpf_trace_run|bpf_ringbuf|__bpf_ringbuf|bpf_sk_storage|copy_from_user_nofault|bpf_probe_read|bpf_task_pt_regs|bpf_get_current)/) { sym[$4] += p; cap += p }
    }
    END {
      for (c in comm) if (comm[c] >= 0.5) printf "profile: process %-20s %6.2f %%\n", c, comm[c]
      for (x in sym) if (sym[x] >= 0.05) printf "profile:   %-55s %5.2f %%\n", x, sym[x]
      printf "profile: capture kernel symbols in all: %.2f %% (perf report -i %s)\n", cap, data
    }'
fi
