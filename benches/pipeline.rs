//! One pipeline end to end on one core: synthetic source → 3 adapter processors → nop exporter.
//! `cargo bench --bench pipeline`; target: ≥ 2 million data points per second per core.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tapline::core::config::ComponentConfig;
use tapline::core::data::Signal;
use tapline::core::pipeline;
use tapline::core::telemetry::Telemetry;
use tapline_receivers::synthetic::{Synthetic, SyntheticConfig};
use tapline_test_support::harness::load_config;
use tapline_test_support::Feed;

const BATCHES: u64 = 200;
const POINTS: usize = 1000;

const CONFIG: &str = "
receivers: { feed: {} }
processors:
  attributes/a: { actions: [ { key: env, value: prod, action: insert } ] }
  attributes/b: { actions: [ { key: http.route, value: /x, action: update } ] }
  attributes/c: { actions: [ { key: http.request.method, action: delete } ] }
exporters: { nop: { queue: { size: 100000 } } }
service:
  pipelines:
    metrics: { receivers: [feed], processors: [attributes/a, attributes/b, attributes/c], exporters: [nop] }
";

/// Sends `BATCHES` synthetic batches through the `feed` receiver as fast as the pipeline
/// takes them.
fn one_run(rt: &tokio::runtime::Runtime) -> Duration {
    let (feed, tx) = Feed::new();
    let mut registry = tapline::builtin_registry();
    registry.register_receiver(feed);
    let loaded = load_config(CONFIG).unwrap();
    let telemetry = Telemetry::new();
    let graph = pipeline::build(&loaded, &registry, &telemetry).unwrap();
    let cfg: SyntheticConfig = ComponentConfig::new(
        "bench",
        serde_json::json!({"points_per_batch": POINTS, "series": 50}),
    )
    .parse()
    .unwrap();
    rt.block_on(async {
        let start = Instant::now();
        let running = pipeline::start(graph).await.unwrap();
        tokio::spawn(async move {
            let mut source = Synthetic::new(cfg);
            for _ in 0..BATCHES {
                if tx
                    .send(Signal::Metrics(source.metrics_batch()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
        let labels = [("kind", "exporter"), ("component", "nop")];
        let want = (BATCHES as i64) * POINTS as i64;
        while telemetry
            .value("tapline_items_sent_total", &labels)
            .unwrap_or(0)
            < want
        {
            tokio::task::yield_now().await;
        }
        let elapsed = start.elapsed();
        running.shutdown(Duration::from_secs(5)).await;
        elapsed
    })
}

fn bench(c: &mut Criterion) {
    // One core: everything (source, pipeline, exporter) on a current-thread runtime.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(BATCHES * POINTS as u64));
    group.sample_size(20);
    group.bench_function("synthetic_3_processors_nop", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| one_run(&rt)).sum())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
