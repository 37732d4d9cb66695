//! The table of live connections: routes capture events to their parsers and turns
//! accept/connect/close into connection lifecycles. Each connection's protocol is detected
//! from its first bytes ([`Session`]): HTTP/1.x goes to the connection's [`Http1Parser`], the
//! others to their parser inside the session.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use std::net::SocketAddr;

use tapline_ebpf::app::{AppEvent, ConnEvent, DataEvent, Direction, HttpEnd, HttpEvent, Role};
use tapline_protocols::http1::{exchange, Http1Parser};
use tapline_protocols::{
    Dir, Operation, ParserConfig, Protocol, ProtocolParser as _, Segment, Session, Side,
};

/// A finished operation of any protocol, with its connection.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    pub pid: u32,
    /// Which end this process is.
    pub side: Side,
    pub op: Operation,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// Seen through libssl.
    pub tls: bool,
    /// Where the kernel framed the exchange: its own `(conn_id, start_ns)` and, for a client
    /// exchange, the server exchange its thread was serving. `None` for operations parsed
    /// from per-call records.
    pub exchange: Option<(u64, u64)>,
    pub served: Option<(u64, u64)>,
}

/// Key hasher for `(pid, socket pointer)`: the keys are already well spread, a multiply is
/// enough and much cheaper than SipHash on the per-event path.
#[derive(Default)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ b as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(n as u64)
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(29) ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type Key = (u32, u64);

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrackerStats {
    /// Connections not tracked because the table was full.
    pub conns_refused: u64,
    /// Connections forgotten after being idle.
    pub conns_expired: u64,
    /// Connections whose parser state was dropped when their first TLS plaintext event
    /// arrived (they had carried TLS records before the libssl probes recognised them).
    pub tls_resets: u64,
    /// Kernel-framed HTTP/1.x exchanges whose head did not begin with a request line.
    pub http_undecodable: u64,
}

/// The protocol decision of one connection.
enum L7 {
    /// No bytes yet (or reset by the first TLS event).
    Start,
    /// A protocol other than HTTP/1.x is assumed or being detected.
    Session(Box<Session>, Side),
    /// HTTP/1.x (detected, or nothing else fits): the HTTP/1.x parser handles it.
    Http1,
}

/// One connection: its HTTP/1.x state and, for other protocols, a [`Session`].
struct Entry {
    pid: u32,
    local: SocketAddr,
    remote: SocketAddr,
    /// Which end this process is, when its accept/connect (or the capture) said so. When not,
    /// the HTTP/1.x parser learns it from the first head, with reads labelled as requests.
    side: Option<Side>,
    http: Http1Parser,
    l7: L7,
    /// TLS plaintext events arrived on it: socket data events are ciphertext from then on.
    tls: bool,
    /// A data event was seen.
    seen: bool,
    /// Exit time of the latest event.
    last_ns: u64,
}

impl Entry {
    fn new(
        pid: u32,
        local: SocketAddr,
        remote: SocketAddr,
        side: Option<Side>,
        capture_headers: bool,
    ) -> Self {
        Entry {
            pid,
            local,
            remote,
            side,
            http: http1_parser(side, capture_headers),
            l7: L7::Start,
            tls: false,
            seen: false,
            last_ns: 0,
        }
    }

    /// Which end this process is: known, or learned by the HTTP/1.x parser.
    fn side(&self) -> Option<Side> {
        self.side.or_else(|| {
            self.http.requests_dir().map(|d| match d {
                Dir::ClientToServer => Side::Server,
                Dir::ServerToClient => Side::Client,
            })
        })
    }

    /// How this process's reads and writes are labelled: by the known side, else as if it
    /// were the server (the HTTP/1.x parser corrects for that when it learns otherwise).
    fn http_dir(&self, direction: Direction) -> Dir {
        label(self.side.unwrap_or(Side::Server), direction)
    }

    /// Wraps operations of this connection seen from `side`.
    fn observe(&self, side: Side, raw: &mut Vec<Operation>, out: &mut Vec<Observation>) {
        out.extend(raw.drain(..).map(|op| Observation {
            pid: self.pid,
            side,
            op,
            local: self.local,
            remote: self.remote,
            tls: self.tls,
            exchange: None,
            served: None,
        }));
    }

    /// HTTP/1.x operations: the side is the one known or learned by now.
    fn observe_http(&self, raw: &mut Vec<Operation>, out: &mut Vec<Observation>) {
        if !raw.is_empty() {
            self.observe(self.side().unwrap_or(Side::Server), raw, out);
        }
    }

    fn close(mut self, raw: &mut Vec<Operation>, out: &mut Vec<Observation>) {
        if let L7::Session(s, side) = &mut self.l7 {
            let side = *side;
            s.close(self.last_ns, raw);
            self.observe(side, raw, out);
        }
        self.http.close(self.last_ns, raw);
        self.observe_http(raw, out);
    }
}

fn http1_parser(side: Option<Side>, capture_headers: bool) -> Http1Parser {
    let mut p = Http1Parser::new(capture_headers);
    if side.is_some() {
        p.set_requests_dir(Dir::ClientToServer);
    }
    p
}

/// The direction of a read or write of a process that is the `side` end.
fn label(side: Side, direction: Direction) -> Dir {
    match (side, direction) {
        (Side::Server, Direction::Ingress) | (Side::Client, Direction::Egress) => {
            Dir::ClientToServer
        }
        _ => Dir::ServerToClient,
    }
}

/// Which end a process is of a connection whose accept/connect was not seen: the end whose
/// port is not ephemeral (Linux: 32768-60999 by default) is the server. None when unclear.
fn guess_side(local: &SocketAddr, remote: &SocketAddr) -> Option<Side> {
    let eph = |p: u16| p >= 32768;
    match (eph(local.port()), eph(remote.port())) {
        (false, true) if local.port() != 0 => Some(Side::Server),
        (true, false) if remote.port() != 0 => Some(Side::Client),
        _ => None,
    }
}

/// Tracks every connection of the instrumented processes.
pub struct Tracker {
    conns: HashMap<Key, Entry, BuildHasherDefault<KeyHasher>>,
    max_conns: usize,
    capture_headers: bool,
    parsers: Option<ParserConfig>,
    /// Operations of the event being handled, before they get their connection.
    raw_ops: Vec<Operation>,
    pub stats: TrackerStats,
}

impl std::fmt::Debug for Tracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracker")
            .field("conns", &self.conns.len())
            .field("stats", &self.stats)
            .finish()
    }
}

impl Tracker {
    /// HTTP/1.x plus every protocol of [`tapline_protocols`] (default parser settings).
    pub fn new(max_conns: usize, capture_headers: bool) -> Self {
        Self::with_parsers(max_conns, capture_headers, Some(ParserConfig::default()))
    }

    /// `parsers`: None = HTTP/1.x only.
    pub fn with_parsers(
        max_conns: usize,
        capture_headers: bool,
        parsers: Option<ParserConfig>,
    ) -> Self {
        Tracker {
            conns: HashMap::default(),
            max_conns,
            capture_headers,
            parsers,
            raw_ops: Vec::new(),
            stats: TrackerStats::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.conns.len()
    }
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    fn open(&mut self, c: &ConnEvent, side: Side, out: &mut Vec<Observation>) {
        // The same socket pointer again: the old socket is gone (its close may have been lost).
        if let Some(old) = self.conns.remove(&(c.pid, c.conn_id)) {
            old.close(&mut self.raw_ops, out);
        }
        if self.conns.len() >= self.max_conns {
            self.stats.conns_refused += 1;
            return;
        }
        let mut e = Entry::new(c.pid, c.local, c.remote, Some(side), self.capture_headers);
        e.last_ns = c.end_ns;
        self.conns.insert((c.pid, c.conn_id), e);
    }

    /// Applies one capture event; finished operations are appended to `out`.
    pub fn on_event(&mut self, ev: &AppEvent, out: &mut Vec<Observation>) {
        match ev {
            AppEvent::Data(d) => self.on_data(d, out),
            AppEvent::Accept(c) => self.open(c, Side::Server, out),
            AppEvent::Connect(c) => self.open(c, Side::Client, out),
            AppEvent::Close(c) => {
                if let Some(e) = self.conns.remove(&(c.pid, c.conn_id)) {
                    e.close(&mut self.raw_ops, out);
                }
            }
            AppEvent::Http(h) => self.on_http(h, out),
        }
    }

    /// An exchange the kernel framed: complete in itself, no connection state needed.
    fn on_http(&mut self, h: &HttpEvent, out: &mut Vec<Observation>) {
        let x = exchange::Exchange {
            start_ns: h.start_ns,
            end_ns: h.end_ns,
            status: h.status,
            request_body: h.request_body,
            response_body: h.response_body,
            end: match h.end {
                HttpEnd::Complete => exchange::End::Complete,
                HttpEnd::Close => exchange::End::Close,
                HttpEnd::Incomplete => exchange::End::Incomplete,
                HttpEnd::NoResponse => exchange::End::NoResponse,
                HttpEnd::Unframed => exchange::End::Unframed,
            },
        };
        let Some(op) = exchange::operation(&h.head, &x, self.capture_headers) else {
            self.stats.http_undecodable += 1;
            return;
        };
        out.push(Observation {
            pid: h.pid,
            side: match h.role {
                Role::Client => Side::Client,
                _ => Side::Server,
            },
            op,
            local: h.local,
            remote: h.remote,
            tls: false,
            exchange: Some((h.conn_id, h.start_ns)),
            served: h.parent,
        });
    }

    fn on_data(&mut self, d: &DataEvent, out: &mut Vec<Observation>) {
        let key = (d.pid, d.conn_id);
        let capture_headers = self.capture_headers;
        let e = match self.conns.get_mut(&key) {
            Some(e) => e,
            None => {
                if self.conns.len() >= self.max_conns {
                    self.stats.conns_refused += 1;
                    return;
                }
                let side = match d.role {
                    Role::Server => Some(Side::Server),
                    Role::Client => Some(Side::Client),
                    Role::Unknown => None,
                };
                let e = Entry::new(d.pid, d.local, d.remote, side, capture_headers);
                self.conns.entry(key).or_insert(e)
            }
        };
        if d.is_tls() && !e.tls {
            e.tls = true;
            if e.seen {
                // What came before were TLS records read as plain bytes (a libssl call was
                // in progress when the probes were attached): start over on the plaintext.
                self.stats.tls_resets += 1;
                e.side = e.side();
                e.http = http1_parser(e.side, capture_headers);
                e.l7 = L7::Start;
            }
        } else if e.tls && !d.is_tls() {
            // ciphertext of a connection whose plaintext comes from libssl
            return;
        }
        e.seen = true;
        e.last_ns = e.last_ns.max(d.end_ns);
        let total_len = d.bytes.max(0) as u64;
        if let (L7::Start, Some(cfg)) = (&e.l7, self.parsers) {
            e.l7 = match e.side().or_else(|| guess_side(&d.local, &d.remote)) {
                Some(side) => {
                    let server_port = match side {
                        Side::Server => d.local.port(),
                        Side::Client => d.remote.port(),
                    };
                    L7::Session(Box::new(Session::new(server_port, cfg)), side)
                }
                None => L7::Http1,
            };
        }
        if let L7::Session(s, side) = &mut e.l7 {
            let side = *side;
            let dir = label(side, d.direction);
            // a server's blocking read starts long before the request arrives
            let start_ns = if dir == Dir::ClientToServer && side == Side::Server {
                d.end_ns
            } else {
                d.start_ns
            };
            s.feed(
                &Segment {
                    dir,
                    data: &d.data,
                    total_len,
                    start_ns,
                    end_ns: d.end_ns,
                },
                &mut self.raw_ops,
            );
            let detected = s.protocol();
            let unknown = s.is_unknown();
            e.observe(side, &mut self.raw_ops, out);
            match detected {
                Some(Protocol::Http1) => e.l7 = L7::Http1,
                None if unknown => e.l7 = L7::Http1,
                _ => return,
            }
        }
        let seg = Segment {
            dir: e.http_dir(d.direction),
            data: &d.data,
            total_len,
            // reads pass their exit time: the parser starts a request where its head was read
            start_ns: match d.direction {
                Direction::Ingress => d.end_ns,
                Direction::Egress => d.start_ns,
            },
            end_ns: d.end_ns,
        };
        e.http.feed(&seg, &mut self.raw_ops);
        e.observe_http(&mut self.raw_ops, out);
    }

    /// Housekeeping, with `now_ns` on the capture's clock: ends unframed responses quiet for
    /// `unframed_ns` and forgets connections idle for `idle_ns` (their open exchanges end as
    /// at close).
    pub fn expire(
        &mut self,
        now_ns: u64,
        unframed_ns: u64,
        idle_ns: u64,
        out: &mut Vec<Observation>,
    ) {
        let quiet = now_ns.saturating_sub(unframed_ns);
        let idle = now_ns.saturating_sub(idle_ns);
        let mut dead = Vec::new();
        for (k, e) in self.conns.iter_mut() {
            e.http.expire_unframed(quiet, &mut self.raw_ops);
            e.observe_http(&mut self.raw_ops, out);
            if e.last_ns < idle {
                dead.push(*k);
            }
        }
        for k in dead {
            if let Some(e) = self.conns.remove(&k) {
                self.stats.conns_expired += 1;
                e.close(&mut self.raw_ops, out);
            }
        }
    }

    /// Drops every connection of a process that exited.
    pub fn forget_pid(&mut self, pid: u32, out: &mut Vec<Observation>) {
        let keys: Vec<Key> = self.conns.keys().filter(|k| k.0 == pid).copied().collect();
        for k in keys {
            if let Some(e) = self.conns.remove(&k) {
                e.close(&mut self.raw_ops, out);
            }
        }
    }

    /// Requests dropped by connections for exceeding the pipelining depth.
    pub fn pending_dropped(&self) -> u64 {
        self.conns
            .values()
            .map(|e| {
                e.http.stats().pending_dropped
                    + match &e.l7 {
                        L7::Session(s, _) => s.stats().pending_dropped,
                        _ => 0,
                    }
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use tapline_ebpf::app::Syscall;
    use tapline_protocols::{Status, ERROR_NO_RESPONSE};

    use super::*;

    /// A data event of pid `pid` whose socket is `local` ↔ `remote`, from `start_ns` to
    /// `start_ns + 100`.
    fn data(
        pid: u32,
        local: &str,
        remote: &str,
        direction: Direction,
        bytes: &[u8],
        start_ns: u64,
    ) -> AppEvent {
        AppEvent::Data(DataEvent {
            pid,
            tid: pid,
            fd: 3,
            conn_id: 0xffff_8880_0000_1000 + pid as u64,
            local: local.parse().unwrap(),
            remote: remote.parse().unwrap(),
            direction,
            bytes: bytes.len() as i64,
            start_ns,
            end_ns: start_ns + 100,
            role: Role::Unknown,
            syscall: match direction {
                Direction::Ingress => Syscall::Read,
                Direction::Egress => Syscall::Write,
            },
            data: bytes.to_vec(),
            payload_invisible: false,
            comm: [0; 16],
        })
    }

    /// Connections whose accept/connect was not seen and whose ports do not tell the ends
    /// apart: the first head says which end the process is.
    #[test]
    fn the_first_head_tells_client_from_server() {
        let (a, b) = ("10.0.0.1:8080", "10.0.0.2:9090");
        let request = b"GET /x HTTP/1.1\r\nHost: b\r\n\r\n";
        let response = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        let mut tracker = Tracker::new(16, false);
        let mut out = Vec::new();
        // pid 1 writes the request and reads the response: a client, timed from its write
        tracker.on_event(&data(1, a, b, Direction::Egress, request, 1_000), &mut out);
        tracker.on_event(
            &data(1, a, b, Direction::Ingress, response, 5_000),
            &mut out,
        );
        // pid 2 reads the request and writes the response: a server, timed from its read's end
        tracker.on_event(&data(2, b, a, Direction::Ingress, request, 2_000), &mut out);
        tracker.on_event(&data(2, b, a, Direction::Egress, response, 4_000), &mut out);
        let seen: Vec<_> = out
            .iter()
            .map(|o| {
                (
                    o.pid,
                    o.side,
                    o.op.protocol,
                    o.op.status,
                    o.op.start_ns,
                    o.op.end_ns,
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (
                    1,
                    Side::Client,
                    Protocol::Http1,
                    Status::Http(200),
                    1_000,
                    5_100
                ),
                (
                    2,
                    Side::Server,
                    Protocol::Http1,
                    Status::Http(200),
                    2_100,
                    4_100
                ),
            ]
        );
        assert_eq!(out[0].op.target.as_deref(), Some("/x"));
        assert_eq!(out[0].op.response_size, 2);
    }

    fn http(role: Role, head: &[u8], status: u16, end: HttpEnd) -> AppEvent {
        AppEvent::Http(HttpEvent {
            pid: 7,
            tid: 7,
            fd: 4,
            conn_id: 0xffff_8880_0000_3000,
            local: "127.0.0.1:8080".parse().unwrap(),
            remote: "127.0.0.1:40000".parse().unwrap(),
            role,
            syscall: Syscall::Sendfile,
            start_ns: 1_000,
            end_ns: 9_000,
            request_body: 0,
            response_body: 612,
            request_head_len: head.len() as u32,
            response_head_len: 240,
            status,
            end,
            head: head.to_vec(),
            parent: None,
            comm: [0; 16],
        })
    }

    /// A kernel-framed exchange is one observation, with no connection state kept.
    #[test]
    fn kernel_framed_exchanges_are_observations() {
        let mut tracker = Tracker::new(16, false);
        let mut out = Vec::new();
        let head = b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n";
        tracker.on_event(&http(Role::Server, head, 200, HttpEnd::Complete), &mut out);
        tracker.on_event(&http(Role::Client, head, 0, HttpEnd::NoResponse), &mut out);
        assert!(
            tracker.is_empty(),
            "no connection entry for framed exchanges"
        );
        let seen: Vec<_> = out
            .iter()
            .map(|o| {
                (
                    o.side,
                    o.op.status,
                    o.op.start_ns,
                    o.op.end_ns,
                    o.op.response_size,
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (Side::Server, Status::Http(200), 1_000, 9_000, 612),
                (Side::Client, Status::Unknown, 1_000, 9_000, 612),
            ]
        );
        assert_eq!(out[0].op.target.as_deref(), Some("/index.html"));
        assert_eq!(out[1].op.error.as_deref(), Some(ERROR_NO_RESPONSE));
        // a head that is not a request line is counted, not reported
        tracker.on_event(
            &http(Role::Server, b"\x16\x03\x01", 200, HttpEnd::Complete),
            &mut out,
        );
        assert_eq!((out.len(), tracker.stats.http_undecodable), (2, 1));
    }
}
