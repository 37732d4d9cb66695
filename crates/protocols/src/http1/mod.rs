//! Per-connection HTTP/1.x state: two byte streams (read side, write side) cut into messages,
//! and requests matched to responses in order (keep-alive and pipelining).
//!
//! Sizes come from the headers and the syscalls' byte counts, never from the captured prefix:
//! a 1 MiB body is skipped by its length. When the capture lost track (a head longer than the
//! captured prefix, bytes of a connection older than tapline, garbage), a stream resyncs on the
//! next event that begins with a request or status line.

use std::collections::VecDeque;
use std::net::SocketAddr;

use super::chunked::Chunked;
use super::http::{self, Head, Method, Parse, StartLine, TraceParent};

/// Largest head kept across events while waiting for its end. Longer heads are treated as
/// truncated: their start line and the headers seen still count.
pub const MAX_HEAD: usize = 16 * 1024;
/// Requests waiting for a response on one connection (pipelining depth). Beyond it the oldest
/// is dropped and counted.
pub const MAX_PENDING: usize = 256;
/// Headers kept per request when headers are captured, and their value length.
const MAX_CAPTURED_HEADERS: usize = 32;
const MAX_HEADER_VALUE: usize = 256;

/// The read or write side of a socket, as this process sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dir {
    /// read, recv...
    In = 0,
    /// write, send, sendfile...
    Out = 1,
}

impl Dir {
    fn other(self) -> Dir {
        match self {
            Dir::In => Dir::Out,
            Dir::Out => Dir::In,
        }
    }
}

/// Which end of the HTTP exchange a process is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// It read the request and wrote the response.
    Server = 0,
    /// It wrote the request and read the response.
    Client = 1,
}

/// One syscall's worth of bytes on a connection.
#[derive(Clone, Copy, Debug)]
pub struct Segment<'a> {
    pub dir: Dir,
    /// The captured prefix (may be shorter than `bytes`, or empty for sendfile).
    pub data: &'a [u8],
    /// Bytes the syscall moved.
    pub bytes: u64,
    /// CLOCK_MONOTONIC ns at syscall enter and exit.
    pub start_ns: u64,
    pub end_ns: u64,
}

/// A finished (or failed) request/response exchange.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    pub pid: u32,
    pub side: Side,
    pub method: Method,
    /// The request target as sent (path and query).
    pub target: Box<[u8]>,
    /// 0 when no response was seen.
    pub status: u16,
    /// CLOCK_MONOTONIC ns: server = the request's read returned; client = its write began.
    pub start_ns: u64,
    /// CLOCK_MONOTONIC ns: the syscall that moved the response's last byte returned.
    pub end_ns: u64,
    pub request_body: u64,
    pub response_body: u64,
    pub traceparent: Option<TraceParent>,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// A connection-level failure (`response_incomplete`, `no_response`).
    pub error: Option<&'static str>,
    /// Request headers (lowercase names), only when header capture is on.
    pub headers: Vec<(Box<str>, Box<str>)>,
    /// Seen through libssl (TLS plaintext): `url.scheme` https.
    pub tls: bool,
}

/// `error.type` of a response cut short by the connection closing.
pub const ERROR_INCOMPLETE: &str = "response_incomplete";
/// `error.type` of a request whose connection closed before any response.
pub const ERROR_NO_RESPONSE: &str = "no_response";

#[derive(Debug)]
struct Pending {
    id: u64,
    method: Method,
    target: Box<[u8]>,
    start_ns: u64,
    body: u64,
    traceparent: Option<TraceParent>,
    headers: Vec<(Box<str>, Box<str>)>,
}

#[derive(Debug)]
struct InFlight {
    req: Pending,
    status: u16,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum State {
    /// At a message boundary.
    #[default]
    Idle,
    /// Content-Length body bytes still to come.
    Body(u64),
    Chunked(Chunked),
    /// A response without a length: it ends when the connection closes.
    UntilClose,
    /// A message whose end cannot be computed (head longer than the capture, lost chunk
    /// framing): it ends where the next message starts, at close, or after an idle time.
    Unframed,
    /// Not at a known position: skip events until one begins with a start line.
    Lost,
}

#[derive(Debug, Default)]
struct Stream {
    state: State,
    /// A head split across events.
    head_buf: Vec<u8>,
    /// Timestamps of the event where the buffered head began.
    head_times: (u64, u64),
    /// Exit time of the last event on this stream.
    last_end_ns: u64,
    /// Content-Length of the open message, if any.
    declared: Option<u64>,
    /// Body bytes of the open message counted so far.
    counted: u64,
    /// Request id of the open request message (request streams only).
    req_id: Option<u64>,
}

impl Stream {
    fn body_size(&self) -> u64 {
        match (self.state, self.declared) {
            (State::Chunked(c), _) => c.body_bytes,
            (_, Some(n)) => n,
            _ => self.counted,
        }
    }
}

/// Counters of what a connection had to give up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnStats {
    /// Requests dropped because more than [`MAX_PENDING`] were waiting.
    pub pending_dropped: u64,
}

/// The HTTP state of one connection in one process.
#[derive(Debug)]
pub struct Conn {
    pub pid: u32,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// Direction in which requests flow, once known (In: this process is the server).
    requests_dir: Option<Dir>,
    streams: [Stream; 2],
    pending: VecDeque<Pending>,
    response: Option<InFlight>,
    /// Upgraded or tunnelled: no longer HTTP/1.
    opaque: bool,
    capture_headers: bool,
    next_id: u64,
    /// Exit time of the latest event.
    pub last_ns: u64,
    pub stats: ConnStats,
    /// The bytes are TLS plaintext (libssl probes).
    pub tls: bool,
}

impl Conn {
    pub fn new(pid: u32, local: SocketAddr, remote: SocketAddr, capture_headers: bool) -> Self {
        Conn {
            pid,
            local,
            remote,
            requests_dir: None,
            streams: Default::default(),
            pending: VecDeque::new(),
            response: None,
            opaque: false,
            capture_headers,
            next_id: 0,
            last_ns: 0,
            stats: ConnStats::default(),
            tls: false,
        }
    }

    /// Tells the connection which end this process is (from accept/connect).
    pub fn set_side(&mut self, side: Side) {
        self.requests_dir = Some(match side {
            Side::Server => Dir::In,
            Side::Client => Dir::Out,
        });
    }

    pub fn side(&self) -> Option<Side> {
        self.requests_dir.map(|d| match d {
            Dir::In => Side::Server,
            Dir::Out => Side::Client,
        })
    }

    /// Feeds one syscall's bytes.
    pub fn feed(&mut self, seg: &Segment<'_>, out: &mut Vec<Observation>) {
        self.last_ns = self.last_ns.max(seg.end_ns);
        if self.opaque || seg.bytes == 0 {
            return;
        }
        let i = seg.dir as usize;
        let mut s = std::mem::take(&mut self.streams[i]);
        let total = seg.bytes;
        let vis_len = (seg.data.len() as u64).min(total) as usize;
        let vis = &seg.data[..vis_len];
        let truncated = (vis_len as u64) < total;
        let mut pos: u64 = 0;

        if !s.head_buf.is_empty() {
            let old = s.head_buf.len();
            let add = vis.len().min(MAX_HEAD - old);
            s.head_buf.extend_from_slice(&vis[..add]);
            let buf = std::mem::take(&mut s.head_buf);
            let times = s.head_times;
            let full = buf.len() >= MAX_HEAD;
            match http::parse(&buf) {
                Parse::Complete(head, hlen) => {
                    pos = hlen.saturating_sub(old) as u64;
                    self.start_message(seg.dir, &mut s, &head, times, false, out);
                }
                Parse::Partial(head) if truncated || full => {
                    pos = total;
                    self.start_message(seg.dir, &mut s, &head, times, true, out);
                }
                Parse::Partial(_) | Parse::NeedMore if !truncated && !full => {
                    s.head_buf = buf;
                    s.last_end_ns = seg.end_ns;
                    self.streams[i] = s;
                    return;
                }
                _ => s.state = State::Lost,
            }
            if s.head_buf.is_empty() {
                // keep the allocation for the next split head
                let mut buf = buf;
                buf.clear();
                if buf.capacity() <= 4096 {
                    s.head_buf = buf;
                }
            }
        }

        while pos < total && !self.opaque {
            match s.state {
                State::Idle | State::Lost => {
                    let p = pos as usize;
                    if p >= vis.len() {
                        // bytes we cannot see where a head should be
                        s.state = State::Lost;
                        break;
                    }
                    let rest = &vis[p..];
                    match http::parse(rest) {
                        Parse::Complete(head, hlen) => {
                            pos += hlen as u64;
                            let times = (seg.start_ns, seg.end_ns);
                            self.start_message(seg.dir, &mut s, &head, times, false, out);
                        }
                        Parse::Partial(head) if truncated => {
                            pos = total;
                            let times = (seg.start_ns, seg.end_ns);
                            self.start_message(seg.dir, &mut s, &head, times, true, out);
                        }
                        Parse::Partial(_) | Parse::NeedMore if !truncated => {
                            s.head_buf.clear();
                            s.head_buf
                                .extend_from_slice(&rest[..rest.len().min(MAX_HEAD)]);
                            s.head_times = (seg.start_ns, seg.end_ns);
                            pos = total;
                        }
                        _ => {
                            s.state = State::Lost;
                            break;
                        }
                    }
                }
                State::Body(rem) => {
                    let n = rem.min(total - pos);
                    pos += n;
                    s.counted += n;
                    if n == rem {
                        let body = s.body_size();
                        s.state = State::Idle;
                        self.end_message(seg.dir, &mut s, seg.end_ns, body, None, out);
                    } else {
                        s.state = State::Body(rem - n);
                    }
                }
                State::Chunked(mut c) => {
                    let p = pos as usize;
                    if p < vis.len() {
                        pos += c.feed(&vis[p..]) as u64;
                    } else {
                        pos += c.skip(total - pos);
                    }
                    s.state = State::Chunked(c);
                    if c.is_done() {
                        s.state = State::Idle;
                        self.end_message(seg.dir, &mut s, seg.end_ns, c.body_bytes, None, out);
                    } else if c.is_lost() {
                        s.counted = c.body_bytes;
                        s.declared = Some(c.body_bytes);
                        s.state = State::Unframed;
                        pos = total;
                    }
                }
                State::UntilClose => {
                    s.counted += total - pos;
                    pos = total;
                }
                State::Unframed => {
                    if pos == 0 && !vis.is_empty() && starts_message(vis) {
                        // a new message begins: the open one ended with the previous event
                        let body = s.body_size();
                        let end = s.last_end_ns;
                        s.state = State::Idle;
                        self.end_message(seg.dir, &mut s, end, body, None, out);
                        continue;
                    }
                    s.counted += total - pos;
                    pos = total;
                }
            }
        }
        s.last_end_ns = seg.end_ns;
        self.streams[i] = s;
    }

    /// A head was parsed on `dir`: sets the stream's framing and the matching state.
    fn start_message(
        &mut self,
        dir: Dir,
        s: &mut Stream,
        head: &Head<'_>,
        (start_ns, end_ns): (u64, u64),
        truncated_head: bool,
        out: &mut Vec<Observation>,
    ) {
        s.declared = head.content_length;
        s.counted = 0;
        s.req_id = None;
        match head.start {
            StartLine::Request { method, target, .. } => {
                if *self.requests_dir.get_or_insert(dir) != dir {
                    s.state = State::Lost;
                    return;
                }
                // A client sends its next request only after the whole response (unless it
                // pipelines): an unframed response in flight has ended.
                let rs = &mut self.streams[dir.other() as usize];
                if self.pending.is_empty() && self.response.is_some() && rs.state == State::Unframed
                {
                    let body = rs.body_size();
                    let end = rs.last_end_ns;
                    rs.state = State::Idle;
                    if let Some(r) = self.response.take() {
                        out.push(self.observation(r, end, body, None));
                    }
                }
                let id = self.next_id;
                self.next_id += 1;
                let headers = if self.capture_headers {
                    captured_headers(head)
                } else {
                    Vec::new()
                };
                if self.pending.len() >= MAX_PENDING {
                    self.pending.pop_front();
                    self.stats.pending_dropped += 1;
                }
                self.pending.push_back(Pending {
                    id,
                    method,
                    target: target.into(),
                    start_ns: if dir == Dir::In { end_ns } else { start_ns },
                    body: head.content_length.unwrap_or(0),
                    traceparent: head.traceparent,
                    headers,
                });
                s.req_id = Some(id);
                s.state = if truncated_head {
                    State::Unframed
                } else if head.chunked {
                    State::Chunked(Chunked::default())
                } else {
                    match head.content_length {
                        Some(n) if n > 0 => State::Body(n),
                        _ => State::Idle,
                    }
                };
                if s.state == State::Idle {
                    self.end_message(dir, s, end_ns, 0, Some(id), out);
                }
            }
            StartLine::Response { status, .. } => {
                if *self.requests_dir.get_or_insert(dir.other()) == dir {
                    s.state = State::Lost;
                    return;
                }
                if (100..200).contains(&status) && status != 101 {
                    // interim response; the final one follows
                    s.state = State::Idle;
                    return;
                }
                let req = self.pending.pop_front();
                let no_body = status == 101
                    || status == 204
                    || status == 304
                    || req.as_ref().is_some_and(|r| r.method == Method::Head);
                let tunnel = status == 101
                    || (req.as_ref().is_some_and(|r| r.method == Method::Connect)
                        && (200..300).contains(&status));
                if let Some(old) = self.response.take() {
                    // cannot happen with a consistent stream; never lose it silently
                    let body = s.body_size();
                    out.push(self.observation(old, s.last_end_ns, body, None));
                }
                self.response = req.map(|req| InFlight { req, status });
                s.state = if no_body || tunnel {
                    State::Idle
                } else if truncated_head {
                    State::Unframed
                } else if head.chunked {
                    State::Chunked(Chunked::default())
                } else {
                    match head.content_length {
                        Some(0) => State::Idle,
                        Some(n) => State::Body(n),
                        None => State::UntilClose,
                    }
                };
                if s.state == State::Idle {
                    self.end_message(dir, s, end_ns, 0, None, out);
                }
                if tunnel {
                    self.opaque = true;
                }
            }
        }
    }

    fn end_message(
        &mut self,
        dir: Dir,
        s: &mut Stream,
        end_ns: u64,
        body: u64,
        req_id: Option<u64>,
        out: &mut Vec<Observation>,
    ) {
        if Some(dir) == self.requests_dir {
            let Some(id) = req_id.or(s.req_id.take()) else {
                return;
            };
            if let Some(p) = self.pending.iter_mut().rev().find(|p| p.id == id) {
                p.body = body;
            } else if let Some(r) = self.response.as_mut().filter(|r| r.req.id == id) {
                r.req.body = body;
            }
        } else if let Some(r) = self.response.take() {
            out.push(self.observation(r, end_ns, body, None));
        }
    }

    fn observation(
        &self,
        r: InFlight,
        end_ns: u64,
        response_body: u64,
        error: Option<&'static str>,
    ) -> Observation {
        let side = self.side().unwrap_or(Side::Server);
        Observation {
            pid: self.pid,
            side,
            method: r.req.method,
            target: r.req.target,
            status: r.status,
            start_ns: r.req.start_ns,
            end_ns: end_ns.max(r.req.start_ns),
            request_body: r.req.body,
            response_body,
            traceparent: r.req.traceparent,
            local: self.local,
            remote: self.remote,
            error,
            headers: r.req.headers,
            tls: self.tls,
        }
    }

    /// The connection closed: open responses end (with an error when their length says bytes
    /// are missing) and requests without a response become `no_response` errors.
    pub fn close(mut self, out: &mut Vec<Observation>) {
        if let Some(rd) = self.requests_dir {
            let rs = std::mem::take(&mut self.streams[rd.other() as usize]);
            if let Some(r) = self.response.take() {
                let error = match rs.state {
                    State::Body(_) | State::Chunked(_) => Some(ERROR_INCOMPLETE),
                    _ => None,
                };
                let body = if error.is_some() {
                    rs.counted
                } else {
                    rs.body_size()
                };
                out.push(self.observation(r, rs.last_end_ns, body, error));
            }
        }
        let end = self.last_ns;
        while let Some(req) = self.pending.pop_front() {
            let o = self.observation(InFlight { req, status: 0 }, end, 0, Some(ERROR_NO_RESPONSE));
            out.push(o);
        }
    }

    /// Ends an unframed response whose stream has been quiet since before `quiet_before_ns`.
    pub fn expire_unframed(&mut self, quiet_before_ns: u64, out: &mut Vec<Observation>) {
        let Some(rd) = self.requests_dir else { return };
        let rs = &mut self.streams[rd.other() as usize];
        if rs.state == State::Unframed && rs.last_end_ns < quiet_before_ns {
            let body = rs.body_size();
            let end = rs.last_end_ns;
            rs.state = State::Idle;
            if let Some(r) = self.response.take() {
                out.push(self.observation(r, end, body, None));
            }
        }
    }

    /// Heap bytes held (bounded: [`MAX_HEAD`] per stream plus [`MAX_PENDING`] requests).
    pub fn heap_bytes(&self) -> usize {
        self.streams
            .iter()
            .map(|s| s.head_buf.capacity())
            .sum::<usize>()
            + self
                .pending
                .iter()
                .map(|p| p.target.len() + std::mem::size_of::<Pending>())
                .sum::<usize>()
    }
}

fn starts_message(vis: &[u8]) -> bool {
    !matches!(http::parse(vis), Parse::NotHttp | Parse::NeedMore)
}

fn captured_headers(head: &Head<'_>) -> Vec<(Box<str>, Box<str>)> {
    head.headers()
        .take(MAX_CAPTURED_HEADERS)
        .map(|(n, v)| {
            let name = String::from_utf8_lossy(n).to_ascii_lowercase();
            let v = &v[..v.len().min(MAX_HEADER_VALUE)];
            (name.into(), String::from_utf8_lossy(v).into())
        })
        .collect()
}

#[cfg(test)]
mod tests;
