//! `synthetic`: emits generated metrics and spans at a configured rate. Test support for the
//! framework's own tests and benchmarks; hidden from `tapline components`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use tapline_core::config::types::duration;
use tapline_core::data::*;
use tapline_core::{
    BuildContext, Component, ConfigErrors, Receiver, ReceiverComponent, ReceiverContext,
};
use tapline_semconv::attr;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyntheticConfig {
    /// Time between batches.
    #[serde(default = "default_interval", with = "duration")]
    pub interval: Duration,
    /// Data points per metrics batch.
    #[serde(default = "default_points")]
    pub points_per_batch: usize,
    /// Spans per traces batch.
    #[serde(default = "default_spans")]
    pub spans_per_batch: usize,
    /// Stop producing after this many batches per signal (forever when unset).
    #[serde(default)]
    pub batches: Option<u64>,
    /// Distinct series the points cycle through.
    #[serde(default = "default_series")]
    pub series: usize,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        tapline_core::config::all_defaults()
    }
}

fn default_interval() -> Duration {
    Duration::from_millis(100)
}
fn default_points() -> usize {
    100
}
fn default_spans() -> usize {
    10
}
fn default_series() -> usize {
    10
}

pub struct SyntheticFactory;

impl Component for SyntheticFactory {
    type Config = SyntheticConfig;
    const TYPE_NAME: &'static str = "synthetic";
    const DESCRIPTION: &'static str = "Generated metrics and spans at a fixed rate (test support)";
    const SIGNALS: &'static [SignalKind] = &[SignalKind::Metrics, SignalKind::Traces];
    const HIDDEN: bool = true;
}

impl ReceiverComponent for SyntheticFactory {
    fn build(
        &self,
        cfg: SyntheticConfig,
        _ctx: &BuildContext,
    ) -> Result<Box<dyn Receiver>, ConfigErrors> {
        if cfg.series == 0 {
            return Err(ConfigErrors::at("series", "must be at least 1"));
        }
        Ok(Box::new(Synthetic::new(cfg)))
    }
}

/// Generates batches; also usable directly by benchmarks.
pub struct Synthetic {
    cfg: SyntheticConfig,
    resource: Arc<Resource>,
    routes: Vec<Str>,
    seq: u64,
}

impl Synthetic {
    pub fn new(cfg: SyntheticConfig) -> Self {
        let routes = (0..cfg.series)
            .map(|i| Str::from(format!("/route/{i}")))
            .collect();
        Synthetic {
            cfg,
            resource: Resource::new(
                [
                    (attr::SERVICE_NAME, Value::from("synthetic")),
                    (attr::HOST_NAME, Value::from("test")),
                ]
                .into_iter()
                .collect(),
            ),
            routes,
            seq: 0,
        }
    }

    pub fn metrics_batch(&mut self) -> Metrics {
        let now = now_unix_ns();
        let points = (0..self.cfg.points_per_batch)
            .map(|i| {
                let mut attributes = Attributes::with_capacity(4);
                attributes.push(attr::HTTP_ROUTE, self.routes[i % self.routes.len()].clone());
                attributes.push(attr::HTTP_REQUEST_METHOD, "GET");
                attributes.push(attr::HTTP_RESPONSE_STATUS_CODE, 200i64);
                NumberPoint {
                    attributes,
                    start_time_ns: now,
                    time_ns: now,
                    value: Number::Int(1),
                }
            })
            .collect();
        self.seq += 1;
        Metrics {
            resource_metrics: vec![ResourceMetrics {
                resource: self.resource.clone(),
                scope: "tapline.synthetic".into(),
                metrics: vec![Metric {
                    name: "synthetic.requests".into(),
                    description: "Generated requests".into(),
                    unit: "{request}".into(),
                    data: MetricData::Sum {
                        temporality: Temporality::Delta,
                        monotonic: true,
                        points,
                    },
                }],
            }],
        }
    }

    pub fn traces_batch(&mut self) -> Traces {
        let now = now_unix_ns();
        let spans = (0..self.cfg.spans_per_batch)
            .map(|i| {
                let mut trace_id = [0u8; 16];
                trace_id[..8].copy_from_slice(&self.seq.to_be_bytes());
                trace_id[8..].copy_from_slice(&(i as u64).to_be_bytes());
                let route = self.routes[i % self.routes.len()].clone();
                let mut attributes = Attributes::with_capacity(2);
                attributes.push(attr::HTTP_REQUEST_METHOD, "GET");
                attributes.push(attr::HTTP_ROUTE, route.clone());
                Span {
                    trace_id,
                    span_id: (i as u64 + 1).to_be_bytes(),
                    parent_span_id: [0; 8],
                    name: format!("GET {route}").into(),
                    kind: SpanKind::Server,
                    start_time_ns: now - 1_000_000,
                    end_time_ns: now,
                    attributes,
                    status: StatusCode::Unset,
                    status_message: Str::default(),
                }
            })
            .collect();
        self.seq += 1;
        Traces {
            resource_spans: vec![ResourceSpans {
                resource: self.resource.clone(),
                scope: "tapline.synthetic".into(),
                spans,
            }],
        }
    }
}

#[async_trait]
impl Receiver for Synthetic {
    async fn run(mut self: Box<Self>, ctx: ReceiverContext) -> anyhow::Result<()> {
        let mut ticker = tokio::time::interval(self.cfg.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sent = 0u64;
        loop {
            if self.cfg.batches.is_some_and(|max| sent >= max) {
                // Done producing; stay alive until shutdown like any receiver.
                ctx.shutdown.cancelled().await;
                return Ok(());
            }
            tokio::select! {
                _ = ctx.shutdown.cancelled() => return Ok(()),
                _ = ticker.tick() => {}
            }
            if ctx.output.wants(SignalKind::Metrics) {
                let batch = self.metrics_batch();
                if ctx.output.send(Signal::Metrics(batch)).await.is_err() {
                    return Ok(());
                }
            }
            if ctx.output.wants(SignalKind::Traces) {
                let batch = self.traces_batch();
                if ctx.output.send(Signal::Traces(batch)).await.is_err() {
                    return Ok(());
                }
            }
            sent += 1;
        }
    }
}
