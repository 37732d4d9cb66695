#!/usr/bin/env bash
# How often each candidate app hook set runs per HTTP request on another kernel, and its
# program time there: empty eBPF programs (return 0) at each hook, python http.server with
# one curl sending N keep-alive requests, kernel.bpf_stats_enabled. Run as root on the host:
#
#   scripts/vm/hook-cost.sh [series=6.1] [requests=200]
#
# Boots the kernel of scripts/vm/prepare.sh under QEMU TCG: run counts are the kernel's;
# nanoseconds are software emulation's, not hardware's (compare the sets, never quote them).
# Sets: fexit (tcp_sendmsg, tcp_recvmsg, tcp_sendpage, and sock_sendmsg/sock_recvmsg for
# comparison), syscalls (enter + exit tracepoints of the ten data syscalls), then app: the
# `app` receiver's own programs, under `tapline run` (the hooks it chooses on that kernel).
set -euo pipefail
cd "$(dirname "$0")/../.."
series=${1:-6.1}
requests=${2:-200}
eval "$(scripts/vm/prepare.sh "$series" | sed 's/^/vm_/')"
work=target/vm-hook-cost
mkdir -p "$work"
work=$(cd "$work" && pwd)
cargo build -q --release -p tapline-ebpf --example attach_object
cargo build -q --release --bin tapline
cp target/release/examples/attach_object target/release/tapline "$work/"
prog() { echo "SEC(\"$1\") int $2(void *ctx) { return 0; }"; }
{
  echo '#define SEC(s) __attribute__((section(s), used))'
  echo 'char LICENSE[] SEC("license") = "GPL";'
  for f in tcp_sendmsg tcp_recvmsg tcp_sendpage sock_sendmsg sock_recvmsg; do prog "fexit/$f" "fexit_$f"; done
} > "$work/fexit.c"
{
  echo '#define SEC(s) __attribute__((section(s), used))'
  echo 'char LICENSE[] SEC("license") = "GPL";'
  for s in read write readv writev recvfrom sendto recvmsg sendmsg sendfile64 splice; do
    for d in enter exit; do prog "tracepoint/syscalls/sys_${d}_$s" "sys_${d}_$s"; done
  done
} > "$work/syscalls.c"
for o in fexit syscalls; do
  clang -O2 -g -target bpf -c "$work/$o.c" -o "$work/$o.o"
  llvm-strip -g "$work/$o.o"
done
run=$(mktemp -d)
trap 'rm -rf "$run"' EXIT
cat > "$run/run.sh" <<GUEST
X=$work
N=$requests
sysctl -qw kernel.bpf_stats_enabled=1
python3 -m http.server 8080 --bind 127.0.0.1 --directory /tmp/vm >/dev/null 2>&1 & S=\$!
for i in \$(seq 120); do curl -s -o /dev/null http://127.0.0.1:8080/ && break; sleep 1; done
URLS=\$(for i in \$(seq \$N); do printf "http://127.0.0.1:8080/ "; done)
cat > /tmp/app.yaml <<'YAML'
receivers: { app: { metrics_interval: 1s } }
exporters: { prometheus: { endpoint: "127.0.0.1:9464" } }
service:
  pipelines: { metrics: { receivers: [app], exporters: [prometheus] } }
  telemetry: { metrics: { endpoint: "127.0.0.1:9465" } }
YAML
for set in fexit syscalls app; do
  if [ \$set = app ]; then
    TAPLINE_LOG=info \$X/tapline run --config /tmp/app.yaml 2>/tmp/app.err & P=\$!
    ready="app capture attached"
  else
    \$X/attach_object \$X/\$set.o 900 2>/tmp/\$set.err & P=\$!
    ready=attached
  fi
  for i in \$(seq 600); do grep -q "\$ready" /tmp/\$set.err && break; kill -0 \$P || break; sleep 1; done
  kill -0 \$P || { echo "tapline-vm: \$set did not attach:"; tail -5 /tmp/\$set.err; continue; }
  before=\$(bpftool prog show -j)
  curl -s \$URLS > /dev/null
  after=\$(bpftool prog show -j)
  kill \$P; wait \$P 2>/dev/null
  python3 - "\$set" "\$N" "\$before" "\$after" <<'PY'
import json, sys
name, n, before, after = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]), json.loads(sys.argv[4])
b = {p["id"]: p for p in before}
for p in sorted(after, key=lambda p: p.get("name", "")):
    if p.get("name", "").startswith(("fexit_", "sys_", "app_")):
        q = b.get(p["id"], {})
        runs = p.get("run_cnt", 0) - q.get("run_cnt", 0)
        if name == "app" and not runs:
            continue  # the libssl probes: no TLS here
        ns = p.get("run_time_ns", 0) - q.get("run_time_ns", 0)
        print(f"{name:9} {p['name']:22} {runs / n:6.2f} runs/request {ns / max(runs, 1):8.0f} ns/run (TCG)")
PY
done
kill \$S
GUEST
cp "$run/run.sh" "$work/run.sh"
qemu-system-x86_64 -accel tcg -no-reboot -display none -monitor none -serial stdio -m 2048 -smp 2 \
  -kernel "$vm_kernel" -initrd "$vm_initrd" -append "console=ttyS0 panic=-1 quiet loglevel=3" \
  -virtfs local,path=/,mount_tag=hostroot,security_model=none,multidevs=remap,readonly=on \
  -virtfs "local,path=$run,mount_tag=vmrun,security_model=none,multidevs=remap" </dev/null |
  grep -E 'runs/request|TAPLINE-VM-EXIT|tapline-vm:'
