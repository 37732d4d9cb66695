//! Delta → cumulative, per series: a series is its resource, scope, metric name and point
//! attributes. Each delta point leaves as the running total since the series' first point.
//! Series unseen for [`STALE_AFTER`] are forgotten (a later point starts a new total).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tapline_core::data::*;

pub const STALE_AFTER: Duration = Duration::from_secs(3600);

#[derive(Clone, PartialEq, Eq, Hash)]
struct SeriesKey {
    resource: Arc<Resource>,
    scope: Str,
    metric: Str,
    attributes: Attributes,
}

enum Total {
    Number(Number),
    Histogram(HistogramPoint),
}

struct Entry {
    start_time_ns: u64,
    total: Total,
    last_seen: Instant,
}

#[derive(Default)]
pub struct Accumulator {
    series: HashMap<SeriesKey, Entry>,
    last_prune: Option<Instant>,
}

impl Accumulator {
    pub fn len(&self) -> usize {
        self.series.len()
    }
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// Rewrites every delta sum and histogram of `metrics` into cumulative form.
    pub fn apply(&mut self, metrics: &mut Metrics, now: Instant) {
        for rm in &mut metrics.resource_metrics {
            for m in &mut rm.metrics {
                let key = |attributes: &Attributes| SeriesKey {
                    resource: rm.resource.clone(),
                    scope: rm.scope.clone(),
                    metric: m.name.clone(),
                    attributes: attributes.clone(),
                };
                match &mut m.data {
                    MetricData::Sum {
                        temporality,
                        points,
                        ..
                    } if *temporality == Temporality::Delta => {
                        for p in points.iter_mut() {
                            let e = self.series.entry(key(&p.attributes)).or_insert(Entry {
                                start_time_ns: p.start_time_ns,
                                total: Total::Number(Number::Int(0)),
                                last_seen: now,
                            });
                            e.last_seen = now;
                            let total = match &e.total {
                                Total::Number(n) => *n + p.value,
                                Total::Histogram(_) => p.value,
                            };
                            e.total = Total::Number(total);
                            p.value = total;
                            p.start_time_ns = e.start_time_ns;
                        }
                        *temporality = Temporality::Cumulative;
                    }
                    MetricData::Histogram {
                        temporality,
                        points,
                    } if *temporality == Temporality::Delta => {
                        for p in points.iter_mut() {
                            let e = self.series.entry(key(&p.attributes)).or_insert(Entry {
                                start_time_ns: p.start_time_ns,
                                total: Total::Number(Number::Int(0)),
                                last_seen: now,
                            });
                            e.last_seen = now;
                            let merged = match &mut e.total {
                                Total::Histogram(h) => h.merge(p),
                                Total::Number(_) => false,
                            };
                            if !merged {
                                // A first point, or bounds that changed: a new total starts.
                                e.start_time_ns = p.start_time_ns;
                                e.total = Total::Histogram(p.clone());
                            }
                            if let Total::Histogram(h) = &e.total {
                                *p = h.clone();
                                p.start_time_ns = e.start_time_ns;
                            }
                        }
                        *temporality = Temporality::Cumulative;
                    }
                    _ => {}
                }
            }
        }
        if self
            .last_prune
            .is_none_or(|t| now.duration_since(t) > STALE_AFTER / 4)
        {
            self.series
                .retain(|_, e| now.duration_since(e.last_seen) < STALE_AFTER);
            self.last_prune = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(v: i64, route: &'static str, t: u64) -> Metrics {
        Metrics {
            resource_metrics: vec![ResourceMetrics {
                resource: Resource::new([("service.name", "a")].into_iter().collect()),
                scope: "s".into(),
                metrics: vec![Metric {
                    name: "n".into(),
                    description: "".into(),
                    unit: "".into(),
                    data: MetricData::Sum {
                        temporality: Temporality::Delta,
                        monotonic: true,
                        points: vec![NumberPoint {
                            attributes: [("route", route)].into_iter().collect(),
                            start_time_ns: t,
                            time_ns: t + 1,
                            value: Number::Int(v),
                        }],
                    },
                }],
            }],
        }
    }

    fn value(m: &Metrics) -> (i64, u64) {
        match &m.resource_metrics[0].metrics[0].data {
            MetricData::Sum {
                points,
                temporality: Temporality::Cumulative,
                ..
            } => match points[0].value {
                Number::Int(i) => (i, points[0].start_time_ns),
                _ => panic!(),
            },
            _ => panic!("not cumulative"),
        }
    }

    #[test]
    fn totals_are_kept_per_series() {
        let mut acc = Accumulator::default();
        let now = Instant::now();
        let mut a = batch(3, "/a", 10);
        acc.apply(&mut a, now);
        assert_eq!(value(&a), (3, 10));
        let mut b = batch(5, "/b", 20);
        acc.apply(&mut b, now);
        assert_eq!(value(&b), (5, 20));
        let mut a2 = batch(4, "/a", 30);
        acc.apply(&mut a2, now);
        assert_eq!(value(&a2), (7, 10));
        assert_eq!(acc.len(), 2);
    }
}
