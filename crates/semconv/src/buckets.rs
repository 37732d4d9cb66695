//! Default histogram boundaries. An exporter's configuration can choose others per metric
//! (the `prometheus` exporter's `histograms:` rules); these apply when none does.

/// Upper bounds for durations in seconds (`unit: s`), the OpenTelemetry HTTP defaults.
pub const DURATION_SECONDS: &[f64] = &[
    0.0, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Upper bounds for sizes in bytes (`unit: By`).
pub const SIZE_BYTES: &[f64] = &[
    0.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0,
];

/// The default boundaries for a metric of `unit`: sizes for `By`, durations otherwise.
pub fn default_for_unit(unit: &str) -> &'static [f64] {
    match unit {
        "By" => SIZE_BYTES,
        _ => DURATION_SECONDS,
    }
}
