//! `select`: chooses which attributes each metric keeps, and merges the data points that
//! become identical, so the output really has fewer series.
//!
//! ```yaml
//! processors:
//!   select:
//!     tapline_network_flow_bytes:
//!       include: ["k8s.src.owner.*", "k8s.dst.owner.*", "src.zone", "dst.zone"]
//!     db_client_operation_duration:
//!       include: ["*"]
//!       exclude: ["db.query.text"]
//!     http_*:
//!       exclude: ["k8s.pod.*"]
//! ```
//!
//! Rules (see `docs/metrics.md`):
//! - A key is a glob over metric names. It matches a metric when it matches the OpenTelemetry
//!   name (`tapline.network.flow.bytes`), the same name with dots as underscores
//!   (`tapline_network_flow_bytes`), or the full Prometheus name as exposed, with its unit
//!   suffix and `_total` for counters (`tapline_network_flow_bytes_total`).
//! - Every matching entry applies. Data point attributes kept = the union of the matching
//!   entries' `include` globs when any has one, otherwise the metric's default set
//!   ([`tapline_semconv::metric::ALL`]; all attributes for a metric without one); then the union
//!   of their `exclude` globs is removed.
//! - Resource attributes are only ever removed by `exclude` (`include` narrows data point
//!   attributes, never the resource that identifies the producer).
//! - Points left with identical attributes are merged: sums are added, histograms merged, and
//!   of identical gauge points the latest is kept.
//! - `select: {}` applies each metric's default set.

use std::sync::{Arc, RwLock};

use hashbrown::HashTable;
use serde::Deserialize;
use tapline_core::config::types::Glob;
use tapline_core::data::{
    Attributes, HistogramPoint, Metric, MetricData, Metrics, NumberPoint, Resource,
    ResourceMetrics, Signal, SignalKind, Str, Value,
};
use tapline_core::pipeline::BatchFn;
use tapline_semconv::prometheus::NameKind;

use crate::net::{fast_map, FastMap, Layouts};

pub const SIGNALS: &[SignalKind] = &[SignalKind::Metrics];

/// Metric-name glob → selection.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(transparent)]
pub struct SelectConfig(pub std::collections::BTreeMap<String, SelectEntry>);

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectEntry {
    #[serde(default)]
    pub include: Option<Vec<Glob>>,
    #[serde(default)]
    pub exclude: Vec<Glob>,
}

fn underscore_name(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// What one metric keeps, from the matching entries and its defaults.
#[derive(Debug)]
struct Plan {
    include: Option<Vec<Glob>>,
    defaults: Option<&'static [&'static str]>,
    exclude: Vec<Glob>,
}

impl Plan {
    /// Keeps every attribute: nothing to do for this metric.
    fn is_identity(&self) -> bool {
        self.include.is_none() && self.defaults.is_none() && self.exclude.is_empty()
    }
    fn keep_point_attribute(&self, key: &str) -> bool {
        let included = match (&self.include, self.defaults) {
            (Some(globs), _) => globs.iter().any(|g| g.is_match(key)),
            (None, Some(d)) => d.contains(&key),
            (None, None) => true,
        };
        included && !self.exclude.iter().any(|g| g.is_match(key))
    }
    fn keep_resource_attribute(&self, key: &str) -> bool {
        !self.exclude.iter().any(|g| g.is_match(key))
    }
}

/// Remembers a plan's verdict on each attribute key for one batch. Keys are mostly
/// `&'static str` and shared `Arc<str>`, so the same key shows up at the same address on
/// every point: the first lookup is by address, the fallback by content.
struct Verdicts<'p> {
    plan: &'p Plan,
    by_address: Vec<(usize, usize, bool)>,
    by_content: FastMap<Box<str>, bool>,
}

impl<'p> Verdicts<'p> {
    fn new(plan: &'p Plan) -> Self {
        Verdicts {
            plan,
            by_address: Vec::with_capacity(32),
            by_content: fast_map(),
        }
    }
    fn keep(&mut self, key: &str) -> bool {
        let addr = key.as_ptr() as usize;
        if let Some(&(_, _, v)) = self
            .by_address
            .iter()
            .find(|(a, l, _)| *a == addr && *l == key.len())
        {
            return v;
        }
        let v = match self.by_content.get(key) {
            Some(v) => *v,
            None => {
                let v = self.plan.keep_point_attribute(key);
                if self.by_content.len() < 4096 {
                    self.by_content.insert(key.into(), v);
                }
                v
            }
        };
        // Every key seen here is alive for the whole batch, so equal addresses mean equal
        // strings; the list stays short enough to scan.
        if self.by_address.len() < 64 {
            self.by_address.push((addr, key.len(), v));
        }
        v
    }
}

pub struct SelectProcessor {
    /// (glob, include, exclude), in config order.
    entries: Vec<(Glob, Option<Vec<Glob>>, Vec<Glob>)>,
    plans: RwLock<FastMap<(Str, Str, NameKind), Arc<Plan>>>,
}

/// Metric names seen by one processor are few (tapline's own) unless it forwards OTLP from
/// elsewhere; past this many the plan cache starts over.
const MAX_PLANS: usize = 4096;

impl SelectProcessor {
    pub fn new(cfg: SelectConfig) -> Result<Self, String> {
        let mut entries = Vec::new();
        for (pattern, e) in cfg.0 {
            let glob = Glob::new(&pattern).map_err(|err| format!("{pattern}: {err}"))?;
            entries.push((glob, e.include, e.exclude));
        }
        Ok(SelectProcessor {
            entries,
            plans: RwLock::new(fast_map()),
        })
    }

    fn plan(&self, metric: &Metric) -> Arc<Plan> {
        let kind = metric.prometheus_kind();
        let key = (metric.name.clone(), metric.unit.clone(), kind);
        if let Some(p) = self
            .plans
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return p.clone();
        }
        let names = [
            metric.name.to_string(),
            underscore_name(&metric.name),
            metric.prometheus_name(),
        ];
        let mut include: Option<Vec<Glob>> = None;
        let mut exclude = Vec::new();
        for (glob, inc, exc) in &self.entries {
            if !names.iter().any(|n| glob.is_match(n)) {
                continue;
            }
            if let Some(inc) = inc {
                include
                    .get_or_insert_with(Vec::new)
                    .extend(inc.iter().cloned());
            }
            exclude.extend(exc.iter().cloned());
        }
        let plan = Arc::new(Plan {
            include,
            defaults: tapline_semconv::metric::by_name(&metric.name).map(|d| d.default_attributes),
            exclude,
        });
        let mut plans = self.plans.write().unwrap_or_else(|e| e.into_inner());
        if plans.len() >= MAX_PLANS {
            plans.clear();
        }
        plans.insert(key, plan.clone());
        plan
    }

    fn apply_metrics(&self, metrics: &mut Metrics) {
        let input = std::mem::take(&mut metrics.resource_metrics);
        let mut out: Vec<ResourceMetrics> = Vec::with_capacity(input.len());
        for rm in input {
            for mut metric in rm.metrics {
                let plan = self.plan(&metric);
                let resource = if plan.is_identity() {
                    rm.resource.clone()
                } else {
                    select_points(&mut metric.data, &plan);
                    select_resource(&rm.resource, &plan)
                };
                place(&mut out, resource, &rm.scope, metric);
            }
        }
        for rm in &mut out {
            for m in &mut rm.metrics {
                merge_identical(&mut m.data);
            }
        }
        metrics.resource_metrics = out;
    }
}

/// What selection does to one attribute layout: the swaps that bring the kept attributes,
/// in key order, to the front, and how many are kept. Points of one metric nearly always share
/// a few layouts, so this is computed once per layout and replayed in place on every point:
/// no allocation, no string comparison per point.
struct Reorder {
    swaps: Vec<(usize, usize)>,
    keep: usize,
    /// The original positions of the kept attributes, in key order: builds the output of a
    /// shared list directly, copying only what is kept.
    order: Vec<usize>,
}

impl Reorder {
    fn new(a: &Attributes, verdicts: &mut Verdicts<'_>) -> Reorder {
        let mut kept: Vec<(usize, &Str)> = a
            .as_slice()
            .iter()
            .enumerate()
            .filter(|(_, (k, _))| verdicts.keep(k))
            .map(|(i, (k, _))| (i, k))
            .collect();
        kept.sort_by(|x, y| x.1.cmp(y.1));
        // at[p]: which original attribute is at position p while the swaps are planned.
        let mut at: Vec<usize> = (0..a.len()).collect();
        let mut swaps = Vec::new();
        for (target, &(original, _)) in kept.iter().enumerate() {
            let from = at[target..]
                .iter()
                .position(|&o| o == original)
                .expect("every original index is somewhere at or after target")
                + target;
            if from != target {
                at.swap(target, from);
                swaps.push((target, from));
            }
        }
        Reorder {
            swaps,
            keep: kept.len(),
            order: kept.iter().map(|&(i, _)| i).collect(),
        }
    }

    fn apply(&self, a: &mut Attributes) {
        if self.swaps.is_empty() && self.keep == a.len() {
            return;
        }
        if a.is_shared() {
            let pairs = a.as_slice();
            *a = self.order.iter().map(|&i| pairs[i].clone()).collect();
            return;
        }
        let pairs = a.to_mut(0);
        for &(x, y) in &self.swaps {
            pairs.swap(x, y);
        }
        pairs.truncate(self.keep);
    }
}

fn select_points(data: &mut MetricData, plan: &Plan) {
    let mut verdicts = Verdicts::new(plan);
    let mut layouts: Layouts<Reorder> = Layouts::default();
    data.for_each_attributes(|a| {
        // Same keys at the same addresses: the same selection, in the same order.
        let reorder = layouts.get(a, |a| Reorder::new(a, &mut verdicts));
        reorder.apply(a);
    });
}

fn select_resource(resource: &Arc<Resource>, plan: &Plan) -> Arc<Resource> {
    if plan.exclude.is_empty()
        || resource
            .attributes
            .iter()
            .all(|(k, _)| plan.keep_resource_attribute(k))
    {
        return resource.clone();
    }
    let mut attrs = resource.attributes.clone();
    attrs.retain(|k, _| plan.keep_resource_attribute(k));
    attrs.sort();
    Resource::new(attrs)
}

/// Puts `metric` under the output resource and scope equal to `resource`/`scope`, appending
/// its points to a metric of the same name and kind when there is one.
fn place(out: &mut Vec<ResourceMetrics>, resource: Arc<Resource>, scope: &Str, metric: Metric) {
    let rm = match out.iter().position(|o| {
        o.scope == *scope && (Arc::ptr_eq(&o.resource, &resource) || o.resource == resource)
    }) {
        Some(i) => &mut out[i],
        None => {
            out.push(ResourceMetrics {
                resource,
                scope: scope.clone(),
                metrics: Vec::new(),
            });
            out.last_mut().expect("just pushed")
        }
    };
    if let Some(existing) = rm.metrics.iter_mut().find(|m| {
        m.name == metric.name && m.unit == metric.unit && same_kind(&m.data, &metric.data)
    }) {
        append(&mut existing.data, metric.data);
    } else {
        rm.metrics.push(metric);
    }
}

fn same_kind(a: &MetricData, b: &MetricData) -> bool {
    match (a, b) {
        (
            MetricData::Sum {
                temporality: t1,
                monotonic: m1,
                ..
            },
            MetricData::Sum {
                temporality: t2,
                monotonic: m2,
                ..
            },
        ) => t1 == t2 && m1 == m2,
        (MetricData::Gauge { .. }, MetricData::Gauge { .. }) => true,
        (
            MetricData::Histogram {
                temporality: t1, ..
            },
            MetricData::Histogram {
                temporality: t2, ..
            },
        ) => t1 == t2,
        _ => false,
    }
}

fn append(into: &mut MetricData, from: MetricData) {
    match (into, from) {
        (MetricData::Sum { points: a, .. }, MetricData::Sum { points: b, .. })
        | (MetricData::Gauge { points: a }, MetricData::Gauge { points: b }) => a.extend(b),
        (MetricData::Histogram { points: a, .. }, MetricData::Histogram { points: b, .. }) => {
            a.extend(b)
        }
        _ => unreachable!("same_kind checked the variants"),
    }
}

/// Hashes the values only, and of a string its length and first and last 8 bytes: the points
/// of a metric nearly always have the same keys, and values that agree on all that are rare
/// (they cost one full comparison). Equal attribute lists still hash equally.
fn hash_attrs(state: &foldhash::fast::FixedState, a: &Attributes) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = state.build_hasher();
    h.write_usize(a.len());
    for (_, v) in a {
        match v {
            Value::Str(s) => {
                let b = s.as_bytes();
                let (head, tail) = if b.len() >= 8 {
                    (
                        u64::from_le_bytes(b[..8].try_into().expect("8 bytes")),
                        u64::from_le_bytes(b[b.len() - 8..].try_into().expect("8 bytes")),
                    )
                } else {
                    (short_word(b), 0)
                };
                h.write_u64(head ^ (b.len() as u64) << 56);
                h.write_u64(tail);
            }
            Value::Int(i) => h.write_u64(*i as u64 ^ 1 << 62),
            Value::Double(d) => h.write_u64(d.to_bits() ^ 2 << 62),
            Value::Bool(b) => h.write_u64(*b as u64 ^ 3 << 62),
        }
    }
    h.finish()
}

/// A word made of the bytes of `b` (shorter than 8 bytes) by overlapping loads, without a call
/// to `memcpy`: equal bytes give equal words (the length is hashed beside it).
#[inline(always)]
fn short_word(b: &[u8]) -> u64 {
    let n = b.len();
    if n >= 4 {
        let lo = u32::from_le_bytes(b[..4].try_into().expect("4 bytes")) as u64;
        let hi = u32::from_le_bytes(b[n - 4..].try_into().expect("4 bytes")) as u64;
        lo | hi << 32
    } else if n > 0 {
        b[0] as u64 | (b[n / 2] as u64) << 8 | (b[n - 1] as u64) << 16
    } else {
        0
    }
}

/// Merges points whose attributes are equal (attributes are sorted by then).
fn merge_identical(data: &mut MetricData) {
    let state = foldhash::fast::FixedState::default();
    match data {
        MetricData::Sum { points, .. } => {
            merge_points(points, &state, |a: &mut NumberPoint, b: NumberPoint| {
                a.value = a.value + b.value;
                a.start_time_ns = a.start_time_ns.min(b.start_time_ns);
                a.time_ns = a.time_ns.max(b.time_ns);
                None
            })
        }
        MetricData::Gauge { points } => {
            merge_points(points, &state, |a: &mut NumberPoint, b: NumberPoint| {
                if b.time_ns >= a.time_ns {
                    *a = b;
                }
                None
            })
        }
        MetricData::Histogram { points, .. } => {
            merge_points(
                points,
                &state,
                |a: &mut HistogramPoint, b: HistogramPoint| {
                    // Different bucket bounds cannot merge: both points are kept.
                    if a.merge(&b) {
                        None
                    } else {
                        Some(b)
                    }
                },
            )
        }
    }
}

trait HasAttributes {
    fn attributes(&self) -> &Attributes;
}
impl HasAttributes for NumberPoint {
    fn attributes(&self) -> &Attributes {
        &self.attributes
    }
}
impl HasAttributes for HistogramPoint {
    fn attributes(&self) -> &Attributes {
        &self.attributes
    }
}

/// `combine(a, b)` folds `b` into `a`, or hands `b` back when it cannot.
fn merge_points<P: HasAttributes>(
    points: &mut Vec<P>,
    state: &foldhash::fast::FixedState,
    mut combine: impl FnMut(&mut P, P) -> Option<P>,
) {
    if points.len() < 2 {
        return;
    }
    let input = std::mem::take(points);
    let mut table: HashTable<(u64, usize)> = HashTable::with_capacity(input.len());
    for p in input {
        let h = hash_attrs(state, p.attributes());
        let found = table
            .find(h, |&(hh, i)| {
                hh == h && points[i].attributes() == p.attributes()
            })
            .map(|&(_, i)| i);
        let leftover = match found {
            Some(i) => combine(&mut points[i], p),
            None => Some(p),
        };
        if let Some(p) = leftover {
            let i = points.len();
            points.push(p);
            if found.is_none() {
                table.insert_unique(h, (h, i), |&(hh, _)| hh);
            }
        }
    }
}

impl BatchFn for SelectProcessor {
    fn apply(&self, batch: &mut Signal) {
        if let Signal::Metrics(m) = batch {
            self.apply_metrics(m);
        }
    }
}

#[cfg(test)]
mod tests;
