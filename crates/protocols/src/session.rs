//! One connection's protocol: detection, the current parser, and fallback to the next
//! candidate. HTTP/1.x is the exception: a session that settles on it stops, and its caller
//! feeds the connection's own [`Http1Parser`](crate::http1::Http1Parser) (which the caller
//! needs from the first event anyway, for connections whose end it cannot tell).

use crate::{
    detect, new_parser, Dir, Operation, ParserConfig, ParserStats, Protocol, ProtocolParser,
    Segment,
};

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
    /// `Some(Http1)` means: route this connection to the caller's HTTP/1.x parser.
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
