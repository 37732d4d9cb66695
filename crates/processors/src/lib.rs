//! tapline's processors. Most are a [`tapline_core::pipeline::BatchFn`] lifted into tower by
//! the framework's generic adapter.

pub mod attributes;

use tapline_core::Registry;

/// Registers every built-in processor.
pub fn register(registry: &mut Registry) {
    registry.register_fn_processor(
        "attributes",
        "Inserts, updates or deletes attributes on every data point and span",
        attributes::SIGNALS,
        attributes::AttributesProcessor::new,
    );
}
