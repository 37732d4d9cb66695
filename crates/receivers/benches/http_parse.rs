//! Parsing + matching throughput of the `app` receiver's userspace: captured HTTP/1.x events
//! (as the kernel delivers them) through the connection tracker into observations, and the
//! observations into metrics and spans.
//!
//! `cargo bench -p tapline-receivers --bench http_parse`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tapline_core::data::buckets::HistogramBuckets;
use tapline_ebpf::app::{AppEvent, DataEvent, Direction, Role, Syscall};
use tapline_receivers::app::discovery::Discovery;
use tapline_receivers::app::report::{ReportOptions, Reporter};
use tapline_receivers::app::routes::{Router, RoutesConfig, Unmatched};
use tapline_receivers::app::tracker::Tracker;

const CONNS: u64 = 64;
const CAPTURE: usize = 256;

fn event(conn: u64, dir: Direction, payload: &[u8], bytes: usize, t: u64) -> AppEvent {
    AppEvent::Data(DataEvent {
        pid: 4242,
        tid: 4242,
        fd: 10 + conn as i32,
        conn_id: 0xffff_8880_0000_0000 + conn * 0x1000,
        local: "127.0.0.1:8080".parse().unwrap(),
        remote: format!("127.0.0.1:{}", 40000 + conn).parse().unwrap(),
        direction: dir,
        bytes: bytes as i64,
        start_ns: t,
        end_ns: t + 2_000,
        role: Role::Server,
        syscall: match dir {
            Direction::Ingress => Syscall::Read,
            Direction::Egress => Syscall::Write,
        },
        data: payload[..payload.len().min(CAPTURE)].to_vec(),
        payload_invisible: false,
        comm: *b"bench\0\0\0\0\0\0\0\0\0\0\0",
    })
}

/// A realistic mix on 64 keep-alive connections: GETs with browser-like headers, a POST with a
/// body, 200/404/500 responses of various sizes (some larger than the capture), and a
/// pipelined pair.
fn workload(rounds: usize) -> Vec<AppEvent> {
    let mut evs = Vec::new();
    let mut t = 1_000_000u64;
    for r in 0..rounds {
        let c = r as u64 % CONNS;
        t += 10_000;
        match r % 4 {
            0 => {
                let req = format!("GET /users/{r}/orders?page=2 HTTP/1.1\r\nHost: shop.local\r\nUser-Agent: Mozilla/5.0\r\nAccept: */*\r\n\r\n");
                evs.push(event(c, Direction::Ingress, req.as_bytes(), req.len(), t));
                let body = 1500;
                let resp = format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {body}\r\n\r\n");
                let mut full = resp.into_bytes();
                full.resize(full.len() + body, b'{');
                evs.push(event(c, Direction::Egress, &full, full.len(), t + 5_000));
            }
            1 => {
                let req = "POST /api/items HTTP/1.1\r\nHost: shop.local\r\nContent-Type: application/json\r\nContent-Length: 27\r\n\r\n{\"name\":\"x\",\"price\":12.50}";
                evs.push(event(c, Direction::Ingress, req.as_bytes(), req.len(), t));
                let resp = "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}";
                evs.push(event(
                    c,
                    Direction::Egress,
                    resp.as_bytes(),
                    resp.len(),
                    t + 5_000,
                ));
            }
            2 => {
                let req = "GET /missing HTTP/1.1\r\nHost: shop.local\r\n\r\nGET /api/hello.world HTTP/1.1\r\nHost: shop.local\r\n\r\n";
                evs.push(event(c, Direction::Ingress, req.as_bytes(), req.len(), t));
                let resp = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
                evs.push(event(
                    c,
                    Direction::Egress,
                    resp.as_bytes(),
                    resp.len(),
                    t + 5_000,
                ));
            }
            _ => {
                let req = "GET /boom HTTP/1.1\r\nHost: shop.local\r\n\r\n";
                evs.push(event(c, Direction::Ingress, req.as_bytes(), req.len(), t));
                let resp = "HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nerror\r\n0\r\n\r\n";
                evs.push(event(
                    c,
                    Direction::Egress,
                    resp.as_bytes(),
                    resp.len(),
                    t + 5_000,
                ));
            }
        }
    }
    evs
}

fn bench(c: &mut Criterion) {
    let events = workload(20_000);
    let mut g = c.benchmark_group("app_http");
    g.throughput(Throughput::Elements(events.len() as u64));
    g.bench_function("parse_and_match", |b| {
        let mut out = Vec::with_capacity(1024);
        b.iter(|| {
            let mut tracker = Tracker::new(65536, false);
            let mut n = 0;
            for ev in &events {
                tracker.on_event(ev, &mut out);
                n += out.len();
                out.clear();
            }
            black_box(n)
        })
    });
    let mut disc = Discovery::new("/proc", vec![], vec![]);
    let me = disc
        .process(std::process::id())
        .expect("this process in /proc");
    g.bench_function("parse_match_and_report", |b| {
        let mut out = Vec::with_capacity(1024);
        b.iter(|| {
            let mut tracker = Tracker::new(65536, false);
            let mut reporter = Reporter::new(
                Router::new(RoutesConfig {
                    unmatched: Unmatched::Heuristic,
                    max_routes: 100,
                    ..Default::default()
                }),
                ReportOptions::default(),
                &HistogramBuckets::default(),
                true,
                true,
            );
            for ev in &events {
                tracker.on_event(ev, &mut out);
                for o in out.drain(..) {
                    reporter.record(&o, &me);
                }
            }
            black_box((reporter.take_metrics(), reporter.take_spans()))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
