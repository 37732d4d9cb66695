//! `otlp`: sends metrics and traces to an OTLP receiver over gRPC or HTTP/protobuf.
//!
//! - Settings come from the config, then from the standard `OTEL_EXPORTER_OTLP_*` variables
//!   (the signal's own variable first), then the OTLP defaults ([`config`]).
//! - Failures the OTLP specification calls retryable (gRPC UNAVAILABLE and friends,
//!   RESOURCE_EXHAUSTED with RetryInfo, HTTP 429/502/503/504) are retried with exponential
//!   backoff, honouring RetryInfo and `Retry-After`, until `retry.max_elapsed_time`; anything
//!   else fails the batch at once. A failed batch is counted as dropped by the framework,
//!   whose bounded queue sits in front of this exporter and absorbs what arrives meanwhile.
//! - With `temporality: cumulative` (the default) delta sums and histograms are accumulated
//!   per series before they leave ([`cumulative`]).

pub mod config;
pub mod cumulative;
mod tls;
pub mod transport;

use std::time::{Duration, Instant};

use async_trait::async_trait;
use rand::Rng;
use tapline_core::config::{ComponentConfig, Diagnostics};
use tapline_core::data::otlp::{encode_traces_request, metrics_to_proto};
use tapline_core::data::{SharedSignal, Signal, SignalKind};
use tapline_core::telemetry::Counter;
use tapline_core::{BuildContext, ExportError, Exporter, ExporterFactory, FactoryInfo};

pub use config::{OtlpConfig, Protocol, RetryConfig, TemporalityPreference};
use cumulative::Accumulator;
use transport::{Outcome, Request, Transport};

pub struct OtlpFactory;

impl FactoryInfo for OtlpFactory {
    fn type_name(&self) -> &'static str {
        "otlp"
    }
    fn description(&self) -> &'static str {
        "Sends metrics and traces over OTLP (gRPC or HTTP/protobuf), with retries"
    }
    fn signals(&self) -> &'static [SignalKind] {
        &[SignalKind::Metrics, SignalKind::Traces]
    }
}

impl ExporterFactory for OtlpFactory {
    fn build(
        &self,
        config: &ComponentConfig,
        ctx: &BuildContext,
    ) -> Result<Box<dyn Exporter>, Diagnostics> {
        let cfg: OtlpConfig = config.parse()?;
        let env = |k: &str| std::env::var(k).ok();
        OtlpExporter::new(&cfg, &config.path, ctx, &env)
            .map(|e| Box::new(e) as Box<dyn Exporter>)
            .map_err(|e| {
                let mut d = Diagnostics::default();
                d.error(config.path.clone(), e);
                d
            })
    }
}

/// Where the exporter reports on itself, besides the framework's item counters.
struct Counters {
    retries: Counter,
    rejected: Counter,
}

pub struct OtlpExporter {
    id: String,
    /// Built lazily on first use, so that clients are created inside the runtime.
    transports: [Option<Result<Transport, String>>; 2],
    settings: [config::SignalSettings; 2],
    tls: Option<tls::ClientTls>,
    path: String,
    temporality: TemporalityPreference,
    retry: RetryConfig,
    accumulator: Accumulator,
    counters: Counters,
}

fn slot(kind: SignalKind) -> usize {
    match kind {
        SignalKind::Metrics => 0,
        SignalKind::Traces => 1,
    }
}

impl OtlpExporter {
    /// Builds from a parsed config; `env` looks up `OTEL_EXPORTER_OTLP_*` variables.
    pub fn new(
        cfg: &OtlpConfig,
        path: &str,
        ctx: &BuildContext,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<OtlpExporter, String> {
        let metrics = cfg.resolve(SignalKind::Metrics, path, env)?;
        let traces = cfg.resolve(SignalKind::Traces, path, env)?;
        let tls = if metrics.tls || traces.tls || cfg.tls.is_set() {
            Some(tls::ClientTls::new(&cfg.tls, path)?)
        } else {
            None
        };
        let r = &cfg.retry;
        if r.enabled && (r.initial_interval.is_zero() || r.max_interval < r.initial_interval) {
            return Err(format!(
                "{path}.retry: initial_interval must be above zero and at most max_interval"
            ));
        }
        let id = ctx.id.to_string();
        let labels = [("component", id.as_str())];
        Ok(OtlpExporter {
            counters: Counters {
                retries: ctx.telemetry.counter(
                    "tapline_exporter_retries_total",
                    "Export attempts that failed in a retryable way and were retried.",
                    &labels,
                ),
                rejected: ctx.telemetry.counter(
                    "tapline_exporter_rejected_items_total",
                    "Items a receiving server reported rejected (OTLP partial success).",
                    &labels,
                ),
            },
            id,
            transports: [None, None],
            settings: [metrics, traces],
            tls,
            path: path.to_string(),
            temporality: cfg.temporality,
            retry: cfg.retry.clone(),
            accumulator: Accumulator::default(),
        })
    }

    fn transport(&mut self, kind: SignalKind) -> Result<&mut Transport, String> {
        let i = slot(kind);
        if self.transports[i].is_none() {
            self.transports[i] = Some(Transport::new(
                &self.settings[i],
                self.tls.as_ref(),
                &self.path,
            ));
        }
        match self.transports[i].as_mut() {
            Some(Ok(t)) => Ok(t),
            Some(Err(e)) => Err(e.clone()),
            None => unreachable!("set above"),
        }
    }

    fn encode(&mut self, batch: &Signal) -> Request {
        match batch {
            Signal::Metrics(m) => {
                if self.temporality == TemporalityPreference::Cumulative {
                    let mut m = m.clone();
                    self.accumulator.apply(&mut m, Instant::now());
                    Request::metrics(&metrics_to_proto(&m))
                } else {
                    Request::metrics(&metrics_to_proto(m))
                }
            }
            Signal::Traces(t) => Request {
                kind: SignalKind::Traces,
                body: encode_traces_request(t).into(),
            },
        }
    }

    /// The wait before attempt `attempt + 1`: exponential with ±50% jitter, capped.
    fn backoff(&self, attempt: u32) -> Duration {
        let base = self
            .retry
            .initial_interval
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.retry.max_interval);
        let jitter: f64 = rand::rng().random_range(0.5..1.5);
        base.mul_f64(jitter).min(self.retry.max_interval)
    }

    /// Sends one request, retrying what can be retried.
    pub async fn send(&mut self, kind: SignalKind, req: &Request) -> Result<(), ExportError> {
        let started = Instant::now();
        let mut attempt = 0u32;
        let url = self.settings[slot(kind)].url.clone();
        loop {
            let outcome = {
                let t = self.transport(kind).map_err(ExportError::new)?;
                t.send(req).await
            };
            match outcome {
                Outcome::Delivered { rejected, message } => {
                    if rejected > 0 {
                        self.counters.rejected.add(rejected as u64);
                        tracing::warn!(exporter = %self.id, %url, rejected, %message, "the server rejected part of a batch");
                    }
                    return Ok(());
                }
                Outcome::Permanent { message } => {
                    return Err(ExportError::new(format!(
                        "{kind} export to {url} failed permanently: {message}"
                    )))
                }
                Outcome::Retryable { message, delay } => {
                    if !self.retry.enabled {
                        return Err(ExportError::new(format!(
                            "{kind} export to {url} failed (retries disabled): {message}"
                        )));
                    }
                    let wait = delay.unwrap_or_default().max(self.backoff(attempt));
                    if started.elapsed() + wait > self.retry.max_elapsed_time {
                        return Err(ExportError::new(format!(
                            "{kind} export to {url} gave up after {} attempts in {:?} (retry.max_elapsed_time {:?}): {message}",
                            attempt + 1,
                            started.elapsed(),
                            self.retry.max_elapsed_time
                        )));
                    }
                    self.counters.retries.add(1);
                    tracing::debug!(exporter = %self.id, %url, attempt, ?wait, %message, "retrying export");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
            }
        }
    }
}

#[async_trait]
impl Exporter for OtlpExporter {
    async fn export(&mut self, batch: SharedSignal) -> Result<(), ExportError> {
        let kind = batch.kind();
        let req = self.encode(&batch);
        self.send(kind, &req).await
    }
}
