# Sourced by the app benchmark scripts (app_load.sh, crates/ebpf/scripts/app_overhead.sh,
# crates/ebpf/scripts/app_nginx_profile.sh).

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

# CPU time (user + system, in clock ticks) process $1 has used so far; 0 once it is gone.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

# Starts nginx with one worker in DIR serving a FILE_BYTES-byte index.html over keep-alive
# (sendfile on, no access log) on a free port of 127.0.0.1, and waits until it answers. Sets
# NGINX_PID (the master: kill it to stop), WORKER (the worker's pid) and PORT.
# Usage: start_bench_nginx DIR FILE_BYTES
start_bench_nginx() {
  local dir=$1
  PORT=$(free_port)
  mkdir -p "$dir/www" "$dir/tmp"
  head -c "$2" /dev/zero | tr '\0' 'a' > "$dir/www/index.html"
  cat > "$dir/nginx.conf" <<CONF
worker_processes 1;
user root;
pid $dir/nginx.pid;
error_log $dir/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  keepalive_requests 1000000;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  server { listen 127.0.0.1:$PORT; root $dir/www; }
}
CONF
  nginx -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;' &
  NGINX_PID=$!
  for _ in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/" && break; sleep 0.1; done
  WORKER=$(pgrep -P "$NGINX_PID" | head -1)
}
