#!/usr/bin/env bash
# Cost of one run of each flows program, without any traffic: the kernel runs the program
# N times on one prepared packet (BPF_PROG_TEST_RUN through `bpftool prog run`) and reports the
# average. An empty classifier is measured the same way: its figure is the harness's own
# cost, to subtract. The flow stays in the map, so this is the steady per-packet cost of a
# known flow with its data in cache (live traffic adds cache misses; see PERFORMANCE.md).
# Usage (root): crates/ebpf/scripts/prog_cost.sh [OBJECT=crates/ebpf/objects/flows.o] [N=5000000]
# Needs bpftool, clang (for the empty program) and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
OBJ="${1:-objects/flows.o}"
N="${2:-5000000}"
TMP=$(mktemp -d)
PIN="/sys/fs/bpf/tapline-cost-$$"
cleanup() { rm -rf "$TMP" "$PIN" "$PIN-empty"; }
trap cleanup EXIT

# Ethernet + IPv4 + UDP, 64-byte payload (the UDP flood of overhead.sh).
python3 - "$TMP/udp.bin" <<'PY'
import struct, sys
payload = bytes(64)
udp = struct.pack('!HHHH', 40000, 5201, 8 + len(payload), 0)
ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(udp) + len(payload), 0, 0, 64, 17, 0,
                 bytes([10, 78, 0, 1]), bytes([10, 78, 0, 2]))
open(sys.argv[1], 'wb').write(bytes(6) + bytes([2, 0, 0, 0, 0, 1]) + b'\x08\x00' + ip + udp + payload)
PY
cat > "$TMP/empty.bpf.c" <<'C'
#include <linux/bpf.h>
__attribute__((section("classifier"), used)) int empty(struct __sk_buff *skb) { return -1; }
char LICENSE[] __attribute__((section("license"), used)) = "GPL";
C
clang -O2 -target bpf -I /usr/include/x86_64-linux-gnu -c "$TMP/empty.bpf.c" -o "$TMP/empty.o"

run() { bpftool prog run pinned "$1" data_in "$TMP/udp.bin" repeat "$N" 2>&1 | grep -o '[0-9]*ns' | tr -d ns; }
bpftool prog loadall "$TMP/empty.o" "$PIN-empty" type classifier
base=$(run "$PIN-empty/empty")
bpftool prog loadall "$OBJ" "$PIN" type classifier
echo "harness (empty classifier): ${base} ns per run"
for p in "$PIN"/tapline_tc_in "$PIN"/tapline_tc_out; do
  t=$(run "$p")
  echo "$(basename "$p"): ${t} ns per run, ${t}-${base} = $((t - base)) ns for the program"
done
