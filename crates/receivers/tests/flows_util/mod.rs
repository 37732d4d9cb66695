//! Shared by tests/flows_*.rs: test networks ([`net`]) and an agent harness that runs a real
//! pipeline graph (config → build → start) with the `flows` receiver inside a network
//! namespace, and a `collect` exporter that keeps every batch.
#![allow(dead_code)]

#[path = "../../../ebpf/tests/support/netns.rs"]
pub mod net;

use std::collections::{BTreeMap, HashMap};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tapline_core::config::{self, ComponentConfig, ConfigSource, Diagnostics, LoadOptions};
use tapline_core::data::{MetricData, Number, SharedSignal, Signal, SignalKind};
use tapline_core::pipeline;
use tapline_core::telemetry::Telemetry;
use tapline_core::{BuildContext, ExportError, Exporter, ExporterFactory, FactoryInfo};

pub use net::*;

type Store = Arc<Mutex<HashMap<String, Vec<SharedSignal>>>>;

/// `collect`: keeps every batch, per exporter id.
#[derive(Clone, Default)]
struct Collect {
    store: Store,
}

impl FactoryInfo for Collect {
    fn type_name(&self) -> &'static str {
        "collect"
    }
    fn description(&self) -> &'static str {
        "test: keeps every batch"
    }
    fn signals(&self) -> &'static [SignalKind] {
        &[SignalKind::Metrics]
    }
}

impl ExporterFactory for Collect {
    fn build(
        &self,
        _: &ComponentConfig,
        ctx: &BuildContext,
    ) -> Result<Box<dyn Exporter>, Diagnostics> {
        Ok(Box::new(CollectExporter {
            id: ctx.id.to_string(),
            store: self.store.clone(),
        }))
    }
}

struct CollectExporter {
    id: String,
    store: Store,
}

#[async_trait]
impl Exporter for CollectExporter {
    async fn export(&mut self, batch: SharedSignal) -> Result<(), ExportError> {
        self.store
            .lock()
            .unwrap()
            .entry(self.id.clone())
            .or_default()
            .push(batch);
        Ok(())
    }
}

/// One exported data point, flattened.
#[derive(Clone, Debug)]
pub struct Point {
    pub exporter: String,
    pub metric: String,
    pub attrs: BTreeMap<String, String>,
    pub value: i64,
}

impl Point {
    pub fn attr(&self, k: &str) -> Option<&str> {
        self.attrs.get(k).map(String::as_str)
    }
}

/// Everything an agent run exported.
pub struct Collected {
    pub points: Vec<Point>,
    pub telemetry: Telemetry,
}

impl Collected {
    /// Sum of `metric` over the points of `exporter` matching every `(key, value)`.
    pub fn sum(&self, exporter: &str, metric: &str, filter: &[(&str, &str)]) -> i64 {
        self.select(exporter, metric, filter).map(|p| p.value).sum()
    }
    pub fn select<'a>(
        &'a self,
        exporter: &'a str,
        metric: &'a str,
        filter: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Point> + 'a {
        self.points.iter().filter(move |p| {
            p.exporter == exporter
                && p.metric == metric
                && filter.iter().all(|(k, v)| p.attr(k) == Some(*v))
        })
    }
    pub fn counter(&self, name: &str, receiver: &str) -> i64 {
        self.telemetry
            .value(name, &[("receiver", receiver)])
            .unwrap_or(0)
    }
}

pub const BYTES: &str = "tapline.network.flow.bytes";
pub const PACKETS: &str = "tapline.network.flow.packets";

/// A pipeline graph running on its own thread (and tokio runtime) inside a network namespace,
/// so the receiver attaches to that namespace's interfaces.
pub struct Agent {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), String>>>,
    telemetry: Telemetry,
    store: Store,
}

impl Agent {
    pub fn start(ns: &str, yaml: &str) -> Agent {
        let collect = Collect::default();
        let store = collect.store.clone();
        let telemetry = Telemetry::new();
        let t = telemetry.clone();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let ns = ns.to_owned();
        let yaml = yaml.to_owned();
        let thread = std::thread::spawn(move || {
            in_netns(&ns, move || {
                // Built inside the namespace: every worker thread inherits it.
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let mut registry = tapline_core::Registry::new();
                    tapline_receivers::register(&mut registry);
                    registry.register_exporter(collect);
                    let loaded = config::load(&LoadOptions {
                        sources: vec![ConfigSource::Embedded {
                            name: "test".into(),
                            text: yaml,
                        }],
                        ..Default::default()
                    })
                    .map_err(|d| format!("{d:?}"))?;
                    let graph = pipeline::build(&loaded, &registry, &t)
                        .map_err(|d| format!("build: {d:?}"))?;
                    let mut running = pipeline::start(graph).await.map_err(|e| format!("{e:#}"))?;
                    let _ = ready_tx.send(Ok(()));
                    // Wait for stop, failing early if a receiver fails.
                    let failure = loop {
                        tokio::select! {
                            e = running.failure() => break Some(format!("{e:#}")),
                            _ = tokio::time::sleep(Duration::from_millis(20)) => {
                                match stop_rx.try_recv() {
                                    Err(mpsc::TryRecvError::Empty) => {}
                                    _ => break None,
                                }
                            }
                        }
                    };
                    let report = running.shutdown(Duration::from_secs(10)).await;
                    match failure {
                        Some(e) => Err(e),
                        None if report.timed_out => Err("shutdown timed out".into()),
                        None => Ok(()),
                    }
                })
            })
        });
        match ready_rx.recv_timeout(Duration::from_secs(20)) {
            Ok(Ok(())) => {}
            other => {
                let res = thread.join();
                panic!("agent did not start: {other:?} / {res:?}");
            }
        }
        Agent {
            stop: Some(stop_tx),
            thread: Some(thread),
            telemetry,
            store,
        }
    }

    pub fn gauge(&self, name: &str, receiver: &str) -> i64 {
        self.telemetry
            .value(name, &[("receiver", receiver)])
            .unwrap_or(-1)
    }

    /// Waits (bounded, 10 s) until `receiver` is attached to `n` interfaces.
    pub fn wait_attached(&self, receiver: &str, n: i64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.gauge("tapline_flows_attached_interfaces", receiver);
            if got == n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{receiver}: attached to {got} interfaces, expected {n}"
            );
            assert!(
                !self.thread.as_ref().unwrap().is_finished(),
                "the agent stopped (a receiver failed?)"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn is_running(&self) -> bool {
        !self.thread.as_ref().unwrap().is_finished()
    }

    /// Stops the graph (the receiver exports what the kernel still holds) and returns every
    /// point exported.
    pub fn stop(mut self) -> Collected {
        let _ = self.stop.take().unwrap().send(());
        let res = self
            .thread
            .take()
            .unwrap()
            .join()
            .expect("agent thread panicked");
        if let Err(e) = res {
            panic!("agent failed: {e}");
        }
        let mut points = Vec::new();
        for (exporter, batches) in self.store.lock().unwrap().iter() {
            for b in batches {
                let Signal::Metrics(m) = &**b else { continue };
                for (_, metric) in m.metrics() {
                    let MetricData::Sum { points: ps, .. } = &metric.data else {
                        continue;
                    };
                    for p in ps {
                        let Number::Int(v) = p.value else {
                            panic!("flow metrics are integers")
                        };
                        points.push(Point {
                            exporter: exporter.clone(),
                            metric: metric.name.to_string(),
                            attrs: p
                                .attributes
                                .iter()
                                .map(|(k, v)| (k.to_string(), v.to_text().into_owned()))
                                .collect(),
                            value: v,
                        });
                    }
                }
            }
        }
        Collected {
            points,
            telemetry: self.telemetry.clone(),
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // A failed test still stops the graph (detaching everything) before the netns go.
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub const ALL_ATTRIBUTES: &str = "[src.address, dst.address, src.port, dst.port, transport, network.type, direction, client.port, server.port, iface, iface.direction, tapline.ip]";

/// A config with one `flows` receiver (extra settings in `flows`, YAML flow-mapping entries)
/// feeding the `collect` exporter.
pub fn single(flows: &str) -> String {
    format!(
        "receivers: {{ flows: {{ {flows} }} }}
exporters: {{ collect: {{}} }}
service:
  pipelines: {{ metrics: {{ receivers: [flows], exporters: [collect] }} }}
"
    )
}

pub fn within_1pct(a: u64, b: u64) -> bool {
    a.abs_diff(b) * 100 <= b
}
