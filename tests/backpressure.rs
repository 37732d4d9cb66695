//! A slow exporter behind a fast source: drops are counted exactly and memory stays bounded
//! (drop_oldest), or the source is slowed down and nothing is lost (block).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tapline::core::config::{self, ComponentConfig, ConfigSource, Diagnostics, LoadOptions};
use tapline::core::data::{SharedSignal, SignalKind};
use tapline::core::pipeline;
use tapline::core::telemetry::Telemetry;
use tapline::core::{BuildContext, ExportError, Exporter, ExporterFactory, FactoryInfo};

/// Counts what it gets and takes `delay` per batch.
#[derive(Clone, Default)]
struct Slow {
    items: Arc<AtomicU64>,
    in_flight_max: Arc<AtomicUsize>,
}

impl FactoryInfo for Slow {
    fn type_name(&self) -> &'static str {
        "slow"
    }
    fn description(&self) -> &'static str {
        "test"
    }
    fn signals(&self) -> &'static [SignalKind] {
        &[SignalKind::Metrics]
    }
}

impl ExporterFactory for Slow {
    fn build(
        &self,
        _: &ComponentConfig,
        _: &BuildContext,
    ) -> Result<Box<dyn Exporter>, Diagnostics> {
        Ok(Box::new(self.clone()))
    }
}

#[async_trait]
impl Exporter for Slow {
    async fn export(&mut self, batch: SharedSignal) -> Result<(), ExportError> {
        // Batches alive anywhere = this one + the queue's; Arc strong count tells.
        self.in_flight_max
            .fetch_max(Arc::strong_count(&batch), Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(10)).await;
        self.items
            .fetch_add(batch.item_count() as u64, Ordering::Relaxed);
        Ok(())
    }
}

fn counters(t: &Telemetry, kind: &str, id: &str) -> [i64; 4] {
    let labels = [("kind", kind), ("component", id)];
    ["accepted", "refused", "dropped", "sent"].map(|c| {
        let name: &'static str = match c {
            "accepted" => "tapline_items_accepted_total",
            "refused" => "tapline_items_refused_total",
            "dropped" => "tapline_items_dropped_total",
            _ => "tapline_items_sent_total",
        };
        t.value(name, &labels).unwrap_or(0)
    })
}

async fn run(when_full: &str) -> (Slow, Telemetry, usize) {
    let slow = Slow::default();
    let mut registry = tapline::builtin_registry();
    registry.register_exporter(slow.clone());
    let yaml = format!(
        "receivers: {{ synthetic: {{ interval: 1ms, points_per_batch: 10 }} }}
exporters: {{ slow: {{ queue: {{ size: 5, when_full: {when_full} }} }} }}
service: {{ pipelines: {{ metrics: {{ receivers: [synthetic], exporters: [slow] }} }} }}
"
    );
    let loaded = config::load(&LoadOptions {
        sources: vec![ConfigSource::Embedded {
            name: "test".into(),
            text: yaml,
        }],
        ..Default::default()
    })
    .unwrap();
    let telemetry = Telemetry::new();
    let graph = pipeline::build(&loaded, &registry, &telemetry).unwrap();
    let running = pipeline::start(graph).await.unwrap();
    let mut max_queue = 0;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let q = telemetry
            .value("tapline_exporter_queue_size", &[("component", "slow")])
            .unwrap();
        max_queue = max_queue.max(q as usize);
    }
    let report = running.shutdown(Duration::from_secs(10)).await;
    assert!(!report.timed_out);
    (slow, telemetry, max_queue)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_oldest_counts_every_drop_and_bounds_the_queue() {
    let (slow, t, max_queue) = run("drop_oldest").await;
    let [r_acc, _, r_drop, _] = counters(&t, "receiver", "synthetic");
    let [e_acc, _, e_drop, e_sent] = counters(&t, "exporter", "slow");
    let exported = slow.items.load(Ordering::Relaxed) as i64;
    assert_eq!(r_drop, 0);
    assert_eq!(e_acc, r_acc, "every batch reached the exporter's queue");
    assert_eq!(e_sent, exported);
    assert!(e_drop > 0, "the slow exporter must have forced drops");
    assert_eq!(e_acc, e_sent + e_drop, "accepted = sent + dropped, exactly");
    assert!(max_queue <= 5, "queue grew to {max_queue}");
    assert!(slow.in_flight_max.load(Ordering::Relaxed) <= 2 + 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_slows_the_source_and_loses_nothing() {
    let (slow, t, max_queue) = run("block").await;
    let [r_acc, _, _, _] = counters(&t, "receiver", "synthetic");
    let [e_acc, _, e_drop, e_sent] = counters(&t, "exporter", "slow");
    assert_eq!(e_drop, 0);
    assert_eq!(e_acc, r_acc);
    assert_eq!(e_sent, r_acc);
    assert_eq!(slow.items.load(Ordering::Relaxed) as i64, r_acc);
    assert!(max_queue <= 5);
    // Over ~1 s the source alone makes ~1000 batches (1 ms interval); the 10 ms exporter takes
    // ~100, plus 5 queued and 64 in the pipeline channel. Held back, the source stays far below.
    assert!(r_acc <= 10 * 400, "source was not slowed: {r_acc} points");
}
