//! The built-in component set, for the `tapline` binary and for library users who build their
//! own binary with extra components (see `examples/custom_processor.rs`).

pub use tapline_core as core;
pub use tapline_service as service;

/// A registry holding every built-in receiver, processor and exporter.
pub fn builtin_registry() -> tapline_core::Registry {
    let mut registry = tapline_core::Registry::new();
    tapline_receivers::register(&mut registry);
    tapline_processors::register(&mut registry);
    tapline_exporters::register(&mut registry);
    registry
}

/// The embedded default configuration, as `tapline run` uses it without `--config`.
pub const DEFAULT_CONFIG: tapline_service::DefaultConfig = tapline_service::DefaultConfig {
    name: "configs/default.yaml (embedded)",
    text: include_str!("../configs/default.yaml"),
    overlays: &[(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "configs/default-otlp.yaml (embedded, because OTEL_EXPORTER_OTLP_ENDPOINT is set)",
        include_str!("../configs/default-otlp.yaml"),
    )],
};
