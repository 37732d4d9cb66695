// SPDX-License-Identifier: GPL-2.0
/*
 * tapline application (L7) capture.
 *
 * Syscall tracepoints only (no kprobes/fentry on the target kernels):
 *  - tp_btf/sys_exit (one program for every syscall, filtered by number first): the arguments
 *    are read from the saved registers. Data syscalls that moved bytes: pid filter (a short
 *    list in `app_config`, else `app_pids` with the decision cached in the thread's task-local
 *    storage `app_tasks`), then fd -> struct file -> struct
 *    socket -> struct sock through the current task's fd table (CO-RE); non-TCP fds stop
 *    here. Then one APP_KIND_DATA record with the 4-tuple, the syscall's return value, the
 *    exit time and the first `capture_bytes` of the payload (across the first APP_MAX_IOV
 *    iovecs for the vectored calls, nothing for sendfile).
 *  - accept/accept4/connect exits record the socket's role in `app_conns` and emit
 *    APP_KIND_ACCEPT / APP_KIND_CONNECT.
 *  - tracepoint/syscalls/sys_enter_close: close of a TCP socket emits APP_KIND_CLOSE (at exit
 *    the fd no longer names it).
 *  - TLS (libssl uprobes, attached per library by userspace): SSL_read/SSL_write(_ex) entry
 *    stashes (SSL*, buffer, size_t* out-param) in the thread's `app_tasks` entry; the return emits
 *    an APP_KIND_DATA record with the PLAINTEXT (flags APP_FLAG_TLS, syscall APP_SYS_SSL_*).
 *    The socket underneath is learnt from the data syscalls the thread makes while inside an
 *    SSL_* call (SSL_do_handshake included): their fd resolves to the `struct sock *`, stored
 *    per (tgid, SSL*) in `app_ssl_socks`, and the socket is marked TLS in `app_conns`. Those
 *    syscalls carry TLS records, so they are not reported; nor is any later syscall on a
 *    socket marked TLS (e.g. SSL_shutdown's close_notify). Counted in APP_STAT_TLS_SKIPPED.
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
#define S_IFMT_ 00170000
#define S_IFSOCK_ 0140000
#define EINPROGRESS_ 115
#define MSG_PEEK_ 2
/* iovecs of one readv/writev/recvmsg/sendmsg the payload copy walks: grpc core writes a
 * HEADERS frame as one iovec per HPACK name and value (26 for a plain python grpcio call,
 * 2 more per metadata entry) */
#define APP_MAX_IOV 64

/* How a data syscall passes its buffer (args[1]). */
#define BUF_PLAIN 0 /* args[1] = buffer */
#define BUF_IOV 1   /* args[1] = struct iovec *, args[2] = iovcnt */
#define BUF_MSG 2   /* args[1] = struct user_msghdr * */
#define BUF_NONE 3  /* sendfile: the payload never passes through user memory */


/* Per-socket cache: the role and the 4-tuple (immutable once connected; read once instead of
 * on every event, and still right after TCP_CLOSE clears the port in the socket). */
struct conn_info {
	__u8 role;
	__u8 tls; /* seen under libssl: its syscalls carry TLS records */
	__u16 family;
	__u32 pid; /* process that accepted/connected it, 0 if unknown */
	__u16 local_port;
	__u16 remote_port;
	__u32 _pad2;
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
};

/* What the programs learnt from sockets they fully checked (inode type, family, type,
 * protocol): the file operations of every socket file and the socket operations of IPv4 and
 * IPv6 TCP sockets. A file with the learnt f_op and a socket with one of the learnt ops is
 * resolved without touching its inode or its struct sock (3 helper reads instead of 8). */
struct app_learned {
	__u64 sock_fops;      /* socket_file_ops */
	__u64 stream_ops[2];  /* inet_stream_ops, inet6_stream_ops */
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

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64); /* struct sock * */
	__type(value, struct conn_info);
} app_conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct app_scratch);
} app_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct app_learned);
} app_learned SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct ssl_key);
	__type(value, struct ssl_sock);
} app_ssl_socks SEC(".maps");

static __always_inline void stat_add(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&app_stats, &idx);
	if (v)
		*v += 1;
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

/* Whether the current thread's process is traced, and (in *stp) the thread's state when the
 * caller needs it: with libssl probes attached (an SSL_* call in flight) or `need_state`.
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
	if (allowed < 0 || need_state || c->tls_probes)
		*stp = task_state();
	if (allowed >= 0)
		return allowed;
	return *stp ? pid_allowed_cached(c, *stp, tgid) : pid_allowed_lookup(c, tgid);
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

/* Two 8-byte fields of the kernel object at p (CO-RE offsets a < b): one helper read when they
 * are at most 32 bytes apart (they are on 6.x: struct socket's sk and ops are adjacent). */
static __always_inline int read_2(const void *p, __u32 a, __u32 b, __u64 *va, __u64 *vb)
{
	__u64 buf[5];
	if (a < b && b - a <= 32 && !((b - a) & 7)) {
		if (bpf_probe_read_kernel(buf, b - a + 8, p + a))
			return -1;
		*va = buf[0];
		*vb = buf[(b - a) / 8];
		return 0;
	}
	if (bpf_probe_read_kernel(va, 8, p + a) || bpf_probe_read_kernel(vb, 8, p + b))
		return -1;
	return 0;
}

/* Three 8-byte fields (a < b < c), one helper read when within 40 bytes (struct file's f_op,
 * private_data and f_inode are). */
static __always_inline int read_3(const void *p, __u32 a, __u32 b, __u32 c, __u64 *va, __u64 *vb,
				  __u64 *vc)
{
	__u64 buf[5];
	if (a < b && b < c && c - a <= 32 && !((b - a) & 7) && !((c - a) & 7)) {
		if (bpf_probe_read_kernel(buf, c - a + 8, p + a))
			return -1;
		*va = buf[0];
		*vb = buf[(b - a) / 8];
		*vc = buf[(c - a) / 8];
		return 0;
	}
	if (bpf_probe_read_kernel(va, 8, p + a) || bpf_probe_read_kernel(vb, 8, p + b) ||
	    bpf_probe_read_kernel(vc, 8, p + c))
		return -1;
	return 0;
}

/* fd of the current task -> its struct sock, only for IPv4/IPv6 TCP stream sockets. */
static __always_inline struct sock *tcp_sock_of_fd(long fd)
{
	if (fd < 0)
		return NULL;
	/* BTF pointers: direct (fault-safe) loads instead of helper calls where the verifier
	 * tracks the type; bpf_probe_read_kernel for the rest */
	struct task_struct *task = bpf_get_current_task_btf();
	struct files_struct *files = task->files;
	if (!files)
		return NULL;
	struct fdtable *fdt = files->fdt;
	if (!fdt)
		return NULL;
	if ((unsigned long)fd >= fdt->max_fds)
		return NULL;
	struct file **fds = fdt->fd;
	struct file *f = NULL;
	if (bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]) || !f)
		return NULL;
	__u32 zero = 0;
	struct app_learned *learned = bpf_map_lookup_elem(&app_learned, &zero);
	if (!learned)
		return NULL;
	__u64 fop = 0, priv = 0, inode = 0;
	if (read_3(f, bpf_core_field_offset(struct file, f_op),
		   bpf_core_field_offset(struct file, private_data),
		   bpf_core_field_offset(struct file, f_inode), &fop, &priv, &inode))
		return NULL;
	if (!fop || fop != learned->sock_fops) {
		/* every socket file has the same f_op (socket_file_ops): once it is known, another
		 * f_op is not a socket, without reading the inode */
		if (learned->sock_fops)
			return NULL;
		umode_t mode = BPF_CORE_READ((struct inode *)inode, i_mode);
		if ((mode & S_IFMT_) != S_IFSOCK_)
			return NULL;
	}
	if (!priv)
		return NULL;
	__u64 skv = 0, ops = 0;
	if (read_2((const void *)priv, bpf_core_field_offset(struct socket, sk),
		   bpf_core_field_offset(struct socket, ops), &skv, &ops) ||
	    !skv)
		return NULL;
	struct sock *sk = (struct sock *)skv;
	/* the operations of TCP sockets (SCTP's SOCK_STREAM and MPTCP have their own) */
	if (ops && (ops == learned->stream_ops[0] || ops == learned->stream_ops[1]))
		return sk;
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != AF_INET && family != AF_INET6)
		return NULL;
	if (BPF_CORE_READ(sk, sk_type) != SOCK_STREAM || BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP_)
		return NULL;
	/* a fully checked TCP socket: learn its file and socket operations (written only when
	 * they change, so the shared line is not dirtied on every call) */
	if (learned->sock_fops != fop)
		learned->sock_fops = fop;
	__u32 i = family == AF_INET6;
	if (ops && learned->stream_ops[i] != ops)
		learned->stream_ops[i] = ops;
	return sk;
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

/* Cached role + tuple of `sk`, created (role unknown) on first sight. NULL only if the map
 * refuses the insert; then `tmp` is filled and returned. */
static __always_inline struct conn_info *conn_of(__u64 sk, struct conn_info *tmp)
{
	struct conn_info *ci = bpf_map_lookup_elem(&app_conns, &sk);
	if (ci)
		return ci;
	__builtin_memset(tmp, 0, sizeof(*tmp));
	read_tuple(tmp, (struct sock *)sk);
	bpf_map_update_elem(&app_conns, &sk, tmp, BPF_NOEXIST);
	ci = bpf_map_lookup_elem(&app_conns, &sk);
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

/* Scratch record with a zeroed header, or NULL. */
static __always_inline struct app_scratch *scratch_event(void)
{
	__u32 zero = 0;
	struct app_scratch *s = bpf_map_lookup_elem(&app_scratch, &zero);
	if (!s)
		return NULL;
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

static __always_inline void submit(struct app_scratch *s, __u32 len)
{
	if (len > APP_MAX_CAPTURE)
		len = APP_MAX_CAPTURE;
	asm volatile("%[len] &= 0x1fff" : [len] "+r"(len)); /* bound for the verifier */
	s->ev.captured_len = len;
	set_comm(&s->ev);
	/* waking the consumer costs an irq_work and a scheduler wakeup per event: batch them */
	__u64 flags = 0;
	__u32 zero = 0;
	struct app_config *c = bpf_map_lookup_elem(&app_config, &zero);
	if (c && c->wakeup_bytes) {
		/* asking how full the buffer is reads the positions the consumer and the other
		 * CPUs write (~200 ns of cache-line transfers here): ask once per wakeup_bytes / 8
		 * emitted by this CPU, so the wakeup comes at most that much late */
		flags = BPF_RB_NO_WAKEUP;
		s->pending += sizeof(struct app_event) + len;
		if (s->pending >= c->wakeup_bytes / 8) {
			s->pending = 0;
			if (bpf_ringbuf_query(&app_events, BPF_RB_AVAIL_DATA) >= c->wakeup_bytes)
				flags = BPF_RB_FORCE_WAKEUP;
		}
	}
	if (bpf_ringbuf_output(&app_events, s, sizeof(struct app_event) + len, flags))
		stat_add(APP_STAT_LOST);
	else
		stat_add(APP_STAT_EMITTED);
}

/* Copies n (<= APP_MAX_CAPTURE) user bytes to data[off] (off < APP_MAX_CAPTURE). */
static __always_inline __u32 copy_chunk(__u8 *data, __u32 off, const void *src, __u64 n)
{
	__u32 o = off & (APP_MAX_CAPTURE - 1);
	__u32 sz = n > APP_MAX_CAPTURE ? APP_MAX_CAPTURE : (__u32)n;
	asm volatile("%[sz] &= 0x1fff" : [sz] "+r"(sz)); /* bound for the verifier */
	if (bpf_probe_read_user(data + o, sz, src))
		return 0;
	return sz;
}

/* Copies up to min(cap, total) bytes from the first APP_MAX_IOV iovecs (of iovcnt) to
 * s->data. The loop runs once per iovec actually used (not unrolled). */
static __always_inline __u32 copy_iov(struct app_scratch *s, const struct iovec *iov, __u64 iovcnt,
				      __u64 total, __u32 cap)
{
	if (iovcnt > APP_MAX_IOV)
		iovcnt = APP_MAX_IOV;
	if (!iovcnt)
		return 0;
	__u32 cnt = (__u32)iovcnt;
	/* one read for the whole array: cnt is 1..APP_MAX_IOV */
	if (bpf_probe_read_user(s->iov, cnt * sizeof(struct iovec), iov))
		return 0;
	__u32 off = 0;
	for (__u32 i = 0; i < APP_MAX_IOV; i++) {
		if (i >= cnt || off >= cap || off >= total)
			break;
		__u64 n = s->iov[i].iov_len;
		if (n > cap - off)
			n = cap - off;
		if (n > total - off)
			n = total - off;
		if (n == 0)
			continue;
		__u32 got = copy_chunk(s->data, off, s->iov[i].iov_base, n);
		if (!got)
			break;
		off += got;
	}
	return off;
}

/* x86-64 syscall numbers (the object is built for x86 only, see __TARGET_ARCH_x86) */
#define NR_read 0
#define NR_write 1
#define NR_readv 19
#define NR_writev 20
#define NR_sendfile 40
#define NR_connect 42
#define NR_accept 43
#define NR_sendto 44
#define NR_recvfrom 45
#define NR_sendmsg 46
#define NR_recvmsg 47
#define NR_accept4 288
/* the handled syscalls numbered below 64, as a bit set: one test rejects every other one */
#define NR_MASK                                                                             \
	((1ULL << NR_read) | (1ULL << NR_write) | (1ULL << NR_readv) | (1ULL << NR_writev) | \
	 (1ULL << NR_sendfile) | (1ULL << NR_connect) | (1ULL << NR_accept) |                \
	 (1ULL << NR_sendto) | (1ULL << NR_recvfrom) | (1ULL << NR_sendmsg) |                \
	 (1ULL << NR_recvmsg))
/* thread_info.status bit of a task inside an ia32 syscall (other numbers, other registers) */
#define TS_COMPAT_ 0x0002

/* A data syscall that moved `ret` > 0 bytes, decoded from its registers. */
struct data_call {
	__u64 buf; /* buffer, struct iovec * or struct user_msghdr * (see buf_kind) */
	__u64 aux; /* iovcnt of the vectored calls */
	__s32 fd;
	__u8 sys;
	__u8 dir;
	__u8 buf_kind;
};

static __always_inline int on_data(const struct data_call *c, long ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct task_state *st;
	if (!traced(id >> 32, false, &st))
		return 0;
	struct sock *sk = tcp_sock_of_fd(c->fd);
	if (!sk)
		return 0;
	if (st && st->ssl.op) {
		/* libssl moving TLS records: learn SSL* -> socket, mark the socket, report nothing
		 * (the plaintext comes from the uretprobe) */
		struct ssl_key k = {.ssl = st->ssl.ssl, .tgid = id >> 32};
		struct ssl_sock *known = bpf_map_lookup_elem(&app_ssl_socks, &k);
		if (!known || known->sk != (__u64)sk || known->fd != c->fd) {
			struct ssl_sock v = {.sk = (__u64)sk, .fd = c->fd};
			bpf_map_update_elem(&app_ssl_socks, &k, &v, BPF_ANY);
		}
		struct conn_info tmp;
		struct conn_info *ci = conn_of((__u64)sk, &tmp);
		ci->tls = 1;
		stat_add(APP_STAT_TLS_SKIPPED);
		return 0;
	}

	struct conn_info tmp;
	struct conn_info *ci = conn_of((__u64)sk, &tmp);
	if (ci->tls) {
		/* TLS records outside a traced SSL_* call (e.g. SSL_shutdown) */
		stat_add(APP_STAT_TLS_SKIPPED);
		return 0;
	}
	struct app_scratch *s = scratch_event();
	if (!s)
		return 0;
	struct app_event *e = &s->ev;
	e->kind = APP_KIND_DATA;
	e->direction = c->dir;
	e->syscall = c->sys;
	e->pid = id >> 32;
	e->tid = (__u32)id;
	e->fd = c->fd;
	e->conn_id = (__u64)sk;
	e->end_ns = bpf_ktime_get_ns();
	e->start_ns = e->end_ns; /* seen at exit only */
	e->bytes = ret;
	copy_conn(e, ci);

	__u32 cap = capture_limit();
	__u32 len = 0;
	if (c->buf_kind == BUF_PLAIN) {
		__u64 n = (__u64)ret < cap ? (__u64)ret : cap;
		if (n)
			len = copy_chunk(s->data, 0, (const void *)c->buf, n);
	} else if (c->buf_kind == BUF_IOV) {
		len = copy_iov(s, (const struct iovec *)c->buf, c->aux, ret, cap);
	} else if (c->buf_kind == BUF_MSG) {
		struct user_msghdr *msg = (struct user_msghdr *)c->buf;
		struct iovec *iov = NULL;
		__u64 iovlen = 0;
		bpf_probe_read_user(&iov, sizeof(iov), &msg->msg_iov);
		bpf_probe_read_user(&iovlen, sizeof(iovlen), &msg->msg_iovlen);
		if (iov)
			len = copy_iov(s, iov, iovlen, ret, cap);
	} else {
		e->flags |= APP_FLAG_NO_PAYLOAD;
	}
	submit(s, len);
	return 0;
}

/* ---- connection lifecycle ---- */

/* accept/accept4 (fd = the new socket) or connect (fd = its argument) succeeded. */
static __always_inline int on_conn(long fd, long ret, __u8 sys)
{
	struct sock *sk = tcp_sock_of_fd(fd);
	if (!sk)
		return 0;
	__u64 id = bpf_get_current_pid_tgid();
	bool client = sys == APP_SYS_CONNECT;
	__u64 key = (__u64)sk;
	struct conn_info ci = {.role = client ? APP_ROLE_CLIENT : APP_ROLE_SERVER, .pid = id >> 32};
	read_tuple(&ci, sk);
	/* roles are recorded for every process so that a pid added to the filter later still
	 * gets them; only the events are filtered */
	bpf_map_update_elem(&app_conns, &key, &ci, BPF_ANY);
	struct task_state *st;
	if (!traced(id >> 32, false, &st))
		return 0;

	struct app_scratch *s = scratch_event();
	if (!s)
		return 0;
	struct app_event *e = &s->ev;
	e->kind = client ? APP_KIND_CONNECT : APP_KIND_ACCEPT;
	e->syscall = sys;
	e->pid = id >> 32;
	e->tid = (__u32)id;
	e->fd = fd;
	e->conn_id = key;
	e->end_ns = bpf_ktime_get_ns();
	e->start_ns = e->end_ns;
	e->bytes = ret;
	copy_conn(e, &ci);
	submit(s, 0);
	return 0;
}

/*
 * One program at the exit of every syscall of every process (the raw `sys_exit` tracepoint):
 * the arguments are still in the saved registers, and the fd still names the socket (close is
 * the exception, handled at its enter below). It replaces an enter and an exit program per
 * syscall: the classic per-syscall tracepoints build a trace record on every hit and cost
 * ~1.6-3.8 us of CPU per nginx request here, this hook none measurable (APP_PERFORMANCE.md).
 */
SEC("tp_btf/sys_exit")
int BPF_PROG(app_sys_exit, struct pt_regs *regs, long ret)
{
	__u64 nr = regs->orig_ax;
	if (nr >= 64 ? nr != NR_accept4 : !((NR_MASK >> nr) & 1))
		return 0;
	/* errors (EAGAIN...) moved nothing; only a non-blocking connect in progress counts */
	if (ret < 0 && !(nr == NR_connect && ret == -EINPROGRESS_))
		return 0;
	struct task_struct *task = bpf_get_current_task_btf();
	if (task->thread_info.status & TS_COMPAT_)
		return 0;
	if (nr == NR_accept || nr == NR_accept4)
		return on_conn(ret, ret, nr == NR_accept ? APP_SYS_ACCEPT : APP_SYS_ACCEPT4);
	long fd = (long)(int)regs->di;
	if (nr == NR_connect)
		return on_conn(fd, ret, APP_SYS_CONNECT);
	if (ret == 0) /* EOF */
		return 0;

	/* MSG_PEEK leaves the bytes queued: the read that consumes them reports them (e.g. nginx
	 * peeks 1 byte to tell TLS from plain HTTP before the handshake) */
	if ((nr == NR_recvfrom && (regs->r10 & MSG_PEEK_)) || (nr == NR_recvmsg && (regs->dx & MSG_PEEK_)))
		return 0;
	struct data_call c = {.fd = fd, .buf = regs->si, .aux = regs->dx};
#define DATA_CALL(NR, SYS, DIR, KIND)                                                      \
	case NR:                                                                            \
		c.sys = SYS;                                                                \
		c.dir = DIR;                                                                \
		c.buf_kind = KIND;                                                          \
		break;
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
	default:
		return 0;
	}
#undef DATA_CALL
	return on_data(&c, ret);
}

/* close(2) of a TCP socket: reported at enter, while the fd still resolves. */
SEC("tracepoint/syscalls/sys_enter_close")
int app_enter_close(struct trace_event_raw_sys_enter *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	int fd = (int)ctx->args[0];
	struct sock *sk = tcp_sock_of_fd(fd);
	if (!sk)
		return 0;
	__u64 key = (__u64)sk;
	struct task_state *st;
	if (!traced(id >> 32, false, &st)) {
		bpf_map_delete_elem(&app_conns, &key);
		return 0;
	}
	struct conn_info tmp;
	struct conn_info *cached = bpf_map_lookup_elem(&app_conns, &key);
	if (cached) {
		tmp = *cached;
	} else {
		__builtin_memset(&tmp, 0, sizeof(tmp));
		read_tuple(&tmp, sk);
	}
	bpf_map_delete_elem(&app_conns, &key);
	struct app_scratch *s = scratch_event();
	if (!s)
		return 0;
	struct app_event *e = &s->ev;
	e->kind = APP_KIND_CLOSE;
	e->syscall = APP_SYS_CLOSE;
	e->pid = id >> 32;
	e->tid = (__u32)id;
	e->fd = fd;
	e->conn_id = key;
	e->start_ns = bpf_ktime_get_ns();
	e->end_ns = e->start_ns;
	copy_conn(e, &tmp);
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
		struct conn_info tmp;
		copy_conn(e, conn_of(sock->sk, &tmp));
	} else {
		e->flags |= APP_FLAG_TLS_NO_SOCKET;
		e->fd = -1;
		e->conn_id = c.ssl;
	}

	__u32 cap = capture_limit();
	__u32 len = 0;
	__u64 n = (__u64)bytes < cap ? (__u64)bytes : cap;
	if (n)
		len = copy_chunk(s->data, 0, (const void *)c.buf, n);
	submit(s, len);
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
