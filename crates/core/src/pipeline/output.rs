//! How a receiver hands batches to the pipelines it feeds.

use tokio::sync::mpsc;

use crate::data::{Signal, SignalKind};
use crate::telemetry::ComponentCounters;

/// The input channel of one pipeline.
#[derive(Clone, Debug)]
pub(crate) struct PipelineInput {
    pub(crate) signal: SignalKind,
    pub(crate) tx: mpsc::Sender<Signal>,
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// A pipeline is full; the batch was not taken anywhere (for `try_send`).
    #[error("pipeline is full")]
    Full,
    /// No pipeline of this signal is fed by this receiver.
    #[error("no {0} pipeline uses this receiver")]
    NotConnected(SignalKind),
    /// The pipelines are shutting down.
    #[error("pipelines are closed")]
    Closed,
}

/// Cloneable; dropping every clone is what tells the pipelines this receiver is done.
#[derive(Clone, Debug)]
pub struct ReceiverOutput {
    pub(crate) inputs: Vec<PipelineInput>,
    pub(crate) counters: ComponentCounters,
}

impl ReceiverOutput {
    /// Whether any pipeline of `signal` is fed: receivers skip producing what no one takes.
    pub fn wants(&self, signal: SignalKind) -> bool {
        self.inputs.iter().any(|i| i.signal == signal)
    }

    /// Sends `batch` to every pipeline of its signal, waiting for room (back-pressure).
    pub async fn send(&self, batch: Signal) -> Result<(), SendError> {
        let kind = batch.kind();
        let n = batch.item_count() as u64;
        let mut permits = Vec::new();
        for input in self.inputs.iter().filter(|i| i.signal == kind) {
            permits.push(input.tx.reserve().await.map_err(|_| SendError::Closed)?);
        }
        self.deliver(permits, batch, kind)?;
        self.counters.accepted.add(n);
        Ok(())
    }

    /// Sends without waiting. When any pipeline is full nothing is sent, the items are counted
    /// as refused, and the caller tells its own sender to retry.
    pub fn try_send(&self, batch: Signal) -> Result<(), SendError> {
        let kind = batch.kind();
        let n = batch.item_count() as u64;
        let mut permits = Vec::new();
        for input in self.inputs.iter().filter(|i| i.signal == kind) {
            match input.tx.try_reserve() {
                Ok(p) => permits.push(p),
                Err(mpsc::error::TrySendError::Full(())) => {
                    self.counters.refused.add(n);
                    return Err(SendError::Full);
                }
                Err(mpsc::error::TrySendError::Closed(())) => return Err(SendError::Closed),
            }
        }
        self.deliver(permits, batch, kind)?;
        self.counters.accepted.add(n);
        Ok(())
    }

    fn deliver(
        &self,
        mut permits: Vec<mpsc::Permit<'_, Signal>>,
        batch: Signal,
        kind: SignalKind,
    ) -> Result<(), SendError> {
        let Some(last) = permits.pop() else {
            return Err(SendError::NotConnected(kind));
        };
        // Each pipeline changes its batch in place, so all but the last get a copy.
        for p in permits {
            p.send(batch.clone());
        }
        last.send(batch);
        Ok(())
    }
}
