# summary: what the TLS capture (libssl uprobes) costs nginx over HTTPS: wrk rounds with nothing attached, the socket capture only, and the capture with the libssl probes (app_bench --tls); req/s
# needs: root, nginx, wrk, curl, openssl
# usage: [seconds=10] [rounds=3] [mode=all|only-nginx]   (only-nginx: pid filter and probes scoped to nginx's worker, wrk takes no uprobe traps)   env: CONNS=32, CAPTURE_BYTES=256, FILE_BYTES=612
SECS=$(arg 1 10 1)
ROUNDS=$(arg 2 3 1)
MODE=$(arg 3 all all)
CONNS=${CONNS:-32}
CAPTURE_BYTES=${CAPTURE_BYTES:-256}
FILE_BYTES=${FILE_BYTES:-612}
need_root
need_tools nginx wrk curl openssl
refuse_if_capture_attached
APP_BENCH=$(example tapline-ebpf app_bench)
start_nginx "$BENCH_DIR" "$FILE_BYTES" tls
ONLY=()
case $MODE in
all) ;;
only-nginx) ONLY=(--only "$WORKER") ;;
*) die "mode is all or only-nginx, not '$MODE'" ;;
esac
run_wrk() { wrk -t1 -c"$CONNS" -d"${SECS}s" "$URL" | awk '/Requests\/sec/ {print $2}'; }
# run_with ARGS...: one wrk run with app_bench attached
run_with() {
  "$APP_BENCH" 3600 --capture-bytes "$CAPTURE_BYTES" "${ONLY[@]}" "$@" > "$BENCH_DIR/bench.out" 2> "$BENCH_DIR/bench.err" &
  local pid=$!
  on_exit kill_wait "$pid"
  wait_line "$BENCH_DIR/bench.err" attached
  run_wrk
  kill -TERM "$pid"
  wait "$pid" || true
}
none=() capture=() tls=()
wrk -t1 -c4 -d1s "$URL" > /dev/null # warm up
for r in $(seq "$ROUNDS"); do
  none+=("$(run_wrk)")
  capture+=("$(run_with)")
  tls+=("$(run_with --tls)")
  echo "round $r: none ${none[-1]}, capture ${capture[-1]}, capture + TLS probes ${tls[-1]} req/s"
done
mn=$(median "${none[@]}") mc=$(median "${capture[@]}") mt=$(median "${tls[@]}")
emit "HTTPS requests per second, socket capture only (median of rounds)" "$mc" "req/s" "$mn"
emit "HTTPS requests per second, capture + libssl probes (median of rounds)" "$mt" "req/s" "$mn"
