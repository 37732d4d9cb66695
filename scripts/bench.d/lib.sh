# Shared set-up for the benchmarks of scripts/bench (sourced, never run).
#
# On entry the benchmark's stdout is moved to fd 3: `emit` writes the JSON figures there and
# everything else a benchmark prints (cargo, wrk, progress lines) goes to stderr, so stdout
# carries only one JSON object per line.

ROOT=${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
export CARGO_TARGET_DIR=$TARGET
exec 3>&1 1>&2

# ---- output ------------------------------------------------------------------------------

# emit FIGURE VALUE UNIT [BASELINE] [NOTE]: one JSON line on stdout. VALUE and BASELINE are
# numbers (an empty BASELINE is null: nothing comparable was measured in the same run).
emit() {
  python3 - "$BENCH" "$@" >&3 <<'PY'
import json, sys
bench, figure, value, unit = sys.argv[1:5]
baseline = sys.argv[5] if len(sys.argv) > 5 else ""
note = sys.argv[6] if len(sys.argv) > 6 else ""
num = lambda v: None if v in ("", "null") else (int(v) if v.lstrip("-").isdigit() else float(v))
out = {"bench": bench, "figure": figure, "value": num(value), "unit": unit, "baseline": num(baseline)}
if note:
    out["note"] = note
print(json.dumps(out), flush=True)
PY
  echo "$1" >> "$BENCH_DIR/figures"
}

die() { echo "$BENCH: $*" >&2; exit 1; }

# ---- arguments -----------------------------------------------------------------------------

# arg N DEFAULT QUICK_DEFAULT: positional argument N of the benchmark, else its default for
# this mode (--quick: seconds and tiny counts).
# A numeric default makes the argument numeric: anything else is refused.
arg() {
  local n=$1 full=$2 quick=$3 v
  if ((n <= ${#BENCH_ARGS[@]})); then v=${BENCH_ARGS[n - 1]}
  elif [[ $QUICK == 1 ]]; then v=$quick
  else v=$full
  fi
  [[ $full =~ ^[0-9]+$ && ! $v =~ ^[0-9]+$ ]] && die "argument $n must be a whole number, not '$v' (scripts/bench list)"
  echo "$v"
}

# ---- requirements --------------------------------------------------------------------------

need_root() { [[ $(id -u) == 0 ]] || die "run as root (loads eBPF programs, creates namespaces)"; }
need_tools() {
  local t
  for t in "$@"; do
    command -v "$t" > /dev/null || die "needs $t (scripts/install-test-deps.sh installs it)"
  done
}

# ---- cleanup -------------------------------------------------------------------------------

# on_exit CMD...: run CMD when the benchmark exits, last registered first.
CLEANUP=()
on_exit() { CLEANUP=("$(printf '%q ' "$@")" "${CLEANUP[@]}"); }
run_cleanup() {
  local c
  for c in "${CLEANUP[@]}"; do eval "$c" > /dev/null 2>&1 || true; done
}
trap run_cleanup EXIT

# kill_wait PID: stop a process this benchmark started and reap it (SIGTERM: the background
# processes of a script ignore SIGINT).
kill_wait() {
  if [[ -n ${1:-} ]] && kill "$1" 2> /dev/null; then wait "$1" 2> /dev/null || true; fi
}

# BENCH_DIR: a fresh directory for this benchmark's files, removed on exit.
BENCH_DIR=$(mktemp -d "/tmp/tapline-bench-$BENCH.XXXXXX")
on_exit rm -rf "$BENCH_DIR"

# ---- building ------------------------------------------------------------------------------

# Every build is workspace-wide and includes the examples (which need the dev-dependencies),
# so cargo resolves the same features as `cargo test --workspace --release` and reuses what
# the test suite built: building one package alone resolves other features and recompiles
# the dependencies.
build_release() {
  [[ -n ${BUILT:-} ]] && return 0
  (cd "$ROOT" && cargo build -q --release --workspace --bins --examples)
  BUILT=1
}

# release_bin: builds the agent (release) and prints its path.
release_bin() {
  build_release
  echo "$TARGET/release/tapline"
}

# example PACKAGE NAME: builds the release examples and prints the path of NAME (of PACKAGE).
example() {
  build_release
  echo "$TARGET/release/examples/$2"
}

# bpf_object SOURCE.c OUT.o: compiles a small eBPF object (the empty programs of the
# hook-alone arms).
bpf_object() {
  clang -O2 -g -target bpf -I "/usr/include/$(uname -m)-linux-gnu" -c "$1" -o "$2"
}

# ---- measuring -----------------------------------------------------------------------------

# A TCP port free on 127.0.0.1 right now.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_port PORT: until something listens on 127.0.0.1:PORT (10 s at most).
wait_port() {
  local _
  for _ in $(seq 100); do
    (echo > "/dev/tcp/127.0.0.1/$1") 2> /dev/null && return 0
    sleep 0.1
  done
  die "nothing listens on 127.0.0.1:$1"
}

# wait_line FILE TEXT [SECONDS=20]: until FILE contains TEXT; fails with FILE's content.
wait_line() {
  local _
  for _ in $(seq $((${3:-20} * 10))); do
    grep -q "$2" "$1" 2> /dev/null && return 0
    sleep 0.1
  done
  cat "$1" >&2 2> /dev/null
  die "no '$2' in $1"
}

# CPU time (user + system, in clock ticks) process $1 has used so far; 0 once it is gone.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2> /dev/null || echo 0; }
CLK_TCK=$(getconf CLK_TCK)

# median VALUE...: the median of numbers.
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# calc EXPR: floating-point arithmetic (awk), e.g. calc "$a / $b".
calc() { awk "BEGIN {print $1}"; }

# bpf_stats_on: kernel.bpf_stats_enabled=1 until the benchmark exits (costs each program run
# two clock reads, so only the benchmarks that report ns per run turn it on).
bpf_stats_on() {
  BPF_STATS_BEFORE=$(sysctl -n kernel.bpf_stats_enabled)
  on_exit sysctl -qw "kernel.bpf_stats_enabled=$BPF_STATS_BEFORE"
  sysctl -qw kernel.bpf_stats_enabled=1
}
# bpf_stats_off: back to the value bpf_stats_on found, before the benchmark ends (the figures
# after it are then measured without the two clock reads per program run).
bpf_stats_off() { sysctl -qw "kernel.bpf_stats_enabled=${BPF_STATS_BEFORE:-0}"; }

# bpf_prog_ids PID: the ids of the BPF programs process PID holds (its program and link fds,
# from /proc/PID/fdinfo), one per line. Finds a process's own programs where bpftool shows no
# pids (built without skeletons).
bpf_prog_ids() {
  grep -h '^prog_id:' /proc/"$1"/fdinfo/* 2> /dev/null | awk '{print $2}' | sort -un
}

# bpf_prog_stats FILE: the run_time_ns and run_cnt of every loaded program (bpftool -j prog
# show) into FILE; bpf_prog_delta BEFORE AFTER IDS_FILE prints "<ns> <runs>" run by the
# programs of IDS_FILE in between, and one line per program on stderr.
bpf_prog_stats() { bpftool -j prog show > "$1"; }
bpf_prog_delta() {
  python3 - "$@" << 'PY'
import json, sys
before = {p["id"]: p for p in json.load(open(sys.argv[1]))}
ids = {int(l) for l in open(sys.argv[3]) if l.strip()}
ns = runs = 0
for p in json.load(open(sys.argv[2])):
    if p["id"] not in ids:
        continue
    b = before.get(p["id"], {})
    dn = p.get("run_time_ns", 0) - b.get("run_time_ns", 0)
    dr = p.get("run_cnt", 0) - b.get("run_cnt", 0)
    ns, runs = ns + dn, runs + dr
    if dr:
        print(f"  {p.get('name', p['id'])}: {dr} runs, {dn / dr:.0f} ns per run", file=sys.stderr)
print(ns, runs)
PY
}

# Exits if an application capture is already attached: a stray agent or app_bench would trace
# both arms of a comparison. ALLOW_OTHER_CAPTURE=1 runs anyway (a shared host where another
# capture runs on purpose; both arms then carry its cost).
refuse_if_capture_attached() {
  [[ ${ALLOW_OTHER_CAPTURE:-0} == 1 ]] && return 0
  command -v bpftool > /dev/null || return 0
  if bpftool prog show 2> /dev/null | grep -q "name app_sock_send"; then
    pgrep -af "tapline|app_bench" >&2 || true
    die "an app capture is already attached (bpftool prog show | grep app_sock): stop it first"
  fi
}

# ---- peers ---------------------------------------------------------------------------------

# netns_pair A B ADDR_A ADDR_B: two fresh network namespaces joined by a veth pair (va in A,
# vb in B, /24 addresses), deleted on exit.
netns_pair() {
  local ns
  for ns in "$1" "$2"; do
    ip netns add "$ns"
    on_exit ip netns del "$ns"
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    ip -n "$ns" link set lo up
  done
  ip -n "$1" link add va type veth peer name vb netns "$2"
  ip -n "$1" addr add "$3/24" dev va
  ip -n "$2" addr add "$4/24" dev vb
  ip -n "$1" link set va up
  ip -n "$2" link set vb up
}

# start_nginx DIR FILE_BYTES [tls] [access_log]: nginx with one worker in DIR serving a
# FILE_BYTES-byte index.html over keep-alive (sendfile on) on a free port of 127.0.0.1, over
# TLS with a fresh self-signed certificate when the third argument is `tls`; stopped on exit.
# Sets NGINX_PID, WORKER (the worker's pid), PORT and URL.
start_nginx() {
  local dir=$1 scheme=http listen log=off
  PORT=$(free_port)
  listen="127.0.0.1:$PORT"
  mkdir -p "$dir/www" "$dir/tmp"
  head -c "$2" /dev/zero | tr '\0' 'a' > "$dir/www/index.html"
  if [[ ${3:-} == tls ]]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
      -subj /CN=127.0.0.1 -keyout "$dir/key.pem" -out "$dir/cert.pem" 2> /dev/null
    listen="$listen ssl; ssl_certificate $dir/cert.pem; ssl_certificate_key $dir/key.pem"
    scheme=https
  fi
  [[ ${4:-} == access_log ]] && log="$dir/access.log"
  cat > "$dir/nginx.conf" << CONF
worker_processes 1;
user root;
pid $dir/nginx.pid;
error_log $dir/error.log;
events { worker_connections 4096; }
http {
  access_log $log;
  sendfile on;
  keepalive_requests 1000000;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  server {
    listen $listen; root $dir/www;
    location = /nginx_status { stub_status; access_log off; }
  }
}
CONF
  nginx -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;' &
  NGINX_PID=$!
  on_exit kill_wait "$NGINX_PID"
  URL="$scheme://127.0.0.1:$PORT/"
  local _
  for _ in $(seq 50); do curl -skf -o /dev/null "$URL" && break; sleep 0.1; done
  curl -skf -o /dev/null "$URL" || die "nginx did not answer on $URL ($(cat "$dir/error.log"))"
  WORKER=$(pgrep -P "$NGINX_PID" | head -1)
}

# nginx_requests: the requests nginx (start_nginx) has served so far, from its stub_status,
# less the requests for that page itself (counted in a file: this runs in subshells).
nginx_requests() {
  local n
  echo >> "$BENCH_DIR/nginx_status_calls"
  n=$(curl -skf --max-time 5 "${URL}nginx_status" | awk 'prev ~ /requests/ {print $3} {prev = $0}')
  echo $((n - $(wc -l < "$BENCH_DIR/nginx_status_calls")))
}

# wrk_rate_script FILE RATE THREADS: a wrk Lua script that paces the requests to RATE per
# second in all (wrk has no rate option): each of the THREADS threads hands out request slots
# 1000 * THREADS / RATE ms apart from a monotonic clock (LuaJIT's ffi), and delay() holds each
# connection's next request until the next free slot. A thread that falls behind by more than
# 10 ms forgets the slots it missed, so it never bursts to catch up. Enough connections to keep
# every slot taken make the rate exact; the achieved rate is wrk's Requests/sec.
wrk_rate_script() {
  cat > "$1" << LUA
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } tapline_timespec;
int clock_gettime(int clk, tapline_timespec *ts);
]]
local ts = ffi.new("tapline_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end
local period = 1000 * $3 / $2
local slot = nil
function delay()
  local now = now_ms()
  if slot == nil or slot < now - 10 then slot = now end
  slot = slot + period
  local wait = slot - now
  return wait > 0 and wait or 0
end
LUA
}

# default_agent_config FILE PROM TEL: configs/default.yaml (what `tapline run` does) with its
# Prometheus endpoint moved to 127.0.0.1:PROM and its self-telemetry to 127.0.0.1:TEL.
default_agent_config() {
  sed -e "s|endpoint: 127.0.0.1:9400|endpoint: 127.0.0.1:$2|" -e "s|endpoint: 127.0.0.1:9401|endpoint: 127.0.0.1:$3|" \
    "$ROOT/configs/default.yaml" > "$1"
  grep -q ":$2" "$1" && grep -q ":$3" "$1" ||
    die "configs/default.yaml: no 'endpoint: 127.0.0.1:9400' / ':9401' line to move"
}

# wait_agent_counts PID ERRFILE CMD...: until CMD (a count the agent exports) is above 0,
# poking nginx (start_nginx's URL) with a request each time (30 s at most); fails with ERRFILE
# when the agent exits or counts nothing. Prints the count.
wait_agent_counts() {
  local pid=$1 err=$2 _ n=0
  shift 2
  for _ in $(seq 150); do
    curl -s -o /dev/null "$URL"
    n=$("$@")
    ((n > 0)) && break
    kill -0 "$pid" 2> /dev/null || { cat "$err" >&2; die "the agent exited"; }
    sleep 0.2
  done
  ((n > 0)) || { cat "$err" >&2; die "the agent counted no request"; }
  echo "$n"
}

# app_agent_config FILE PROM TEL LOG_LEVEL [CAPTURE_BYTES]: a tapline configuration with only
# the app receiver (default discovery, 1 s metrics interval), a metrics pipeline to a
# Prometheus exporter on 127.0.0.1:PROM and a traces pipeline to `nop` (spans are built, then
# dropped); self-telemetry on 127.0.0.1:TEL.
app_agent_config() {
  local capture=${5:+, capture_bytes: $5}
  cat > "$1" << YAML
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

# metric_sum URL PREFIX [LABEL_MATCH...]: the sum of the samples of PREFIX (optionally only
# lines matching every LABEL_MATCH, regular expressions) on a Prometheus text page; 0 when
# absent. (The page is saved first: `curl | grep -q` fails under pipefail once the page
# outgrows a pipe.)
metric_sum() {
  local url=$1 prefix=$2
  shift 2
  curl -s --max-time 5 "$url" > "$BENCH_DIR/metrics.txt" || true
  awk -v p="^$prefix" -v m="$(printf '%s\n' "$@")" '
    BEGIN {n = split(m, ms, "\n")}
    $0 ~ p {for (i = 1; i <= n; i++) if (ms[i] != "" && $0 !~ ms[i]) next; s += $NF}
    END {print s + 0}' "$BENCH_DIR/metrics.txt"
}

# ---- criterion -----------------------------------------------------------------------------

# criterion_bench PACKAGE BENCH [CRITERION_ARGS...]: runs bench target BENCH (of PACKAGE) and emits
# a figure per benchmark function. Full mode: the median time per iteration and, where the
# bench declares a throughput, elements per second (from criterion's estimates). --quick runs
# every function once (`--test`: it must not panic) and emits that it passed.
criterion_bench() {
  local pkg=$1 target=$2
  shift 2
  local args=("$@")
  [[ $QUICK == 1 ]] && args=(--test "$@")
  # --workspace (bench names are unique in it): the features of the test suite's build, see
  # build_release
  if ! (cd "$ROOT" && cargo bench -q --workspace --bench "$target" -- "${args[@]}" "${BENCH_ARGS[@]}") 2>&1 |
    tee "$BENCH_DIR/criterion.log" >&2; then
    die "cargo bench --bench $target (package $pkg) failed"
  fi
  python3 - "$BENCH_DIR/criterion.log" "$TARGET/criterion" "$QUICK" << 'PY' | while IFS=$'\t' read -r fig val unit; do emit "$fig" "$val" "$unit"; done
import json, os, re, sys
log, root, quick = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
lines = open(log, errors="replace").read().splitlines()
if quick:
    # criterion --test prints "Testing <id>" then "Success" for each function
    for i, l in enumerate(lines):
        m = re.match(r"Testing (.+)", l)
        if m and any("Success" in x for x in lines[i + 1:i + 3]):
            print(f"{m.group(1).strip()}\t1\tpassed (run once, not timed)")
    sys.exit()
# the ids this run measured: the line before (or two before) each "time: [..]" line, but for
# the "change:" block criterion adds when it has an earlier run to compare with
ids = []
for i, l in enumerate(lines):
    if re.match(r"\s+time:\s+\[", l) and i > 0 and lines[i - 1].strip() != "change:":
        ids.append((lines[i - 1].strip().split("  ")[0] or lines[i - 2].strip()).strip())
# criterion keeps each id's last estimates in a directory named after a sanitised id
dirs = {}
for d, _, files in os.walk(root):
    if os.path.basename(d) == "new" and "benchmark.json" in files:
        dirs[json.load(open(os.path.join(d, "benchmark.json")))["full_id"]] = d
for full_id in ids:
    if full_id not in dirs:
        print(f"{full_id}: no estimates under {root}", file=sys.stderr)
        sys.exit(1)
    est = json.load(open(os.path.join(dirs[full_id], "estimates.json")))
    meta = json.load(open(os.path.join(dirs[full_id], "benchmark.json")))
    ns = est["median"]["point_estimate"]
    print(f"{full_id}\t{ns:.0f}\tns per iteration (median)")
    tp = meta.get("throughput") or {}
    if "Elements" in tp:
        print(f"{full_id}\t{tp['Elements'] / ns * 1e9:.0f}\telements per second")
    elif "Bytes" in tp:
        print(f"{full_id}\t{tp['Bytes'] / ns * 1e9:.0f}\tbytes per second")
PY
}
