//! The `tapline` service: the command line (`run`, `validate`, `components`), configuration
//! reload on SIGHUP, logging, and the self-telemetry HTTP server. A binary with extra
//! components calls [`main`] with its own registry; component crates do not depend on this.

pub mod cli;
pub mod server;

pub use cli::{main, DefaultConfig};
