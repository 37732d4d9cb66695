# summary: flows tc program's cost per packet without traffic: BPF_PROG_TEST_RUN of a 64-byte UDP packet of a known flow (data in cache), baseline the empty classifier (the harness's own cost)
# needs: root, bpftool, clang
# usage: [object=crates/ebpf/objects/flows.o] [runs=5000000]
OBJ=$(arg 1 crates/ebpf/objects/flows.o crates/ebpf/objects/flows.o)
N=$(arg 2 5000000 100000)
need_root
need_tools bpftool clang
PIN="/sys/fs/bpf/tapline-bench-$$"
on_exit rm -rf "$PIN" "$PIN-empty"
# Ethernet + IPv4 + UDP, 64-byte payload (the flood of flows-overhead)
python3 - "$BENCH_DIR/udp.bin" << 'PY'
import struct, sys
payload = bytes(64)
udp = struct.pack('!HHHH', 40000, 5201, 8 + len(payload), 0)
ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(udp) + len(payload), 0, 0, 64, 17, 0,
                 bytes([10, 78, 0, 1]), bytes([10, 78, 0, 2]))
open(sys.argv[1], 'wb').write(bytes(6) + bytes([2, 0, 0, 0, 0, 1]) + b'\x08\x00' + ip + udp + payload)
PY
cat > "$BENCH_DIR/empty.c" << 'C'
__attribute__((section("classifier"), used)) int empty(void *skb) { return -1; }
char LICENSE[] __attribute__((section("license"), used)) = "GPL";
C
bpf_object "$BENCH_DIR/empty.c" "$BENCH_DIR/empty.o"
# ns per run as bpftool reports it (the kernel's average over N runs)
run() {
  bpftool prog run pinned "$1" data_in "$BENCH_DIR/udp.bin" repeat "$N" 2>&1 | grep -o '[0-9]*ns' | tr -d ns
}
bpftool prog loadall "$BENCH_DIR/empty.o" "$PIN-empty" type classifier
base=$(run "$PIN-empty/empty")
bpftool prog loadall "$OBJ" "$PIN" type classifier
echo "harness (empty classifier): $base ns per run"
for p in tapline_tc_in tapline_tc_out; do
  t=$(run "$PIN/$p")
  echo "$p: $t ns per run"
  emit "$p, known flow, per run" "$t" "ns" "$base"
  emit "$p, known flow, per run minus the empty classifier" "$((t - base))" "ns"
done
