//! The `tapline` agent: every built-in component, the embedded default configuration, the CLI.

use std::process::ExitCode;

fn main() -> ExitCode {
    tapline_service::main(tapline::builtin_registry(), tapline::DEFAULT_CONFIG)
}
