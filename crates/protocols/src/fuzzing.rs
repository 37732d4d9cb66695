//! Test and fuzz support: drives a parser with segments described by arbitrary bytes.

use crate::{Dir, Operation, ParserConfig, ProtocolParser, Segment, Session};

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
