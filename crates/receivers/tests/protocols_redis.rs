//! The Redis parser on real traffic: redis-server answering redis-benchmark (plain and
//! pipelined) and a raw client, through a recording proxy; every operation counted exactly.
//!
//! `cargo test -p tapline-receivers --test protocols_redis`. Needs `apt-get install redis-server`
//! (redis-server, redis-benchmark).

mod peers;
mod protocols_util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use peers::redis;
use protocols_util::*;
use tapline_protocols::{Protocol, Status};
use tapline_test_support::need;
use tapline_test_support::process::run;

fn benchmark(proxy: &Proxy, n: usize, pipeline: usize) {
    let bench = need("redis-benchmark", "apt-get install redis-server");
    run(
        Command::new(bench).args([
            "-h",
            "127.0.0.1",
            "-p",
            &proxy.port.to_string(),
            "-n",
            &n.to_string(),
            "-c",
            "4",
            "-P",
            &pipeline.to_string(),
            "-t",
            "set,get,incr,lpush,lpop",
            "-q",
        ]),
        Duration::from_secs(120),
    );
}

#[test]
fn redis_benchmark_counts_exactly() {
    const N: usize = 2000;
    let redis = redis();
    let proxy = Proxy::start(format!("127.0.0.1:{}", redis.port).parse().unwrap());
    benchmark(&proxy, N, 1);
    let reads = proxy.finish();
    // the default capture (256 bytes): every command and reply fits
    let (ops, protocols) = replay_sessions(&reads, redis.port, 256, false);
    assert!(
        protocols.values().all(|p| *p == Some(Protocol::Redis)),
        "{protocols:?}"
    );
    for name in ["SET", "GET", "INCR", "LPUSH", "LPOP"] {
        assert_eq!(count(&ops, name, None), N, "{name}: {:?}", tally(&ops));
    }
    assert!(ops
        .iter()
        .all(|o| o.status == Status::Ok && o.end_ns >= o.start_ns && o.response_size > 0));
    let set = ops.iter().find(|o| o.name == "SET").unwrap();
    assert_eq!(set.response_size, 5, "+OK\\r\\n");
}

#[test]
fn redis_benchmark_pipelined_counts_exactly() {
    const N: usize = 4000;
    let redis = redis();
    let proxy = Proxy::start(format!("127.0.0.1:{}", redis.port).parse().unwrap());
    benchmark(&proxy, N, 16);
    let reads = proxy.finish();
    // 16 commands per write: the largest capture the app receiver allows holds them
    let (ops, _) = replay_sessions(&reads, redis.port, 4096, false);
    for name in ["SET", "GET", "INCR", "LPUSH", "LPOP"] {
        assert_eq!(count(&ops, name, None), N, "{name}: {:?}", tally(&ops));
    }
    // with a 256-byte capture most of each pipelined write is invisible: the parser must not
    // invent operations, and must count those it could see
    let (ops, _) = replay_sessions(&reads, redis.port, 256, false);
    for name in ["SET", "GET", "INCR", "LPUSH", "LPOP"] {
        let c = count(&ops, name, None);
        assert!(c > 0 && c <= N, "{name}: {c}");
    }
}

#[test]
fn errors_large_values_and_resp3() {
    let redis = redis();
    let proxy = Proxy::start(format!("127.0.0.1:{}", redis.port).parse().unwrap());
    let mut c = TcpStream::connect(proxy.addr()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let big = "v".repeat(100_000);
    let mut buf = vec![0u8; 256 * 1024];
    let mut read_until = |c: &mut TcpStream, done: &dyn Fn(&[u8]) -> bool| {
        let mut got = Vec::new();
        while !done(&got) {
            let n = c.read(&mut buf).expect("redis replies");
            assert!(n > 0, "redis closed: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
    };
    // a 100 kB value, alone
    c.write_all(format!("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${}\r\n{big}\r\n", big.len()).as_bytes())
        .unwrap();
    read_until(&mut c, &|g| g == b"+OK\r\n");
    // one write: an error (wrong type), an unknown command, RESP3, and the 100 kB value read back
    let mut req = String::from("*3\r\n$5\r\nLPUSH\r\n$1\r\nk\r\n$1\r\nx\r\n");
    req.push_str("*1\r\n$7\r\nNOSUCHX\r\n");
    req.push_str("*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n");
    req.push_str(
        "*4\r\n$4\r\nHSET\r\n$1\r\nh\r\n$1\r\nf\r\n$1\r\nv\r\n*2\r\n$7\r\nHGETALL\r\n$1\r\nh\r\n",
    );
    req.push_str("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
    c.write_all(req.as_bytes()).unwrap();
    read_until(&mut c, &|g| g.ends_with(b"vvvv\r\n") && g.len() > 100_000);
    drop(c);
    let reads = proxy.finish();
    // the largest capture the app receiver allows: every reply header is visible
    let (ops, _) = replay_sessions(&reads, redis.port, 4096, false);
    let names: Vec<_> = ops.iter().map(|o| o.name.to_string()).collect();
    assert_eq!(
        names,
        ["SET", "LPUSH", "NOSUCHX", "HELLO", "HSET", "HGETALL", "GET"],
        "{ops:#?}"
    );
    assert_eq!(ops[1].error.as_deref(), Some("WRONGTYPE"));
    assert_eq!(ops[2].error.as_deref(), Some("ERR"));
    assert_eq!(
        ops[6].response_size,
        9 + 100_000 + 2,
        "the 100 kB value, skipped by its length"
    );
    assert_eq!(ops[0].request_size as usize, 4 + 9 + 7 + 9 + 100_000 + 2);
    // the default capture: the 100 kB SET still counts exactly (sized by its length)
    let (small, _) = replay_sessions(&reads, redis.port, 256, false);
    assert_eq!(small[0].name, "SET");
    assert_eq!(small[0].request_size, ops[0].request_size);
    assert!(ops
        .iter()
        .enumerate()
        .all(|(i, o)| (i == 1 || i == 2) == (o.status == Status::Error)));
    assert!(small.len() <= ops.len());
}
