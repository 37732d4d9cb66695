//! Throughput of the `app` receiver's userspace: captured HTTP/1.x events (as the kernel
//! delivers them) through the connection tracker (protocol detection, then the HTTP/1.x parser)
//! into observations, and the observations into metrics and spans. The parser alone is
//! `cargo bench -p tapline-protocols --bench http_parse`.
//!
//! `cargo bench -p tapline-receivers --bench app_report`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tapline_core::data::buckets::HistogramBuckets;
use tapline_ebpf::app::{AppEvent, DataEvent, Direction, Role, Syscall};
use tapline_protocols::workloads;
use tapline_receivers::app::discovery::Discovery;
use tapline_receivers::app::report::{ReportOptions, Reporter};
use tapline_receivers::app::routes::{Router, RoutesConfig, Unmatched};
use tapline_receivers::app::tracker::Tracker;

const CONNS: u64 = 64;
const CAPTURE: usize = 256;

/// A server's data event on connection `conn` (port 8080).
fn event(conn: u64, dir: Direction, payload: &[u8], bytes: usize, t: u64) -> AppEvent {
    event_of(Role::Server, conn, dir, payload, bytes, t)
}

/// A data event of the server (pid 4242, port 8080) or of its client (pid 5151) on connection
/// `conn`; an empty payload with `bytes` > 0 is a sendfile (no payload visible).
fn event_of(
    role: Role,
    conn: u64,
    dir: Direction,
    payload: &[u8],
    bytes: usize,
    t: u64,
) -> AppEvent {
    let server = "127.0.0.1:8080".parse().unwrap();
    let client = format!("127.0.0.1:{}", 40000 + conn).parse().unwrap();
    let (pid, local, remote, conn_id) = match role {
        Role::Client => (5151, client, server, 0xffff_8880_1000_0000 + conn * 0x1000),
        _ => (4242, server, client, 0xffff_8880_0000_0000 + conn * 0x1000),
    };
    let invisible = payload.is_empty() && bytes > 0;
    AppEvent::Data(DataEvent {
        pid,
        tid: pid,
        fd: 10 + conn as i32,
        conn_id,
        local,
        remote,
        direction: dir,
        bytes: bytes as i64,
        start_ns: t,
        end_ns: t + 2_000,
        role,
        syscall: match (dir, invisible) {
            (Direction::Egress, true) => Syscall::Sendfile,
            (Direction::Ingress, _) => Syscall::Read,
            (Direction::Egress, false) => Syscall::Write,
        },
        data: payload[..payload.len().min(CAPTURE)].to_vec(),
        payload_invisible: invisible,
        comm: *b"bench\0\0\0\0\0\0\0\0\0\0\0",
    })
}

/// What `scripts/bench app-overhead` produces, both ends traced: wrk writes
/// `GET /`, nginx reads it, writes its head (writev) and sends a 612-byte file (sendfile), wrk
/// reads head and body; 32 keep-alive connections, five events per request.
fn nginx_wrk_workload(requests: usize) -> Vec<AppEvent> {
    let req = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n";
    let head = b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Fri, 27 Nov 2026 05:00:00 GMT\r\nContent-Type: text/html\r\nContent-Length: 612\r\nLast-Modified: Fri, 27 Nov 2026 04:00:00 GMT\r\nConnection: keep-alive\r\nETag: \"6747a0c0-264\"\r\nAccept-Ranges: bytes\r\n\r\n";
    let mut response = head.to_vec();
    response.resize(head.len() + 612, b'a');
    let mut evs = Vec::with_capacity(requests * 5);
    let mut t = 1_000_000u64;
    for r in 0..requests {
        let c = r as u64 % 32;
        t += 10_000;
        evs.push(event_of(
            Role::Client,
            c,
            Direction::Egress,
            req,
            req.len(),
            t,
        ));
        evs.push(event_of(
            Role::Server,
            c,
            Direction::Ingress,
            req,
            req.len(),
            t + 1_000,
        ));
        evs.push(event_of(
            Role::Server,
            c,
            Direction::Egress,
            head,
            head.len(),
            t + 2_000,
        ));
        evs.push(event_of(
            Role::Server,
            c,
            Direction::Egress,
            &[],
            612,
            t + 3_000,
        ));
        evs.push(event_of(
            Role::Client,
            c,
            Direction::Ingress,
            &response,
            response.len(),
            t + 4_000,
        ));
    }
    evs
}

/// [`workloads::http1_mix`] as the server's reads and writes (the response 5 µs after its
/// request).
fn workload(rounds: usize) -> Vec<AppEvent> {
    let mut evs = Vec::with_capacity(rounds * 2);
    let mut t = 1_000_000u64;
    for x in workloads::http1_mix(rounds, CONNS) {
        t += 10_000;
        let (req, resp) = (&x.request, &x.response);
        evs.push(event(x.conn, Direction::Ingress, req, req.len(), t));
        evs.push(event(
            x.conn,
            Direction::Egress,
            resp,
            resp.len(),
            t + 5_000,
        ));
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
    let report_all = |events: &[AppEvent]| {
        let mut out = Vec::with_capacity(1024);
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
        for ev in events {
            tracker.on_event(ev, &mut out);
            for o in out.drain(..) {
                reporter.record(&o, &me);
            }
        }
        // Spans still waiting for a client span on this host leave too.
        reporter.expire_links(u64::MAX);
        (reporter.take_metrics(), reporter.take_spans())
    };
    g.bench_function("parse_match_and_report", |b| {
        b.iter(|| black_box(report_all(&events)))
    });
    g.finish();
    // both ends of nginx + wrk: 5 events and 2 observations (server and client) per request
    let shaped = nginx_wrk_workload(8_000);
    let observed = report_all(&shaped);
    let spans: usize = observed
        .1
        .iter()
        .flat_map(|t| &t.resource_spans)
        .map(|r| r.spans.len())
        .sum();
    assert_eq!(
        spans,
        2 * 8_000,
        "one server and one client span per request"
    );
    let mut g = c.benchmark_group("app_http_nginx_wrk");
    g.throughput(Throughput::Elements(shaped.len() as u64));
    g.bench_function("parse_match_and_report", |b| {
        b.iter(|| black_box(report_all(&shaped)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
