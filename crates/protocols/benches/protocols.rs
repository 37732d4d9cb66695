//! Throughput of the protocol parsers: captured segments (256-byte prefixes, true sizes) of
//! realistic request/response traffic on 64 connections, fed to one parser per connection.
//! Reported as segments (syscall events) per second on one core.
//!
//! `cargo bench -p tapline-protocols --bench protocols`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tapline_protocols::{new_parser, Dir, Operation, ParserConfig, Protocol, Segment};

const CONNS: usize = 64;
const CAPTURE: usize = 256;

struct Ev {
    conn: usize,
    dir: Dir,
    data: Vec<u8>,
    total: u64,
}

fn ev(conn: usize, dir: Dir, full: &[u8]) -> Ev {
    Ev {
        conn,
        dir,
        data: full[..full.len().min(CAPTURE)].to_vec(),
        total: full.len() as u64,
    }
}

fn redis(rounds: usize) -> Vec<Ev> {
    let mut v = Vec::new();
    for r in 0..rounds {
        let c = r % CONNS;
        let key = format!("user:{r}:session");
        let val = "x".repeat(100 + r % 400);
        v.push(ev(
            c,
            Dir::ClientToServer,
            format!(
                "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${}\r\n{val}\r\n",
                key.len(),
                val.len()
            )
            .as_bytes(),
        ));
        v.push(ev(c, Dir::ServerToClient, b"+OK\r\n"));
        v.push(ev(
            c,
            Dir::ClientToServer,
            format!("*2\r\n$3\r\nGET\r\n${}\r\n{key}\r\n", key.len()).as_bytes(),
        ));
        v.push(ev(
            c,
            Dir::ServerToClient,
            format!("${}\r\n{val}\r\n", val.len()).as_bytes(),
        ));
    }
    v
}

fn pg_msg(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![kind];
    m.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    m.extend_from_slice(body);
    m
}

fn postgres(rounds: usize) -> Vec<Ev> {
    let mut v = Vec::new();
    for r in 0..rounds {
        let c = r % CONNS;
        let mut req = pg_msg(
            b'P',
            b"\0UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2;\0\0\0",
        );
        req.extend(pg_msg(
            b'B',
            b"\0\0\0\0\0\x02\0\0\0\x041234\0\0\0\x0599999\0\0",
        ));
        req.extend(pg_msg(b'D', b"P\0"));
        req.extend(pg_msg(b'E', b"\0\0\0\0\0"));
        req.extend(pg_msg(b'S', b""));
        v.push(ev(c, Dir::ClientToServer, &req));
        let mut resp = pg_msg(b'1', b"");
        resp.extend(pg_msg(b'2', b""));
        resp.extend(pg_msg(b'n', b""));
        resp.extend(pg_msg(b'C', b"UPDATE 1\0"));
        resp.extend(pg_msg(b'Z', b"T"));
        v.push(ev(c, Dir::ServerToClient, &resp));
        let q = format!("SELECT abalance FROM pgbench_accounts WHERE aid = {r};\0");
        v.push(ev(c, Dir::ClientToServer, &pg_msg(b'Q', q.as_bytes())));
        let mut resp = pg_msg(b'T', &[0u8; 27]);
        resp.extend(pg_msg(b'D', b"\0\x01\0\0\0\x04-123"));
        resp.extend(pg_msg(b'C', b"SELECT 1\0"));
        resp.extend(pg_msg(b'Z', b"T"));
        v.push(ev(c, Dir::ServerToClient, &resp));
    }
    v
}

fn my_packet(seq: u8, payload: &[u8]) -> Vec<u8> {
    let n = payload.len() as u32;
    let mut p = vec![n as u8, (n >> 8) as u8, (n >> 16) as u8, seq];
    p.extend_from_slice(payload);
    p
}

fn mysql(rounds: usize) -> Vec<Ev> {
    let mut v = Vec::new();
    for r in 0..rounds {
        let c = r % CONNS;
        let q = format!("\x03SELECT id, name FROM shop.items WHERE id = {r}");
        v.push(ev(c, Dir::ClientToServer, &my_packet(0, q.as_bytes())));
        let mut resp = my_packet(1, &[2]);
        resp.extend(my_packet(2, b"\x03def\x04shop\x05items\x05items\x02id\x02id\x0c?\x00\x0b\x00\x00\x00\x03\x03\x42\x00\x00\x00"));
        resp.extend(my_packet(3, b"\x03def\x04shop\x05items\x05items\x04name\x04name\x0c!\x00\xfd\x02\x00\x00\xfd\x00\x00\x00\x00\x00"));
        resp.extend(my_packet(4, &[0xfe, 0, 0, 2, 0]));
        resp.extend(my_packet(5, b"\x015\x03bob"));
        resp.extend(my_packet(6, &[0xfe, 0, 0, 2, 0]));
        v.push(ev(c, Dir::ServerToClient, &resp));
        let q = format!("\x03INSERT INTO shop.items VALUES ({r}, 'name-{r}', NULL)");
        v.push(ev(c, Dir::ClientToServer, &my_packet(0, q.as_bytes())));
        v.push(ev(
            c,
            Dir::ServerToClient,
            &my_packet(1, &[0, 1, 0, 2, 0, 0, 0]),
        ));
    }
    v
}

fn kafka_frame(body: &[u8]) -> Vec<u8> {
    let mut f = (body.len() as i32).to_be_bytes().to_vec();
    f.extend_from_slice(body);
    f
}

fn kafka(rounds: usize) -> Vec<Ev> {
    let mut v = Vec::new();
    for r in 0..rounds {
        let c = r % CONNS;
        let corr = (r as i32).to_be_bytes();
        // produce v9 (flexible): header v2, null transactional id, acks -1, 1 topic, 1 partition
        let mut b = vec![0, 0, 0, 9];
        b.extend_from_slice(&corr);
        b.extend_from_slice(b"\0\x08producer\0\0\xff\xff\0\0\x75\x30\x02\x07orders\x02\0\0\0\0");
        b.extend_from_slice(&[0x80, 0x08]); // records: 1023 bytes (uvarint 1024)
        b.extend(std::iter::repeat_n(0x11u8, 1023));
        b.extend_from_slice(&[0, 0, 0]);
        v.push(ev(c, Dir::ClientToServer, &kafka_frame(&b)));
        let mut b = corr.to_vec();
        b.extend_from_slice(b"\0\x02\x07orders\x02\0\0\0\0\0\0\0\0\0\0\0\0\0\x2a\xff\xff\xff\xff\xff\xff\xff\xff\0\0\0\0\0\0\0\0\x01\0\0\0\0\0\0\0\0\0");
        v.push(ev(c, Dir::ServerToClient, &kafka_frame(&b)));
    }
    v
}

fn http2(rounds: usize) -> Vec<Ev> {
    let frame = |t: u8, flags: u8, stream: u32, payload: &[u8]| {
        let n = payload.len() as u32;
        let mut f = vec![(n >> 16) as u8, (n >> 8) as u8, n as u8, t, flags];
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    };
    let mut v = Vec::new();
    let mut first = [true; CONNS];
    for r in 0..rounds {
        let c = r % CONNS;
        let stream = 1 + 2 * (r / CONNS) as u32;
        let mut req = Vec::new();
        if first[c] {
            req.extend_from_slice(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
            req.extend(frame(4, 0, 0, &[]));
        }
        let mut hb = vec![0x83, 0x86];
        if first[c] {
            hb.extend_from_slice(
                b"\x44\x15/shop.v1.Catalog/Echo\x40\x0ccontent-type\x10application/grpc",
            );
        } else {
            hb.extend_from_slice(&[0xbf, 0xbe]);
        }
        req.extend(frame(1, 4, stream, &hb));
        req.extend(frame(
            0,
            1,
            stream,
            &[0, 0, 0, 0, 10, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
        ));
        v.push(ev(c, Dir::ClientToServer, &req));
        let mut resp = Vec::new();
        let mut rh = vec![0x88];
        if first[c] {
            rh.extend_from_slice(b"\x40\x0ccontent-type\x10application/grpc");
        } else {
            rh.push(0xbe);
        }
        resp.extend(frame(1, 4, stream, &rh));
        resp.extend(frame(
            0,
            0,
            stream,
            &[0, 0, 0, 0, 10, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
        ));
        resp.extend(frame(1, 5, stream, b"\x00\x0bgrpc-status\x010"));
        v.push(ev(c, Dir::ServerToClient, &resp));
        first[c] = false;
    }
    v
}

fn run(protocol: Protocol, evs: &[Ev], out: &mut Vec<Operation>) -> usize {
    let config = ParserConfig { query_text: true };
    let mut parsers: Vec<_> = (0..CONNS)
        .map(|_| new_parser(protocol, config).expect("a parser"))
        .collect();
    let mut n = 0;
    for (i, e) in evs.iter().enumerate() {
        let seg = Segment {
            dir: e.dir,
            data: &e.data,
            total_len: e.total,
            start_ns: i as u64 * 1000,
            end_ns: i as u64 * 1000 + 500,
        };
        let _ = parsers[e.conn].feed(&seg, out);
        n += out.len();
        out.clear();
    }
    n
}

fn bench(c: &mut Criterion) {
    let workloads: [(&str, Protocol, Vec<Ev>, usize); 5] = [
        ("redis", Protocol::Redis, redis(20_000), 40_000),
        ("postgres", Protocol::Postgres, postgres(10_000), 20_000),
        ("mysql", Protocol::Mysql, mysql(10_000), 20_000),
        ("kafka", Protocol::Kafka, kafka(20_000), 20_000),
        ("http2_grpc", Protocol::Http2, http2(20_000), 20_000),
    ];
    let mut g = c.benchmark_group("protocols");
    for (name, protocol, evs, expected) in &workloads {
        let mut out = Vec::new();
        // the workload must parse: every round's operations come out
        assert_eq!(run(*protocol, evs, &mut out), *expected, "{name}");
        g.throughput(Throughput::Elements(evs.len() as u64));
        g.bench_function(*name, |b| {
            b.iter(|| black_box(run(*protocol, black_box(evs), &mut out)))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(std::time::Duration::from_secs(4));
    targets = bench
}
criterion_main!(benches);
