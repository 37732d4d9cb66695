# summary: the floor of app-overhead: the same hooks with empty programs (return 0), so the most any change to the programs' bodies can gain
# needs: root, nginx, wrk, curl, clang
# usage: [seconds=5] [rounds=20] [kind=current|syscalls]   (current: the capture's tp_btf hooks; syscalls: tp_btf sys_enter + sys_exit, every syscall of every process)
FLOOR_KIND=$(arg 3 current current)
need_tools clang
{
  echo '#define SEC(s) __attribute__((section(s), used))'
  echo 'char LICENSE[] SEC("license") = "GPL";'
  case $FLOOR_KIND in
  current)
    for tp in sock_send_length sock_recv_length inet_sock_set_state sched_process_exit; do
      echo "SEC(\"tp_btf/$tp\") int btf_$tp(void *ctx) { return 0; }"
    done
    ;;
  syscalls)
    echo 'SEC("tp_btf/sys_enter") int btf_sys_enter(void *ctx) { return 0; }'
    echo 'SEC("tp_btf/sys_exit") int btf_sys_exit(void *ctx) { return 0; }'
    ;;
  *) die "kind is current or syscalls, not '$FLOOR_KIND'" ;;
  esac
} > "$BENCH_DIR/floor.c"
bpf_object "$BENCH_DIR/floor.c" "$BENCH_DIR/floor.o"
FLOOR_OBJ=$BENCH_DIR/floor.o
BENCH_ARGS=("${BENCH_ARGS[@]:0:2}")
source "$ROOT/scripts/bench.d/app-overhead.sh"
