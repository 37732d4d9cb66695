//! tapline's receivers: the eBPF sources, the OTLP receiver, and test support.

pub mod app;
pub mod flows;
mod lru;
pub mod otlp;
pub mod synthetic;

use tapline_core::Registry;

/// Registers every built-in receiver.
pub fn register(registry: &mut Registry) {
    registry
        .register_receiver(app::AppFactory)
        .register_receiver(flows::FlowsFactory)
        .register_receiver(otlp::OtlpReceiverFactory)
        .register_receiver(synthetic::SyntheticFactory);
}
