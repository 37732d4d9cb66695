# summary: OTLP receive -> export pass-through beside rotel in the same run: a load generator sends 1,000-span gRPC batches to the candidate, which forwards them to a sink (a second tapline); spans delivered per CPU-second of the candidate
# needs: python3; rotel (pip install rotel) for the baseline, else tapline alone
# usage: [seconds per candidate=10]
#
# The sink counts what each candidate delivered (spans accepted but not delivered do not count);
# each candidate's CPU time comes from /proc, so the figure is spans per CPU-second even though
# generator, candidate and sink share the machine's cores. The baseline is rotel's figure; when
# rotel is not installed tapline is measured alone and the figure's note says so.
SECS=$(arg 1 10 2)
need_tools python3
TAPLINE=$(release_bin)
LOAD=$(example tapline-exporters otlp_load)
ROTEL=$(command -v rotel-agent || python3 -c 'import rotel, os; print(os.path.join(os.path.dirname(rotel.__file__), "rotel-agent"))' 2> /dev/null || true)

# the sink: OTLP receiver -> nop; it answers as soon as it has taken a batch
SINK_GRPC=$(free_port) SINK_TEL=$(free_port)
cat > "$BENCH_DIR/sink.yaml" << YAML
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
    metrics: {endpoint: "127.0.0.1:$SINK_TEL"}
    logs: {level: warn}
YAML
"$TAPLINE" run --config "$BENCH_DIR/sink.yaml" > "$BENCH_DIR/sink.log" 2>&1 &
on_exit kill_wait $!
wait_port "$SINK_GRPC"
sink_received() { metric_sum "http://127.0.0.1:$SINK_TEL/metrics" tapline_items_accepted_total 'kind="receiver"'; }

# candidate NAME PORT CMD...: starts the candidate, loads it; writes "spans cpu_seconds" to
# $BENCH_DIR/NAME.result
candidate() {
  local name=$1 port=$2
  shift 2
  "$@" > "$BENCH_DIR/$name.log" 2>&1 &
  local pid=$!
  on_exit kill_wait "$pid"
  wait_port "$port"
  local t0 r0 t1 r1
  t0=$(cpu_ticks "$pid") r0=$(sink_received)
  "$LOAD" "127.0.0.1:$port" --seconds "$SECS" --batch 1000 --connections 4 >&2
  sleep 2 # what was accepted drains to the sink
  t1=$(cpu_ticks "$pid") r1=$(sink_received)
  kill_wait "$pid"
  echo "$((r1 - r0)) $(calc "($t1 - $t0) / $CLK_TCK")" > "$BENCH_DIR/$name.result"
  echo "$name: delivered $((r1 - r0)) spans to the sink, CPU $(calc "($t1 - $t0) / $CLK_TCK") s"
}

TP_GRPC=$(free_port) TP_TEL=$(free_port)
cat > "$BENCH_DIR/tapline.yaml" << YAML
receivers:
  otlp:
    protocols:
      grpc: {endpoint: "127.0.0.1:$TP_GRPC", max_recv_msg_size: 16MiB}
exporters:
  otlp:
    endpoint: "127.0.0.1:$SINK_GRPC"
    temporality: delta
    # gateway setting: a full queue stops the pipeline, so the receiver refuses (UNAVAILABLE)
    # instead of accepting spans that would be dropped later
    queue: {size: 64, when_full: block}
service:
  pipelines:
    traces: {receivers: [otlp], exporters: [otlp]}
  telemetry:
    metrics: {endpoint: "127.0.0.1:$TP_TEL"}
    logs: {level: warn}
YAML
candidate tapline "$TP_GRPC" "$TAPLINE" run --config "$BENCH_DIR/tapline.yaml"
read -r t_spans t_cpu < "$BENCH_DIR/tapline.result"
((t_spans > 0)) || die "tapline delivered no span to the sink"
t_rate=$(calc "$t_spans / $t_cpu")
if [[ -x $ROTEL ]]; then
  RO_GRPC=$(free_port) RO_HTTP=$(free_port)
  candidate rotel "$RO_GRPC" "$ROTEL" start --otlp-grpc-endpoint "127.0.0.1:$RO_GRPC" \
    --otlp-http-endpoint "127.0.0.1:$RO_HTTP" --exporter otlp --otlp-exporter-endpoint "http://127.0.0.1:$SINK_GRPC"
  read -r r_spans r_cpu < "$BENCH_DIR/rotel.result"
  emit "spans delivered per CPU-second of the candidate" "$t_rate" "spans/s" "$(calc "$r_spans / $r_cpu")" "baseline: rotel in the same run"
  emit "spans delivered per second (wall)" "$(calc "$t_spans / $SECS")" "spans/s" "$(calc "$r_spans / $SECS")" "baseline: rotel in the same run"
else
  emit "spans delivered per CPU-second of the candidate" "$t_rate" "spans/s" "" "rotel not installed: tapline measured alone"
  emit "spans delivered per second (wall)" "$(calc "$t_spans / $SECS")" "spans/s" "" "rotel not installed: tapline measured alone"
fi
