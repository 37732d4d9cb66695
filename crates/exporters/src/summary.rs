//! `summary`: a human-readable digest printed to stdout every `interval`: the top talkers by
//! bytes (with names where a processor found them) and the busiest operations (HTTP routes,
//! RPC methods, DB and messaging operations) with rate, error rate and p50/p99 latency.
//! It is what `tapline run` shows on a terminal with the default configuration.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::Deserialize;
use tapline_core::config::types::duration;
use tapline_core::data::*;
use tapline_core::{
    BuildContext, Component, ConfigErrors, ExportError, Exporter, ExporterComponent,
};
use tapline_semconv::{attr, metric};
use tokio_util::sync::CancellationToken;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SummaryConfig {
    #[serde(default = "default_interval", with = "duration")]
    pub interval: Duration,
    /// Rows per table.
    #[serde(default = "default_top")]
    pub top: usize,
}

impl Default for SummaryConfig {
    fn default() -> Self {
        SummaryConfig {
            interval: default_interval(),
            top: default_top(),
        }
    }
}

fn default_interval() -> Duration {
    Duration::from_secs(10)
}
fn default_top() -> usize {
    10
}

pub struct SummaryFactory;

impl Component for SummaryFactory {
    type Config = SummaryConfig;
    const TYPE_NAME: &'static str = "summary";
    const DESCRIPTION: &'static str = "Prints top talkers and the busiest operations (rate, errors, p50/p99) to stdout periodically";
    const SIGNALS: &'static [SignalKind] = &[SignalKind::Metrics];
}

impl ExporterComponent for SummaryFactory {
    fn build(
        &self,
        cfg: SummaryConfig,
        _ctx: &BuildContext,
    ) -> Result<Box<dyn Exporter>, ConfigErrors> {
        if cfg.interval.is_zero() || cfg.top == 0 {
            return Err(ConfigErrors::at(
                "",
                "interval and top must be greater than zero",
            ));
        }
        Ok(Box::new(SummaryExporter {
            cfg,
            state: Default::default(),
            stop: CancellationToken::new(),
            printer: None,
        }))
    }
}

/// One operation's figures within the current interval.
#[derive(Default)]
struct OpStats {
    count: u64,
    errors: u64,
    /// Merged latency histogram (seconds), when the bounds agree.
    hist: Option<HistogramPoint>,
}

#[derive(Default)]
pub struct SummaryState {
    /// (src, dst, transport) → bytes
    talkers: HashMap<(String, String, String), u64>,
    /// (service, operation) → stats
    ops: HashMap<(String, String), OpStats>,
}

impl SummaryState {
    pub fn add(&mut self, m: &Metrics) {
        for (resource, metric) in m.metrics() {
            match (&metric.data, metric.name.as_str()) {
                (MetricData::Sum { points, .. }, name)
                    if name == metric::NETWORK_FLOW_BYTES.name =>
                {
                    for p in points {
                        let end = |name: &str, addr: &str, with_port: bool| {
                            let who = p
                                .attributes
                                .get_str(name)
                                .or_else(|| p.attributes.get_str(addr))
                                .unwrap_or("?")
                                .to_string();
                            match p.attributes.get(attr::SERVER_PORT).filter(|_| with_port) {
                                Some(v) => format!("{who}:{}", v.to_text()),
                                None => who,
                            }
                        };
                        // The server's port names the service; it belongs to the source of a
                        // response and to the destination of a request.
                        let server_is_src =
                            p.attributes.get_str(attr::DIRECTION) == Some("response");
                        let src = end(attr::SRC_NAME, attr::SRC_ADDRESS, server_is_src);
                        let dst = end(attr::DST_NAME, attr::DST_ADDRESS, !server_is_src);
                        let transport = p
                            .attributes
                            .get_str(attr::TRANSPORT)
                            .unwrap_or("")
                            .to_string();
                        let v = match p.value {
                            Number::Int(i) => i.max(0) as u64,
                            Number::Double(d) => d.max(0.0) as u64,
                        };
                        *self.talkers.entry((src, dst, transport)).or_default() += v;
                    }
                }
                (MetricData::Histogram { points, .. }, name)
                    if metric.unit == "s" && name.ends_with(".duration") =>
                {
                    let service = resource
                        .attributes
                        .get_str(attr::SERVICE_NAME)
                        .unwrap_or("?")
                        .to_string();
                    for p in points {
                        let a = &p.attributes;
                        let op = if let Some(route) = a.get_str(attr::HTTP_ROUTE) {
                            format!(
                                "{} {route}",
                                a.get_str(attr::HTTP_REQUEST_METHOD).unwrap_or("")
                            )
                        } else if let Some(m) = a.get_str(attr::RPC_METHOD) {
                            m.to_string()
                        } else if let Some(o) = a.get_str(attr::DB_OPERATION_NAME) {
                            let system = a.get_str(attr::DB_SYSTEM_NAME).unwrap_or("db");
                            match a.get_str(attr::DB_COLLECTION_NAME) {
                                Some(c) => format!("{system} {o} {c}"),
                                None => format!("{system} {o}"),
                            }
                        } else if let Some(o) = a.get_str(attr::MESSAGING_OPERATION_NAME) {
                            let dest = a.get_str(attr::MESSAGING_DESTINATION_NAME).unwrap_or("");
                            format!("{o} {dest}")
                        } else {
                            name.to_string()
                        };
                        let kind = if name.contains(".client.") {
                            " (client)"
                        } else {
                            ""
                        };
                        let s = self
                            .ops
                            .entry((service.clone(), format!("{op}{kind}")))
                            .or_default();
                        s.count += p.count;
                        if a.get(attr::ERROR_TYPE).is_some() {
                            s.errors += p.count;
                        }
                        match &mut s.hist {
                            Some(h) => {
                                h.merge(p);
                            }
                            None => s.hist = Some(p.clone()),
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// The digest for an interval of `secs` seconds; empties the state.
    pub fn render(&mut self, secs: f64, top: usize) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "── tapline summary, last {secs:.0}s ──");
        let mut talkers: Vec<_> = self.talkers.drain().collect();
        talkers.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let _ = writeln!(out, "Top talkers by bytes:");
        if talkers.is_empty() {
            let _ = writeln!(out, "  (no network flows seen)");
        }
        for ((src, dst, transport), bytes) in talkers.into_iter().take(top) {
            let _ = writeln!(
                out,
                "  {:>10}  {:<4} {src} → {dst}",
                human_bytes(bytes),
                transport
            );
        }
        let mut ops: Vec<_> = self.ops.drain().collect();
        ops.sort_by(|a, b| b.1.count.cmp(&a.1.count).then_with(|| a.0.cmp(&b.0)));
        let _ = writeln!(out, "Busiest operations:");
        if ops.is_empty() {
            let _ = writeln!(out, "  (no requests seen)");
        } else {
            let _ = writeln!(
                out,
                "  {:>9} {:>6} {:>9} {:>9}  service / operation",
                "req/s", "err%", "p50", "p99"
            );
        }
        for ((service, op), s) in ops.into_iter().take(top) {
            let q = |f: f64| {
                s.hist
                    .as_ref()
                    .and_then(|h| quantile(h, f))
                    .map(human_secs)
                    .unwrap_or_else(|| "-".into())
            };
            let err = if s.count == 0 {
                0.0
            } else {
                100.0 * s.errors as f64 / s.count as f64
            };
            let _ = writeln!(
                out,
                "  {:>9.1} {:>5.1}% {:>9} {:>9}  {service} {op}",
                s.count as f64 / secs,
                err,
                q(0.5),
                q(0.99)
            );
        }
        out
    }
}

/// Estimates a quantile from bucket counts, interpolating linearly inside the bucket.
pub fn quantile(h: &HistogramPoint, q: f64) -> Option<f64> {
    if h.count == 0 {
        return None;
    }
    let rank = q * h.count as f64;
    let mut seen = 0u64;
    for (i, &c) in h.bucket_counts.iter().enumerate() {
        if c == 0 {
            continue;
        }
        if (seen + c) as f64 >= rank {
            let lower = if i == 0 {
                h.min
                    .unwrap_or(0.0)
                    .min(h.bounds.first().copied().unwrap_or(0.0))
            } else {
                h.bounds[i - 1]
            };
            let upper = h.bounds.get(i).copied().or(h.max).unwrap_or(lower);
            let frac = ((rank - seen as f64) / c as f64).clamp(0.0, 1.0);
            let v = lower + (upper - lower) * frac;
            // Never report beyond what was observed.
            return Some(match (h.min, h.max) {
                (Some(lo), Some(hi)) => v.clamp(lo, hi),
                _ => v,
            });
        }
        seen += c;
    }
    h.max
}

fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn human_secs(s: f64) -> String {
    if s < 1e-3 {
        format!("{:.0}µs", s * 1e6)
    } else if s < 1.0 {
        format!("{:.1}ms", s * 1e3)
    } else {
        format!("{s:.2}s")
    }
}

pub struct SummaryExporter {
    cfg: SummaryConfig,
    state: Arc<Mutex<SummaryState>>,
    stop: CancellationToken,
    printer: Option<tokio::task::JoinHandle<()>>,
}

#[async_trait]
impl Exporter for SummaryExporter {
    async fn start(&mut self) -> anyhow::Result<()> {
        let state = self.state.clone();
        let stop = self.stop.clone();
        let cfg = self.cfg.clone();
        self.printer = Some(tokio::spawn(async move {
            let mut last = Instant::now();
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(cfg.interval) => {}
                }
                let secs = last.elapsed().as_secs_f64();
                last = Instant::now();
                let text = state
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .render(secs, cfg.top);
                let mut stdout = std::io::stdout().lock();
                let _ = stdout
                    .write_all(text.as_bytes())
                    .and_then(|_| stdout.flush());
            }
        }));
        Ok(())
    }

    async fn export(&mut self, batch: SharedSignal) -> Result<(), ExportError> {
        if let Signal::Metrics(m) = &*batch {
            self.state.lock().unwrap_or_else(|e| e.into_inner()).add(m);
        }
        Ok(())
    }

    async fn shutdown(&mut self) -> anyhow::Result<()> {
        self.stop.cancel();
        if let Some(p) = self.printer.take() {
            let _ = p.await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(values: &[f64]) -> HistogramPoint {
        let mut h = HistogramPoint::new(
            [("http.route", "/users/*"), ("http.request.method", "GET")]
                .into_iter()
                .collect(),
            tapline_core::data::buckets::DURATION_SECONDS_BUCKETS.into(),
            0,
            0,
        );
        values.iter().for_each(|v| h.record(*v));
        h
    }

    #[test]
    fn quantiles_stay_within_observed_range() {
        let h = hist(&[0.002, 0.003, 0.004, 0.2]);
        let p50 = quantile(&h, 0.5).unwrap();
        assert!((0.002..=0.005).contains(&p50), "{p50}");
        let p99 = quantile(&h, 0.99).unwrap();
        assert!((0.1..=0.2).contains(&p99), "{p99}");
        assert_eq!(quantile(&hist(&[]), 0.5), None);
    }

    #[test]
    fn renders_talkers_and_operations() {
        let resource = Resource::new([("service.name", "shop")].into_iter().collect());
        let mut flow = Attributes::new();
        flow.push("src.address", "10.0.0.4");
        flow.push("dst.address", "10.0.0.23");
        flow.push("dst.name", "api");
        flow.push("server.port", 80i64);
        flow.push("transport", "tcp");
        flow.push("direction", "request");
        let mut response = flow.clone();
        response.set("direction", "response");
        response.set("src.address", "10.0.0.23");
        response.set("dst.address", "10.0.0.4");
        response.remove("dst.name");
        response.set("src.name", "api");
        let mut err = hist(&[0.01]);
        err.attributes.push("error.type", "500");
        let m = Metrics {
            resource_metrics: vec![ResourceMetrics {
                resource,
                scope: "t".into(),
                metrics: vec![
                    Metric {
                        name: "tapline.network.flow.bytes".into(),
                        description: "".into(),
                        unit: "By".into(),
                        data: MetricData::Sum {
                            temporality: Temporality::Delta,
                            monotonic: true,
                            points: vec![
                                NumberPoint {
                                    attributes: flow,
                                    start_time_ns: 0,
                                    time_ns: 0,
                                    value: Number::Int(3 << 20),
                                },
                                NumberPoint {
                                    attributes: response,
                                    start_time_ns: 0,
                                    time_ns: 0,
                                    value: Number::Int(100),
                                },
                            ],
                        },
                    },
                    Metric {
                        name: "http.server.request.duration".into(),
                        description: "".into(),
                        unit: "s".into(),
                        data: MetricData::Histogram {
                            temporality: Temporality::Delta,
                            points: vec![hist(&[0.002; 19]), err],
                        },
                    },
                ],
            }],
        };
        let mut s = SummaryState::default();
        s.add(&m);
        let text = s.render(10.0, 5);
        assert!(text.contains("3.0 MiB  tcp  10.0.0.4 → api:80"), "{text}");
        assert!(text.contains("100 B  tcp  api:80 → 10.0.0.4\n"), "{text}");
        // 19 ok + 1 error on the same route and method are one operation: 2 req/s, 5% errors.
        assert!(text.contains("      2.0   5.0%"), "{text}");
        assert!(text.contains("shop GET /users/*"), "{text}");
        // State is emptied after rendering.
        assert!(s.render(10.0, 5).contains("(no network flows seen)"));
    }
}
