//! Redis: RESP2 and RESP3, both directions, as streams of values.
//!
//! A command is a top-level array whose first bulk string is its name (or an inline command
//! line); replies match commands in order, so pipelines (many commands in one write) work.
//! Bulk payloads are skipped by their declared length, whether captured or not. Error replies
//! (`-ERR ...`, `!n`) give `error.type` = the error's first word (`ERR`, `WRONGTYPE`).
//! RESP3 push values (`>`) are out-of-band and never match a command. Keys are never reported.

use std::collections::VecDeque;

use crate::*;

pub const SPEC: ProtocolSpec = ProtocolSpec {
    protocol: Protocol::Redis,
    name: "redis",
    detect: Some(|client, server| {
        // a server that speaks first is answered before anything was seen from the client
        detect_score(client).max(if client.is_empty() {
            detect_reply_score(server)
        } else {
            0
        })
    }),
    ports: &[6379, 6380, 26379],
    new_parser: Some(|_| Box::new(RedisParser::new())),
    conventions: conventions::DATABASE,
};

const MAX_LINE: usize = 512;
/// Not an error of the bytes: framing fell beyond the captured prefix.
const LOST: ParseError = ParseError {
    protocol: Protocol::Redis,
    reason: "a line beyond the captured bytes",
};
const MAX_DEPTH: usize = 32;
const MAX_NAME: usize = 32;
/// Largest bulk string Redis accepts (`proto-max-bulk-len` can raise it; 4 GiB is plenty).
const MAX_BULK: i64 = 1 << 32;

#[derive(Debug)]
struct Pending {
    seq: u64,
    name: Str,
    start_ns: u64,
    size: u64,
}

#[derive(Debug, Default)]
struct Resp {
    /// Remaining child values of each open aggregate.
    stack: Vec<i64>,
    /// Bulk bytes (payload + CRLF) still to come, and of those, payload bytes.
    bulk: u64,
    bulk_payload: u64,
    capture_bulk: bool,
    /// A line split across segments.
    line: Vec<u8>,
    line_start_ns: u64,
    /// A top-level value is open.
    open: bool,
    start_ns: u64,
    size: u64,
    /// Request side: the command name. Response side: the error's first word.
    word: Vec<u8>,
    is_error: bool,
    is_push: bool,
    /// Child count of the open top-level array (request side, for the name).
    top_len: i64,
    lost: bool,
}

impl Resp {
    fn reset(&mut self) {
        self.stack.clear();
        self.bulk = 0;
        self.bulk_payload = 0;
        self.capture_bulk = false;
        self.line.clear();
        self.open = false;
        self.size = 0;
        self.word.clear();
        self.is_error = false;
        self.is_push = false;
    }
}

/// A finished top-level value.
struct Value {
    start_ns: u64,
    size: u64,
    word_is_name: bool,
}

pub struct RedisParser {
    streams: [Resp; 2],
    pending: VecDeque<Pending>,
    next_seq: u64,
    /// After the reply side lost track, replies are only trusted again for commands sent after.
    trust_from_seq: u64,
    stats: ParserStats,
}

impl Default for RedisParser {
    fn default() -> Self {
        Self::new()
    }
}

impl RedisParser {
    pub fn new() -> Self {
        RedisParser {
            streams: Default::default(),
            pending: VecDeque::new(),
            next_seq: 0,
            trust_from_seq: 0,
            stats: ParserStats::default(),
        }
    }

    fn err(reason: &'static str) -> ParseError {
        ParseError::new(Protocol::Redis, reason)
    }

    fn on_value(&mut self, dir: Dir, s: &Resp, v: Value, end_ns: u64, out: &mut Vec<Operation>) {
        match dir {
            Dir::ClientToServer => {
                if !v.word_is_name {
                    return;
                }
                if self.pending.len() >= MAX_PENDING {
                    self.pending.pop_front();
                    self.stats.pending_dropped += 1;
                }
                let seq = self.next_seq;
                self.next_seq += 1;
                self.pending.push_back(Pending {
                    seq,
                    name: command_name(&s.word),
                    start_ns: v.start_ns,
                    size: v.size,
                });
            }
            Dir::ServerToClient => {
                if s.is_push {
                    return;
                }
                let Some(p) = self.pending.pop_front() else {
                    return;
                };
                let mut op = Operation::new(Protocol::Redis, p.name, p.start_ns);
                op.end_ns = end_ns.max(p.start_ns);
                op.request_size = p.size;
                op.response_size = v.size;
                if s.is_error {
                    op.status = Status::Error;
                    op.error = Some(error_type(&s.word));
                } else {
                    op.status = Status::Ok;
                }
                out.push(op);
            }
        }
    }

    /// The reply side lost track: the command whose reply was open ends now; replies to the
    /// others can no longer be told apart, so they end unknown.
    fn reply_lost(&mut self, end_ns: u64, open: bool, out: &mut Vec<Operation>) {
        self.stats.resyncs += 1;
        if open {
            if let Some(p) = self.pending.pop_front() {
                let mut op = Operation::new(Protocol::Redis, p.name, p.start_ns);
                op.end_ns = end_ns.max(p.start_ns);
                op.request_size = p.size;
                op.status = Status::Ok;
                out.push(op);
            }
        }
        for p in self.pending.drain(..) {
            let mut op = Operation::new(Protocol::Redis, p.name, p.start_ns);
            op.end_ns = end_ns.max(p.start_ns);
            op.request_size = p.size;
            out.push(op);
        }
        self.trust_from_seq = self.next_seq;
    }

    fn feed_dir(&mut self, seg: &Segment<'_>, out: &mut Vec<Operation>) -> Result<(), ParseError> {
        let dir = seg.dir;
        let mut s = std::mem::take(&mut self.streams[dir.index()]);
        let mut r = self.scan(&mut s, seg, out);
        if r.is_err() {
            let open = s.open;
            s.reset();
            s.lost = true;
            if dir == Dir::ServerToClient {
                self.reply_lost(seg.end_ns, open, out);
            } else {
                self.stats.resyncs += 1;
            }
            if r.as_ref().err() == Some(&LOST) {
                r = Ok(());
            }
        }
        self.streams[dir.index()] = s;
        r
    }

    fn scan(
        &mut self,
        s: &mut Resp,
        seg: &Segment<'_>,
        out: &mut Vec<Operation>,
    ) -> Result<(), ParseError> {
        let vis = seg.visible();
        let total = seg.total_len;
        let dir = seg.dir;
        if s.lost {
            if dir == Dir::ServerToClient
                && self
                    .pending
                    .front()
                    .is_none_or(|p| p.seq < self.trust_from_seq)
            {
                return Ok(()); // wait for a command sent after the loss
            }
            s.reset();
            s.lost = false;
        }
        let mut pos: u64 = 0;
        while pos < total {
            if s.bulk > 0 {
                let n = s.bulk.min(total - pos);
                if s.capture_bulk {
                    let p = (pos as usize).min(vis.len());
                    let payload = n.min(s.bulk_payload) as usize;
                    let avail = vis.len().saturating_sub(p).min(payload);
                    let room = MAX_NAME.saturating_sub(s.word.len());
                    s.word.extend_from_slice(&vis[p..p + avail.min(room)]);
                    if avail < payload && s.word.len() < MAX_NAME {
                        s.capture_bulk = false; // not captured: the name is unknown
                        s.word.clear();
                    }
                }
                s.bulk_payload = s.bulk_payload.saturating_sub(n);
                s.bulk -= n;
                s.size += n;
                pos += n;
                if s.bulk == 0 {
                    s.capture_bulk = false;
                    self.value_done(s, dir, seg.end_ns, out);
                }
                continue;
            }
            let p = pos as usize;
            if p >= vis.len() {
                return Err(LOST);
            }
            let rest = &vis[p..];
            if s.line.is_empty() && !valid_start(dir, s.open, rest[0]) {
                // rejected at once, not when a line end finally shows up
                return Err(Self::err("not a RESP value"));
            }
            let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
                if (vis.len() as u64) < total {
                    return Err(LOST);
                }
                if s.line.is_empty() {
                    s.line_start_ns = seg.start_ns;
                }
                let room = MAX_LINE.saturating_sub(s.line.len());
                if rest.len() > room {
                    return Err(Self::err("line too long"));
                }
                s.line.extend_from_slice(rest);
                return Ok(());
            };
            let line_start_ns = if s.line.is_empty() {
                seg.start_ns
            } else {
                s.line_start_ns
            };
            let consumed = nl as u64 + 1;
            pos += consumed;
            let mut line = std::mem::take(&mut s.line);
            let r = if line.is_empty() {
                let l = &rest[..nl];
                self.line(s, dir, l, consumed, line_start_ns, seg.end_ns, out)
            } else {
                if line.len() + nl > MAX_LINE {
                    return Err(Self::err("line too long"));
                }
                line.extend_from_slice(&rest[..nl]);
                let c = consumed + (line.len() - nl) as u64;
                let r = self.line(s, dir, &line, c, line_start_ns, seg.end_ns, out);
                line.clear();
                r
            };
            s.line = line;
            r?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn line(
        &mut self,
        s: &mut Resp,
        dir: Dir,
        line: &[u8],
        consumed: u64,
        start_ns: u64,
        end_ns: u64,
        out: &mut Vec<Operation>,
    ) -> Result<(), ParseError> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let top = !s.open;
        if top {
            s.open = true;
            s.start_ns = start_ns;
            s.size = 0;
            s.word.clear();
            s.is_error = false;
            s.is_push = false;
        }
        s.size += consumed;
        let Some(&kind) = line.first() else {
            if top && dir == Dir::ClientToServer {
                s.open = false; // an empty inline line is ignored by Redis
                return Ok(());
            }
            return Err(Self::err("empty line"));
        };
        let body = &line[1..];
        match kind {
            b'+' | b':' | b',' | b'#' | b'(' | b'_' => {
                if top && dir == Dir::ClientToServer {
                    return Err(Self::err("a reply where a command was expected"));
                }
                self.value_done(s, dir, end_ns, out);
            }
            b'-' => {
                if top {
                    if dir == Dir::ClientToServer {
                        return Err(Self::err("a reply where a command was expected"));
                    }
                    s.is_error = true;
                    let w = body.split(|&b| b == b' ').next().unwrap_or(&[]);
                    s.word.extend_from_slice(&w[..w.len().min(MAX_NAME)]);
                }
                self.value_done(s, dir, end_ns, out);
            }
            b'$' | b'!' | b'=' => {
                let n = parse_int(body).ok_or_else(|| Self::err("bad bulk length"))?;
                if n < 0 {
                    if n != -1 {
                        return Err(Self::err("bad bulk length"));
                    }
                    self.value_done(s, dir, end_ns, out);
                    return Ok(());
                }
                if n > MAX_BULK {
                    return Err(Self::err("bulk too large"));
                }
                if top && kind == b'!' {
                    s.is_error = true;
                }
                if top && dir == Dir::ClientToServer {
                    return Err(Self::err("a bulk string where a command was expected"));
                }
                let first_of_command = dir == Dir::ClientToServer
                    && s.stack.len() == 1
                    && s.stack[0] == s.top_len
                    && s.word.is_empty();
                s.capture_bulk = first_of_command || (top && kind == b'!');
                s.bulk = n as u64 + 2;
                s.bulk_payload = n as u64;
            }
            b'*' | b'~' | b'>' | b'%' | b'|' => {
                let n = parse_int(body).ok_or_else(|| Self::err("bad aggregate length"))?;
                if dir == Dir::ClientToServer && (kind != b'*' || !top && !s.stack.is_empty()) {
                    return Err(Self::err("nested aggregate in a command"));
                }
                if top && kind == b'>' {
                    s.is_push = true;
                }
                if n < 0 {
                    if n != -1 {
                        return Err(Self::err("bad aggregate length"));
                    }
                    self.value_done(s, dir, end_ns, out);
                    return Ok(());
                }
                if n > 1 << 31 {
                    return Err(Self::err("aggregate too large"));
                }
                let children = match kind {
                    b'%' => n * 2,
                    b'|' => n * 2 + 1, // an attribute precedes the value it annotates
                    _ => n,
                };
                if children == 0 {
                    self.value_done(s, dir, end_ns, out);
                    return Ok(());
                }
                if s.stack.len() >= MAX_DEPTH {
                    return Err(Self::err("nested too deep"));
                }
                if top {
                    s.top_len = children;
                }
                s.stack.push(children);
            }
            b'?' => return Err(Self::err("streamed values are not followed")),
            _ if top && dir == Dir::ClientToServer => {
                // an inline command: `PING`, `SET k v`
                if !line
                    .iter()
                    .all(|b| b.is_ascii_graphic() || *b == b' ' || *b == b'\t')
                {
                    return Err(Self::err("not an inline command"));
                }
                let w = line.split(|&b| b == b' ').next().unwrap_or(&[]);
                if !w.iter().all(|b| b.is_ascii_alphabetic()) {
                    return Err(Self::err("not an inline command"));
                }
                s.word.extend_from_slice(&w[..w.len().min(MAX_NAME)]);
                self.value_done(s, dir, end_ns, out);
            }
            _ => return Err(Self::err("unknown type byte")),
        }
        Ok(())
    }

    fn value_done(&mut self, s: &mut Resp, dir: Dir, end_ns: u64, out: &mut Vec<Operation>) {
        while let Some(top) = s.stack.last_mut() {
            *top -= 1;
            if *top > 0 {
                return;
            }
            s.stack.pop();
        }
        s.open = false;
        let v = Value {
            start_ns: s.start_ns,
            size: s.size,
            word_is_name: !s.word.is_empty(),
        };
        self.on_value(dir, s, v, end_ns, out);
    }
}

impl ProtocolParser for RedisParser {
    fn protocol(&self) -> Protocol {
        Protocol::Redis
    }

    fn feed(&mut self, seg: &Segment<'_>, out: &mut Vec<Operation>) -> Result<(), ParseError> {
        if seg.total_len == 0 {
            return Ok(());
        }
        self.feed_dir(seg, out)
    }

    fn close(&mut self, end_ns: u64, out: &mut Vec<Operation>) {
        for p in self.pending.drain(..) {
            let mut op = Operation::new(Protocol::Redis, p.name, p.start_ns);
            op.end_ns = end_ns.max(p.start_ns);
            op.request_size = p.size;
            op.error = Some(ERROR_NO_RESPONSE.into());
            out.push(op);
        }
    }

    fn stats(&self) -> ParserStats {
        self.stats
    }
}

/// Whether `b` can begin a line at this point of the stream.
fn valid_start(dir: Dir, open: bool, b: u8) -> bool {
    const TYPES: &[u8] = b"+-:$*_,#!=(%~>|";
    match (dir, open) {
        (Dir::ClientToServer, false) => {
            b == b'*' || b.is_ascii_alphabetic() || b == b'\r' || b == b'\n'
        }
        (Dir::ClientToServer, true) => b == b'$',
        (Dir::ServerToClient, _) => TYPES.contains(&b),
    }
}

fn parse_int(b: &[u8]) -> Option<i64> {
    if b.is_empty() || b.len() > 20 {
        return None;
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}

const COMMON: &[&str] = &[
    "GET",
    "SET",
    "DEL",
    "INCR",
    "DECR",
    "INCRBY",
    "MGET",
    "MSET",
    "EXISTS",
    "EXPIRE",
    "TTL",
    "PING",
    "LPUSH",
    "RPUSH",
    "LPOP",
    "RPOP",
    "LRANGE",
    "LLEN",
    "SADD",
    "SPOP",
    "SREM",
    "SMEMBERS",
    "HSET",
    "HGET",
    "HGETALL",
    "HDEL",
    "HINCRBY",
    "ZADD",
    "ZRANGE",
    "ZPOPMIN",
    "ZREM",
    "ZSCORE",
    "SETEX",
    "SETNX",
    "GETSET",
    "APPEND",
    "KEYS",
    "SCAN",
    "INFO",
    "CONFIG",
    "CLIENT",
    "AUTH",
    "SELECT",
    "HELLO",
    "MULTI",
    "EXEC",
    "DISCARD",
    "WATCH",
    "EVAL",
    "EVALSHA",
    "PUBLISH",
    "SUBSCRIBE",
    "XADD",
    "XREAD",
    "XRANGE",
    "FLUSHALL",
    "FLUSHDB",
    "DBSIZE",
    "TYPE",
    "UNLINK",
    "QUIT",
    "COMMAND",
];

/// The command's name, upper case; only letters, digits, `_`, `.` and `-` (module commands
/// like `JSON.GET`), at most 32 characters.
fn command_name(word: &[u8]) -> Str {
    if let Some(c) = COMMON
        .iter()
        .find(|c| c.as_bytes().eq_ignore_ascii_case(word))
    {
        return Str::Borrowed(c);
    }
    let s: String = word
        .iter()
        .take(MAX_NAME)
        .map(|&b| {
            if b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-' {
                b.to_ascii_uppercase() as char
            } else {
                '?'
            }
        })
        .collect();
    Str::Owned(s)
}

fn error_type(word: &[u8]) -> Str {
    for e in [
        "ERR",
        "WRONGTYPE",
        "NOAUTH",
        "NOSCRIPT",
        "MOVED",
        "ASK",
        "BUSY",
        "LOADING",
        "OOM",
        "READONLY",
        "EXECABORT",
        "NOPERM",
        "WRONGPASS",
    ] {
        if e.as_bytes() == word {
            return Str::Borrowed(e);
        }
    }
    command_name(word)
}

/// 3: a RESP array of bulk strings; 1: could be an inline command.
fn detect_score(c: &[u8]) -> u8 {
    if c.len() >= 4 && c[0] == b'*' && c[1].is_ascii_digit() {
        let nl = c.iter().position(|&b| b == b'\n');
        return match nl {
            Some(i)
                if i >= 3
                    && c[i - 1] == b'\r'
                    && c[1..i - 1].iter().all(u8::is_ascii_digit)
                    && c.get(i + 1).is_none_or(|&b| b == b'$') =>
            {
                3
            }
            None if c[1..].iter().all(u8::is_ascii_digit) => 2,
            _ => 0,
        };
    }
    if let Some(i) = c.windows(2).position(|w| w == b"\r\n") {
        let w = c[..i].split(|&b| b == b' ').next().unwrap_or(&[]);
        if !w.is_empty()
            && w.len() <= 16
            && w.iter().all(u8::is_ascii_alphabetic)
            && c[..i].iter().all(|b| b.is_ascii_graphic() || *b == b' ')
        {
            return 1;
        }
    }
    0
}

/// A server's first bytes that look like a RESP reply.
fn detect_reply_score(s: &[u8]) -> u8 {
    match s.first() {
        Some(b'+' | b'-' | b':' | b'$' | b'*' | b'%' | b'_' | b'>') => {
            match s.iter().position(|&b| b == b'\n') {
                Some(i) if i >= 2 && s[i - 1] == b'\r' => 2,
                _ => 0,
            }
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(dir: Dir, data: &[u8], t: u64) -> Segment<'_> {
        Segment {
            dir,
            data,
            total_len: data.len() as u64,
            start_ns: t,
            end_ns: t + 5,
        }
    }

    #[test]
    fn pipeline_and_errors() {
        let mut p = RedisParser::new();
        let mut out = Vec::new();
        let req = b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n*2\r\n$3\r\nget\r\n$3\r\nkey\r\n*1\r\n$4\r\nLPOP\r\nPING\r\n";
        p.feed(&seg(Dir::ClientToServer, req, 10), &mut out)
            .unwrap();
        assert!(out.is_empty());
        let rep = b"+OK\r\n$5\r\nvalue\r\n-WRONGTYPE Operation against a key\r\n";
        p.feed(&seg(Dir::ServerToClient, rep, 20), &mut out)
            .unwrap();
        p.feed(&seg(Dir::ServerToClient, b"+PONG\r\n", 30), &mut out)
            .unwrap();
        let names: Vec<_> = out.iter().map(|o| o.name.as_ref()).collect();
        assert_eq!(names, ["SET", "GET", "LPOP", "PING"]);
        assert_eq!(out[0].request_size, 33);
        assert_eq!(out[1].response_size, 11);
        assert_eq!(out[2].status, Status::Error);
        assert_eq!(out[2].error.as_deref(), Some("WRONGTYPE"));
        assert_eq!((out[3].start_ns, out[3].end_ns), (10, 35));
    }

    #[test]
    fn resp3_aggregates_and_uncaptured_bulks() {
        let mut p = RedisParser::new();
        let mut out = Vec::new();
        // HGETALL with a 100000-byte value, captured prefix only
        p.feed(
            &seg(
                Dir::ClientToServer,
                b"*2\r\n$7\r\nHGETALL\r\n$1\r\nh\r\n",
                1,
            ),
            &mut out,
        )
        .unwrap();
        let head = b"|1\r\n+ttl\r\n:3\r\n%1\r\n$1\r\nf\r\n$100000\r\nxxxx";
        let total = head.len() as u64 - 4 + 100_002;
        p.feed(
            &Segment {
                dir: Dir::ServerToClient,
                data: head,
                total_len: total,
                start_ns: 2,
                end_ns: 3,
            },
            &mut out,
        )
        .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].response_size, total);
        assert_eq!(out[0].status, Status::Ok);
        // a push in between is not a reply
        p.feed(
            &seg(Dir::ClientToServer, b"*1\r\n$4\r\nPING\r\n", 4),
            &mut out,
        )
        .unwrap();
        p.feed(
            &seg(
                Dir::ServerToClient,
                b">2\r\n$7\r\nmessage\r\n$1\r\nx\r\n+PONG\r\n",
                5,
            ),
            &mut out,
        )
        .unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].name, "PING");
    }

    #[test]
    fn split_lines_and_bulks_across_segments() {
        let mut p = RedisParser::new();
        let mut out = Vec::new();
        let req = b"*2\r\n$3\r\nGET\r\n$3\r\nabc\r\n";
        for (i, chunk) in req.chunks(3).enumerate() {
            p.feed(&seg(Dir::ClientToServer, chunk, i as u64), &mut out)
                .unwrap();
        }
        let rep = b"$3\r\nxyz\r\n";
        for (i, chunk) in rep.chunks(2).enumerate() {
            p.feed(&seg(Dir::ServerToClient, chunk, 100 + i as u64), &mut out)
                .unwrap();
        }
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].name, "GET");
        assert_eq!(
            (out[0].request_size, out[0].response_size),
            (req.len() as u64, rep.len() as u64)
        );
    }

    #[test]
    fn not_redis() {
        let mut p = RedisParser::new();
        let mut out = Vec::new();
        assert!(p
            .feed(
                &seg(Dir::ClientToServer, b"\x16\x03\x01\x00\xa5\x01\x00\r\n", 1),
                &mut out
            )
            .is_err());
        assert!(p
            .feed(
                &seg(Dir::ServerToClient, b"HTTP/1.1 200 OK\r\n", 1),
                &mut out
            )
            .is_err());
    }
}
