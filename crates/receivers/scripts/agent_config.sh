# Sourced by the app benchmark scripts (app_load.sh, crates/ebpf/scripts/app_overhead.sh).

# A TCP port free on 127.0.0.1 right now.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Writes to FILE a tapline configuration with only the app receiver (default discovery, 1 s
# metrics interval), a metrics pipeline to a Prometheus exporter on 127.0.0.1:PROM and a traces
# pipeline to `nop` (spans are built, then dropped); self-telemetry on 127.0.0.1:TEL.
# Usage: app_agent_config FILE PROM TEL LOG_LEVEL [CAPTURE_BYTES]
app_agent_config() {
  local capture=${5:+, capture_bytes: $5}
  cat > "$1" <<YAML
receivers:
  app: { metrics_interval: 1s$capture }
exporters:
  prometheus: { endpoint: "127.0.0.1:$2" }
  nop: {}
service:
  pipelines:
    metrics: { receivers: [app], exporters: [prometheus] }
    traces: { receivers: [app], exporters: [nop] }
  telemetry: { metrics: { endpoint: "127.0.0.1:$3" }, logs: { level: $4 } }
YAML
}

# Exits if an application capture is already attached (a stray agent or app_bench left from an
# earlier run would trace both arms of a comparison and skew it).
refuse_if_capture_attached() {
  command -v bpftool > /dev/null || return 0
  if bpftool prog show 2> /dev/null | grep -q "name app_sock_send"; then
    echo "an app capture is already attached (bpftool prog show | grep app_sock): stop it first" >&2
    pgrep -af "tapline|app_bench" >&2 || true
    exit 1
  fi
}
