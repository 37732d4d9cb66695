/* SPDX-License-Identifier: GPL-2.0 */
/*
 * HTTP/1.x framing in the kernel, part of app.bpf.c (included once, after the helpers it uses).
 *
 * A connection whose first bytes in the request direction (a server's read, a client's write)
 * begin with a request line is framed here: its calls are followed through request head,
 * request body, response head and response body by the heads' Content-Length and
 * Transfer-Encoding, bodies are counted and never copied, and one APP_KIND_HTTP record is sent
 * per exchange when its response ends (or the connection ends). Nothing is sent per call.
 *
 * The state lives in socket storage (`app_http`, created for framed connections only): the
 * phase, the body bytes still to come, the request's start and the first bytes of its head,
 * kept until the record is sent. A request head split between reads is accumulated there.
 *
 * Anything the kernel does not frame (pipelined requests, a head longer than
 * APP_HTTP_HEAD_MAX, a chunk-size line split between calls or iovecs, chunked bytes sent by
 * sendfile, a Transfer-Encoding other than chunked, bytes where no message may be) makes the connection
 * fall back to per-call records (APP_STAT_HTTP_FALLBACK) for good: the request in flight is
 * handed over as a data record of its head, so userspace's HTTP/1.x parser picks up where the
 * kernel stopped. An upgraded connection (101, CONNECT) is not reported further.
 */

/* Loops stay loops: unrolled copies would each take stack and verifier time. */
#define NO_UNROLL _Pragma("clang loop unroll(disable)")

/* conn_info.framing */
#define FRAMING_UNDECIDED 0
#define FRAMING_HTTP 1     /* HTTP/1.x, one APP_KIND_HTTP record per exchange */
#define FRAMING_PER_CALL 2 /* one APP_KIND_DATA record per call */
#define FRAMING_OPAQUE 3   /* switched protocols after a framed exchange: not reported */

/* http_conn.phase */
#define HTTP_IDLE 0
#define HTTP_REQ_HEAD 1  /* part of a request head is in req[] */
#define HTTP_REQ_BODY 2  /* request body bytes to come */
#define HTTP_RESP_WAIT 3 /* the request is complete; its response has not begun */
#define HTTP_RESP_BODY 4 /* response body bytes to come */

/* http_conn.body: how the body in flight ends */
#define BODY_LENGTH 0  /* after `remaining` bytes */
#define BODY_CHUNKED 1 /* at the last chunk; `remaining`: data + CRLF of the current chunk */
#define BODY_CLOSE 2   /* at the connection's end */

#define METHOD_OTHER 0
#define METHOD_HEAD 1
#define METHOD_CONNECT 2

/* Header lines a head may have (more: not framed). */
#define HTTP_MAX_LINES 40
/* Chunk-size lines one call may cross (more: not framed). */
#define HTTP_MAX_CHUNKS 8
/* Bytes of a plain buffer copied to look for a head's end before the rest (copy_and_scan). */
#define HTTP_SCAN_FIRST 256

struct http_conn {
	__u8 phase;
	__u8 body;
	__u8 method;
	__u8 last_chunk; /* chunked: the CRLF being skipped ends the message */
	__u16 status;
	__u16 head_len; /* bytes in req[]: the head so far (REQ_HEAD), else the kept prefix */
	__u32 req_head;
	__u32 resp_head;
	__u32 resp_partial; /* bytes of a response head split between calls, in app_http_resp */
	__u32 _pad2;
	__u32 pid;
	__u32 tid;
	__s32 fd;
	__u32 _pad;
	__u64 remaining;
	__u64 req_body;
	__u64 resp_body;
	__u64 start_ns;
	__u64 last_ns; /* the exchange's latest call */
	__u64 parent_conn; /* see app_http.parent_conn */
	__u64 parent_start_ns;
	char comm[16];
	__u8 req[APP_HTTP_HEAD_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct http_conn);
} app_http SEC(".maps");


/* The first part of a response head split between calls (rare: created then, deleted when
 * the head is whole). */
struct http_resp_head {
	__u8 data[APP_HTTP_HEAD_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct http_resp_head);
} app_http_resp SEC(".maps");

#define W2(a, b) ((__u64)(a) | (__u64)(b) << 8)
#define W4(a, b, c, d) (W2(a, b) | W2(c, d) << 16)
#define W8(a, b, c, d, e, f, g, h) (W4(a, b, c, d) | W4(e, f, g, h) << 32)
#define LOWER8 0x2020202020202020ULL /* ORed in: ASCII letters to lower case */
#define BYTES7 0x00ffffffffffffffULL

/* n (1..APP_HTTP_HEAD_MAX) in a form the verifier bounds (the asm keeps the mask). */
static __always_inline __u32 head_size(__u32 n)
{
	n -= 1;
	asm volatile("%[n] &= 0x3ff" : [n] "+r"(n));
	return n + 1;
}

/* 8 head bytes from `at` (< 2 * APP_HTTP_HEAD_MAX: inside the scratch buffer). */
static __always_inline __u64 load8(const __u8 *d, __u32 at)
{
	return *(const __u64 *)(d + (at & (2 * APP_HTTP_HEAD_MAX - 1)));
}

static __always_inline __u8 load1(const __u8 *d, __u32 at)
{
	return d[at & (2 * APP_HTTP_HEAD_MAX - 1)];
}

/* The high bit of each byte of w that is '\n', and only those. */
static __always_inline __u64 lf_bytes(__u64 w)
{
	__u64 x = w ^ 0x0a0a0a0a0a0a0a0aULL;
	return ~(((x & 0x7f7f7f7f7f7f7f7fULL) + 0x7f7f7f7f7f7f7f7fULL) | x | 0x7f7f7f7f7f7f7f7fULL);
}

/* Index of the lowest marked byte of a nonzero lf_bytes() mask. */
static __always_inline __u32 first_byte(__u64 m)
{
	__u64 low = (m & -m) >> 7; /* 1 << (8 * index) */
	return (__u32)((low * 0x0001020304050607ULL) >> 56);
}

/* A decimal number at d[at..) after optional spaces, up to the line's end; -1 if none. */
static __always_inline __s64 parse_decimal(const __u8 *d, __u32 at)
{
	NO_UNROLL
	for (int i = 0; i < 8; i++) {
		if (load1(d, at) != ' ' && load1(d, at) != '\t')
			break;
		at++;
	}
	__s64 n = 0;
	int digits = 0;
	NO_UNROLL
	for (int i = 0; i < 18; i++) {
		__u8 ch = load1(d, at + i);
		if (ch < '0' || ch > '9')
			break;
		n = n * 10 + (ch - '0');
		digits++;
	}
	return digits ? n : -1;
}

/* The methods whose request lines are framed, by their first four bytes. */
#define METHOD_WORDS(X)                                                                     \
	X('G', 'E', 'T', ' ', METHOD_OTHER)                                                 \
	X('P', 'O', 'S', 'T', METHOD_OTHER)                                                 \
	X('P', 'U', 'T', ' ', METHOD_OTHER)                                                 \
	X('D', 'E', 'L', 'E', METHOD_OTHER)                                                 \
	X('O', 'P', 'T', 'I', METHOD_OTHER)                                                 \
	X('P', 'A', 'T', 'C', METHOD_OTHER)                                                 \
	X('T', 'R', 'A', 'C', METHOD_OTHER)                                                 \
	X('H', 'E', 'A', 'D', METHOD_HEAD)                                                  \
	X('C', 'O', 'N', 'N', METHOD_CONNECT)

/* The start line at d[0..len): request (and its method) or response (and its status). A
 * request whose first read has fewer than 4 bytes counts as one when they begin a method:
 * the next read tells (a connection that then turns out not to be HTTP falls back with
 * those bytes). */
static __always_inline void scan_start_line(const __u8 *d, __u32 len, struct head_scan *hs)
{
	__u64 w = load8(d, 0);
	if (len && len < 12) {
		/* the start of a status line split between calls: its first bytes (up to 7) */
		__u64 m = len >= 7 ? 0x00ffffffffffffffULL : (1ULL << (8 * (len & 7))) - 1;
		if ((w & m) == (W8('H', 'T', 'T', 'P', '/', '1', '.', 0) & m)) {
			hs->request = 2;
			return;
		}
	}
	if (len >= 12 && (w & 0x00ffffffffffffffULL) == W8('H', 'T', 'T', 'P', '/', '1', '.', 0)) {
		__u8 a = load1(d, 9), b = load1(d, 10), c = load1(d, 11);
		if (load1(d, 8) == ' ' && a >= '1' && a <= '5' && b >= '0' && b <= '9' && c >= '0' &&
		    c <= '9') {
			hs->request = 2;
			hs->status = (a - '0') * 100 + (b - '0') * 10 + (c - '0');
		}
		return;
	}
	/* the bytes of the method token there are (all four, or the first `len`) */
	__u32 mask = len >= 4 ? 0xffffffff : (1U << (8 * (len & 3))) - 1;
	__u32 w4 = (__u32)w & mask;
	if (!len)
		return;
#define METHOD_MATCH(a, b, c, e, METHOD)                                                    \
	if (w4 == (W4(a, b, c, e) & mask)) {                                                \
		hs->request = 1;                                                            \
		hs->method = METHOD;                                                        \
		return;                                                                     \
	}
	METHOD_WORDS(METHOD_MATCH)
#undef METHOD_MATCH
}

/* One header line starting at d[at]: the framing headers. */
static __always_inline void scan_header(const __u8 *d, __u32 at, struct head_scan *hs)
{
	__u64 w1 = load8(d, at) | LOWER8;
	if (w1 == W8('c', 'o', 'n', 't', 'e', 'n', 't', '-')) {
		__u64 w2 = (load8(d, at + 8) | LOWER8) & BYTES7;
		if (w2 == (W8('l', 'e', 'n', 'g', 't', 'h', ':', 0) & BYTES7))
			hs->content_length = parse_decimal(d, at + 15);
	} else if (w1 == W8('t', 'r', 'a', 'n', 's', 'f', 'e', 'r')) {
		__u64 w2 = load8(d, at + 8) | LOWER8;
		__u64 w3 = (load8(d, at + 16) | LOWER8) & 0xffff;
		if (w2 != W8('-', 'e', 'n', 'c', 'o', 'd', 'i', 'n') || w3 != W2('g', ':'))
			return;
		__u32 v = at + 18;
		NO_UNROLL
		for (int i = 0; i < 8; i++) {
			if (load1(d, v) != ' ' && load1(d, v) != '\t')
				break;
			v++;
		}
		__u64 value = (load8(d, v) | LOWER8) & BYTES7;
		__u8 after = load1(d, v + 7);
		if (value == (W8('c', 'h', 'u', 'n', 'k', 'e', 'd', 0) & BYTES7) &&
		    (after == '\r' || after == ' ' || after == '\t'))
			hs->chunked = 1;
		else
			hs->unframable = 1;
	}
}

/*
 * The line after the '\n' at s->data[lf] of a head of `len` bytes: the blank line that ends
 * the head (its length goes to s->scan.len), or a header line. 1 when the scan is over (the
 * head ended, or it goes on past `len` or HTTP_MAX_LINES). A global function, checked once.
 */
__noinline int scan_line(struct app_scratch *s, __u32 lf, __u32 len)
{
	if (!s)
		return 1;
	struct head_scan *hs = &s->scan;
	const __u8 *d = s->data;
	__u32 at = (lf + 1) & (2 * APP_HTTP_HEAD_MAX - 1);
	if (at >= len || len > APP_HTTP_HEAD_MAX || ++s->scan_lines > HTTP_MAX_LINES)
		return 1;
	__u8 first = load1(d, at);
	if (first == '\n' || (first == '\r' && at + 1 < len && load1(d, at + 1) == '\n')) {
		hs->len = first == '\n' ? at + 1 : at + 2;
		return 1;
	}
	scan_header(d, at, hs);
	return 0;
}

/*
 * Scans the head at the start of s->data[0..len) (len <= APP_HTTP_HEAD_MAX) into s->scan: one
 * pass over its words, each line feed handed to scan_line. A global function: the verifier
 * checks it once, on its own, rather than at every call with the caller's state.
 */
__noinline int scan_head(struct app_scratch *s, __u32 len)
{
	if (!s)
		return 0;
	struct head_scan *hs = &s->scan;
	const __u8 *d = s->data;
	__builtin_memset(hs, 0, sizeof(*hs));
	hs->content_length = -1;
	s->scan_lines = 0;
	if (len > APP_HTTP_HEAD_MAX)
		return 0;
	scan_start_line(d, len, hs);
	if (!hs->request)
		return 0;
	NO_UNROLL
	for (__u32 w = 0; w < APP_HTTP_HEAD_MAX / 8; w++) {
		__u32 at = w * 8;
		if (at >= len)
			break;
		__u64 m = lf_bytes(load8(d, at));
		NO_UNROLL
		for (int k = 0; k < 8; k++) {
			if (!m)
				break;
			__u32 lf = at + first_byte(m);
			m &= m - 1; /* the next line feed of the word */
			if (scan_line(s, lf, len))
				return 0;
		}
	}
	return 0;
}

/* The call's payload as one span of user memory (a plain buffer, or one iovec). */
static __always_inline bool payload_span(const struct data_call *c, __u64 *base)
{
	if (c->buf_kind == BUF_PLAIN) {
		*base = c->buf;
		return true;
	}
	const struct iovec *iov = (const struct iovec *)c->buf;
	__u64 cnt = c->aux;
	if (c->buf_kind == BUF_MSG) {
		struct user_msghdr *msg = (struct user_msghdr *)c->buf;
		if (bpf_probe_read_user(&iov, sizeof(iov), &msg->msg_iov) ||
		    bpf_probe_read_user(&cnt, sizeof(cnt), &msg->msg_iovlen))
			return false;
	} else if (c->buf_kind != BUF_IOV) {
		return false;
	}
	struct iovec v;
	if (cnt != 1 || bpf_probe_read_user(&v, sizeof(v), iov))
		return false;
	*base = (__u64)v.iov_base;
	return true;
}

/* Copies `want` (<= APP_HTTP_HEAD_MAX) bytes of the call's payload from offset `from` to
 * s->data[at..]; the number copied (0 when the payload cannot be read there). */
static __always_inline __u32 copy_payload(struct app_scratch *s, const struct data_call *c,
					  __u64 from, __u32 at, __u32 want)
{
	if (want > APP_HTTP_HEAD_MAX)
		want = APP_HTTP_HEAD_MAX;
	if (!want || c->buf_kind == BUF_NONE)
		return 0;
	if (from == 0 && c->buf_kind == BUF_IOV)
		return copy_iov(s, c->buf, c->aux, at, want);
	if (from == 0 && c->buf_kind == BUF_MSG) {
		struct user_msghdr *msg = (struct user_msghdr *)c->buf;
		struct iovec *iov = NULL;
		__u64 iovlen = 0;
		bpf_probe_read_user(&iov, sizeof(iov), &msg->msg_iov);
		bpf_probe_read_user(&iovlen, sizeof(iovlen), &msg->msg_iovlen);
		return iov ? copy_iov(s, (__u64)iov, iovlen, at, want) : 0;
	}
	__u64 base;
	if (!payload_span(c, &base))
		return 0;
	return copy_chunk(s->data, at, (const void *)(base + from), want);
}

/*
 * The iovec of s->iov[0..cnt) that holds the payload's byte `pos`: its user address in
 * s->span_addr, the bytes from there to the iovec's end in s->span_len. 0 when the payload
 * ends before `pos`. A global function (its loop checked once).
 */
__noinline int iov_locate(struct app_scratch *s, __u32 cnt, __u64 pos)
{
	if (!s)
		return 0;
	/* the offset of iovec i lives in map memory: iterations reach equal states */
	s->span_len = 0;
	s->span_addr = 0;
	NO_UNROLL
	for (__u32 i = 0; i < APP_MAX_IOV; i++) {
		__u64 off = *(volatile __u64 *)&s->span_len;
		if (i >= cnt)
			return 0;
		__u64 len = s->iov[i].iov_len;
		if (pos < off + len) {
			s->span_addr = (__u64)s->iov[i].iov_base + (pos - off);
			s->span_len = off + len - pos;
			return 1;
		}
		s->span_len = off + len;
	}
	return 0;
}

/* Where the call's payload byte `pos` is in user memory (s->span_addr) and how many bytes
 * follow it there contiguously (s->span_len). False for calls without a payload (sendfile,
 * splice) or when it cannot be read. */
static __always_inline bool payload_at(struct app_scratch *s, const struct data_call *c, __u64 pos)
{
	if (c->buf_kind == BUF_PLAIN) {
		s->span_addr = c->buf + pos;
		s->span_len = s->total - pos;
		return true;
	}
	__u64 iov = c->buf, cnt = c->aux;
	if (c->buf_kind == BUF_MSG) {
		struct user_msghdr *msg = (struct user_msghdr *)c->buf;
		if (bpf_probe_read_user(&iov, sizeof(iov), &msg->msg_iov) ||
		    bpf_probe_read_user(&cnt, sizeof(cnt), &msg->msg_iovlen))
			return false;
	} else if (c->buf_kind != BUF_IOV) {
		return false;
	}
	if (cnt > APP_MAX_IOV)
		cnt = APP_MAX_IOV;
	if (!cnt)
		return false;
	__u32 n = (__u32)cnt - 1; /* 0..APP_MAX_IOV - 1, in a form older verifiers bound too */
	asm volatile("%[n] &= 0x3f" : [n] "+r"(n));
	if (bpf_probe_read_user(s->iov, (n + 1) * sizeof(struct iovec), (const void *)iov))
		return false;
	return iov_locate(s, n + 1, pos);
}

/*
 * Copies the call's bytes [from, from + want) (want <= APP_HTTP_HEAD_MAX) to s->data[at..] and
 * scans the head in s->data[0..) into s->scan. From a plain buffer, the first HTTP_SCAN_FIRST
 * bytes come first and the rest only when the head goes on past them: a client's read of a
 * response and its body copies about the head alone. Returns the bytes now in s->data (at +
 * all of `want` whenever the head is not complete), 0 when the payload cannot be read.
 */
static __always_inline __u32 copy_and_scan(struct app_scratch *s, const struct data_call *c,
					   __u64 from, __u32 at, __u32 want)
{
	__u32 first = want;
	if (c->buf_kind == BUF_PLAIN && first > HTTP_SCAN_FIRST)
		first = HTTP_SCAN_FIRST;
	if (copy_payload(s, c, from, at, first) != first)
		return 0;
	scan_head(s, at + first);
	if (s->scan.len || !s->scan.request || first == want)
		return at + first;
	__u32 rest = want - first;
	if (copy_payload(s, c, from + first, at + first, rest) != rest)
		return 0;
	scan_head(s, at + want);
	return at + want;
}

/* The fixed part of the record of the exchange of `h` (see http_emit). */
static __always_inline void fill_http_record(struct app_http_record *r, const struct http_conn *h,
					     const struct conn_info *ci, __u64 sk, __u32 end_sys)
{
	__builtin_memset(r, 0, sizeof(*r));
	r->ev.kind = APP_KIND_HTTP;
	r->ev.syscall = end_sys >> 8;
	r->ev.pid = h->pid;
	r->ev.tid = h->tid;
	r->ev.fd = h->fd;
	r->ev.conn_id = sk;
	r->ev.start_ns = h->start_ns;
	r->ev.end_ns = h->last_ns;
	copy_conn(&r->ev, ci);
	__builtin_memcpy(r->ev.comm, h->comm, sizeof(r->ev.comm));
	r->http.request_body = h->req_body;
	r->http.response_body = h->resp_body;
	r->http.request_head = h->req_head;
	r->http.response_head = h->resp_head;
	r->http.status = h->status;
	r->http.end = end_sys & 0xff;
	r->http.parent_conn = h->parent_conn;
	r->http.parent_start_ns = h->parent_start_ns;
}

/* Emits, when `len` (0..N) fits, the record with N bytes of room for the request head's
 * prefix, written in place in the ring buffer. N is a power of two and MASK N - 1, spelled out
 * for the asm that bounds the copy for the verifier. */
#define HTTP_EMIT_CLASS(N, MASK)                                                           \
	if (len <= N) {                                                                     \
		struct {                                                                    \
			struct app_http_record r;                                           \
			__u8 data[N];                                                       \
		} *d = bpf_ringbuf_reserve(&app_events, sizeof(*d), 0);                     \
		if (!d) {                                                                   \
			stat_add_inline(APP_STAT_LOST);                                     \
			return;                                                             \
		}                                                                           \
		fill_http_record(&d->r, h, ci, sk, end_sys);                                \
		d->r.ev.captured_len = len;                                                 \
		if (len) {                                                                  \
			__u32 sz = len - 1; /* 1..N below, in a form the verifier bounds */ \
			asm volatile("%[sz] &= " #MASK : [sz] "+r"(sz));                    \
			if (bpf_probe_read_kernel(d->data, sz + 1, h->req))                 \
				d->r.ev.captured_len = 0;                                   \
		}                                                                           \
		bpf_ringbuf_submit(d, wakeup_flags(s, sizeof(*d)));                         \
		stat_add_inline(APP_STAT_EMITTED);                                          \
		return;                                                                     \
	}

/*
 * Sends the exchange of `h`, ended at h->last_ns as APP_HTTP_END_* `end_sys & 0xff` by call
 * `end_sys >> 8` (0: at close), with the first min(head, capture_bytes) bytes of its request
 * head. Written in place in the ring buffer (no scratch copy), in one of three sizes so that
 * short heads do not spread the ring. A subprogram: one copy for every place an exchange ends.
 * Its counters are inlined: main program -> http_fall_back -> http_emit is already three
 * frames (see stat_add).
 */
static __noinline void http_emit(struct app_scratch *s, const struct http_conn *h,
				 const struct conn_info *ci, __u64 sk, __u32 end_sys)
{
	__u32 len = h->head_len;
	__u32 cap = capture_limit();
	if (len > cap)
		len = cap;
	if (len > APP_HTTP_HEAD_MAX)
		len = APP_HTTP_HEAD_MAX;
	HTTP_EMIT_CLASS(128, 0x7f)
	HTTP_EMIT_CLASS(256, 0xff)
	HTTP_EMIT_CLASS(APP_HTTP_HEAD_MAX, 0x3ff)
}

/* Hands the exchange in flight over to per-call records: the request (its head as a data
 * record, so that userspace's parser has it), or the response so far (an END_UNFRAMED
 * record). The connection is reported per call from now on. */
static __noinline void http_fall_back(struct app_scratch *s, struct http_conn *h,
				      struct conn_info *ci, struct sock *sk)
{
	ci->framing = FRAMING_PER_CALL;
	stat_add(APP_STAT_HTTP_FALLBACK);
	if (h->phase == HTTP_RESP_BODY) {
		http_emit(s, h, ci, (__u64)sk, APP_HTTP_END_UNFRAMED);
	} else if (h->phase != HTTP_IDLE) {
		struct app_event *e = &s->ev;
		__builtin_memset(e, 0, sizeof(*e));
		e->kind = APP_KIND_DATA;
		e->direction = ci->role == APP_ROLE_SERVER ? APP_DIR_INGRESS : APP_DIR_EGRESS;
		e->syscall = ci->role == APP_ROLE_SERVER ? APP_SYS_READ : APP_SYS_WRITE;
		e->pid = h->pid;
		e->tid = h->tid;
		e->fd = h->fd;
		e->conn_id = (__u64)sk;
		e->start_ns = h->start_ns;
		e->end_ns = h->start_ns;
		e->bytes = h->phase == HTTP_REQ_HEAD ? h->head_len : h->req_head + h->req_body;
		copy_conn(e, ci);
		__u32 len = h->head_len;
		if (len > APP_HTTP_HEAD_MAX)
			len = APP_HTTP_HEAD_MAX;
		if (len && bpf_probe_read_kernel(s->data, head_size(len), h->req))
			len = 0;
		submit(s, len);
		/* and the first part of its response head, if one was kept */
		struct http_resp_head *kept = bpf_sk_storage_get(&app_http_resp, sk, 0, 0);
		len = h->resp_partial;
		if (kept && len && len < APP_HTTP_HEAD_MAX) {
			e->direction = e->direction == APP_DIR_INGRESS ? APP_DIR_EGRESS
								       : APP_DIR_INGRESS;
			e->syscall = e->direction == APP_DIR_INGRESS ? APP_SYS_READ
								     : APP_SYS_WRITE;
			e->start_ns = h->last_ns;
			e->end_ns = h->last_ns;
			e->bytes = len;
			if (bpf_probe_read_kernel(s->data, head_size(len), kept->data))
				len = 0;
			submit(s, len);
		}
	}
	h->resp_partial = 0;
	h->phase = HTTP_IDLE;
}

/* The connection ended: the exchange in flight is sent as it stands. */
static __always_inline void http_on_close(struct sock *sk, const struct conn_info *ci)
{
	struct http_conn *h = bpf_sk_storage_get(&app_http, sk, 0, 0);
	if (!h)
		return;
	__u8 end = 0xff;
	if (h->phase == HTTP_REQ_BODY || h->phase == HTTP_RESP_WAIT)
		end = APP_HTTP_END_NO_RESPONSE;
	else if (h->phase == HTTP_RESP_BODY)
		end = h->body == BODY_CLOSE ? APP_HTTP_END_CLOSE : APP_HTTP_END_INCOMPLETE;
	struct app_scratch *s = scratch();
	if (end != 0xff && s)
		http_emit(s, h, ci, (__u64)sk, end);
	bpf_sk_storage_delete(&app_http, sk);
}

/*
 * The chunk-size line at the start of the n (<= 32) user bytes at `src`: its length including
 * the CRLF (0: not a whole size line), the size in s->chunk_size. A global function (checked
 * once by the verifier): its callers' states do not depend on which byte ended the line.
 */
__noinline __u32 chunk_size_line(struct app_scratch *s, __u64 src, __u32 n)
{
	if (!s)
		return 0;
	s->chunk_size = 0;
	s->chunk_eol = 0;
	n &= 0x3f; /* bound for the verifier */
	if (n < 3 || n > sizeof(s->chunk_line) ||
	    bpf_probe_read_user(s->chunk_line, n, (const void *)src))
		return 0;
	__u64 size = 0;
	__u32 digits = 0;
	NO_UNROLL
	for (__u32 j = 0; j < 15; j++) {
		__u8 ch = s->chunk_line[j];
		__u8 v = ch >= '0' && ch <= '9'   ? ch - '0'
			 : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
			 : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
						  : 0xff;
		if (v == 0xff)
			break;
		size = size << 4 | v;
		digits++;
	}
	/* the line ends at the first LF (a chunk extension may come before it) */
	__u32 eol = 0;
	NO_UNROLL
	for (__u32 j = 1; j < sizeof(s->chunk_line); j++) {
		if (j >= n)
			break;
		if (s->chunk_line[j] == '\n') {
			if (s->chunk_line[j - 1] == '\r')
				eol = j + 1;
			break;
		}
	}
	if (!digits || eol <= digits + 1)
		return 0;
	/* the last chunk's line is followed by the blank line (trailers are not framed); when
	 * that is in the next call, it is taken on trust */
	if (size == 0 && eol < n && s->chunk_line[eol & 0x1f] != '\r')
		return 0;
	s->chunk_size = size;
	s->chunk_eol = eol;
	return eol;
}

/*
 * Body bytes of the message in flight from the call's cursor s->pos up to s->total: consumes
 * them. 1 when the message ended, 0 when more is to come, -1 when the kernel cannot frame them.
 */
static __always_inline int http_body(struct app_scratch *s, struct http_conn *h,
				     const struct data_call *c, __u64 *counted)
{
	if (h->body == BODY_CLOSE) {
		*counted += s->total - s->pos;
		s->pos = s->total;
		return 0;
	}
	NO_UNROLL
	for (int i = 0; i < HTTP_MAX_CHUNKS; i++) {
		if (h->remaining) {
			__u64 n = s->total - s->pos;
			if (n > h->remaining)
				n = h->remaining;
			h->remaining -= n;
			s->pos += n;
			if (h->body == BODY_LENGTH)
				*counted += n;
			if (h->remaining)
				return 0;
			if (h->body == BODY_LENGTH || h->last_chunk)
				return 1;
		}
		/* chunked, at a chunk-size line */
		if (s->pos >= s->total)
			return 0;
		if (!payload_at(s, c, s->pos))
			return -1;
		__u64 avail = s->span_len;
		__u32 eol = chunk_size_line(s, s->span_addr,
					    avail < sizeof(s->chunk_line) ? (__u32)avail
									  : sizeof(s->chunk_line));
		if (!eol)
			return -1; /* a size line split between calls, or not one */
		s->pos += eol;
		*counted += s->chunk_size;
		h->remaining = s->chunk_size + 2; /* the data and its CRLF */
		h->last_chunk = s->chunk_size == 0;
	}
	return -1; /* more chunks in one call than followed here */
}

/* Keeps the first `len` bytes of the head scanned in s->data as the request's. */
static __always_inline void keep_request_head(struct http_conn *h, struct app_scratch *s,
					       __u32 len)
{
	if (len > APP_HTTP_HEAD_MAX)
		len = APP_HTTP_HEAD_MAX;
	if (len && bpf_probe_read_kernel(h->req, head_size(len), s->data))
		len = 0;
	h->head_len = len;
}

/* A request head, or its next part, at the start of the call (the cursor is at 0). False:
 * not framed. */
static __always_inline bool http_request_head(struct app_scratch *s, struct http_conn *h,
					      const struct data_call *c, __u64 now)
{
	__u32 old = h->phase == HTTP_REQ_HEAD ? h->head_len : 0;
	if (old > APP_HTTP_HEAD_MAX)
		return false;
	if (old && bpf_probe_read_kernel(s->data, head_size(old), h->req))
		return false;
	__u64 total = s->total;
	__u64 want = total < APP_HTTP_HEAD_MAX - old ? total : APP_HTTP_HEAD_MAX - old;
	__u32 len = copy_and_scan(s, c, 0, old, (__u32)want);
	struct head_scan *hs = &s->scan;
	if (!len || hs->request != 1 || hs->unframable)
		return false;
	if (!old) {
		h->start_ns = now;
		h->pid = c->id >> 32;
		h->tid = (__u32)c->id;
		h->fd = c->fd;
		set_comm((struct app_event *)&s->ev); /* the process name, for the record */
		__builtin_memcpy(h->comm, s->ev.comm, sizeof(h->comm));
	}
	if (!hs->len) {
		/* the head goes on in the next read, unless it cannot fit */
		if (len >= APP_HTTP_HEAD_MAX || want < total)
			return false;
		keep_request_head(h, s, len);
		h->phase = HTTP_REQ_HEAD;
		s->pos = total;
		return true;
	}
	if (hs->len <= old)
		return false;
	s->pos = hs->len - old;
	h->req_head = hs->len;
	__u32 cap = capture_limit();
	keep_request_head(h, s, hs->len < cap ? hs->len : cap);
	h->method = hs->method;
	h->req_body = 0;
	h->resp_body = 0;
	h->resp_head = 0;
	h->status = 0;
	h->last_chunk = 0;
	h->remaining = 0;
	if (hs->chunked) {
		h->body = BODY_CHUNKED;
		h->phase = HTTP_REQ_BODY;
	} else if (hs->content_length > 0) {
		h->body = BODY_LENGTH;
		h->remaining = hs->content_length;
		h->phase = HTTP_REQ_BODY;
	} else {
		h->phase = HTTP_RESP_WAIT;
	}
	return true;
}

/* A response head at the cursor (continuing the part kept from earlier calls, if any): 1
 * when it is the final response's (h->phase is then HTTP_RESP_BODY, or the exchange ended with
 * it: 2), 0 for an interim one (100 Continue, skipped), 3 when it goes on in the next call
 * (its part so far kept in app_http_resp), -1 when not framed. */
static __always_inline int http_response_head(struct app_scratch *s, struct http_conn *h,
					      struct conn_info *ci, const struct data_call *c,
					      struct sock *sk)
{
	__u32 old = h->resp_partial;
	struct http_resp_head *kept = NULL;
	if (old) {
		kept = bpf_sk_storage_get(&app_http_resp, sk, 0, 0);
		if (!kept || old >= APP_HTTP_HEAD_MAX ||
		    bpf_probe_read_kernel(s->data, head_size(old), kept->data))
			return -1;
	}
	__u64 avail = s->total - s->pos;
	__u32 want = avail < APP_HTTP_HEAD_MAX - old ? (__u32)avail : APP_HTTP_HEAD_MAX - old;
	__u32 len = copy_and_scan(s, c, s->pos, old, want);
	struct head_scan *hs = &s->scan;
	if (!len || hs->request != 2 || hs->unframable)
		return -1;
	if (!hs->len) {
		/* the head goes on in the next call: keep what there is, if it can still fit */
		if (want < avail || len >= APP_HTTP_HEAD_MAX)
			return -1;
		if (!kept)
			kept = bpf_sk_storage_get(&app_http_resp, sk, 0,
						  BPF_SK_STORAGE_GET_F_CREATE);
		if (!kept || bpf_probe_read_kernel(kept->data, head_size(len), s->data))
			return -1;
		h->resp_partial = len;
		s->pos = s->total;
		return 3;
	}
	if (hs->len <= old)
		return -1;
	if (old) {
		h->resp_partial = 0;
		bpf_sk_storage_delete(&app_http_resp, sk);
	}
	s->pos += hs->len - old;
	if (hs->status < 200 && hs->status != 101)
		return 0;
	h->status = hs->status;
	h->resp_head = hs->len;
	h->last_chunk = 0;
	h->remaining = 0;
	h->phase = HTTP_RESP_BODY;
	if (hs->status == 101 || (h->method == METHOD_CONNECT && hs->status < 300)) {
		ci->framing = FRAMING_OPAQUE; /* another protocol follows */
		return 2;
	}
	if (h->method == METHOD_HEAD || hs->status == 204 || hs->status == 304 ||
	    hs->content_length == 0)
		return 2;
	if (hs->chunked) {
		h->body = BODY_CHUNKED;
	} else if (hs->content_length > 0) {
		h->body = BODY_LENGTH;
		h->remaining = hs->content_length;
	} else {
		h->body = BODY_CLOSE;
	}
	return 1;
}

/*
 * Which request a thread is serving. A server thread that read a request head is serving it
 * until it writes the response's end: a request its thread writes as a client meanwhile is
 * that exchange's child (parent_conn, parent_start_ns). Exact for servers that serve each
 * request on one thread; an event loop (nginx) reads other requests in between, and the
 * latest one read is taken.
 */
static __always_inline void request_context(struct http_conn *h, const struct conn_info *ci,
					    __u64 sk)
{
	h->parent_conn = 0;
	h->parent_start_ns = 0;
	if (ci->role == APP_ROLE_SERVER) {
		struct task_state *st = task_state();
		if (st) {
			st->serving_sk = sk;
			st->serving_start_ns = h->start_ns;
		}
	} else {
		struct task_state *st = task_state_if_any();
		if (st && st->serving_sk) {
			h->parent_conn = st->serving_sk;
			h->parent_start_ns = st->serving_start_ns;
		}
	}
}

/* The server exchange on `sk` ended: its thread serves no request (if it served that one). */
static __always_inline void request_context_end(__u64 sk)
{
	struct task_state *st = task_state_if_any();
	if (st && st->serving_sk == sk)
		st->serving_sk = 0;
}

/* The call in the request direction: a request head (or its next part) and its body. */
static __always_inline bool http_requests(struct app_scratch *s, struct http_conn *h,
					  const struct conn_info *ci, const struct data_call *c,
					  __u64 now, bool *began_here)
{
	if (h->phase == HTTP_IDLE || h->phase == HTTP_REQ_HEAD) {
		*began_here = h->phase == HTTP_IDLE;
		if (!http_request_head(s, h, c, now))
			return false;
		if (h->phase != HTTP_REQ_HEAD)
			request_context(h, ci, c->sk);
	}
	if (h->phase == HTTP_REQ_BODY && s->pos < s->total) {
		int r = http_body(s, h, c, &h->req_body);
		if (r < 0)
			return false;
		if (r)
			h->phase = HTTP_RESP_WAIT;
	}
	/* anything more is a request while one is in flight: pipelining */
	return s->pos >= s->total;
}

/* The call in the response direction: the response head(s) and body. */
static __always_inline bool http_responses(struct app_scratch *s, struct http_conn *h,
					   struct conn_info *ci, const struct data_call *c, __u64 sk,
					   __u64 now)
{
	int r = 1;
	if (h->phase == HTTP_REQ_BODY || h->phase == HTTP_RESP_WAIT) {
		r = http_response_head(s, h, ci, c, (struct sock *)sk);
		if (r == 0 && s->pos < s->total) /* an interim response, then the final one */
			r = http_response_head(s, h, ci, c, (struct sock *)sk);
		if (r < 0)
			return false;
		if (r == 3)
			return true; /* the head goes on in the next call */
	} else if (h->phase != HTTP_RESP_BODY) {
		return false; /* response bytes where no response may be */
	}
	if (r == 1 && h->phase == HTTP_RESP_BODY && s->pos < s->total) {
		int b = http_body(s, h, c, &h->resp_body);
		if (b < 0)
			return false;
		if (b)
			r = 2;
	}
	if (r == 2) {
		h->last_ns = now;
		h->phase = HTTP_IDLE;
		if (ci->role == APP_ROLE_SERVER)
			request_context_end(sk);
		http_emit(s, h, ci, sk, APP_HTTP_END_COMPLETE | c->sys << 8);
		if (ci->framing == FRAMING_OPAQUE)
			return true; /* what follows is another protocol */
	}
	/* anything more is a second response in one call: pipelining */
	return s->pos >= s->total;
}

/*
 * One call of a connection framed as HTTP/1.x, or whose framing is not decided yet. True when
 * the call was framed (nothing to report now); false when the caller reports it as a data
 * record, and every later call of the connection too (ci->framing is FRAMING_PER_CALL then).
 */
static __always_inline bool http_on_call(const struct data_call *c, struct conn_info *ci,
					 struct sock *sk)
{
	bool requests = (ci->role == APP_ROLE_SERVER) == (c->dir == APP_DIR_INGRESS);
	bool undecided = ci->framing == FRAMING_UNDECIDED;
	struct http_conn *h = NULL;
	if (!undecided) {
		h = bpf_sk_storage_get(&app_http, sk, 0, 0);
	} else if (requests && ci->role != APP_ROLE_UNKNOWN && frame_http()) {
		/* decided by the first bytes in the request direction */
		h = bpf_sk_storage_get(&app_http, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
		if (h)
			__builtin_memset(h, 0, __builtin_offsetof(struct http_conn, req));
	}
	struct app_scratch *s = scratch();
	if (!h || !s) {
		ci->framing = FRAMING_PER_CALL;
		return false;
	}
	__u64 now = bpf_ktime_get_ns();
	s->pos = 0;
	s->total = (__u64)c->ret;
	bool began_here = false;
	/* what the exchange stood at before this call: a call that is not framed is reported
	 * whole, so nothing it moved may be counted in the exchange too */
	__u8 phase_before = h->phase;
	__u64 req_body_before = h->req_body, resp_body_before = h->resp_body;
	bool ok = requests ? http_requests(s, h, ci, c, now, &began_here)
			   : http_responses(s, h, ci, c, (__u64)sk, now);
	if (ok) {
		if (ci->framing == FRAMING_UNDECIDED)
			ci->framing = FRAMING_HTTP;
		if (h->phase != HTTP_IDLE)
			h->last_ns = now;
		return true;
	}
	if (undecided) {
		bpf_sk_storage_delete(&app_http, sk);
		ci->framing = FRAMING_PER_CALL;
		return false;
	}
	h->req_body = req_body_before;
	h->resp_body = resp_body_before;
	if (began_here)
		h->phase = HTTP_IDLE; /* the request is in the call's own data record */
	else if (phase_before == HTTP_REQ_BODY || phase_before == HTTP_RESP_WAIT)
		h->phase = phase_before; /* a response this call began: handed over with it */
	http_fall_back(s, h, ci, sk);
	return false;
}
