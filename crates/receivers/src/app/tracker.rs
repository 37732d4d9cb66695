//! The table of live connections: routes capture events to their [`Conn`] and turns
//! accept/connect/close into connection lifecycles. Each connection's protocol is detected
//! from its first bytes ([`Session`]): HTTP/1.x goes to [`Conn`], the others to their parser.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use std::net::SocketAddr;

use tapline_ebpf::app::{AppEvent, ConnEvent, DataEvent, Direction, Role};

use super::conn::{Conn, Dir, Observation, Segment, Side};
use crate::protocols::{
    Dir as PDir, Operation, ParserConfig, Protocol, Segment as PSegment, Session,
};

/// A finished operation of a protocol other than HTTP/1.x, with its connection.
#[derive(Clone, Debug, PartialEq)]
pub struct OpObservation {
    pub pid: u32,
    /// Which end this process is.
    pub side: Side,
    pub op: Operation,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// Seen through libssl.
    pub tls: bool,
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
}

/// The protocol decision of one connection.
enum L7 {
    /// No bytes yet (or reset by the first TLS event).
    Start,
    /// A protocol other than HTTP/1.x is assumed or being detected.
    Session(Box<Session>, Side),
    /// HTTP/1.x (detected, or nothing else fits): the [`Conn`] handles it.
    Http1,
}

/// One connection: its HTTP/1.x state and, for other protocols, a [`Session`].
struct Entry {
    http: Conn,
    l7: L7,
    /// TLS plaintext events arrived on it: socket data events are ciphertext from then on.
    tls: bool,
    /// A data event was seen.
    seen: bool,
}

impl Entry {
    fn new(http: Conn) -> Self {
        Entry {
            http,
            l7: L7::Start,
            tls: false,
            seen: false,
        }
    }

    fn close(mut self, out: &mut Vec<Observation>, ops: &mut Vec<OpObservation>) {
        if let L7::Session(s, side) = &mut self.l7 {
            let mut raw = Vec::new();
            s.close(self.http.last_ns, &mut raw);
            push_ops(&self.http, *side, raw, ops);
        }
        self.http.close(out);
    }
}

fn push_ops(c: &Conn, side: Side, raw: Vec<Operation>, ops: &mut Vec<OpObservation>) {
    ops.extend(raw.into_iter().map(|op| OpObservation {
        pid: c.pid,
        side,
        op,
        local: c.local,
        remote: c.remote,
        tls: c.tls,
    }));
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
    raw_ops: Vec<Operation>,
    /// Finished operations of the protocols other than HTTP/1.x, drained by the caller.
    pub ops: Vec<OpObservation>,
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
    /// HTTP/1.x plus every protocol of [`crate::protocols`] (default parser settings).
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
            ops: Vec::new(),
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
            old.close(out, &mut self.ops);
        }
        if self.conns.len() >= self.max_conns {
            self.stats.conns_refused += 1;
            return;
        }
        let mut conn = Conn::new(c.pid, c.local, c.remote, self.capture_headers);
        conn.set_side(side);
        conn.last_ns = c.end_ns;
        self.conns.insert((c.pid, c.conn_id), Entry::new(conn));
    }

    /// Applies one capture event; finished HTTP/1.x exchanges are appended to `out`, other
    /// protocols' operations to [`Tracker::ops`].
    pub fn on_event(&mut self, ev: &AppEvent, out: &mut Vec<Observation>) {
        match ev {
            AppEvent::Data(d) => self.on_data(d, out),
            AppEvent::Accept(c) => self.open(c, Side::Server, out),
            AppEvent::Connect(c) => self.open(c, Side::Client, out),
            AppEvent::Close(c) => {
                if let Some(e) = self.conns.remove(&(c.pid, c.conn_id)) {
                    e.close(out, &mut self.ops);
                }
            }
        }
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
                let mut c = Conn::new(d.pid, d.local, d.remote, capture_headers);
                match d.role {
                    Role::Server => c.set_side(Side::Server),
                    Role::Client => c.set_side(Side::Client),
                    Role::Unknown => {}
                }
                self.conns.entry(key).or_insert(Entry::new(c))
            }
        };
        if d.is_tls() && !e.tls {
            e.tls = true;
            if e.seen {
                // What came before were TLS records read as plain bytes (a libssl call was
                // in progress when the probes were attached): start over on the plaintext.
                self.stats.tls_resets += 1;
                let old = &e.http;
                let mut c = Conn::new(old.pid, old.local, old.remote, capture_headers);
                if let Some(side) = old.side() {
                    c.set_side(side);
                }
                c.last_ns = old.last_ns;
                e.http = c;
                e.l7 = L7::Start;
            }
            e.http.tls = true;
        } else if e.tls && !d.is_tls() {
            // ciphertext of a connection whose plaintext comes from libssl
            return;
        }
        e.seen = true;
        let dir = match d.direction {
            Direction::Ingress => Dir::In,
            Direction::Egress => Dir::Out,
        };
        let seg = Segment {
            dir,
            data: &d.data,
            bytes: d.bytes.max(0) as u64,
            start_ns: d.start_ns,
            end_ns: d.end_ns,
        };
        if let (L7::Start, Some(cfg)) = (&e.l7, self.parsers) {
            e.l7 = match e.http.side().or_else(|| guess_side(&d.local, &d.remote)) {
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
            let pdir = match (side, dir) {
                (Side::Server, Dir::In) | (Side::Client, Dir::Out) => PDir::ClientToServer,
                _ => PDir::ServerToClient,
            };
            // a server's blocking read starts long before the request arrives
            let start_ns = if pdir == PDir::ClientToServer && side == Side::Server {
                d.end_ns
            } else {
                d.start_ns
            };
            s.feed(
                &PSegment {
                    dir: pdir,
                    data: &d.data,
                    total_len: seg.bytes,
                    start_ns,
                    end_ns: d.end_ns,
                },
                &mut self.raw_ops,
            );
            if !self.raw_ops.is_empty() {
                let raw = std::mem::take(&mut self.raw_ops);
                push_ops(&e.http, side, raw, &mut self.ops);
            }
            match s.protocol() {
                Some(Protocol::Http1) => e.l7 = L7::Http1,
                None if s.is_unknown() => e.l7 = L7::Http1,
                _ => {
                    e.http.last_ns = e.http.last_ns.max(d.end_ns);
                    return;
                }
            }
        }
        e.http.feed(&seg, out);
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
            e.http.expire_unframed(quiet, out);
            if e.http.last_ns < idle {
                dead.push(*k);
            }
        }
        for k in dead {
            if let Some(e) = self.conns.remove(&k) {
                self.stats.conns_expired += 1;
                e.close(out, &mut self.ops);
            }
        }
    }

    /// Drops every connection of a process that exited.
    pub fn forget_pid(&mut self, pid: u32, out: &mut Vec<Observation>) {
        let keys: Vec<Key> = self.conns.keys().filter(|k| k.0 == pid).copied().collect();
        for k in keys {
            if let Some(e) = self.conns.remove(&k) {
                e.close(out, &mut self.ops);
            }
        }
    }

    /// Requests dropped by connections for exceeding the pipelining depth.
    pub fn pending_dropped(&self) -> u64 {
        self.conns
            .values()
            .map(|e| {
                e.http.stats.pending_dropped
                    + match &e.l7 {
                        L7::Session(s, _) => s.stats().pending_dropped,
                        _ => 0,
                    }
            })
            .sum()
    }
}
