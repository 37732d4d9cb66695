//! The three kinds of component and the factories that build them.
//!
//! Every component has the same shape: a factory (registered by type name) parses the typed
//! config and builds the component without starting anything, so `validate` can build a whole
//! graph safely; the runtime starts what was built.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::config::{ComponentConfig, Diagnostics};
use crate::data::{SharedSignal, SignalKind};
use crate::pipeline::{ProcessorLayer, ReceiverOutput};
use crate::telemetry::Telemetry;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ComponentKind {
    Receiver,
    Processor,
    Exporter,
}

impl ComponentKind {
    /// The top-level config section of this kind.
    pub fn section(self) -> &'static str {
        match self {
            ComponentKind::Receiver => "receivers",
            ComponentKind::Processor => "processors",
            ComponentKind::Exporter => "exporters",
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
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

/// A task that a component needs running while the graph runs (a cache watcher, a server),
/// started after exporters and before receivers, cancelled at shutdown.
pub type BackgroundTask = Box<dyn FnOnce(CancellationToken) -> BoxFuture<'static, ()> + Send>;

/// State shared by every instance of one component across pipelines (a Kubernetes cache is
/// built once, not once per pipeline).
#[derive(Clone, Default)]
pub struct SharedState {
    inner: Arc<Mutex<HashMap<String, Arc<dyn Any + Send + Sync>>>>,
}

impl SharedState {
    /// The value stored under `key`, created by `init` on first use.
    pub fn get_or_init<T: Any + Send + Sync>(&self, key: &str, init: impl FnOnce() -> T) -> Arc<T> {
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = map.get(key).and_then(|v| v.clone().downcast::<T>().ok()) {
            return v;
        }
        let v = Arc::new(init());
        map.insert(key.to_string(), v.clone());
        v
    }
}

/// What a factory gets besides its config.
pub struct BuildContext {
    pub id: ComponentId,
    pub telemetry: Telemetry,
    pub shared: SharedState,
    background: Arc<Mutex<Vec<(String, BackgroundTask)>>>,
}

impl BuildContext {
    pub fn new(id: ComponentId, telemetry: Telemetry, shared: SharedState) -> Self {
        BuildContext {
            id,
            telemetry,
            shared,
            background: Default::default(),
        }
    }
    /// Registers a task to run while the graph runs. Nothing runs during `validate`.
    pub fn spawn_on_start(&self, task: BackgroundTask) {
        self.background
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((self.id.to_string(), task));
    }
    pub(crate) fn take_background(&self) -> Vec<(String, BackgroundTask)> {
        std::mem::take(&mut *self.background.lock().unwrap_or_else(|e| e.into_inner()))
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
}

pub struct ReceiverContext {
    pub id: ComponentId,
    pub output: ReceiverOutput,
    pub shutdown: CancellationToken,
}

pub trait ReceiverFactory: FactoryInfo {
    fn build(
        &self,
        config: &ComponentConfig,
        ctx: &BuildContext,
    ) -> Result<Box<dyn Receiver>, Diagnostics>;
}

/// Processors are tower layers; see [`crate::pipeline::BatchLayer`] for the simple case.
pub trait ProcessorFactory: FactoryInfo {
    /// Called once per pipeline that lists the processor.
    fn build(
        &self,
        config: &ComponentConfig,
        signal: SignalKind,
        ctx: &BuildContext,
    ) -> Result<ProcessorLayer, Diagnostics>;
}

/// A destination. `export` is called with one batch at a time, in order; the runtime owns the
/// queue in front of it and counts what it drops.
#[async_trait]
pub trait Exporter: Send {
    /// Binds ports and connects; called before any receiver starts.
    async fn start(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
    async fn export(&mut self, batch: SharedSignal) -> Result<(), ExportError>;
    /// Flushes what it buffers; called once the queue is drained.
    async fn shutdown(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
}

/// A failed export: the batch's items are counted as dropped.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ExportError {
    pub message: String,
}

impl ExportError {
    pub fn new(message: impl Into<String>) -> Self {
        ExportError {
            message: message.into(),
        }
    }
}

pub trait ExporterFactory: FactoryInfo {
    fn build(
        &self,
        config: &ComponentConfig,
        ctx: &BuildContext,
    ) -> Result<Box<dyn Exporter>, Diagnostics>;
}
