//! tapline's processors. Most are a [`tapline_core::pipeline::BatchFn`] lifted into tower by
//! the framework's generic adapter.

pub mod attributes;
pub mod cidr;
pub mod k8s;
pub mod net;
pub mod rdns;
pub mod select;
pub mod zones;

use tapline_core::Registry;

/// Registers every built-in processor and the extensions they share.
pub fn register(registry: &mut Registry) {
    registry.register_fn_processor(
        "attributes",
        "Inserts, updates or deletes attributes on every data point and span",
        attributes::SIGNALS,
        attributes::AttributesProcessor::new,
    );
    registry.register_fn_processor(
        "cidr",
        "Adds src.cidr/dst.cidr: the narrowest configured network containing each end of a flow",
        cidr::SIGNALS,
        cidr::CidrProcessor::new,
    );
    registry
        .register_extension(k8s::K8sMetadataExtension)
        .register_extension(rdns::DnsNamesExtension);
    registry.register_processor(k8s::K8sFactory);
    registry.register_processor(zones::ZonesFactory);
    registry.register_processor(rdns::RdnsFactory);
    registry.register_fn_processor(
        "select",
        "Chooses the attributes each metric keeps (default sets per metric) and merges the series that become identical",
        select::SIGNALS,
        select::SelectProcessor::new,
    );
}
