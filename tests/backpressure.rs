//! A slow exporter behind a fast source: drops are counted exactly and memory stays bounded
//! (drop_oldest), or the source is slowed down and nothing is lost (block).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tapline::core::telemetry::Telemetry;
use tapline_test_support::{start_graph, Collect};

/// An exporter that takes 10 ms per batch, recording the most references to one batch seen
/// as it arrives (the batch itself plus the queue's: what is alive at once).
struct Slow {
    collect: Collect,
    in_flight_max: Arc<AtomicUsize>,
}

impl Slow {
    fn new() -> Slow {
        let in_flight_max = Arc::new(AtomicUsize::new(0));
        let seen = in_flight_max.clone();
        let collect = Collect::new().before_export(move |batch| {
            seen.fetch_max(Arc::strong_count(batch), Ordering::Relaxed);
            // The exporter's slowness is the scenario.
            tokio::time::sleep(Duration::from_millis(10))
        });
        Slow {
            collect,
            in_flight_max,
        }
    }

    fn items(&self) -> i64 {
        self.collect.item_count() as i64
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
    let slow = Slow::new();
    let mut registry = tapline::builtin_registry();
    registry.register_exporter(slow.collect.clone());
    let yaml = format!(
        "receivers: {{ synthetic: {{ interval: 1ms, points_per_batch: 10 }} }}
exporters: {{ collect: {{ queue: {{ size: 5, when_full: {when_full} }} }} }}
service: {{ pipelines: {{ metrics: {{ receivers: [synthetic], exporters: [collect] }} }} }}
"
    );
    let telemetry = Telemetry::new();
    let running = start_graph(&yaml, &registry, &telemetry).await.unwrap();
    let mut max_queue = 0;
    // Samples the queue every 10 ms while the source runs for about a second: the duration
    // of the scenario, not a wait for a result.
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let q = telemetry
            .value("tapline_exporter_queue_size", &[("component", "collect")])
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
    let [e_acc, _, e_drop, e_sent] = counters(&t, "exporter", "collect");
    let exported = slow.items();
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
    let [e_acc, _, e_drop, e_sent] = counters(&t, "exporter", "collect");
    assert_eq!(e_drop, 0);
    assert_eq!(e_acc, r_acc);
    assert_eq!(e_sent, r_acc);
    assert_eq!(slow.items(), r_acc);
    assert!(max_queue <= 5);
    // Over ~1 s the source alone makes ~1000 batches (1 ms interval); the 10 ms exporter takes
    // ~100, plus 5 queued and 64 in the pipeline channel. Held back, the source stays far below.
    assert!(r_acc <= 10 * 400, "source was not slowed: {r_acc} points");
}
