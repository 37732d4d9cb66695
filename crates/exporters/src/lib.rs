//! tapline's exporters.

pub mod debug;
pub mod nop;

use tapline_core::Registry;

/// Registers every built-in exporter.
pub fn register(registry: &mut Registry) {
    registry
        .register_exporter(debug::DebugFactory)
        .register_exporter(nop::NopFactory);
}
