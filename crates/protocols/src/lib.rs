//! Layer-7 protocols other than HTTP/1.x, parsed from the captured prefixes of a connection's
//! reads and writes: HTTP/2 (+ gRPC), Redis, PostgreSQL, MySQL/MariaDB and Kafka.
//!
//! Every parser has the same shape ([`ProtocolParser`]): it is fed one syscall's worth of one
//! direction at a time ([`Segment`]) and emits finished request/response exchanges
//! ([`Operation`]). A [`Session`] sits in front of them, one per connection: it [`detect`]s the
//! candidate protocols from the first bytes (ports are only a hint), feeds the first candidate,
//! and falls back to the next one (replaying the first few segments) while the current parser
//! rejects the bytes and has not yet produced anything.
//!
//! What all parsers promise, on any input:
//! - no panics, and memory bounded per connection (partial frames are buffered up to a fixed
//!   size; pending requests, prepared statements, streams and correlation ids are capped);
//! - sizes come from length fields and [`Segment::total_len`], never from the captured bytes:
//!   a 1 MiB Kafka produce or DATA frame is skipped by its length even when only its first 256
//!   bytes were captured;
//! - when bytes that carry framing are not visible (a frame header beyond the captured prefix),
//!   the direction is "lost" and resynchronises at the start of a later segment.
//!
//! Timestamps: an operation starts at [`Segment::start_ns`] of the segment that carried the
//! first byte of its request, and ends at [`Segment::end_ns`] of the segment that carried the
//! last byte of its response. On the server side of a connection, pass the read's exit time as
//! `start_ns` (a blocking read starts long before its request arrives).

pub mod frame;
pub mod hpack;
pub mod http2;
pub mod kafka;
pub mod mysql;
pub mod postgres;
pub mod redis;
pub mod sql;

use std::borrow::Cow;
use std::fmt;

/// Text that is usually a constant (`"SELECT"`, `"send"`) and sometimes not (`"HGETALL"`).
pub type Str = Cow<'static, str>;

/// Requests waiting for their response on one connection; beyond it the oldest is dropped.
pub const MAX_PENDING: usize = 256;

/// Which way bytes flow on the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dir {
    /// Requests: client to server.
    ClientToServer = 0,
    /// Responses: server to client.
    ServerToClient = 1,
}

impl Dir {
    pub fn index(self) -> usize {
        self as usize
    }
}

/// One syscall's worth of bytes of one direction of a connection.
#[derive(Clone, Copy, Debug)]
pub struct Segment<'a> {
    pub dir: Dir,
    /// The captured prefix of what the syscall moved (possibly shorter, possibly empty).
    pub data: &'a [u8],
    /// Bytes the syscall moved (its return value). Bytes of `data` beyond it are ignored.
    pub total_len: u64,
    /// CLOCK_MONOTONIC ns at syscall enter and exit.
    pub start_ns: u64,
    pub end_ns: u64,
}

impl<'a> Segment<'a> {
    /// The captured bytes that belong to this syscall.
    pub fn visible(&self) -> &'a [u8] {
        let n = (self.data.len() as u64).min(self.total_len) as usize;
        &self.data[..n]
    }
}

/// The protocols [`detect`] can name. `Http1` is detected so that the caller can route the
/// connection to its own HTTP/1.x tracker; it has no parser here. `Grpc` is never detected: it
/// is HTTP/2 whose operations carry `content-type: application/grpc`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Http1,
    Http2,
    Grpc,
    Redis,
    Postgres,
    Mysql,
    Kafka,
}

impl Protocol {
    /// The name used in attributes (`db.system.name`, `messaging.system`, `network.protocol.name`).
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http1 => "http",
            Protocol::Http2 => "http2",
            Protocol::Grpc => "grpc",
            Protocol::Redis => "redis",
            Protocol::Postgres => "postgresql",
            Protocol::Mysql => "mysql",
            Protocol::Kafka => "kafka",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// A success reply (Redis, SQL, Kafka error code 0).
    Ok,
    /// An error reply; [`Operation::error`] names it.
    Error,
    /// A plain HTTP/2 response's `:status`.
    Http(u16),
    /// A gRPC status code (`grpc-status`, 0 = OK).
    Grpc(u32),
    /// No reply was seen (connection closed, reset stream, lost track of the response).
    Unknown,
}

/// One finished request/response exchange.
#[derive(Clone, Debug, PartialEq)]
pub struct Operation {
    pub protocol: Protocol,
    pub start_ns: u64,
    pub end_ns: u64,
    /// `db.operation.name` (GET, SELECT), `messaging.operation.name` (send, receive), the HTTP
    /// method, or the gRPC method `package.Service/Method`.
    pub name: Str,
    /// `db.collection.name` (main table), `messaging.destination.name` (topic), or the HTTP/2
    /// `:path`. None when not known (or key-like: Redis keys are never reported).
    pub target: Option<Str>,
    pub status: Status,
    /// `error.type`: SQLSTATE, MySQL error number, Redis error prefix, Kafka error name, gRPC
    /// status name, or a connection-level reason.
    pub error: Option<Str>,
    /// Bytes of the request and the response, from length fields and syscall sizes.
    pub request_size: u64,
    pub response_size: u64,
    /// The query with every literal replaced by `?`; only with [`ParserConfig::query_text`].
    pub query_text: Option<String>,
}

impl Operation {
    fn new(protocol: Protocol, name: Str, start_ns: u64) -> Self {
        Operation {
            protocol,
            start_ns,
            end_ns: start_ns,
            name,
            target: None,
            status: Status::Unknown,
            error: None,
            request_size: 0,
            response_size: 0,
            query_text: None,
        }
    }
}

/// `error.type` of a request whose response never came (connection closed, stream lost).
pub const ERROR_NO_RESPONSE: &str = "no_response";

/// `error.type` of a response that began but whose end was not seen before the connection
/// closed (the same value as the HTTP/1.x tracker's).
pub const ERROR_INCOMPLETE: &str = "response_incomplete";

/// The bytes are not this protocol (or not at a position where it can be read).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub protocol: Protocol,
    pub reason: &'static str,
}

impl ParseError {
    pub fn new(protocol: Protocol, reason: &'static str) -> Self {
        ParseError { protocol, reason }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not {}: {}", self.protocol, self.reason)
    }
}

impl std::error::Error for ParseError {}

/// What parsers may keep.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ParserConfig {
    /// Keep the sanitized query text of SQL operations (opt-in: even sanitized, it reveals the
    /// schema).
    pub query_text: bool,
}

/// The shape every protocol parser has.
pub trait ProtocolParser: Send {
    fn protocol(&self) -> Protocol;

    /// Feeds one segment. Emits the operations it completes. An error means the bytes are not
    /// this protocol; the parser stays usable (it resynchronises on a later segment), and a
    /// [`Session`] uses the error to fall back to the next candidate.
    fn feed(&mut self, seg: &Segment<'_>, out: &mut Vec<Operation>) -> Result<(), ParseError>;

    /// The connection closed at `end_ns`: requests still waiting end with
    /// [`Status::Unknown`] and [`ERROR_NO_RESPONSE`].
    fn close(&mut self, end_ns: u64, out: &mut Vec<Operation>);

    /// Counters of what this parser had to give up.
    fn stats(&self) -> ParserStats;
}

/// What a parser dropped to stay bounded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ParserStats {
    /// Requests dropped because [`MAX_PENDING`] (or a stream/correlation table) was full.
    pub pending_dropped: u64,
    /// Times a direction lost track of the framing (framing bytes not captured, garbage).
    pub resyncs: u64,
}

/// A new parser for `protocol` (None for HTTP/1.x and gRPC, which have no parser here).
pub fn new_parser(protocol: Protocol, config: ParserConfig) -> Option<Box<dyn ProtocolParser>> {
    Some(match protocol {
        Protocol::Http2 => Box::new(http2::Http2Parser::new()),
        Protocol::Redis => Box::new(redis::RedisParser::new()),
        Protocol::Postgres => Box::new(postgres::PostgresParser::new(config)),
        Protocol::Mysql => Box::new(mysql::MysqlParser::new(config)),
        Protocol::Kafka => Box::new(kafka::KafkaParser::new()),
        Protocol::Http1 | Protocol::Grpc => return None,
    })
}

const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Candidate protocols of a connection, most likely first, from the first bytes the client
/// sent (empty when none seen yet), the first bytes the server sent (MySQL servers speak
/// first), and the server's port (only a tie-breaker). Empty when nothing fits.
pub fn detect(first_client: &[u8], first_server: Option<&[u8]>, server_port: u16) -> Vec<Protocol> {
    // (score, protocol): 3 = a signature only this protocol has, 2 = well-formed, 1 = port only
    let mut scored: Vec<(u8, Protocol)> = Vec::with_capacity(6);
    let server = first_server.unwrap_or(&[]);
    let c = first_client;
    let mut add = |score: u8, p: Protocol| {
        if score > 0 {
            scored.push((score, p));
        }
    };

    // HTTP/2: the preface (or part of it), or a server SETTINGS frame.
    let h2 = if !c.is_empty() && (c.starts_with(HTTP2_PREFACE) || HTTP2_PREFACE.starts_with(c)) {
        3
    } else if server.len() >= 9 && server[3] == 4 && server[4] & !1 == 0 && server[5..9] == [0; 4] {
        2
    } else if (!c.is_empty() && http2::plausible_frames(c))
        || (c.is_empty() && http2::plausible_frames(server))
    {
        1
    } else {
        0
    };
    add(h2, Protocol::Http2);

    // HTTP/1.x: a method and a space, or a status line.
    let h1 = if c.len() >= 4 && looks_http1_request(c) || server.starts_with(b"HTTP/1.") {
        3
    } else {
        0
    };
    add(h1, Protocol::Http1);

    add(
        redis::detect_score(c).max(if c.is_empty() {
            redis::detect_reply_score(server)
        } else {
            0
        }),
        Protocol::Redis,
    );
    add(postgres::detect_score(c, server), Protocol::Postgres);
    add(mysql::detect_score(c, server), Protocol::Mysql);
    add(kafka::detect_score(c), Protocol::Kafka);

    let hinted = port_hint(server_port);
    for (score, p) in scored.iter_mut() {
        if Some(*p) == hinted {
            // the port breaks ties, never overrides a signature
            *score = score.saturating_mul(2).saturating_add(1);
        } else {
            *score = score.saturating_mul(2);
        }
    }
    if let Some(p) = hinted {
        if !scored.iter().any(|(_, q)| *q == p) && c.is_empty() && server.is_empty() {
            scored.push((1, p));
        }
    }
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    scored.into_iter().map(|(_, p)| p).collect()
}

fn looks_http1_request(c: &[u8]) -> bool {
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
    METHODS.iter().any(|m| c.starts_with(m))
}

fn port_hint(port: u16) -> Option<Protocol> {
    match port {
        6379 | 6380 | 26379 => Some(Protocol::Redis),
        5432 | 5433 | 6432 => Some(Protocol::Postgres),
        3306 | 3307 | 4000 => Some(Protocol::Mysql),
        9092 | 9093 | 9094 | 29092 => Some(Protocol::Kafka),
        50051 | 8443 | 4317 => Some(Protocol::Http2),
        _ => None,
    }
}

/// Segments kept for replay while the protocol is not yet confirmed.
const REPLAY_SEGMENTS: usize = 8;
const REPLAY_BYTES: usize = 8 * 1024;

struct Replayed {
    dir: Dir,
    data: Vec<u8>,
    total_len: u64,
    start_ns: u64,
    end_ns: u64,
}

/// The L7 state of one connection: detection (cached), the current parser, and fallback.
pub struct Session {
    config: ParserConfig,
    server_port: u16,
    state: SessionState,
    /// Candidates not tried yet, most likely first.
    candidates: Vec<Protocol>,
    parser: Option<Box<dyn ProtocolParser>>,
    /// The current parser produced an operation: its errors no longer trigger a fallback.
    confirmed: bool,
    replay: Vec<Replayed>,
    replay_bytes: usize,
    replay_overflow: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SessionState {
    /// No bytes yet.
    New,
    /// A parser (or HTTP/1.x) is chosen.
    Active(Protocol),
    /// Every candidate failed: the connection is ignored.
    Unknown,
}

impl Session {
    pub fn new(server_port: u16, config: ParserConfig) -> Self {
        Session {
            config,
            server_port,
            state: SessionState::New,
            candidates: Vec::new(),
            parser: None,
            confirmed: false,
            replay: Vec::new(),
            replay_bytes: 0,
            replay_overflow: false,
        }
    }

    /// A session that tries `candidates` in order instead of detecting (the caller knows
    /// better, e.g. from configuration).
    pub fn with_candidates(mut candidates: Vec<Protocol>, config: ParserConfig) -> Self {
        let mut s = Session::new(0, config);
        candidates.reverse();
        s.candidates = candidates;
        s.next_candidate();
        s
    }

    /// The protocol currently assumed (None before the first bytes and once all failed).
    /// `Some(Http1)` means: route this connection to the HTTP/1.x tracker.
    pub fn protocol(&self) -> Option<Protocol> {
        match self.state {
            SessionState::Active(p) => Some(p),
            _ => None,
        }
    }

    /// True once no candidate fits: the caller may stop sending this connection's events.
    pub fn is_unknown(&self) -> bool {
        self.state == SessionState::Unknown
    }

    pub fn stats(&self) -> ParserStats {
        self.parser.as_ref().map(|p| p.stats()).unwrap_or_default()
    }

    pub fn feed(&mut self, seg: &Segment<'_>, out: &mut Vec<Operation>) {
        if seg.total_len == 0 {
            return;
        }
        if self.state == SessionState::New {
            let vis = seg.visible();
            self.candidates = match seg.dir {
                Dir::ClientToServer => detect(vis, None, self.server_port),
                Dir::ServerToClient => detect(&[], Some(vis), self.server_port),
            };
            self.candidates.reverse(); // pop() takes the most likely
            if !self.next_candidate() {
                return;
            }
        }
        let SessionState::Active(_) = self.state else {
            return;
        };
        if !self.confirmed {
            self.remember(seg);
        }
        let Some(parser) = self.parser.as_mut() else {
            return;
        };
        let before = out.len();
        match parser.feed(seg, out) {
            Ok(()) => {
                if out.len() > before {
                    self.confirmed = true;
                    self.replay.clear();
                }
            }
            Err(_) if self.confirmed => {}
            Err(_) => {
                out.truncate(before);
                self.fall_back(out);
            }
        }
    }

    /// The connection closed.
    pub fn close(&mut self, end_ns: u64, out: &mut Vec<Operation>) {
        if let Some(p) = self.parser.as_mut() {
            p.close(end_ns, out);
        }
    }

    fn next_candidate(&mut self) -> bool {
        while let Some(p) = self.candidates.pop() {
            if p == Protocol::Http1 {
                self.state = SessionState::Active(p);
                self.parser = None;
                return true;
            }
            if let Some(parser) = new_parser(p, self.config) {
                self.state = SessionState::Active(p);
                self.parser = Some(parser);
                self.confirmed = false;
                return true;
            }
        }
        self.state = SessionState::Unknown;
        self.parser = None;
        self.replay = Vec::new();
        false
    }

    fn remember(&mut self, seg: &Segment<'_>) {
        let vis = seg.visible();
        if self.replay.len() >= REPLAY_SEGMENTS || self.replay_bytes + vis.len() > REPLAY_BYTES {
            self.replay_overflow = true;
            return;
        }
        self.replay_bytes += vis.len();
        self.replay.push(Replayed {
            dir: seg.dir,
            data: vis.to_vec(),
            total_len: seg.total_len,
            start_ns: seg.start_ns,
            end_ns: seg.end_ns,
        });
    }

    fn fall_back(&mut self, out: &mut Vec<Operation>) {
        let replay = std::mem::take(&mut self.replay);
        'candidates: loop {
            if !self.next_candidate() {
                return;
            }
            let Some(parser) = self.parser.as_mut() else {
                return; // HTTP/1.x: the caller replays from its own state
            };
            let before = out.len();
            for r in &replay {
                let seg = Segment {
                    dir: r.dir,
                    data: &r.data,
                    total_len: r.total_len,
                    start_ns: r.start_ns,
                    end_ns: r.end_ns,
                };
                if parser.feed(&seg, out).is_err() {
                    out.truncate(before);
                    continue 'candidates;
                }
            }
            if out.len() > before {
                self.confirmed = true;
            } else {
                self.replay = replay;
            }
            return;
        }
    }
}

/// Test and fuzz support: drives a parser with segments described by arbitrary bytes.
#[doc(hidden)]
pub mod fuzzing {
    use super::*;

    /// Interprets `input` as a sequence of `[ctrl][len][payload..len]` records: bit 0 of ctrl is
    /// the direction, bits 1-2 choose how much of the payload was "captured" (all, 256, 16,
    /// none), bits 3-7 add invisible bytes to the syscall size. Checks the parser's promises.
    pub fn drive(parser: &mut dyn ProtocolParser, input: &[u8]) {
        let mut out = Vec::new();
        let mut i = 0;
        let mut t = 1_000u64;
        while i + 2 <= input.len() {
            let ctrl = input[i];
            let len = input[i + 1] as usize * 4;
            i += 2;
            let end = (i + len).min(input.len());
            let payload = &input[i..end];
            i = end;
            let captured = match (ctrl >> 1) & 3 {
                0 => payload.len(),
                1 => payload.len().min(256),
                2 => payload.len().min(16),
                _ => 0,
            };
            let extra = ((ctrl >> 3) as u64) * 1000;
            let seg = Segment {
                dir: if ctrl & 1 == 0 {
                    Dir::ClientToServer
                } else {
                    Dir::ServerToClient
                },
                data: &payload[..captured],
                total_len: payload.len() as u64 + extra,
                start_ns: t,
                end_ns: t + 10,
            };
            t += 100;
            let _ = parser.feed(&seg, &mut out);
            check(&out);
            out.clear();
        }
        parser.close(t, &mut out);
        check(&out);
    }

    fn check(ops: &[Operation]) {
        for op in ops {
            assert!(
                op.end_ns >= op.start_ns,
                "operation ends before it starts: {op:?}"
            );
            assert!(op.name.len() <= 1024, "unbounded name");
            assert!(
                op.target.as_ref().is_none_or(|t| t.len() <= 1024),
                "unbounded target"
            );
        }
    }

    /// Drives a [`Session`] the same way.
    pub fn drive_session(input: &[u8]) {
        let mut s = Session::new(
            u16::from_le_bytes([input.first().copied().unwrap_or(0), 0]),
            ParserConfig { query_text: true },
        );
        let mut out = Vec::new();
        let mut i = 1;
        let mut t = 0;
        while i + 2 <= input.len() {
            let ctrl = input[i];
            let len = input[i + 1] as usize;
            i += 2;
            let end = (i + len).min(input.len());
            let seg = Segment {
                dir: if ctrl & 1 == 0 {
                    Dir::ClientToServer
                } else {
                    Dir::ServerToClient
                },
                data: &input[i..end],
                total_len: (end - i) as u64 + (ctrl >> 1) as u64,
                start_ns: t,
                end_ns: t + 1,
            };
            i = end;
            t += 2;
            s.feed(&seg, &mut out);
            check(&out);
            out.clear();
        }
        s.close(t, &mut out);
        check(&out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_by_signature_before_port() {
        assert_eq!(detect(HTTP2_PREFACE, None, 6379)[0], Protocol::Http2);
        assert_eq!(
            detect(b"*1\r\n$4\r\nPING\r\n", None, 80)[0],
            Protocol::Redis
        );
        assert_eq!(
            detect(b"GET / HTTP/1.1\r\n", None, 6379)[0],
            Protocol::Http1
        );
        let startup = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
        assert_eq!(detect(&startup, None, 1)[0], Protocol::Postgres);
        let q = b"Q\0\0\0\x0dSELECT 1\0";
        assert_eq!(detect(q, None, 5432)[0], Protocol::Postgres);
        let mut greeting = vec![73, 0, 0, 0, 10];
        greeting.extend_from_slice(b"5.5.5-10.11.6-MariaDB\0");
        greeting.resize(77, 0);
        assert_eq!(detect(&[], Some(&greeting), 1)[0], Protocol::Mysql);
        let mut com_query = vec![9, 0, 0, 0, 3];
        com_query.extend_from_slice(b"SELECT 1");
        assert_eq!(detect(&com_query, None, 3306)[0], Protocol::Mysql);
        // api_versions v3 from "rdkafka"
        let k = b"\0\0\0\x1b\0\x12\0\x03\0\0\0\x01\0\x07rdkafka\0\x06librd\x021\0";
        assert_eq!(detect(k, None, 1)[0], Protocol::Kafka);
        assert!(
            detect(b"\x16\x03\x01\x02\x00\x01", None, 1).is_empty(),
            "TLS is not detected"
        );
    }

    #[test]
    fn session_falls_back_to_the_next_candidate_and_replays() {
        // Redis is tried first (as if a port said so) on PostgreSQL traffic: the startup
        // message is not RESP, so the session replays what it kept into the PostgreSQL parser.
        let mut s = Session::with_candidates(
            vec![Protocol::Redis, Protocol::Postgres],
            ParserConfig::default(),
        );
        let mut out = Vec::new();
        let mut startup = vec![0, 0, 0, 18, 0, 3, 0, 0];
        startup.extend_from_slice(b"user\0bob\0\0");
        let q = b"Q\0\0\0\x0dSELECT 1\0";
        let mut reply = b"C\0\0\0\x0dSELECT 1\0".to_vec();
        reply.extend_from_slice(b"Z\0\0\0\x05I");
        let segs: [(Dir, &[u8]); 4] = [
            (Dir::ClientToServer, &startup),
            (Dir::ServerToClient, b"R\0\0\0\x08\0\0\0\0Z\0\0\0\x05I"),
            (Dir::ClientToServer, q),
            (Dir::ServerToClient, &reply),
        ];
        for (i, (dir, data)) in segs.iter().enumerate() {
            let seg = Segment {
                dir: *dir,
                data,
                total_len: data.len() as u64,
                start_ns: i as u64,
                end_ns: i as u64,
            };
            s.feed(&seg, &mut out);
        }
        assert_eq!(s.protocol(), Some(Protocol::Postgres));
        assert_eq!(out.len(), 1);
        assert_eq!(
            (out[0].protocol, out[0].name.as_ref()),
            (Protocol::Postgres, "SELECT")
        );

        // nothing fits: the session gives up and stays quiet
        let mut s = Session::with_candidates(vec![Protocol::Redis], ParserConfig::default());
        s.feed(
            &Segment {
                dir: Dir::ClientToServer,
                data: &startup,
                total_len: 18,
                start_ns: 0,
                end_ns: 0,
            },
            &mut out,
        );
        assert!(s.is_unknown());
        assert_eq!(out.len(), 1);
    }

    /// A quick randomized run of every parser (the long runs are the cargo-fuzz targets):
    /// random mutations of valid traffic and raw random bytes must not panic.
    #[test]
    fn random_inputs_do_not_panic() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let seeds: [&[u8]; 5] = [
            b"\x00\x08*2\r\n$3\r\nGET\r\n$1\r\nk\r\n\x01\x03$1\r\nv\r\n",
            b"\x00\x05Q\0\0\0\x0dSELECT 1\0\x01\x05C\0\0\0\x0dSELECT 1\0Z\0\0\0\x05I",
            b"\x00\x03\x09\0\0\0\x03SELECT 1\x01\x02\x07\0\0\x01\0\0\0\x02\0\0\0",
            b"\x00\x08\0\0\0\x14\0\x03\0\x0c\0\0\0\x01\0\x02id\0\x01\0\0\0\0\x01\x02\0\0\0\x08\0\0\0\x01\0\0\0\0",
            b"\x00\x10PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\x03\x01\x05\0\0\0\x01\x82\x86\x84\x01\x03\0\0\x01\x01\x05\0\0\0\x01\x88",
        ];
        let protocols = [
            Protocol::Redis,
            Protocol::Postgres,
            Protocol::Mysql,
            Protocol::Kafka,
            Protocol::Http2,
        ];
        for round in 0..4_000 {
            for (i, p) in protocols.iter().enumerate() {
                let mut input = seeds[i].to_vec();
                for _ in 0..(next() % 8) {
                    let at = (next() as usize) % input.len();
                    match next() % 3 {
                        0 => input[at] = next() as u8,
                        1 => input.insert(at, next() as u8),
                        _ => input.extend_from_slice(seeds[(next() % 5) as usize]),
                    }
                }
                if round % 4 == 0 {
                    input = (0..(next() % 300)).map(|_| next() as u8).collect();
                }
                let mut parser = new_parser(*p, ParserConfig { query_text: true }).unwrap();
                fuzzing::drive(parser.as_mut(), &input);
                fuzzing::drive_session(&input);
            }
        }
    }
}
