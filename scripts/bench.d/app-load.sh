# summary: agent CPU and memory while the app receiver (spans built, metrics to Prometheus) watches nginx serve about 5,000 requests/s (wrk paced by a 10 ms Lua delay), and whether it counted every request nginx logged
# needs: root, nginx, wrk, curl
# usage: [tapline binary=target/release/tapline (built)] [seconds=10]
BIN=$(arg 1 "" "")
SECS=$(arg 2 10 2)
need_root
need_tools nginx wrk curl
refuse_if_capture_attached
[[ -n $BIN ]] || BIN=$(release_bin)
start_nginx "$BENCH_DIR" 17 "" access_log
PROM=$(free_port) TEL=$(free_port)
app_agent_config "$BENCH_DIR/config.yaml" "$PROM" "$TEL" warn
"$BIN" run --config "$BENCH_DIR/config.yaml" > "$BENCH_DIR/tapline.log" 2>&1 &
PID=$!
on_exit kill_wait "$PID"
# ready when a warm-up request shows in tapline's metrics
for _ in $(seq 60); do
  curl -s -o /dev/null "${URL}warmup" || true
  (($(metric_sum "http://127.0.0.1:$PROM/metrics" http_server_request_duration_seconds_count 'http_route="/warmup"') > 0)) && break
  kill -0 "$PID" 2> /dev/null || { cat "$BENCH_DIR/tapline.log" >&2; die "tapline exited"; }
  sleep 0.5
done
(($(metric_sum "http://127.0.0.1:$PROM/metrics" http_server_request_duration_seconds_count 'http_route="/warmup"') > 0)) ||
  { cat "$BENCH_DIR/tapline.log" >&2; die "tapline saw no request"; }
status() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$PID/status"; }
(while sleep 1; do status VmRSS; done) > "$BENCH_DIR/rss" &
SAMPLER=$!
on_exit kill_wait "$SAMPLER"
logged0=$(wc -l < "$BENCH_DIR/access.log")
echo 'function delay() return 10 end' > "$BENCH_DIR/pace.lua"
cpu0=$(cpu_ticks "$PID")
t0=$(date +%s.%N)
wrk -t2 -c50 -d"${SECS}s" -s "$BENCH_DIR/pace.lua" "${URL}index.html" > "$BENCH_DIR/wrk.txt"
cpu1=$(cpu_ticks "$PID")
t1=$(date +%s.%N)
kill_wait "$SAMPLER"
logged=$(($(wc -l < "$BENCH_DIR/access.log") - logged0))
# until the last metrics interval reached the exporter
for _ in $(seq 20); do
  seen=$(metric_sum "http://127.0.0.1:$PROM/metrics" http_server_request_duration_seconds_count 'http_route="/index.html"')
  ((seen >= logged)) && break
  sleep 0.5
done
lost=$(metric_sum "http://127.0.0.1:$TEL/metrics" tapline_ebpf_events_lost_total)
wall=$(calc "$t1 - $t0")
echo "nginx logged $logged requests, tapline counted $seen, lost events $lost"
emit "requests per second served" "$(calc "$logged / $wall")" "req/s"
emit "agent CPU" "$(calc "100 * ($cpu1 - $cpu0) / $CLK_TCK / $wall")" "% of one core"
emit "agent CPU per request" "$(calc "1e6 * ($cpu1 - $cpu0) / $CLK_TCK / $logged")" "µs"
emit "agent resident memory (VmRSS), highest sample" "$(calc "$(sort -n "$BENCH_DIR/rss" | tail -1) / 1024")" "MiB"
emit "agent peak resident memory (VmHWM)" "$(calc "$(status VmHWM) / 1024")" "MiB"
emit "requests the agent counted" "$seen" "requests" "$logged" "baseline: lines in nginx's access log"
emit "events lost" "$lost" "events"
