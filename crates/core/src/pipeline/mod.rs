//! From configuration to running tasks: the graph builder, the tower stages and the runtime.
//! See `docs/ARCHITECTURE.md` for the picture.

mod batch_layer;
pub mod exporter_helper;
pub mod graph;
mod output;
mod queue;
pub mod runtime;

pub use batch_layer::{BatchFn, BatchLayer, BatchService};
pub use exporter_helper::{ExporterSettings, RetryConfig, RetryingExporter};
pub use graph::{build, Graph};
pub use output::{ReceiverOutput, SendError};
pub use queue::{ExporterQueue, FanOut, QueueConfig, WhenFull};
pub use runtime::{start, RunningGraph, ShutdownReport};

use crate::data::Signal;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Every pipeline stage, boxed at the boundary so stacks of any depth have one type.
pub type PipelineService = tower::util::BoxService<Signal, (), BoxError>;

/// What a processor factory returns: a layer that wraps the rest of the pipeline.
pub type ProcessorLayer = tower::util::BoxLayer<PipelineService, Signal, (), BoxError>;
