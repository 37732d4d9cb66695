//! `otlp`: sends metrics and traces to an OTLP receiver over gRPC or HTTP/protobuf.
//!
//! - Settings come from the config, then from the standard `OTEL_EXPORTER_OTLP_*` variables
//!   (the signal's own variable first), then the OTLP defaults ([`config`]).
//! - Failures the OTLP specification calls retryable (gRPC UNAVAILABLE and friends,
//!   RESOURCE_EXHAUSTED with RetryInfo, HTTP 429/502/503/504) are reported as retryable, with
//!   RetryInfo's or `Retry-After`'s delay as the hint; the framework's exporter helper retries
//!   them with exponential backoff until `retry.max_elapsed_time`, and bounds each attempt by
//!   `timeout`. Anything else fails the batch at once. A failed batch is counted as dropped by
//!   the framework, whose bounded queue sits in front of this exporter and absorbs what
//!   arrives meanwhile.
//! - Several batches may be in flight at once (`queue.concurrency`): each worker has its own
//!   connection, and cumulative temporality is accumulated in one place for all of them.
//! - With `temporality: cumulative` (the default) delta sums and histograms are accumulated
//!   per series before they leave ([`cumulative`]).

pub mod config;
pub mod cumulative;
mod tls;
pub mod transport;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tapline_core::data::otlp::{encode_traces_request, metrics_to_proto};
use tapline_core::data::{SharedSignal, Signal, SignalKind};
use tapline_core::telemetry::Counter;
use tapline_core::{
    BuildContext, Component, ConfigErrors, ExportError, Exporter, ExporterComponent,
};

pub use config::{OtlpConfig, Protocol, TemporalityPreference};
use cumulative::Accumulator;
/// The `retry:` block, owned by the framework's exporter helper.
pub use tapline_core::pipeline::RetryConfig;
use transport::{Outcome, Request, Transport};

pub struct OtlpFactory;

impl Component for OtlpFactory {
    type Config = OtlpConfig;
    const TYPE_NAME: &'static str = "otlp";
    const DESCRIPTION: &'static str =
        "Sends metrics and traces over OTLP (gRPC or HTTP/protobuf), with retries";
    const SIGNALS: &'static [SignalKind] = &[SignalKind::Metrics, SignalKind::Traces];
}

impl ExporterComponent for OtlpFactory {
    fn build(
        &self,
        cfg: OtlpConfig,
        ctx: &BuildContext,
    ) -> Result<Box<dyn Exporter>, ConfigErrors> {
        let env = |k: &str| std::env::var(k).ok();
        // The checks name the field inside their message (`exporters.otlp.endpoint: ...`).
        let exporter = OtlpExporter::new(&cfg, &ctx.path, ctx, &env)?;
        Ok(Box::new(exporter))
    }
}

/// Where the exporter reports on itself, besides the framework's item and retry counters.
#[derive(Clone)]
struct Counters {
    rejected: Counter,
}

pub struct OtlpExporter {
    id: String,
    /// Built lazily on first use, so that clients are created inside the runtime.
    transports: [Option<Result<Transport, String>>; 2],
    settings: [config::SignalSettings; 2],
    tls: Option<Arc<tls::ClientTls>>,
    path: String,
    temporality: TemporalityPreference,
    /// Shared by the forks, so cumulative series stay one series.
    accumulator: Arc<Mutex<Accumulator>>,
    /// The batch being attempted and its request, until it is delivered or fails for good: a
    /// retry sends the same bytes (encoding the batch again would accumulate its deltas twice).
    pending: Option<(SharedSignal, Request)>,
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
            Some(Arc::new(tls::ClientTls::new(&cfg.tls, path)?))
        } else {
            None
        };
        let id = ctx.id.to_string();
        let labels = [("component", id.as_str())];
        Ok(OtlpExporter {
            counters: Counters {
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
            accumulator: Default::default(),
            pending: None,
        })
    }

    fn transport(&mut self, kind: SignalKind) -> Result<&mut Transport, String> {
        let i = slot(kind);
        if self.transports[i].is_none() {
            self.transports[i] = Some(Transport::new(
                &self.settings[i],
                self.tls.as_deref(),
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
                    self.accumulator
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .apply(&mut m, Instant::now());
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

    /// Sends one request once. Retryable failures come back as such, with the server's
    /// hint of when to retry; the exporter helper does the retrying.
    pub async fn send(&mut self, kind: SignalKind, req: &Request) -> Result<(), ExportError> {
        let url = self.settings[slot(kind)].url.clone();
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
                Ok(())
            }
            Outcome::Permanent { message } => Err(ExportError::new(format!(
                "{kind} export to {url} failed permanently: {message}"
            ))),
            Outcome::Retryable { message, delay } => Err(ExportError::retryable(
                format!("{kind} export to {url} failed: {message}"),
                delay,
            )),
        }
    }
}

#[async_trait]
impl Exporter for OtlpExporter {
    async fn export(&mut self, batch: SharedSignal) -> Result<(), ExportError> {
        let kind = batch.kind();
        let req = match self.pending.take() {
            Some((previous, req)) if Arc::ptr_eq(&previous, &batch) => req,
            _ => self.encode(&batch),
        };
        // Kept until the batch is delivered or failed for good: an attempt the exporter helper
        // abandons at its timeout never returns here.
        self.pending = Some((batch, req.clone()));
        let result = self.send(kind, &req).await;
        if !matches!(&result, Err(e) if e.retryable) {
            self.pending = None;
        }
        result
    }

    fn attempt_timeout(&self, kind: SignalKind) -> Option<Duration> {
        Some(self.settings[slot(kind)].timeout)
    }

    fn fork(&self) -> Option<Box<dyn Exporter>> {
        Some(Box::new(OtlpExporter {
            id: self.id.clone(),
            transports: [None, None],
            settings: self.settings.clone(),
            tls: self.tls.clone(),
            path: self.path.clone(),
            temporality: self.temporality,
            accumulator: self.accumulator.clone(),
            pending: None,
            counters: self.counters.clone(),
        }))
    }
}
