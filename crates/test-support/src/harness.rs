//! The one way tests run a pipeline graph in-process: YAML in, the real config loader, graph
//! builder and runtime, with whatever components the test registers (real ones and the mocks
//! of [`crate::mock`]).
//!
//! - [`start_graph`] inside an async test, on the test's runtime;
//! - [`Agent`] from a plain test: the graph gets its own thread and runtime, optionally inside
//!   a network namespace (so receivers attach to that namespace's interfaces), and stops
//!   however the test ends.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use tapline_core::config::{self, ConfigSource, LoadOptions, LoadedConfig};
use tapline_core::pipeline::{self, RunningGraph};
use tapline_core::telemetry::Telemetry;
use tapline_core::{BuildContext, ComponentId, Registry, SharedState};
use tokio::sync::oneshot;

/// How long a graph may take to drain at the end of a test.
const SHUTDOWN: Duration = Duration::from_secs(10);

/// Loads `yaml` as the whole configuration, as `tapline run --config` would.
pub fn load_config(yaml: &str) -> anyhow::Result<LoadedConfig> {
    config::load(&LoadOptions {
        sources: vec![ConfigSource::Embedded {
            name: "test.yaml".into(),
            text: yaml.into(),
        }],
        ..Default::default()
    })
    .map_err(|d| anyhow::anyhow!("config:\n{yaml}\n{d:?}"))
}

/// Loads, builds and starts a graph from `yaml` with the components of `registry`.
pub async fn start_graph(
    yaml: &str,
    registry: &Registry,
    telemetry: &Telemetry,
) -> anyhow::Result<RunningGraph> {
    let loaded = load_config(yaml)?;
    let graph = pipeline::build(&loaded, registry, telemetry)
        .map_err(|d| anyhow::anyhow!("build: {d:?}"))?;
    pipeline::start(graph).await
}

/// The context a factory gets when a test builds one component by hand (no graph), with its
/// own telemetry and shared state.
pub fn build_context(id: &str) -> BuildContext {
    build_context_with(id, &Telemetry::new(), &SharedState::default())
}

/// [`build_context`] with the telemetry and shared state the test inspects or shares between
/// several builds.
pub fn build_context_with(id: &str, telemetry: &Telemetry, shared: &SharedState) -> BuildContext {
    let id = ComponentId::parse(id).unwrap_or_else(|e| panic!("component id {id:?}: {e}"));
    BuildContext::new(id, telemetry.clone(), shared.clone())
}

/// A graph running on its own thread and tokio runtime (two workers) until [`Agent::stop`] or
/// drop.
pub struct Agent {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<(), String>>>,
    telemetry: Telemetry,
}

impl Agent {
    /// Starts the graph of `yaml`; panics with the reason when it cannot start.
    pub fn start(yaml: &str, registry: Registry) -> Agent {
        Self::spawn(None, yaml, registry)
    }

    /// [`Agent::start`] with the graph's threads inside network namespace `ns`.
    pub fn start_in_netns(ns: &str, yaml: &str, registry: Registry) -> Agent {
        Self::spawn(Some(ns.to_owned()), yaml, registry)
    }

    fn spawn(ns: Option<String>, yaml: &str, registry: Registry) -> Agent {
        let telemetry = Telemetry::new();
        let t = telemetry.clone();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let yaml = yaml.to_owned();
        let thread = std::thread::spawn(move || {
            let run = move || run_until_stopped(&yaml, &registry, &t, ready_tx, stop_rx);
            match ns {
                Some(ns) => crate::netns::in_netns(&ns, run),
                None => run(),
            }
        });
        match ready_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(())) => {}
            other => {
                let end = thread.join();
                panic!("the graph did not start: {other:?} / {end:?}");
            }
        }
        Agent {
            stop: Some(stop_tx),
            thread: Some(thread),
            telemetry,
        }
    }

    /// The graph's self-telemetry.
    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    /// False once the graph has ended on its own (a receiver failed).
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Stops the graph, letting everything the receivers produced drain into the exporters;
    /// panics when a receiver failed or the drain timed out. Returns the telemetry.
    pub fn stop(mut self) -> Telemetry {
        if let Err(e) = self.join() {
            panic!("the graph failed: {e}");
        }
        self.telemetry.clone()
    }

    fn join(&mut self) -> Result<(), String> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| "the graph's thread panicked".to_string())?,
            None => Ok(()),
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // A failed test still stops the graph (detaching what it attached) before its
        // namespaces and peers go.
        let _ = self.join();
    }
}

fn run_until_stopped(
    yaml: &str,
    registry: &Registry,
    telemetry: &Telemetry,
    ready: mpsc::Sender<Result<(), String>>,
    stop: oneshot::Receiver<()>,
) -> Result<(), String> {
    // Built on this thread: inside the namespace, when there is one, and so are its workers.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    rt.block_on(async move {
        let mut running = match start_graph(yaml, registry, telemetry).await {
            Ok(r) => r,
            Err(e) => {
                let _ = ready.send(Err(format!("{e:#}")));
                return Err(format!("{e:#}"));
            }
        };
        let _ = ready.send(Ok(()));
        // Runs until the test stops it (or drops the agent), failing early if a receiver fails.
        let failure = tokio::select! {
            e = running.failure() => Some(format!("{e:#}")),
            _ = stop => None,
        };
        let report = running.shutdown(SHUTDOWN).await;
        match failure {
            Some(e) => Err(e),
            None if report.timed_out => Err(format!("shutdown timed out: {report:?}")),
            None => Ok(()),
        }
    })
}
