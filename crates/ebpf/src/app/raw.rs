//! `#[repr(C)]` mirrors of `src/bpf/app.h`: the ring buffer record and the configuration entry,
//! plus the header's constants. `tests/app_layout.rs` checks them against the BTF of the
//! compiled object and against the `#define`s of the header.

use std::mem::{offset_of, size_of};

/// Largest payload prefix an event can carry (`APP_MAX_CAPTURE`).
pub const APP_MAX_CAPTURE: u32 = 4096;

/// `app_event.kind`: a data syscall.
pub const APP_KIND_DATA: u8 = 1;
/// `app_event.kind`: accept/accept4 returned a TCP socket.
pub const APP_KIND_ACCEPT: u8 = 2;
/// `app_event.kind`: connect on a TCP socket succeeded or is in progress.
pub const APP_KIND_CONNECT: u8 = 3;
/// `app_event.kind`: close(2) of a TCP socket.
pub const APP_KIND_CLOSE: u8 = 4;

/// `app_event.kind`: one HTTP/1.x request and its response, framed in the kernel
/// ([`RawHttp`] follows the header, then `captured_len` bytes of the request head).
pub const APP_KIND_HTTP: u8 = 5;
/// Longest HTTP/1.x head the kernel frames, and the most of a request head a pair record
/// carries (longer heads are reported per call).
pub const APP_HTTP_HEAD_MAX: u32 = 1024;

/// `app_http.end`: the response's last byte.
pub const APP_HTTP_END_COMPLETE: u8 = 0;
/// `app_http.end`: a response without a length, ended by the connection's end.
pub const APP_HTTP_END_CLOSE: u8 = 1;
/// `app_http.end`: the connection ended before the response's last byte.
pub const APP_HTTP_END_INCOMPLETE: u8 = 2;
/// `app_http.end`: the connection ended before a response began.
pub const APP_HTTP_END_NO_RESPONSE: u8 = 3;
/// `app_http.end`: the kernel lost the response's framing; its later bytes come per call.
pub const APP_HTTP_END_UNFRAMED: u8 = 4;

/// `app_event.direction`: not a data event.
pub const APP_DIR_NONE: u8 = 0;
/// `app_event.direction`: read side.
pub const APP_DIR_INGRESS: u8 = 1;
/// `app_event.direction`: write side.
pub const APP_DIR_EGRESS: u8 = 2;

/// `app_event.role`: unknown (connection older than the capture).
pub const APP_ROLE_UNKNOWN: u8 = 0;
/// `app_event.role`: the socket was accepted.
pub const APP_ROLE_SERVER: u8 = 1;
/// `app_event.role`: the socket was connected.
pub const APP_ROLE_CLIENT: u8 = 2;

/// `app_event.syscall` values.
pub const APP_SYS_READ: u8 = 1;
/// See [`APP_SYS_READ`].
pub const APP_SYS_WRITE: u8 = 2;
/// See [`APP_SYS_READ`].
pub const APP_SYS_READV: u8 = 3;
/// See [`APP_SYS_READ`].
pub const APP_SYS_WRITEV: u8 = 4;
/// See [`APP_SYS_READ`].
pub const APP_SYS_RECVFROM: u8 = 5;
/// See [`APP_SYS_READ`].
pub const APP_SYS_SENDTO: u8 = 6;
/// See [`APP_SYS_READ`].
pub const APP_SYS_RECVMSG: u8 = 7;
/// See [`APP_SYS_READ`].
pub const APP_SYS_SENDMSG: u8 = 8;
/// See [`APP_SYS_READ`].
pub const APP_SYS_SENDFILE: u8 = 9;
/// See [`APP_SYS_READ`].
pub const APP_SYS_ACCEPT: u8 = 10;
/// See [`APP_SYS_READ`].
pub const APP_SYS_ACCEPT4: u8 = 11;
/// See [`APP_SYS_READ`].
pub const APP_SYS_CONNECT: u8 = 12;
/// See [`APP_SYS_READ`].
pub const APP_SYS_CLOSE: u8 = 13;
/// `app_event.syscall`: libssl `SSL_read` (TLS plaintext, uprobe).
pub const APP_SYS_SSL_READ: u8 = 14;
/// `app_event.syscall`: libssl `SSL_write`.
pub const APP_SYS_SSL_WRITE: u8 = 15;
/// `app_event.syscall`: libssl `SSL_read_ex`.
pub const APP_SYS_SSL_READ_EX: u8 = 16;
/// `app_event.syscall`: libssl `SSL_write_ex`.
pub const APP_SYS_SSL_WRITE_EX: u8 = 17;
/// `app_event.syscall`: `splice` to a socket (no payload, [`APP_FLAG_NO_PAYLOAD`]).
pub const APP_SYS_SPLICE: u8 = 18;

/// `app_event.flags`: the syscall moved bytes that never passed through user memory
/// (sendfile, splice).
pub const APP_FLAG_NO_PAYLOAD: u16 = 1;
/// `app_event.flags`: the plaintext of a libssl call (`syscall` is one of `APP_SYS_SSL_*`).
pub const APP_FLAG_TLS: u16 = 2;
/// `app_event.flags`: TLS event whose socket is not known (fd -1, zero tuple, `conn_id` is
/// the `SSL*` value).
pub const APP_FLAG_TLS_NO_SOCKET: u16 = 4;

/// Index of the lost-events counter in the per-CPU `app_stats` array.
pub const APP_STAT_LOST: u32 = 0;
/// Index of the emitted-events counter in the per-CPU `app_stats` array.
pub const APP_STAT_EMITTED: u32 = 1;
/// Index of the counter of data syscalls not reported because they carried TLS records.
pub const APP_STAT_TLS_SKIPPED: u32 = 2;
/// Index of the counter of HTTP/1.x connections the kernel stopped framing.
pub const APP_STAT_HTTP_FALLBACK: u32 = 3;
/// Number of entries in `app_stats`.
pub const APP_STAT_COUNT: u32 = 4;

/// `app_config.filter_mode`: every pid except the excluded ones.
pub const APP_FILTER_ALL_EXCEPT: u32 = 0;
/// `app_config.filter_mode`: only the included pids.
pub const APP_FILTER_ONLY: u32 = 1;
/// `app_pids` value: exclude this pid.
pub const APP_PID_EXCLUDE: u8 = 0;
/// `app_pids` value: include this pid.
pub const APP_PID_INCLUDE: u8 = 1;
/// Room for the filter's pids in `app_config.pids` (`APP_INLINE_PIDS`).
pub const APP_INLINE_PIDS: u32 = 4;
/// `app_config.n_pids`: the filter's pids are only in the `app_pids` map.
pub const APP_PIDS_IN_MAP: u32 = 255;

/// Mirror of `struct app_config` (entry 0 of the `app_config` array map).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RawAppConfig {
    /// Payload prefix to copy per data event, `<= APP_MAX_CAPTURE`.
    pub capture_bytes: u32,
    /// `APP_FILTER_*`.
    pub filter_mode: u32,
    /// Wake the consumer once this many bytes wait in the ring buffer (0: on every event).
    pub wakeup_bytes: u32,
    /// Bumped after every change of `app_pids` or `filter_mode`: the programs cache each
    /// thread's filter decision and look it up again when this changes.
    pub pid_gen: u32,
    /// Nonzero while libssl probes are attached (set before the first attach).
    pub tls_probes: u32,
    /// How many of `pids` are used, or [`APP_PIDS_IN_MAP`] when the filter's pids are only in
    /// the `app_pids` map (more than [`APP_INLINE_PIDS`] of them).
    pub n_pids: u32,
    /// The pids that matter in `filter_mode` (excluded ones in "all except", included ones in
    /// "only"), when they fit.
    pub pids: [u32; APP_INLINE_PIDS as usize],
    /// Nonzero: frame HTTP/1.x exchanges in the kernel (one [`APP_KIND_HTTP`] record each).
    pub frame_http: u32,
}

// SAFETY: plain old data, no padding, every bit pattern valid.
unsafe impl aya::Pod for RawAppConfig {}

/// Mirror of `struct app_event`, the fixed header of every ring buffer record. The record
/// continues with `captured_len` payload bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RawAppEvent {
    /// `APP_KIND_*`.
    pub kind: u8,
    /// `APP_DIR_*`.
    pub direction: u8,
    /// `APP_ROLE_*`.
    pub role: u8,
    /// `APP_SYS_*`.
    pub syscall: u8,
    /// `AF_INET` or `AF_INET6`.
    pub family: u16,
    /// `APP_FLAG_*`.
    pub flags: u16,
    /// Thread group id (the "pid" users see).
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// File descriptor in `pid`.
    pub fd: i32,
    /// Payload bytes following this header.
    pub captured_len: u32,
    /// Kernel `struct sock *` value.
    pub conn_id: u64,
    /// `CLOCK_MONOTONIC` ns at syscall enter.
    pub start_ns: u64,
    /// `CLOCK_MONOTONIC` ns at syscall exit.
    pub end_ns: u64,
    /// Syscall return value.
    pub bytes: i64,
    /// Local address, network order (IPv4 in the first 4 bytes).
    pub local_addr: [u8; 16],
    /// Remote address, network order (IPv4 in the first 4 bytes).
    pub remote_addr: [u8; 16],
    /// Local port, host order.
    pub local_port: u16,
    /// Remote port, host order.
    pub remote_port: u16,
    /// Padding.
    pub _pad: u32,
    /// `comm` of the process (its thread group leader) when the event was made, NUL-padded.
    pub comm: [u8; 16],
}

/// Mirror of `struct app_http`: what an [`APP_KIND_HTTP`] record adds after its header.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RawHttp {
    /// Request body bytes (Content-Length, or the chunks' sizes).
    pub request_body: u64,
    /// Response body bytes (bytes seen for the ends other than complete).
    pub response_body: u64,
    /// Length of the request head (`captured_len` bytes of it follow).
    pub request_head: u32,
    /// Length of the final response head (0: none).
    pub response_head: u32,
    /// Final response status (0: none).
    pub status: u16,
    /// `APP_HTTP_END_*`.
    pub end: u8,
    /// Padding.
    pub _pad: [u8; 5],
    /// Client exchanges: the `conn_id` of the server exchange the thread was serving when it
    /// wrote the request (0: none).
    pub parent_conn: u64,
    /// ... and that exchange's `start_ns`.
    pub parent_start_ns: u64,
}

/// `sizeof(struct app_http)`.
pub const RAW_HTTP_SIZE: usize = size_of::<RawHttp>();

/// `(field name, offset, size)` of every field of [`RawHttp`].
pub fn app_http_fields() -> Vec<(&'static str, usize, usize)> {
    macro_rules! f {
        ($name:ident, $ty:ty) => {
            (
                stringify!($name),
                offset_of!(RawHttp, $name),
                size_of::<$ty>(),
            )
        };
    }
    vec![
        f!(request_body, u64),
        f!(response_body, u64),
        f!(request_head, u32),
        f!(response_head, u32),
        f!(status, u16),
        f!(end, u8),
        f!(_pad, [u8; 5]),
        f!(parent_conn, u64),
        f!(parent_start_ns, u64),
    ]
}

/// `sizeof(struct app_event)`.
pub const RAW_APP_EVENT_SIZE: usize = size_of::<RawAppEvent>();

/// `(field name, offset, size)` of every field of [`RawAppEvent`], in declaration order.
pub fn app_event_fields() -> Vec<(&'static str, usize, usize)> {
    macro_rules! f {
        ($name:ident, $ty:ty) => {
            (
                stringify!($name),
                offset_of!(RawAppEvent, $name),
                size_of::<$ty>(),
            )
        };
    }
    vec![
        f!(kind, u8),
        f!(direction, u8),
        f!(role, u8),
        f!(syscall, u8),
        f!(family, u16),
        f!(flags, u16),
        f!(pid, u32),
        f!(tid, u32),
        f!(fd, i32),
        f!(captured_len, u32),
        f!(conn_id, u64),
        f!(start_ns, u64),
        f!(end_ns, u64),
        f!(bytes, i64),
        f!(local_addr, [u8; 16]),
        f!(remote_addr, [u8; 16]),
        f!(local_port, u16),
        f!(remote_port, u16),
        f!(_pad, u32),
        f!(comm, [u8; 16]),
    ]
}

/// `(field name, offset, size)` of every field of [`RawAppConfig`].
pub fn app_config_fields() -> Vec<(&'static str, usize, usize)> {
    vec![
        (
            "capture_bytes",
            offset_of!(RawAppConfig, capture_bytes),
            size_of::<u32>(),
        ),
        (
            "filter_mode",
            offset_of!(RawAppConfig, filter_mode),
            size_of::<u32>(),
        ),
        (
            "wakeup_bytes",
            offset_of!(RawAppConfig, wakeup_bytes),
            size_of::<u32>(),
        ),
        (
            "pid_gen",
            offset_of!(RawAppConfig, pid_gen),
            size_of::<u32>(),
        ),
        (
            "tls_probes",
            offset_of!(RawAppConfig, tls_probes),
            size_of::<u32>(),
        ),
        ("n_pids", offset_of!(RawAppConfig, n_pids), size_of::<u32>()),
        (
            "pids",
            offset_of!(RawAppConfig, pids),
            size_of::<[u32; APP_INLINE_PIDS as usize]>(),
        ),
        (
            "frame_http",
            offset_of!(RawAppConfig, frame_http),
            size_of::<u32>(),
        ),
    ]
}

/// Every constant shared with `app.h`, as `(name, value)`, for the header consistency test.
pub fn constants() -> Vec<(&'static str, i64)> {
    vec![
        ("APP_MAX_CAPTURE", APP_MAX_CAPTURE.into()),
        ("APP_KIND_DATA", APP_KIND_DATA.into()),
        ("APP_KIND_ACCEPT", APP_KIND_ACCEPT.into()),
        ("APP_KIND_CONNECT", APP_KIND_CONNECT.into()),
        ("APP_KIND_CLOSE", APP_KIND_CLOSE.into()),
        ("APP_KIND_HTTP", APP_KIND_HTTP.into()),
        ("APP_HTTP_HEAD_MAX", APP_HTTP_HEAD_MAX.into()),
        ("APP_HTTP_END_COMPLETE", APP_HTTP_END_COMPLETE.into()),
        ("APP_HTTP_END_CLOSE", APP_HTTP_END_CLOSE.into()),
        ("APP_HTTP_END_INCOMPLETE", APP_HTTP_END_INCOMPLETE.into()),
        ("APP_HTTP_END_NO_RESPONSE", APP_HTTP_END_NO_RESPONSE.into()),
        ("APP_HTTP_END_UNFRAMED", APP_HTTP_END_UNFRAMED.into()),
        ("APP_DIR_NONE", APP_DIR_NONE.into()),
        ("APP_DIR_INGRESS", APP_DIR_INGRESS.into()),
        ("APP_DIR_EGRESS", APP_DIR_EGRESS.into()),
        ("APP_ROLE_UNKNOWN", APP_ROLE_UNKNOWN.into()),
        ("APP_ROLE_SERVER", APP_ROLE_SERVER.into()),
        ("APP_ROLE_CLIENT", APP_ROLE_CLIENT.into()),
        ("APP_SYS_READ", APP_SYS_READ.into()),
        ("APP_SYS_WRITE", APP_SYS_WRITE.into()),
        ("APP_SYS_READV", APP_SYS_READV.into()),
        ("APP_SYS_WRITEV", APP_SYS_WRITEV.into()),
        ("APP_SYS_RECVFROM", APP_SYS_RECVFROM.into()),
        ("APP_SYS_SENDTO", APP_SYS_SENDTO.into()),
        ("APP_SYS_RECVMSG", APP_SYS_RECVMSG.into()),
        ("APP_SYS_SENDMSG", APP_SYS_SENDMSG.into()),
        ("APP_SYS_SENDFILE", APP_SYS_SENDFILE.into()),
        ("APP_SYS_ACCEPT", APP_SYS_ACCEPT.into()),
        ("APP_SYS_ACCEPT4", APP_SYS_ACCEPT4.into()),
        ("APP_SYS_CONNECT", APP_SYS_CONNECT.into()),
        ("APP_SYS_CLOSE", APP_SYS_CLOSE.into()),
        ("APP_SYS_SSL_READ", APP_SYS_SSL_READ.into()),
        ("APP_SYS_SSL_WRITE", APP_SYS_SSL_WRITE.into()),
        ("APP_SYS_SSL_READ_EX", APP_SYS_SSL_READ_EX.into()),
        ("APP_SYS_SSL_WRITE_EX", APP_SYS_SSL_WRITE_EX.into()),
        ("APP_SYS_SPLICE", APP_SYS_SPLICE.into()),
        ("APP_FLAG_NO_PAYLOAD", APP_FLAG_NO_PAYLOAD.into()),
        ("APP_FLAG_TLS", APP_FLAG_TLS.into()),
        ("APP_FLAG_TLS_NO_SOCKET", APP_FLAG_TLS_NO_SOCKET.into()),
        ("APP_STAT_LOST", APP_STAT_LOST.into()),
        ("APP_STAT_EMITTED", APP_STAT_EMITTED.into()),
        ("APP_STAT_TLS_SKIPPED", APP_STAT_TLS_SKIPPED.into()),
        ("APP_STAT_HTTP_FALLBACK", APP_STAT_HTTP_FALLBACK.into()),
        ("APP_STAT_COUNT", APP_STAT_COUNT.into()),
        ("APP_FILTER_ALL_EXCEPT", APP_FILTER_ALL_EXCEPT.into()),
        ("APP_FILTER_ONLY", APP_FILTER_ONLY.into()),
        ("APP_PID_EXCLUDE", APP_PID_EXCLUDE.into()),
        ("APP_PID_INCLUDE", APP_PID_INCLUDE.into()),
        ("APP_INLINE_PIDS", APP_INLINE_PIDS.into()),
        ("APP_PIDS_IN_MAP", APP_PIDS_IN_MAP.into()),
    ]
}
