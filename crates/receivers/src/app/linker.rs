//! Connects the spans of one host into traces.
//!
//! Two relations are known without touching the applications:
//! - **served by**: the kernel tags a client exchange with the server exchange its thread was
//!   serving when it wrote the request (`HttpEvent::parent`, exact for thread-per-request
//!   servers). The client span becomes that server span's child.
//! - **called by**: a server exchange whose client is traced on this host too is the child of
//!   that client's span. Both ends see the same connection (reversed tuple) and, on one clock,
//!   the client's exchange spans the server's: it writes the request before the server reads
//!   it and reads the response's end after the server wrote it. The kernel stamps each call
//!   when it returns, so on two CPUs the server's read can return before the client's write
//!   does: the ends are matched by how much their intervals overlap, not by strict enclosure.
//!   One exchange at a time on a connection makes the largest overlap the right one.
//!
//! Neither end arrives in a useful order: a frontend's client span ends (and is reported)
//! before the server span it belongs to, and a backend's server span usually before the client
//! span that called it; a trace's ids are known only once its root is (its `traceparent`, or
//! its own new ids). So a span that has a parent on this host waits here until the parent's
//! ids are final, and then takes them; whatever waited on it follows. Waiting is bounded in
//! time and in count: a span whose parent never shows up leaves as the root of its own trace,
//! and is counted.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};

use tapline_core::data::Span;
use tapline_protocols::Side;

/// foldhash: these maps are keyed by addresses and ids, hashed once or twice per span.
type State = foldhash::fast::RandomState;

/// A kernel-framed exchange: (pid, connection id, start ns).
pub type ExchangeId = (u32, u64, u64);

/// (client address, server address) of a connection, from either end.
type Tuple = (SocketAddr, SocketAddr);

/// What places a span in a trace.
#[derive(Clone, Copy, Debug)]
pub struct Origin {
    pub pid: u32,
    pub side: Side,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// Monotonic ns of the exchange's start and end (the kernel's clock on both ends).
    pub start_ns: u64,
    pub end_ns: u64,
    /// This exchange, when the kernel framed it (server spans: what client spans point at).
    pub exchange: Option<ExchangeId>,
    /// Client spans: the server exchange the thread was serving.
    pub served: Option<ExchangeId>,
    /// The span's ids came with the request (`traceparent`): it is placed already.
    pub placed: bool,
    /// The connection carries one exchange at a time (HTTP/1), so overlapping intervals
    /// identify the client end of a server exchange; multiplexed protocols are not matched.
    pub sequential: bool,
}

impl Origin {
    fn tuple(&self) -> Tuple {
        match self.side {
            Side::Client => (self.local, self.remote),
            Side::Server => (self.remote, self.local),
        }
    }
}

/// How long a client span waits for the server exchange it was made for (the request being
/// served can take this long).
pub const PARENT_WAIT_NS: u64 = 30_000_000_000;
/// How long a server span whose client may be on this host waits for the client's span (it
/// ends right after the server's).
pub const CALLER_WAIT_NS: u64 = 1_000_000_000;
/// How long after its deadline a waiting span leaves when no newer span arrives.
pub const IDLE_GRACE_NS: u64 = 2_000_000_000;
/// How long final ids stay known for spans that arrive after their parent.
const KEEP_NS: u64 = 10_000_000_000;
/// Spans waiting at most; past this a span leaves at once, unconnected.
pub const MAX_WAITING: usize = 65_536;
/// Exchanges and client spans remembered at most.
const MAX_KNOWN: usize = 262_144;
/// Client ends kept per connection: a server span finds its client among these.
const MAX_ENDS_PER_TUPLE: usize = 64;
/// Local addresses and called server addresses remembered (to tell a same-host client).
const MAX_LOCAL_IPS: usize = 4_096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Ids {
    trace: [u8; 16],
    span: [u8; 8],
}

struct Waiting {
    pid: u32,
    span: Span,
    origin: Origin,
    deadline: u64,
    /// A client span that left a [`ClientEnd`] (without ids) while it waits.
    left_end: bool,
}

/// A client span on a tuple, for a server span to find; gone once one took it.
struct ClientEnd {
    start_ns: u64,
    end_ns: u64,
    /// Final ids; `None` while the client span itself waits for its parent.
    ids: Option<Ids>,
    known_since: u64,
}

/// What the linker did, for self-telemetry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Spans given a parent on this host.
    pub linked: u64,
    /// Spans that waited for a parent that did not show up in time (or found no room to
    /// wait) and left as roots.
    pub unlinked: u64,
}

#[derive(Default)]
pub struct Linker {
    /// Final ids of server exchanges, for client spans that point at them.
    servers: HashMap<ExchangeId, (Ids, u64), State>,
    server_order: VecDeque<(u64, ExchangeId)>,
    /// Client spans by tuple, for server spans.
    clients: HashMap<Tuple, Vec<ClientEnd>, State>,
    client_count: usize,
    /// Client spans waiting for the server exchange they were made for.
    by_exchange: HashMap<ExchangeId, Vec<Waiting>, State>,
    /// Server spans waiting for a client span on their tuple.
    by_tuple: HashMap<Tuple, Vec<Waiting>, State>,
    waiting: usize,
    local_ips: HashSet<IpAddr, State>,
    /// Server addresses that traced client spans of this host called (HTTP/1).
    called: HashSet<SocketAddr, State>,
    /// Server addresses whose spans waited for a client that never came, and that no traced
    /// client called: their spans stop waiting, so a server whose clients are not traced (a
    /// load generator left out of discovery) holds back its spans for one wait only.
    unanswered: HashSet<SocketAddr, State>,
    /// Monotonic ns of the call being served (what is remembered is stamped with it).
    now: u64,
    /// The latest end of the spans taken so far: how far the capture has been read.
    seen_ns: u64,
    pub stats: LinkStats,
}

impl Linker {
    /// Spans waiting now.
    pub fn waiting(&self) -> usize {
        self.waiting
    }

    /// Takes a finished span (its ids random, or from its `traceparent` when `placed`) and
    /// hands it, and every span that waited on it, to `out` once its place is final.
    pub fn add(
        &mut self,
        span: Span,
        origin: Origin,
        now_ns: u64,
        out: &mut impl FnMut(u32, Span),
    ) {
        self.now = now_ns;
        self.seen_ns = self.seen_ns.max(origin.end_ns);
        if self.local_ips.len() < MAX_LOCAL_IPS {
            self.local_ips.insert(origin.local.ip().to_canonical());
        }
        if origin.side == Side::Client && origin.sequential && self.called.insert(origin.remote) {
            self.unanswered.remove(&origin.remote);
            if self.called.len() > MAX_LOCAL_IPS {
                self.called.clear();
            }
        }
        let w = Waiting {
            pid: origin.pid,
            span,
            origin,
            deadline: 0,
            left_end: false,
        };
        if origin.placed {
            return self.finish(w, None, out);
        }
        match origin.side {
            Side::Client => match origin.served {
                Some(parent) => match self.servers.get(&parent) {
                    Some((ids, _)) => {
                        let ids = *ids;
                        self.finish(w, Some(ids), out)
                    }
                    None => {
                        let mut w = w;
                        if origin.sequential {
                            self.remember_client(&origin, None);
                            w.left_end = true;
                        }
                        self.wait(w, WaitOn::Exchange(parent), now_ns + PARENT_WAIT_NS, out)
                    }
                },
                None => self.finish(w, None, out),
            },
            Side::Server => {
                if !origin.sequential {
                    return self.finish(w, None, out);
                }
                let tuple = origin.tuple();
                match self.find_client(&tuple, origin.start_ns, origin.end_ns) {
                    Some(Some(ids)) => self.finish(w, Some(ids), out),
                    // The client is here but waits for its own parent: so does this span.
                    Some(None) => self.wait(w, WaitOn::Tuple(tuple), now_ns + PARENT_WAIT_NS, out),
                    None if !self.unanswered.contains(&origin.local)
                        && self.may_be_local(origin.remote.ip()) =>
                    {
                        self.wait(w, WaitOn::Tuple(tuple), now_ns + CALLER_WAIT_NS, out)
                    }
                    None => self.finish(w, None, out),
                }
            }
        }
    }

    /// Lets every span whose wait is over leave as the root of its own trace, and forgets ids
    /// kept long enough.
    ///
    /// A wait is over once the capture has delivered spans that ended after its deadline (the
    /// parent, ending earlier, would have come with them), or, when nothing newer comes,
    /// [`IDLE_GRACE_NS`] after its deadline: an agent that reads the ring buffer late does
    /// not give up on parents that are still in it.
    pub fn expire(&mut self, now_ns: u64, out: &mut impl FnMut(u32, Span)) {
        self.now = now_ns;
        let horizon = self
            .seen_ns
            .min(now_ns)
            .max(now_ns.saturating_sub(IDLE_GRACE_NS));
        let now_ns = horizon;
        // Client spans first: one that leaves now still takes the server spans waiting for it.
        let late = take_late(&mut self.by_exchange, now_ns);
        self.waiting -= late.len();
        self.stats.unlinked += late.len() as u64;
        for w in late {
            self.finish(w, None, out);
        }
        let late = take_late(&mut self.by_tuple, now_ns);
        self.waiting -= late.len();
        for mut w in late {
            let tuple = w.origin.tuple();
            if self.client_waiting(&tuple, w.origin.start_ns, w.origin.end_ns) {
                // Its client is here and waits for its own parent: wait with it.
                w.deadline = now_ns.saturating_add(PARENT_WAIT_NS);
                self.waiting += 1;
                self.by_tuple.entry(tuple).or_default().push(w);
            } else {
                if !self.called.contains(&w.origin.local) && self.unanswered.len() < MAX_LOCAL_IPS {
                    self.unanswered.insert(w.origin.local);
                }
                self.stats.unlinked += 1;
                self.finish(w, None, out);
            }
        }
        while let Some(&(since, id)) = self.server_order.front() {
            if since.saturating_add(KEEP_NS) > now_ns && self.servers.len() <= MAX_KNOWN {
                break;
            }
            self.server_order.pop_front();
            if self.servers.get(&id).is_some_and(|(_, s)| *s == since) {
                self.servers.remove(&id);
            }
        }
        let mut count = 0;
        self.clients.retain(|_, ends| {
            ends.retain(|e| e.ids.is_none() || e.known_since.saturating_add(KEEP_NS) > now_ns);
            count += ends.len();
            !ends.is_empty()
        });
        self.client_count = count;
    }

    /// Every waiting span leaves now, unconnected (at shutdown).
    pub fn flush(&mut self, out: &mut impl FnMut(u32, Span)) {
        self.expire(u64::MAX, out);
    }

    /// Whether a client span overlapping `[start, end]` on `tuple` waits for its own parent.
    fn client_waiting(&self, tuple: &Tuple, start: u64, end: u64) -> bool {
        self.clients.get(tuple).is_some_and(|ends| {
            ends.iter()
                .any(|e| e.ids.is_none() && overlap((e.start_ns, e.end_ns), (start, end)) > 0)
        })
    }

    fn may_be_local(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_loopback() || self.local_ips.contains(&ip)
    }

    /// The client end overlapping `[start, end]` most on `tuple`: `Some(Some(ids))` when its ids are
    /// final, `Some(None)` while it waits itself, `None` when there is none.
    fn find_client(&mut self, tuple: &Tuple, start: u64, end: u64) -> Option<Option<Ids>> {
        let ends = self.clients.get_mut(tuple)?;
        let i = best_overlap(ends.iter().map(|e| (e.start_ns, e.end_ns)), (start, end))?;
        let ids = ends[i].ids;
        if ids.is_some() {
            // Taken: one server exchange per client exchange.
            ends.swap_remove(i);
            self.client_count -= 1;
            if ends.is_empty() {
                self.clients.remove(tuple);
            }
        }
        Some(ids)
    }

    /// Keeps a client span's end for the server span to come: with its final `ids`, or
    /// `None` while it waits itself.
    fn remember_client(&mut self, origin: &Origin, ids: Option<Ids>) {
        let now_ns = self.now;
        if self.client_count >= MAX_KNOWN {
            return;
        }
        let ends = self.clients.entry(origin.tuple()).or_default();
        if ends.len() >= MAX_ENDS_PER_TUPLE {
            // The server end of a connection follows its client closely: the oldest
            // unclaimed end will not be claimed any more.
            ends.remove(0);
            self.client_count -= 1;
        }
        self.client_count += 1;
        ends.push(ClientEnd {
            start_ns: origin.start_ns,
            end_ns: origin.end_ns,
            ids,
            known_since: now_ns,
        });
    }

    /// Forgets the entry a waiting client span left for server spans.
    fn forget_client(&mut self, origin: &Origin) {
        let tuple = origin.tuple();
        if let Some(ends) = self.clients.get_mut(&tuple) {
            if let Some(i) = ends
                .iter()
                .position(|e| e.start_ns == origin.start_ns && e.end_ns == origin.end_ns)
            {
                ends.swap_remove(i);
                self.client_count -= 1;
            }
            if ends.is_empty() {
                self.clients.remove(&tuple);
            }
        }
    }

    fn wait(&mut self, mut w: Waiting, on: WaitOn, deadline: u64, out: &mut impl FnMut(u32, Span)) {
        if self.waiting >= MAX_WAITING {
            self.stats.unlinked += 1;
            return self.finish(w, None, out);
        }
        w.deadline = deadline;
        self.waiting += 1;
        match on {
            WaitOn::Exchange(id) => self.by_exchange.entry(id).or_default().push(w),
            WaitOn::Tuple(t) => self.by_tuple.entry(t).or_default().push(w),
        }
    }

    /// Gives `w` its final place (the child of `parent`, or as it is) and hands it on; then
    /// the spans that waited on it.
    fn finish(&mut self, w: Waiting, parent: Option<Ids>, out: &mut impl FnMut(u32, Span)) {
        let mut queue = vec![(w, parent)];
        while let Some((mut w, parent)) = queue.pop() {
            if let Some(p) = parent {
                w.span.trace_id = p.trace;
                w.span.parent_span_id = p.span;
                self.stats.linked += 1;
            }
            let ids = Ids {
                trace: w.span.trace_id,
                span: w.span.span_id,
            };
            let (origin, left_end) = (w.origin, w.left_end);
            out(w.pid, w.span);
            match origin.side {
                Side::Server => {
                    if let Some(id) = origin.exchange {
                        self.servers.insert(id, (ids, self.now));
                        self.server_order.push_back((self.now, id));
                        if let Some(children) = self.by_exchange.remove(&id) {
                            self.waiting -= children.len();
                            queue.extend(children.into_iter().map(|c| (c, Some(ids))));
                        }
                    }
                }
                Side::Client if origin.sequential => {
                    // The server span it overlaps most, if one waits already; else it stays known
                    // for the server span to come.
                    let tuple = origin.tuple();
                    let waiting = self.by_tuple.get_mut(&tuple).and_then(|list| {
                        let i = best_overlap(
                            list.iter().map(|s| (s.origin.start_ns, s.origin.end_ns)),
                            (origin.start_ns, origin.end_ns),
                        )?;
                        Some((list.swap_remove(i), list.is_empty()))
                    });
                    if left_end {
                        self.forget_client(&origin);
                    }
                    match waiting {
                        Some((server, emptied)) => {
                            if emptied {
                                self.by_tuple.remove(&tuple);
                            }
                            self.waiting -= 1;
                            queue.push((server, Some(ids)));
                        }
                        None => self.remember_client(&origin, Some(ids)),
                    }
                }
                Side::Client => {}
            }
        }
    }
}

/// How long two intervals (start, end) share, in ns.
fn overlap(a: (u64, u64), b: (u64, u64)) -> u64 {
    a.1.min(b.1).saturating_sub(a.0.max(b.0))
}

/// The index of the interval among `candidates` that shares the most with `with` (some).
fn best_overlap(candidates: impl Iterator<Item = (u64, u64)>, with: (u64, u64)) -> Option<usize> {
    candidates
        .enumerate()
        .map(|(i, c)| (overlap(c, with), i))
        .filter(|(o, _)| *o > 0)
        .max()
        .map(|(_, i)| i)
}

/// Removes and returns the spans of `lists` whose wait ended by `now_ns`.
fn take_late<K: std::hash::Hash + Eq>(
    lists: &mut HashMap<K, Vec<Waiting>, State>,
    now_ns: u64,
) -> Vec<Waiting> {
    let mut late = Vec::new();
    lists.retain(|_, list| {
        let mut i = 0;
        while i < list.len() {
            if list[i].deadline <= now_ns {
                late.push(list.swap_remove(i));
            } else {
                i += 1;
            }
        }
        !list.is_empty()
    });
    late
}

enum WaitOn {
    Exchange(ExchangeId),
    Tuple(Tuple),
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapline_core::data::{Attributes, SpanKind, StatusCode, Str};

    const FRONT: u32 = 100;
    const BACK: u32 = 200;
    const CURL: u32 = 300;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// A span with ids derived from `n` (trace n, span n), as the reporter makes them.
    fn span(n: u8) -> Span {
        Span {
            trace_id: [n; 16],
            span_id: [n; 8],
            parent_span_id: [0; 8],
            name: Str::from_static("GET /"),
            kind: SpanKind::Server,
            start_time_ns: 0,
            end_time_ns: 0,
            attributes: Attributes::new(),
            status: StatusCode::Unset,
            status_message: Str::from_static(""),
        }
    }

    fn origin(pid: u32, side: Side, local: &str, remote: &str, start: u64, end: u64) -> Origin {
        Origin {
            pid,
            side,
            local: addr(local),
            remote: addr(remote),
            start_ns: start,
            end_ns: end,
            exchange: None,
            served: None,
            placed: false,
            sequential: true,
        }
    }

    /// curl → frontend (127.0.0.1:8000) → backend (127.0.0.1:9000), the frontend serving each
    /// request on one thread: (curl's client, frontend server, frontend client, backend server).
    fn chain() -> [(Span, Origin); 4] {
        let mut curl = origin(
            CURL,
            Side::Client,
            "127.0.0.1:40000",
            "127.0.0.1:8000",
            10,
            100,
        );
        curl.exchange = Some((CURL, 7, 10));
        let mut front = origin(
            FRONT,
            Side::Server,
            "127.0.0.1:8000",
            "127.0.0.1:40000",
            20,
            90,
        );
        front.exchange = Some((FRONT, 1, 20));
        let mut call = origin(
            FRONT,
            Side::Client,
            "127.0.0.1:41000",
            "127.0.0.1:9000",
            30,
            80,
        );
        call.exchange = Some((FRONT, 2, 30));
        call.served = Some((FRONT, 1, 20));
        let mut back = origin(
            BACK,
            Side::Server,
            "127.0.0.1:9000",
            "127.0.0.1:41000",
            40,
            70,
        );
        back.exchange = Some((BACK, 3, 40));
        [
            (span(1), curl),
            (span(2), front),
            (span(3), call),
            (span(4), back),
        ]
    }

    fn run(linker: &mut Linker, order: &[usize], spans: &[(Span, Origin)]) -> Vec<(u32, Span)> {
        let mut out = Vec::new();
        for &i in order {
            let (s, o) = spans[i].clone();
            linker.add(s, o, o.end_ns, &mut |pid, s| out.push((pid, s)));
        }
        out
    }

    fn by_id(out: &[(u32, Span)], n: u8) -> &Span {
        &out.iter().find(|(_, s)| s.span_id == [n; 8]).unwrap().1
    }

    #[test]
    fn one_trace_whatever_order_the_spans_arrive_in() {
        // The order the kernel reports them in, then every other order of the four.
        let orders: [[usize; 4]; 4] = [[3, 2, 1, 0], [0, 1, 2, 3], [2, 3, 0, 1], [1, 3, 0, 2]];
        for order in orders {
            let mut linker = Linker::default();
            let out = run(&mut linker, &order, &chain());
            assert_eq!(out.len(), 4, "order {order:?}: every span leaves");
            let root = by_id(&out, 1);
            assert_eq!(root.parent_span_id, [0; 8], "curl's span is the root");
            for (child, parent) in [(2, 1), (3, 2), (4, 3)] {
                let s = by_id(&out, child);
                assert_eq!(s.trace_id, [1; 16], "order {order:?}: span {child}'s trace");
                assert_eq!(
                    s.parent_span_id, [parent; 8],
                    "order {order:?}: span {child}'s parent"
                );
            }
            assert_eq!(
                linker.stats,
                LinkStats {
                    linked: 3,
                    unlinked: 0
                }
            );
            assert_eq!(linker.waiting(), 0);
        }
    }

    #[test]
    fn a_carried_traceparent_is_the_root_of_what_follows_on_this_host() {
        let mut spans = chain();
        // The caller is not traced here (drop curl's span); the request carried a
        // traceparent, which the reporter put in the frontend span already.
        spans[1].1.remote = addr("192.0.2.9:40000");
        spans[1].1.placed = true;
        spans[1].0.trace_id = [9; 16];
        spans[1].0.parent_span_id = [8; 8];
        let mut linker = Linker::default();
        let out = run(&mut linker, &[3, 2, 1], &spans);
        assert_eq!(by_id(&out, 2).parent_span_id, [8; 8]);
        for n in [2, 3, 4] {
            assert_eq!(by_id(&out, n).trace_id, [9; 16]);
        }
    }

    #[test]
    fn keep_alive_exchanges_each_find_their_own_client() {
        let client = |n: u64| {
            let o = origin(
                CURL,
                Side::Client,
                "127.0.0.1:40000",
                "127.0.0.1:8000",
                n * 100,
                n * 100 + 50,
            );
            (span(n as u8), o)
        };
        let server = |n: u64| {
            let o = origin(
                FRONT,
                Side::Server,
                "127.0.0.1:8000",
                "127.0.0.1:40000",
                n * 100 + 10,
                n * 100 + 40,
            );
            (span(10 + n as u8), o)
        };
        let spans = [client(1), client(2), server(1), server(2)];
        let mut linker = Linker::default();
        let out = run(&mut linker, &[2, 3, 1, 0], &spans);
        assert_eq!(by_id(&out, 11).parent_span_id, [1; 8]);
        assert_eq!(by_id(&out, 12).parent_span_id, [2; 8]);
        assert_eq!(by_id(&out, 12).trace_id, [2; 16]);
    }

    /// The server's read returned before the client's write did, and the client's last read
    /// before the server's last write (two CPUs): still that client's exchange, not the next.
    #[test]
    fn skewed_stamps_still_pair_each_server_exchange_with_its_client() {
        let ends = |n: u64, skew: u64| {
            let client = origin(
                CURL,
                Side::Client,
                "127.0.0.1:40000",
                "127.0.0.1:8000",
                n * 1000 + skew,
                n * 1000 + 500,
            );
            let server = origin(
                FRONT,
                Side::Server,
                "127.0.0.1:8000",
                "127.0.0.1:40000",
                n * 1000,
                n * 1000 + 500 + skew,
            );
            [(span(n as u8), client), (span(100 + n as u8), server)]
        };
        let spans: Vec<(Span, Origin)> = (1..=3).flat_map(|n| ends(n, 40)).collect();
        for order in [[1, 0, 3, 2, 5, 4], [0, 1, 2, 3, 4, 5], [1, 3, 5, 0, 2, 4]] {
            let mut linker = Linker::default();
            let out = run(&mut linker, &order, &spans);
            for n in 1..=3u8 {
                assert_eq!(
                    by_id(&out, 100 + n).parent_span_id,
                    [n; 8],
                    "order {order:?}"
                );
            }
        }
    }

    #[test]
    fn a_remote_client_is_not_waited_for_a_local_one_only_so_long() {
        let mut linker = Linker::default();
        let remote = origin(
            FRONT,
            Side::Server,
            "10.0.0.1:8000",
            "192.0.2.7:5000",
            10,
            20,
        );
        let out = run(&mut linker, &[0], &[(span(1), remote)]);
        assert_eq!(
            out.len(),
            1,
            "no client of this host can be its parent: leaves at once"
        );

        let local = |port: u16, t: u64| {
            let o = origin(
                FRONT,
                Side::Server,
                "127.0.0.1:8000",
                &format!("127.0.0.1:{port}"),
                t,
                t + 10,
            );
            (span(port as u8), o)
        };
        let out = run(&mut linker, &[0], &[local(5, 10)]);
        assert!(out.is_empty(), "its client may be traced here: it waits");
        assert_eq!(linker.waiting(), 1);
        let mut late = Vec::new();
        // Nothing newer arrives: the wait ends IDLE_GRACE_NS after its deadline.
        let deadline = 20 + CALLER_WAIT_NS;
        linker.expire(deadline + IDLE_GRACE_NS - 1, &mut |pid, s| {
            late.push((pid, s))
        });
        assert!(late.is_empty());
        linker.expire(deadline + IDLE_GRACE_NS, &mut |pid, s| late.push((pid, s)));
        assert_eq!(late.len(), 1);
        assert_eq!(late[0].1.parent_span_id, [0; 8]);
        assert_eq!(
            linker.stats,
            LinkStats {
                linked: 0,
                unlinked: 1
            }
        );
        assert_eq!(linker.waiting(), 0);

        // No traced client answered for 127.0.0.1:8000: its next spans do not wait.
        let out = run(&mut linker, &[0], &[local(6, 2 * CALLER_WAIT_NS)]);
        assert_eq!(out.len(), 1);
        // Until a traced client calls it: then they wait for (and join) their client again.
        let t = 3 * CALLER_WAIT_NS;
        let caller = origin(
            CURL,
            Side::Client,
            "127.0.0.1:7",
            "127.0.0.1:8000",
            t,
            t + 100,
        );
        let server = origin(
            FRONT,
            Side::Server,
            "127.0.0.1:8000",
            "127.0.0.1:7",
            t + 10,
            t + 90,
        );
        let out = run(
            &mut linker,
            &[0, 1],
            &[(span(70), caller), (span(71), server)],
        );
        assert_eq!(by_id(&out, 71).parent_span_id, [70; 8]);
        let next = origin(
            FRONT,
            Side::Server,
            "127.0.0.1:8000",
            "127.0.0.1:8",
            t + 200,
            t + 210,
        );
        assert!(
            run(&mut linker, &[0], &[(span(72), next)]).is_empty(),
            "waits again"
        );
    }

    /// The agent reads the capture late (a backlog): a wait measured by the clock alone would
    /// be over before the parent is even read. It ends by what the capture delivered.
    #[test]
    fn a_late_reader_does_not_give_up_on_parents_still_in_the_capture() {
        let mut linker = Linker::default();
        let server = origin(FRONT, Side::Server, "127.0.0.1:8000", "127.0.0.1:5", 10, 20);
        assert!(run(&mut linker, &[0], &[(span(1), server)]).is_empty());
        let mut out = Vec::new();
        // Well past the deadline by the clock, but nothing newer was read yet.
        linker.expire(20 + CALLER_WAIT_NS + 1, &mut |pid, s| out.push((pid, s)));
        assert!(out.is_empty());
        let client = origin(CURL, Side::Client, "127.0.0.1:5", "127.0.0.1:8000", 5, 25);
        let out = run(&mut linker, &[0], &[(span(2), client)]);
        assert_eq!(by_id(&out, 1).parent_span_id, [2; 8]);

        // Once the capture delivered spans that ended after the deadline, the wait is over.
        let server = origin(
            FRONT,
            Side::Server,
            "127.0.0.1:8000",
            "127.0.0.1:6",
            100,
            110,
        );
        assert!(run(&mut linker, &[0], &[(span(3), server)]).is_empty());
        let later = origin(
            CURL,
            Side::Client,
            "127.0.0.1:7",
            "10.0.0.9:80",
            0,
            110 + CALLER_WAIT_NS,
        );
        run(&mut linker, &[0], &[(span(4), later)]);
        let mut out = Vec::new();
        linker.expire(110 + CALLER_WAIT_NS, &mut |pid, s| out.push((pid, s)));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].1.span_id, [3; 8]);
    }

    #[test]
    fn a_client_call_made_for_a_request_that_never_ends_leaves_after_the_wait() {
        let spans = chain();
        let mut linker = Linker::default();
        // The backend's span and the frontend's call; the frontend's own request never ends.
        assert!(run(&mut linker, &[3, 2], &spans).is_empty());
        let mut out = Vec::new();
        linker.expire(80 + PARENT_WAIT_NS + IDLE_GRACE_NS, &mut |pid, s| {
            out.push((pid, s))
        });
        assert_eq!(out.len(), 2);
        let call = by_id(&out, 3);
        assert_eq!((call.trace_id, call.parent_span_id), ([3; 16], [0; 8]));
        let back = by_id(&out, 4);
        assert_eq!((back.trace_id, back.parent_span_id), ([3; 16], [3; 8]));
        assert_eq!(
            linker.stats,
            LinkStats {
                linked: 1,
                unlinked: 1
            }
        );
    }

    #[test]
    fn multiplexed_connections_are_not_matched_by_interval() {
        let mut spans = chain();
        for (_, o) in &mut spans {
            o.sequential = false;
        }
        let mut linker = Linker::default();
        let out = run(&mut linker, &[3, 1, 0], &spans);
        assert_eq!(out.len(), 3);
        assert!(out.iter().all(|(_, s)| s.parent_span_id == [0; 8]));
    }

    #[test]
    fn waiting_is_bounded() {
        let mut linker = Linker::default();
        let mut out = Vec::new();
        for i in 0..(MAX_WAITING as u64 + 10) {
            let o = origin(
                FRONT,
                Side::Server,
                "127.0.0.1:8000",
                "127.0.0.1:5000",
                i * 10,
                i * 10 + 5,
            );
            linker.add(span(1), o, o.end_ns, &mut |pid, s| out.push((pid, s)));
        }
        assert_eq!(linker.waiting(), MAX_WAITING);
        assert_eq!(out.len(), 10);
        assert_eq!(linker.stats.unlinked, 10);
    }
}
