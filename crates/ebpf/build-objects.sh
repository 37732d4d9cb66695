#!/usr/bin/env bash
# Rebuilds every eBPF object from its C source and records the sources' hash.
# Usage: crates/ebpf/build-objects.sh            (needs clang, llvm-strip, bpftool only for --vmlinux)
#        crates/ebpf/build-objects.sh --vmlinux  (also regenerates src/bpf/vmlinux.h from this kernel's BTF)
# With TAPLINE_OBJ_OUT=DIR the objects go to DIR and objects/SOURCES.sha256 is left alone
# (tests/objects_fresh.rs uses that to compare a fresh build with the committed objects).
# The objects are committed so that `cargo build` works on machines without clang; a test
# (tests/objects_fresh.rs) fails when the sources changed but this script was not re-run.
set -euo pipefail
cd "$(dirname "$0")"
out="${TAPLINE_OBJ_OUT:-objects}"
if [[ "${1:-}" == "--vmlinux" ]]; then
  bpftool btf dump file /sys/kernel/btf/vmlinux format c > src/bpf/vmlinux.h
fi
for src in src/bpf/*.bpf.c; do
  name=$(basename "$src" .bpf.c)
  # -fdebug-prefix-map: the BTF line info must not embed the checkout path (reproducible objects)
  clang -O2 -g -target bpf -D__TARGET_ARCH_x86 -Wall -Werror -fdebug-prefix-map="$PWD"=. \
    -I src/bpf -I /usr/include/x86_64-linux-gnu \
    -c "$src" -o "$out/$name.o"
  llvm-strip -g "$out/$name.o"
done
if [[ -z "${TAPLINE_OBJ_OUT:-}" ]]; then
  ./sources-hash.sh > objects/SOURCES.sha256
fi
echo "rebuilt: $(ls "$out"/*.o | tr '\n' ' ')"
