# summary: flows receiver userspace: conversion of 1M flow-map entries + 45,455 ring records to data points, and (root) eviction of the 1M entries from a real per-CPU hash map; thread CPU time (criterion)
# needs: root for the eviction part
# usage: [criterion arguments]
criterion_bench tapline-receivers flows_convert
# the bench's thread-CPU-time figures (printed before criterion's groups, also under --test)
python3 - "$BENCH_DIR/criterion.log" << 'PY' | while IFS=$'\t' read -r fig val unit; do emit "$fig" "$val" "$unit"; done
import re, sys
def ms(v):  # a Rust Duration's Debug form: 412.3ms, 1.29s, 900µs
    m = re.match(r"([0-9.]+)(ns|µs|us|ms|s)$", v)
    return float(m.group(1)) * {"ns": 1e-6, "µs": 1e-3, "us": 1e-3, "ms": 1, "s": 1e3}[m.group(2)]
for l in open(sys.argv[1], errors="replace"):
    m = re.match(r"convert (\S+): \d+ records -> (\d+) points; CPU time first (\S+), steady (\S+)", l)
    if m:
        print(f"convert {m.group(1)}, first\t{ms(m.group(3)):.1f}\tms of thread CPU")
        print(f"convert {m.group(1)}, steady\t{ms(m.group(4)):.1f}\tms of thread CPU")
    m = re.match(r"evict_and_convert \S+ \(steady\): \d+ map entries; CPU time evict (\S+), evict \+ convert (\S+)", l)
    if m:
        print(f"evict 1M entries\t{ms(m.group(1)):.1f}\tms of thread CPU")
        print(f"evict + convert default_attributes, steady\t{ms(m.group(2)):.1f}\tms of thread CPU")
PY
