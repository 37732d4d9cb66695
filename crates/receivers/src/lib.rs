//! tapline's receivers: the eBPF sources, the OTLP receiver, and test support.

pub mod app;
pub mod flows;
mod lru;
pub mod otlp;
pub mod synthetic;

use tapline_core::telemetry::{Counter, Telemetry};
use tapline_core::Registry;

/// Registers every built-in receiver.
pub fn register(registry: &mut Registry) {
    registry
        .register_receiver(app::AppFactory)
        .register_receiver(flows::FlowsFactory)
        .register_receiver(otlp::OtlpReceiverFactory)
        .register_receiver(synthetic::SyntheticFactory);
}

/// `tapline_ebpf_records_total{receiver}`: records a receiver took from its kernel ring buffer
/// (the kernel's side of the cost: one record is one ring-buffer write and one wakeup's share).
pub(crate) fn ebpf_records_counter(telemetry: &Telemetry, receiver: &str) -> Counter {
    telemetry.counter(
        "tapline_ebpf_records_total",
        "Records the receiver took from its eBPF ring buffer.",
        &[("receiver", receiver)],
    )
}
