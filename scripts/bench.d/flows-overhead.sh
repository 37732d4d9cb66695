# summary: flows tc programs' cost to traffic: iperf3 TCP throughput and a 64-byte UDP flood over a veth pair, rounds rotating nothing attached / the capture / an empty classifier (the hook alone)
# needs: root, iperf3, clang
# usage: [rounds=3] [seconds=5]   env: STATS=1 (also the programs' ns per run during the UDP flood, from bpf_stats, which adds its own clock reads to every run)
ROUNDS=$(arg 1 3 1)
SECS=$(arg 2 5 1)
need_root
need_tools iperf3 clang ip
FLOWS_ATTACH=$(example tapline-ebpf flows_attach)
ATTACH_OBJECT=$(example tapline-ebpf attach_object)
# aya maps the section "classifier" to a sched_cls program
cat > "$BENCH_DIR/empty.c" << 'C'
__attribute__((section("classifier"), used)) int empty(void *skb) { return -1; /* TC_ACT_UNSPEC */ }
char LICENSE[] __attribute__((section("license"), used)) = "GPL";
C
bpf_object "$BENCH_DIR/empty.c" "$BENCH_DIR/empty.o"

A="tlbench-a-$$" B="tlbench-b-$$"
netns_pair "$A" "$B" 10.78.0.1 10.78.0.2
# client and server each on their own CPU: less scheduler noise between runs
ip netns exec "$B" taskset -c 1 iperf3 -s -B 10.78.0.2 > /dev/null 2>&1 &
on_exit kill_wait $!
sleep 1

CAP=
# attach 1: the capture (it stops when its stdin closes); attach 2: the empty classifier
attach() {
  : > "$BENCH_DIR/cap.log"
  if [[ $1 == 2 ]]; then
    ip netns exec "$A" "$ATTACH_OBJECT" "$BENCH_DIR/empty.o" 600 va 2> "$BENCH_DIR/cap.log" &
    CAP=$!
  else
    mkfifo "$BENCH_DIR/stdin"
    ip netns exec "$A" "$FLOWS_ATTACH" --quiet --interval-ms 1000 --seconds 600 va < "$BENCH_DIR/stdin" > "$BENCH_DIR/cap.log" 2>&1 &
    CAP=$!
    exec 9> "$BENCH_DIR/stdin"
    rm -f "$BENCH_DIR/stdin"
  fi
  on_exit kill_wait "$CAP"
  wait_line "$BENCH_DIR/cap.log" attached
}
detach() {
  if [[ $1 == 2 ]]; then kill_wait "$CAP"; else exec 9>&-; wait "$CAP" || true; fi
}
tcp() {
  ip netns exec "$A" taskset -c 0 iperf3 -c 10.78.0.2 -t "$SECS" -J |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"])'
}
udp() {
  ip netns exec "$A" taskset -c 0 iperf3 -c 10.78.0.2 -u -l 64 -b 0 -t "$SECS" -J |
    python3 -c 'import json,sys; s=json.load(sys.stdin)["end"]["sum"]; print((s["packets"]-s["lost_packets"])/s["seconds"])'
}

[[ ${STATS:-0} == 1 ]] && { need_tools bpftool; bpf_stats_on; }
# prog_ns NAME_REGEX: total run_time_ns and run_cnt of the programs whose name matches
prog_ns() {
  bpftool -j prog show | python3 -c '
import json, re, sys
ps = [p for p in json.load(sys.stdin) if re.fullmatch(sys.argv[1], p.get("name", ""))]
print(sum(p.get("run_time_ns", 0) for p in ps), sum(p.get("run_cnt", 0) for p in ps))' "$1"
}
PROGS=("" "tapline_tc_(in|out)" "empty")
ARMS=(without capture empty)
: > "$BENCH_DIR/rows"
: > "$BENCH_DIR/stats"
for r in $(seq "$ROUNDS"); do
  # rotate which arm goes first, so that a drift of the machine cancels
  case $((r % 3)) in 1) order="0 1 2" ;; 2) order="1 2 0" ;; 0) order="2 0 1" ;; esac
  for arm in $order; do
    [[ $arm != 0 ]] && attach "$arm"
    t=$(tcp)
    if [[ ${STATS:-0} == 1 && $arm != 0 ]]; then
      read -r ns0 runs0 < <(prog_ns "${PROGS[$arm]}")
      u=$(udp)
      read -r ns1 runs1 < <(prog_ns "${PROGS[$arm]}")
      ((runs1 > runs0)) && echo "$arm $(calc "($ns1 - $ns0) / ($runs1 - $runs0)")" >> "$BENCH_DIR/stats"
    else
      u=$(udp)
    fi
    [[ $arm != 0 ]] && detach "$arm"
    echo "round $r ${ARMS[$arm]}: tcp $(calc "$t / 1e9") Gbit/s, udp-64B $u pkt/s"
    echo "$r $arm $t $u" >> "$BENCH_DIR/rows"
  done
done
# medians over the rounds; the ratio is the median of each round's with/without
python3 - "$BENCH_DIR/rows" << 'PY' | while IFS=$'\t' read -r fig val unit base; do emit "$fig" "$val" "$unit" "$base"; done
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    r, arm, t, u = line.split()
    runs.setdefault(r, {})[int(arm)] = (float(t), float(u))
for i, name, unit, scale in ((0, "TCP throughput", "Gbit/s", 1e-9), (1, "UDP 64-byte flood", "packets/s", 1)):
    med = [statistics.median(v[a][i] for v in runs.values()) * scale for a in range(3)]
    print(f"{name}, capture attached\t{med[1]:.3f}\t{unit}\t{med[0]:.3f}")
    print(f"{name}, empty classifier attached\t{med[2]:.3f}\t{unit}\t{med[0]:.3f}")
    ratio = statistics.median(v[1][i] / v[0][i] for v in runs.values())
    print(f"{name}, capture/without (median of rounds)\t{ratio:.3f}\tratio\t")
PY
if [[ ${STATS:-0} == 1 ]]; then
  cap=$(median $(awk '$1 == 1 {print $2}' "$BENCH_DIR/stats"))
  empty=$(median $(awk '$1 == 2 {print $2}' "$BENCH_DIR/stats"))
  emit "program run during the UDP flood, capture (bpf_stats, median of rounds)" "$cap" "ns per run" "$empty" "baseline: the empty classifier"
fi
