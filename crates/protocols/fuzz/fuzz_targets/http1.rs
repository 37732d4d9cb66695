//! The HTTP/1.x parser (heads, chunked bodies, pipelining, request/response matching) on
//! arbitrary segments, as the kernel capture delivers them; every request target also goes
//! through the route heuristic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tapline_protocols::http1::Http1Parser;
use tapline_protocols::{route, Dir, Segment};

fuzz_target!(|data: &[u8]| {
    let Some((&first, mut rest)) = data.split_first() else {
        return;
    };
    let mut parser = Http1Parser::new(first & 1 == 1);
    match (first >> 1) & 3 {
        0 => parser.set_requests_dir(Dir::ClientToServer),
        1 => parser.set_requests_dir(Dir::ServerToClient),
        _ => {} // the parser decides from the first head
    }
    let mut out = Vec::new();
    let mut t = 1_000u64;
    // [ctrl][len][payload]: ctrl bit 0 = direction, bits 1-2 = how much was captured (all, 256,
    // 16, none), bits 3-7 = bytes the syscall moved beyond the payload (x 1000).
    while rest.len() >= 2 {
        let (ctrl, len) = (rest[0], rest[1] as usize * 4);
        let payload = &rest[2..(2 + len).min(rest.len())];
        rest = &rest[2 + payload.len()..];
        let captured = match (ctrl >> 1) & 3 {
            0 => payload.len(),
            1 => payload.len().min(256),
            2 => payload.len().min(16),
            _ => 0,
        };
        let seg = Segment {
            dir: if ctrl & 1 == 0 {
                Dir::ClientToServer
            } else {
                Dir::ServerToClient
            },
            data: &payload[..captured],
            total_len: payload.len() as u64 + u64::from(ctrl >> 3) * 1000,
            start_ns: t,
            end_ns: t + 10,
        };
        t += 100;
        parser.feed(&seg, &mut out);
        if t % 7_000 == 0 {
            parser.expire_unframed(t - 500, &mut out);
        }
    }
    parser.close(t, &mut out);
    for o in &out {
        assert!(o.end_ns >= o.start_ns, "ends before it starts: {o:?}");
        let target = o.target.as_deref().unwrap_or_default();
        // a head is at most 16 KiB; invalid UTF-8 may triple in size when replaced
        assert!(target.len() <= 64 * 1024, "unbounded target");
        let path = target;
        let route = route::heuristic(path);
        assert!(
            route.len() <= path.len().max(1),
            "route {route:?} from {path:?}"
        );
    }
});
