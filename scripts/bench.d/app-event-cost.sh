# summary: the app capture's cost per socket call on the traced thread alone: two copies of an nginx + wrk style exchange on CPU 0 (5 socket calls per request), one traced and one not, the consumer on CPU 1; the difference of their CPU time per request
# needs: root, 2 CPUs
# usage: [requests=100000] [rounds=10] [ARM...]   ARM: `none` (the copies' own difference), `agent` (tapline, app receiver alone), `app_bench` (the capture with a counting consumer), or LABEL=COMMAND with {A} (traced copy's pid), {B}, {CONFIG} replaced; default arms: none agent
#
# Both copies see the same machine in the same seconds, so the difference of their CPU times
# per request is the capture's cost even on a VM whose speed drifts by 10 %. The `none` arm
# checks the harness (its difference should be ~0) and is the baseline of the others.
REQS=$(arg 1 100000 2000)
ROUNDS=$(arg 2 10 1)
ARMS=("${BENCH_ARGS[@]:2}")
((${#ARMS[@]})) || ARMS=(none agent)
need_root
[[ $(nproc) -ge 2 ]] || die "needs 2 CPUs (the traced copies on CPU 0, the consumer on CPU 1)"
refuse_if_capture_attached
PINGPONG=$(example tapline-ebpf sock_pingpong)
cp "$PINGPONG" "$BENCH_DIR/sock_pingpong"
cp "$PINGPONG" "$BENCH_DIR/sock_pingpong_b"
cat > "$BENCH_DIR/agent.yaml" << YAML
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
command_of() {
  case $1 in
  none) echo none ;;
  agent) echo "$(release_bin) run --config {CONFIG}" ;;
  app_bench) echo "$(example tapline-ebpf app_bench) 3600 --only {A}" ;;
  *=*) echo "${1#*=}" ;;
  *) die "arm is none, agent, app_bench or LABEL=COMMAND, not '$1'" ;;
  esac
}
CMDS=()
for a in "${ARMS[@]}"; do CMDS+=("$(command_of "$a")"); done
cpu_of() { sed -n 's/.*cpu_ns_per_request=\([0-9.]*\).*/\1/p' "$1"; }

: > "$BENCH_DIR/results"
for r in $(seq "$ROUNDS"); do
  for i in "${!ARMS[@]}"; do
    name=${ARMS[$i]%%=*} cmd=${CMDS[$i]}
    rm -f "$BENCH_DIR/go"
    "$BENCH_DIR/sock_pingpong" "$REQS" 0 "$BENCH_DIR/go" > "$BENCH_DIR/a.out" &
    A=$!
    "$BENCH_DIR/sock_pingpong_b" "$REQS" 0 "$BENCH_DIR/go" > "$BENCH_DIR/b.out" &
    B=$!
    on_exit kill_wait "$A"
    on_exit kill_wait "$B"
    CPID=
    if [[ $cmd != none ]]; then
      cmd=${cmd//\{A\}/$A}
      cmd=${cmd//\{B\}/$B}
      cmd=${cmd//\{CONFIG\}/$BENCH_DIR/agent.yaml}
      # word splitting of the command is intended (a path and its arguments)
      # shellcheck disable=SC2086
      taskset -c 1 $cmd > "$BENCH_DIR/consumer.out" 2> "$BENCH_DIR/consumer.err" &
      CPID=$!
      on_exit kill_wait "$CPID"
      wait_line "$BENCH_DIR/consumer.err" attached
      sleep 1 # discovery saw both copies (it polls every 200 ms), start-up work settled
    fi
    touch "$BENCH_DIR/go"
    wait "$A" "$B"
    [[ -n $CPID ]] && { kill -TERM "$CPID"; wait "$CPID" || true; }
    a=$(cpu_of "$BENCH_DIR/a.out") b=$(cpu_of "$BENCH_DIR/b.out")
    echo "round $r $name: traced $a, untraced $b ns CPU per request"
    echo "$name $a $b" >> "$BENCH_DIR/results"
  done
done
python3 - "$BENCH_DIR/results" << 'PY' | while IFS=$'\t' read -r fig val unit base note; do emit "$fig" "$val" "$unit" "$base" "$note"; done
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
diff = {}
for arm, a, b in rows:
    diff.setdefault(arm, []).append(float(a) - float(b))
base = statistics.median(diff["none"]) if "none" in diff else None
for arm, d in diff.items():
    m = statistics.median(d)
    note = f"range {min(d):+.0f}..{max(d):+.0f} over {len(d)} rounds"
    b = "null" if base is None or arm == "none" else f"{base:.0f}"
    print(f"{arm}: traced minus untraced CPU per request\t{m:.0f}\tns\t{b}\t{note}")
    if arm != "none":
        print(f"{arm}: per socket call (5 per request)\t{m / 5:.0f}\tns\tnull\t")
PY
