//! tapline's pipeline framework: the telemetry data model, configuration loading and
//! validation, the component traits and registry, the pipeline runtime and self-telemetry
//! counters. What a component author compiles against; the command line and the
//! self-telemetry HTTP server live in `tapline-service`.

pub mod component;
pub mod config;
pub mod data;
pub mod pipeline;
pub mod readiness;
pub mod registry;
pub mod telemetry;
pub mod tls;

pub use component::*;
pub use registry::Registry;
