//! Mock components for graphs under test: [`Collect`], an exporter that keeps every batch it
//! gets, and [`Feed`], a receiver that sends exactly what the test hands it.

use std::future::Future;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::future::BoxFuture;
use futures::FutureExt;
use tapline_core::config::{ComponentConfig, Diagnostics};
use tapline_core::data::{Metric, Resource, SharedSignal, Signal, SignalKind, Span, Str};
use tapline_core::{
    BuildContext, ExportError, Exporter, ExporterFactory, FactoryInfo, Receiver, ReceiverContext,
    ReceiverFactory,
};
use tokio::sync::mpsc;

type BeforeExport = Arc<dyn Fn(&SharedSignal) -> BoxFuture<'static, ()> + Send + Sync>;

/// `collect`: an exporter that keeps every batch, with the id of the exporter that got it.
/// Clones share what was collected, so the test keeps one and registers another.
#[derive(Clone, Default)]
pub struct Collect {
    batches: Arc<Mutex<Vec<(String, SharedSignal)>>>,
    before_export: Option<BeforeExport>,
}

impl Collect {
    pub fn new() -> Collect {
        Collect::default()
    }

    /// Runs `hook` on each batch before it is kept, and waits for the future it returns: to
    /// hold exports back until the test lets them go, or to make a slow exporter.
    pub fn before_export<F, Fut>(mut self, hook: F) -> Collect
    where
        F: Fn(&SharedSignal) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.before_export = Some(Arc::new(move |batch| hook(batch).boxed()));
        self
    }

    /// Every batch so far, in the order they were exported.
    pub fn batches(&self) -> Vec<SharedSignal> {
        self.lock().iter().map(|(_, b)| b.clone()).collect()
    }

    /// Every batch so far with the id of the exporter (`collect/a`) that got it.
    pub fn batches_by_exporter(&self) -> Vec<(String, SharedSignal)> {
        self.lock().clone()
    }

    /// Every span so far, with its resource and scope.
    pub fn spans(&self) -> Vec<(Arc<Resource>, Str, Span)> {
        let mut out = Vec::new();
        for (_, b) in self.lock().iter() {
            if let Signal::Traces(t) = &**b {
                for rs in &t.resource_spans {
                    for s in &rs.spans {
                        out.push((rs.resource.clone(), rs.scope.clone(), s.clone()));
                    }
                }
            }
        }
        out
    }

    /// Every metric so far, with its resource and scope.
    pub fn metrics(&self) -> Vec<(Arc<Resource>, Str, Metric)> {
        let mut out = Vec::new();
        for (_, b) in self.lock().iter() {
            if let Signal::Metrics(m) = &**b {
                for rm in &m.resource_metrics {
                    for x in &rm.metrics {
                        out.push((rm.resource.clone(), rm.scope.clone(), x.clone()));
                    }
                }
            }
        }
        out
    }

    /// Data points plus spans, over every batch so far.
    pub fn item_count(&self) -> usize {
        self.lock().iter().map(|(_, b)| b.item_count()).sum()
    }

    /// Forgets every batch so far.
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(String, SharedSignal)>> {
        self.batches.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl FactoryInfo for Collect {
    fn type_name(&self) -> &'static str {
        "collect"
    }
    fn description(&self) -> &'static str {
        "test exporter: keeps every batch"
    }
    fn signals(&self) -> &'static [SignalKind] {
        &SignalKind::ALL
    }
    fn hidden(&self) -> bool {
        true
    }
}

impl ExporterFactory for Collect {
    fn build(
        &self,
        _config: &ComponentConfig,
        ctx: &BuildContext,
    ) -> Result<Box<dyn Exporter>, Diagnostics> {
        Ok(Box::new(CollectExporter {
            id: ctx.id.to_string(),
            collect: self.clone(),
        }))
    }
}

struct CollectExporter {
    id: String,
    collect: Collect,
}

#[async_trait]
impl Exporter for CollectExporter {
    async fn export(&mut self, batch: SharedSignal) -> Result<(), ExportError> {
        if let Some(hook) = &self.collect.before_export {
            hook(&batch).await;
        }
        self.collect.lock().push((self.id.clone(), batch));
        Ok(())
    }
}

/// `feed`: a receiver that forwards what the test sends on its channel, waiting for room in
/// the pipeline.
pub struct Feed {
    rx: Mutex<Option<mpsc::Receiver<Signal>>>,
}

impl Feed {
    /// The factory to register, and the sender the test feeds batches into.
    pub fn new() -> (Feed, mpsc::Sender<Signal>) {
        let (tx, rx) = mpsc::channel(16);
        (
            Feed {
                rx: Mutex::new(Some(rx)),
            },
            tx,
        )
    }
}

impl FactoryInfo for Feed {
    fn type_name(&self) -> &'static str {
        "feed"
    }
    fn description(&self) -> &'static str {
        "test receiver: sends what the test hands it"
    }
    fn signals(&self) -> &'static [SignalKind] {
        &SignalKind::ALL
    }
    fn hidden(&self) -> bool {
        true
    }
}

impl ReceiverFactory for Feed {
    fn build(
        &self,
        _config: &ComponentConfig,
        _ctx: &BuildContext,
    ) -> Result<Box<dyn Receiver>, Diagnostics> {
        // A second build (as `validate` does) gets no channel; tests build once.
        Ok(Box::new(FeedReceiver(
            self.rx.lock().unwrap_or_else(|e| e.into_inner()).take(),
        )))
    }
}

struct FeedReceiver(Option<mpsc::Receiver<Signal>>);

#[async_trait]
impl Receiver for FeedReceiver {
    async fn run(self: Box<Self>, ctx: ReceiverContext) -> anyhow::Result<()> {
        let Some(mut rx) = self.0 else {
            ctx.shutdown.cancelled().await;
            return Ok(());
        };
        loop {
            tokio::select! {
                _ = ctx.shutdown.cancelled() => return Ok(()),
                batch = rx.recv() => match batch {
                    Some(b) => { let _ = ctx.output.send(b).await; }
                    None => { ctx.shutdown.cancelled().await; return Ok(()); }
                }
            }
        }
    }
}
