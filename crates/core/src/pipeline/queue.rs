//! The bounded queue in front of each exporter (part of the exporter helper), and the fan-out stage that fills the queues
//! of a pipeline's exporters.
//!
//! A full queue either drops its oldest batch (counted) or, with `when_full: block`, makes the
//! fan-out stage not ready, which stops the pipeline and, through its channel, the receivers.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use serde::Deserialize;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::PollSemaphore;
use tower::Service;

use super::BoxError;
use crate::data::{SharedSignal, Signal};
use crate::telemetry::{ComponentCounters, Gauge};

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    #[default]
    DropOldest,
    Block,
}

/// The `queue:` block every exporter accepts.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// Batches the queue holds.
    #[serde(default = "default_size")]
    pub size: usize,
    #[serde(default)]
    pub when_full: WhenFull,
    /// Batches exported at once. 1 (the default) keeps them in order; more needs an exporter
    /// that can send several at a time (`otlp`).
    #[serde(default = "one")]
    pub concurrency: usize,
}

fn default_size() -> usize {
    1000
}

fn one() -> usize {
    1
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            size: default_size(),
            when_full: WhenFull::default(),
            concurrency: one(),
        }
    }
}

pub struct ExporterQueue {
    items: Mutex<VecDeque<(SharedSignal, Option<OwnedSemaphorePermit>)>>,
    notify: Notify,
    config: QueueConfig,
    /// Free slots, used only in `Block` mode.
    slots: Arc<Semaphore>,
    closed: AtomicBool,
    counters: ComponentCounters,
    size_gauge: Gauge,
}

impl ExporterQueue {
    pub fn new(config: QueueConfig, counters: ComponentCounters, size_gauge: Gauge) -> Arc<Self> {
        let size = config.size.max(1);
        Arc::new(ExporterQueue {
            items: Mutex::new(VecDeque::with_capacity(size.min(1024))),
            notify: Notify::new(),
            config: QueueConfig { size, ..config },
            slots: Arc::new(Semaphore::new(size)),
            closed: AtomicBool::new(false),
            counters,
            size_gauge,
        })
    }

    fn push(&self, batch: SharedSignal, permit: Option<OwnedSemaphorePermit>) {
        let n = batch.item_count() as u64;
        self.counters.accepted.add(n);
        let mut items = self.items.lock().unwrap_or_else(|e| e.into_inner());
        if self.config.when_full == WhenFull::DropOldest {
            while items.len() >= self.config.size {
                if let Some((old, _)) = items.pop_front() {
                    self.counters.dropped.add(old.item_count() as u64);
                }
            }
        }
        items.push_back((batch, permit));
        self.size_gauge.set(items.len() as i64);
        drop(items);
        self.notify.notify_one();
    }

    /// The next batch, or `None` once the queue is closed and empty.
    pub async fn pop(&self) -> Option<SharedSignal> {
        loop {
            let notified = self.notify.notified();
            {
                let mut items = self.items.lock().unwrap_or_else(|e| e.into_inner());
                if let Some((batch, _permit)) = items.pop_front() {
                    self.size_gauge.set(items.len() as i64);
                    return Some(batch);
                }
                if self.closed.load(Ordering::SeqCst) {
                    return None;
                }
            }
            notified.await;
        }
    }

    /// No more batches will come; `pop` returns `None` once the rest is taken.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
        self.notify.notify_one();
    }

    /// Empties the queue, counting what was in it as dropped (shutdown deadline passed).
    pub fn discard(&self) -> u64 {
        let mut items = self.items.lock().unwrap_or_else(|e| e.into_inner());
        let n: u64 = items.drain(..).map(|(b, _)| b.item_count() as u64).sum();
        self.counters.dropped.add(n);
        self.size_gauge.set(0);
        n
    }

    pub fn len(&self) -> usize {
        self.items.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn counters(&self) -> &ComponentCounters {
        &self.counters
    }
}

/// The last stage of every pipeline: hands each exporter the same shared batch.
pub struct FanOut {
    queues: Vec<Arc<ExporterQueue>>,
    /// For blocking queues: the semaphore to wait on and the slot reserved by `poll_ready`.
    slots: Vec<Option<(PollSemaphore, Option<OwnedSemaphorePermit>)>>,
}

impl FanOut {
    pub fn new(queues: Vec<Arc<ExporterQueue>>) -> Self {
        let slots = queues
            .iter()
            .map(|q| {
                (q.config.when_full == WhenFull::Block)
                    .then(|| (PollSemaphore::new(q.slots.clone()), None))
            })
            .collect();
        FanOut { queues, slots }
    }
}

impl Service<Signal> for FanOut {
    type Response = ();
    type Error = BoxError;
    type Future = futures::future::Ready<Result<(), BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        for (sem, permit) in self.slots.iter_mut().flatten() {
            if permit.is_none() {
                match sem.poll_acquire(cx) {
                    Poll::Ready(Some(p)) => *permit = Some(p),
                    Poll::Ready(None) => return Poll::Ready(Err("exporter queue closed".into())),
                    Poll::Pending => return Poll::Pending,
                }
            }
        }
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, batch: Signal) -> Self::Future {
        let shared = Arc::new(batch);
        for (queue, slot) in self.queues.iter().zip(self.slots.iter_mut()) {
            let permit = slot.as_mut().and_then(|(_, p)| p.take());
            queue.push(shared.clone(), permit);
        }
        futures::future::ready(Ok(()))
    }
}
