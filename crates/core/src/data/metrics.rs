//! Metrics: the OpenTelemetry model (resource → metric → data points), trimmed to what
//! tapline produces and forwards.

use std::sync::Arc;
use tapline_semconv::prometheus::NameKind;

use super::{Attributes, Resource, Str};

/// Whether a sum or histogram point covers the time since the last export or since start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Temporality {
    Delta,
    Cumulative,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Number {
    Int(i64),
    Double(f64),
}

impl Number {
    pub fn as_f64(self) -> f64 {
        match self {
            Number::Int(i) => i as f64,
            Number::Double(d) => d,
        }
    }
}

/// An integer stays an integer only when both sides are.
impl std::ops::Add for Number {
    type Output = Number;
    fn add(self, other: Number) -> Number {
        match (self, other) {
            (Number::Int(a), Number::Int(b)) => Number::Int(a.wrapping_add(b)),
            (a, b) => Number::Double(a.as_f64() + b.as_f64()),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct NumberPoint {
    pub attributes: Attributes,
    pub start_time_ns: u64,
    pub time_ns: u64,
    pub value: Number,
}

#[derive(Clone, Debug, PartialEq)]
pub struct HistogramPoint {
    pub attributes: Attributes,
    pub start_time_ns: u64,
    pub time_ns: u64,
    pub count: u64,
    pub sum: f64,
    /// Upper bounds; shared by every point of a metric.
    pub bounds: Arc<[f64]>,
    /// `bounds.len() + 1` counts; the last one is the overflow bucket.
    pub bucket_counts: Vec<u64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

impl HistogramPoint {
    pub fn new(
        attributes: Attributes,
        bounds: Arc<[f64]>,
        start_time_ns: u64,
        time_ns: u64,
    ) -> Self {
        let buckets = bounds.len() + 1;
        HistogramPoint {
            attributes,
            start_time_ns,
            time_ns,
            count: 0,
            sum: 0.0,
            bounds,
            bucket_counts: vec![0; buckets],
            min: None,
            max: None,
        }
    }

    pub fn record(&mut self, value: f64) {
        let idx = self.bounds.partition_point(|b| *b < value);
        self.bucket_counts[idx] += 1;
        self.count += 1;
        self.sum += value;
        self.min = Some(self.min.map_or(value, |m| m.min(value)));
        self.max = Some(self.max.map_or(value, |m| m.max(value)));
    }

    /// Adds `other` into `self`. Points with different bounds cannot merge; `false` then.
    pub fn merge(&mut self, other: &HistogramPoint) -> bool {
        if self.bounds != other.bounds {
            return false;
        }
        for (a, b) in self.bucket_counts.iter_mut().zip(&other.bucket_counts) {
            *a += b;
        }
        self.count += other.count;
        self.sum += other.sum;
        self.min = match (self.min, other.min) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.max = match (self.max, other.max) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.start_time_ns = self.start_time_ns.min(other.start_time_ns);
        self.time_ns = self.time_ns.max(other.time_ns);
        true
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum MetricData {
    Sum {
        temporality: Temporality,
        monotonic: bool,
        points: Vec<NumberPoint>,
    },
    Gauge {
        points: Vec<NumberPoint>,
    },
    Histogram {
        temporality: Temporality,
        points: Vec<HistogramPoint>,
    },
}

impl MetricData {
    pub fn len(&self) -> usize {
        match self {
            MetricData::Sum { points, .. } | MetricData::Gauge { points } => points.len(),
            MetricData::Histogram { points, .. } => points.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Every point's attributes, mutably: what most decorating processors need.
    pub fn for_each_attributes(&mut self, mut f: impl FnMut(&mut Attributes)) {
        match self {
            MetricData::Sum { points, .. } | MetricData::Gauge { points } => {
                points.iter_mut().for_each(|p| f(&mut p.attributes))
            }
            MetricData::Histogram { points, .. } => {
                points.iter_mut().for_each(|p| f(&mut p.attributes))
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Metric {
    /// OpenTelemetry name, with dots (`tapline.network.flow.bytes`).
    pub name: Str,
    pub description: Str,
    /// UCUM unit (`By`, `s`, `{packet}`).
    pub unit: Str,
    pub data: MetricData,
}

impl Metric {
    /// The Prometheus metric type the data is exposed as: monotonic sums are counters, other
    /// sums and gauges are gauges.
    pub fn prometheus_kind(&self) -> NameKind {
        match &self.data {
            MetricData::Sum {
                monotonic: true, ..
            } => NameKind::Counter,
            MetricData::Sum { .. } | MetricData::Gauge { .. } => NameKind::Gauge,
            MetricData::Histogram { .. } => NameKind::Histogram,
        }
    }
    /// The name the Prometheus exporter exposes the metric under.
    pub fn prometheus_name(&self) -> String {
        tapline_semconv::prometheus::metric_name(&self.name, &self.unit, self.prometheus_kind())
    }
}

/// Every metric of one resource and instrumentation scope.
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceMetrics {
    pub resource: Arc<Resource>,
    pub scope: Str,
    pub metrics: Vec<Metric>,
}

/// The unit that travels through a metrics pipeline.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metrics {
    pub resource_metrics: Vec<ResourceMetrics>,
}

impl Metrics {
    /// Number of data points: the unit every component counts.
    pub fn item_count(&self) -> usize {
        self.resource_metrics
            .iter()
            .flat_map(|rm| &rm.metrics)
            .map(|m| m.data.len())
            .sum()
    }
    pub fn metrics_mut(&mut self) -> impl Iterator<Item = &mut Metric> {
        self.resource_metrics
            .iter_mut()
            .flat_map(|rm| rm.metrics.iter_mut())
    }
    pub fn metrics(&self) -> impl Iterator<Item = (&Arc<Resource>, &Metric)> {
        self.resource_metrics
            .iter()
            .flat_map(|rm| rm.metrics.iter().map(move |m| (&rm.resource, m)))
    }
}
