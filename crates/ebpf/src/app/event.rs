//! Decoded application capture events.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::raw::{self, RawAppEvent, RAW_APP_EVENT_SIZE};

/// One record of the application capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppEvent {
    /// Bytes a data syscall sent or received on a TCP socket, or the plaintext of a libssl
    /// call.
    Data(DataEvent),
    /// A connection whose handshake completed from `SYN_RECV` (this process is its server
    /// side), reported just before this process's first data on it.
    Accept(ConnEvent),
    /// A connection whose handshake completed from `SYN_SENT` (this process is its client
    /// side), reported just before this process's first data on it.
    Connect(ConnEvent),
    /// The connection ended (`close`'s FIN, or the socket reached `TCP_CLOSE`), reported to
    /// the process that first sent or received data on it. Not sent for connections whose
    /// HTTP/1.x exchanges the kernel framed ([`AppEvent::Http`] says all there is).
    Close(ConnEvent),
    /// One HTTP/1.x request and its response, framed in the kernel.
    Http(HttpEvent),
}

impl AppEvent {
    /// Process (thread group) id of the event.
    pub fn pid(&self) -> u32 {
        match self {
            AppEvent::Data(d) => d.pid,
            AppEvent::Accept(c) | AppEvent::Connect(c) | AppEvent::Close(c) => c.pid,
            AppEvent::Http(h) => h.pid,
        }
    }

    /// Connection id of the event (see [`DataEvent::conn_id`]).
    pub fn conn_id(&self) -> u64 {
        match self {
            AppEvent::Data(d) => d.conn_id,
            AppEvent::Accept(c) | AppEvent::Connect(c) | AppEvent::Close(c) => c.conn_id,
            AppEvent::Http(h) => h.conn_id,
        }
    }

    /// Process name of the event (see [`DataEvent::comm`]).
    pub fn comm(&self) -> &[u8; 16] {
        match self {
            AppEvent::Data(d) => &d.comm,
            AppEvent::Accept(c) | AppEvent::Connect(c) | AppEvent::Close(c) => &c.comm,
            AppEvent::Http(h) => &h.comm,
        }
    }

    /// Process name of the event as text (see [`DataEvent::comm_str`]).
    pub fn comm_str(&self) -> Cow<'_, str> {
        comm_str(self.comm())
    }
}

/// Which side of the socket a data syscall used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Read side: `read`, `readv`, `recvfrom`, `recvmsg`.
    Ingress,
    /// Write side: `write`, `writev`, `sendto`, `sendmsg`, `sendfile`.
    Egress,
}

/// Which end of the connection this process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Not known: the handshake completed before the capture started.
    Unknown,
    /// The handshake completed from `SYN_RECV`: the socket was accepted.
    Server,
    /// The handshake completed from `SYN_SENT`: the socket was connected.
    Client,
}

/// The syscall that produced an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Syscall {
    Read,
    Write,
    Readv,
    Writev,
    Recvfrom,
    Sendto,
    Recvmsg,
    Sendmsg,
    Sendfile,
    /// `splice` from a pipe to the socket.
    Splice,
    Accept,
    Accept4,
    Connect,
    Close,
    /// libssl `SSL_read` (TLS plaintext, see [`DataEvent::is_tls`]).
    SslRead,
    /// libssl `SSL_write`.
    SslWrite,
    /// libssl `SSL_read_ex`.
    SslReadEx,
    /// libssl `SSL_write_ex`.
    SslWriteEx,
    /// A value this version does not know.
    Other(u8),
}

impl Syscall {
    fn from_raw(v: u8) -> Self {
        match v {
            raw::APP_SYS_READ => Syscall::Read,
            raw::APP_SYS_WRITE => Syscall::Write,
            raw::APP_SYS_READV => Syscall::Readv,
            raw::APP_SYS_WRITEV => Syscall::Writev,
            raw::APP_SYS_RECVFROM => Syscall::Recvfrom,
            raw::APP_SYS_SENDTO => Syscall::Sendto,
            raw::APP_SYS_RECVMSG => Syscall::Recvmsg,
            raw::APP_SYS_SENDMSG => Syscall::Sendmsg,
            raw::APP_SYS_SENDFILE => Syscall::Sendfile,
            raw::APP_SYS_SPLICE => Syscall::Splice,
            raw::APP_SYS_ACCEPT => Syscall::Accept,
            raw::APP_SYS_ACCEPT4 => Syscall::Accept4,
            raw::APP_SYS_CONNECT => Syscall::Connect,
            raw::APP_SYS_CLOSE => Syscall::Close,
            raw::APP_SYS_SSL_READ => Syscall::SslRead,
            raw::APP_SYS_SSL_WRITE => Syscall::SslWrite,
            raw::APP_SYS_SSL_READ_EX => Syscall::SslReadEx,
            raw::APP_SYS_SSL_WRITE_EX => Syscall::SslWriteEx,
            other => Syscall::Other(other),
        }
    }

    /// True for the libssl calls (the event carries TLS plaintext, not socket bytes).
    pub fn is_tls(self) -> bool {
        matches!(
            self,
            Syscall::SslRead | Syscall::SslWrite | Syscall::SslReadEx | Syscall::SslWriteEx
        )
    }
}

/// A data syscall on a TCP socket (`recvfrom`/`recvmsg` with `MSG_PEEK` are not reported: the
/// read that consumes the bytes is), or (when [`DataEvent::is_tls`]) one libssl
/// `SSL_read`/`SSL_write`(`_ex`) call on a TLS connection over a TCP socket: then `data` is the
/// plaintext, `bytes` the plaintext size the call returned, `start_ns`/`end_ns` the call's
/// entry and return, and `conn_id`/`fd`/tuple/`role` those of the socket underneath (the
/// syscalls carrying that socket's TLS records are not reported at all). A TLS event of an
/// `SSL` object whose socket is not known (see [`DataEvent::tls_socket_unknown`]) has fd -1,
/// unspecified `[::]:0` addresses and `conn_id` = the `SSL*` value (stable per TLS session).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataEvent {
    /// Thread group id.
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// The socket's fd in `pid` (for `sendfile`, the output fd).
    pub fd: i32,
    /// Stable id of the connection while it lives: the kernel `struct sock *` value (the same
    /// for every fd and process sharing the socket; may be reused after the socket is freed,
    /// a [`AppEvent::Close`] marks the end).
    pub conn_id: u64,
    /// Local address and port. IPv4 peers of an IPv6 socket appear as IPv4-mapped IPv6
    /// addresses (use [`IpAddr::to_canonical`] to compare with IPv4 addresses).
    pub local: SocketAddr,
    /// Remote address and port.
    pub remote: SocketAddr,
    /// Read or write side.
    pub direction: Direction,
    /// The number of bytes the call moved, as the socket layer (or libssl) reported it
    /// (always > 0). Sizes are computed from this, not from `data.len()`.
    pub bytes: i64,
    /// `CLOCK_MONOTONIC` ns when the call started: a libssl call's entry; for syscalls, which
    /// the capture sees when their bytes move, the same as `end_ns`.
    pub start_ns: u64,
    /// `CLOCK_MONOTONIC` ns when the bytes moved (syscalls) or the libssl call returned.
    pub end_ns: u64,
    /// Which end of the connection this process is.
    pub role: Role,
    /// The syscall.
    pub syscall: Syscall,
    /// The first `min(bytes, capture_bytes)` bytes transferred (for the vectored calls, from
    /// the first 64 iovecs; empty for `sendfile`, see [`DataEvent::payload_invisible`]).
    pub data: Vec<u8>,
    /// The bytes moved by this syscall never passed through user memory (`sendfile`), so
    /// `data` is empty even though `bytes > 0`.
    pub payload_invisible: bool,
    /// The process name when the event was made: `comm` of the thread group leader
    /// (NUL-padded; the kernel truncates it to 15 bytes). See [`DataEvent::comm_str`].
    pub comm: [u8; 16],
}

impl DataEvent {
    /// True when `data` holds fewer bytes than the syscall transferred.
    pub fn is_truncated(&self) -> bool {
        (self.data.len() as i64) < self.bytes
    }

    /// True when the event is TLS plaintext from a libssl call (the syscall is one of
    /// [`Syscall::SslRead`], [`Syscall::SslWrite`], [`Syscall::SslReadEx`],
    /// [`Syscall::SslWriteEx`]).
    pub fn is_tls(&self) -> bool {
        self.syscall.is_tls()
    }

    /// True for a TLS event whose socket is not known (no socket I/O was seen inside an
    /// `SSL_*` call of this `SSL` object yet, or the application feeds libssl through memory
    /// BIOs): `fd` is -1, the addresses are `[::]:0` and `conn_id` is the `SSL*` value.
    pub fn tls_socket_unknown(&self) -> bool {
        self.is_tls() && self.fd < 0
    }

    /// [`DataEvent::comm`] as text (up to the first NUL, invalid UTF-8 replaced); empty if
    /// the kernel gave none.
    pub fn comm_str(&self) -> Cow<'_, str> {
        comm_str(&self.comm)
    }
}

/// A connection lifecycle event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnEvent {
    /// Thread group id.
    pub pid: u32,
    /// Thread id (0 for a close the kernel made outside the process's threads).
    pub tid: u32,
    /// The socket's fd in `pid`: the fd of the data call the event precedes (accept,
    /// connect); -1 for close, which the kernel reports outside any syscall of the process.
    pub fd: i32,
    /// See [`DataEvent::conn_id`].
    pub conn_id: u64,
    /// Local address and port.
    pub local: SocketAddr,
    /// Remote address and port.
    pub remote: SocketAddr,
    /// Role of the connection as known when the event was produced.
    pub role: Role,
    /// The syscall.
    pub syscall: Syscall,
    /// 0: connection events come from TCP state changes, not from a syscall's return.
    pub ret: i64,
    /// `CLOCK_MONOTONIC` ns when the handshake completed (accept, connect) or the connection
    /// ended (close).
    pub start_ns: u64,
    /// The same as `start_ns`.
    pub end_ns: u64,
    /// See [`DataEvent::comm`].
    pub comm: [u8; 16],
}

impl ConnEvent {
    /// See [`DataEvent::comm_str`].
    pub fn comm_str(&self) -> Cow<'_, str> {
        comm_str(&self.comm)
    }
}

/// How a kernel-framed HTTP/1.x exchange ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HttpEnd {
    /// With the response's last byte (by its Content-Length or its last chunk), or with a
    /// response that has no body (HEAD, 204, 304, 101).
    Complete,
    /// A response without a length, ended by the connection's end.
    Close,
    /// The connection ended before the response's last byte.
    Incomplete,
    /// The connection ended before a response began.
    NoResponse,
    /// The kernel stopped framing the connection during the response (a shape it does not
    /// frame); the rest of the response comes as [`AppEvent::Data`].
    Unframed,
}

/// One HTTP/1.x request and its response, framed in the kernel: sizes from the heads and the
/// calls' byte counts (bodies are never copied), and the first bytes of the request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpEvent {
    /// Thread group id.
    pub pid: u32,
    /// The thread that read (server) or wrote (client) the request head.
    pub tid: u32,
    /// The socket's fd in `pid`.
    pub fd: i32,
    /// See [`DataEvent::conn_id`].
    pub conn_id: u64,
    /// Local address and port.
    pub local: SocketAddr,
    /// Remote address and port.
    pub remote: SocketAddr,
    /// Which end of the connection this process is (never [`Role::Unknown`]).
    pub role: Role,
    /// The call that moved the response's last byte ([`Syscall::Other`]`(0)` when the
    /// exchange ended with the connection).
    pub syscall: Syscall,
    /// `CLOCK_MONOTONIC` ns when the request head was read (server) or written (client).
    pub start_ns: u64,
    /// `CLOCK_MONOTONIC` ns of the response's last byte (for [`HttpEnd::NoResponse`],
    /// [`HttpEnd::Incomplete`] and [`HttpEnd::Close`]: of the exchange's last call).
    pub end_ns: u64,
    /// Request body bytes.
    pub request_body: u64,
    /// Response body bytes.
    pub response_body: u64,
    /// Length of the request head.
    pub request_head_len: u32,
    /// Length of the final response head (0: none).
    pub response_head_len: u32,
    /// Final response status (0: none).
    pub status: u16,
    /// How the exchange ended.
    pub end: HttpEnd,
    /// The first `min(request_head_len, capture_bytes, 1024)` bytes of the request head.
    pub head: Vec<u8>,
    /// A client exchange's parent: the server exchange of the same process that the thread
    /// was serving when it wrote this request, as that exchange's `(conn_id, start_ns)`.
    /// Exact for servers that serve a request on one thread; an event loop's latest read
    /// request otherwise.
    pub parent: Option<(u64, u64)>,
    /// See [`DataEvent::comm`].
    pub comm: [u8; 16],
}

impl HttpEvent {
    /// See [`DataEvent::comm_str`].
    pub fn comm_str(&self) -> Cow<'_, str> {
        comm_str(&self.comm)
    }
}

fn comm_str(comm: &[u8; 16]) -> Cow<'_, str> {
    let end = comm.iter().position(|&c| c == 0).unwrap_or(comm.len());
    String::from_utf8_lossy(&comm[..end])
}

fn sockaddr(family: u16, addr: &[u8; 16], port: u16) -> SocketAddr {
    let ip = if family == libc::AF_INET as u16 {
        IpAddr::V4(Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(*addr))
    };
    SocketAddr::new(ip, port)
}

fn role(v: u8) -> Role {
    match v {
        raw::APP_ROLE_SERVER => Role::Server,
        raw::APP_ROLE_CLIENT => Role::Client,
        _ => Role::Unknown,
    }
}

/// Decodes one ring buffer record. `None` if the record is shorter than its header says or of
/// an unknown kind.
pub fn decode(record: &[u8]) -> Option<AppEvent> {
    decode_reusing(record, &mut Vec::new())
}

/// [`decode`], taking the payload's buffer from `spare` when it has one (buffers of events
/// the consumer handed back: no allocation per event).
pub fn decode_reusing(record: &[u8], spare: &mut Vec<Vec<u8>>) -> Option<AppEvent> {
    if record.len() < RAW_APP_EVENT_SIZE {
        return None;
    }
    // SAFETY: length checked above; RawAppEvent is plain old data, read unaligned.
    let h: RawAppEvent = unsafe { std::ptr::read_unaligned(record.as_ptr().cast()) };
    let local = sockaddr(h.family, &h.local_addr, h.local_port);
    let remote = sockaddr(h.family, &h.remote_addr, h.remote_port);
    let conn = || ConnEvent {
        pid: h.pid,
        tid: h.tid,
        fd: h.fd,
        conn_id: h.conn_id,
        local,
        remote,
        role: role(h.role),
        syscall: Syscall::from_raw(h.syscall),
        ret: h.bytes,
        start_ns: h.start_ns,
        end_ns: h.end_ns,
        comm: h.comm,
    };
    match h.kind {
        raw::APP_KIND_DATA => {
            let end = RAW_APP_EVENT_SIZE.checked_add(h.captured_len as usize)?;
            let payload = record.get(RAW_APP_EVENT_SIZE..end)?;
            let mut data = spare.pop().unwrap_or_default();
            data.clear();
            data.extend_from_slice(payload);
            Some(AppEvent::Data(DataEvent {
                pid: h.pid,
                tid: h.tid,
                fd: h.fd,
                conn_id: h.conn_id,
                local,
                remote,
                direction: if h.direction == raw::APP_DIR_INGRESS {
                    Direction::Ingress
                } else {
                    Direction::Egress
                },
                bytes: h.bytes,
                start_ns: h.start_ns,
                end_ns: h.end_ns,
                role: role(h.role),
                syscall: Syscall::from_raw(h.syscall),
                data,
                payload_invisible: h.flags & raw::APP_FLAG_NO_PAYLOAD != 0,
                comm: h.comm,
            }))
        }
        raw::APP_KIND_ACCEPT => Some(AppEvent::Accept(conn())),
        raw::APP_KIND_CONNECT => Some(AppEvent::Connect(conn())),
        raw::APP_KIND_CLOSE => Some(AppEvent::Close(conn())),
        raw::APP_KIND_HTTP => {
            let start = RAW_APP_EVENT_SIZE + raw::RAW_HTTP_SIZE;
            let fixed = record.get(RAW_APP_EVENT_SIZE..start)?;
            // SAFETY: `fixed` has RAW_HTTP_SIZE bytes; RawHttp is plain old data.
            let x: raw::RawHttp = unsafe { std::ptr::read_unaligned(fixed.as_ptr().cast()) };
            let end = start.checked_add(h.captured_len as usize)?;
            let mut head = spare.pop().unwrap_or_default();
            head.clear();
            head.extend_from_slice(record.get(start..end)?);
            Some(AppEvent::Http(HttpEvent {
                pid: h.pid,
                tid: h.tid,
                fd: h.fd,
                conn_id: h.conn_id,
                local,
                remote,
                role: role(h.role),
                syscall: Syscall::from_raw(h.syscall),
                start_ns: h.start_ns,
                end_ns: h.end_ns,
                request_body: x.request_body,
                response_body: x.response_body,
                request_head_len: x.request_head,
                response_head_len: x.response_head,
                status: x.status,
                end: match x.end {
                    raw::APP_HTTP_END_COMPLETE => HttpEnd::Complete,
                    raw::APP_HTTP_END_CLOSE => HttpEnd::Close,
                    raw::APP_HTTP_END_INCOMPLETE => HttpEnd::Incomplete,
                    raw::APP_HTTP_END_NO_RESPONSE => HttpEnd::NoResponse,
                    raw::APP_HTTP_END_UNFRAMED => HttpEnd::Unframed,
                    _ => return None,
                },
                head,
                parent: (x.parent_conn != 0).then_some((x.parent_conn, x.parent_start_ns)),
                comm: h.comm,
            }))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(h: RawAppEvent, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0u8; RAW_APP_EVENT_SIZE];
        // SAFETY: v has room for one RawAppEvent.
        unsafe { std::ptr::write_unaligned(v.as_mut_ptr().cast(), h) };
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn decodes_ipv4_data() {
        let mut h = RawAppEvent {
            kind: raw::APP_KIND_DATA,
            direction: raw::APP_DIR_EGRESS,
            role: raw::APP_ROLE_CLIENT,
            syscall: raw::APP_SYS_SENDTO,
            family: libc::AF_INET as u16,
            pid: 7,
            tid: 8,
            fd: 3,
            captured_len: 3,
            conn_id: 0xffff_8880_0000_1000,
            bytes: 10,
            local_port: 40000,
            remote_port: 80,
            ..Default::default()
        };
        h.local_addr[..4].copy_from_slice(&[127, 0, 0, 1]);
        h.remote_addr[..4].copy_from_slice(&[10, 0, 0, 2]);
        h.comm[..4].copy_from_slice(b"curl");
        let ev = decode(&record(h, b"GET")).unwrap();
        assert_eq!(ev.comm_str(), "curl");
        let AppEvent::Data(d) = ev else { panic!() };
        assert_eq!(d.local, "127.0.0.1:40000".parse().unwrap());
        assert_eq!(d.remote, "10.0.0.2:80".parse().unwrap());
        assert_eq!(d.data, b"GET");
        assert_eq!(d.direction, Direction::Egress);
        assert_eq!(d.role, Role::Client);
        assert_eq!(d.syscall, Syscall::Sendto);
        assert!(d.is_truncated());
    }

    #[test]
    fn decodes_tls_data() {
        let h = RawAppEvent {
            kind: raw::APP_KIND_DATA,
            direction: raw::APP_DIR_INGRESS,
            syscall: raw::APP_SYS_SSL_READ_EX,
            flags: raw::APP_FLAG_TLS | raw::APP_FLAG_TLS_NO_SOCKET,
            pid: 7,
            tid: 7,
            fd: -1,
            captured_len: 3,
            conn_id: 0x5555_0000_1000,
            bytes: 3,
            ..Default::default()
        };
        let AppEvent::Data(d) = decode(&record(h, b"GET")).unwrap() else {
            panic!()
        };
        assert!(d.is_tls());
        assert!(d.tls_socket_unknown());
        assert_eq!(d.comm_str(), "");
        assert_eq!(d.syscall, Syscall::SslReadEx);
        assert_eq!(d.direction, Direction::Ingress);
        assert!(!d.is_truncated());
    }

    #[test]
    fn reused_buffer_holds_exactly_the_new_payload() {
        let h = RawAppEvent {
            kind: raw::APP_KIND_DATA,
            captured_len: 3,
            bytes: 3,
            ..Default::default()
        };
        let old = b"a longer payload of an earlier event".to_vec();
        let old_ptr = old.as_ptr();
        let mut spare = vec![old];
        let AppEvent::Data(d) = decode_reusing(&record(h, b"GET"), &mut spare).unwrap() else {
            panic!()
        };
        assert_eq!(d.data, b"GET");
        assert_eq!(d.data.as_ptr(), old_ptr, "the spare buffer was reused");
        assert!(spare.is_empty());
        // a short record takes nothing from the pool
        let mut spare = vec![Vec::with_capacity(8)];
        assert!(decode_reusing(&[0u8; 10], &mut spare).is_none());
        assert_eq!(spare.len(), 1);
    }

    #[test]
    fn decodes_http_pairs() {
        let h = RawAppEvent {
            kind: raw::APP_KIND_HTTP,
            role: raw::APP_ROLE_SERVER,
            syscall: raw::APP_SYS_SENDFILE,
            family: libc::AF_INET as u16,
            pid: 9,
            captured_len: 5,
            start_ns: 100,
            end_ns: 250,
            ..Default::default()
        };
        let x = raw::RawHttp {
            request_body: 3,
            response_body: 612,
            request_head: 80,
            response_head: 240,
            status: 200,
            end: raw::APP_HTTP_END_COMPLETE,
            _pad: [0; 5],
            parent_conn: 0xffff_8880_0000_2000,
            parent_start_ns: 90,
        };
        let mut rec = record(h, &[]);
        let mut fixed = [0u8; raw::RAW_HTTP_SIZE];
        // SAFETY: `fixed` has room for one RawHttp.
        unsafe { std::ptr::write_unaligned(fixed.as_mut_ptr().cast(), x) };
        rec.extend_from_slice(&fixed);
        rec.extend_from_slice(b"GET /");
        let AppEvent::Http(e) = decode(&rec).unwrap() else {
            panic!()
        };
        assert_eq!(e.head, b"GET /");
        assert_eq!(
            (e.status, e.end, e.role),
            (200, HttpEnd::Complete, Role::Server)
        );
        assert_eq!((e.request_body, e.response_body), (3, 612));
        assert_eq!((e.request_head_len, e.response_head_len), (80, 240));
        assert_eq!(
            (e.start_ns, e.end_ns, e.syscall),
            (100, 250, Syscall::Sendfile)
        );
        assert_eq!(e.parent, Some((0xffff_8880_0000_2000, 90)));
        // a record cut short, or with an end this version does not know, is refused
        assert!(decode(&rec[..rec.len() - 1]).is_none());
        rec[RAW_APP_EVENT_SIZE + 26] = 77;
        assert!(decode(&rec).is_none());
    }

    /// Arbitrary records of every kind (and lengths around each kind's fixed part) decode or
    /// are refused, never panic, and a decoded payload never exceeds the record.
    #[test]
    fn arbitrary_records_never_panic() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..20_000 {
            let len = (next() % 400) as usize;
            let mut rec: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if let Some(kind) = rec.first_mut() {
                *kind = (round % 7) as u8;
            }
            if rec.len() > 20 && round % 2 == 0 {
                // a plausible captured_len, so that the payload paths are reached
                let n = (next() % 64) as u32;
                rec[16..20].copy_from_slice(&n.to_ne_bytes());
            }
            match decode(&rec) {
                Some(AppEvent::Data(d)) => assert!(d.data.len() <= rec.len()),
                Some(AppEvent::Http(h)) => assert!(h.head.len() <= rec.len()),
                _ => {}
            }
        }
    }

    #[test]
    fn rejects_short_records() {
        let h = RawAppEvent {
            kind: raw::APP_KIND_DATA,
            captured_len: 10,
            ..Default::default()
        };
        assert!(decode(&record(h, b"abc")).is_none());
        assert!(decode(&[0u8; 10]).is_none());
    }
}
