#!/usr/bin/env bash
# Measures the data-path overhead of the flows tc programs: iperf3 over a veth pair between two
# fresh network namespaces, alternating runs without and with the capture attached (both
# directions of the client's veth), then prints with/without ratios for
#   - TCP throughput (bits/s received), and
#   - a small-packet (64-byte payload) UDP flood (packets/s received).
# Usage (root): crates/ebpf/scripts/overhead.sh [ROUNDS=3] [SECONDS=5]
# Needs iperf3, python3 (JSON parsing) and cargo. Traffic stays inside the two namespaces.
set -euo pipefail
ROUNDS="${1:-3}"
SECS="${2:-5}"
cd "$(dirname "$0")/../../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
cargo build -q --release -p tapline-ebpf --example flows_attach
BIN="$CARGO_TARGET_DIR/release/examples/flows_attach"

A="tlovh-a-$$"; B="tlovh-b-$$"
SRV=""; CAP=""
cleanup() {
  [[ -n "$CAP" ]] && kill "$CAP" 2>/dev/null || true
  [[ -n "$SRV" ]] && kill "$SRV" 2>/dev/null || true
  ip netns del "$A" 2>/dev/null || true
  ip netns del "$B" 2>/dev/null || true
}
trap cleanup EXIT
ip netns add "$A"; ip netns add "$B"
ip -n "$A" link add va type veth peer name vb netns "$B"
ip -n "$A" addr add 10.78.0.1/24 dev va; ip -n "$B" addr add 10.78.0.2/24 dev vb
for ns in "$A" "$B"; do ip -n "$ns" link set lo up; done
ip -n "$A" link set va up; ip -n "$B" link set vb up
# Client and server each on their own CPU: less scheduler noise between runs.
ip netns exec "$B" taskset -c 1 iperf3 -s -B 10.78.0.2 >/dev/null 2>&1 & SRV=$!
sleep 1

start_capture() {
  local fifo; fifo=$(mktemp -u); mkfifo "$fifo"
  ip netns exec "$A" "$BIN" --quiet --interval-ms 1000 --seconds 600 va <"$fifo" >/tmp/tlovh-cap.$$ 2>&1 & CAP=$!
  exec 9>"$fifo"; rm -f "$fifo"
  for _ in $(seq 50); do grep -q attached /tmp/tlovh-cap.$$ 2>/dev/null && return; sleep 0.1; done
  echo "capture did not attach:"; cat /tmp/tlovh-cap.$$; exit 1
}
stop_capture() { exec 9>&-; wait "$CAP" || true; CAP=""; tail -1 /tmp/tlovh-cap.$$; rm -f /tmp/tlovh-cap.$$; }

tcp() {
  ip netns exec "$A" taskset -c 0 iperf3 -c 10.78.0.2 -t "$SECS" -J |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"])'
}
udp() {
  ip netns exec "$A" taskset -c 0 iperf3 -c 10.78.0.2 -u -l 64 -b 0 -t "$SECS" -J |
    python3 -c 'import json,sys; s=json.load(sys.stdin)["end"]["sum"]; print((s["packets"]-s["lost_packets"])/s["seconds"])'
}

declare -A sum=([tcp0]=0 [tcp1]=0 [udp0]=0 [udp1]=0)
RATIOS=""
for r in $(seq "$ROUNDS"); do
  # Alternate which run goes first, so that a drift of the machine cancels out.
  order="0 1"; (( r % 2 == 0 )) && order="1 0"
  declare -A this=()
  for with in $order; do
    [[ $with == 1 ]] && start_capture
    t=$(tcp); u=$(udp)
    [[ $with == 1 ]] && stop_capture
    printf 'round %d %-8s tcp %.3f Gbit/s  udp-64B %.0f pkt/s\n' "$r" "$([[ $with == 1 ]] && echo with || echo without)" \
      "$(python3 -c "print($t/1e9)")" "$u"
    sum[tcp$with]=$(python3 -c "print(${sum[tcp$with]}+$t)")
    sum[udp$with]=$(python3 -c "print(${sum[udp$with]}+$u)")
    this[tcp$with]=$t; this[udp$with]=$u
  done
  RATIOS="$RATIOS $(python3 -c "print(${this[tcp1]}/${this[tcp0]}, ${this[udp1]}/${this[udp0]}, sep=',')")"
done
python3 - "${sum[tcp0]}" "${sum[tcp1]}" "${sum[udp0]}" "${sum[udp1]}" "$ROUNDS" $RATIOS <<'PY'
import statistics, sys
t0, t1, u0, u1, n = map(float, sys.argv[1:6])
pairs = [tuple(map(float, r.split(","))) for r in sys.argv[6:]]
tm = statistics.median(p[0] for p in pairs)
um = statistics.median(p[1] for p in pairs)
print(f"TCP  mean without {t0/n/1e9:.3f} Gbit/s, with {t1/n/1e9:.3f} Gbit/s, ratio of means {t1/t0:.3f}, median round ratio {tm:.3f}")
print(f"UDP  mean without {u0/n:.0f} pkt/s, with {u1/n:.0f} pkt/s, ratio of means {u1/u0:.3f}, median round ratio {um:.3f}")
PY
