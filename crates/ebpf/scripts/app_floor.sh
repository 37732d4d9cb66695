#!/usr/bin/env bash
# The floor of the application capture's overhead: the same hooks with EMPTY programs
# (return 0), measured with app_overhead.sh (nginx + wrk, alternating without / with).
# Whatever ratio these give is the most any change to the programs' bodies can reach.
#
# Usage (root): crates/ebpf/scripts/app_floor.sh [seconds_per_run=10] [rounds=3] [kind=current|exit_close|classic|tp_btf|tp_btf_exit|raw]
#   current: the capture's hooks (APP_PROGRAMS): tp_btf on sock:sock_send_length,
#            sock:sock_recv_length, sock:inet_sock_set_state and sched:sched_process_exit
#            (they run only for socket I/O, TCP state changes and thread exits; no syscall
#            tracepoint at all)
#   exit_close: the fourth session's hooks: tp_btf/sys_exit + syscalls:sys_enter_close
#   classic: one empty program on each of the 25 syscalls:sys_{enter,exit}_* tracepoints the
#            capture used before it moved to tp_btf/sys_exit
#   tp_btf:  one empty tp_btf program on sys_enter and one on sys_exit (they run for every
#            syscall of every process)
#   tp_btf_exit: only the sys_exit one (a design that reads the arguments from pt_regs at
#            exit and needs no enter program)
#   raw:     the same as tp_btf with raw_tracepoint programs
# Extra env is passed to app_overhead.sh (STATS=1 prints the programs' ns/run).
set -euo pipefail
SECS=${1:-10}
ROUNDS=${2:-3}
KIND=${3:-current}
cd "$(dirname "$0")/../../.."
TMP=$(mktemp -d /tmp/tapline-app-floor.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
{
  echo '#include <linux/bpf.h>'
  echo '#define SEC(s) __attribute__((section(s), used))'
  echo 'char LICENSE[] SEC("license") = "GPL";'
  case $KIND in
  current)
    echo 'SEC("tp_btf/sock_send_length") int btf_sock_send_length(void *ctx) { return 0; }'
    echo 'SEC("tp_btf/sock_recv_length") int btf_sock_recv_length(void *ctx) { return 0; }'
    echo 'SEC("tp_btf/inet_sock_set_state") int btf_inet_sock_set_state(void *ctx) { return 0; }'
    echo 'SEC("tp_btf/sched_process_exit") int btf_sched_process_exit(void *ctx) { return 0; }'
    ;;
  exit_close)
    echo 'SEC("tp_btf/sys_exit") int btf_sys_exit(void *ctx) { return 0; }'
    echo 'SEC("tracepoint/syscalls/sys_enter_close") int sys_enter_close(void *ctx) { return 0; }'
    ;;
  classic)
    for s in read write readv writev recvfrom sendto recvmsg sendmsg sendfile64 accept accept4 connect; do
      echo "SEC(\"tracepoint/syscalls/sys_enter_$s\") int sys_enter_$s(void *ctx) { return 0; }"
      echo "SEC(\"tracepoint/syscalls/sys_exit_$s\") int sys_exit_$s(void *ctx) { return 0; }"
    done
    echo 'SEC("tracepoint/syscalls/sys_enter_close") int sys_enter_close(void *ctx) { return 0; }'
    ;;
  tp_btf)
    echo 'SEC("tp_btf/sys_enter") int btf_sys_enter(void *ctx) { return 0; }'
    echo 'SEC("tp_btf/sys_exit") int btf_sys_exit(void *ctx) { return 0; }'
    ;;
  tp_btf_exit)
    echo 'SEC("tp_btf/sys_exit") int btf_sys_exit(void *ctx) { return 0; }'
    ;;
  raw)
    echo 'SEC("raw_tracepoint/sys_enter") int raw_sys_enter(void *ctx) { return 0; }'
    echo 'SEC("raw_tracepoint/sys_exit") int raw_sys_exit(void *ctx) { return 0; }'
    ;;
  *) echo "kind must be current, exit_close, classic, tp_btf, tp_btf_exit or raw" >&2; exit 1 ;;
  esac
} > "$TMP/floor.bpf.c"
clang -O2 -g -target bpf -I /usr/include/x86_64-linux-gnu -c "$TMP/floor.bpf.c" -o "$TMP/floor.o"
FLOOR_OBJ="$TMP/floor.o" crates/ebpf/scripts/app_overhead.sh "$SECS" "$ROUNDS" all
