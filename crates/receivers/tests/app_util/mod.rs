//! Shared by the `app_http`, `app_tls` and `app_protocols` tests: the app receiver in a real graph feeding
//! a collecting exporter, and helpers to start and stop peers.

#![allow(dead_code)]

use std::collections::HashMap;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tapline_core::data::*;
use tapline_core::telemetry::Telemetry;
use tapline_core::Registry;
use tapline_test_support::{eventually, Agent, Collect};

/// One test at a time: they share the machine's two cores and the kernel's probes.
pub static SERIAL: Mutex<()> = Mutex::new(());

/// What the graph exported.
pub type Sink = Collect;

/// Runs a peer's command-line tool to completion (within two minutes); returns its stdout.
pub fn run(cmd: &mut Command) -> String {
    tapline_test_support::process::run(cmd, Duration::from_secs(120))
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

/// The app receiver's histograms, read from what the graph exported.
pub trait Histograms {
    fn counts(&self, metric: &str, port: u16, keys: &[&str]) -> HashMap<Vec<String>, Agg>;
    fn attribute_keys(&self, metric: &str) -> Vec<String>;
}

impl Histograms for Collect {
    /// Histogram points of `metric` whose `server.port` is `port` (any port when 0), summed
    /// per the values of `keys` (missing attributes as "", integers in decimal).
    fn counts(&self, metric: &str, port: u16, keys: &[&str]) -> HashMap<Vec<String>, Agg> {
        let mut out: HashMap<Vec<String>, Agg> = HashMap::new();
        for b in self.batches().iter() {
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
    fn attribute_keys(&self, metric: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for b in self.batches().iter() {
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

/// The app receiver in a running graph, feeding a [`Collect`] exporter.
pub struct Tapline {
    agent: Agent,
    pub sink: Sink,
}

impl Tapline {
    /// Starts `app` (with `extra` YAML lines under it) feeding the sink, then calls `poke`
    /// until `ready` says the capture demonstrably sees traffic.
    pub fn start(extra: &str, mut poke: impl FnMut(), ready: impl Fn(&Sink) -> bool) -> Tapline {
        let yaml = format!(
            "receivers:\n  app:\n    metrics_interval: 1s\n{extra}\nexporters:\n  collect: {{}}\nservice:\n  pipelines:\n    metrics: {{receivers: [app], exporters: [collect]}}\n    traces: {{receivers: [app], exporters: [collect]}}\n"
        );
        let sink = Collect::new();
        let mut registry = Registry::new();
        tapline_receivers::register(&mut registry);
        registry.register_exporter(sink.clone());
        let agent = Agent::start(&yaml, registry);
        // Poked at most every 300 ms: enough for the first request to be exported, without
        // flooding the capture with warm-up traffic.
        let mut last_poke: Option<Instant> = None;
        eventually(
            "the app receiver to export warm-up traffic",
            Duration::from_secs(30),
            || {
                if last_poke.is_none_or(|t| t.elapsed() >= Duration::from_millis(300)) {
                    poke();
                    last_poke = Some(Instant::now());
                }
                ready(&sink)
            },
        );
        Tapline { agent, sink }
    }

    /// Waits for the kernel events to be read and the last interval flushed, then stops.
    /// Returns the sink without the warm-up data (everything before `clear_sink`).
    pub fn stop(self) -> (Sink, Telemetry) {
        // The receiver completes a request whose response ends by silence, not by length or
        // close, only at its next 1 s metrics interval, and exports nothing at an interval
        // without data: no event tells the test that the interval after its traffic has
        // passed, and the kernel in the loop rules out a clock the test controls.
        std::thread::sleep(Duration::from_millis(1500));
        let telemetry = self.agent.stop();
        (self.sink, telemetry)
    }

    /// Forgets what was exported so far (the warm-up), after the current interval is flushed.
    pub fn clear_sink(&self) {
        // One metrics interval (1 s): see `stop` for why it cannot be polled for.
        std::thread::sleep(Duration::from_millis(1300));
        self.sink.clear();
    }

    pub fn telemetry(&self) -> &Telemetry {
        self.agent.telemetry()
    }
}

/// True when a span with attribute `key` = `value` was exported.
pub fn has_span(sink: &Sink, key: &str, value: &str) -> bool {
    sink.spans()
        .iter()
        .any(|(_, _, s)| s.attributes.get(key).map(|v| v.to_text()).as_deref() == Some(value))
}

/// The receiver's count of ring-buffer records it took (`tapline_ebpf_records_total`).
pub fn records(t: &Telemetry) -> u64 {
    t.counter("tapline_ebpf_records_total", "", &[("receiver", "app")])
        .get()
}

/// What the kernel says the app capture of this process emitted: `APP_STAT_EMITTED` of the
/// `app_stats` map (per CPU, summed) that this test process holds open, read with bpftool. A
/// witness outside the receiver: other captures on the machine have their own maps.
pub fn kernel_emitted() -> u64 {
    let bpftool = tapline_test_support::need("bpftool", "bpftool");
    let mut found = Vec::new();
    for fd in std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .flatten()
    {
        let is_map = std::fs::read_link(fd.path())
            .map(|l| l.to_string_lossy().contains("bpf-map"))
            .unwrap_or(false);
        if !is_map {
            continue;
        }
        let info = format!("/proc/self/fdinfo/{}", fd.file_name().to_string_lossy());
        let Ok(info) = std::fs::read_to_string(info) else {
            continue;
        };
        let Some(id) = info
            .lines()
            .find_map(|l| l.strip_prefix("map_id:"))
            .map(|v| v.trim().to_string())
        else {
            continue;
        };
        let show = run(Command::new(&bpftool).args(["-j", "map", "show", "id", &id]));
        let show: serde_json::Value = serde_json::from_str(&show).expect("bpftool map show");
        if show["name"] == "app_stats" && !found.contains(&id) {
            found.push(id);
        }
    }
    assert_eq!(
        found.len(),
        1,
        "app_stats maps held by this process: {found:?}"
    );
    // key APP_STAT_EMITTED = 1 (app.h), a u32
    let out = run(Command::new(&bpftool).args([
        "-j", "map", "lookup", "id", &found[0], "key", "1", "0", "0", "0",
    ]));
    let v: serde_json::Value = serde_json::from_str(&out).expect("bpftool map lookup");
    let per_cpu = v["formatted"]["values"]
        .as_array()
        .or_else(|| v["values"].as_array())
        .unwrap_or_else(|| panic!("no per-CPU values in {out}"));
    per_cpu
        .iter()
        .map(|c| match &c["value"] {
            serde_json::Value::Number(n) => n.as_u64().expect("u64"),
            // unformatted: the value's bytes, little-endian hex strings
            serde_json::Value::Array(bytes) => bytes.iter().rev().fold(0u64, |acc, b| {
                let b = b.as_str().expect("hex byte").trim_start_matches("0x");
                (acc << 8) | u64::from_str_radix(b, 16).expect("hex byte")
            }),
            other => panic!("unexpected per-CPU value {other} in {out}"),
        })
        .sum()
}
