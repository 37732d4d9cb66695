//! Shared by the `app_http`, `app_tls` and `app_protocols` tests: the app receiver in a real graph feeding
//! a collecting exporter, and helpers to start and stop peers.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tapline_core::config::{self, ComponentConfig, ConfigSource, Diagnostics, LoadOptions};
use tapline_core::data::*;
use tapline_core::pipeline::{self, RunningGraph};
use tapline_core::telemetry::Telemetry;
use tapline_core::{BuildContext, ExportError, Exporter, ExporterFactory, FactoryInfo, Registry};

/// One test at a time: they share the machine's two cores and the kernel's probes.
pub static SERIAL: Mutex<()> = Mutex::new(());

#[derive(Clone, Default)]
pub struct Sink(Arc<Mutex<Vec<Arc<Signal>>>>);

struct SinkFactory(Sink);
impl FactoryInfo for SinkFactory {
    fn type_name(&self) -> &'static str {
        "sink"
    }
    fn description(&self) -> &'static str {
        "test sink"
    }
    fn signals(&self) -> &'static [SignalKind] {
        &[SignalKind::Metrics, SignalKind::Traces]
    }
}
impl ExporterFactory for SinkFactory {
    fn build(
        &self,
        _: &ComponentConfig,
        _: &BuildContext,
    ) -> Result<Box<dyn Exporter>, Diagnostics> {
        Ok(Box::new(SinkExporter(self.0.clone())))
    }
}
struct SinkExporter(Sink);
#[async_trait]
impl Exporter for SinkExporter {
    async fn export(&mut self, batch: SharedSignal) -> Result<(), ExportError> {
        self.0 .0.lock().unwrap().push(batch);
        Ok(())
    }
}

/// Summed histogram points of one series group.
#[derive(Debug, Clone, Copy)]
pub struct Agg {
    pub count: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
}
impl Default for Agg {
    fn default() -> Self {
        Agg {
            count: 0,
            sum: 0.0,
            min: f64::MAX,
            max: 0.0,
        }
    }
}

impl Sink {
    pub fn spans(&self) -> Vec<(Arc<Resource>, Span)> {
        let mut out = Vec::new();
        for b in self.0.lock().unwrap().iter() {
            if let Signal::Traces(t) = &**b {
                for rs in &t.resource_spans {
                    for s in &rs.spans {
                        out.push((rs.resource.clone(), s.clone()));
                    }
                }
            }
        }
        out
    }

    /// Histogram points of `metric` whose `server.port` is `port` (any port when 0), summed
    /// per the values of `keys` (missing attributes as "", integers in decimal).
    pub fn counts(&self, metric: &str, port: u16, keys: &[&str]) -> HashMap<Vec<String>, Agg> {
        let mut out: HashMap<Vec<String>, Agg> = HashMap::new();
        for b in self.0.lock().unwrap().iter() {
            let Signal::Metrics(m) = &**b else { continue };
            for (_, metric_) in m.metrics() {
                if metric_.name != metric {
                    continue;
                }
                let MetricData::Histogram { points, .. } = &metric_.data else {
                    panic!("{metric} is not a histogram")
                };
                for p in points {
                    if port != 0
                        && p.attributes.get("server.port") != Some(&Value::Int(port as i64))
                    {
                        continue;
                    }
                    let key = keys
                        .iter()
                        .map(|k| {
                            p.attributes
                                .get(k)
                                .map(|v| v.to_text().into_owned())
                                .unwrap_or_default()
                        })
                        .collect();
                    let a = out.entry(key).or_default();
                    a.count += p.count;
                    a.sum += p.sum;
                    a.max = a.max.max(p.max.unwrap_or(0.0));
                    a.min = a.min.min(p.min.unwrap_or(f64::MAX));
                }
            }
        }
        out
    }

    /// Every attribute key seen on points of `metric`.
    pub fn attribute_keys(&self, metric: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for b in self.0.lock().unwrap().iter() {
            let Signal::Metrics(m) = &**b else { continue };
            for (_, metric_) in m.metrics() {
                if metric_.name != metric {
                    continue;
                }
                if let MetricData::Histogram { points, .. } = &metric_.data {
                    for p in points {
                        for (k, _) in p.attributes.iter() {
                            if !out.iter().any(|o| o == k.as_str()) {
                                out.push(k.to_string());
                            }
                        }
                    }
                }
            }
        }
        out.sort();
        out
    }
}

/// `k` as the key of [`Sink::counts`].
pub fn k(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

/// The receiver's mirror of the kernel's lost-event counter.
pub fn lost(t: &Telemetry) -> u64 {
    t.counter("tapline_ebpf_events_lost_total", "", &[("receiver", "app")])
        .get()
}

pub struct Tapline {
    rt: tokio::runtime::Runtime,
    running: Option<RunningGraph>,
    pub sink: Sink,
    pub telemetry: Telemetry,
}

impl Tapline {
    /// Starts `app` (with `extra` YAML lines under it) feeding the sink, then calls `poke`
    /// until `ready` says the capture demonstrably sees traffic.
    pub fn start(extra: &str, mut poke: impl FnMut(), ready: impl Fn(&Sink) -> bool) -> Tapline {
        let yaml = format!(
            "receivers:\n  app:\n    metrics_interval: 1s\n{extra}\nexporters:\n  sink: {{}}\nservice:\n  pipelines:\n    metrics: {{receivers: [app], exporters: [sink]}}\n    traces: {{receivers: [app], exporters: [sink]}}\n"
        );
        let loaded = config::load(&LoadOptions {
            sources: vec![ConfigSource::Embedded {
                name: "test".into(),
                text: yaml.clone(),
            }],
            ..Default::default()
        })
        .unwrap_or_else(|d| panic!("config {yaml}: {d:?}"));
        let sink = Sink::default();
        let mut reg = Registry::new();
        tapline_receivers::register(&mut reg);
        reg.register_exporter(SinkFactory(sink.clone()));
        let telemetry = Telemetry::new();
        let graph =
            pipeline::build(&loaded, &reg, &telemetry).unwrap_or_else(|d| panic!("build: {d:?}"));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let running = rt.block_on(pipeline::start(graph)).expect("start");
        let t = Tapline {
            rt,
            running: Some(running),
            sink,
            telemetry,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            poke();
            std::thread::sleep(Duration::from_millis(300));
            if ready(&t.sink) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the app receiver saw no warm-up traffic within 30 s"
            );
        }
        t
    }

    /// Waits for the kernel events to be read and the last interval flushed, then stops.
    /// Returns the sink without the warm-up data (everything before `clear_sink`).
    pub fn stop(mut self) -> (Sink, Telemetry) {
        std::thread::sleep(Duration::from_millis(1500));
        let running = self.running.take().unwrap();
        let report = self.rt.block_on(running.shutdown(Duration::from_secs(10)));
        assert!(!report.timed_out, "shutdown timed out: {report:?}");
        (self.sink.clone(), self.telemetry.clone())
    }

    /// Forgets what was exported so far (the warm-up), after the current interval is flushed.
    pub fn clear_sink(&self) {
        std::thread::sleep(Duration::from_millis(1300));
        self.sink.0.lock().unwrap().clear();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A program the test needs; fails naming the package when it is missing.
pub fn need(program: &str, package: &str) -> PathBuf {
    for dir in std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/sbin", "/usr/local/bin"])
    {
        let p = Path::new(dir).join(program);
        if p.is_file() {
            return p;
        }
    }
    panic!("`{program}` not found: install it with `{package}`");
}

/// A child process killed (SIGTERM, then SIGKILL) when dropped.
pub struct Proc(pub Child);
impl Drop for Proc {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe {
            libc::kill(self.0.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn wait_port(port: u16, within: Duration) {
    let deadline = Instant::now() + within;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nothing listens on port {port} after {within:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs a command to completion, panicking with its output on failure; returns stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A fresh temporary directory removed when dropped.
pub struct TempDir(pub PathBuf);
impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("tapline-app-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// True when a span with attribute `key` = `value` was exported.
pub fn has_span(sink: &Sink, key: &str, value: &str) -> bool {
    sink.spans()
        .iter()
        .any(|(_, s)| s.attributes.get(key).map(|v| v.to_text()).as_deref() == Some(value))
}
