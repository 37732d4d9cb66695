//! The HTTP/2 + gRPC parser on real traffic: a python grpcio server and client (C-core HTTP/2
//! and HPACK, Huffman-coded headers, dynamic table) through a recording proxy; counted exactly.
//!
//! `cargo test -p tapline-receivers --test protocols_grpc`. Needs python3 and
//! `pip install grpcio`.

mod protocols_util;

use std::process::Command;
use std::time::Duration;

use protocols_util::*;
use tapline_protocols::{Protocol, Status};
use tapline_test_support::process::run;
use tapline_test_support::{need, ChildGuard};

const SERVER: &str = r#"
import sys, grpc
from concurrent import futures
def echo(req, ctx): return req
def fail(req, ctx): ctx.abort(grpc.StatusCode.NOT_FOUND, "no such thing")
def big(req, ctx): return b"z" * 200000
h = grpc.method_handlers_generic_handler("shop.v1.Catalog", {
    "Echo": grpc.unary_unary_rpc_method_handler(echo),
    "Fail": grpc.unary_unary_rpc_method_handler(fail),
    "Big": grpc.unary_unary_rpc_method_handler(big),
})
s = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
s.add_generic_rpc_handlers((h,))
port = s.add_insecure_port("127.0.0.1:0")
s.start()
print(port, flush=True)
s.wait_for_termination()
"#;

const CLIENT: &str = r#"
import sys, grpc
target, n = sys.argv[1], int(sys.argv[2])
ch = grpc.insecure_channel(target)
echo = ch.unary_unary("/shop.v1.Catalog/Echo")
fail = ch.unary_unary("/shop.v1.Catalog/Fail")
big = ch.unary_unary("/shop.v1.Catalog/Big")
for i in range(n):
    assert echo(b"hello %d" % i, timeout=10) == b"hello %d" % i
for i in range(n // 10):
    try:
        fail(b"x", timeout=10)
        raise SystemExit("Fail succeeded")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.NOT_FOUND
tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
assert len(big(b"", timeout=10, metadata=(("traceparent", tp),))) == 200000
ch.close()
"#;

#[test]
fn grpcio_unary_calls_count_exactly() {
    const N: usize = 300;
    let python = need("python3", "apt-get install python3");
    let check = Command::new(&python)
        .args(["-c", "import grpc"])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "python grpc module missing: `pip install grpcio`"
    );
    let mut server = Command::new(&python)
        .args(["-c", SERVER])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start grpc server");
    let mut line = String::new();
    {
        use std::io::BufRead;
        let stdout = server.stdout.take().unwrap();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap();
    }
    let _guard = ChildGuard::adopt("peer", server);
    let port: u16 = line.trim().parse().expect("server port");
    let proxy = Proxy::start(format!("127.0.0.1:{port}").parse().unwrap());
    run(
        Command::new(&python).args(["-c", CLIENT, &proxy.addr(), &N.to_string()]),
        Duration::from_secs(120),
    );
    let reads = proxy.finish();
    // The largest capture the app receiver allows: everything exact.
    let (ops, protocols) = replay_sessions(&reads, port, 4096, false);
    assert!(
        protocols.values().all(|p| *p == Some(Protocol::Http2)),
        "{protocols:?}"
    );
    let t = tally(&ops);
    assert_eq!(count(&ops, "shop.v1.Catalog/Echo", None), N, "{t:#?}");
    assert_eq!(count(&ops, "shop.v1.Catalog/Fail", None), N / 10, "{t:#?}");
    assert_eq!(ops.len(), N + N / 10 + 1, "{t:#?}");
    assert!(ops.iter().all(|o| o.protocol == Protocol::Grpc), "{t:#?}");
    let echo: Vec<_> = ops
        .iter()
        .filter(|o| o.name == "shop.v1.Catalog/Echo")
        .collect();
    assert!(
        echo.iter()
            .all(|o| o.status == Status::Grpc(0) && o.error.is_none()),
        "{t:#?}"
    );
    // 5-byte gRPC frame + "hello N"
    assert!(echo
        .iter()
        .all(|o| o.request_size == o.response_size && o.request_size >= 5 + 7));
    let fail: Vec<_> = ops
        .iter()
        .filter(|o| o.name == "shop.v1.Catalog/Fail")
        .collect();
    assert!(fail
        .iter()
        .all(|o| o.status == Status::Grpc(5) && o.error.as_deref() == Some("NOT_FOUND")));
    let big = ops
        .iter()
        .find(|o| o.name == "shop.v1.Catalog/Big")
        .expect("the Big call");
    assert_eq!(big.response_size, 200_000 + 5, "DATA skipped by length");
    // Its metadata carried a W3C trace context (HPACK-coded by grpcio); the others none.
    let tp = big.traceparent.expect("the Big call's traceparent");
    assert_eq!(
        (tp.trace_id, tp.parent_id, tp.flags),
        (
            0x4bf92f3577b34da6a3ce929d0e0e4736u128.to_be_bytes(),
            0x00f067aa0ba902b7u64.to_be_bytes(),
            1
        )
    );
    assert!(echo.iter().all(|o| o.traceparent.is_none()));
    // The trailers (grpc-status) follow the last DATA bytes; when the proxy read them in the
    // same read as more than 4 KiB of DATA, they lie past the captured prefix, exactly as in
    // the kernel capture: the status stays unknown rather than guessed, and the call is
    // reported as a response that began but whose end was not seen.
    assert!(
        match big.status {
            Status::Grpc(0) => big.error.is_none(),
            Status::Unknown => big.error.as_deref() == Some("response_incomplete"),
            _ => false,
        },
        "{big:?}"
    );

    // The default 256 bytes: the client's first write (preface, SETTINGS, first HEADERS) is
    // longer, so the HPACK entry holding the Echo path was never seen and later Echo calls
    // reference it: they count, with an unknown name. Paths first sent later are named.
    let (small, _) = replay_sessions(&reads, port, 256, false);
    let t = tally(&small);
    assert_eq!(
        count(&small, "shop.v1.Catalog/Fail", None),
        N / 10,
        "{t:#?}"
    );
    assert_eq!(
        count(&small, "shop.v1.Catalog/Echo", None) + count(&small, "unknown", None),
        N,
        "{t:#?}"
    );
    assert_eq!(small.len(), N + N / 10 + 1, "{t:#?}");
    assert!(small
        .iter()
        .filter(|o| o.name != "shop.v1.Catalog/Big")
        .all(|o| o.protocol == Protocol::Grpc && o.end_ns >= o.start_ns));
}
