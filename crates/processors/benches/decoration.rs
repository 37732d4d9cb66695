//! The decoration chain on flow data: k8s → rdns (cached) → zones → cidr → select, with 10,000
//! pods and 1,000 services cached. Target: ≥ 1,000,000 data points per second per core.
//!
//! `cargo bench -p tapline-processors --bench decoration`; figures in docs/performance.md.
//! Besides criterion's wall-clock figures it prints points per CPU-second of the benchmarking
//! thread (what one core does, whatever else runs on the machine).
//!
//! For instruction counts (load-independent before/after comparisons):
//! `DECORATION_PROFILE=200 valgrind --tool=callgrind <bench binary>` runs the chain 200 times
//! on one batch and exits, without criterion.

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, BatchSize, Criterion, Throughput};
use tapline_core::data::{Metrics, Resource, ResourceMetrics, Signal};
use tapline_core::pipeline::BatchFn;
use tapline_processors::cidr::{CidrConfig, CidrProcessor};
use tapline_processors::k8s::{K8sCache, K8sProcessor};
use tapline_processors::rdns::{NameCache, RdnsConfig, RdnsProcessor};
use tapline_processors::select::{SelectConfig, SelectProcessor};
use tapline_processors::zones::{ZonesConfig, ZonesProcessor};
use tapline_test_support::fixtures::flow_metric;
use tapline_test_support::fixtures::k8s as fx;

const PODS: usize = 10_000;
const SERVICES: usize = 1_000;
const NODES: usize = 100;
const POINTS: usize = 1_000;

fn pod_ip(p: usize) -> String {
    format!("10.244.{}.{}", p / 250, p % 250 + 1)
}
fn svc_ip(s: usize) -> String {
    format!("10.96.{}.{}", s / 250, s % 250 + 1)
}
fn external_ip(e: usize) -> String {
    format!("203.0.113.{}", e % 250 + 1)
}

fn cache() -> Arc<K8sCache> {
    let cache = Arc::new(K8sCache::new());
    cache.update(|s| {
        for n in 0..NODES {
            s.apply_node(
                &serde_json::from_value(fx::node(
                    &format!("node-{n}"),
                    &format!("192.168.0.{}", n + 1),
                    Some(&format!("zone-{}", n % 3)),
                ))
                .unwrap(),
            );
        }
        for r in 0..3000 {
            s.apply_replicaset(
                &serde_json::from_value(fx::replicaset(
                    &format!("ns-{}", r % 50),
                    &format!("app-{r}-5c6d7f8b9"),
                    &format!("app-{r}"),
                ))
                .unwrap(),
            );
        }
        for i in 0..SERVICES {
            s.apply_service(
                &serde_json::from_value(fx::service(
                    &format!("ns-{}", i % 50),
                    &format!("svc-{i}"),
                    &svc_ip(i),
                ))
                .unwrap(),
            );
        }
        for p in 0..PODS {
            let r = p % 3000;
            s.apply_pod(
                &serde_json::from_value(fx::pod(
                    &format!("ns-{}", r % 50),
                    &format!("app-{r}-5c6d7f8b9-{p:05x}"),
                    &pod_ip(p),
                    &format!("node-{}", p % NODES),
                    &format!("192.168.0.{}", p % NODES + 1),
                    Some(("apps/v1", "ReplicaSet", &format!("app-{r}-5c6d7f8b9"))),
                    &fx::container_id(p),
                ))
                .unwrap(),
            );
        }
    });
    cache
}

/// Pod → service (60%), pod → pod (25%), pod → external (15%), as the flows receiver writes.
fn batch() -> Signal {
    let flows: Vec<(String, String, i64)> = (0..POINTS)
        .map(|i| {
            let src = pod_ip((i * 7919) % PODS);
            let dst = match i % 20 {
                0..=11 => svc_ip((i * 31) % SERVICES),
                12..=16 => pod_ip((i * 104_729) % PODS),
                _ => external_ip(i),
            };
            (src, dst, 1500)
        })
        .collect();
    let refs: Vec<(&str, &str, i64)> = flows
        .iter()
        .map(|(s, d, v)| (s.as_str(), d.as_str(), *v))
        .collect();
    Signal::Metrics(Metrics {
        resource_metrics: vec![ResourceMetrics {
            resource: Resource::new([("host.name", "node-0")].into_iter().collect()),
            scope: "tapline.flows".into(),
            metrics: vec![flow_metric("tapline.network.flow.bytes", &refs)],
        }],
    })
}

/// CPU time of the calling thread: on a shared machine wall time includes waiting for a core.
fn thread_cpu() -> Duration {
    // SAFETY: timespec is plain data; clock_gettime fills it.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

struct Chain {
    k8s: K8sProcessor,
    rdns: RdnsProcessor,
    zones: ZonesProcessor,
    cidr: CidrProcessor,
    select: SelectProcessor,
}

impl Chain {
    fn new() -> Chain {
        let cache = cache();
        let k8s = K8sProcessor::new(cache.clone(), "/proc".into());
        let names = Arc::new(NameCache::new(100_000));
        for e in 0..250 {
            names.insert(
                external_ip(e).parse().unwrap(),
                Some(format!("host-{e}.example.net").into()),
                Duration::from_secs(3600),
            );
        }
        let rdns = RdnsProcessor::new(RdnsConfig::default(), names).unwrap();
        let zones = ZonesProcessor::new(ZonesConfig::default(), cache).unwrap();
        let cidr_cfg: CidrConfig = serde_json::from_value(serde_json::json!({"definitions": [
            "10.244.0.0/16", {"cidr": "10.96.0.0/12", "name": "services"}, "192.168.0.0/16", "0.0.0.0/0"
        ]}))
        .unwrap();
        let cidr = CidrProcessor::new(cidr_cfg).unwrap();
        let select = SelectProcessor::new(SelectConfig::default()).unwrap();
        Chain {
            k8s,
            rdns,
            zones,
            cidr,
            select,
        }
    }
    fn run(&self, batch: &mut Signal) {
        self.k8s.apply(batch);
        self.rdns.apply(batch);
        self.zones.apply(batch);
        self.cidr.apply(batch);
        self.select.apply(batch);
    }
}

/// Points per CPU-second of the whole chain: best of 5 rounds of `rounds` batches (the input
/// clones are outside the timed part).
fn cpu_throughput(chain: &Chain, input: &Signal, rounds: usize) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..5 {
        let mut batches: Vec<Signal> = (0..rounds).map(|_| input.clone()).collect();
        let start = thread_cpu();
        for b in &mut batches {
            chain.run(b);
        }
        let spent = (thread_cpu() - start).as_secs_f64();
        drop(batches);
        best = best.min(spent);
    }
    (rounds * POINTS) as f64 / best
}

fn chain(c: &mut Criterion) {
    let Chain {
        k8s,
        rdns,
        zones,
        cidr,
        select,
    } = Chain::new();
    let input = batch();

    // Sanity: the chain decorates and reduces as intended before anything is timed.
    let mut check = input.clone();
    for p in [&k8s as &dyn BatchFn, &rdns, &zones, &cidr, &select] {
        p.apply(&mut check);
    }
    let Signal::Metrics(m) = &check else {
        unreachable!()
    };
    let names: Vec<&str> = m.resource_metrics[0]
        .metrics
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "tapline.network.flow.bytes",
            "tapline.network.inter.zone.bytes"
        ]
    );
    let flows = Signal::Metrics(Metrics {
        resource_metrics: vec![ResourceMetrics {
            metrics: vec![m.resource_metrics[0].metrics[0].clone()],
            ..m.resource_metrics[0].clone()
        }],
    });
    for a in tapline_test_support::fixtures::points(&flows) {
        assert!(
            a.get("k8s.src.owner.name").is_some() && a.get("src.zone").is_some(),
            "{a:?}"
        );
        assert!(
            a.get("src.cidr").is_some() && a.get("src.address").is_none(),
            "{a:?}"
        );
    }

    let mut g = c.benchmark_group("decoration");
    g.throughput(Throughput::Elements(POINTS as u64));
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("k8s+rdns+zones+cidr+select/1000 points", |b| {
        b.iter_batched(
            || input.clone(),
            |mut batch| {
                k8s.apply(&mut batch);
                rdns.apply(&mut batch);
                zones.apply(&mut batch);
                cidr.apply(&mut batch);
                select.apply(&mut batch);
                batch
            },
            BatchSize::SmallInput,
        )
    });
    for (name, p) in [
        ("k8s", &k8s as &dyn BatchFn),
        ("rdns", &rdns),
        ("zones", &zones),
        ("cidr", &cidr),
    ] {
        g.bench_function(format!("{name} alone/1000 points"), |b| {
            b.iter_batched(
                || input.clone(),
                |mut batch| {
                    p.apply(&mut batch);
                    batch
                },
                BatchSize::SmallInput,
            )
        });
    }
    let mut decorated = input.clone();
    for p in [&k8s as &dyn BatchFn, &rdns, &zones, &cidr] {
        p.apply(&mut decorated);
    }
    g.bench_function("select alone (decorated input)/1000 points", |b| {
        b.iter_batched(
            || decorated.clone(),
            |mut batch| {
                select.apply(&mut batch);
                batch
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn cpu_report(_c: &mut Criterion) {
    let chain = Chain::new();
    let input = batch();
    let per_cpu_s = cpu_throughput(&chain, &input, 200);
    println!(
        "decoration chain: {:.0} points per CPU-second of one thread (best of 5 x 200 batches of {POINTS})",
        per_cpu_s
    );
}

criterion_group!(benches, chain, cpu_report);

fn main() {
    if let Some(n) = std::env::var("DECORATION_PROFILE")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        let chain = Chain::new();
        let input = batch();
        let mut out = 0;
        for _ in 0..n {
            let mut b = input.clone();
            chain.run(&mut b);
            out += b.item_count();
        }
        println!("{n} batches, {out} points out");
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
