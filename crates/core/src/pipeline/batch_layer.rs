//! The generic adapter that turns a synchronous "change this batch" function into a tower
//! layer, so most processor authors write only the function.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::{BoxFuture, FutureExt};
use tower::{Layer, Service};

use super::{BoxError, PipelineService, ProcessorLayer};
use crate::component::{ComponentId, ComponentKind};
use crate::data::Signal;
use crate::telemetry::{ComponentCounters, Telemetry};

/// A processor's work on one batch. It may change, add or remove anything in the batch;
/// a batch left empty is not passed on.
pub trait BatchFn: Send + Sync + 'static {
    fn apply(&self, batch: &mut Signal);
}

/// Lifts a [`BatchFn`] into a tower layer; counts items in and out.
pub struct BatchLayer<F> {
    f: Arc<F>,
    counters: ComponentCounters,
}

impl<F: BatchFn> BatchLayer<F> {
    pub fn new(f: F, id: &ComponentId, telemetry: &Telemetry) -> Self {
        BatchLayer {
            f: Arc::new(f),
            counters: telemetry.component(ComponentKind::Processor, id),
        }
    }
    /// The layer, boxed to the pipeline's stage type.
    pub fn boxed(f: F, id: &ComponentId, telemetry: &Telemetry) -> ProcessorLayer {
        ProcessorLayer::new(Self::new(f, id, telemetry))
    }
}

impl<F: BatchFn> Layer<PipelineService> for BatchLayer<F> {
    type Service = BatchService<F>;
    fn layer(&self, inner: PipelineService) -> Self::Service {
        BatchService {
            f: self.f.clone(),
            inner,
            counters: self.counters.clone(),
        }
    }
}

pub struct BatchService<F> {
    f: Arc<F>,
    inner: PipelineService,
    counters: ComponentCounters,
}

impl<F: BatchFn> Service<Signal> for BatchService<F> {
    type Response = ();
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<(), BoxError>>;

    // Back-pressure flows straight through: this stage is ready when the next one is.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut batch: Signal) -> Self::Future {
        self.counters.accepted.add(batch.item_count() as u64);
        self.f.apply(&mut batch);
        let out = batch.item_count() as u64;
        self.counters.sent.add(out);
        if out == 0 {
            return futures::future::ready(Ok(())).boxed();
        }
        self.inner.call(batch)
    }
}
