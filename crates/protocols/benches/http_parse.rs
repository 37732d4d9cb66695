//! Parsing + matching throughput of the HTTP/1.x parser: captured segments (256-byte prefixes,
//! true sizes) of a realistic mix on 64 keep-alive connections, one parser per connection, as
//! the server sees them. Reported as segments (syscall events) per second on one core. The
//! whole `app` receiver path (events, detection, metrics and spans) is
//! `cargo bench -p tapline-receivers --bench app_report`.
//!
//! `cargo bench -p tapline-protocols --bench http_parse`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tapline_protocols::http1::Http1Parser;
use tapline_protocols::{workloads, Dir, Operation, Segment};

const CONNS: u64 = 64;
const CAPTURE: usize = 256;

struct Ev {
    conn: usize,
    dir: Dir,
    data: Vec<u8>,
    total: u64,
}

fn segments(rounds: usize) -> Vec<Ev> {
    let ev = |conn: u64, dir, full: &[u8]| Ev {
        conn: conn as usize,
        dir,
        data: full[..full.len().min(CAPTURE)].to_vec(),
        total: full.len() as u64,
    };
    workloads::http1_mix(rounds, CONNS)
        .flat_map(|x| {
            [
                ev(x.conn, Dir::ClientToServer, &x.request),
                ev(x.conn, Dir::ServerToClient, &x.response),
            ]
        })
        .collect()
}

fn run(evs: &[Ev], out: &mut Vec<Operation>) -> usize {
    let mut parsers: Vec<Http1Parser> = (0..CONNS)
        .map(|_| {
            let mut p = Http1Parser::new(false);
            p.set_requests_dir(Dir::ClientToServer);
            p
        })
        .collect();
    let mut n = 0;
    for (i, e) in evs.iter().enumerate() {
        let t = i as u64 * 1000;
        let seg = Segment {
            dir: e.dir,
            data: &e.data,
            total_len: e.total,
            start_ns: t,
            end_ns: t + 500,
        };
        parsers[e.conn].feed(&seg, out);
        n += out.len();
        out.clear();
    }
    n
}

fn bench(c: &mut Criterion) {
    let rounds = 20_000;
    let evs = segments(rounds);
    let mut out = Vec::new();
    // the workload must parse: one operation per exchange, two in every pipelined round
    assert_eq!(run(&evs, &mut out), rounds + rounds / 4);
    let mut g = c.benchmark_group("http1");
    g.throughput(Throughput::Elements(evs.len() as u64));
    g.bench_function("parse_and_match", |b| {
        b.iter(|| black_box(run(black_box(&evs), &mut out)))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(std::time::Duration::from_secs(4));
    targets = bench
}
criterion_main!(benches);
