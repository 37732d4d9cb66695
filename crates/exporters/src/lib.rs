//! tapline's exporters.

pub mod debug;
pub mod nop;
pub mod otlp;
pub mod prometheus;
pub mod summary;

use tapline_core::Registry;

/// Registers every built-in exporter.
pub fn register(registry: &mut Registry) {
    registry
        .register_exporter(debug::DebugFactory)
        .register_exporter(nop::NopFactory)
        .register_exporter(otlp::OtlpFactory)
        .register_exporter(prometheus::PrometheusFactory)
        .register_exporter(summary::SummaryFactory);
}
