//! The HTTP/1.x connection tracker (`app::conn::Conn`: heads, chunked bodies, pipelining,
//! request/response matching) on arbitrary segments, as the kernel capture delivers them;
//! every request target also goes through the route heuristic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tapline_receivers::app::conn::{Conn, Dir, Segment, Side};
use tapline_receivers::app::routes;

fuzz_target!(|data: &[u8]| {
    let Some((&first, mut rest)) = data.split_first() else {
        return;
    };
    let local = "127.0.0.1:8080".parse().unwrap();
    let remote = "127.0.0.1:40000".parse().unwrap();
    let mut conn = Conn::new(1, local, remote, first & 1 == 1);
    match (first >> 1) & 3 {
        0 => conn.set_side(Side::Server),
        1 => conn.set_side(Side::Client),
        _ => {} // the tracker decides from the first bytes
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
            dir: if ctrl & 1 == 0 { Dir::In } else { Dir::Out },
            data: &payload[..captured],
            bytes: payload.len() as u64 + u64::from(ctrl >> 3) * 1000,
            start_ns: t,
            end_ns: t + 10,
        };
        t += 100;
        conn.feed(&seg, &mut out);
        if t % 7_000 == 0 {
            conn.expire_unframed(t - 500, &mut out);
        }
    }
    conn.close(&mut out);
    for o in &out {
        assert!(o.end_ns >= o.start_ns, "ends before it starts: {o:?}");
        assert!(o.target.len() <= 64 * 1024, "unbounded target");
        let path = String::from_utf8_lossy(&o.target);
        let route = routes::heuristic(&path);
        assert!(
            route.len() <= path.len().max(1),
            "route {route:?} from {path:?}"
        );
    }
});
