//! tapline's pipeline framework: the telemetry data model, configuration loading and
//! validation, the component registry, the pipeline runtime, self-telemetry and the CLI.

pub mod cli;
pub mod component;
pub mod config;
pub mod data;
pub mod pipeline;
pub mod registry;
pub mod telemetry;
pub mod tls;

pub use component::*;
pub use registry::Registry;
