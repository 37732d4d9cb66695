//! What the exporter serves: every live series, cumulative, keyed by its rendered labels.
//!
//! Delta sums and histograms are added up here (a delta counter becomes a cumulative one);
//! cumulative input replaces the stored value. A series that receives nothing for `ttl`
//! disappears from the next scrape.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tapline_core::data::buckets::HistogramBuckets;
use tapline_core::data::*;
use tapline_core::telemetry::escape_label;

use tapline_semconv::prometheus::{label_name, unit_suffix, NameKind};

#[derive(Clone, Debug)]
pub(crate) enum SeriesValue {
    Number(Number),
    Histogram {
        bounds: Arc<[f64]>,
        counts: Vec<u64>,
        sum: f64,
        count: u64,
    },
}

#[derive(Clone, Debug)]
pub(crate) struct Series {
    pub(crate) value: SeriesValue,
    pub(crate) last_seen: Instant,
}

pub(crate) struct Family {
    pub(crate) kind: NameKind,
    pub(crate) help: String,
    /// The unit word the name ends with, for OpenMetrics' `# UNIT`.
    pub(crate) unit: Option<String>,
    /// Label body (`a="1",b="2"`, sorted by name) → series.
    pub(crate) series: HashMap<String, Series>,
}

pub(crate) struct Store {
    pub(crate) ttl: Duration,
    pub(crate) buckets: HistogramBuckets,
    /// Prometheus family name → family. Sorted at render time.
    pub(crate) families: HashMap<String, Family>,
    /// `target_info`: label body of the service labels → its full label body.
    pub(crate) targets: HashMap<String, (String, Instant)>,
    last_prune: Instant,
    /// Metric names already warned about (type conflicts, bounds that cannot be re-bucketed).
    warned: std::collections::HashSet<String>,
}

/// Resource attributes that become labels on every series; the rest go on `target_info`.
const PROMOTED: [(&str, &str); 2] = [
    ("service.name", "service_name"),
    ("service.namespace", "service_namespace"),
];

fn push_label(labels: &mut Vec<(String, String)>, name: String, value: &str) {
    // Keys that sanitise to the same name are joined with `;`, as the specification says.
    if let Some(slot) = labels.iter_mut().find(|(k, _)| *k == name) {
        slot.1.push(';');
        slot.1.push_str(value);
    } else {
        labels.push((name, value.to_string()));
    }
}

fn render_body(mut labels: Vec<(String, String)>) -> String {
    labels.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = String::new();
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{k}=\"{}\"", escape_label(v));
    }
    out
}

/// Adds a delta histogram into the stored one; `false` when they cannot be added.
fn merge_histogram(stored: &mut SeriesValue, delta: &SeriesValue) -> bool {
    match (stored, delta) {
        (
            SeriesValue::Histogram {
                bounds: ob,
                counts: oc,
                sum: os,
                count: on,
            },
            SeriesValue::Histogram {
                bounds: nb,
                counts: nc,
                sum: ns,
                count: nn,
            },
        ) if ob == nb => {
            for (a, b) in oc.iter_mut().zip(nc) {
                *a += b;
            }
            *os += ns;
            *on += nn;
            true
        }
        _ => false,
    }
}

/// Moves the counts of `from` into the coarser `to` bounds. Exact only when every bound of
/// `to` is also a bound of `from`; `None` otherwise.
pub(crate) fn rebucket(from: &[f64], counts: &[u64], to: &[f64]) -> Option<Vec<u64>> {
    if !to.iter().all(|b| from.contains(b)) {
        return None;
    }
    let mut out = vec![0u64; to.len() + 1];
    for (i, c) in counts.iter().enumerate() {
        let upper = from.get(i).copied().unwrap_or(f64::INFINITY);
        let idx = to.partition_point(|b| *b < upper);
        out[idx] += c;
    }
    Some(out)
}

impl Store {
    pub(crate) fn new(ttl: Duration, buckets: HistogramBuckets) -> Self {
        Store {
            ttl,
            buckets,
            families: HashMap::new(),
            targets: HashMap::new(),
            last_prune: Instant::now(),
            warned: Default::default(),
        }
    }

    fn warn_once(&mut self, key: String, msg: impl FnOnce() -> String) {
        if self.warned.insert(key) {
            tracing::warn!("{}", msg());
        }
    }

    pub(crate) fn apply(&mut self, metrics: &Metrics, now: Instant) {
        for rm in &metrics.resource_metrics {
            let mut service = Vec::new();
            let mut rest = Vec::new();
            for (k, v) in rm.resource.attributes.iter() {
                match PROMOTED.iter().find(|(otel, _)| *otel == k.as_str()) {
                    Some((_, prom)) => service.push((prom.to_string(), v.to_text().into_owned())),
                    None => push_label(&mut rest, label_name(k), &v.to_text()),
                }
            }
            if !rest.is_empty() {
                let key = render_body(service.clone());
                let mut all = service.clone();
                all.extend(rest);
                self.targets.insert(key, (render_body(all), now));
            }
            for metric in &rm.metrics {
                self.apply_metric(metric, &service, now);
            }
        }
        if now.duration_since(self.last_prune) >= self.ttl / 2 {
            self.prune(now);
        }
    }

    fn apply_metric(&mut self, metric: &Metric, service: &[(String, String)], now: Instant) {
        let kind = metric.prometheus_kind();
        let name = metric.prometheus_name();
        let configured = match &metric.data {
            MetricData::Histogram { .. } => self.buckets.configured(&metric.name).cloned(),
            _ => None,
        };
        let family = self.families.entry(name.clone()).or_insert_with(|| Family {
            kind,
            help: metric.description.to_string(),
            unit: unit_suffix(&metric.unit, kind),
            series: HashMap::new(),
        });
        if family.kind != kind {
            let existing = family.kind;
            self.warn_once(name.clone(), || {
                format!("metric {} maps to Prometheus name {name}, already used by a {existing:?}; its points are not exported", metric.name)
            });
            return;
        }
        let labels_of = |attrs: &Attributes| {
            let mut labels = service.to_vec();
            for (k, v) in attrs.iter() {
                push_label(&mut labels, label_name(k), &v.to_text());
            }
            render_body(labels)
        };
        let mut unbucketable = false;
        match &metric.data {
            MetricData::Sum {
                temporality,
                points,
                ..
            } => {
                for p in points {
                    let key = labels_of(&p.attributes);
                    let delta = *temporality == Temporality::Delta;
                    family
                        .series
                        .entry(key)
                        .and_modify(|s| {
                            s.value = match (&s.value, delta) {
                                (SeriesValue::Number(old), true) => {
                                    SeriesValue::Number(*old + p.value)
                                }
                                _ => SeriesValue::Number(p.value),
                            };
                            s.last_seen = now;
                        })
                        .or_insert(Series {
                            value: SeriesValue::Number(p.value),
                            last_seen: now,
                        });
                }
            }
            MetricData::Gauge { points } => {
                for p in points {
                    family.series.insert(
                        labels_of(&p.attributes),
                        Series {
                            value: SeriesValue::Number(p.value),
                            last_seen: now,
                        },
                    );
                }
            }
            MetricData::Histogram {
                temporality,
                points,
            } => {
                for p in points {
                    let (bounds, counts) = match &configured {
                        Some(want) if **want != *p.bounds => {
                            match rebucket(&p.bounds, &p.bucket_counts, want) {
                                Some(c) => (want.clone(), c),
                                None => {
                                    unbucketable = true;
                                    (p.bounds.clone(), p.bucket_counts.clone())
                                }
                            }
                        }
                        _ => (p.bounds.clone(), p.bucket_counts.clone()),
                    };
                    let fresh = SeriesValue::Histogram {
                        bounds,
                        counts,
                        sum: p.sum,
                        count: p.count,
                    };
                    let delta = *temporality == Temporality::Delta;
                    let series = family
                        .series
                        .entry(labels_of(&p.attributes))
                        .or_insert(Series {
                            value: SeriesValue::Number(Number::Int(0)),
                            last_seen: now,
                        });
                    series.last_seen = now;
                    if !(delta && merge_histogram(&mut series.value, &fresh)) {
                        // Cumulative input, a first point, or changed bounds: start afresh.
                        series.value = fresh;
                    }
                }
            }
        }
        if unbucketable {
            self.warn_once(format!("bounds:{}", metric.name), || {
                format!(
                    "histogram {}: its bucket bounds cannot be re-bucketed exactly into the configured ones (each configured bound must be one of the incoming bounds); exporting the incoming bounds",
                    metric.name
                )
            });
        }
    }

    /// Removes every series (and `target_info`) not updated within `ttl`.
    pub(crate) fn prune(&mut self, now: Instant) {
        let ttl = self.ttl;
        for family in self.families.values_mut() {
            family
                .series
                .retain(|_, s| now.duration_since(s.last_seen) < ttl);
        }
        self.families.retain(|_, f| !f.series.is_empty());
        self.targets
            .retain(|_, (_, seen)| now.duration_since(*seen) < ttl);
        self.last_prune = now;
    }

    pub(crate) fn series_count(&self) -> usize {
        self.families.values().map(|f| f.series.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rebucketing_is_exact_or_refused() {
        // from: (-inf,1] (1,2] (2,5] (5,inf)
        let from = [1.0, 2.0, 5.0];
        let counts = [1, 2, 3, 4];
        assert_eq!(rebucket(&from, &counts, &[2.0]), Some(vec![3, 7]));
        assert_eq!(rebucket(&from, &counts, &[1.0, 5.0]), Some(vec![1, 5, 4]));
        assert_eq!(rebucket(&from, &counts, &[3.0]), None);
    }
}
