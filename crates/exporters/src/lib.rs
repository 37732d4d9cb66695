//! tapline's exporters.

pub mod debug;
pub mod nop;
pub mod otlp;
pub mod prometheus;
pub mod summary;

use tapline_core::Registry;

/// Registers every built-in exporter, and the `histogram_buckets` extension whose rules the
/// `prometheus` exporter serves.
pub fn register(registry: &mut Registry) {
    registry
        .register_extension(tapline_core::data::buckets::HistogramBucketsExtension)
        .register_exporter(debug::DebugFactory)
        .register_exporter(nop::NopFactory)
        .register_exporter(otlp::OtlpFactory)
        .register_exporter(prometheus::PrometheusFactory)
        .register_exporter(summary::SummaryFactory);
}
