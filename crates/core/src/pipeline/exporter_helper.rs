//! The exporter helper: what every exporter gets without writing it. It owns the `queue:`
//! block (the bounded queue, how many batches are exported at once) and the `retry:` block
//! (exponential backoff with jitter for failures the exporter reports as retryable, never
//! sooner than the destination's own hint), and bounds each attempt by the exporter's
//! [`attempt_timeout`](crate::Exporter::attempt_timeout).
//!
//! Both blocks are taken out of the exporter's config here, in one place, before the
//! exporter parses the rest.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use serde::Deserialize;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::queue::{ExporterQueue, QueueConfig};
use crate::component::{ExportError, Exporter};
use crate::config::types::duration;
use crate::config::{ComponentConfig, Diagnostics};
use crate::data::SharedSignal;
use crate::telemetry::Counter;

/// The `retry:` block every exporter accepts. Only failures an exporter reports as retryable
/// are retried (OTLP: gRPC UNAVAILABLE and friends, HTTP 429/502/503/504, timeouts).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The first wait (±50% jitter), doubled each attempt.
    #[serde(default = "default_initial", with = "duration")]
    pub initial_interval: Duration,
    #[serde(default = "default_max_interval", with = "duration")]
    pub max_interval: Duration,
    /// Gives a batch up once retrying it has taken this long.
    #[serde(default = "default_max_elapsed", with = "duration")]
    pub max_elapsed_time: Duration,
}

fn yes() -> bool {
    true
}
fn default_initial() -> Duration {
    Duration::from_secs(1)
}
fn default_max_interval() -> Duration {
    Duration::from_secs(30)
}
fn default_max_elapsed() -> Duration {
    Duration::from_secs(300)
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            enabled: true,
            initial_interval: default_initial(),
            max_interval: default_max_interval(),
            max_elapsed_time: default_max_elapsed(),
        }
    }
}

impl RetryConfig {
    fn check(&self, path: &str) -> Result<(), Diagnostics> {
        if self.enabled
            && (self.initial_interval.is_zero() || self.max_interval < self.initial_interval)
        {
            let mut d = Diagnostics::default();
            d.error(
                path,
                "initial_interval must be above zero and at most max_interval",
            );
            return Err(d);
        }
        Ok(())
    }

    /// The wait before attempt `attempt + 1`: exponential with ±50% jitter, capped.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let base = self
            .initial_interval
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.max_interval);
        let jitter: f64 = rand::rng().random_range(0.5..1.5);
        base.mul_f64(jitter).min(self.max_interval)
    }
}

/// The blocks of an exporter's config that the helper owns.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExporterSettings {
    pub queue: QueueConfig,
    pub retry: RetryConfig,
}

impl ExporterSettings {
    /// Takes `queue` and `retry` out of `config` (so the exporter never sees them) and parses
    /// them; missing blocks mean the defaults.
    pub fn take_from(config: &mut ComponentConfig) -> Result<ExporterSettings, Diagnostics> {
        let mut diags = Diagnostics::default();
        let mut settings = ExporterSettings::default();
        if let Some(v) = config.take("queue") {
            let path = format!("{}.queue", config.path);
            match ComponentConfig::new(&path, v).parse::<QueueConfig>() {
                Ok(q) if q.concurrency == 0 => {
                    diags.error(format!("{path}.concurrency"), "must be at least 1")
                }
                Ok(q) => settings.queue = q,
                Err(e) => diags.extend(e),
            }
        }
        if let Some(v) = config.take("retry") {
            let path = format!("{}.retry", config.path);
            match ComponentConfig::new(&path, v).parse::<RetryConfig>() {
                Ok(r) => match r.check(&path) {
                    Ok(()) => settings.retry = r,
                    Err(e) => diags.extend(e),
                },
                Err(e) => diags.extend(e),
            }
        }
        if diags.has_errors() {
            Err(diags)
        } else {
            Ok(settings)
        }
    }
}

/// An exporter with the helper's retry and timeout around each batch.
pub struct RetryingExporter {
    pub exporter: Box<dyn Exporter>,
    retry: RetryConfig,
    retries: Counter,
}

impl RetryingExporter {
    /// `retries` counts attempts that failed in a retryable way and were retried.
    pub fn new(exporter: Box<dyn Exporter>, retry: RetryConfig, retries: Counter) -> Self {
        RetryingExporter {
            exporter,
            retry,
            retries,
        }
    }

    /// One attempt, bounded by the exporter's attempt timeout.
    async fn attempt(&mut self, batch: &SharedSignal) -> Result<(), ExportError> {
        match self.exporter.attempt_timeout(batch.kind()) {
            None => self.exporter.export(batch.clone()).await,
            Some(limit) => {
                match tokio::time::timeout(limit, self.exporter.export(batch.clone())).await {
                    Ok(result) => result,
                    Err(_) => Err(ExportError::retryable(
                        format!("no answer within {limit:?}"),
                        None,
                    )),
                }
            }
        }
    }

    /// Delivers `batch`, retrying what can be retried until `retry.max_elapsed_time`.
    pub async fn export(&mut self, batch: SharedSignal) -> Result<(), ExportError> {
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            let err = match self.attempt(&batch).await {
                Ok(()) => return Ok(()),
                Err(e) if !e.retryable => return Err(e),
                Err(e) => e,
            };
            if !self.retry.enabled {
                return Err(ExportError::new(format!(
                    "{} (retries disabled)",
                    err.message
                )));
            }
            let wait = err
                .retry_after
                .unwrap_or_default()
                .max(self.retry.backoff(attempt));
            if started.elapsed() + wait > self.retry.max_elapsed_time {
                return Err(ExportError::new(format!(
                    "gave up after {} attempts in {:?} (retry.max_elapsed_time {:?}): {}",
                    attempt + 1,
                    started.elapsed(),
                    self.retry.max_elapsed_time,
                    err.message
                )));
            }
            self.retries.add(1);
            debug!(attempt, ?wait, error = %err.message, "retrying export");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }
}

/// Handles on one exporter, one per unit of `queue.concurrency`: the first is the exporter
/// itself, the others its forks.
pub(crate) fn workers(
    exporter: Box<dyn Exporter>,
    concurrency: usize,
) -> Result<Vec<Box<dyn Exporter>>, String> {
    let mut out = Vec::with_capacity(concurrency);
    for _ in 1..concurrency {
        match exporter.fork() {
            Some(f) => out.push(f),
            None => {
                return Err(format!(
                "this exporter sends one batch at a time; queue.concurrency {concurrency} needs 1"
            ))
            }
        }
    }
    out.insert(0, exporter);
    Ok(out)
}

/// Takes batches off `queue` until it is closed and empty, exporting each through `exporter`.
/// Several of these may share one queue (`queue.concurrency`).
pub(crate) async fn drain_queue(
    name: String,
    mut exporter: RetryingExporter,
    queue: Arc<ExporterQueue>,
) -> RetryingExporter {
    while let Some(batch) = queue.pop().await {
        let n = batch.item_count() as u64;
        match exporter.export(batch).await {
            Ok(()) => queue.counters().sent.add(n),
            Err(e) => {
                queue.counters().dropped.add(n);
                warn!(exporter = %name, items = n, error = %e, "export failed; items dropped");
            }
        }
    }
    exporter
}

#[cfg(test)]
mod tests;
