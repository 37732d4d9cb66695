//! The helper's retry, backoff, timeout and concurrency, on tokio's paused clock: waits are
//! measured in virtual time, so exact bounds can be asserted without real sleeping.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;

use super::*;
use crate::data::{Signal, Traces};
use crate::telemetry::Telemetry;
use crate::ComponentKind;

/// What a scripted attempt does.
#[derive(Clone, Copy)]
enum Step {
    Fail { retry_after: Option<Duration> },
    FailPermanently,
    Hang,
    Succeed,
}

/// An exporter answering attempt N with `script[N]` (then success), noting when each came.
#[derive(Clone, Default)]
struct Scripted {
    script: Arc<Mutex<Vec<Step>>>,
    attempts: Arc<Mutex<Vec<Instant>>>,
    timeout: Option<Duration>,
}

impl Scripted {
    fn new(script: Vec<Step>) -> Self {
        Scripted {
            script: Arc::new(Mutex::new(script)),
            ..Default::default()
        }
    }
    fn gaps(&self) -> Vec<Duration> {
        let at = self.attempts.lock().unwrap();
        at.windows(2).map(|w| w[1] - w[0]).collect()
    }
}

#[async_trait]
impl Exporter for Scripted {
    async fn export(&mut self, _batch: SharedSignal) -> Result<(), ExportError> {
        self.attempts.lock().unwrap().push(Instant::now());
        let step = {
            let mut s = self.script.lock().unwrap();
            if s.is_empty() {
                Step::Succeed
            } else {
                s.remove(0)
            }
        };
        match step {
            Step::Fail { retry_after } => Err(ExportError::retryable("unavailable", retry_after)),
            Step::FailPermanently => Err(ExportError::new("bad request")),
            Step::Hang => std::future::pending().await,
            Step::Succeed => Ok(()),
        }
    }
    fn attempt_timeout(&self, _kind: crate::data::SignalKind) -> Option<Duration> {
        self.timeout
    }
}

fn batch() -> SharedSignal {
    Arc::new(Signal::Traces(Traces::default()))
}

fn retry(initial_ms: u64, max_ms: u64, max_elapsed_ms: u64) -> RetryConfig {
    RetryConfig {
        enabled: true,
        initial_interval: Duration::from_millis(initial_ms),
        max_interval: Duration::from_millis(max_ms),
        max_elapsed_time: Duration::from_millis(max_elapsed_ms),
    }
}

#[tokio::test(start_paused = true)]
async fn a_retry_hint_longer_than_the_backoff_is_honoured() {
    let hint = Some(Duration::from_secs(7));
    let exp = Scripted::new(vec![
        Step::Fail { retry_after: hint },
        Step::Fail { retry_after: hint },
    ]);
    let retries = Counter::default();
    let mut helper = RetryingExporter::new(
        Box::new(exp.clone()),
        retry(100, 1000, 60_000),
        retries.clone(),
    );
    helper.export(batch()).await.unwrap();
    let gaps = exp.gaps();
    assert_eq!(gaps.len(), 2, "two retries, then success");
    for g in gaps {
        // The backoff (at most 1.5 × 200ms) is shorter: the hint decides.
        assert!(
            g >= Duration::from_secs(7) && g < Duration::from_millis(7100),
            "{g:?}"
        );
    }
    assert_eq!(retries.get(), 2);
}

#[tokio::test(start_paused = true)]
async fn without_a_hint_waits_double_within_the_jitter_and_stop_at_the_cap() {
    let exp = Scripted::new(vec![Step::Fail { retry_after: None }; 5]);
    let mut helper = RetryingExporter::new(
        Box::new(exp.clone()),
        retry(1000, 4000, 600_000),
        Counter::default(),
    );
    helper.export(batch()).await.unwrap();
    let gaps = exp.gaps();
    assert_eq!(gaps.len(), 5);
    // base 1s, 2s, 4s, then capped at 4s; ±50% jitter, never above the cap.
    let bases = [1000u64, 2000, 4000, 4000, 4000];
    for (g, base) in gaps.iter().zip(bases) {
        let lo = Duration::from_millis(base / 2);
        let hi = Duration::from_millis((base * 3 / 2).min(4000));
        assert!(*g >= lo && *g <= hi, "{g:?} not in {lo:?}..={hi:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn retrying_stops_at_max_elapsed_time_and_permanent_failures_are_not_retried() {
    let exp = Scripted::new(vec![Step::Fail { retry_after: None }; 1000]);
    let mut helper = RetryingExporter::new(
        Box::new(exp.clone()),
        retry(100, 200, 1000),
        Counter::default(),
    );
    let started = Instant::now();
    let err = helper.export(batch()).await.unwrap_err();
    assert!(
        err.message.contains("gave up") && err.message.contains("unavailable"),
        "{err}"
    );
    assert!(started.elapsed() <= Duration::from_secs(1));
    assert!(exp.gaps().len() >= 4, "{:?}", exp.gaps());

    let exp = Scripted::new(vec![Step::FailPermanently]);
    let retries = Counter::default();
    let mut helper = RetryingExporter::new(
        Box::new(exp.clone()),
        retry(100, 200, 1000),
        retries.clone(),
    );
    assert_eq!(
        helper.export(batch()).await.unwrap_err().message,
        "bad request"
    );
    assert_eq!(exp.attempts.lock().unwrap().len(), 1);
    assert_eq!(retries.get(), 0);
}

#[tokio::test(start_paused = true)]
async fn an_attempt_past_its_timeout_is_a_retryable_failure() {
    let mut exp = Scripted::new(vec![Step::Hang]);
    exp.timeout = Some(Duration::from_secs(2));
    let mut helper = RetryingExporter::new(
        Box::new(exp.clone()),
        retry(500, 500, 60_000),
        Counter::default(),
    );
    let started = Instant::now();
    helper.export(batch()).await.unwrap();
    let gaps = exp.gaps();
    // The hung attempt is abandoned at 2s, then retried after 0.25-0.5s (jittered 500ms).
    assert_eq!(gaps.len(), 1);
    assert!(
        gaps[0] >= Duration::from_millis(2250) && gaps[0] <= Duration::from_millis(2500),
        "{gaps:?}"
    );
    assert!(started.elapsed() <= Duration::from_millis(2500));

    let mut exp = Scripted::new(vec![Step::Hang]);
    exp.timeout = Some(Duration::from_secs(2));
    let mut no_retry = retry(500, 500, 60_000);
    no_retry.enabled = false;
    let mut helper = RetryingExporter::new(Box::new(exp), no_retry, Counter::default());
    let err = helper.export(batch()).await.unwrap_err();
    assert_eq!(err.message, "no answer within 2s (retries disabled)");
}

/// Takes a second per batch and counts how many batches are in flight at once.
#[derive(Clone, Default)]
struct Slow {
    in_flight: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
    done: Arc<AtomicUsize>,
    forkable: bool,
}

#[async_trait]
impl Exporter for Slow {
    async fn export(&mut self, _batch: SharedSignal) -> Result<(), ExportError> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(1)).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.done.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn fork(&self) -> Option<Box<dyn Exporter>> {
        self.forkable
            .then(|| Box::new(self.clone()) as Box<dyn Exporter>)
    }
}

#[tokio::test(start_paused = true)]
async fn concurrency_exports_that_many_batches_at_once() {
    let slow = Slow {
        forkable: true,
        ..Default::default()
    };
    let telemetry = Telemetry::new();
    let id = crate::ComponentId::parse("slow").unwrap();
    let queue = ExporterQueue::new(
        QueueConfig {
            concurrency: 3,
            ..Default::default()
        },
        telemetry.component(ComponentKind::Exporter, &id),
        telemetry.gauge("q", "q", &[]),
    );
    let mut fan_out = super::super::FanOut::new(vec![queue.clone()]);
    for _ in 0..6 {
        tower::Service::call(&mut fan_out, Signal::Traces(Traces::default()))
            .await
            .unwrap();
    }
    queue.close();
    let started = Instant::now();
    let drains = workers(Box::new(slow.clone()), 3)
        .unwrap()
        .into_iter()
        .map(|w| {
            drain_queue(
                "slow".into(),
                RetryingExporter::new(w, RetryConfig::default(), Counter::default()),
                queue.clone(),
            )
        });
    futures::future::join_all(drains).await;
    assert_eq!(slow.done.load(Ordering::SeqCst), 6);
    assert_eq!(slow.most.load(Ordering::SeqCst), 3);
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(2),
        "6 batches, 3 at a time"
    );

    let err = workers(Box::new(Slow::default()), 2).err().unwrap();
    assert!(err.contains("one batch at a time"), "{err}");
}

#[test]
fn queue_and_retry_blocks_are_taken_and_checked_in_one_place() {
    let mut cfg = ComponentConfig::new(
        "exporters.otlp",
        serde_json::json!({
            "endpoint": "x",
            "queue": {"size": 5, "concurrency": 2},
            "retry": {"initial_interval": "2s"},
        }),
    );
    let s = ExporterSettings::take_from(&mut cfg).unwrap();
    assert_eq!((s.queue.size, s.queue.concurrency), (5, 2));
    assert_eq!(s.retry.initial_interval, Duration::from_secs(2));
    assert_eq!(cfg.value, serde_json::json!({"endpoint": "x"}));

    let mut bad = ComponentConfig::new(
        "exporters.debug",
        serde_json::json!({
            "queue": {"concurrency": 0},
            "retry": {"initial_interval": "10s", "max_interval": "1s"},
        }),
    );
    let d = ExporterSettings::take_from(&mut bad).unwrap_err();
    let paths: Vec<_> = d.items.iter().map(|i| i.path.as_str()).collect();
    assert_eq!(
        paths,
        ["exporters.debug.queue.concurrency", "exporters.debug.retry"]
    );
}
