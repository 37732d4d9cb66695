#!/usr/bin/env bash
# Measures the cost of a bare uprobe / uretprobe hit on this machine (no BPF program: a perf
# probe counting hits), to tell the kernel's/hypervisor's trap cost from the TLS programs' own
# cost (see APP_PERFORMANCE.md, "TLS uprobes"). Needs gcc and perf (apt-get install gcc
# linux-perf). Run as root.
#
# Usage: crates/ebpf/scripts/uprobe_trap_cost.sh [calls=100000]
set -euo pipefail
CALLS=${1:-100000}
[[ $(id -u) == 0 ]] || { echo "run as root (creates uprobes)" >&2; exit 1; }
for tool in gcc perf; do
  command -v $tool >/dev/null || { echo "$tool missing: apt-get install -y gcc linux-perf" >&2; exit 1; }
done
DIR=$(mktemp -d /tmp/tapline-trap.XXXXXX)
GROUP=tapline_trap_$$
cleanup() { perf probe -q -d "$GROUP:*" 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT
cat > "$DIR/fake.c" <<'C'
__attribute__((noinline)) int SSL_write(void *s, const void *b, int n) { __asm__ volatile("" ::: "memory"); return 0; }
C
cat > "$DIR/drv.c" <<C
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
int main(int c, char **v) {
  void *h = dlopen("$DIR/libfake.so", RTLD_NOW);
  int (*w)(void *, const void *, int) = dlsym(h, "SSL_write");
  int n = atoi(v[1]);
  double t = now();
  for (int i = 0; i < n; i++) w((void *)1, "x", 1);
  printf("%.0f\n", (now() - t) * 1e9 / n);
}
C
gcc -O2 -shared -fPIC -o "$DIR/libfake.so" "$DIR/fake.c"
gcc -O2 -o "$DIR/drv" "$DIR/drv.c" -ldl
echo "no probe:        $("$DIR/drv" "$CALLS") ns/call"
perf probe -q -x "$DIR/libfake.so" -a "$GROUP:entry=SSL_write"
echo "entry uprobe:    $(perf stat -x, -o /dev/null -e "$GROUP:entry" "$DIR/drv" "$CALLS") ns/call"
perf probe -q -d "$GROUP:*"
perf probe -q -x "$DIR/libfake.so" -a "$GROUP:ret=SSL_write%return"
echo "uretprobe:       $(perf stat -x, -o /dev/null -e "$GROUP:ret__return" "$DIR/drv" "$CALLS") ns/call"
