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

/// Decodes a kernel-framed HTTP/1.x exchange described by `input`: the first 35 bytes are the
/// counted fields (start, end, status, both body sizes, the end kind), the rest the request
/// head's captured prefix. Checks the operation's promises.
pub fn drive_exchange(input: &[u8]) {
    use crate::http1::exchange::{operation, End, Exchange};
    let mut fixed = [0u8; 35];
    let n = input.len().min(35);
    fixed[..n].copy_from_slice(&input[..n]);
    let u64_at = |at: usize| u64::from_le_bytes(fixed[at..at + 8].try_into().unwrap());
    let x = Exchange {
        start_ns: u64_at(0),
        end_ns: u64_at(8),
        status: u16::from_le_bytes([fixed[16], fixed[17]]),
        request_body: u64_at(18),
        response_body: u64_at(26),
        end: match fixed[34] % 5 {
            0 => End::Complete,
            1 => End::Close,
            2 => End::Incomplete,
            3 => End::NoResponse,
            _ => End::Unframed,
        },
    };
    let head = &input[n..];
    for capture_headers in [false, true] {
        if let Some(op) = operation(head, &x, capture_headers) {
            assert_eq!(op.request_size, x.request_body);
            assert_eq!(op.response_size, x.response_body);
            check(std::slice::from_ref(&op));
        }
    }
}
