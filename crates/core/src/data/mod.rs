//! tapline's in-memory telemetry: what receivers produce, processors change and exporters send.
//!
//! Conversion to and from the OTLP protobuf types lives in [`otlp`] and nowhere else.

pub mod buckets;
mod metrics;
pub mod otlp;
mod traces;
mod value;

use std::sync::Arc;

pub use buckets::{DURATION_SECONDS_BUCKETS, SIZE_BYTES_BUCKETS};
pub use metrics::*;
pub use traces::*;
pub use value::{Attributes, Str, Value};

/// The entity that produced telemetry (a host, a process, a service).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Resource {
    pub attributes: Attributes,
}

impl Resource {
    pub fn new(attributes: Attributes) -> Arc<Resource> {
        Arc::new(Resource { attributes })
    }
}

/// The kinds of pipeline a component can take part in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SignalKind {
    Metrics,
    Traces,
}

impl SignalKind {
    pub const ALL: [SignalKind; 2] = [SignalKind::Metrics, SignalKind::Traces];
    pub fn as_str(self) -> &'static str {
        match self {
            SignalKind::Metrics => "metrics",
            SignalKind::Traces => "traces",
        }
    }
}

impl std::fmt::Display for SignalKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One batch of telemetry, owned: processors change it in place.
#[derive(Clone, Debug, PartialEq)]
pub enum Signal {
    Metrics(Metrics),
    Traces(Traces),
}

impl Signal {
    pub fn kind(&self) -> SignalKind {
        match self {
            Signal::Metrics(_) => SignalKind::Metrics,
            Signal::Traces(_) => SignalKind::Traces,
        }
    }
    /// Data points for metrics, spans for traces.
    pub fn item_count(&self) -> usize {
        match self {
            Signal::Metrics(m) => m.item_count(),
            Signal::Traces(t) => t.item_count(),
        }
    }
}

/// A batch after the processors, shared read-only by every exporter of the pipeline.
pub type SharedSignal = Arc<Signal>;

/// Nanoseconds since the Unix epoch.
pub fn now_unix_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}
