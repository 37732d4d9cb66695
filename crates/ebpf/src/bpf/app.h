/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * Shared layout of the application (L7) capture events: the eBPF side
 * (app.bpf.c) writes these, crates/ebpf/src/app.rs mirrors them with #[repr(C)]
 * structs and tests/app_layout.rs checks the mirror against the BTF of the
 * compiled object.
 *
 * This header includes nothing: the includer provides __u8.. __s64 (vmlinux.h
 * on the eBPF side, <linux/types.h> for plain C).
 */
#ifndef TAPLINE_APP_H
#define TAPLINE_APP_H

/* Largest prefix of the payload an event can carry (capture_bytes is clamped to it). */
#define APP_MAX_CAPTURE 4096

/* app_event.kind */
#define APP_KIND_DATA 1
#define APP_KIND_ACCEPT 2
#define APP_KIND_CONNECT 3
#define APP_KIND_CLOSE 4
/* one HTTP/1.x request and its response, framed in the kernel (struct app_http_record) */
#define APP_KIND_HTTP 5

/* Longest HTTP/1.x head the kernel frames; a pair record carries at most this much of the
 * request head (and at most capture_bytes). Longer heads fall back to per-call records. */
#define APP_HTTP_HEAD_MAX 1024

/* app_event.direction */
#define APP_DIR_NONE 0
#define APP_DIR_INGRESS 1 /* read side: read, readv, recvfrom, recvmsg */
#define APP_DIR_EGRESS 2  /* write side: write, writev, sendto, sendmsg, sendfile */

/* app_event.role (who opened the connection, as seen by this process) */
#define APP_ROLE_UNKNOWN 0 /* connection older than the capture, or inherited */
#define APP_ROLE_SERVER 1  /* this process accept()ed it */
#define APP_ROLE_CLIENT 2  /* this process connect()ed it */

/* app_event.syscall */
#define APP_SYS_READ 1
#define APP_SYS_WRITE 2
#define APP_SYS_READV 3
#define APP_SYS_WRITEV 4
#define APP_SYS_RECVFROM 5
#define APP_SYS_SENDTO 6
#define APP_SYS_RECVMSG 7
#define APP_SYS_SENDMSG 8
#define APP_SYS_SENDFILE 9
#define APP_SYS_ACCEPT 10
#define APP_SYS_ACCEPT4 11
#define APP_SYS_CONNECT 12
#define APP_SYS_CLOSE 13
/* libssl calls (TLS plaintext, uprobes): `bytes` is what the call returned (or, for the _ex
 * variants, stored in *readbytes / *written), the payload is the plaintext buffer */
#define APP_SYS_SSL_READ 14
#define APP_SYS_SSL_WRITE 15
#define APP_SYS_SSL_READ_EX 16
#define APP_SYS_SSL_WRITE_EX 17
#define APP_SYS_SPLICE 18 /* to a socket; no payload (APP_FLAG_NO_PAYLOAD) */

/* app_event.flags */
#define APP_FLAG_NO_PAYLOAD 1 /* the syscall moves data the capture cannot see (sendfile, splice) */
#define APP_FLAG_TLS 2        /* plaintext of a libssl call (syscall is APP_SYS_SSL_*) */
/* TLS event whose socket is not known yet (no syscall seen inside an SSL_* call of this SSL
 * object, e.g. a memory BIO): fd is -1, the tuple is zero and conn_id is the SSL* value */
#define APP_FLAG_TLS_NO_SOCKET 4

/* Indexes of the per-CPU `app_stats` array. */
#define APP_STAT_LOST 0    /* ring buffer full: event dropped */
#define APP_STAT_EMITTED 1 /* events written into the ring buffer */
/* data syscalls not reported because they carry TLS records (issued inside an SSL_* call, or
 * on a socket already seen under libssl): their plaintext comes from the uprobes instead */
#define APP_STAT_TLS_SKIPPED 2
/* HTTP/1.x connections the kernel stopped framing (a shape it does not frame: pipelining, a
 * head longer than APP_HTTP_HEAD_MAX, a chunk-size line split between calls...): their later
 * calls are reported one record each */
#define APP_STAT_HTTP_FALLBACK 3
#define APP_STAT_COUNT 4

/* Runtime configuration, entry 0 of the `app_config` array. */
#define APP_FILTER_ALL_EXCEPT 0 /* trace every pid except those mapped to APP_PID_EXCLUDE */
#define APP_FILTER_ONLY 1       /* trace only the pids mapped to APP_PID_INCLUDE */
#define APP_PID_EXCLUDE 0
#define APP_PID_INCLUDE 1
#define APP_INLINE_PIDS 4
#define APP_PIDS_IN_MAP 255

struct app_config {
	__u32 capture_bytes; /* prefix of the payload to copy, <= APP_MAX_CAPTURE */
	__u32 filter_mode;   /* APP_FILTER_* */
	/* wake the consumer only once this many bytes wait in the ring buffer (0: wake on
	 * every event the consumer has not seen yet, the kernel's adaptive default); the
	 * consumer polls on a timer to bound latency */
	__u32 wakeup_bytes;
	/* bumped by userspace after every change of `app_pids` or `filter_mode`: the programs
	 * cache each thread's filter decision and look it up again when this changes */
	__u32 pid_gen;
	/* nonzero while libssl probes are attached (set before the first attach): only then (and
	 * while `app_ssl_calls` counts a call) do the socket programs look for an SSL_* call in
	 * flight in the thread's storage */
	__u32 tls_probes;
	/* the pids of `app_pids` that matter in `filter_mode` (APP_PID_EXCLUDE ones in
	 * APP_FILTER_ALL_EXCEPT, APP_PID_INCLUDE ones in APP_FILTER_ONLY) when there are at most
	 * APP_INLINE_PIDS of them: decided without a map lookup or the thread's storage.
	 * APP_PIDS_IN_MAP: more, look `app_pids` up (decision cached per thread) */
	__u32 n_pids;
	__u32 pids[APP_INLINE_PIDS];
	/* nonzero: frame HTTP/1.x exchanges in the kernel (one APP_KIND_HTTP record each) */
	__u32 frame_http;
};

/*
 * One ring buffer record: this fixed header, then `captured_len` payload bytes.
 * Addresses are in network byte order (IPv4 in the first 4 bytes), ports in host order.
 */
struct app_event {
	__u8 kind;          /* APP_KIND_* */
	__u8 direction;     /* APP_DIR_* */
	__u8 role;          /* APP_ROLE_* */
	__u8 syscall;       /* APP_SYS_* */
	__u16 family;       /* AF_INET / AF_INET6 */
	__u16 flags;        /* APP_FLAG_* */
	__u32 pid;          /* tgid */
	__u32 tid;
	__s32 fd;
	__u32 captured_len; /* payload bytes following the header */
	__u64 conn_id;      /* kernel `struct sock *` value */
	/* bpf_ktime_get_ns() (CLOCK_MONOTONIC) at the SSL_* call's entry; syscalls are seen at
	 * their exit only, where start_ns = end_ns */
	__u64 start_ns;
	__u64 end_ns;       /* ... at the syscall's (or the SSL_* call's) exit */
	__s64 bytes;        /* syscall return value */
	__u8 local_addr[16];
	__u8 remote_addr[16];
	__u16 local_port;
	__u16 remote_port;
	__u32 _pad;
	/* comm of the process (its thread group leader) when the event was made, NUL-padded:
	 * names processes that exit before the consumer can read /proc/<pid> */
	char comm[16];
};

/* app_http.end: how the exchange ended */
#define APP_HTTP_END_COMPLETE 0    /* the response's last byte (by its length, or its last chunk) */
#define APP_HTTP_END_CLOSE 1       /* a response without a length, ended by the connection's end */
#define APP_HTTP_END_INCOMPLETE 2  /* the connection ended before the response's last byte */
#define APP_HTTP_END_NO_RESPONSE 3 /* the connection ended before a response began */
#define APP_HTTP_END_UNFRAMED 4    /* the kernel lost the response's framing (its later bytes come
				    * as per-call records): the body counted so far */

/* What a pair record adds to the header. */
struct app_http {
	__u64 request_body;  /* body bytes (Content-Length, or the chunks' sizes) */
	__u64 response_body; /* same; for END_CLOSE / END_INCOMPLETE / END_UNFRAMED: bytes seen */
	__u32 request_head;  /* length of the request head; ev.captured_len bytes of it follow */
	__u32 response_head; /* length of the final response head (0: none) */
	__u16 status;        /* final response status (0: none) */
	__u8 end;            /* APP_HTTP_END_* */
	__u8 _pad[5];
	/* client exchanges: the server exchange its thread was serving when it wrote the request
	 * (that exchange's ev.conn_id and ev.start_ns in the same process), 0 if none */
	__u64 parent_conn;
	__u64 parent_start_ns;
};

/*
 * APP_KIND_HTTP: one record per exchange, sent when the response ends. ev.start_ns is when
 * the request head was read (server) or written (client), ev.end_ns when the response's last
 * byte moved (for END_NO_RESPONSE / END_INCOMPLETE / END_CLOSE: the exchange's last call),
 * ev.bytes is 0, ev.direction APP_DIR_NONE, ev.syscall the call that ended it (0 at close).
 */
struct app_http_record {
	struct app_event ev;
	struct app_http http;
};

#endif
