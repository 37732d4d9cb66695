//! MySQL / MariaDB client/server protocol.
//!
//! Packets are `[u24 length][u8 sequence][payload]`; a command is a client packet with
//! sequence 0. COM_QUERY and COM_STMT_EXECUTE are operations (the statement id maps back to the
//! SQL of its COM_STMT_PREPARE); their response is an OK, an ERR (error number → `error.type`)
//! or a result set, whose end is found by counting column definitions and waiting for the
//! EOF/OK packet (honouring CLIENT_DEPRECATE_EOF and SERVER_MORE_RESULTS_EXISTS). The
//! handshake is followed to learn the capabilities; an SSL request makes the parser go quiet.

use std::collections::{HashMap, VecDeque};

use super::frame::{FeedError, Frame, Framer, Msg};
use super::sql::{self, Dialect};
use crate::*;

pub const SPEC: ProtocolSpec = ProtocolSpec {
    protocol: Protocol::Mysql,
    name: "mysql",
    detect: Some(detect_score),
    ports: &[3306, 3307, 4000],
    new_parser: Some(|config| Box::new(MysqlParser::new(config))),
    conventions: conventions::SQL_DATABASE,
};

const KEEP: usize = 4096;
const MAX_STATEMENTS: usize = 1024;
const MAX_QUERY_TEXT: usize = 2048;
const MAX_PAYLOAD: u64 = 0xff_ffff;

const CLIENT_SSL: u32 = 0x0800;
const CLIENT_PROTOCOL_41: u32 = 0x0200;
const CLIENT_DEPRECATE_EOF: u32 = 0x0100_0000;
const SERVER_MORE_RESULTS_EXISTS: u16 = 0x0008;

const COM_QUIT: u8 = 0x01;
const COM_QUERY: u8 = 0x03;
const COM_STMT_PREPARE: u8 = 0x16;
const COM_STMT_EXECUTE: u8 = 0x17;
const COM_STMT_SEND_LONG_DATA: u8 = 0x18;
const COM_STMT_CLOSE: u8 = 0x19;

#[derive(Clone, Debug, Default)]
struct Stmt {
    operation: Option<&'static str>,
    table: Option<String>,
    text: Option<String>,
}

/// Where the response to the current command is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Resp {
    /// Waiting for the first packet.
    First,
    /// Column definitions still to come, then (without DEPRECATE_EOF) an EOF.
    Columns { left: u64 },
    /// Rows until EOF/OK/ERR.
    Rows,
    /// COM_STMT_PREPARE OK: parameter and column definitions, each block followed by an EOF.
    PrepareDefs { left: u64, eofs: u8 },
}

#[derive(Debug)]
struct Command {
    code: u8,
    /// Operation to report (COM_QUERY, COM_STMT_EXECUTE), or the SQL of a prepare.
    stmt: Stmt,
    report: bool,
    start_ns: u64,
    request_size: u64,
    response_size: u64,
    resp: Resp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Server greeting and client handshake response expected (or joined later).
    Handshake,
    Commands,
    Encrypted,
}

pub struct MysqlParser {
    config: ParserConfig,
    framers: [Framer; 2],
    phase: Phase,
    deprecate_eof: bool,
    statements: HashMap<u32, Stmt>,
    /// Commands sent and not yet answered (clients do not pipeline, but may send COM_STMT_CLOSE
    /// + the next command back to back).
    pending: VecDeque<Command>,
    /// A command packet of 16 MiB - 1 continues in the next packet.
    continuation: bool,
    last_server_end_ns: u64,
    stats: ParserStats,
}

impl MysqlParser {
    pub fn new(config: ParserConfig) -> Self {
        MysqlParser {
            config,
            framers: [Framer::new(KEEP), Framer::new(256)],
            phase: Phase::Handshake,
            deprecate_eof: false,
            statements: HashMap::new(),
            pending: VecDeque::new(),
            continuation: false,
            last_server_end_ns: 0,
            stats: ParserStats::default(),
        }
    }

    fn err(reason: &'static str) -> ParseError {
        ParseError::new(Protocol::Mysql, reason)
    }

    fn stmt(&self, q: &[u8]) -> Stmt {
        let s = sql::summarize(q, Dialect::Mysql);
        Stmt {
            operation: s.operation,
            table: s.table,
            text: self
                .config
                .query_text
                .then(|| sql::sanitize(q, Dialect::Mysql, MAX_QUERY_TEXT)),
        }
    }

    fn client_packet(&mut self, m: Msg<'_>, out: &mut Vec<Operation>) -> Result<(), ParseError> {
        let d = m.data;
        let payload_len = m.len - 4;
        let seq = d[3];
        let p = &d[4..];
        if self.continuation {
            self.continuation = payload_len == MAX_PAYLOAD;
            if let Some(c) = self.pending.back_mut() {
                c.request_size += m.len;
            }
            return Ok(());
        }
        if seq != 0 {
            // handshake response (seq 1), auth switch responses...
            if self.phase == Phase::Handshake && seq == 1 && p.len() >= 4 {
                let caps = u32::from_le_bytes([p[0], p[1], p[2], p[3]]);
                if caps & CLIENT_PROTOCOL_41 != 0 {
                    self.deprecate_eof = caps & CLIENT_DEPRECATE_EOF != 0;
                    if caps & CLIENT_SSL != 0 && payload_len == 32 {
                        self.phase = Phase::Encrypted;
                        return Ok(());
                    }
                }
            }
            return Ok(());
        }
        let Some(&code) = p.first() else {
            return Err(Self::err("empty command"));
        };
        if self.phase == Phase::Handshake {
            self.phase = Phase::Commands;
        }
        self.continuation = payload_len == MAX_PAYLOAD;
        let (stmt, report, expects_response) = match code {
            COM_QUERY => (self.stmt(&p[1..]), true, true),
            COM_STMT_PREPARE => (self.stmt(&p[1..]), false, true),
            COM_STMT_EXECUTE => {
                let stmt = if p.len() >= 5 {
                    let id = u32::from_le_bytes([p[1], p[2], p[3], p[4]]);
                    self.statements.get(&id).cloned().unwrap_or_default()
                } else {
                    Stmt::default()
                };
                (stmt, true, true)
            }
            COM_STMT_CLOSE => {
                if p.len() >= 5 {
                    self.statements
                        .remove(&u32::from_le_bytes([p[1], p[2], p[3], p[4]]));
                }
                (Stmt::default(), false, false)
            }
            COM_QUIT | COM_STMT_SEND_LONG_DATA => (Stmt::default(), false, false),
            0x00..=0x1f => (Stmt::default(), false, true),
            // MariaDB COM_MULTI (0xfe) and anything unknown
            0xfe => (Stmt::default(), false, true),
            _ => return Err(Self::err("unknown command")),
        };
        if !expects_response {
            return Ok(());
        }
        // Clients wait for each answer before the next command: one still pending was answered
        // in bytes we could not see (its result set went beyond the capture).
        while let Some(c) = self.pending.pop_front() {
            if c.response_size > 0 {
                let end = self.last_server_end_ns;
                if c.report {
                    out.push(self.operation(c, end));
                }
            } else {
                self.unanswered(c, m.start_ns, out);
            }
        }
        self.pending.push_back(Command {
            code,
            stmt,
            report,
            start_ns: m.start_ns,
            request_size: m.len,
            response_size: 0,
            resp: Resp::First,
        });
        Ok(())
    }

    fn unanswered(&self, c: Command, end_ns: u64, out: &mut Vec<Operation>) {
        if c.report {
            let mut op = self.operation(c, end_ns);
            op.status = Status::Unknown;
            op.error = Some(ERROR_NO_RESPONSE.into());
            out.push(op);
        }
    }

    fn operation(&self, c: Command, end_ns: u64) -> Operation {
        let name = Str::Borrowed(c.stmt.operation.unwrap_or("unknown"));
        let mut op = Operation::new(Protocol::Mysql, name, c.start_ns);
        op.end_ns = end_ns.max(c.start_ns);
        op.target = c.stmt.table.map(Str::Owned);
        op.query_text = c.stmt.text;
        op.request_size = c.request_size;
        op.response_size = c.response_size;
        op.status = Status::Ok;
        op
    }

    fn server_packet(&mut self, m: Msg<'_>, out: &mut Vec<Operation>) -> Result<(), ParseError> {
        let d = m.data;
        let payload_len = m.len - 4;
        let p = &d[4..];
        let Some(mut c) = self.pending.pop_front() else {
            // greeting, auth exchange, or a reply we are not waiting for
            if self.phase == Phase::Handshake && d[3] == 0 && p.first() == Some(&10) {
                return Ok(());
            }
            return Ok(());
        };
        if c.resp == Resp::First && d[3] != 1 {
            // a response starts with sequence 1: this is the tail of one we lost track of
            self.pending.push_front(c);
            return Ok(());
        }
        c.response_size += m.len;
        let first = p.first().copied();
        let is_eof = first == Some(0xfe)
            && payload_len < 0xff_ffff
            && (payload_len < 9 || self.deprecate_eof);
        let mut finished = false;
        let mut error: Option<String> = None;
        match c.resp {
            Resp::First => match first {
                Some(0x00) if c.code == COM_STMT_PREPARE && p.len() >= 12 => {
                    let id = u32::from_le_bytes([p[1], p[2], p[3], p[4]]);
                    let cols = u16::from_le_bytes([p[5], p[6]]) as u64;
                    let params = u16::from_le_bytes([p[7], p[8]]) as u64;
                    if self.statements.len() >= MAX_STATEMENTS {
                        self.statements.clear();
                    }
                    self.statements.insert(id, c.stmt.clone());
                    let eofs = if self.deprecate_eof {
                        0
                    } else {
                        (cols > 0) as u8 + (params > 0) as u8
                    };
                    if cols + params == 0 {
                        finished = true;
                    } else {
                        c.resp = Resp::PrepareDefs {
                            left: cols + params,
                            eofs,
                        };
                    }
                }
                Some(0x00) => {
                    finished = !more_results(ok_status(p));
                }
                Some(0xff) => {
                    error = Some(error_number(p));
                    finished = true;
                }
                Some(0xfe) if is_eof => finished = !more_results(eof_status(p, self.deprecate_eof)),
                Some(0xfb) => finished = true, // LOCAL INFILE request: the file follows; not followed
                Some(_) => {
                    let (n, _) = lenenc(p).ok_or_else(|| Self::err("bad column count"))?;
                    if n == 0 || n > 4096 {
                        return Err(Self::err("bad column count"));
                    }
                    c.resp = Resp::Columns { left: n };
                }
                None => return Err(Self::err("empty response")),
            },
            Resp::Columns { left } => {
                if left > 0 {
                    c.resp = Resp::Columns { left: left - 1 };
                    if left == 1 && self.deprecate_eof {
                        c.resp = Resp::Rows;
                    }
                } else if is_eof {
                    c.resp = Resp::Rows;
                } else {
                    // no EOF after the definitions: the client asked for DEPRECATE_EOF
                    c.resp = Resp::Rows;
                    self.deprecate_eof = true;
                    return self.row(c, m, p, payload_len, out);
                }
            }
            Resp::Rows => return self.row(c, m, p, payload_len, out),
            Resp::PrepareDefs { left, eofs } => {
                if left > 0 && !is_eof {
                    c.resp = Resp::PrepareDefs {
                        left: left - 1,
                        eofs,
                    };
                } else if is_eof && eofs > 0 {
                    c.resp = Resp::PrepareDefs {
                        left,
                        eofs: eofs - 1,
                    };
                }
                if let Resp::PrepareDefs { left: 0, eofs: 0 } = c.resp {
                    finished = true;
                }
            }
        }
        self.settle(c, finished, error, m.end_ns, out);
        Ok(())
    }

    fn row(
        &mut self,
        c: Command,
        m: Msg<'_>,
        p: &[u8],
        payload_len: u64,
        out: &mut Vec<Operation>,
    ) -> Result<(), ParseError> {
        let mut c = c;
        let mut finished = false;
        let mut error = None;
        match p.first() {
            Some(0xfe) if payload_len < 9 || self.deprecate_eof && payload_len < 0xff_ffff => {
                let status = eof_status(p, self.deprecate_eof);
                if more_results(status) {
                    c.resp = Resp::First;
                } else {
                    finished = true;
                }
            }
            Some(0xff) => {
                error = Some(error_number(p));
                finished = true;
            }
            _ => {}
        }
        self.settle(c, finished, error, m.end_ns, out);
        Ok(())
    }

    fn settle(
        &mut self,
        c: Command,
        finished: bool,
        error: Option<String>,
        end_ns: u64,
        out: &mut Vec<Operation>,
    ) {
        if !finished {
            self.pending.push_front(c);
            return;
        }
        if c.report || error.is_some() {
            let mut op = self.operation(c, end_ns);
            if let Some(e) = error {
                op.status = Status::Error;
                op.error = Some(Str::Owned(e));
            }
            out.push(op);
        }
    }

    fn map(&mut self, r: Result<(), FeedError<ParseError>>) -> Result<(), ParseError> {
        self.stats.resyncs = self.framers[0].resyncs + self.framers[1].resyncs;
        match r {
            Ok(()) => Ok(()),
            Err(FeedError::Bad) => Err(Self::err("bad packet length")),
            Err(FeedError::Callback(e)) => Err(e),
        }
    }
}

fn frame_len(h: &[u8]) -> Frame {
    if h.len() < 4 {
        return Frame::Need(4);
    }
    Frame::Len(4 + u32::from_le_bytes([h[0], h[1], h[2], 0]) as u64)
}

/// Length-encoded integer: value and bytes used.
fn lenenc(p: &[u8]) -> Option<(u64, usize)> {
    let b = *p.first()?;
    let n = match b {
        0..=0xfa => return Some((b as u64, 1)),
        0xfc => 2,
        0xfd => 3,
        0xfe => 8,
        _ => return None,
    };
    let bytes = p.get(1..1 + n)?;
    let mut v = 0u64;
    for (i, &x) in bytes.iter().enumerate() {
        v |= (x as u64) << (8 * i);
    }
    Some((v, 1 + n))
}

/// Status flags of an OK packet (`0x00 affected last_insert_id status`).
fn ok_status(p: &[u8]) -> u16 {
    let mut i = 1;
    for _ in 0..2 {
        match lenenc(p.get(i..).unwrap_or(&[])) {
            Some((_, n)) => i += n,
            None => return 0,
        }
    }
    match p.get(i..i + 2) {
        Some(s) => u16::from_le_bytes([s[0], s[1]]),
        None => 0,
    }
}

/// Status flags of an EOF (`0xfe warnings status`) or, with DEPRECATE_EOF, an OK led by 0xfe.
fn eof_status(p: &[u8], deprecate_eof: bool) -> u16 {
    if deprecate_eof && p.len() > 5 {
        return ok_status(p);
    }
    match p.get(3..5) {
        Some(s) => u16::from_le_bytes([s[0], s[1]]),
        None => 0,
    }
}

fn more_results(status: u16) -> bool {
    status & SERVER_MORE_RESULTS_EXISTS != 0
}

/// `0xff errno(u16) [#sqlstate] message`: the error number, as MySQL prints it.
fn error_number(p: &[u8]) -> String {
    match p.get(1..3) {
        Some(e) => u16::from_le_bytes([e[0], e[1]]).to_string(),
        None => "error".to_string(),
    }
}

/// 3: a server greeting (protocol 10) or a client packet whose length matches and whose
/// command is COM_QUERY/PREPARE/EXECUTE with plausible content.
fn detect_score(c: &[u8], server: &[u8]) -> u8 {
    if c.is_empty() && server.len() >= 6 && server[3] == 0 && server[4] == 10 {
        let len = u32::from_le_bytes([server[0], server[1], server[2], 0]) as usize;
        if (30..1024).contains(&len) && server[5].is_ascii_digit() {
            return 3;
        }
    }
    if c.len() >= 5 && c[3] == 0 {
        let len = u32::from_le_bytes([c[0], c[1], c[2], 0]) as usize;
        let exact = len + 4 == c.len() || (c.len() >= 256 && len + 4 > c.len());
        if exact && len >= 1 {
            return match c[4] {
                COM_QUERY | COM_STMT_PREPARE
                    if c.len() > 5 && c[5].is_ascii_graphic() || c.get(5) == Some(&b' ') =>
                {
                    3
                }
                COM_STMT_EXECUTE if len >= 10 => 2,
                0x0e if len == 1 => 2, // COM_PING
                COM_QUIT if len == 1 => 2,
                _ => 0,
            };
        }
    }
    0
}

impl ProtocolParser for MysqlParser {
    fn protocol(&self) -> Protocol {
        Protocol::Mysql
    }

    fn feed(&mut self, seg: &Segment<'_>, out: &mut Vec<Operation>) -> Result<(), ParseError> {
        if seg.total_len == 0 || self.phase == Phase::Encrypted {
            return Ok(());
        }
        let i = seg.dir.index();
        let mut framer = std::mem::replace(&mut self.framers[i], Framer::new(0));
        // After losing track, the first header must be where a command or reply starts
        // (sequence 0 or 1): a length read from the middle of a row would swallow what follows.
        let mut strict = framer.is_lost().then_some(match seg.dir {
            Dir::ClientToServer => 0u8,
            Dir::ServerToClient => 1u8,
        });
        let frame = move |h: &[u8]| {
            let f = frame_len(h);
            if let (Some(seq), Frame::Len(len)) = (strict, f) {
                if h[3] != seq || len > 64 * 1024 {
                    return Frame::Bad;
                }
                strict = None;
            }
            f
        };
        let r = match seg.dir {
            Dir::ClientToServer => framer.feed(seg, 0, frame, |m| self.client_packet(m, out)),
            Dir::ServerToClient => {
                let unframed = framer.unframed;
                let r = framer.feed(seg, 0, frame, |m| self.server_packet(m, out));
                if let Some(c) = self.pending.front_mut() {
                    c.response_size += framer.unframed - unframed;
                }
                self.last_server_end_ns = seg.end_ns;
                r
            }
        };
        self.framers[i] = framer;
        self.map(r)
    }

    fn close(&mut self, end_ns: u64, out: &mut Vec<Operation>) {
        while let Some(c) = self.pending.pop_front() {
            self.unanswered(c, end_ns, out);
        }
    }

    fn stats(&self) -> ParserStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(seq: u8, payload: &[u8]) -> Vec<u8> {
        let n = payload.len() as u32;
        let mut v = vec![n as u8, (n >> 8) as u8, (n >> 16) as u8, seq];
        v.extend_from_slice(payload);
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

    fn query(q: &str) -> Vec<u8> {
        let mut p = vec![COM_QUERY];
        p.extend_from_slice(q.as_bytes());
        packet(0, &p)
    }

    #[test]
    fn query_result_set_ok_and_error() {
        let mut p = MysqlParser::new(ParserConfig { query_text: true });
        let mut out = Vec::new();
        p.feed(
            &seg(
                Dir::ClientToServer,
                &query("SELECT id, name FROM users WHERE id = 5"),
                1,
            ),
            &mut out,
        )
        .unwrap();
        // 2 columns, defs, EOF, 1 row, EOF (no DEPRECATE_EOF)
        let mut r = packet(1, &[2]);
        r.extend(packet(2, b"\x03def\x00\x05users\x05users\x02id\x02id\x0c?\x00\x0b\x00\x00\x00\x03\x03\x42\x00\x00\x00"));
        r.extend(packet(3, b"\x03def\x00\x05users\x05users\x04name\x04name\x0c!\x00\xfd\x02\x00\x00\xfd\x00\x00\x00\x00\x00"));
        r.extend(packet(4, &[0xfe, 0, 0, 2, 0]));
        r.extend(packet(5, b"\x015\x03bob"));
        p.feed(&seg(Dir::ServerToClient, &r, 2), &mut out).unwrap();
        assert!(out.is_empty());
        p.feed(
            &seg(Dir::ServerToClient, &packet(6, &[0xfe, 0, 0, 2, 0]), 3),
            &mut out,
        )
        .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(
            (out[0].name.as_ref(), out[0].target.as_deref()),
            ("SELECT", Some("users"))
        );
        assert_eq!(
            out[0].query_text.as_deref(),
            Some("SELECT id, name FROM users WHERE id = ?")
        );
        assert_eq!(out[0].end_ns, 4);

        p.feed(
            &seg(Dir::ClientToServer, &query("INSERT INTO t VALUES (1)"), 5),
            &mut out,
        )
        .unwrap();
        p.feed(
            &seg(Dir::ServerToClient, &packet(1, &[0, 1, 0, 2, 0, 0, 0]), 6),
            &mut out,
        )
        .unwrap();
        p.feed(&seg(Dir::ClientToServer, &query("SELEC oops"), 7), &mut out)
            .unwrap();
        p.feed(
            &seg(
                Dir::ServerToClient,
                &packet(1, b"\xff\x28\x04#42000You have an error"),
                8,
            ),
            &mut out,
        )
        .unwrap();
        assert_eq!(out.len(), 3);
        assert_eq!(
            (out[1].name.as_ref(), out[1].status),
            ("INSERT", Status::Ok)
        );
        assert_eq!(
            (out[2].status, out[2].error.as_deref()),
            (Status::Error, Some("1064"))
        );
    }

    #[test]
    fn prepared_statements_map_ids_to_sql() {
        let mut p = MysqlParser::new(ParserConfig::default());
        let mut out = Vec::new();
        let mut prep = vec![COM_STMT_PREPARE];
        prep.extend_from_slice(b"UPDATE accounts SET v = ? WHERE id = ?");
        p.feed(&seg(Dir::ClientToServer, &packet(0, &prep), 1), &mut out)
            .unwrap();
        // stmt id 7, 0 columns, 2 params: 2 param defs + EOF
        let mut r = packet(1, &[0, 7, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0]);
        r.extend(packet(
            2,
            b"\x03def\0\0\0\x01?\0\x0c?\0\0\0\0\0\x08\x80\0\0\0\0",
        ));
        r.extend(packet(
            3,
            b"\x03def\0\0\0\x01?\0\x0c?\0\0\0\0\0\x08\x80\0\0\0\0",
        ));
        r.extend(packet(4, &[0xfe, 0, 0, 2, 0]));
        p.feed(&seg(Dir::ServerToClient, &r, 2), &mut out).unwrap();
        assert!(out.is_empty() && p.pending.is_empty());
        let exec = packet(
            0,
            &[
                COM_STMT_EXECUTE,
                7,
                0,
                0,
                0,
                0,
                1,
                0,
                0,
                0,
                0,
                1,
                8,
                0,
                8,
                0,
                1,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                2,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
            ],
        );
        p.feed(&seg(Dir::ClientToServer, &exec, 3), &mut out)
            .unwrap();
        p.feed(
            &seg(Dir::ServerToClient, &packet(1, &[0, 1, 0, 2, 0, 0, 0]), 4),
            &mut out,
        )
        .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(
            (out[0].name.as_ref(), out[0].target.as_deref()),
            ("UPDATE", Some("accounts"))
        );
        // COM_STMT_CLOSE has no response and forgets the id
        p.feed(
            &seg(
                Dir::ClientToServer,
                &packet(0, &[COM_STMT_CLOSE, 7, 0, 0, 0]),
                5,
            ),
            &mut out,
        )
        .unwrap();
        assert!(p.statements.is_empty() && p.pending.is_empty());
    }
}
