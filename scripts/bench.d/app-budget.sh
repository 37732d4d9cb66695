# summary: the app receiver's cost per HTTP request with the default configuration (every process traced, both ends): ring-buffer records per request and traced side (nginx + wrk, python http.server + curl), BPF time and program runs per request, agent CPU per request at a fixed rate, every request counted at full rate, and the end-to-end ratios of app-overhead and app-floor
# needs: root, nginx, wrk, curl, python3, bpftool, clang (app-floor)
# usage: [seconds=30] [rounds=10] [rate=20000] [python_requests=2000]   env: AGENT (tapline binary), FILE_BYTES=612, E2E=1 (0: without the end-to-end ratios), E2E_SECS=5 (seconds per end-to-end round)
#
# One agent, `tapline run` with configs/default.yaml (its two endpoints moved to free ports),
# watches one nginx worker serving a FILE_BYTES-byte file over keep-alive (sendfile on):
#   1. records: tapline_ebpf_records_total{receiver="app"} (self-telemetry) over a wrk run at
#      full rate (2 threads, 20 connections, `seconds`), divided by wrk's requests x 2 sides;
#      the same for python's http.server (HTTP/1.1 keep-alive, Content-Length) and one curl
#      fetching `python_requests` URLs over one connection;
#   2. BPF time: bpf_stats over the same wrk run, summed over the programs the agent holds
#      (its fds in /proc), per wrk request: ns and program runs;
#   3. agent CPU (utime + stime of /proc/<pid>/stat) per request while wrk paces `rate`
#      requests/s (wrk_rate_script in lib.sh), and the rate achieved;
#   4. no loss: the agent's http_server_request_duration_seconds_count for nginx's port and
#      route against the requests nginx served in the full-rate run (its stub_status) and
#      wrk's completed requests, and tapline_ebpf_events_lost_total{receiver="app"}: pass when
#      the agent counted what nginx served and lost nothing;
#   5. end to end: `scripts/bench app-overhead <E2E_SECS> <rounds> default` and `scripts/bench
#      app-floor <E2E_SECS> <rounds>` (rounds alternating without / with), their ratios.
# Every process on the host is traced, so records of other processes' socket calls during a
# run are counted too: the note of each records figure gives the rate measured while idle.
SECS=$(arg 1 30 2)
ROUNDS=$(arg 2 10 1)
RATE=$(arg 3 20000 20000)
PY_REQS=$(arg 4 2000 50)
FILE_BYTES=${FILE_BYTES:-612}
E2E_SECS=${E2E_SECS:-$([[ $QUICK == 1 ]] && echo 1 || echo 5)}
need_root
need_tools nginx wrk curl python3 bpftool
refuse_if_capture_attached
AGENT=${AGENT:-$(release_bin)}

start_nginx "$BENCH_DIR" "$FILE_BYTES"
PROM=$(free_port) TEL=$(free_port)
default_agent_config "$BENCH_DIR/agent.yaml" "$PROM" "$TEL"
"$AGENT" run --config "$BENCH_DIR/agent.yaml" > "$BENCH_DIR/agent.out" 2> "$BENCH_DIR/agent.err" &
APID=$!
on_exit kill_wait "$APID"
# served ROUTE: requests of nginx's port and ROUTE the agent counted (server side)
served() { metric_sum "http://127.0.0.1:$PROM/metrics" http_server_request_duration_seconds_count "http_route=\"$1\"" "server_port=\"$PORT\""; }
ready_count() { served /; }
# records taken so far; read 1 s after the traffic stopped: the receiver polls its ring buffer
# at least every 200 ms (its span flush), so what the last requests and closes wrote is in
records() { sleep 1; metric_sum "http://127.0.0.1:$TEL/metrics" tapline_ebpf_records_total 'receiver="app"'; }
lost() { metric_sum "http://127.0.0.1:$TEL/metrics" tapline_ebpf_events_lost_total 'receiver="app"'; }
wait_agent_counts "$APID" "$BENCH_DIR/agent.err" ready_count > /dev/null
echo "agent pid $APID, nginx worker $WORKER on port $PORT"

# Background: what the other processes of the host add while nothing is measured.
r0=$(records)
t0=$(date +%s.%N)
r1=$(records)
[[ $QUICK == 1 ]] || r1=$(sleep 2; records)
BG=$(calc "($r1 - $r0) / ($(date +%s.%N) - $t0)")
echo "records while idle: $BG per second"

# ---- full rate: records, BPF time, no loss --------------------------------------------------

bpf_prog_ids "$APID" > "$BENCH_DIR/prog_ids"
[[ -s $BENCH_DIR/prog_ids ]] || die "no BPF program found in /proc/$APID/fdinfo"
bpf_stats_on
wrk -t1 -c4 -d1s "$URL" > /dev/null # warm up
# the measured run asks for /index.html, a route nothing asked for before: the agent's count
# for it starts at 0, and nginx serves nothing else meanwhile
RUN_URL=${URL}index.html
rec0=$(records)
n0=$(nginx_requests)
bpf_prog_stats "$BENCH_DIR/bpf.before"
t0=$(date +%s.%N)
wrk -t2 -c20 -d"${SECS}s" "$RUN_URL" > "$BENCH_DIR/wrk.txt"
t1=$(date +%s.%N)
bpf_prog_stats "$BENCH_DIR/bpf.after"
bpf_stats_off
n1=$(nginx_requests)
cat "$BENCH_DIR/wrk.txt"
reqs=$(awk '/requests in/ {print $1}' "$BENCH_DIR/wrk.txt")
rps=$(awk '/Requests\/sec/ {print $2}' "$BENCH_DIR/wrk.txt")
((reqs > 0)) || die "wrk completed no request"
nginx_served=$((n1 - n0))
rec1=$(records)
# the agent's metrics come every metrics interval (5 s by default): 20 s at most
for _ in $(seq 40); do
  counted=$(served /index.html)
  ((counted >= nginx_served)) && break
  kill -0 "$APID" 2> /dev/null || { cat "$BENCH_DIR/agent.err" >&2; die "the agent exited"; }
  sleep 0.5
done
lost_events=$(lost)
read -r bpf_ns bpf_runs < <(bpf_prog_delta "$BENCH_DIR/bpf.before" "$BENCH_DIR/bpf.after" "$BENCH_DIR/prog_ids")
bg_note="$((rec1 - rec0)) records over $reqs requests in $(calc "$t1 - $t0") s; other processes added ~$BG records/s while idle"
emit "records per request and traced side, nginx + wrk at full rate" "$(calc "($rec1 - $rec0) / ($reqs * 2)")" "records" "" "$bg_note"
emit "BPF time per request, the agent's programs (bpf_stats), nginx + wrk" "$(calc "$bpf_ns / $reqs")" "ns"
emit "BPF program runs per request, the agent's programs, nginx + wrk" "$(calc "$bpf_runs / $reqs")" "runs"
emit "requests per second, nginx + wrk at full rate with the agent (bpf_stats on)" "$rps" "req/s"
result=fail
((counted == nginx_served && lost_events == 0)) && result=pass
echo "no loss: $result (agent counted $counted, nginx served $nginx_served, wrk completed $reqs, events lost $lost_events)"
emit "requests the agent counted at full rate (nginx's port, server side)" "$counted" "requests" "$nginx_served" \
  "$result: baseline = requests nginx served (stub_status); wrk completed $reqs (a request in flight when wrk stops is served, not completed); events lost $lost_events"
emit "events lost at full rate" "$lost_events" "events"
emit "no loss at full rate (agent's count = nginx's, no event lost)" "$([[ $result == pass ]] && echo 1 || echo 0)" "pass"

# ---- a fixed rate: agent CPU per request ----------------------------------------------------

wrk_rate_script "$BENCH_DIR/rate.lua" "$RATE" 2
cpu0=$(cpu_ticks "$APID")
wrk -t2 -c64 -d"${SECS}s" -s "$BENCH_DIR/rate.lua" "$URL" > "$BENCH_DIR/wrk-rate.txt"
cpu1=$(cpu_ticks "$APID")
cat "$BENCH_DIR/wrk-rate.txt"
rreqs=$(awk '/requests in/ {print $1}' "$BENCH_DIR/wrk-rate.txt")
rrps=$(awk '/Requests\/sec/ {print $2}' "$BENCH_DIR/wrk-rate.txt")
((rreqs > 0)) || die "the paced wrk completed no request"
emit "agent CPU per request at a fixed rate, nginx + wrk" "$(calc "1e6 * ($cpu1 - $cpu0) / $CLK_TCK / $rreqs")" "µs" "" \
  "$rrps req/s achieved of $RATE asked; agent at $(calc "100 * ($cpu1 - $cpu0) / $CLK_TCK / $SECS") % of one core"
emit "requests per second achieved by the paced wrk" "$rrps" "req/s" "$RATE" "baseline: the rate asked"

# ---- python http.server + curl, one keep-alive connection -----------------------------------

PYPORT=$(free_port)
python3 - "$PYPORT" > "$BENCH_DIR/python.log" 2>&1 << 'PY' &
import sys, http.server
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"hello")
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
PYPID=$!
on_exit kill_wait "$PYPID"
wait_port "$PYPORT"
curl -s -o /dev/null "http://127.0.0.1:$PYPORT/warmup"
rec0=$(records)
curl -s -w '\n%{http_code} %{num_connects}\n' "http://127.0.0.1:$PYPORT/r/[1-$PY_REQS]" > "$BENCH_DIR/curl.txt"
rec1=$(records)
ok=$(grep -c '^200 ' "$BENCH_DIR/curl.txt" || true)
conns=$(awk '/^200 / {s += $2} END {print s + 0}' "$BENCH_DIR/curl.txt")
((ok == PY_REQS)) || die "curl: $ok of $PY_REQS requests answered 200"
((conns == 1)) || echo "curl opened $conns connections for $PY_REQS requests (expected 1)"
emit "records per request and traced side, python http.server + curl (keep-alive)" "$(calc "($rec1 - $rec0) / ($PY_REQS * 2)")" "records" "" \
  "$((rec1 - rec0)) records over $PY_REQS requests on $conns connection(s); other processes added ~$BG records/s while idle"
kill_wait "$PYPID"
kill_wait "$APID"

# ---- end to end: the entries that measure it ------------------------------------------------

# bench_entry NAME ARGS...: runs another entry of scripts/bench (this one's --quick and AGENT
# passed on); its JSON figures in $BENCH_DIR/NAME.json.
bench_entry() {
  local name=$1 quick=()
  shift
  [[ $QUICK == 1 ]] && quick=(--quick)
  AGENT=$AGENT BUILT=${BUILT:-} "$ROOT/scripts/bench" "$name" "${quick[@]}" "$@" > "$BENCH_DIR/$name.json" ||
    die "scripts/bench $name failed"
}
# ratio_of NAME: "<value>\t<note>" of NAME's req/s with / without figure
ratio_of() {
  python3 - "$BENCH_DIR/$1.json" << 'PY'
import json, sys
for line in open(sys.argv[1]):
    f = json.loads(line)
    if f["figure"].startswith("requests per second with / without"):
        print(f"{f['value']}\t{f.get('note', '')}")
        break
else:
    sys.exit(f"no ratio in {sys.argv[1]}")
PY
}
if [[ ${E2E:-1} == 1 ]]; then
  bench_entry app-overhead "$E2E_SECS" "$ROUNDS" default
  IFS=$'\t' read -r v note < <(ratio_of app-overhead)
  emit "end to end: nginx + wrk req/s with / without the agent (app-overhead default)" "$v" "ratio" "" "$note"
  bench_entry app-floor "$E2E_SECS" "$ROUNDS"
  IFS=$'\t' read -r v note < <(ratio_of app-floor)
  emit "end to end: the same with the hooks' empty programs (app-floor)" "$v" "ratio" "" "$note"
fi
