# summary: what the app receiver costs nginx: wrk against one nginx worker (612-byte file, keep-alive), rounds alternating without and with the capture; req/s, CPU per request, p99, and the agent's count against wrk's
# needs: root, nginx, wrk, curl, bpftool (STATS=1)
# usage: [seconds=5] [rounds=20] [capture=default|server|spans|app_bench|per_call|only-nginx]   env: AGENT (tapline binary), APP_BENCH (app_bench binary), CONNS=32, CAPTURE_BYTES=256, FILE_BYTES=612, PIN=1 (nginx on CPU 0, wrk on CPU 1), STATS=1 (BPF ns per request from bpf_stats)
#
# capture: default  `tapline run`, the embedded default configuration (flows + app, metrics
#                   only), its two endpoints moved to free ports: what a user runs;
#          server   the same, with app.discovery.instrument set to nginx's port, as a user
#                   instruments the service under test (wrk's calls run the hooks, are not
#                   captured, as for a client on another machine);
#          spans    the app receiver alone, metrics to Prometheus and a traces pipeline to nop
#                   (one span built per request and side);
#          app_bench the capture alone with a consumer that decodes and counts events;
#          per_call the same, HTTP/1.x reported per socket call (no framing in the kernel:
#                   the app receiver's `kernel_http_framing: false`);
#          only-nginx the same as app_bench, the pid filter set to nginx's worker.
# Figures: baseline = the rounds without; the pair ratio is each round's with/without
# (adjacent runs, so slow drifts cancel), its median and the interval holding the true median
# with >= 90 % confidence (order statistics).
SECS=$(arg 1 5 1)
ROUNDS=$(arg 2 20 1)
CAPTURE=$(arg 3 default default)
CONNS=${CONNS:-32}
CAPTURE_BYTES=${CAPTURE_BYTES:-256}
FILE_BYTES=${FILE_BYTES:-612}
need_root
need_tools nginx wrk curl
refuse_if_capture_attached

CMD=() AGENT_MODE=0
if [[ -n ${FLOOR_OBJ:-} ]]; then
  CMD=("$(example tapline-ebpf attach_object)" "$FLOOR_OBJ" 3600)
  CAPTURE="empty programs ($FLOOR_KIND)"
else
  case $CAPTURE in
  default | server | spans)
    AGENT=${AGENT:-$(release_bin)}
    AGENT_MODE=1
    PROM=$(free_port) TEL=$(free_port)
    ;;
  app_bench | per_call | only-nginx) APP_BENCH=${APP_BENCH:-$(example tapline-ebpf app_bench)} ;;
  *) die "capture is default, server, spans, app_bench, per_call or only-nginx, not '$CAPTURE'" ;;
  esac
fi
start_nginx "$BENCH_DIR" "$FILE_BYTES"
case $CAPTURE in
default | server)
  default_agent_config "$BENCH_DIR/agent.yaml" "$PROM" "$TEL"
  if [[ $CAPTURE == server ]]; then
    sed -i "s|^  app: {}|  app: { discovery: { instrument: [{ open_ports: \"$PORT\" }] } }|" "$BENCH_DIR/agent.yaml"
    grep -q "open_ports: \"$PORT\"" "$BENCH_DIR/agent.yaml" || die "configs/default.yaml: no '  app: {}' line to edit"
  fi
  CMD=("$AGENT" run --config "$BENCH_DIR/agent.yaml")
  ;;
spans)
  app_agent_config "$BENCH_DIR/agent.yaml" "$PROM" "$TEL" info "$CAPTURE_BYTES"
  CMD=("$AGENT" run --config "$BENCH_DIR/agent.yaml")
  ;;
app_bench) CMD=("$APP_BENCH" 3600 --capture-bytes "$CAPTURE_BYTES") ;;
per_call) CMD=("$APP_BENCH" 3600 --capture-bytes "$CAPTURE_BYTES" --per-call) ;;
only-nginx) CMD=("$APP_BENCH" 3600 --capture-bytes "$CAPTURE_BYTES" --only "$WORKER") ;;
esac
WRK=(wrk)
if [[ ${PIN:-0} == 1 ]]; then
  taskset -pc 0 "$WORKER" > /dev/null
  WRK=(taskset -c 1 wrk)
fi
[[ ${STATS:-0} == 1 ]] && { need_tools bpftool; bpf_stats_on; }
# requests of route / the agent counted so far
agent_count() { metric_sum "http://127.0.0.1:$PROM/metrics" http_server_request_duration_seconds_count 'http_route="/"'; }
echo "nginx worker=$WORKER port=$PORT capture=$CAPTURE wrk -c$CONNS -d${SECS}s rounds=$ROUNDS"

# run_wrk [PID]: one wrk run; writes "<req/s> <p99 ms> <requests> <cpu µs/req of nginx + wrk
# + PID> <PID's cpu µs/req> <nginx worker's cpu µs/req>" to $BENCH_DIR/run
run_wrk() {
  local extra=${1:-} n0 n1 e0=0 e1=0
  n0=$(cpu_ticks "$WORKER")
  [[ -n $extra ]] && e0=$(cpu_ticks "$extra")
  /usr/bin/time -f '%U %S' -o "$BENCH_DIR/wrk.cpu" "${WRK[@]}" --latency -t1 -c"$CONNS" -d"${SECS}s" "$URL" > "$BENCH_DIR/wrk.txt"
  n1=$(cpu_ticks "$WORKER")
  [[ -n $extra ]] && e1=$(cpu_ticks "$extra")
  awk -v t="$CLK_TCK" -v n=$((n1 - n0)) -v e=$((e1 - e0)) -v cpu="$(cat "$BENCH_DIR/wrk.cpu")" '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    /Requests\/sec/ {rps = $2} /requests in/ {reqs = $1} $1 == "99%" {p99 = ms($2)}
    END {split(cpu, w, " "); printf "%s %s %s %.3f %.3f %.3f\n", rps, p99, reqs, ((n + e) / t + w[1] + w[2]) * 1e6 / reqs, e / t * 1e6 / reqs, n / t * 1e6 / reqs}' \
    "$BENCH_DIR/wrk.txt" > "$BENCH_DIR/run"
}

: > "$BENCH_DIR/rounds"
"${WRK[@]}" -t1 -c4 -d1s "$URL" > /dev/null # warm up
lost=0 missed=0
for r in $(seq "$ROUNDS"); do
  run_wrk
  read -r rps0 p990 _ cpu0 _ ngx0 < "$BENCH_DIR/run"
  echo "round $r without: $rps0 req/s, p99 $p990 ms, $cpu0 µs CPU/req"
  "${CMD[@]}" > "$BENCH_DIR/capture.out" 2> "$BENCH_DIR/capture.err" &
  CPID=$!
  on_exit kill_wait "$CPID"
  if ((AGENT_MODE)); then
    # ready once a request shows in its metrics (the pipeline runs, not only the capture)
    counted0=$(wait_agent_counts "$CPID" "$BENCH_DIR/capture.err" agent_count)
  else
    wait_line "$BENCH_DIR/capture.err" attached
  fi
  [[ ${STATS:-0} == 1 ]] && bpftool -j prog show > "$BENCH_DIR/stats.before"
  run_wrk "$CPID"
  read -r rps1 p991 reqs cpu1 cpuc ngx1 < "$BENCH_DIR/run"
  [[ ${STATS:-0} == 1 ]] && bpftool -j prog show > "$BENCH_DIR/stats.after"
  note=
  if ((AGENT_MODE)); then
    # until the last metrics interval reached the exporter (15 s at most)
    for _ in $(seq 30); do
      counted=$(($(agent_count) - counted0))
      ((counted >= reqs)) && break
      sleep 0.5
    done
    l=$(metric_sum "http://127.0.0.1:$TEL/metrics" tapline_ebpf_events_lost_total)
    lost=$(calc "$lost + $l")
    ((reqs - counted > missed)) && missed=$((reqs - counted))
    note="agent counted $counted of wrk's $reqs requests, lost events $l"
  fi
  kill -TERM "$CPID"
  wait "$CPID" || true
  echo "round $r with:    $rps1 req/s, p99 $p991 ms, $cpu1 µs CPU/req (consumer $cpuc) $note"
  echo "$rps0 $rps1 $p990 $p991 $cpu0 $cpu1 $cpuc $ngx0 $ngx1" >> "$BENCH_DIR/rounds"
  if [[ ${STATS:-0} == 1 ]]; then
    python3 - "$BENCH_DIR/stats.before" "$BENCH_DIR/stats.after" "$reqs" >> "$BENCH_DIR/bpf_ns" << 'PY'
import json, sys
before = {p["id"]: p for p in json.load(open(sys.argv[1]))}
ns = 0
for p in json.load(open(sys.argv[2])):
    if p.get("type") in ("tracepoint", "tracing", "raw_tracepoint"):
        ns += p.get("run_time_ns", 0) - before.get(p["id"], {}).get("run_time_ns", 0)
print(ns / float(sys.argv[3]))
PY
  fi
done
python3 - "$BENCH_DIR/rounds" << 'PY' | while IFS=$'\t' read -r fig val unit base note; do emit "$fig" "$val" "$unit" "$base" "$note"; done
import math, statistics, sys
rows = [[float(x) for x in l.split()] for l in open(sys.argv[1])]
col = lambda i: [r[i] for r in rows]
med = lambda i: statistics.median(col(i))
print(f"requests per second (median of rounds)\t{med(1):.0f}\treq/s\t{med(0):.0f}\t")
pairs = sorted(r[1] / r[0] for r in rows)
n = len(pairs)
def coverage(k):  # P(x(k) <= median <= x(n+1-k)) = 1 - 2 P(Binomial(n, 1/2) < k)
    return 1 - 2 * sum(math.comb(n, i) for i in range(k)) / 2 ** n
k = 1
while k + 1 <= n // 2 and coverage(k + 1) >= 0.90:
    k += 1
note = f"{100 * coverage(k):.0f} % interval {pairs[k - 1]:.3f}..{pairs[n - k]:.3f} over {n} rounds"
print(f"requests per second with / without, median of the rounds' ratios\t{statistics.median(pairs):.3f}\tratio\tnull\t{note}")
print(f"CPU per request, nginx worker + wrk + consumer\t{med(5):.2f}\tµs\t{med(4):.2f}\t")
print(f"CPU per request, nginx worker\t{med(8):.2f}\tµs\t{med(7):.2f}\t")
print(f"CPU per request, the consumer alone\t{med(6):.2f}\tµs\tnull\t")
print(f"p99 latency (median of rounds)\t{med(3):.3f}\tms\t{med(2):.3f}\t")
PY
if ((AGENT_MODE)); then
  emit "events lost, all rounds" "$lost" "events"
  emit "requests wrk counted that the agent did not, worst round" "$missed" "requests"
fi
if [[ ${STATS:-0} == 1 ]]; then
  emit "BPF time per request (bpf_stats, median of rounds)" "$(median $(cat "$BENCH_DIR/bpf_ns"))" "ns"
fi
