//! HTTP/2 (RFC 9113) and gRPC over it.
//!
//! Frames are cut by their 9-byte headers (payloads skipped by length, captured or not). Header
//! blocks (HEADERS + CONTINUATION, and PUSH_PROMISE, which must be decoded to keep the HPACK
//! table in step) are decoded with one HPACK [`Decoder`] per direction. A stream is a request
//! when the client opens it (`:method`, `:path`, `content-type`) and an operation when the
//! server ends it (END_STREAM on HEADERS or DATA) or either side resets it. gRPC is recognised
//! by `content-type: application/grpc*`; its operation is named `package.Service/Method` and
//! its status comes from `grpc-status` (trailers, or a trailers-only response).
//!
//! Request and response sizes are DATA payload bytes (the bodies).

use std::collections::HashMap;

use crate::conventions::HTTP;
use crate::frame::{FeedError, Frame, Framer, Msg};
use crate::hpack::{Decoder, Field};
use crate::http1::head::TraceParent;
use crate::*;

pub const SPEC: ProtocolSpec = ProtocolSpec {
    protocol: Protocol::Http2,
    name: "http2",
    detect: Some(detect),
    ports: &[50051, 8443, 4317],
    new_parser: Some(|_| Box::new(Http2Parser::new())),
    conventions: HTTP,
};

/// The client connection preface (RFC 9113 section 3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The preface (or part of it) from the client, or a server SETTINGS frame; well-formed
/// frames are only plausible.
fn detect(client: &[u8], server: &[u8]) -> u8 {
    let c = client;
    if !c.is_empty() && (c.starts_with(PREFACE) || PREFACE.starts_with(c)) {
        3
    } else if server.len() >= 9 && server[3] == 4 && server[4] & !1 == 0 && server[5..9] == [0; 4] {
        2
    } else if (!c.is_empty() && plausible_frames(c)) || (c.is_empty() && plausible_frames(server)) {
        1
    } else {
        0
    }
}
/// Streams open at once on one connection (servers usually allow 100-250).
const MAX_STREAMS: usize = 256;
/// Largest header block assembled across frames.
const MAX_BLOCK: usize = 64 * 1024;
const MAX_PATH: usize = 512;
/// Bytes of a frame kept when it spans segments (header blocks are read from it).
const KEEP: usize = 16 * 1024;

const DATA: u8 = 0;
const HEADERS: u8 = 1;
const PRIORITY: u8 = 2;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const PUSH_PROMISE: u8 = 5;
const PING: u8 = 6;
const GOAWAY: u8 = 7;
const WINDOW_UPDATE: u8 = 8;
const CONTINUATION: u8 = 9;

const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY_FLAG: u8 = 0x20;

#[derive(Debug, Default)]
struct Stream {
    method: Option<Str>,
    path: Option<Box<str>>,
    grpc: bool,
    start_ns: u64,
    request_body: u64,
    response_body: u64,
    status: Option<u16>,
    grpc_status: Option<u32>,
    grpc_seen: bool,
    /// The W3C trace context the request carried (a header, or gRPC metadata).
    traceparent: Option<TraceParent>,
}

/// A header block being assembled from HEADERS/PUSH_PROMISE + CONTINUATION frames.
#[derive(Debug)]
struct Block {
    stream: u32,
    end_stream: bool,
    push: bool,
    buf: Vec<u8>,
    complete: bool,
    start_ns: u64,
}

pub struct Http2Parser {
    framers: [Framer; 2],
    decoders: [Decoder; 2],
    blocks: [Option<Block>; 2],
    streams: HashMap<u32, Stream>,
    /// The client's first segment was seen (preface or not).
    started: bool,
    /// Bytes of the preface still to skip.
    preface_left: usize,
    stats: ParserStats,
}

impl Default for Http2Parser {
    fn default() -> Self {
        Self::new()
    }
}

fn frame_len(h: &[u8]) -> Frame {
    if h.len() < 9 {
        return Frame::Need(9);
    }
    let len = u32::from_be_bytes([0, h[0], h[1], h[2]]) as u64;
    if h[3] > 0x10 || (h[5] & 0x80) != 0 {
        return Frame::Bad;
    }
    Frame::Len(9 + len)
}

/// Frames that are well formed for their type (used when guessing at detection).
fn plausible_frames(b: &[u8]) -> bool {
    if b.len() < 9 {
        return false;
    }
    let len = u32::from_be_bytes([0, b[0], b[1], b[2]]) as usize;
    let (t, stream) = (b[3], u32::from_be_bytes([b[5] & 0x7f, b[6], b[7], b[8]]));
    let ok = match t {
        SETTINGS => stream == 0 && len.rem_euclid(6) == 0,
        PING => stream == 0 && len == 8,
        WINDOW_UPDATE => len == 4,
        HEADERS | DATA => stream != 0 && len <= 16384,
        _ => false,
    };
    ok && b[5] & 0x80 == 0 && (9 + len == b.len() || 9 + len < b.len() && b.len() - 9 - len >= 9)
}

fn rst_code_name(code: u32) -> &'static str {
    const NAMES: [&str; 14] = [
        "NO_ERROR",
        "PROTOCOL_ERROR",
        "INTERNAL_ERROR",
        "FLOW_CONTROL_ERROR",
        "SETTINGS_TIMEOUT",
        "STREAM_CLOSED",
        "FRAME_SIZE_ERROR",
        "REFUSED_STREAM",
        "CANCEL",
        "COMPRESSION_ERROR",
        "CONNECT_ERROR",
        "ENHANCE_YOUR_CALM",
        "INADEQUATE_SECURITY",
        "HTTP_1_1_REQUIRED",
    ];
    NAMES.get(code as usize).copied().unwrap_or("RST_STREAM")
}

fn method_name(v: &[u8]) -> Str {
    for m in [
        "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE",
    ] {
        if m.as_bytes() == v {
            return Str::Borrowed(m);
        }
    }
    Str::Borrowed("_OTHER")
}

fn parse_u32(v: &[u8]) -> Option<u32> {
    if v.is_empty() || v.len() > 9 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

impl Http2Parser {
    pub fn new() -> Self {
        Http2Parser {
            framers: [Framer::new(KEEP), Framer::new(KEEP)],
            decoders: [Decoder::new(), Decoder::new()],
            blocks: [None, None],
            streams: HashMap::new(),
            started: false,
            preface_left: 0,
            stats: ParserStats::default(),
        }
    }

    fn err(reason: &'static str) -> ParseError {
        ParseError::new(Protocol::Http2, reason)
    }

    fn frame(&mut self, dir: Dir, m: Msg<'_>, out: &mut Vec<Operation>) -> Result<(), ParseError> {
        let h = m.data;
        let len = m.len - 9;
        let (t, flags) = (h[3], h[4]);
        let stream = u32::from_be_bytes([h[5] & 0x7f, h[6], h[7], h[8]]);
        let payload = &h[9..];
        let d = dir.index();
        if self.blocks[d].is_some() && t != CONTINUATION {
            return Err(Self::err("header block interrupted"));
        }
        match t {
            DATA => {
                if stream == 0 {
                    return Err(Self::err("DATA on stream 0"));
                }
                if let Some(s) = self.streams.get_mut(&stream) {
                    match dir {
                        Dir::ClientToServer => s.request_body += len,
                        Dir::ServerToClient => s.response_body += len,
                    }
                }
                if flags & END_STREAM != 0 && dir == Dir::ServerToClient {
                    self.finish(stream, m.end_ns, None, out);
                }
            }
            HEADERS | PUSH_PROMISE => {
                if stream == 0 {
                    return Err(Self::err("HEADERS on stream 0"));
                }
                let mut skip = 0usize;
                let mut pad = 0u64;
                if flags & PADDED != 0 {
                    pad = *payload.first().unwrap_or(&0) as u64;
                    skip += 1;
                }
                let mut target = stream;
                if t == HEADERS && flags & PRIORITY_FLAG != 0 {
                    skip += 5;
                }
                if t == PUSH_PROMISE {
                    if let Some(p) = payload.get(skip..skip + 4) {
                        target = u32::from_be_bytes([p[0] & 0x7f, p[1], p[2], p[3]]);
                    }
                    skip += 4;
                }
                let frag_len = len.saturating_sub(skip as u64 + pad);
                let visible = payload.get(skip..).unwrap_or(&[]);
                let frag = &visible[..visible.len().min(frag_len as usize)];
                let block = Block {
                    stream: target,
                    end_stream: t == HEADERS && flags & END_STREAM != 0,
                    push: t == PUSH_PROMISE,
                    buf: frag.to_vec(),
                    complete: m.complete && (frag.len() as u64) == frag_len,
                    start_ns: m.start_ns,
                };
                if flags & END_HEADERS != 0 {
                    self.header_block(dir, block, m.end_ns, out);
                } else {
                    self.blocks[d] = Some(block);
                }
            }
            CONTINUATION => {
                let Some(mut block) = self.blocks[d].take() else {
                    return Err(Self::err("CONTINUATION without HEADERS"));
                };
                if block.complete && m.complete && block.buf.len() + payload.len() <= MAX_BLOCK {
                    block.buf.extend_from_slice(payload);
                } else {
                    block.complete = false;
                }
                if flags & END_HEADERS != 0 {
                    self.header_block(dir, block, m.end_ns, out);
                } else {
                    self.blocks[d] = Some(block);
                }
            }
            RST_STREAM => {
                if stream == 0 || len != 4 {
                    return Err(Self::err("bad RST_STREAM"));
                }
                let code = payload
                    .get(..4)
                    .map(|p| u32::from_be_bytes([p[0], p[1], p[2], p[3]]))
                    .unwrap_or(2);
                self.finish(stream, m.end_ns, Some(rst_code_name(code)), out);
            }
            SETTINGS if stream != 0 || len.rem_euclid(6) != 0 => {
                return Err(Self::err("bad SETTINGS"))
            }
            PING | GOAWAY if stream != 0 => return Err(Self::err("connection frame on a stream")),
            SETTINGS | PING | GOAWAY => {}
            PRIORITY | WINDOW_UPDATE => {}
            _ => {} // extension frames are ignored, as receivers must
        }
        Ok(())
    }

    fn header_block(&mut self, dir: Dir, block: Block, end_ns: u64, out: &mut Vec<Operation>) {
        let d = dir.index();
        let mut method: Option<Str> = None;
        let mut path: Option<Box<str>> = None;
        let mut status: Option<u16> = None;
        let mut grpc = false;
        let mut grpc_status: Option<u32> = None;
        let mut traceparent: Option<TraceParent> = None;
        let r = self.decoders[d].decode(&block.buf, block.complete, |f: Field<'_>| {
            let (Some(name), Some(value)) = (f.name, f.value) else {
                return;
            };
            match name {
                b":method" => method = Some(method_name(value)),
                b":path" => {
                    path = Some(String::from_utf8_lossy(&value[..value.len().min(MAX_PATH)]).into())
                }
                b":status" => status = parse_u32(value).and_then(|s| u16::try_from(s).ok()),
                b"content-type" => grpc = value.starts_with(b"application/grpc"),
                b"grpc-status" => grpc_status = parse_u32(value),
                b"traceparent" => traceparent = TraceParent::parse(value),
                _ => {}
            }
        });
        if r.is_err() {
            self.stats.resyncs += 1;
        }
        if block.push {
            return; // decoded only to keep the table in step
        }
        match dir {
            Dir::ClientToServer => {
                if let Some(s) = self.streams.get_mut(&block.stream) {
                    // request trailers
                    let _ = s;
                    return;
                }
                if self.streams.len() >= MAX_STREAMS {
                    if let Some(&oldest) = self.streams.keys().min() {
                        self.streams.remove(&oldest);
                        self.stats.pending_dropped += 1;
                    }
                }
                let s = Stream {
                    method,
                    path,
                    grpc,
                    start_ns: block.start_ns,
                    traceparent,
                    ..Default::default()
                };
                self.streams.insert(block.stream, s);
            }
            Dir::ServerToClient => {
                let Some(s) = self.streams.get_mut(&block.stream) else {
                    return;
                };
                if let Some(st) = status {
                    if st >= 200 || s.status.is_none() {
                        s.status = Some(st);
                    }
                }
                if grpc {
                    s.grpc = true;
                }
                if let Some(g) = grpc_status {
                    s.grpc_status = Some(g);
                }
                s.grpc_seen |= grpc_status.is_some();
                if block.end_stream {
                    self.finish(block.stream, end_ns, None, out);
                }
            }
        }
    }

    fn finish(
        &mut self,
        stream: u32,
        end_ns: u64,
        reset: Option<&'static str>,
        out: &mut Vec<Operation>,
    ) {
        let Some(s) = self.streams.remove(&stream) else {
            return;
        };
        out.push(Self::operation(s, end_ns, reset));
    }

    fn operation(s: Stream, end_ns: u64, reset: Option<&'static str>) -> Operation {
        let mut op = if s.grpc {
            let name: Str = match &s.path {
                Some(p) => Str::Owned(p.strip_prefix('/').unwrap_or(p).to_string()),
                None => Str::Borrowed("unknown"),
            };
            let mut op = Operation::new(Protocol::Grpc, name, s.start_ns);
            match s.grpc_status {
                Some(code) => {
                    op.status = Status::Grpc(code);
                    if code != 0 {
                        op.error = Some(Str::Borrowed(grpc::error_type(code)));
                    }
                }
                None => op.status = Status::Unknown,
            }
            op
        } else {
            let mut op = Operation::new(
                Protocol::Http2,
                s.method.unwrap_or(Str::Borrowed("unknown")),
                s.start_ns,
            );
            op.target = s.path.map(|p| Str::Owned(p.into()));
            op.status = s.status.map(Status::Http).unwrap_or(Status::Unknown);
            op
        };
        if let Some(r) = reset {
            if !matches!(op.status, Status::Grpc(_)) {
                op.status = Status::Unknown;
            }
            op.error.get_or_insert(Str::Borrowed(r));
        }
        op.end_ns = end_ns.max(s.start_ns);
        op.traceparent = s.traceparent;
        op.request_size = s.request_body;
        op.response_size = s.response_body;
        op
    }
}

impl ProtocolParser for Http2Parser {
    fn protocol(&self) -> Protocol {
        Protocol::Http2
    }

    fn feed(&mut self, seg: &Segment<'_>, out: &mut Vec<Operation>) -> Result<(), ParseError> {
        if seg.total_len == 0 {
            return Ok(());
        }
        let d = seg.dir.index();
        let mut from = 0u64;
        if seg.dir == Dir::ClientToServer {
            let v = seg.visible();
            if !self.started {
                self.started = true;
                if !v.is_empty() && PREFACE.starts_with(&v[..v.len().min(PREFACE.len())]) {
                    self.preface_left = PREFACE.len();
                } else {
                    // joined after the start: earlier table entries are unknown
                    self.decoders[0].forget();
                    self.decoders[1].forget();
                }
            }
            if self.preface_left > 0 {
                let n = (self.preface_left as u64).min(seg.total_len);
                let seen = PREFACE.len() - self.preface_left;
                let vis = &v[..v.len().min(n as usize)];
                if vis != &PREFACE[seen..seen + vis.len()] {
                    return Err(Self::err("bad connection preface"));
                }
                self.preface_left -= n as usize;
                from = n;
            }
        }
        let mut framer = std::mem::replace(&mut self.framers[d], Framer::new(0));
        let was_lost = framer.is_lost();
        let r = framer.feed(seg, from, frame_len, |m| self.frame(seg.dir, m, out));
        if framer.is_lost() && !was_lost {
            // frames we cannot see may have changed the HPACK table or ended a header block
            self.decoders[d].forget();
            self.blocks[d] = None;
        }
        self.framers[d] = framer;
        self.stats.resyncs = self
            .stats
            .resyncs
            .max(self.framers[0].resyncs + self.framers[1].resyncs);
        match r {
            Ok(()) => Ok(()),
            Err(FeedError::Bad) => {
                self.decoders[d].forget();
                self.blocks[d] = None;
                Err(Self::err("bad frame header"))
            }
            Err(FeedError::Callback(e)) => {
                self.framers[d].lose();
                self.decoders[d].forget();
                self.blocks[d] = None;
                Err(e)
            }
        }
    }

    fn close(&mut self, end_ns: u64, out: &mut Vec<Operation>) {
        let mut ids: Vec<u32> = self.streams.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            if let Some(s) = self.streams.remove(&id) {
                // A response had begun (headers or data seen) but its end was not: cut short,
                // or its trailers lay past a captured prefix. Otherwise nothing came back.
                let began = s.status.is_some() || s.grpc_seen || s.response_body > 0;
                let mut op = Self::operation(s, end_ns, None);
                op.status = Status::Unknown;
                op.error = Some(
                    if began {
                        ERROR_INCOMPLETE
                    } else {
                        ERROR_NO_RESPONSE
                    }
                    .into(),
                );
                out.push(op);
            }
        }
    }

    fn stats(&self) -> ParserStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(t: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let n = payload.len() as u32;
        let mut v = vec![(n >> 16) as u8, (n >> 8) as u8, n as u8, t, flags];
        v.extend_from_slice(&stream.to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    fn lit(name: &str, value: &str) -> Vec<u8> {
        // literal without indexing, new name
        let mut v = vec![0x00, name.len() as u8];
        v.extend_from_slice(name.as_bytes());
        v.push(value.len() as u8);
        v.extend_from_slice(value.as_bytes());
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

    /// A `traceparent` header (gRPC metadata is HTTP/2 headers too) becomes the operation's
    /// trace context; a malformed one is ignored.
    #[test]
    fn an_incoming_traceparent_is_kept_for_http2_and_grpc() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        for (grpc, value, want) in [
            (false, tp, true),
            (true, tp, true),
            (true, "00-zz-00f067aa0ba902b7-01", false),
        ] {
            let mut p = Http2Parser::new();
            let mut out = Vec::new();
            let mut c = PREFACE.to_vec();
            let mut hb = vec![0x83, 0x86, 0x44, 15];
            hb.extend_from_slice(b"/pkg.Svc/Method");
            if grpc {
                hb.extend(lit("content-type", "application/grpc"));
            }
            hb.extend(lit("traceparent", value));
            c.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, &hb));
            p.feed(&seg(Dir::ClientToServer, &c, 10), &mut out).unwrap();
            let s = frame(HEADERS, END_HEADERS | END_STREAM, 1, &[0x88]);
            p.feed(&seg(Dir::ServerToClient, &s, 20), &mut out).unwrap();
            assert_eq!(out.len(), 1);
            let got = out[0].traceparent;
            assert_eq!(got.is_some(), want, "grpc {grpc}, {value}");
            if let Some(tp) = got {
                assert_eq!(tp.trace_id[..4], [0x4b, 0xf9, 0x2f, 0x35]);
                assert_eq!(tp.parent_id, [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]);
            }
        }
    }

    #[test]
    fn grpc_unary_call_with_trailers() {
        let mut p = Http2Parser::new();
        let mut out = Vec::new();
        let mut c = PREFACE.to_vec();
        c.extend(frame(SETTINGS, 0, 0, &[]));
        // :method POST, :scheme http, :path (literal with indexing, name idx 4), content-type
        let mut hb = vec![0x83, 0x86, 0x44, 15];
        hb.extend_from_slice(b"/pkg.Svc/Method");
        hb.extend(lit("content-type", "application/grpc"));
        c.extend(frame(HEADERS, END_HEADERS, 1, &hb));
        c.extend(frame(DATA, END_STREAM, 1, &[0, 0, 0, 0, 2, 8, 1]));
        p.feed(&seg(Dir::ClientToServer, &c, 10), &mut out).unwrap();
        let mut s = frame(SETTINGS, 0, 0, &[]);
        s.extend(frame(HEADERS, END_HEADERS, 1, &[0x88]));
        s.extend(frame(DATA, 0, 1, &[0, 0, 0, 0, 0]));
        s.extend(frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            1,
            &lit("grpc-status", "5"),
        ));
        p.feed(&seg(Dir::ServerToClient, &s, 20), &mut out).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].protocol, Protocol::Grpc);
        assert_eq!(out[0].name, "pkg.Svc/Method");
        assert_eq!(
            (out[0].status, out[0].error.as_deref()),
            (Status::Grpc(5), Some("NOT_FOUND"))
        );
        assert_eq!(
            (
                out[0].request_size,
                out[0].response_size,
                out[0].start_ns,
                out[0].end_ns
            ),
            (7, 5, 10, 21)
        );

        // second call reuses the dynamic table entry for the path (index 62)
        let mut hb = vec![0x83, 0x86, 0xbe];
        hb.extend(lit("content-type", "application/grpc"));
        let mut c = frame(HEADERS, END_HEADERS, 3, &hb[..4]);
        c[4] = 0; // no END_HEADERS: the rest comes in a CONTINUATION
        c.extend(frame(CONTINUATION, END_HEADERS, 3, &hb[4..]));
        p.feed(&seg(Dir::ClientToServer, &c, 30), &mut out).unwrap();
        p.feed(
            &seg(
                Dir::ServerToClient,
                &frame(RST_STREAM, 0, 3, &8u32.to_be_bytes()),
                40,
            ),
            &mut out,
        )
        .unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].name, "pkg.Svc/Method");
        assert_eq!(out[1].error.as_deref(), Some("CANCEL"));
    }

    #[test]
    fn plain_http2_and_mid_stream_join() {
        let mut p = Http2Parser::new();
        let mut out = Vec::new();
        // no preface: joined later; index 62 is unknown
        let c = frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            5,
            &[0x82, 0x87, 0xbe, 0x04, 0x02, b'/', b'x'],
        );
        p.feed(&seg(Dir::ClientToServer, &c, 1), &mut out).unwrap();
        p.feed(
            &seg(
                Dir::ServerToClient,
                &frame(HEADERS, END_HEADERS | END_STREAM, 5, &[0x8e]),
                2,
            ),
            &mut out,
        )
        .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(
            (
                out[0].name.as_ref(),
                out[0].target.as_deref(),
                out[0].status
            ),
            ("GET", Some("/x"), Status::Http(500))
        );
    }

    #[test]
    fn truncated_capture_skips_data_by_length() {
        let mut p = Http2Parser::new();
        let mut out = Vec::new();
        let mut c = PREFACE.to_vec();
        c.extend(frame(HEADERS, END_HEADERS, 1, &[0x83, 0x86, 0x84]));
        let mut data = frame(DATA, END_STREAM, 1, &vec![7u8; 100_000]);
        c.append(&mut data);
        let total = c.len() as u64;
        p.feed(
            &Segment {
                dir: Dir::ClientToServer,
                data: &c[..256],
                total_len: total,
                start_ns: 1,
                end_ns: 2,
            },
            &mut out,
        )
        .unwrap();
        p.feed(
            &seg(
                Dir::ServerToClient,
                &frame(HEADERS, END_HEADERS | END_STREAM, 1, &[0x88]),
                3,
            ),
            &mut out,
        )
        .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(
            (out[0].name.as_ref(), out[0].request_size, out[0].status),
            ("POST", 100_000, Status::Http(200))
        );
    }

    #[test]
    fn close_tells_a_cut_response_from_none() {
        let mut p = Http2Parser::new();
        let mut out = Vec::new();
        let mut c = PREFACE.to_vec();
        c.extend(frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            1,
            &[0x82, 0x86, 0x84],
        ));
        c.extend(frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            3,
            &[0x82, 0x86, 0x84],
        ));
        p.feed(&seg(Dir::ClientToServer, &c, 1), &mut out).unwrap();
        // stream 1 gets its headers and some data, then the connection closes; 3 gets nothing
        let mut s = frame(HEADERS, END_HEADERS, 1, &[0x88]);
        s.extend(frame(DATA, 0, 1, &[1, 2, 3]));
        p.feed(&seg(Dir::ServerToClient, &s, 2), &mut out).unwrap();
        p.close(10, &mut out);
        let got: Vec<_> = out.iter().map(|o| (o.status, o.error.as_deref())).collect();
        assert_eq!(
            got,
            vec![
                (Status::Unknown, Some(ERROR_INCOMPLETE)),
                (Status::Unknown, Some(ERROR_NO_RESPONSE))
            ]
        );
    }
}
