#!/usr/bin/env bash
# Measures the data-path overhead of the flows tc programs: iperf3 over a veth pair between two
# fresh network namespaces, rotating runs with nothing attached, with the capture attached (both
# directions of the client's veth) and with an empty classifier attached the same way (TCX
# links, `return TC_ACT_UNSPEC`: what the hook alone costs on this machine), then prints the
# ratios to the bare run for
#   - TCP throughput (bits/s received), and
#   - a small-packet (64-byte payload) UDP flood (packets/s received).
# Usage (root): crates/ebpf/scripts/overhead.sh [ROUNDS=3] [SECONDS=5]
# Needs iperf3, clang, python3 (JSON parsing) and cargo. Traffic stays inside the namespaces.
set -euo pipefail
ROUNDS="${1:-3}"
SECS="${2:-5}"
cd "$(dirname "$0")/../../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
cargo build -q --release -p tapline-ebpf --example flows_attach --example attach_object
BIN="$CARGO_TARGET_DIR/release/examples/flows_attach"
EMPTY_BIN="$CARGO_TARGET_DIR/release/examples/attach_object"
EMPTY_DIR=$(mktemp -d)
# aya maps the section "classifier" to a sched_cls program (it rejects "tc").
cat >"$EMPTY_DIR/empty.c" <<'C'
__attribute__((section("classifier"), used)) int empty(void *skb) { return -1; /* TC_ACT_UNSPEC */ }
char LICENSE[] __attribute__((section("license"), used)) = "GPL";
C
clang -O2 -g -target bpf -c "$EMPTY_DIR/empty.c" -o "$EMPTY_DIR/empty.o"

A="tlovh-a-$$"; B="tlovh-b-$$"
SRV=""; CAP=""
cleanup() {
  [[ -n "$CAP" ]] && kill "$CAP" 2>/dev/null || true
  [[ -n "$SRV" ]] && kill "$SRV" 2>/dev/null || true
  ip netns del "$A" 2>/dev/null || true
  ip netns del "$B" 2>/dev/null || true
  rm -rf "$EMPTY_DIR"
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

# start_attached MODE: 1 = the capture, 2 = the empty classifier (through attach_object).
start_attached() {
  if [[ $1 == 2 ]]; then
    ip netns exec "$A" "$EMPTY_BIN" "$EMPTY_DIR/empty.o" 600 va 2>/tmp/tlovh-cap.$$ & CAP=$!
  else
    local fifo; fifo=$(mktemp -u); mkfifo "$fifo"
    ip netns exec "$A" "$BIN" --quiet --interval-ms 1000 --seconds 600 va <"$fifo" >/tmp/tlovh-cap.$$ 2>&1 & CAP=$!
    exec 9>"$fifo"; rm -f "$fifo"
  fi
  for _ in $(seq 50); do grep -q attached /tmp/tlovh-cap.$$ 2>/dev/null && return; sleep 0.1; done
  echo "program did not attach:"; cat /tmp/tlovh-cap.$$; exit 1
}
# The capture stops (and prints its totals) when its stdin closes; attach_object is killed,
# which closes its TCX links.
stop_attached() {
  if [[ $1 == 2 ]]; then kill "$CAP"; wait "$CAP" 2>/dev/null || true
  else exec 9>&-; wait "$CAP" || true; tail -1 /tmp/tlovh-cap.$$
  fi
  CAP=""; rm -f /tmp/tlovh-cap.$$
}

tcp() {
  ip netns exec "$A" taskset -c 0 iperf3 -c 10.78.0.2 -t "$SECS" -J |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"])'
}
udp() {
  ip netns exec "$A" taskset -c 0 iperf3 -c 10.78.0.2 -u -l 64 -b 0 -t "$SECS" -J |
    python3 -c 'import json,sys; s=json.load(sys.stdin)["end"]["sum"]; print((s["packets"]-s["lost_packets"])/s["seconds"])'
}

NAMES=(without capture empty)
ROWS=""
for r in $(seq "$ROUNDS"); do
  # Rotate which run goes first, so that a drift of the machine cancels out.
  case $(( r % 3 )) in 1) order="0 1 2";; 2) order="1 2 0";; 0) order="2 0 1";; esac
  for mode in $order; do
    [[ $mode != 0 ]] && start_attached "$mode"
    t=$(tcp); u=$(udp)
    [[ $mode != 0 ]] && stop_attached "$mode"
    printf 'round %d %-8s tcp %.3f Gbit/s  udp-64B %.0f pkt/s\n' "$r" "${NAMES[$mode]}" \
      "$(python3 -c "print($t/1e9)")" "$u"
    ROWS="$ROWS $r,$mode,$t,$u"
  done
done
python3 - $ROWS <<'PY'
import statistics, sys
runs = {}
for row in sys.argv[1:]:
    r, mode, t, u = row.split(",")
    runs.setdefault(int(r), {})[int(mode)] = (float(t), float(u))
for i, name in ((0, "TCP"), (1, "UDP 64 B")):
    mean = [statistics.mean(v[m][i] for v in runs.values()) for m in range(3)]
    cap = statistics.median(v[1][i] / v[0][i] for v in runs.values())
    emp = statistics.median(v[2][i] / v[0][i] for v in runs.values())
    unit = (lambda x: f"{x/1e9:.3f} Gbit/s") if i == 0 else (lambda x: f"{x:.0f} pkt/s")
    print(f"{name}: mean without {unit(mean[0])}, capture {unit(mean[1])}, empty classifier {unit(mean[2])}")
    print(f"{name}: capture/without ratio of means {mean[1]/mean[0]:.3f}, median round ratio {cap:.3f}; "
          f"empty/without {mean[2]/mean[0]:.3f} (median {emp:.3f}); capture/empty {mean[1]/mean[2]:.3f}")
PY
