//! Histogram bucket boundaries: the defaults every receiver uses, and the per-metric choice
//! that an exporter's configuration makes (the `prometheus` exporter's `histograms:` rules).
//!
//! Receivers aggregate histograms themselves, so the cheapest exact way to honour a configured
//! set of boundaries is for the receiver to record into those boundaries in the first place:
//! exporters publish their rules in [`SharedState`](crate::SharedState) under
//! [`HistogramBuckets::SHARED_KEY`] (exporters are built before receivers), and receivers ask
//! [`HistogramBuckets::bounds_for`] which boundaries a metric should use.

use std::sync::Arc;

use crate::config::types::Glob;

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
    /// Where exporters publish their rules for receivers to read.
    pub const SHARED_KEY: &'static str = "tapline.histogram_buckets";

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
