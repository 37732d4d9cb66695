//! HTTP/1.x: per-connection state of two byte streams (requests, responses) cut into messages,
//! and requests matched to responses in order (keep-alive and pipelining).
//!
//! Sizes come from the headers and the syscalls' byte counts, never from the captured prefix:
//! a 1 MiB body is skipped by its length. When the capture lost track (a head longer than the
//! captured prefix, bytes of a connection older than tapline, garbage), a stream resyncs on the
//! next segment that begins with a request or status line.
//!
//! The parser can also learn which direction carries the requests (a connection whose
//! accept/connect was not seen): the caller labels the two directions as it guesses, and the
//! first head seen settles it ([`Http1Parser::requests_dir`]).

pub mod chunked;
pub mod exchange;
pub mod head;

use std::collections::VecDeque;

use crate::conventions::HTTP;
use crate::*;
use chunked::Chunked;
use head::{Head, Method, Parse, StartLine, TraceParent};

pub const SPEC: ProtocolSpec = ProtocolSpec {
    protocol: Protocol::Http1,
    name: "http",
    detect: Some(detect),
    ports: &[],
    new_parser: Some(|_| Box::new(Http1Parser::new(false))),
    conventions: HTTP,
};

/// A request line from the client, or a status line from the server.
fn detect(client: &[u8], server: &[u8]) -> u8 {
    const METHODS: [&[u8]; 9] = [
        b"GET ",
        b"POST ",
        b"PUT ",
        b"DELETE ",
        b"HEAD ",
        b"OPTIONS ",
        b"PATCH ",
        b"CONNECT ",
        b"TRACE ",
    ];
    let request = client.len() >= 4 && METHODS.iter().any(|m| client.starts_with(m));
    if request || server.starts_with(b"HTTP/1.") {
        3
    } else {
        0
    }
}

/// Largest head kept across segments while waiting for its end. Longer heads are treated as
/// truncated: their start line and the headers seen still count.
pub const MAX_HEAD: usize = 16 * 1024;
/// Headers kept per request when headers are captured, and their value length.
const MAX_CAPTURED_HEADERS: usize = 32;
const MAX_HEADER_VALUE: usize = 256;

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
    /// Not at a known position any more: skip to the next segment that starts a message.
    fn lose(&mut self, stats: &mut ParserStats) {
        if self.state != State::Lost {
            stats.resyncs += 1;
        }
        self.state = State::Lost;
    }

    fn body_size(&self) -> u64 {
        match (self.state, self.declared) {
            (State::Chunked(c), _) => c.body_bytes,
            (_, Some(n)) => n,
            _ => self.counted,
        }
    }
}

/// The HTTP/1.x state of one connection.
#[derive(Debug)]
pub struct Http1Parser {
    /// Direction in which requests flow, once known.
    requests_dir: Option<Dir>,
    streams: [Stream; 2],
    pending: VecDeque<Pending>,
    response: Option<InFlight>,
    /// Upgraded or tunnelled: no longer HTTP/1.
    opaque: bool,
    capture_headers: bool,
    next_id: u64,
    stats: ParserStats,
}

impl Default for Http1Parser {
    fn default() -> Self {
        Self::new(false)
    }
}

impl Http1Parser {
    /// A parser that learns which direction carries the requests from the first head it
    /// sees, unless told with [`Http1Parser::set_requests_dir`]. `capture_headers`: keep the
    /// request headers ([`Operation::request_headers`]).
    pub fn new(capture_headers: bool) -> Self {
        Http1Parser {
            requests_dir: None,
            streams: Default::default(),
            pending: VecDeque::new(),
            response: None,
            opaque: false,
            capture_headers,
            next_id: 0,
            stats: ParserStats::default(),
        }
    }

    /// Requests flow in direction `dir` (the caller knows from accept/connect): a response
    /// head in that direction is not taken as one.
    pub fn set_requests_dir(&mut self, dir: Dir) {
        self.requests_dir = Some(dir);
    }

    /// The direction that carries requests, once known.
    pub fn requests_dir(&self) -> Option<Dir> {
        self.requests_dir
    }

    /// Feeds one syscall's bytes. A request starts at `seg.start_ns` of the segment where its
    /// head began: a server's read passes its exit time (see the crate's timestamps).
    pub fn feed(&mut self, seg: &Segment<'_>, out: &mut Vec<Operation>) {
        if self.opaque || seg.total_len == 0 {
            return;
        }
        let i = seg.dir as usize;
        let mut s = std::mem::take(&mut self.streams[i]);
        let total = seg.total_len;
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
            match head::parse(&buf) {
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
                _ => s.lose(&mut self.stats),
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
                        s.lose(&mut self.stats);
                        break;
                    }
                    let rest = &vis[p..];
                    match head::parse(rest) {
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
                            s.lose(&mut self.stats);
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
        out: &mut Vec<Operation>,
    ) {
        s.declared = head.content_length;
        s.counted = 0;
        s.req_id = None;
        match head.start {
            StartLine::Request { method, target, .. } => {
                if *self.requests_dir.get_or_insert(dir) != dir {
                    s.lose(&mut self.stats);
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
                        out.push(self.operation(r, end, body, None));
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
                    start_ns,
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
                    s.lose(&mut self.stats);
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
                    out.push(self.operation(old, s.last_end_ns, body, None));
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
        out: &mut Vec<Operation>,
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
            out.push(self.operation(r, end_ns, body, None));
        }
    }

    fn operation(
        &self,
        r: InFlight,
        end_ns: u64,
        response_body: u64,
        error: Option<&'static str>,
    ) -> Operation {
        let target = String::from_utf8(r.req.target.into_vec())
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        let mut op = Operation::new(
            Protocol::Http1,
            Str::Borrowed(r.req.method.as_str()),
            r.req.start_ns,
        );
        op.end_ns = end_ns.max(r.req.start_ns);
        op.target = Some(Str::Owned(target));
        op.status = match r.status {
            0 => Status::Unknown,
            code => Status::Http(code),
        };
        op.error = error.map(Str::Borrowed);
        op.request_size = r.req.body;
        op.response_size = response_body;
        op.traceparent = r.req.traceparent;
        op.request_headers = r.req.headers;
        op
    }

    /// The connection closed: open responses end (with an error when their length says bytes
    /// are missing) and requests without a response become `no_response` errors.
    pub fn close(&mut self, end_ns: u64, out: &mut Vec<Operation>) {
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
                out.push(self.operation(r, rs.last_end_ns, body, error));
            }
        }
        while let Some(req) = self.pending.pop_front() {
            let o = self.operation(InFlight { req, status: 0 }, end_ns, 0, Some(ERROR_NO_RESPONSE));
            out.push(o);
        }
    }

    /// Ends an unframed response whose stream has been quiet since before `quiet_before_ns`.
    pub fn expire_unframed(&mut self, quiet_before_ns: u64, out: &mut Vec<Operation>) {
        let Some(rd) = self.requests_dir else { return };
        let rs = &mut self.streams[rd.other() as usize];
        if rs.state == State::Unframed && rs.last_end_ns < quiet_before_ns {
            let body = rs.body_size();
            let end = rs.last_end_ns;
            rs.state = State::Idle;
            if let Some(r) = self.response.take() {
                out.push(self.operation(r, end, body, None));
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
    !matches!(head::parse(vis), Parse::NotHttp | Parse::NeedMore)
}

pub(crate) fn captured_headers(head: &Head<'_>) -> Vec<(Box<str>, Box<str>)> {
    head.headers()
        .take(MAX_CAPTURED_HEADERS)
        .map(|(n, v)| {
            let name = String::from_utf8_lossy(n).to_ascii_lowercase();
            let v = &v[..v.len().min(MAX_HEADER_VALUE)];
            (name.into(), String::from_utf8_lossy(v).into())
        })
        .collect()
}

impl ProtocolParser for Http1Parser {
    fn protocol(&self) -> Protocol {
        Protocol::Http1
    }

    /// Never fails: bytes that are not HTTP/1.x make the direction resync on a later head.
    fn feed(&mut self, seg: &Segment<'_>, out: &mut Vec<Operation>) -> Result<(), ParseError> {
        Http1Parser::feed(self, seg, out);
        Ok(())
    }

    fn close(&mut self, end_ns: u64, out: &mut Vec<Operation>) {
        Http1Parser::close(self, end_ns, out);
    }

    fn stats(&self) -> ParserStats {
        self.stats
    }
}

#[cfg(test)]
mod tests;
