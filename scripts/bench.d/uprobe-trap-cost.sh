# summary: what a bare uprobe and uretprobe hit costs on this machine (a perf probe, no BPF program) against the same call unprobed: the floor under the TLS capture's cost
# needs: root, gcc, perf
# usage: [calls=100000]
CALLS=$(arg 1 100000 2000)
need_root
need_tools gcc perf
GROUP=tapline_bench_$$
on_exit perf probe -q -d "$GROUP:*"
cat > "$BENCH_DIR/fake.c" << 'C'
__attribute__((noinline)) int SSL_write(void *s, const void *b, int n) { __asm__ volatile("" ::: "memory"); return 0; }
C
cat > "$BENCH_DIR/drv.c" << C
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
int main(int c, char **v) {
  void *h = dlopen("$BENCH_DIR/libfake.so", RTLD_NOW);
  int (*w)(void *, const void *, int) = dlsym(h, "SSL_write");
  int n = atoi(v[1]);
  double t = now();
  for (int i = 0; i < n; i++) w((void *)1, "x", 1);
  printf("%.0f\n", (now() - t) * 1e9 / n);
}
C
gcc -O2 -shared -fPIC -o "$BENCH_DIR/libfake.so" "$BENCH_DIR/fake.c"
gcc -O2 -o "$BENCH_DIR/drv" "$BENCH_DIR/drv.c" -ldl
base=$("$BENCH_DIR/drv" "$CALLS")
perf probe -q -x "$BENCH_DIR/libfake.so" -a "$GROUP:entry=SSL_write"
entry=$(perf stat -x, -o /dev/null -e "$GROUP:entry" "$BENCH_DIR/drv" "$CALLS")
perf probe -q -d "$GROUP:*"
perf probe -q -x "$BENCH_DIR/libfake.so" -a "$GROUP:ret=SSL_write%return"
ret=$(perf stat -x, -o /dev/null -e "$GROUP:ret__return" "$BENCH_DIR/drv" "$CALLS")
emit "call with an entry uprobe" "$entry" "ns per call" "$base"
emit "call with a uretprobe" "$ret" "ns per call" "$base"
