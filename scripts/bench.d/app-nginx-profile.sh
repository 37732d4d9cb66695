# summary: where the app capture's time goes inside nginx's worker: perf samples of the worker under wrk, alternating runs without and with the capture, as ns per request per kernel symbol
# needs: root, nginx, wrk, curl, perf
# usage: [seconds=5] [pairs=2]   env: AGENT (tapline binary, default configuration; the default), APP_BENCH (the capture with a counting consumer instead), CONNS=32, FILE_BYTES=612
SECS=$(arg 1 5 1)
PAIRS=$(arg 2 2 1)
CONNS=${CONNS:-32}
FILE_BYTES=${FILE_BYTES:-612}
need_root
need_tools nginx wrk perf curl
refuse_if_capture_attached
if [[ -n ${APP_BENCH:-} ]]; then
  CAPTURE=("$APP_BENCH" 3600)
else
  AGENT=${AGENT:-$(release_bin)}
  PROM=$(free_port) TEL=$(free_port)
  default_agent_config "$BENCH_DIR/agent.yaml" "$PROM" "$TEL"
  CAPTURE=("$AGENT" run --config "$BENCH_DIR/agent.yaml")
fi
start_nginx "$BENCH_DIR" "$FILE_BYTES"
wrk -t1 -c4 -d1s "$URL" > /dev/null # warm up
run=0
: > "$BENCH_DIR/samples"
for _ in $(seq "$PAIRS"); do
  for arm in without with; do
    run=$((run + 1))
    CPID=
    if [[ $arm == with ]]; then
      "${CAPTURE[@]}" > "$BENCH_DIR/capture.out" 2> "$BENCH_DIR/capture.err" &
      CPID=$!
      on_exit kill_wait "$CPID"
      wait_line "$BENCH_DIR/capture.err" attached
      sleep 2 # start-up work settled
    fi
    # perf starts a second before wrk and stops a second after it: its start-up (reading the
    # kernel's symbols) takes a while on a loaded machine, and the worker is idle outside wrk
    perf record -F 4000 -t "$WORKER" -o "$BENCH_DIR/$run.perf" sleep $((SECS + 2)) > /dev/null 2>&1 &
    PERF=$!
    sleep 1
    t0=$(cpu_ticks "$WORKER")
    reqs=$(wrk -t1 -c"$CONNS" -d"${SECS}s" "$URL" | awk '/requests in/ {print $1}')
    t1=$(cpu_ticks "$WORKER")
    wait "$PERF"
    [[ -n $CPID ]] && { kill -TERM "$CPID"; wait "$CPID" || true; }
    echo "run $run $arm: $reqs requests, nginx worker $(((t1 - t0) * 1000000000 / CLK_TCK / reqs)) ns/request"
    perf report -i "$BENCH_DIR/$run.perf" --no-children -g none --sort sym -F sample,sym --stdio 2> /dev/null |
      awk -v run="$run" -v arm="$arm" -v reqs="$reqs" '/^ *[0-9]+ +\[/ {n = $1; $1 = ""; $2 = ""; sub(/^ +/, ""); print run "\t" arm "\t" reqs "\t" n "\t" $0}' >> "$BENCH_DIR/samples"
  done
done
python3 - "$BENCH_DIR/samples" << 'PY' | while IFS=$'\t' read -r fig val unit base; do emit "$fig" "$val" "$unit" "$base"; done
import re, sys
# perf samples at 4000 Hz: 250 µs each; per request over all runs of an arm
reqs = {"without": 0, "with": 0}
runs, samples = set(), {"without": {}, "with": {}}
for line in open(sys.argv[1]):
    run, arm, r, n, sym = line.rstrip("\n").split("\t")
    if run not in runs:
        runs.add(run)
        reqs[arm] += int(r)
    samples[arm][sym] = samples[arm].get(sym, 0) + int(n)
for arm in reqs:
    if reqs[arm] == 0:
        sys.exit(f"perf recorded no sample of nginx's worker in the runs {arm} the capture")
ns = lambda arm, sym: samples[arm].get(sym, 0) * 250_000 / reqs[arm]
capture = re.compile(r"bpf|ringbuf|copy_from_user_nofault|check_object_size|check_heap_object|"
                     r"virt_addr_valid|call_trace_sock|read_tsc|ktime_get_mono_fast|sk_storage|task_storage")
total = lambda arm: sum(ns(arm, s) for s in samples[arm])
added = 0.0
for s in sorted(set(samples["with"]) | set(samples["without"])):
    if capture.search(s) and not s.startswith("bpf_lsm_"):  # LSM hooks run anyway
        d = ns("with", s) - ns("without", s)
        added += d
        if abs(d) >= 5:
            print(f"symbol {s}, added per request\t{d:.0f}\tns\t", file=sys.stderr)
print(f"nginx worker per request (sampled)\t{total('with'):.0f}\tns\t{total('without'):.0f}")
print(f"the capture's kernel path in the worker, per request\t{added:.0f}\tns\t")
print(f"everything else in the worker, change per request\t{total('with') - total('without') - added:.0f}\tns\t")
PY
