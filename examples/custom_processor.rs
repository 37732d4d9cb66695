//! A binary of your own: tapline's built-in components plus a processor from your crate,
//! behind the same CLI (`run`, `validate`, `components`).
//!
//! ```sh
//! cargo run --example custom_processor -- run --config examples/custom_processor.yaml
//! ```

use std::process::ExitCode;

use serde::Deserialize;
use tapline::core::data::{Signal, SignalKind};

/// The processor's typed config; unknown fields are rejected like every built-in's.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TeamConfig {
    team: String,
}

fn main() -> ExitCode {
    let mut registry = tapline::builtin_registry();
    registry.register_fn_processor(
        "team",
        "Tags every data point and span with the owning team",
        &[SignalKind::Metrics, SignalKind::Traces],
        |cfg: TeamConfig| {
            if cfg.team.is_empty() {
                return Err("team must not be empty".to_string());
            }
            let team = tapline::core::data::Str::from(cfg.team);
            // The function the framework lifts into a tower layer: change the batch in place.
            Ok(move |batch: &mut Signal| match batch {
                Signal::Metrics(m) => m.metrics_mut().for_each(|metric| {
                    metric
                        .data
                        .for_each_attributes(|a| a.set("team", team.clone()))
                }),
                Signal::Traces(t) => t
                    .spans_mut()
                    .for_each(|s| s.attributes.set("team", team.clone())),
            })
        },
    );
    tapline::service::main(registry, tapline::DEFAULT_CONFIG)
}
