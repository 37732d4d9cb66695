//! `debug`: writes what it receives to stdout, for trying pipelines out.
//! `basic`: one line per batch. `detailed`: every data point and span with its attributes.

use std::fmt::Write as _;
use std::io::Write as _;

use async_trait::async_trait;
use serde::Deserialize;
use tapline_core::data::*;
use tapline_core::{
    BuildContext, Component, ConfigErrors, ExportError, Exporter, ExporterComponent,
};

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Verbosity {
    #[default]
    Basic,
    Detailed,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DebugConfig {
    #[serde(default)]
    pub verbosity: Verbosity,
}

pub struct DebugFactory;

impl Component for DebugFactory {
    type Config = DebugConfig;
    const TYPE_NAME: &'static str = "debug";
    const DESCRIPTION: &'static str =
        "Writes received telemetry to stdout (basic: a line per batch; detailed: every item)";
    const SIGNALS: &'static [SignalKind] = &[SignalKind::Metrics, SignalKind::Traces];
}

impl ExporterComponent for DebugFactory {
    fn build(
        &self,
        cfg: DebugConfig,
        ctx: &BuildContext,
    ) -> Result<Box<dyn Exporter>, ConfigErrors> {
        Ok(Box::new(DebugExporter {
            id: ctx.id.to_string(),
            verbosity: cfg.verbosity,
        }))
    }
}

pub struct DebugExporter {
    id: String,
    verbosity: Verbosity,
}

/// Renders one batch the way the debug exporter prints it.
pub fn render(id: &str, verbosity: Verbosity, batch: &Signal) -> String {
    let mut out = String::new();
    match batch {
        Signal::Metrics(m) => {
            let metrics: usize = m.resource_metrics.iter().map(|rm| rm.metrics.len()).sum();
            let _ = writeln!(
                out,
                "{id} metrics: {} data points in {metrics} metrics, {} resources",
                m.item_count(),
                m.resource_metrics.len()
            );
            if verbosity == Verbosity::Detailed {
                for (resource, metric) in m.metrics() {
                    let _ = writeln!(
                        out,
                        "  metric {} ({}) resource {{{}}}",
                        metric.name,
                        metric.unit,
                        attrs(&resource.attributes)
                    );
                    match &metric.data {
                        MetricData::Sum { points, .. } | MetricData::Gauge { points } => {
                            for p in points {
                                let v = match p.value {
                                    Number::Int(i) => i.to_string(),
                                    Number::Double(d) => d.to_string(),
                                };
                                let _ = writeln!(out, "    {{{}}} {v}", attrs(&p.attributes));
                            }
                        }
                        MetricData::Histogram { points, .. } => {
                            for p in points {
                                let _ = writeln!(
                                    out,
                                    "    {{{}}} count={} sum={} buckets={:?}",
                                    attrs(&p.attributes),
                                    p.count,
                                    p.sum,
                                    p.bucket_counts
                                );
                            }
                        }
                    }
                }
            }
        }
        Signal::Traces(t) => {
            let _ = writeln!(
                out,
                "{id} traces: {} spans, {} resources",
                t.item_count(),
                t.resource_spans.len()
            );
            if verbosity == Verbosity::Detailed {
                for rs in &t.resource_spans {
                    for s in &rs.spans {
                        let _ = writeln!(
                            out,
                            "  span {:?} {:?} trace={} span={} parent={} duration={}ns status={:?} {{{}}}",
                            s.name.as_str(),
                            s.kind,
                            hex(&s.trace_id),
                            hex(&s.span_id),
                            hex(&s.parent_span_id),
                            s.end_time_ns.saturating_sub(s.start_time_ns),
                            s.status,
                            attrs(&s.attributes)
                        );
                    }
                }
            }
        }
    }
    out
}

fn attrs(a: &Attributes) -> String {
    a.iter()
        .map(|(k, v)| format!("{k}={}", v.to_text()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[async_trait]
impl Exporter for DebugExporter {
    async fn export(&mut self, batch: SharedSignal) -> Result<(), ExportError> {
        let text = render(&self.id, self.verbosity, &batch);
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(text.as_bytes())
            .and_then(|_| stdout.flush())
            .map_err(|e| ExportError::new(format!("writing to stdout: {e}")))
    }
}
