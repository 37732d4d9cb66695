//! tapline's layer-7 protocols, parsed from the captured prefixes of a connection's reads and
//! writes: HTTP/1.x, HTTP/2 (+ gRPC), Redis, PostgreSQL, MySQL/MariaDB and Kafka. No I/O, no
//! async runtime, no eBPF: the `app` receiver feeds it what the kernel captured, the fuzz
//! targets and benchmarks feed it bytes.
//!
//! Every parser has the same shape ([`ProtocolParser`]): it is fed one syscall's worth of one
//! direction at a time ([`Segment`]) and emits finished request/response exchanges
//! ([`Operation`]). A [`Session`] sits in front of them, one per connection: it [`detect`]s the
//! candidate protocols from the first bytes (ports are only a hint), feeds the first candidate,
//! and falls back to the next one (replaying the first few segments) while the current parser
//! rejects the bytes and has not yet produced anything.
//!
//! Each protocol is one module and one row of [`PROTOCOLS`] (its [`ProtocolSpec`]): its name,
//! how it is detected, the ports that hint at it, how its parser is built, and how its
//! operations become metrics and spans ([`conventions::Conventions`]).
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

pub mod conventions;
mod detect;
pub mod frame;
pub mod hpack;
pub mod route;
mod session;
pub mod sql;

#[doc(hidden)]
pub mod fuzzing;
#[doc(hidden)]
pub mod workloads;

use std::borrow::Cow;
use std::fmt;

pub use detect::detect;
pub use http1::head::TraceParent;
pub use session::Session;

use conventions::Conventions;

/// Declares the protocol modules, [`Protocol`] and [`PROTOCOLS`] from one list, so that a
/// protocol is one line here and one module.
macro_rules! protocol_table {
    ($( $(#[$doc:meta])* $variant:ident => $module:ident, )+) => {
        $( pub mod $module; )+

        /// The protocols tapline recognises, in [`PROTOCOLS`] order (also the order in which
        /// equally likely candidates are tried).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Protocol {
            $( $(#[$doc])* $variant, )+
        }

        /// Every protocol's [`ProtocolSpec`], indexed by [`Protocol`].
        pub static PROTOCOLS: &[&ProtocolSpec] = &[ $( &$module::SPEC, )+ ];
    };
}

protocol_table! {
    /// HTTP/1.0 and HTTP/1.1.
    Http1 => http1,
    /// HTTP/2 without gRPC.
    Http2 => http2,
    /// gRPC: never detected, it is HTTP/2 whose operations carry `content-type:
    /// application/grpc`.
    Grpc => grpc,
    Redis => redis,
    Postgres => postgres,
    Mysql => mysql,
    Kafka => kafka,
}

/// How well the first bytes of a connection fit a protocol: `(first client bytes, first server
/// bytes)`, either possibly empty, to a score (see [`ProtocolSpec::detect`]).
pub type DetectFn = fn(&[u8], &[u8]) -> u8;

/// What tapline knows about one protocol: one row of [`PROTOCOLS`].
pub struct ProtocolSpec {
    pub protocol: Protocol,
    /// The name used in attributes (`db.system.name`, `messaging.system`, `rpc.system.name`)
    /// and in logs.
    pub name: &'static str,
    /// How well the first bytes of a connection fit: `detect(first client bytes, first server
    /// bytes)` (either may be empty) is 3 for a signature only this protocol has, 2 for
    /// well-formed, 1 for merely plausible, 0 for no. None: never detected.
    pub detect: Option<DetectFn>,
    /// Server ports that make this protocol the more likely one when detection ties.
    pub ports: &'static [u16],
    /// A parser for one connection. None: the protocol has no parser of its own.
    pub new_parser: Option<fn(ParserConfig) -> Box<dyn ProtocolParser>>,
    /// How its operations become metrics and spans.
    pub conventions: Conventions,
}

impl Protocol {
    /// This protocol's row of [`PROTOCOLS`].
    pub fn spec(self) -> &'static ProtocolSpec {
        PROTOCOLS[self as usize]
    }

    /// The name used in attributes (`db.system.name`, `messaging.system`, `network.protocol.name`).
    pub fn as_str(self) -> &'static str {
        self.spec().name
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A new parser for `protocol` (None for gRPC, which HTTP/2's parser recognises).
pub fn new_parser(protocol: Protocol, config: ParserConfig) -> Option<Box<dyn ProtocolParser>> {
    protocol.spec().new_parser.map(|new| new(config))
}

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

    pub fn other(self) -> Dir {
        match self {
            Dir::ClientToServer => Dir::ServerToClient,
            Dir::ServerToClient => Dir::ClientToServer,
        }
    }
}

/// Which end of a connection the observed process is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// It read the requests and wrote the responses.
    Server = 0,
    /// It wrote the requests and read the responses.
    Client = 1,
}

/// One syscall's worth of bytes of one direction of a connection.
#[derive(Clone, Copy, Debug)]
pub struct Segment<'a> {
    pub dir: Dir,
    /// The captured prefix of what the syscall moved (possibly shorter, possibly empty, as for
    /// sendfile).
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

/// How an operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// A success reply (Redis, SQL, Kafka error code 0).
    Ok,
    /// An error reply; [`Operation::error`] names it.
    Error,
    /// A plain HTTP response's status code.
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
    /// `db.collection.name` (main table), `messaging.destination.name` (topic), or the HTTP
    /// request target (HTTP/2 `:path`, HTTP/1.x path and query). None when not known (or
    /// key-like: Redis keys are never reported).
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
    /// The W3C trace context the request carried (HTTP/1.x `traceparent`).
    pub traceparent: Option<TraceParent>,
    /// Request headers (lowercase names), only when the HTTP/1.x parser captures them.
    pub request_headers: Vec<(Box<str>, Box<str>)>,
}

impl Operation {
    pub fn new(protocol: Protocol, name: Str, start_ns: u64) -> Self {
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
            traceparent: None,
            request_headers: Vec::new(),
        }
    }
}

/// `error.type` of a request whose response never came (connection closed, stream lost).
pub const ERROR_NO_RESPONSE: &str = "no_response";

/// `error.type` of a response that began but whose end was not seen before the connection
/// closed.
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

#[cfg(test)]
mod tests {
    use super::*;
    use http2::PREFACE as HTTP2_PREFACE;

    #[test]
    fn table_rows_follow_the_protocol_order() {
        for (i, spec) in PROTOCOLS.iter().enumerate() {
            assert_eq!(spec.protocol as usize, i, "{}", spec.name);
            assert!(
                PROTOCOLS[..i].iter().all(|s| s.name != spec.name),
                "{} twice",
                spec.name
            );
        }
        assert_eq!(Protocol::Postgres.as_str(), "postgresql");
        assert_eq!(
            detect(&[], None, 29092),
            [Protocol::Kafka],
            "a port hint alone"
        );
    }

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
                fuzzing::drive_exchange(&input);
            }
        }
    }
}
