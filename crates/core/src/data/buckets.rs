//! Histogram bucket boundaries: the defaults every receiver uses, and per-metric rules.
//!
//! Receivers aggregate histograms themselves, so the cheapest exact way to honour a configured
//! set of boundaries is for the receiver to record into those boundaries in the first place.
//! The rules are the `histogram_buckets` extension ([`HistogramBucketsExtension`]): the
//! `prometheus` exporter and the receivers that record histograms name it with `extension:`.
//! Without one, the `prometheus` exporter's own `histograms:` rules become the graph's default
//! extension (exporters are built before receivers), which receivers naming no extension use;
//! they ask [`HistogramBuckets::bounds_for`] which boundaries a metric should use.

use std::sync::Arc;

use serde::Deserialize;

use crate::component::{BuildContext, Component, ConfigErrors, ExtensionComponent};
use crate::config::types::Glob;
use crate::data::SignalKind;

pub use tapline_semconv::buckets::{
    default_for_unit as default_bounds_for_unit, DURATION_SECONDS as DURATION_SECONDS_BUCKETS,
    SIZE_BYTES as SIZE_BYTES_BUCKETS,
};

/// One rule: metrics whose OpenTelemetry name matches `pattern` use `bounds`.
#[derive(Clone, Debug)]
pub struct BucketRule {
    pub pattern: Glob,
    pub bounds: Arc<[f64]>,
}

/// Ordered rules; the first match wins, and the unit's default applies when none matches.
#[derive(Clone, Debug, Default)]
pub struct HistogramBuckets {
    pub rules: Vec<BucketRule>,
}

impl HistogramBuckets {
    /// Compiles configured rules; problems are reported at `field[i].buckets`.
    pub fn from_rules(rules: &[HistogramRuleConfig], field: &str) -> Result<Self, ConfigErrors> {
        let mut errors = ConfigErrors::new();
        let mut out = Vec::new();
        for (i, r) in rules.iter().enumerate() {
            match validate_bounds(&r.buckets) {
                Ok(()) => out.push(BucketRule {
                    pattern: r.metrics.clone(),
                    bounds: r.buckets.clone().into(),
                }),
                Err(e) => errors.push(format!("{field}[{i}].buckets"), e),
            }
        }
        errors.or_ok(HistogramBuckets { rules: out })
    }

    /// The rules a component records into: the `histogram_buckets` extension its config field
    /// `field` names, or else the graph's default (the `prometheus` exporter's rules, if any).
    pub fn for_component(
        ctx: &BuildContext,
        field: &str,
        reference: Option<&str>,
    ) -> Result<Arc<HistogramBuckets>, ConfigErrors> {
        ctx.extension_or_default::<HistogramBucketsExtension>(
            field,
            reference,
            HistogramBuckets::default,
        )
    }

    /// The configured boundaries for `name`, if a rule matches.
    pub fn configured(&self, name: &str) -> Option<&Arc<[f64]>> {
        self.rules
            .iter()
            .find(|r| r.pattern.is_match(name))
            .map(|r| &r.bounds)
    }

    /// The boundaries a receiver should record `name` (of `unit`) into.
    pub fn bounds_for(&self, name: &str, unit: &str) -> Arc<[f64]> {
        self.configured(name)
            .cloned()
            .unwrap_or_else(|| default_bounds_for_unit(unit).into())
    }
}

/// One configured rule: metrics matching the glob record into these boundaries.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistogramRuleConfig {
    /// A glob over OpenTelemetry metric names (`http.server.*`).
    pub metrics: Glob,
    pub buckets: Vec<f64>,
}

/// `extensions.histogram_buckets`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistogramBucketsConfig {
    /// Bucket boundaries per metric-name glob; the first match wins.
    #[serde(default)]
    pub histograms: Vec<HistogramRuleConfig>,
}

/// The `histogram_buckets` extension: bucket rules shared by the receivers that record
/// histograms and the `prometheus` exporter that serves them.
pub struct HistogramBucketsExtension;

impl Component for HistogramBucketsExtension {
    type Config = HistogramBucketsConfig;
    const TYPE_NAME: &'static str = "histogram_buckets";
    const DESCRIPTION: &'static str =
        "Histogram bucket boundaries per metric, for receivers to record into and exporters to serve";
    const SIGNALS: &'static [SignalKind] = &[];
}

impl ExtensionComponent for HistogramBucketsExtension {
    type Extension = HistogramBuckets;
    fn build(
        &self,
        config: HistogramBucketsConfig,
        _ctx: &BuildContext,
    ) -> Result<HistogramBuckets, ConfigErrors> {
        HistogramBuckets::from_rules(&config.histograms, "histograms")
    }
}

/// Checks that boundaries are usable: finite and strictly increasing.
pub fn validate_bounds(bounds: &[f64]) -> Result<(), String> {
    if bounds.is_empty() {
        return Err("at least one bucket boundary is needed".into());
    }
    if let Some(b) = bounds.iter().find(|b| !b.is_finite()) {
        return Err(format!("bucket boundary {b} is not a finite number"));
    }
    if let Some(w) = bounds.windows(2).find(|w| w[0] >= w[1]) {
        return Err(format!(
            "bucket boundaries must increase strictly, but {} is followed by {}",
            w[0], w[1]
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_matching_rule_wins_and_units_pick_defaults() {
        let b = HistogramBuckets {
            rules: vec![
                BucketRule {
                    pattern: Glob::new("http.*").unwrap(),
                    bounds: vec![1.0, 2.0].into(),
                },
                BucketRule {
                    pattern: Glob::new("*").unwrap(),
                    bounds: vec![3.0].into(),
                },
            ],
        };
        assert_eq!(&*b.bounds_for("http.server.duration", "s"), &[1.0, 2.0]);
        assert_eq!(&*b.bounds_for("db.x", "s"), &[3.0]);
        let none = HistogramBuckets::default();
        assert_eq!(&*none.bounds_for("x", "By"), SIZE_BYTES_BUCKETS);
        assert_eq!(&*none.bounds_for("x", "s"), DURATION_SECONDS_BUCKETS);
        assert!(validate_bounds(&[1.0, 1.0])
            .unwrap_err()
            .contains("increase"));
        assert!(validate_bounds(&[f64::NAN]).is_err());
    }
}
