//! The table of live connections: routes capture events to their [`Conn`] and turns
//! accept/connect/close into connection lifecycles.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use tapline_ebpf::app::{AppEvent, ConnEvent, Direction, Role};

use super::conn::{Conn, Dir, Observation, Segment, Side};

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
}

/// Tracks every connection of the instrumented processes.
#[derive(Debug)]
pub struct Tracker {
    conns: HashMap<Key, Conn, BuildHasherDefault<KeyHasher>>,
    max_conns: usize,
    capture_headers: bool,
    pub stats: TrackerStats,
}

impl Tracker {
    pub fn new(max_conns: usize, capture_headers: bool) -> Self {
        Tracker {
            conns: HashMap::default(),
            max_conns,
            capture_headers,
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
            old.close(out);
        }
        if self.conns.len() >= self.max_conns {
            self.stats.conns_refused += 1;
            return;
        }
        let mut conn = Conn::new(c.pid, c.local, c.remote, self.capture_headers);
        conn.set_side(side);
        conn.last_ns = c.end_ns;
        self.conns.insert((c.pid, c.conn_id), conn);
    }

    /// Applies one capture event; finished exchanges are appended to `out`.
    pub fn on_event(&mut self, ev: &AppEvent, out: &mut Vec<Observation>) {
        match ev {
            AppEvent::Data(d) => {
                let key = (d.pid, d.conn_id);
                let conn = match self.conns.get_mut(&key) {
                    Some(c) => c,
                    None => {
                        if self.conns.len() >= self.max_conns {
                            self.stats.conns_refused += 1;
                            return;
                        }
                        let mut c = Conn::new(d.pid, d.local, d.remote, self.capture_headers);
                        match d.role {
                            Role::Server => c.set_side(Side::Server),
                            Role::Client => c.set_side(Side::Client),
                            Role::Unknown => {}
                        }
                        self.conns.entry(key).or_insert(c)
                    }
                };
                let seg = Segment {
                    dir: match d.direction {
                        Direction::Ingress => Dir::In,
                        Direction::Egress => Dir::Out,
                    },
                    data: &d.data,
                    bytes: d.bytes.max(0) as u64,
                    start_ns: d.start_ns,
                    end_ns: d.end_ns,
                };
                conn.feed(&seg, out);
            }
            AppEvent::Accept(c) => self.open(c, Side::Server, out),
            AppEvent::Connect(c) => self.open(c, Side::Client, out),
            AppEvent::Close(c) => {
                if let Some(conn) = self.conns.remove(&(c.pid, c.conn_id)) {
                    conn.close(out);
                }
            }
        }
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
        for (k, c) in self.conns.iter_mut() {
            c.expire_unframed(quiet, out);
            if c.last_ns < idle {
                dead.push(*k);
            }
        }
        for k in dead {
            if let Some(c) = self.conns.remove(&k) {
                self.stats.conns_expired += 1;
                c.close(out);
            }
        }
    }

    /// Drops every connection of a process that exited.
    pub fn forget_pid(&mut self, pid: u32, out: &mut Vec<Observation>) {
        let keys: Vec<Key> = self.conns.keys().filter(|k| k.0 == pid).copied().collect();
        for k in keys {
            if let Some(c) = self.conns.remove(&k) {
                c.close(out);
            }
        }
    }

    /// Requests dropped by connections for exceeding the pipelining depth.
    pub fn pending_dropped(&self) -> u64 {
        self.conns.values().map(|c| c.stats.pending_dropped).sum()
    }
}
