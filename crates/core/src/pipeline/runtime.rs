//! Runs a built [`Graph`]: extensions start first, then exporters, and receivers last; at shutdown receivers
//! stop first and everything they produced drains through the pipelines into the exporters.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower::{Service, ServiceExt};
use tracing::{debug, error, info, warn};

use super::exporter_helper::drain_queue;
use super::graph::Graph;
use crate::component::{ComponentKind, ReceiverContext};
use crate::readiness::ReadyHandle;
use crate::telemetry::Telemetry;

/// A running graph. Dropping it without [`RunningGraph::shutdown`] aborts everything.
pub struct RunningGraph {
    stop_receivers: CancellationToken,
    stop_background: CancellationToken,
    stop_extensions: CancellationToken,
    receivers: Vec<(String, JoinHandle<()>)>,
    pipelines: Vec<JoinHandle<()>>,
    exporters: Vec<(String, JoinHandle<()>)>,
    background: Vec<JoinHandle<()>>,
    queues: Vec<std::sync::Arc<super::queue::ExporterQueue>>,
    failures: mpsc::UnboundedReceiver<anyhow::Error>,
    /// Every component's say in `/readyz`, forgotten when this graph stops.
    readiness: Vec<ReadyHandle>,
    telemetry: Telemetry,
}

/// Starts the graph. An exporter that cannot start (a port in use) fails the whole start,
/// and whatever was already started is shut down again.
pub async fn start(graph: Graph) -> anyhow::Result<RunningGraph> {
    let (fail_tx, failures) = mpsc::unbounded_channel();
    let mut running = RunningGraph {
        stop_receivers: CancellationToken::new(),
        stop_background: CancellationToken::new(),
        stop_extensions: CancellationToken::new(),
        receivers: Vec::new(),
        pipelines: Vec::new(),
        exporters: Vec::new(),
        background: Vec::new(),
        queues: Vec::new(),
        failures,
        readiness: Vec::new(),
        telemetry: graph.telemetry.clone(),
    };

    // Extensions first: the components that use them may need them from their first batch.
    for (owner, task) in graph.extension_background {
        let token = running.stop_extensions.child_token();
        debug!(extension = %owner, "starting extension task");
        running.background.push(tokio::spawn(task(token)));
    }

    let mut started: Vec<super::graph::BuiltExporter> = Vec::new();
    for mut e in graph.exporters {
        if let Err(err) = e.workers[0].exporter.start().await {
            let id = e.id.to_string();
            for mut prev in started {
                let _ = prev.workers[0].exporter.shutdown().await;
            }
            running.stop_extensions.cancel();
            return Err(err.context(format!("exporter {id} failed to start")));
        }
        started.push(e);
    }
    for e in started {
        // A started exporter serves: its ports are bound, its connections made on demand.
        let ready = graph.telemetry.ready_handle(ComponentKind::Exporter, &e.id);
        ready.ready("started");
        running.readiness.push(ready);
        running.queues.push(e.queue.clone());
        let name = e.id.to_string();
        let queue = e.queue;
        let workers = e.workers;
        running.exporters.push((
            name.clone(),
            tokio::spawn(async move {
                let drains = workers
                    .into_iter()
                    .map(|w| drain_queue(name.clone(), w, queue.clone()));
                let mut done = futures::future::join_all(drains).await;
                // Only the original is started and shut down; the others are its forks.
                if let Err(e) = done[0].exporter.shutdown().await {
                    warn!(exporter = %name, error = %e, "exporter shutdown failed");
                }
                debug!(exporter = %name, "exporter stopped");
            }),
        ));
    }

    for (owner, task) in graph.background {
        let token = running.stop_background.child_token();
        debug!(component = %owner, "starting background task");
        running.background.push(tokio::spawn(task(token)));
    }

    for p in graph.pipelines {
        let mut input = p.input;
        let mut service = p.service;
        let name = p.name.clone();
        running.pipelines.push(tokio::spawn(async move {
            while let Some(batch) = input.recv().await {
                let n = batch.item_count();
                let result = match service.ready().await {
                    Ok(svc) => svc.call(batch).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = result {
                    error!(pipeline = %name, items = n, error = %e, "pipeline stage failed; batch dropped");
                }
            }
            debug!(pipeline = %name, "pipeline drained");
        }));
    }

    for r in graph.receivers {
        let readiness = graph.telemetry.ready_handle(ComponentKind::Receiver, &r.id);
        if !r.receiver.reports_readiness() {
            readiness.ready("started");
        }
        running.readiness.push(readiness.clone());
        let ctx = ReceiverContext {
            id: r.id.clone(),
            output: r.output,
            shutdown: running.stop_receivers.child_token(),
            readiness,
        };
        let name = r.id.to_string();
        let fail_tx = fail_tx.clone();
        running.receivers.push((
            name.clone(),
            tokio::spawn(async move {
                if let Err(e) = r.receiver.run(ctx).await {
                    let _ = fail_tx.send(e.context(format!("receiver {name} failed")));
                }
            }),
        ));
    }
    info!(
        receivers = running.receivers.len(),
        pipelines = running.pipelines.len(),
        exporters = running.exporters.len(),
        "pipelines started"
    );
    Ok(running)
}

/// What a shutdown left behind.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Items still queued when the deadline passed (counted as dropped).
    pub abandoned_items: u64,
    pub timed_out: bool,
}

impl RunningGraph {
    /// Resolves when a receiver fails (it could not attach, its port was taken).
    pub async fn failure(&mut self) -> anyhow::Error {
        match self.failures.recv().await {
            Some(e) => e,
            None => std::future::pending().await,
        }
    }

    /// Stops receivers, drains pipelines and exporter queues, within `deadline` overall.
    pub async fn shutdown(mut self, deadline: Duration) -> ShutdownReport {
        self.forget_readiness();
        self.stop_receivers.cancel();
        let queues = std::mem::take(&mut self.queues);
        let drain = async {
            for (name, h) in self.receivers.drain(..) {
                if let Err(e) = h.await {
                    warn!(receiver = %name, error = %e, "receiver task ended abnormally");
                }
            }
            // Receivers dropped their outputs: the pipelines end once their channels are empty.
            for h in self.pipelines.drain(..) {
                let _ = h.await;
            }
            self.stop_background.cancel();
            for q in &queues {
                q.close();
            }
            for (_, h) in self.exporters.drain(..) {
                let _ = h.await;
            }
            // Extensions last: everything else may use them until it stops.
            self.stop_extensions.cancel();
            for h in self.background.drain(..) {
                let _ = h.await;
            }
        };
        let timed_out = tokio::time::timeout(deadline, drain).await.is_err();
        let mut report = ShutdownReport {
            timed_out,
            ..Default::default()
        };
        if timed_out {
            for q in &queues {
                report.abandoned_items += q.discard();
            }
            warn!(
                abandoned_items = report.abandoned_items,
                "shutdown deadline of {deadline:?} passed; abandoning what was left"
            );
        }
        report
    }
}

impl RunningGraph {
    fn forget_readiness(&mut self) {
        for handle in self.readiness.drain(..) {
            self.telemetry.readiness().forget(&handle);
        }
    }
}

impl Drop for RunningGraph {
    fn drop(&mut self) {
        self.forget_readiness();
        self.stop_receivers.cancel();
        self.stop_background.cancel();
        self.stop_extensions.cancel();
        for (_, h) in self.receivers.iter().chain(self.exporters.iter()) {
            h.abort();
        }
        for h in self.pipelines.iter().chain(self.background.iter()) {
            h.abort();
        }
    }
}
