# summary: agent memory with 5,000 active flows: tapline in a namespace, flows receiver (all attributes, 1 s evictions) into a Prometheus exporter scraped every second, 5,000 UDP flows each sending one datagram a second
# needs: root, python3, curl
# usage: [tapline binary=target/release/tapline (built)] [seconds=20]
BIN=$(arg 1 "" "")
SECS=$(arg 2 20 6)
need_root
need_tools curl python3 ip
[[ -n $BIN ]] || BIN=$(release_bin)
A="tlbench-a-$$" B="tlbench-b-$$"
netns_pair "$A" "$B" 10.79.9.1 10.79.9.2
cat > "$BENCH_DIR/config.yaml" << YAML
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
ip netns exec "$A" "$BIN" run --config "$BENCH_DIR/config.yaml" > "$BENCH_DIR/tapline.log" 2>&1 &
PID=$!
on_exit kill_wait "$PID"
for _ in $(seq 50); do ip netns exec "$A" curl -s -o /dev/null http://127.0.0.1:19464/metrics && break; sleep 0.1; done
kill -0 "$PID" 2> /dev/null || { cat "$BENCH_DIR/tapline.log" >&2; die "tapline exited"; }
# B listens on the one destination port (no ICMP port-unreachable replies)
ip netns exec "$B" python3 -c '
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("10.79.9.2", 9000)); s.settimeout(1)
end = time.time() + '"$((SECS + 10))"'
while time.time() < end:
    try: s.recv(2048)
    except socket.timeout: pass
' &
on_exit kill_wait $!
ip netns exec "$A" python3 -c '
import resource, socket, time
resource.setrlimit(resource.RLIMIT_NOFILE, (8192, 8192))
socks = []
for i in range(5000):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("10.79.9.1", 20000 + i)); socks.append(s)
end = time.time() + '"$SECS"'
while time.time() < end:
    t = time.time()
    for s in socks: s.sendto(b"x" * 64, ("10.79.9.2", 9000))
    time.sleep(max(0, 1 - (time.time() - t)))
' &
on_exit kill_wait $!
series=0 rss_max=0
for _ in $(seq "$SECS"); do
  sleep 1
  kill -0 "$PID" 2> /dev/null || { cat "$BENCH_DIR/tapline.log" >&2; die "tapline exited"; }
  ip netns exec "$A" curl -s --max-time 2 http://127.0.0.1:19464/metrics > "$BENCH_DIR/page" || true
  series=$(grep -c '^tapline_network_flow_packets_total' "$BENCH_DIR/page" || true)
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$PID/status")
  ((rss > rss_max)) && rss_max=$rss
  echo "VmRSS $rss kB, VmHWM $(awk '/^VmHWM/ {print $2}' "/proc/$PID/status") kB, flow series served: $series"
done
hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$PID/status")
emit "agent peak resident memory (VmHWM), 5,000 active flows" "$(calc "$hwm / 1024")" "MiB"
emit "agent resident memory (VmRSS), highest sample" "$(calc "$rss_max / 1024")" "MiB"
emit "flow series served by the Prometheus exporter" "$series" "series"
((series > 0)) || die "the Prometheus exporter served no flow series"
