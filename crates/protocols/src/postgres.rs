//! PostgreSQL frontend/backend protocol (v3).
//!
//! - Startup: the untyped first message (StartupMessage, SSLRequest, GSSENCRequest,
//!   CancelRequest). A server answering `S` to SSLRequest (or `G` to GSSENCRequest) means the
//!   rest is encrypted: the parser goes quiet. `N` means plain text continues.
//! - Simple query (`Q`): one operation per message, ended by ReadyForQuery.
//! - Extended query: Parse remembers a (named or unnamed) statement's SQL, Bind maps a portal
//!   to a statement, each Execute is one operation, ended by CommandComplete /
//!   EmptyQueryResponse / PortalSuspended, or by an ErrorResponse (SQLSTATE → `error.type`),
//!   after which the server skips to Sync: the batch's later Executes never ran and are dropped.
//! - Many messages per segment, messages across segments, large DataRows skipped by length.

use std::collections::{HashMap, VecDeque};

use super::frame::{FeedError, Frame, Framer, Msg};
use super::sql::{self, Dialect};
use crate::*;

pub const SPEC: ProtocolSpec = ProtocolSpec {
    protocol: Protocol::Postgres,
    name: "postgresql",
    detect: Some(detect_score),
    ports: &[5432, 5433, 6432],
    new_parser: Some(|config| Box::new(PostgresParser::new(config))),
    conventions: conventions::SQL_DATABASE,
};

/// Bytes of a message kept when it spans segments (the SQL of a Parse/Query lives there).
const KEEP: usize = 4096;
const MAX_STATEMENTS: usize = 1024;
const MAX_PORTALS: usize = 64;
const MAX_QUERY_TEXT: usize = 2048;
/// Largest message accepted (the server's own limit is 1 GiB).
const MAX_MESSAGE: u64 = 1 << 30;

const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;
const CANCEL_REQUEST: u32 = 80_877_102;

/// What a statement does, computed once per Parse/Query.
#[derive(Clone, Debug, Default)]
struct Stmt {
    operation: Option<&'static str>,
    table: Option<String>,
    text: Option<String>,
}

#[derive(Debug)]
struct Pending {
    /// The Sync (or Query) batch it belongs to.
    batch: u64,
    simple: bool,
    stmt: Stmt,
    start_ns: u64,
    request_size: u64,
    response_size: u64,
    /// A simple query's CommandComplete tag (names the operation when the SQL was not seen).
    tag: Option<&'static str>,
    error: Option<String>,
    done: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// The client's first message has no type byte.
    Startup,
    /// SSLRequest/GSSENCRequest sent: the server answers with one byte.
    EncryptionAnswer,
    /// Typed messages.
    Messages,
    /// TLS/GSS encrypted: nothing to read.
    Encrypted,
}

pub struct PostgresParser {
    config: ParserConfig,
    framers: [Framer; 2],
    phase: Phase,
    statements: HashMap<Box<str>, Stmt>,
    portals: HashMap<Box<str>, Stmt>,
    pending: VecDeque<Pending>,
    /// Batch ids in the order their ReadyForQuery will come.
    syncs: VecDeque<u64>,
    next_batch: u64,
    /// Client bytes since the last operation was queued (Parse/Bind/Describe before Execute).
    unassigned_request: u64,
    request_start_ns: Option<u64>,
    /// The server side lost track (a message header beyond the captured bytes): the replies of
    /// the pending operations cannot be told apart any more.
    server_lost: bool,
    last_server_end_ns: u64,
    stats: ParserStats,
}

impl PostgresParser {
    pub fn new(config: ParserConfig) -> Self {
        PostgresParser {
            config,
            framers: [Framer::new(KEEP), Framer::new(512)],
            phase: Phase::Startup,
            statements: HashMap::new(),
            portals: HashMap::new(),
            pending: VecDeque::new(),
            syncs: VecDeque::new(),
            next_batch: 0,
            unassigned_request: 0,
            request_start_ns: None,
            server_lost: false,
            last_server_end_ns: 0,
            stats: ParserStats::default(),
        }
    }

    fn err(reason: &'static str) -> ParseError {
        ParseError::new(Protocol::Postgres, reason)
    }

    fn stmt(&self, sql_text: &[u8]) -> Stmt {
        let s = sql::summarize(sql_text, Dialect::Postgres);
        Stmt {
            operation: s.operation,
            table: s.table,
            text: self
                .config
                .query_text
                .then(|| sql::sanitize(sql_text, Dialect::Postgres, MAX_QUERY_TEXT)),
        }
    }

    fn push(&mut self, simple: bool, stmt: Stmt, msg: &Msg<'_>) {
        if self.pending.len() >= MAX_PENDING {
            self.pending.pop_front();
            self.stats.pending_dropped += 1;
        }
        let start_ns = self.request_start_ns.take().unwrap_or(msg.start_ns);
        let request_size = std::mem::take(&mut self.unassigned_request);
        self.pending.push_back(Pending {
            batch: self.next_batch,
            simple,
            stmt,
            start_ns,
            request_size,
            response_size: 0,
            tag: None,
            error: None,
            done: false,
        });
    }

    fn client_msg(&mut self, msg: Msg<'_>, out: &mut Vec<Operation>) -> Result<(), ParseError> {
        let d = msg.data;
        let body = &d[5.min(d.len())..];
        if self.server_lost && matches!(d[0], b'Q' | b'P' | b'B' | b'E') {
            // Clients wait for ReadyForQuery before the next query (outside pipeline mode):
            // what is pending was answered in bytes we could not see.
            self.server_lost = false;
            let end = self.last_server_end_ns;
            while let Some(p) = self.pending.pop_front() {
                out.push(self.finish(p, end));
            }
            self.syncs.clear();
        }
        self.unassigned_request += msg.len;
        self.request_start_ns.get_or_insert(msg.start_ns);
        match d[0] {
            b'Q' => {
                let stmt = self.stmt(cstr(body));
                self.push(true, stmt, &msg);
                self.syncs.push_back(self.next_batch);
                self.next_batch += 1;
            }
            b'P' => {
                let name = cstr(body);
                let query = cstr(&body[(name.len() + 1).min(body.len())..]);
                let stmt = self.stmt(query);
                if self.statements.len() >= MAX_STATEMENTS
                    && !self
                        .statements
                        .contains_key(&*String::from_utf8_lossy(name))
                {
                    self.statements.clear();
                    self.stats.pending_dropped += 1;
                }
                self.statements.insert(lossy(name), stmt);
            }
            b'B' => {
                let portal = cstr(body);
                let stmt_name = cstr(&body[(portal.len() + 1).min(body.len())..]);
                let stmt = self
                    .statements
                    .get(&*String::from_utf8_lossy(stmt_name))
                    .cloned()
                    .unwrap_or_default();
                if self.portals.len() >= MAX_PORTALS {
                    self.portals.clear();
                }
                self.portals.insert(lossy(portal), stmt);
            }
            b'E' => {
                let portal = cstr(body);
                let stmt = self
                    .portals
                    .get(&*String::from_utf8_lossy(portal))
                    .cloned()
                    .unwrap_or_default();
                self.push(false, stmt, &msg);
            }
            b'S' => {
                self.syncs.push_back(self.next_batch);
                self.next_batch += 1;
                if self.syncs.len() > MAX_PENDING {
                    self.syncs.pop_front();
                }
            }
            b'C' => {
                // Close: 'S' statement or 'P' portal
                if body.first() == Some(&b'S') {
                    self.statements
                        .remove(&*String::from_utf8_lossy(cstr(&body[1..])));
                }
            }
            b'X' => {}
            b'D' | b'H' | b'F' | b'd' | b'c' | b'f' | b'p' => {}
            _ => return Err(Self::err("unknown frontend message")),
        }
        Ok(())
    }

    fn server_msg(&mut self, msg: Msg<'_>, out: &mut Vec<Operation>) -> Result<(), ParseError> {
        let d = msg.data;
        let body = &d[5.min(d.len())..];
        // the response bytes belong to the oldest operation still open
        if let Some(p) = self.pending.iter_mut().find(|p| !p.done) {
            p.response_size += msg.len;
        }
        match d[0] {
            b'C' | b'I' | b's' => {
                let tag = command_tag(cstr(body));
                let Some(i) = self.pending.iter().position(|p| !p.done) else {
                    return Ok(());
                };
                let p = &mut self.pending[i];
                if p.simple {
                    if p.tag.is_none() {
                        p.tag = tag;
                    }
                } else {
                    p.done = true;
                    let p = self.pending.remove(i).unwrap_or_else(|| unreachable!());
                    out.push(self.finish(p, msg.end_ns));
                }
            }
            b'E' => {
                let code = error_code(body);
                let Some(i) = self.pending.iter().position(|p| !p.done) else {
                    return Ok(());
                };
                let p = &mut self.pending[i];
                p.error = Some(code);
                if p.simple {
                    // ends at ReadyForQuery
                } else {
                    let p = self.pending.remove(i).unwrap_or_else(|| unreachable!());
                    out.push(self.finish(p, msg.end_ns));
                }
            }
            b'Z' => {
                let Some(batch) = self.syncs.pop_front() else {
                    return Ok(());
                };
                while self.pending.front().is_some_and(|p| p.batch <= batch) {
                    let Some(p) = self.pending.pop_front() else {
                        break;
                    };
                    if p.simple {
                        out.push(self.finish(p, msg.end_ns));
                    }
                    // an Execute skipped after an error in its batch never ran
                }
            }
            b'R' | b'S' | b'K' | b'T' | b'D' | b'1' | b'2' | b'3' | b'n' | b't' | b'N' | b'A'
            | b'G' | b'H' | b'W' | b'd' | b'c' | b'V' | b'v' => {}
            _ => return Err(Self::err("unknown backend message")),
        }
        Ok(())
    }

    fn finish(&self, p: Pending, end_ns: u64) -> Operation {
        let name: Str = match (p.stmt.operation, p.tag) {
            (Some(op), _) => Str::Borrowed(op),
            (None, Some(tag)) => Str::Borrowed(tag),
            (None, None) => Str::Borrowed("unknown"),
        };
        let mut op = Operation::new(Protocol::Postgres, name, p.start_ns);
        op.end_ns = end_ns.max(p.start_ns);
        op.target = p.stmt.table.map(Str::Owned);
        op.query_text = p.stmt.text;
        op.request_size = p.request_size;
        op.response_size = p.response_size;
        match p.error {
            Some(code) => {
                op.status = Status::Error;
                op.error = Some(Str::Owned(code));
            }
            None => op.status = Status::Ok,
        }
        op
    }

    fn feed_client(
        &mut self,
        seg: &Segment<'_>,
        out: &mut Vec<Operation>,
    ) -> Result<(), ParseError> {
        let mut from = 0;
        if self.phase == Phase::Startup && self.framers[0].at_boundary() {
            let v = seg.visible();
            if v.len() >= 8 {
                let len = u32::from_be_bytes([v[0], v[1], v[2], v[3]]) as u64;
                let code = u32::from_be_bytes([v[4], v[5], v[6], v[7]]);
                if (8..=10_000).contains(&len) && len <= seg.total_len {
                    match code {
                        SSL_REQUEST | GSSENC_REQUEST if len == 8 => {
                            self.phase = Phase::EncryptionAnswer;
                            return Ok(());
                        }
                        CANCEL_REQUEST if len == 16 => return Ok(()),
                        c if c >> 16 == 3 => {
                            self.phase = Phase::Messages;
                            from = len;
                        }
                        _ => return Err(Self::err("bad startup message")),
                    }
                } else if v[0].is_ascii_alphabetic() {
                    self.phase = Phase::Messages; // joined after the startup
                } else {
                    return Err(Self::err("bad startup message"));
                }
            } else if !v.first().is_some_and(u8::is_ascii_alphabetic) {
                return Err(Self::err("bad startup message"));
            } else {
                self.phase = Phase::Messages;
            }
        }
        if self.phase == Phase::Encrypted {
            return Ok(());
        }
        let mut framer = std::mem::replace(&mut self.framers[0], Framer::new(0));
        let r = framer.feed(seg, from, frame_len, |m| self.client_msg(m, out));
        self.framers[0] = framer;
        self.map(r)
    }

    fn feed_server(
        &mut self,
        seg: &Segment<'_>,
        out: &mut Vec<Operation>,
    ) -> Result<(), ParseError> {
        let mut from = 0;
        match self.phase {
            Phase::Encrypted => return Ok(()),
            Phase::EncryptionAnswer => match seg.visible().first() {
                Some(b'S' | b'G') if seg.total_len == 1 => {
                    self.phase = Phase::Encrypted;
                    return Ok(());
                }
                Some(b'N') => {
                    self.phase = Phase::Startup;
                    from = 1;
                }
                _ => return Err(Self::err("bad answer to SSLRequest")),
            },
            _ => {}
        }
        let mut framer = std::mem::replace(&mut self.framers[1], Framer::new(0));
        let (resyncs, unframed) = (framer.resyncs, framer.unframed);
        // After losing track, the first message must be a plausible reply start: a length read
        // from the middle of a row would swallow what follows.
        let mut strict = framer.is_lost();
        let frame = move |h: &[u8]| {
            let f = frame_len(h);
            if let (true, Frame::Len(len)) = (strict, f) {
                if !matches!(
                    h[0],
                    b'C' | b'Z'
                        | b'E'
                        | b'T'
                        | b'D'
                        | b'1'
                        | b'2'
                        | b'3'
                        | b'n'
                        | b'I'
                        | b's'
                        | b'N'
                        | b'S'
                ) || len > 64 * 1024
                {
                    return Frame::Bad;
                }
                strict = false;
            }
            f
        };
        let r = framer.feed(seg, from, frame, |m| self.server_msg(m, out));
        if framer.resyncs > resyncs || r.is_err() {
            self.server_lost = true;
        }
        if framer.unframed > unframed {
            // the rest of the reply we lost track of
            if let Some(p) = self.pending.front_mut() {
                p.response_size += framer.unframed - unframed;
            }
        }
        self.last_server_end_ns = seg.end_ns;
        self.framers[1] = framer;
        self.map(r)
    }

    fn map(&mut self, r: Result<(), FeedError<ParseError>>) -> Result<(), ParseError> {
        self.stats.resyncs = self.framers[0].resyncs + self.framers[1].resyncs;
        match r {
            Ok(()) => Ok(()),
            Err(FeedError::Bad) => Err(Self::err("bad message length")),
            Err(FeedError::Callback(e)) => Err(e),
        }
    }
}

/// Typed message: 1 type byte + int32 length (counting itself).
fn frame_len(h: &[u8]) -> Frame {
    if h.len() < 5 {
        return Frame::Need(5);
    }
    if !h[0].is_ascii_alphanumeric() {
        return Frame::Bad;
    }
    let len = u32::from_be_bytes([h[1], h[2], h[3], h[4]]) as u64;
    if !(4..=MAX_MESSAGE).contains(&len) {
        return Frame::Bad;
    }
    Frame::Len(1 + len)
}

fn cstr(b: &[u8]) -> &[u8] {
    &b[..b.iter().position(|&c| c == 0).unwrap_or(b.len())]
}

fn lossy(b: &[u8]) -> Box<str> {
    String::from_utf8_lossy(&b[..b.len().min(256)]).into()
}

/// The command of a CommandComplete tag (`INSERT 0 1` → INSERT).
fn command_tag(tag: &[u8]) -> Option<&'static str> {
    let w = tag.split(|&b| b == b' ').next()?;
    sql::summarize(w, Dialect::Postgres).operation
}

/// The SQLSTATE (`C` field) of an ErrorResponse.
fn error_code(mut body: &[u8]) -> String {
    while let Some((&kind, rest)) = body.split_first() {
        if kind == 0 {
            break;
        }
        let v = cstr(rest);
        if kind == b'C' && v.len() == 5 && v.iter().all(u8::is_ascii_alphanumeric) {
            return String::from_utf8_lossy(v).into_owned();
        }
        body = &rest[(v.len() + 1).min(rest.len())..];
    }
    "error".to_string()
}

/// 3: a startup/SSL request or a typed message whose length matches the segment.
fn detect_score(c: &[u8], server: &[u8]) -> u8 {
    if c.len() >= 8 {
        let len = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
        let code = u32::from_be_bytes([c[4], c[5], c[6], c[7]]);
        if (len == 8 && (code == SSL_REQUEST || code == GSSENC_REQUEST))
            || (len == 16 && code == CANCEL_REQUEST)
        {
            return 3;
        }
        if (9..10_000).contains(&len)
            && code >> 16 == 3
            && c[8..].windows(5).any(|w| w == b"user\0")
        {
            return 3;
        }
    }
    if c.len() >= 5 && matches!(c[0], b'Q' | b'P' | b'B' | b'E' | b'S' | b'X' | b'p') {
        if let Frame::Len(len) = frame_len(c) {
            if len as usize <= c.len() || len as usize > c.len() && c.len() >= 256 {
                return 2;
            }
        }
    }
    if c.is_empty()
        && server.len() >= 5
        && matches!(server[0], b'R' | b'E' | b'S' | b'Z' | b'T' | b'C')
        && matches!(frame_len(server), Frame::Len(_))
    {
        return 1;
    }
    0
}

impl ProtocolParser for PostgresParser {
    fn protocol(&self) -> Protocol {
        Protocol::Postgres
    }

    fn feed(&mut self, seg: &Segment<'_>, out: &mut Vec<Operation>) -> Result<(), ParseError> {
        if seg.total_len == 0 {
            return Ok(());
        }
        match seg.dir {
            Dir::ClientToServer => self.feed_client(seg, out),
            Dir::ServerToClient => {
                if self.phase == Phase::Startup && seg.visible().first().is_some_and(|&b| b != b'N')
                {
                    // joined after the startup (or the server speaks first): typed messages
                    self.phase = Phase::Messages;
                }
                self.feed_server(seg, out)
            }
        }
    }

    fn close(&mut self, end_ns: u64, out: &mut Vec<Operation>) {
        while let Some(p) = self.pending.pop_front() {
            let mut op = self.finish(p, end_ns);
            op.status = Status::Unknown;
            op.error = Some(ERROR_NO_RESPONSE.into());
            out.push(op);
        }
    }

    fn stats(&self) -> ParserStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn msg(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![kind];
        v.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    fn seg(dir: Dir, data: &[u8], t: u64) -> Segment<'_> {
        Segment {
            dir,
            data,
            total_len: data.len() as u64,
            start_ns: t,
            end_ns: t + 1,
        }
    }

    #[test]
    fn startup_simple_and_extended() {
        let mut p = PostgresParser::new(ParserConfig { query_text: true });
        let mut out = Vec::new();
        let mut startup = vec![0, 0, 0, 0, 0, 3, 0, 0];
        startup.extend_from_slice(b"user\0bob\0\0");
        let l = startup.len() as u32;
        startup[..4].copy_from_slice(&l.to_be_bytes());
        p.feed(&seg(Dir::ClientToServer, &startup, 1), &mut out)
            .unwrap();
        let mut s = msg(b'R', &[0, 0, 0, 0]);
        s.extend(msg(b'S', b"server_version\x0016\0"));
        s.extend(msg(b'Z', b"I"));
        p.feed(&seg(Dir::ServerToClient, &s, 2), &mut out).unwrap();
        assert!(out.is_empty());

        p.feed(
            &seg(
                Dir::ClientToServer,
                &msg(b'Q', b"SELECT * FROM users WHERE name = 'x'\0"),
                10,
            ),
            &mut out,
        )
        .unwrap();
        let mut r = msg(b'T', &[0, 0]);
        r.extend(msg(b'D', &[0, 0]));
        r.extend(msg(b'C', b"SELECT 1\0"));
        r.extend(msg(b'Z', b"I"));
        p.feed(&seg(Dir::ServerToClient, &r, 20), &mut out).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(
            (out[0].name.as_ref(), out[0].target.as_deref()),
            ("SELECT", Some("users"))
        );
        assert_eq!(
            out[0].query_text.as_deref(),
            Some("SELECT * FROM users WHERE name = ?")
        );
        assert_eq!(
            (out[0].start_ns, out[0].end_ns, out[0].response_size),
            (10, 21, r.len() as u64)
        );

        // extended: named statement parsed once, executed twice in one Sync; second fails
        let mut c = msg(b'P', b"s1\0UPDATE acct SET v = $1 WHERE id = 7\0\0\0");
        c.extend(msg(b'B', b"\0s1\0\0\0\0\0\0\0"));
        c.extend(msg(b'E', b"\0\0\0\0\0"));
        c.extend(msg(b'B', b"\0s1\0\0\0\0\0\0\0"));
        c.extend(msg(b'E', b"\0\0\0\0\0"));
        c.extend(msg(b'B', b"\0s1\0\0\0\0\0\0\0"));
        c.extend(msg(b'E', b"\0\0\0\0\0"));
        c.extend(msg(b'S', b""));
        p.feed(&seg(Dir::ClientToServer, &c, 30), &mut out).unwrap();
        let mut r = msg(b'1', b"");
        r.extend(msg(b'2', b""));
        r.extend(msg(b'C', b"UPDATE 1\0"));
        r.extend(msg(b'2', b""));
        r.extend(msg(b'E', b"SERROR\0C40001\0Mcould not serialize\0\0"));
        r.extend(msg(b'Z', b"E"));
        p.feed(&seg(Dir::ServerToClient, &r, 40), &mut out).unwrap();
        assert_eq!(out.len(), 3, "{out:?}");
        assert_eq!(
            (
                out[1].name.as_ref(),
                out[1].target.as_deref(),
                out[1].status
            ),
            ("UPDATE", Some("acct"), Status::Ok)
        );
        assert_eq!(
            out[1].query_text.as_deref(),
            Some("UPDATE acct SET v = $1 WHERE id = ?")
        );
        assert_eq!(
            (out[2].status, out[2].error.as_deref()),
            (Status::Error, Some("40001"))
        );
        assert!(p.pending.is_empty());
    }

    #[test]
    fn ssl_request_then_encrypted_is_quiet() {
        let mut p = PostgresParser::new(ParserConfig::default());
        let mut out = Vec::new();
        p.feed(
            &seg(
                Dir::ClientToServer,
                &[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f],
                1,
            ),
            &mut out,
        )
        .unwrap();
        p.feed(&seg(Dir::ServerToClient, b"S", 2), &mut out)
            .unwrap();
        p.feed(
            &seg(
                Dir::ClientToServer,
                b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc",
                3,
            ),
            &mut out,
        )
        .unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn large_rows_are_skipped_by_length() {
        let mut p = PostgresParser::new(ParserConfig::default());
        let mut out = Vec::new();
        p.feed(
            &seg(Dir::ClientToServer, &msg(b'Q', b"select blob from t\0"), 1),
            &mut out,
        )
        .unwrap();
        // one DataRow of 1 MB, of which 256 bytes captured, then the rest in invisible reads
        let mut head = msg(b'D', &[]);
        head[1..5].copy_from_slice(&(1_000_004u32).to_be_bytes());
        head.resize(256, 0);
        p.feed(
            &Segment {
                dir: Dir::ServerToClient,
                data: &head,
                total_len: 600_000,
                start_ns: 2,
                end_ns: 3,
            },
            &mut out,
        )
        .unwrap();
        p.feed(
            &Segment {
                dir: Dir::ServerToClient,
                data: &[],
                total_len: 400_005,
                start_ns: 4,
                end_ns: 5,
            },
            &mut out,
        )
        .unwrap();
        let mut tail = msg(b'C', b"SELECT 1\0");
        tail.extend(msg(b'Z', b"I"));
        p.feed(&seg(Dir::ServerToClient, &tail, 6), &mut out)
            .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].response_size, 1_000_005 + tail.len() as u64);
    }
}
