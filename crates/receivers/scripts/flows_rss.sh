#!/usr/bin/env bash
# Resident memory (VmRSS) of the tapline agent while the flows receiver tracks 5000 active flows.
#
#   crates/receivers/scripts/flows_rss.sh [TAPLINE_BINARY] [SECONDS]
#
# Root required. Builds `target/release/tapline` when no binary is given. Two network
# namespaces joined by a veth pair; tapline runs in A attached to A's veth, with the flows
# receiver (all attributes, cache_max_flows 5000, 1 s evictions) feeding a Prometheus exporter
# on A's loopback (which keeps every series) and scraped once per second; a python3 sender in
# A keeps 5000 UDP flows (5000 source ports -> one port in B) active: one datagram per flow per
# second. Prints VmRSS/VmHWM every second and the peak at the end. Everything is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/../../.."
BIN=${1:-}
SECONDS_TO_RUN=${2:-20}
if [ -z "$BIN" ]; then
  cargo build --release --bin tapline >&2
  BIN=target/release/tapline
fi
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }

A=tlrss-a-$$ B=tlrss-b-$$
TMP=$(mktemp -d)
PID= SENDER= SINK=
cleanup() {
  for p in $SENDER $SINK $PID; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$A" 2>/dev/null || true
  ip netns del "$B" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

for ns in "$A" "$B"; do
  ip netns add "$ns"
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  ip -n "$ns" link set lo up
done
ip -n "$A" link add va type veth peer name vb netns "$B"
ip -n "$A" addr add 10.79.9.1/24 dev va
ip -n "$B" addr add 10.79.9.2/24 dev vb
ip -n "$A" link set va up
ip -n "$B" link set vb up

cat > "$TMP/config.yaml" <<YAML
receivers:
  flows:
    interfaces: [va]
    cache_max_flows: 5000
    cache_active_timeout: 1s
    attributes: [src.address, dst.address, src.port, dst.port, transport, network.type, direction, client.port, server.port, iface, tapline.ip]
exporters:
  prometheus: { endpoint: "127.0.0.1:19464" }
service:
  pipelines: { metrics: { receivers: [flows], exporters: [prometheus] } }
  telemetry: { metrics: { endpoint: null }, logs: { level: warn } }
YAML

ip netns exec "$A" "$BIN" run --config "$TMP/config.yaml" > "$TMP/tapline.log" 2>&1 &
PID=$!
sleep 2
kill -0 "$PID" || { cat "$TMP/tapline.log"; exit 1; }

# B listens on the one destination port (no ICMP port-unreachable replies).
ip netns exec "$B" python3 -c '
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("10.79.9.2", 9000))
s.settimeout(1)
end = time.time() + '"$((SECONDS_TO_RUN + 10))"'
while time.time() < end:
    try: s.recv(2048)
    except socket.timeout: pass
' &
SINK=$!

ip netns exec "$A" python3 -c '
import resource, socket, time
resource.setrlimit(resource.RLIMIT_NOFILE, (8192, 8192))
socks = []
for i in range(5000):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("10.79.9.1", 20000 + i)); socks.append(s)
end = time.time() + '"$SECONDS_TO_RUN"'
while time.time() < end:
    t = time.time()
    for s in socks: s.sendto(b"x" * 64, ("10.79.9.2", 9000))
    time.sleep(max(0, 1 - (time.time() - t)))
' &
SENDER=$!

peak=0
for _ in $(seq "$SECONDS_TO_RUN"); do
  sleep 1
  kill -0 "$PID" || { echo "tapline exited:"; cat "$TMP/tapline.log"; exit 1; }
  series=$(ip netns exec "$A" curl -s --max-time 2 http://127.0.0.1:19464/metrics | grep -c '^tapline_network_flow_packets_total' || true)
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$PID/status")
  hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$PID/status")
  [ "$hwm" -gt "$peak" ] && peak=$hwm
  echo "VmRSS ${rss} kB  VmHWM ${hwm} kB  flow series served: ${series}"
done
echo "peak VmHWM: ${peak} kB ($((peak / 1024)) MiB) with 5000 active flows"
