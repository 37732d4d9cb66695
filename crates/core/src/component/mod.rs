//! The four kinds of component and the factories that build them.
//!
//! Every component has the same shape: a factory (registered by type name) parses the typed
//! config and builds the component without starting anything, so `validate` can build a whole
//! graph safely; the runtime starts what was built. Component authors implement one of the
//! typed traits in [`typed`] (a config struct, a type name, `build`); the generic adapter there
//! supplies the type-erased factory the registry stores, parses the config and prefixes every
//! problem with the component's config path.

mod context;
pub mod typed;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::config::{ComponentConfig, Diagnostics};
use crate::data::{SharedSignal, SignalKind};
use crate::pipeline::{ProcessorLayer, ReceiverOutput};

pub use context::{BackgroundTask, BuildContext, BuiltExtension, Extensions, SharedState};
pub use typed::{
    Component, ConfigErrors, ExporterComponent, ExtensionComponent, ProcessorComponent,
    ReceiverComponent,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ComponentKind {
    Extension,
    Receiver,
    Processor,
    Exporter,
}

impl ComponentKind {
    /// The top-level config section of this kind.
    pub fn section(self) -> &'static str {
        match self {
            ComponentKind::Extension => "extensions",
            ComponentKind::Receiver => "receivers",
            ComponentKind::Processor => "processors",
            ComponentKind::Exporter => "exporters",
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            ComponentKind::Extension => "extension",
            ComponentKind::Receiver => "receiver",
            ComponentKind::Processor => "processor",
            ComponentKind::Exporter => "exporter",
        }
    }
}

/// `type` or `type/name`, as written in the config.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ComponentId {
    pub type_name: String,
    pub name: Option<String>,
}

impl ComponentId {
    pub fn parse(s: &str) -> Result<ComponentId, String> {
        let (t, n) = match s.split_once('/') {
            Some((t, n)) => (t, Some(n)),
            None => (s, None),
        };
        let valid = |x: &str| {
            !x.is_empty()
                && x.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        };
        if !valid(t) || n.is_some_and(|n| !valid(n)) {
            return Err(format!(
                "invalid component id {s:?}: write `type` or `type/name` using letters, digits, `_`, `-`, `.`"
            ));
        }
        Ok(ComponentId {
            type_name: t.to_string(),
            name: n.map(str::to_string),
        })
    }
}

impl fmt::Display for ComponentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(n) => write!(f, "{}/{}", self.type_name, n),
            None => f.write_str(&self.type_name),
        }
    }
}

/// What every factory tells the registry and `tapline components` about itself.
pub trait FactoryInfo: Send + Sync {
    fn type_name(&self) -> &'static str;
    fn description(&self) -> &'static str;
    fn signals(&self) -> &'static [SignalKind];
    /// Test-support components stay out of `tapline components`.
    fn hidden(&self) -> bool {
        false
    }
}

/// A source of telemetry. It runs until `ctx.shutdown` fires, then returns; dropping its
/// output is what lets the pipelines drain.
#[async_trait]
pub trait Receiver: Send {
    async fn run(self: Box<Self>, ctx: ReceiverContext) -> anyhow::Result<()>;
    /// `true`: `run` calls `ctx.readiness.ready(..)` once it captures (programs attached,
    /// listeners bound), and `/readyz` waits for that. `false` (the default): the receiver
    /// counts as ready as soon as it starts.
    fn reports_readiness(&self) -> bool {
        false
    }
}

pub struct ReceiverContext {
    pub id: ComponentId,
    pub output: ReceiverOutput,
    pub shutdown: tokio_util::sync::CancellationToken,
    /// This receiver's say in `/readyz` (see [`Receiver::reports_readiness`]).
    pub readiness: crate::readiness::ReadyHandle,
}

/// The type-erased receiver factory the registry stores. Implement [`ReceiverComponent`]
/// instead; it provides this.
pub trait ReceiverFactory: FactoryInfo {
    fn build(
        &self,
        config: &ComponentConfig,
        ctx: &BuildContext,
    ) -> Result<Box<dyn Receiver>, Diagnostics>;
}

/// The type-erased processor factory. It builds a processor once per component id; every
/// pipeline that lists the id gets a clone of the same layer, so what the processor holds (a
/// cache, a watcher) exists once however many pipelines use it. Implement
/// [`ProcessorComponent`] or use
/// [`Registry::register_fn_processor`](crate::Registry::register_fn_processor) instead.
pub trait ProcessorFactory: FactoryInfo {
    fn build(
        &self,
        config: &ComponentConfig,
        ctx: &BuildContext,
    ) -> Result<ProcessorLayer, Diagnostics>;
}

/// A destination. `export` is called with one batch at a time, in order; the framework's
/// exporter helper owns the queue in front of it, retries what the exporter reports as
/// retryable, bounds each attempt by [`Exporter::attempt_timeout`], and counts what it drops.
#[async_trait]
pub trait Exporter: Send {
    /// Binds ports and connects; called before any receiver starts.
    async fn start(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
    /// One attempt at delivering `batch`.
    async fn export(&mut self, batch: SharedSignal) -> Result<(), ExportError>;
    /// Flushes what it buffers; called once the queue is drained.
    async fn shutdown(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
    /// How long one attempt at a batch of `kind` may take before it counts as a retryable
    /// failure. `None`: as long as it takes.
    fn attempt_timeout(&self, _kind: SignalKind) -> Option<Duration> {
        None
    }
    /// Another handle on the same destination, for `queue.concurrency` above 1: each handle
    /// exports one batch at a time. `None` (the default): this exporter sends one batch at a
    /// time, and a higher concurrency is a configuration error.
    fn fork(&self) -> Option<Box<dyn Exporter>> {
        None
    }
}

/// A failed export attempt. Permanent failures drop the batch at once (its items counted as
/// dropped); retryable ones are retried by the exporter helper, no sooner than `retry_after`
/// when the destination said when (gRPC RetryInfo, HTTP `Retry-After`).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ExportError {
    pub message: String,
    pub retryable: bool,
    pub retry_after: Option<Duration>,
}

impl ExportError {
    /// A permanent failure.
    pub fn new(message: impl Into<String>) -> Self {
        ExportError {
            message: message.into(),
            retryable: false,
            retry_after: None,
        }
    }
    /// A failure worth retrying, with the destination's hint of when, if it gave one.
    pub fn retryable(message: impl Into<String>, retry_after: Option<Duration>) -> Self {
        ExportError {
            message: message.into(),
            retryable: true,
            retry_after,
        }
    }
}

/// The type-erased exporter factory. Implement [`ExporterComponent`] instead.
pub trait ExporterFactory: FactoryInfo {
    fn build(
        &self,
        config: &ComponentConfig,
        ctx: &BuildContext,
    ) -> Result<Box<dyn Exporter>, Diagnostics>;
}

/// The type-erased extension factory. Implement [`ExtensionComponent`] instead.
pub trait ExtensionFactory: FactoryInfo {
    fn build(
        &self,
        config: &ComponentConfig,
        ctx: &BuildContext,
    ) -> Result<Arc<dyn std::any::Any + Send + Sync>, Diagnostics>;
}
