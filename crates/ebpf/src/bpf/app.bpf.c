// SPDX-License-Identifier: GPL-2.0
/*
 * tapline application (L7) capture.
 *
 * The socket layer's tracepoints only (no kprobes/fentry on the target kernels, no syscall
 * tracepoint):
 *  - tp_btf/sock_send_length and tp_btf/sock_recv_length run after every sendmsg/recvmsg of
 *    any socket, with the struct sock and the byte count. For IPv4/IPv6 TCP sockets of a
 *    traced process (pid filter: a short list in `app_config`, else `app_pids` with the
 *    decision cached in the thread's task-local storage `app_tasks`), the data syscall the
 *    thread is in is decoded from the registers it saved (fd, buffer; others such as io_uring
 *    are skipped) and its fd checked to be that socket's file. Then one APP_KIND_DATA record
 *    with the 4-tuple, the byte count, the time and the first `capture_bytes` of the payload
 *    (across the first APP_MAX_IOV iovecs for the vectored calls, nothing for sendfile/splice).
 *  - tp_btf/inet_sock_set_state: a completed handshake records the socket's role in
 *    `app_conns` (SYN_SENT -> ESTABLISHED: client, SYN_RECV -> ESTABLISHED: server); the first
 *    data of a process on it emits APP_KIND_CONNECT / APP_KIND_ACCEPT first. The end of the
 *    connection (close(2)'s FIN, or TCP_CLOSE) emits APP_KIND_CLOSE to that process.
 *  - TLS (libssl uprobes, attached per library by userspace): SSL_read/SSL_write(_ex) entry
 *    stashes (SSL*, buffer, size_t* out-param) in the thread's `app_tasks` entry; the return emits
 *    an APP_KIND_DATA record with the PLAINTEXT (flags APP_FLAG_TLS, syscall APP_SYS_SSL_*).
 *    The socket underneath is learnt from the socket I/O the thread does while inside an
 *    SSL_* call (SSL_do_handshake included): its `struct sock *` and fd are stored
 *    per (tgid, SSL*) in `app_ssl_socks`, and the socket is marked TLS in `app_conns`. Those
 *    syscalls carry TLS records, so they are not reported; nor is any later syscall on a
 *    socket marked TLS (e.g. SSL_shutdown's close_notify). Counted in APP_STAT_TLS_SKIPPED.
 *    `app_ssl_calls` counts the threads inside an SSL_* call (tp_btf/sched_process_exit
 *    forgets those that die in one): while it is 0, the socket programs know without the
 *    thread's storage that no call is in flight.
 * Everything is observational: the programs never change what the syscalls do.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_tracing.h>
#include "app.h"

char LICENSE[] SEC("license") = "GPL";

#define AF_INET 2
#define AF_INET6 10
#define SOCK_STREAM 1
#define IPPROTO_TCP_ 6
#define MSG_PEEK_ 2
/* iovecs of one readv/writev/recvmsg/sendmsg the payload copy walks: grpc core writes a
 * HEADERS frame as one iovec per HPACK name and value (26 for a plain python grpcio call,
 * 2 more per metadata entry) */
#define APP_MAX_IOV 64

/* TCP states (include/net/tcp_states.h) */
#define TCP_ESTABLISHED_ 1
#define TCP_SYN_SENT_ 2
#define TCP_SYN_RECV_ 3
#define TCP_FIN_WAIT1_ 4
#define TCP_CLOSE_ 7
#define TCP_LAST_ACK_ 9
#define SHUTDOWN_MASK_ 3

/* How a data syscall passes its buffer (args[1]). */
#define BUF_PLAIN 0 /* args[1] = buffer */
#define BUF_IOV 1   /* args[1] = struct iovec *, args[2] = iovcnt */
#define BUF_MSG 2   /* args[1] = struct user_msghdr * */
#define BUF_NONE 3  /* sendfile, splice: the payload never passes through user memory */


/* Per-socket cache: the role and the 4-tuple (immutable once connected; read once instead of
 * on every event, and still right after TCP_CLOSE clears the port in the socket). */
struct conn_info {
	__u8 role;
	__u8 tls; /* seen under libssl: its syscalls carry TLS records */
	__u16 family;
	__u32 pid; /* first process that sent or received data on it (0: none yet) */
	__u16 local_port;
	__u16 remote_port;
	/* fd + 1 under which process `pid` was seen to hold this socket (0: not checked yet):
	 * its next data syscalls on that fd skip the fd-table read (fd_is_sock) */
	__u32 fd_ok;
	__u8 framing;   /* FRAMING_*: how its data is reported */
	__u8 announced; /* its APP_KIND_ACCEPT / APP_KIND_CONNECT was sent */
	__u8 _pad[2];
	__u64 established_ns; /* handshake completed (0: before the capture) */
	__u8 local_addr[16];
	__u8 remote_addr[16];
};

/* Internal op of task_state.ssl for SSL_do_handshake (the APP_SYS_SSL_* values are the others). */
#define SSL_OP_HANDSHAKE 0xff

/* A thread inside an SSL_* call. */
struct ssl_call {
	__u64 ssl;
	__u64 buf;
	__u64 out_len; /* size_t * of the _ex variants, 0 otherwise */
	__u64 start_ns;
	__u64 sp; /* stack pointer at entry: tells nested calls and stale entries apart */
	__u8 op;  /* APP_SYS_SSL_* or SSL_OP_HANDSHAKE; 0: no call in flight */
	__u8 _pad[7];
};

/* Per-thread state, in task-local storage (freed with the thread). */
struct task_state {
	struct ssl_call ssl; /* the SSL_* call in flight; ssl.op == 0: none */
	/* the HTTP/1.x server exchange this thread is serving: from reading its request head
	 * to writing its response's end (http_framing.h); serving_sk == 0: none */
	__u64 serving_sk;
	__u64 serving_start_ns;
	__u32 pid_gen;       /* app_config.pid_gen when `allowed` was computed (0: never) */
	__u8 allowed;        /* the pid filter's decision for this thread's tgid */
	__u8 _pad[3];
};

struct ssl_key {
	__u64 ssl; /* SSL* (a user address: per process) */
	__u32 tgid;
	__u32 _pad;
};

/* The socket an SSL object was last seen doing I/O on. */
struct ssl_sock {
	__u64 sk;
	__s32 fd;
	__u32 _pad;
	/* the socket's role and tuple when learnt (uprobes cannot read socket storage) */
	struct conn_info conn;
};

/* What a head says, from the kernel's scan. */
struct head_scan {
	__u32 len;       /* the head's length (blank line included); 0: not complete */
	__u16 status;    /* response */
	__u8 request;    /* 1: request line, 2: status line, 0: neither */
	__u8 method;     /* METHOD_* (requests) */
	__u8 chunked;    /* Transfer-Encoding: chunked */
	__u8 unframable; /* a Transfer-Encoding other than chunked alone */
	__u8 _pad[2];
	__s64 content_length; /* -1: none */
};

struct app_scratch {
	struct app_event ev;
	/* room for "offset <= 0xfff, size <= 0x1fff", the bounds the verifier gets from masks */
	__u8 data[APP_MAX_CAPTURE * 3];
	/* the iovec array of a vectored call, read with one helper call */
	struct iovec iov[APP_MAX_IOV];
	/* record bytes this CPU emitted since it last asked the ring buffer how full it is */
	__u32 pending;
	__u32 _pad;
	/* a chunk-size line read from a call's payload */
	__u8 chunk_line[32];
	/* not written: exchange records are built in place in the ring buffer (http_emit); this
	 * keeps their layout in the object's BTF, which tests/app_layout.rs checks the Rust
	 * mirror against */
	struct app_http_record http_layout;
	/* HTTP/1.x framing of one call (http_framing.h): the head being scanned, the cursor in
	 * the call's payload, the latest chunk-size line */
	struct head_scan scan;
	__u64 pos;
	__u64 total;
	__u64 chunk_size;
	__u32 chunk_eol;
	__u64 span_addr;  /* see payload_at() */
	__u64 span_len;
	__u32 scan_lines; /* lines scan_line() looked at */
	__u32 copied;     /* see copy_iov() */
	__u32 _pad2;
	/* the app_ssl_socks value being written (see on_sock_io): 80 bytes the send/receive
	 * programs' stack cannot spare (6.1 counts their deepest call chain at 512 bytes) */
	struct ssl_sock ssl_sock;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 * 1024 * 1024); /* overridden at load */
} app_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, APP_STAT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} app_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct app_config);
} app_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);  /* tgid */
	__type(value, __u8); /* APP_PID_INCLUDE / APP_PID_EXCLUDE */
} app_pids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct task_state);
} app_tasks SEC(".maps");

/* Socket-local storage: freed with the socket, found in a few loads (no hash lookup). */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct conn_info);
} app_conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct app_scratch);
} app_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct ssl_key);
	__type(value, struct ssl_sock);
} app_ssl_socks SEC(".maps");

/* Threads of any process inside an SSL_* call (entry 0, changed atomically by the libssl
 * probes and app_task_exit). While it is 0 the socket programs skip the thread's storage,
 * where they would look for a call in flight (~45 ns a call). A thread that longjmps out of a
 * call keeps it counted until its next call returns or it exits. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __s64);
} app_ssl_calls SEC(".maps");

static __always_inline void stat_add_inline(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&app_stats, &idx);
	if (v)
		*v += 1;
}

/* A subprogram (one copy for the many call sites). Where it would be a fourth nested frame
 * (the send/receive programs -> http_fall_back -> http_emit), stat_add_inline is used
 * instead: 6.1's verifier rounds every frame of a call chain up to 32 bytes (at least 32)
 * when it adds them against the 512-byte stack limit, where 6.18 counts them as they are. */
static __noinline void stat_add(__u32 idx)
{
	stat_add_inline(idx);
}

static __always_inline bool pid_allowed_lookup(const struct app_config *c, __u32 tgid)
{
	__u8 *v = bpf_map_lookup_elem(&app_pids, &tgid);
	if (c && c->filter_mode == APP_FILTER_ONLY)
		return v && *v == APP_PID_INCLUDE;
	return !(v && *v == APP_PID_EXCLUDE);
}

/* The current thread's state, created on first use; NULL if the kernel cannot allocate it
 * (the caller then reports nothing). */
static __always_inline struct task_state *task_state(void)
{
	return bpf_task_storage_get(&app_tasks, bpf_get_current_task_btf(), 0,
				    BPF_LOCAL_STORAGE_GET_F_CREATE);
}

/* The current thread's state if it has one (exits: no state, nothing in flight). */
static __always_inline struct task_state *task_state_if_any(void)
{
	return bpf_task_storage_get(&app_tasks, bpf_get_current_task_btf(), 0, 0);
}

/* The pid filter's decision from the list in the config, -1 if the list is in `app_pids`. */
static __always_inline int pid_allowed_inline(const struct app_config *c, __u32 tgid)
{
	__u32 n = *(volatile __u32 *)&c->n_pids;
	if (n > APP_INLINE_PIDS)
		return -1;
	bool listed = false;
	for (__u32 i = 0; i < APP_INLINE_PIDS; i++)
		if (i < n && c->pids[i] == tgid)
			listed = true;
	return c->filter_mode == APP_FILTER_ONLY ? listed : !listed;
}

/* The pid filter's decision for the current thread, cached in its state: the `app_pids`
 * lookup runs again only after userspace changed the filter (it bumps app_config.pid_gen
 * after every change of app_pids or of the mode). */
static __always_inline bool pid_allowed_cached(const struct app_config *c, struct task_state *st,
					       __u32 tgid)
{
	/* the generation is read before the lookup: a change racing with it is seen as a newer
	 * generation by the next call, which looks up again */
	__u32 gen = *(volatile __u32 *)&c->pid_gen;
	if (st->pid_gen != gen) {
		st->allowed = pid_allowed_lookup(c, tgid);
		st->pid_gen = gen;
	}
	return st->allowed;
}

static __always_inline void ssl_calls_add(__s64 n)
{
	__u32 zero = 0;
	__s64 *v = bpf_map_lookup_elem(&app_ssl_calls, &zero);
	if (v)
		__sync_fetch_and_add(v, n);
}

/* Whether some thread may be inside an SSL_* call (nonzero, not > 0: a count gone wrong must
 * not hide a call). */
static __always_inline bool ssl_calls_in_flight(void)
{
	__u32 zero = 0;
	__s64 *v = bpf_map_lookup_elem(&app_ssl_calls, &zero);
	return !v || *(volatile __s64 *)v != 0;
}

/* Whether the current thread's process is traced, and (in *stp) the thread's state when the
 * caller needs it: while some thread is inside an SSL_* call (it may be this one), or with
 * `need_state`.
 * The state stays NULL otherwise, or when the kernel cannot allocate it; the decision is then
 * made without it (no event is dropped for want of storage). */
static __always_inline bool traced(__u32 tgid, bool need_state, struct task_state **stp)
{
	__u32 zero = 0;
	struct app_config *c = bpf_map_lookup_elem(&app_config, &zero);
	*stp = NULL;
	if (!c)
		return false;
	int allowed = pid_allowed_inline(c, tgid);
	if (allowed < 0 || need_state || (c->tls_probes && ssl_calls_in_flight()))
		*stp = task_state();
	if (allowed >= 0)
		return allowed;
	return *stp ? pid_allowed_cached(c, *stp, tgid) : pid_allowed_lookup(c, tgid);
}

/* Whether process `tgid` (not necessarily the current one) is traced. */
static __always_inline bool pid_traced(__u32 tgid)
{
	__u32 zero = 0;
	struct app_config *c = bpf_map_lookup_elem(&app_config, &zero);
	if (!c)
		return false;
	int allowed = pid_allowed_inline(c, tgid);
	return allowed >= 0 ? allowed : pid_allowed_lookup(c, tgid);
}

static __always_inline __u32 capture_limit(void)
{
	__u32 zero = 0;
	struct app_config *c = bpf_map_lookup_elem(&app_config, &zero);
	__u32 cap = c ? c->capture_bytes : 0;
	if (cap > APP_MAX_CAPTURE)
		cap = APP_MAX_CAPTURE;
	return cap;
}

static __always_inline void read_tuple(struct conn_info *ci, struct sock *sk)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	ci->family = family;
	ci->local_port = BPF_CORE_READ(sk, __sk_common.skc_num);
	if (!ci->local_port) /* skc_num is cleared once the socket reached TCP_CLOSE */
		ci->local_port = bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
	ci->remote_port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (family == AF_INET) {
		BPF_CORE_READ_INTO((__u32 *)ci->local_addr, sk, __sk_common.skc_rcv_saddr);
		BPF_CORE_READ_INTO((__u32 *)ci->remote_addr, sk, __sk_common.skc_daddr);
	} else {
		BPF_CORE_READ_INTO((struct in6_addr *)ci->local_addr, sk, __sk_common.skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO((struct in6_addr *)ci->remote_addr, sk, __sk_common.skc_v6_daddr);
	}
}

/* The storage of a socket seen without one (the caller looked it up): created with the tuple
 * and an unknown role. Never NULL: if the kernel cannot allocate the storage, `tmp` is filled
 * and returned. */
static __always_inline struct conn_info *new_conn(struct sock *sk, struct conn_info *tmp)
{
	struct conn_info *ci;
	__builtin_memset(tmp, 0, sizeof(*tmp));
	read_tuple(tmp, sk);
	ci = bpf_sk_storage_get(&app_conns, sk, tmp, BPF_SK_STORAGE_GET_F_CREATE);
	return ci ? ci : tmp;
}

static __always_inline void copy_conn(struct app_event *e, const struct conn_info *ci)
{
	e->role = ci->role;
	e->family = ci->family;
	e->local_port = ci->local_port;
	e->remote_port = ci->remote_port;
	__builtin_memcpy(e->local_addr, ci->local_addr, 16);
	__builtin_memcpy(e->remote_addr, ci->remote_addr, 16);
}

/* This CPU's scratch record, or NULL. */
static __always_inline struct app_scratch *scratch(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&app_scratch, &zero);
}

/* Scratch record with a zeroed header, or NULL. */
static __always_inline struct app_scratch *scratch_event(void)
{
	struct app_scratch *s = scratch();
	if (s)
		__builtin_memset(&s->ev, 0, sizeof(s->ev));
	return s;
}

/* The process name (comm of the thread group leader: a worker thread's own name, e.g.
 * "grpc_global_tim", would not name the process). Only on the emit path. */
static __always_inline void set_comm(struct app_event *e)
{
	struct task_struct *task = bpf_get_current_task_btf();
	/* direct (BTF, fault-safe) loads: cheaper than a helper call */
	struct task_struct *leader = task->group_leader;
	__u64 *dst = (__u64 *)e->comm;
	dst[0] = *(const __u64 *)&leader->comm[0];
	dst[1] = *(const __u64 *)&leader->comm[8];
}

/* Flags for a record of `size` bytes: waking the consumer costs an irq_work and a scheduler
 * wakeup per event, so wakeups are batched. */
static __always_inline __u64 wakeup_flags(struct app_scratch *s, __u32 size)
{
	__u32 zero = 0;
	struct app_config *c = bpf_map_lookup_elem(&app_config, &zero);
	if (!s || !c || !c->wakeup_bytes)
		return 0;
	/* asking how full the buffer is reads the positions the consumer and the other CPUs
	 * write (~200 ns of cache-line transfers here): ask once per wakeup_bytes / 8 emitted by
	 * this CPU, so the wakeup comes at most that much late */
	s->pending += size;
	if (s->pending < c->wakeup_bytes / 8)
		return BPF_RB_NO_WAKEUP;
	s->pending = 0;
	return bpf_ringbuf_query(&app_events, BPF_RB_AVAIL_DATA) >= c->wakeup_bytes
		       ? BPF_RB_FORCE_WAKEUP
		       : BPF_RB_NO_WAKEUP;
}

/* Emits the scratch record: its header and `len` payload bytes from s->data. */
static __always_inline void submit(struct app_scratch *s, __u32 len)
{
	if (len > APP_MAX_CAPTURE)
		len = APP_MAX_CAPTURE;
	asm volatile("%[len] &= 0x1fff" : [len] "+r"(len)); /* bound for the verifier */
	s->ev.captured_len = len;
	set_comm(&s->ev);
	__u32 size = sizeof(struct app_event) + len;
	if (bpf_ringbuf_output(&app_events, s, size, wakeup_flags(s, size)))
		stat_add(APP_STAT_LOST);
	else
		stat_add(APP_STAT_EMITTED);
}

/* Copies n (<= APP_MAX_CAPTURE) user bytes to data[off] (off < APP_MAX_CAPTURE). */
static __always_inline __u32 copy_chunk(__u8 *data, __u32 off, const void *src, __u64 n)
{
	/* both bounds in asm: clang drops a C mask where the caller's logic already bounds the
	 * value, and 6.1's verifier loses such bounds through stack spills */
	__u32 o = off;
	asm volatile("%[o] &= 0xfff" : [o] "+r"(o));
	__u32 sz = n > APP_MAX_CAPTURE ? APP_MAX_CAPTURE : (__u32)n;
	asm volatile("%[sz] &= 0x1fff" : [sz] "+r"(sz));
	if (bpf_probe_read_user(data + o, sz, src))
		return 0;
	return sz;
}

/* Copies up to `want` bytes from the first APP_MAX_IOV iovecs (of iovcnt) to s->data[at..]
 * (at < APP_MAX_CAPTURE). The loop runs once per iovec actually used (not unrolled). A global
 * function: the verifier checks its loop once, not at every call with the caller's state. */
__noinline __u32 copy_iov(struct app_scratch *s, __u64 iov_addr, __u64 iovcnt, __u32 at, __u32 want)
{
	/* a user address, passed as a number: a pointer argument of a global function is taken
	 * for memory the verifier can check */
	const struct iovec *iov = (const struct iovec *)iov_addr;
	if (!s)
		return 0;
	if (iovcnt > APP_MAX_IOV)
		iovcnt = APP_MAX_IOV;
	if (!iovcnt)
		return 0;
	/* one read for the whole array: cnt is 1..APP_MAX_IOV, in a form older verifiers bound
	 * too (6.1 loses the compare's bound through a stack spill) */
	__u32 cnt = (__u32)iovcnt - 1;
	asm volatile("%[c] &= 0x3f" : [c] "+r"(cnt));
	cnt += 1;
	if (bpf_probe_read_user(s->iov, cnt * sizeof(struct iovec), iov))
		return 0;
	if (want > APP_MAX_CAPTURE)
		want = APP_MAX_CAPTURE;
	/* the count so far lives in map memory, which the verifier does not track: every
	 * iteration starts from the same state, whatever the earlier iovecs held */
	s->copied = 0;
	for (__u32 i = 0; i < APP_MAX_IOV; i++) {
		__u32 off = *(volatile __u32 *)&s->copied;
		if (i >= cnt || off >= want)
			break;
		__u64 n = s->iov[i].iov_len;
		if (n > want - off)
			n = want - off;
		if (n == 0)
			continue;
		__u32 got = copy_chunk(s->data, at + off, s->iov[i].iov_base, n);
		if (!got)
			break;
		s->copied = off + got;
	}
	return s->copied;
}

/* Emits the data record whose header is in s->ev with the first min(moved, capture_bytes)
 * bytes of the payload, read from user memory as `buf_kind` says (`buf`, `aux`: see struct
 * data_call). Calls without a payload (BUF_NONE) never get here: emit_direct sends those. */
static __always_inline void emit_data(struct app_scratch *s, __u8 buf_kind, __u64 buf, __u64 aux,
				      __u64 moved)
{
	__u32 cap = capture_limit();
	__u32 want = moved < cap ? (__u32)moved : cap;
	__u32 len = 0;
	if (buf_kind == BUF_PLAIN) {
		if (want)
			len = copy_chunk(s->data, 0, (const void *)buf, want);
	} else if (buf_kind == BUF_IOV) {
		len = copy_iov(s, buf, aux, 0, want);
	} else if (buf_kind == BUF_MSG) {
		struct user_msghdr *msg = (struct user_msghdr *)buf;
		struct iovec *iov = NULL;
		__u64 iovlen = 0;
		bpf_probe_read_user(&iov, sizeof(iov), &msg->msg_iov);
		bpf_probe_read_user(&iovlen, sizeof(iovlen), &msg->msg_iovlen);
		if (iov)
			len = copy_iov(s, (__u64)iov, iovlen, 0, want);
	}
	submit(s, len);
}

/* x86-64 syscall numbers (the object is built for x86 only, see __TARGET_ARCH_x86) */
#define NR_read 0
#define NR_write 1
#define NR_readv 19
#define NR_writev 20
#define NR_sendfile 40
#define NR_sendto 44
#define NR_recvfrom 45
#define NR_sendmsg 46
#define NR_recvmsg 47
#define NR_splice 275
/* thread_info.status bit of a task inside an ia32 syscall (other numbers, other registers) */
#define TS_COMPAT_ 0x0002
/* task_struct.flags: kernel threads and io_uring workers make no syscall of their own */
#define PF_IO_WORKER_ 0x00000010
#define PF_KTHREAD_ 0x00200000

/* A socket send or receive: the data syscall behind it, decoded from the registers it saved
 * (buf, aux, fd, sys, buf_kind), and what the socket layer reported (sk, ret, dir). */
struct data_call {
	__u64 buf; /* buffer, struct iovec * or struct user_msghdr * (see buf_kind) */
	__u64 aux; /* iovcnt of the vectored calls */
	__u64 sk; /* the struct sock that moved the bytes */
	__u64 id; /* bpf_get_current_pid_tgid() */
	int ret;  /* bytes moved */
	__s32 fd;
	__u8 sys;
	__u8 buf_kind;
	__u8 dir;
};

/* Submits a record reserved in the ring buffer (see emit_direct); it starts with its header. */
static __always_inline void submit_direct(void *rec, __u32 size)
{
	set_comm((struct app_event *)rec);
	bpf_ringbuf_submit(rec, wakeup_flags(scratch(), size));
	stat_add(APP_STAT_EMITTED);
}

/* The header of a data record for call `c`, but for `comm` (set by submit_direct or submit,
 * whichever sends the record). */
static __always_inline void fill_data_header(struct app_event *e, const struct data_call *c,
					     const struct conn_info *ci)
{
	__builtin_memset(e, 0, sizeof(*e));
	e->kind = APP_KIND_DATA;
	e->direction = c->dir;
	e->syscall = c->sys;
	e->pid = c->id >> 32;
	e->tid = (__u32)c->id;
	e->fd = c->fd;
	e->conn_id = c->sk;
	e->end_ns = bpf_ktime_get_ns();
	e->start_ns = e->end_ns; /* seen when the data moved only */
	e->bytes = c->ret;
	copy_conn(e, ci);
}

/* Emits, when `want` (1..N) fits, a record of the header and N payload bytes reserved in the
 * ring buffer, with the first `want` bytes at `src` copied in. N is a power of two and MASK
 * N - 1, spelled out for the asm that bounds the size for the verifier. */
#define EMIT_DIRECT_CLASS(N, MASK)                                                          \
	if (want <= N) {                                                                    \
		struct {                                                                    \
			struct app_event ev;                                                \
			__u8 data[N];                                                       \
		} *d = bpf_ringbuf_reserve(&app_events, sizeof(*d), 0);                     \
		if (!d) {                                                                   \
			stat_add(APP_STAT_LOST);                                            \
			return true;                                                        \
		}                                                                           \
		fill_data_header(&d->ev, c, ci);                                            \
		__u32 sz = want - 1; /* 1..N below, in a form the verifier bounds */        \
		asm volatile("%[sz] &= " #MASK : [sz] "+r"(sz));                            \
		sz += 1;                                                                    \
		d->ev.captured_len = bpf_probe_read_user(d->data, sz, (const void *)src) ? 0 : sz; \
		submit_direct(d, sizeof(*d));                                               \
		return true;                                                                \
	}

/*
 * The common data record without the scratch buffer: the header and up to 256 payload bytes
 * are written straight into a ring buffer record (one copy of the payload instead of two, no
 * scratch header to clear). Records come in four sizes (no payload, 64, 128, 256 bytes) so
 * that short payloads do not spread the ring buffer: its unused tail is never read,
 * captured_len says how much is payload. For plain buffers, a vectored call with one iovec,
 * and calls without a payload. False when the call needs emit_data (more iovecs, a msghdr,
 * or a larger capture).
 */
static __always_inline bool emit_direct(const struct data_call *c, const struct conn_info *ci)
{
	__u32 cap = capture_limit();
	__u64 src = c->buf;
	__u64 avail = (__u64)c->ret;
	if (c->buf_kind == BUF_IOV) {
		struct iovec v;
		if (c->aux != 1 || bpf_probe_read_user(&v, sizeof(v), (const void *)c->buf))
			return false;
		src = (__u64)v.iov_base;
		if (v.iov_len < avail)
			avail = v.iov_len;
	} else if (c->buf_kind != BUF_PLAIN && c->buf_kind != BUF_NONE) {
		return false;
	}
	__u32 want = c->buf_kind == BUF_NONE ? 0 : avail < cap ? (__u32)avail : cap;
	if (want == 0) {
		struct app_event *e = bpf_ringbuf_reserve(&app_events, sizeof(*e), 0);
		if (!e) {
			stat_add(APP_STAT_LOST);
			return true;
		}
		fill_data_header(e, c, ci);
		if (c->buf_kind == BUF_NONE)
			e->flags = APP_FLAG_NO_PAYLOAD;
		submit_direct(e, sizeof(*e));
		return true;
	}
	EMIT_DIRECT_CLASS(64, 0x3f)
	EMIT_DIRECT_CLASS(128, 0x7f)
	EMIT_DIRECT_CLASS(256, 0xff)
	return false;
}

/* Decodes the syscall the current task is in. False for calls that are not a data syscall in
 * the expected direction (io_uring, aio, in-kernel users...): those are not reported. */
static __always_inline bool data_call_of(struct task_struct *task, __u8 dir, struct data_call *c)
{
	if (task->thread_info.status & TS_COMPAT_)
		return false;
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);
	if (!regs)
		return false;
	/* direct loads (BTF pointer): a helper read each would cost ~40 ns here */
	__u64 nr = regs->orig_ax;
	c->fd = (__s32)regs->di;
	c->buf = regs->si;
	c->aux = regs->dx;
#define DATA_CALL(NR, SYS, DIR, KIND)                                                      \
	case NR:                                                                            \
		c->sys = SYS;                                                               \
		c->buf_kind = KIND;                                                         \
		return dir == DIR;
	switch (nr) {
	DATA_CALL(NR_read, APP_SYS_READ, APP_DIR_INGRESS, BUF_PLAIN)
	DATA_CALL(NR_write, APP_SYS_WRITE, APP_DIR_EGRESS, BUF_PLAIN)
	DATA_CALL(NR_readv, APP_SYS_READV, APP_DIR_INGRESS, BUF_IOV)
	DATA_CALL(NR_writev, APP_SYS_WRITEV, APP_DIR_EGRESS, BUF_IOV)
	DATA_CALL(NR_recvfrom, APP_SYS_RECVFROM, APP_DIR_INGRESS, BUF_PLAIN)
	DATA_CALL(NR_sendto, APP_SYS_SENDTO, APP_DIR_EGRESS, BUF_PLAIN)
	DATA_CALL(NR_recvmsg, APP_SYS_RECVMSG, APP_DIR_INGRESS, BUF_MSG)
	DATA_CALL(NR_sendmsg, APP_SYS_SENDMSG, APP_DIR_EGRESS, BUF_MSG)
	DATA_CALL(NR_sendfile, APP_SYS_SENDFILE, APP_DIR_EGRESS, BUF_NONE)
	case NR_splice: /* splice(fd_in, off_in, fd_out, ...): the socket is fd_out */
		c->fd = (__s32)regs->dx;
		c->sys = APP_SYS_SPLICE;
		c->buf_kind = BUF_NONE;
		return dir == APP_DIR_EGRESS;
	}
#undef DATA_CALL
	return false;
}

/* Whether the current task's `fd` is the file of `sk`: the socket a data syscall names is the
 * one sending or receiving (not, say, an NBD or NFS socket the kernel drives from inside a
 * read() of a file). */
static __always_inline bool fd_is_sock(struct task_struct *task, __s32 fd, struct sock *sk)
{
	struct socket *sock = sk->sk_socket;
	if (fd < 0 || !sock)
		return false;
	struct file *want = sock->file;
	struct files_struct *files = task->files;
	if (!files || !want)
		return false;
	struct fdtable *fdt = files->fdt;
	if (!fdt || (__u32)fd >= fdt->max_fds)
		return false;
	struct file *f = NULL;
	struct file **fds = fdt->fd;
	return !bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]) && f == want;
}

/* IPv4/IPv6 TCP (SCTP's SOCK_STREAM and MPTCP have other protocols). */
static __always_inline bool is_tcp(const struct sock *sk)
{
	__u16 family = sk->__sk_common.skc_family;
	return (family == AF_INET || family == AF_INET6) && sk->sk_type == SOCK_STREAM &&
	       sk->sk_protocol == IPPROTO_TCP_;
}

/* APP_KIND_ACCEPT / APP_KIND_CONNECT for a connection this process uses for the first time:
 * the handshake completed in softirq context, where the process is not known. */
static __always_inline void announce(struct conn_info *ci, __u64 sk, __u64 id, __s32 fd)
{
	struct app_scratch *s = scratch_event();
	if (!s)
		return;
	struct app_event *e = &s->ev;
	e->kind = ci->role == APP_ROLE_CLIENT ? APP_KIND_CONNECT : APP_KIND_ACCEPT;
	e->syscall = ci->role == APP_ROLE_CLIENT ? APP_SYS_CONNECT : APP_SYS_ACCEPT;
	e->pid = id >> 32;
	e->tid = (__u32)id;
	e->fd = fd;
	e->conn_id = sk;
	e->start_ns = ci->established_ns;
	e->end_ns = ci->established_ns;
	copy_conn(e, ci);
	submit(s, 0);
}

/* The connect or accept record of a connection reported per call, before its first record
 * (to the process its close goes to). */
static __always_inline void announce_once(struct conn_info *ci, __u64 sk, __u64 id, __s32 fd)
{
	if (ci->announced || ci->pid != id >> 32)
		return;
	ci->announced = 1;
	if (ci->role != APP_ROLE_UNKNOWN)
		announce(ci, sk, id, fd);
}

static __always_inline bool frame_http(void)
{
	__u32 zero = 0;
	struct app_config *c = bpf_map_lookup_elem(&app_config, &zero);
	return c && c->frame_http;
}

#include "http_framing.h"

/* A TCP socket of a traced process sent (egress) or received (ingress) `ret` bytes. */
static __always_inline int on_sock_io(struct sock *sk, int ret, int flags, __u8 dir)
{
	/* errors (EAGAIN...) and EOF moved nothing; MSG_PEEK leaves the bytes queued: the read
	 * that consumes them reports them (nginx peeks 1 byte to tell TLS from plain HTTP) */
	if (ret <= 0 || (flags & MSG_PEEK_) || !is_tcp(sk))
		return 0;
	struct task_struct *task = bpf_get_current_task_btf();
	if (task->flags & (PF_KTHREAD_ | PF_IO_WORKER_))
		return 0;
	__u64 id = bpf_get_current_pid_tgid();
	struct task_state *st;
	if (!traced(id >> 32, false, &st))
		return 0;
	struct data_call c = {};
	if (!data_call_of(task, dir, &c))
		return 0;
	__u32 tgid = id >> 32;
	struct conn_info tmp;
	struct conn_info *ci = bpf_sk_storage_get(&app_conns, sk, 0, 0);
	/* the fd-table read (cold cache lines: files, fdtable, fd array) once per socket and
	 * fd; a later call under the same fd number in the same process names the same socket
	 * unless the process closed that fd and reopened the number while the socket lived on
	 * in a kernel user that it then drives through that very fd */
	bool fd_known = false;
	if (ci) {
		barrier_var(ci); /* no address arithmetic on it before the NULL test (verifier) */
		fd_known = ci->pid == tgid && ci->fd_ok == (__u32)c.fd + 1;
	}
	if (!fd_known) {
		if (!fd_is_sock(task, c.fd, sk))
			return 0;
		/* a send that returns after the connection's end was reported (a reset while the
		 * sender was blocked): nothing more to report on it */
		if (!ci && sk->__sk_common.skc_state == TCP_CLOSE_)
			return 0;
		if (!ci)
			ci = new_conn(sk, &tmp);
		if (!ci->pid || ci->pid == tgid)
			ci->fd_ok = (__u32)c.fd + 1;
	}
	if (!ci->pid) /* first use by a traced process: its close is reported to this process */
		ci->pid = tgid;
	if (st && st->ssl.op) {
		/* libssl moving TLS records: learn SSL* -> socket, mark the socket, report nothing
		 * (the plaintext comes from the uretprobe, per call) */
		ci->tls = 1;
		ci->framing = FRAMING_PER_CALL;
		announce_once(ci, (__u64)sk, id, c.fd);
		struct ssl_key k = {.ssl = st->ssl.ssl, .tgid = id >> 32};
		struct ssl_sock *known = bpf_map_lookup_elem(&app_ssl_socks, &k);
		/* a freed socket's address (and fd) can come back for the next connection: the
		 * ports and the handshake time tell them apart */
		if (!known || known->sk != (__u64)sk || known->fd != c.fd ||
		    known->conn.remote_port != ci->remote_port ||
		    known->conn.local_port != ci->local_port ||
		    known->conn.established_ns != ci->established_ns) {
			struct app_scratch *s = scratch();
			if (s) {
				struct ssl_sock *v = &s->ssl_sock;
				v->sk = (__u64)sk;
				v->fd = c.fd;
				v->_pad = 0;
				v->conn = *ci;
				bpf_map_update_elem(&app_ssl_socks, &k, v, BPF_ANY);
			}
		}
		stat_add(APP_STAT_TLS_SKIPPED);
		return 0;
	}
	if (ci->tls) {
		/* TLS records outside a traced SSL_* call (e.g. SSL_shutdown) */
		stat_add(APP_STAT_TLS_SKIPPED);
		return 0;
	}
	c.sk = (__u64)sk;
	c.id = id;
	c.ret = ret;
	c.dir = dir;
	if (ci->framing == FRAMING_UNDECIDED || ci->framing == FRAMING_HTTP) {
		if (http_on_call(&c, ci, sk))
			return 0;
	} else if (ci->framing == FRAMING_OPAQUE) {
		return 0;
	}
	announce_once(ci, (__u64)sk, id, c.fd);
	if (emit_direct(&c, ci))
		return 0;
	struct app_scratch *s = scratch(); /* the header is cleared by fill_data_header */
	if (!s)
		return 0;
	fill_data_header(&s->ev, &c, ci);
	emit_data(s, c.buf_kind, c.buf, c.aux, ret);
	return 0;
}

/*
 * The socket layer's own tracepoints, after every sendmsg/recvmsg on any socket (struct sock
 * and byte count as arguments): they run only for socket I/O, where a syscall tracepoint runs
 * for every syscall of every process and forces each one through the kernel's slow path. The
 * syscall's arguments (fd, buffer) are read from the registers it saved on entry.
 */
SEC("tp_btf/sock_send_length")
int BPF_PROG(app_sock_send, struct sock *sk, int ret, int flags)
{
	return on_sock_io(sk, ret, 0, APP_DIR_EGRESS);
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(app_sock_recv, struct sock *sk, int ret, int flags)
{
	return on_sock_io(sk, ret, flags, APP_DIR_INGRESS);
}


/*
 * TCP state changes: a completed handshake records the socket's role (reported with its first
 * data, see announce()); the end of a connection reports APP_KIND_CLOSE to the process that
 * used it and forgets the socket. The end is TCP_CLOSE, or the FIN of close(2) (both
 * directions shut: not a half-close by shutdown(SHUT_WR), after which data still arrives).
 */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(app_sock_state, const struct sock *sk, int oldstate, int newstate)
{
	if (!is_tcp(sk))
		return 0;
	__u64 key = (__u64)sk;
	if (newstate == TCP_ESTABLISHED_) {
		__u8 role = oldstate == TCP_SYN_SENT_   ? APP_ROLE_CLIENT
			    : oldstate == TCP_SYN_RECV_ ? APP_ROLE_SERVER
							: APP_ROLE_UNKNOWN;
		struct conn_info fresh = {.role = role, .established_ns = bpf_ktime_get_ns()};
		read_tuple(&fresh, (struct sock *)sk);
		struct conn_info *ci = bpf_sk_storage_get(&app_conns, (struct sock *)sk, &fresh,
							  BPF_SK_STORAGE_GET_F_CREATE);
		/* data before the handshake completed (TCP Fast Open): the storage was there */
		if (ci && ci->role == APP_ROLE_UNKNOWN)
			ci->role = role;
		return 0;
	}
	bool closing = newstate == TCP_FIN_WAIT1_ || newstate == TCP_LAST_ACK_;
	if (newstate != TCP_CLOSE_ && !(closing && sk->sk_shutdown == SHUTDOWN_MASK_))
		return 0;
	struct conn_info *cached = bpf_sk_storage_get(&app_conns, (struct sock *)sk, 0, 0);
	if (!cached)
		return 0;
	struct conn_info ci = *cached;
	bpf_sk_storage_delete(&app_conns, (struct sock *)sk);
	/* reported only to a traced process that saw data on it */
	if (!ci.pid || !pid_traced(ci.pid))
		return 0;
	if (ci.framing == FRAMING_HTTP || ci.framing == FRAMING_OPAQUE) {
		/* no per-call records: the exchange in flight (if any) is the only one to send */
		http_on_close((struct sock *)sk, &ci);
		return 0;
	}
	struct app_scratch *s = scratch_event();
	if (!s)
		return 0;
	struct app_event *e = &s->ev;
	__u64 id = bpf_get_current_pid_tgid();
	e->kind = APP_KIND_CLOSE;
	e->syscall = APP_SYS_CLOSE;
	e->pid = ci.pid;
	/* the closing thread when the owner closes (softirq context otherwise: no thread) */
	e->tid = id >> 32 == ci.pid ? (__u32)id : 0;
	e->fd = -1;
	e->conn_id = key;
	e->start_ns = bpf_ktime_get_ns();
	e->end_ns = e->start_ns;
	copy_conn(e, &ci);
	submit(s, 0);
	return 0;
}

/* ---- TLS: libssl uprobes ---- */

static __always_inline int ssl_enter(struct pt_regs *ctx, __u8 op, bool ex)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct task_state *st;
	if (!traced(id >> 32, true, &st) || !st)
		return 0;
	__u64 sp = PT_REGS_SP(ctx);
	struct ssl_call *cur = &st->ssl;
	/* deeper on the stack than the recorded call: nested inside it (e.g. a BIO callback or a
	 * handshake driven from SSL_read), the outer call reports. Otherwise a recorded call is
	 * stale (its return was never seen) and is replaced. */
	if (cur->op && sp < cur->sp)
		return 0;
	cur->ssl = PT_REGS_PARM1(ctx);
	cur->start_ns = bpf_ktime_get_ns();
	cur->sp = sp;
	cur->buf = 0;
	cur->out_len = 0;
	if (op != SSL_OP_HANDSHAKE) {
		cur->buf = PT_REGS_PARM2(ctx);
		if (ex)
			cur->out_len = PT_REGS_PARM4(ctx);
	}
	if (!cur->op) /* not a stale call being replaced: one more call in flight */
		ssl_calls_add(1);
	cur->op = op;
	return 0;
}

static __always_inline int ssl_exit(struct pt_regs *ctx, __u8 op)
{
	struct task_state *st = task_state_if_any();
	if (!st || !st->ssl.op)
		return 0;
	struct ssl_call *cur = &st->ssl;
	/* on return the stack pointer is 8 above the entry's (the return address is popped) */
	__u64 sp = PT_REGS_SP(ctx);
	if (sp <= cur->sp)
		return 0; /* return of a nested call */
	struct ssl_call c = *cur;
	cur->op = 0; /* no call in flight */
	ssl_calls_add(-1);
	__u64 id = bpf_get_current_pid_tgid();
	if (sp != c.sp + 8 || c.op != op || op == SSL_OP_HANDSHAKE)
		return 0; /* stale record, or the handshake (nothing to report) */

	long rc = PT_REGS_RC(ctx);
	__s64 bytes;
	if (c.out_len) {
		/* SSL_read_ex / SSL_write_ex: 1 on success, the count in *out_len */
		if ((int)rc != 1)
			return 0;
		__u64 n = 0;
		if (bpf_probe_read_user(&n, sizeof(n), (const void *)c.out_len))
			return 0;
		bytes = (__s64)n;
	} else {
		bytes = (int)rc;
	}
	if (bytes <= 0)
		return 0;

	struct app_scratch *s = scratch_event();
	if (!s)
		return 0;
	struct app_event *e = &s->ev;
	e->kind = APP_KIND_DATA;
	e->direction = (op == APP_SYS_SSL_READ || op == APP_SYS_SSL_READ_EX) ? APP_DIR_INGRESS
									      : APP_DIR_EGRESS;
	e->syscall = op;
	e->flags = APP_FLAG_TLS;
	e->pid = id >> 32;
	e->tid = (__u32)id;
	e->start_ns = c.start_ns;
	e->end_ns = bpf_ktime_get_ns();
	e->bytes = bytes;
	struct ssl_key k = {.ssl = c.ssl, .tgid = id >> 32};
	struct ssl_sock *sock = bpf_map_lookup_elem(&app_ssl_socks, &k);
	if (sock) {
		e->fd = sock->fd;
		e->conn_id = sock->sk;
		copy_conn(e, &sock->conn);
	} else {
		e->flags |= APP_FLAG_TLS_NO_SOCKET;
		e->fd = -1;
		e->conn_id = c.ssl;
	}
	emit_data(s, BUF_PLAIN, c.buf, 0, bytes);
	return 0;
}

/* A thread that exits inside an SSL_* call (killed while blocked in SSL_read, say) leaves
 * app_ssl_calls. Its storage goes with it. */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(app_task_exit, struct task_struct *p)
{
	struct task_state *st = task_state_if_any();
	if (st && st->ssl.op) {
		st->ssl.op = 0;
		ssl_calls_add(-1);
	}
	return 0;
}

#define SSL_PROGS(name, OP, EX)                                                             \
	SEC("uprobe/" #name)                                                                 \
	int app_ssl_enter_##name(struct pt_regs *ctx)                                        \
	{                                                                                    \
		return ssl_enter(ctx, OP, EX);                                               \
	}                                                                                    \
	SEC("uretprobe/" #name)                                                              \
	int app_ssl_exit_##name(struct pt_regs *ctx)                                         \
	{                                                                                    \
		return ssl_exit(ctx, OP);                                                    \
	}

SSL_PROGS(SSL_read, APP_SYS_SSL_READ, false)
SSL_PROGS(SSL_write, APP_SYS_SSL_WRITE, false)
SSL_PROGS(SSL_read_ex, APP_SYS_SSL_READ_EX, true)
SSL_PROGS(SSL_write_ex, APP_SYS_SSL_WRITE_EX, true)
SSL_PROGS(SSL_do_handshake, SSL_OP_HANDSHAKE, false)

/* ======================================================================================
 * Socket hooks for kernels without the sock_send_length / sock_recv_length tracepoints
 * (they came with Linux 6.3): fexit on TCP's own send and receive functions, with the same
 * arguments for on_sock_io(). User space loads and attaches these instead of
 * app_sock_send / app_sock_recv only when the kernel's BTF has no such tracepoint
 * (crates/ebpf/src/app.rs, SocketHooks). Nothing above this section depends on it.
 *
 * Why not sock_sendmsg / sock_recvmsg, where the tracepoints fire: on 6.1 the compiler
 * inlines sock_sendmsg into its callers in net/socket.c (write, sendto...), so an fexit on
 * the out-of-line copy misses most sends. tcp_sendmsg / tcp_recvmsg are reached through
 * sk_prot from another file and are never inlined; they see exactly the TCP sockets'
 * calls, IPv4 and IPv6.
 * ====================================================================================== */

SEC("fexit/tcp_sendmsg")
int BPF_PROG(app_fexit_sendmsg, struct sock *sk, struct msghdr *msg, size_t size, int ret)
{
	return on_sock_io(sk, ret, 0, APP_DIR_EGRESS);
}

SEC("fexit/tcp_recvmsg")
int BPF_PROG(app_fexit_recvmsg, struct sock *sk, struct msghdr *msg, size_t len, int flags,
	     int *addr_len, int ret)
{
	return on_sock_io(sk, ret, flags, APP_DIR_INGRESS);
}

/* The same before Linux 5.19, where tcp_recvmsg has a `nonblock` argument before `flags`:
 * user space loads the one of the two that matches the kernel's BTF (recvmsg_program) */
SEC("fexit/tcp_recvmsg")
int BPF_PROG(app_fexit_recvmsg_nonblock, struct sock *sk, struct msghdr *msg, size_t len,
	     int nonblock, int flags, int *addr_len, int ret)
{
	return on_sock_io(sk, ret, flags, APP_DIR_INGRESS);
}

/* sendfile and splice to a TCP socket: before Linux 6.5 they reach TCP through sendpage, one
 * call per page, not through sendmsg (no payload is captured for them either way) */
SEC("fexit/tcp_sendpage")
int BPF_PROG(app_fexit_sendpage, struct sock *sk, struct page *page, int offset, size_t size,
	     int flags, int ret)
{
	return on_sock_io(sk, ret, 0, APP_DIR_EGRESS);
}
