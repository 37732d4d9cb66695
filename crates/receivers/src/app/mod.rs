//! `app`: RED metrics and spans of unmodified programs (through [`tapline_protocols`]: HTTP/1.x,
//! HTTP/2 + gRPC, Redis, PostgreSQL, MySQL, Kafka; TLS via libssl uprobes), from the kernel's
//! view of their TCP reads and writes (`tapline_ebpf::app`).
//!
//! The pieces, each pure and testable without a kernel (the protocol parsers themselves live in
//! `tapline-protocols`):
//! - [`tracker`]: the table of connections, each with its protocol session or HTTP/1.x parser;
//! - [`routes`]: `http.route` from patterns or the unmatched policy, bounded per service;
//! - [`discovery`]: which processes to instrument and their resource attributes;
//! - [`report`]: aggregation into delta histograms and spans.
//!
//! ```yaml
//! receivers:
//!   app:
//!     capture_bytes: 256
//!     discovery:
//!       instrument: [{open_ports: "80,8000-8999"}, {exe_path: "/usr/sbin/nginx*"}]
//!       exclude: [{exe_path: "*/sshd"}]
//!     routes: { patterns: ["/users/{id}"], ignored_patterns: ["/health"], unmatched: heuristic }
//!     metrics_interval: 5s
//! ```

pub mod discovery;
pub mod linker;
pub mod report;
pub mod routes;
pub mod tracker;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use serde::Deserialize;
use tapline_core::config::types::{duration, ByteSize};
use tapline_core::data::buckets::HistogramBuckets;
use tapline_core::data::{Signal, SignalKind};
use tapline_core::telemetry::Counter;
use tapline_core::{
    BuildContext, Component, ConfigErrors, Receiver, ReceiverComponent, ReceiverContext,
};
use tapline_ebpf::app::{AppCapture, AppCaptureConfig, AppEvent, PidAction, PidFilterMode};
use tapline_protocols::ParserConfig;
use tracing::{debug, info, warn};

use discovery::{Discovery, Selector};
use report::{ReportOptions, Reporter};
use routes::{Pattern, Router, RoutesConfig, Unmatched};
use tracker::Tracker;

/// An unframed response (its end could not be computed) ends after this much quiet.
const UNFRAMED_QUIET: Duration = Duration::from_secs(1);
/// Connections without any event for this long are forgotten.
const CONN_IDLE: Duration = Duration::from_secs(300);
/// Spans are sent at least this often, or sooner when this many are waiting.
const SPAN_FLUSH: Duration = Duration::from_millis(200);
const SPAN_BATCH: usize = 2048;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    /// A `histogram_buckets` extension to record histograms into; without it, the bucket
    /// rules of the `prometheus` exporter, if any, else the defaults.
    #[serde(default)]
    pub extension: Option<String>,
    /// Payload bytes captured per read/write (at most 4096).
    #[serde(default = "default_capture_bytes")]
    pub capture_bytes: u32,
    /// Kernel ring buffer size: a power of two.
    #[serde(default = "default_ring")]
    pub ring_buffer_size: ByteSize,
    #[serde(default)]
    pub discovery: DiscoveryConfig,
    #[serde(default)]
    pub routes: RoutesSection,
    /// Period of the delta histograms.
    #[serde(default = "default_interval", with = "duration")]
    pub metrics_interval: Duration,
    /// Opt-in, high-cardinality metric attributes.
    #[serde(default)]
    pub attributes: AttributesSection,
    /// Opt-in span content (default: no headers, no query strings; bodies are never sent).
    #[serde(default)]
    pub capture: CaptureSection,
    /// Connections tracked at once; further ones are not tracked.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Capture TLS plaintext through uprobes on libssl (`SSL_read`/`SSL_write`), found in
    /// the processes' maps at every discovery poll.
    #[serde(default = "default_true")]
    pub tls: bool,
    /// Frame HTTP/1.x in the kernel: one record per request and response rather than one per
    /// read and write (bodies counted, never copied). Connections the kernel cannot frame are
    /// captured per call, as all are with `false`.
    #[serde(default = "default_true")]
    pub kernel_http_framing: bool,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoveryConfig {
    /// Processes to instrument (any selector matches); empty = every process but tapline.
    #[serde(default)]
    pub instrument: Vec<Selector>,
    /// Processes never instrumented.
    #[serde(default)]
    pub exclude: Vec<Selector>,
    /// How often `/proc` is rescanned for new processes.
    #[serde(default = "default_poll", with = "duration")]
    pub poll_interval: Duration,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        DiscoveryConfig {
            instrument: Vec::new(),
            exclude: Vec::new(),
            poll_interval: default_poll(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutesSection {
    #[serde(default)]
    pub patterns: Vec<String>,
    #[serde(default)]
    pub ignored_patterns: Vec<String>,
    #[serde(default)]
    pub unmatched: Unmatched,
    /// Distinct unmatched routes per service; further ones are reported as `/**`.
    #[serde(default = "default_max_routes")]
    pub max_routes: usize,
}

impl Default for RoutesSection {
    fn default() -> Self {
        RoutesSection {
            patterns: Vec::new(),
            ignored_patterns: Vec::new(),
            unmatched: Unmatched::default(),
            max_routes: default_max_routes(),
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributesSection {
    #[serde(default)]
    pub url_path: bool,
    #[serde(default)]
    pub client_address: bool,
    /// `db.query.text` (literals replaced by `?`) on database metrics and spans.
    #[serde(default)]
    pub db_query_text: bool,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureSection {
    #[serde(default)]
    pub headers: bool,
    #[serde(default)]
    pub query: bool,
}

impl Default for AppConfig {
    fn default() -> Self {
        tapline_core::config::all_defaults()
    }
}

fn default_capture_bytes() -> u32 {
    tapline_ebpf::app::DEFAULT_CAPTURE_BYTES
}
fn default_ring() -> ByteSize {
    ByteSize(tapline_ebpf::app::DEFAULT_RING_BUFFER_BYTES as u64)
}
fn default_interval() -> Duration {
    Duration::from_secs(5)
}
fn default_poll() -> Duration {
    Duration::from_secs(5)
}
fn default_max_routes() -> usize {
    100
}
fn default_true() -> bool {
    true
}
fn default_max_connections() -> usize {
    65536
}

pub struct AppFactory;

impl Component for AppFactory {
    type Config = AppConfig;
    const TYPE_NAME: &'static str = "app";
    const DESCRIPTION: &'static str = "RED metrics and spans of unmodified programs (HTTP/1, HTTP/2, gRPC, Redis, PostgreSQL, MySQL, Kafka; TLS via libssl), from eBPF";
    const SIGNALS: &'static [SignalKind] = &[SignalKind::Metrics, SignalKind::Traces];
}

fn compile(field: &str, list: &[String], d: &mut ConfigErrors) -> Vec<Pattern> {
    list.iter()
        .enumerate()
        .filter_map(|(i, p)| match Pattern::parse(p) {
            Ok(p) => Some(p),
            Err(e) => {
                d.push(format!("{field}[{i}]"), e);
                None
            }
        })
        .collect()
}

impl ReceiverComponent for AppFactory {
    fn build(&self, cfg: AppConfig, ctx: &BuildContext) -> Result<Box<dyn Receiver>, ConfigErrors> {
        let mut d = ConfigErrors::new();
        let max = tapline_ebpf::app::raw::APP_MAX_CAPTURE;
        if cfg.capture_bytes > max {
            d.push("capture_bytes", format!("must be at most {max}"));
        }
        let rb = cfg.ring_buffer_size.0;
        if !rb.is_power_of_two() || !(4096..=(1 << 30)).contains(&rb) {
            d.push(
                "ring_buffer_size",
                format!("{rb} bytes: must be a power of two between 4KiB and 1GiB"),
            );
        }
        if cfg.metrics_interval.is_zero() {
            d.push("metrics_interval", "must be above zero");
        }
        if cfg.discovery.poll_interval.is_zero() {
            d.push("discovery.poll_interval", "must be above zero");
        }
        if cfg.routes.max_routes == 0 {
            d.push("routes.max_routes", "must be at least 1");
        }
        if cfg.max_connections == 0 {
            d.push("max_connections", "must be at least 1");
        }
        for (i, s) in cfg.discovery.instrument.iter().enumerate() {
            if s.open_ports.is_none() && s.exe_path.is_none() {
                d.push(
                    format!("discovery.instrument[{i}]"),
                    "empty selector: give open_ports and/or exe_path",
                );
            }
        }
        let patterns = compile("routes.patterns", &cfg.routes.patterns, &mut d);
        let ignored = compile(
            "routes.ignored_patterns",
            &cfg.routes.ignored_patterns,
            &mut d,
        );
        let buckets =
            match HistogramBuckets::for_component(ctx, "extension", cfg.extension.as_deref()) {
                Ok(b) => Some(b),
                Err(e) => {
                    d.extend(e);
                    None
                }
            };
        let Some(buckets) = buckets.filter(|_| d.is_empty()) else {
            return Err(d);
        };
        let id = ctx.id.to_string();
        let lost = ctx.telemetry.counter(
            "tapline_ebpf_events_lost_total",
            "eBPF events dropped in the kernel because the ring buffer was full.",
            &[("receiver", id.as_str())],
        );
        let http_fallbacks = ctx.telemetry.counter(
            "tapline_app_http_unframed_connections_total",
            "HTTP/1.x connections the kernel stopped framing (a shape it does not frame), \
             captured per call from then on.",
            &[("receiver", id.as_str())],
        );
        let observations = ctx.telemetry.counter(
            "tapline_app_requests_observed_total",
            "HTTP exchanges the app receiver turned into telemetry.",
            &[("receiver", id.as_str())],
        );
        let records = crate::ebpf_records_counter(&ctx.telemetry, &id);
        let spans_linked = ctx.telemetry.counter(
            "tapline_app_spans_linked_total",
            "Spans made the child of another span of this host (a client call made while \
             serving a request; a server exchange whose client is traced here).",
            &[("receiver", id.as_str())],
        );
        let spans_unlinked = ctx.telemetry.counter(
            "tapline_app_spans_unlinked_total",
            "Spans that waited for their parent on this host, which did not show up in time; \
             each left as the root of its own trace.",
            &[("receiver", id.as_str())],
        );
        let routes = RoutesConfig {
            patterns,
            ignored,
            unmatched: cfg.routes.unmatched,
            max_routes: cfg.routes.max_routes,
        };
        Ok(Box::new(AppReceiver {
            buckets,
            cfg,
            routes,
            lost,
            http_fallbacks,
            observations,
            records,
            spans_linked,
            spans_unlinked,
        }))
    }
}

pub struct AppReceiver {
    cfg: AppConfig,
    buckets: Arc<HistogramBuckets>,
    routes: RoutesConfig,
    lost: Counter,
    http_fallbacks: Counter,
    observations: Counter,
    records: Counter,
    spans_linked: Counter,
    spans_unlinked: Counter,
}

/// The receiver's event loop: everything it owns besides the capture, and what it does with
/// each batch of events.
struct EventLoop {
    discovery: Discovery,
    tracker: Tracker,
    reporter: Reporter,
    obs: Vec<tracker::Observation>,
    tls: bool,
    /// Ring-buffer records taken (`tapline_ebpf_records_total`).
    records: Counter,
}

impl EventLoop {
    fn handle(&mut self, cap: &mut AppCapture, events: &mut Vec<AppEvent>, observed: &Counter) {
        self.records.add(events.len() as u64);
        for ev in events.drain(..) {
            let pid = ev.pid();
            let Some(instrumented) = self.discovery.instrumented_with_comm(pid, ev.comm()) else {
                continue;
            };
            if !instrumented {
                if !self.discovery.selective() {
                    // stop the kernel from sending this process's events at all
                    if let Err(e) = cap.set_pid_filter(pid, PidAction::Exclude) {
                        warn!(pid, error = %e, "app: cannot exclude pid in the kernel filter");
                    }
                }
                continue;
            }
            self.tracker.on_event(&ev, &mut self.obs);
            self.report(observed);
            cap.recycle(ev);
        }
    }

    fn report(&mut self, observed: &Counter) {
        for o in self.obs.drain(..) {
            if let Some(info) = self.discovery.process(o.pid) {
                self.reporter.record(&o, &info);
                observed.add(1);
            }
        }
    }

    /// Attaches the TLS probes to the libssl files of new processes.
    fn rescan_tls(&mut self, cap: &mut AppCapture) {
        if !self.tls {
            return;
        }
        let scan = if self.discovery.selective() {
            // only the selected processes take the uprobe traps
            cap.rescan_ssl_for_pids(&self.discovery.instrumented_pids())
        } else {
            cap.rescan_ssl()
        };
        for lib in &scan.attached {
            info!(
                library = %lib.path.display(),
                pid = ?lib.pid,
                only_pid = ?lib.only_pid,
                "app: TLS probes attached"
            );
        }
        for e in &scan.errors {
            // each error names the library path and the pid; a failing file is not retried
            warn!(error = %e, "app: cannot attach the TLS probes");
        }
    }

    fn rescan(&mut self, cap: &mut AppCapture) {
        let (changed, gone) = self.discovery.rescan();
        for p in changed {
            let action = match (self.discovery.selective(), p.instrumented) {
                (true, true) => PidAction::Include,
                (true, false) => PidAction::Clear,
                (false, true) => PidAction::Clear,
                (false, false) => PidAction::Exclude,
            };
            if p.instrumented {
                debug!(pid = p.pid, exe = %p.exe_path, service = %p.service_name, "app: instrumenting");
            }
            if let Err(e) = cap.set_pid_filter(p.pid, action) {
                warn!(pid = p.pid, error = %e, "app: cannot update the kernel pid filter");
            }
        }
        for pid in gone {
            self.tracker.forget_pid(pid, &mut self.obs);
            let _ = cap.set_pid_filter(pid, PidAction::Clear);
        }
        self.rescan_tls(cap);
    }
}

impl AppReceiver {
    fn publish_link_stats(&self, reporter: &Reporter) {
        let stats = reporter.linker.stats;
        self.spans_linked.set(stats.linked);
        self.spans_unlinked.set(stats.unlinked);
    }
}

async fn send(ctx: &ReceiverContext, batch: Option<Signal>) -> bool {
    match batch {
        Some(b) => ctx.output.send(b).await.is_ok(),
        None => true,
    }
}

#[async_trait]
impl Receiver for AppReceiver {
    /// Ready once the programs are attached and the first discovery pass is done.
    fn reports_readiness(&self) -> bool {
        true
    }

    async fn run(self: Box<Self>, ctx: ReceiverContext) -> anyhow::Result<()> {
        let cfg = &self.cfg;
        let discovery = Discovery::new(
            "/proc",
            cfg.discovery.instrument.clone(),
            cfg.discovery.exclude.clone(),
        );
        let cap_cfg = AppCaptureConfig {
            capture_bytes: cfg.capture_bytes,
            ring_buffer_bytes: cfg.ring_buffer_size.0 as u32,
            filter_mode: if discovery.selective() {
                PidFilterMode::Only
            } else {
                PidFilterMode::AllExcept
            },
            frame_http: cfg.kernel_http_framing,
            ..Default::default()
        };
        let id = ctx.id.to_string();
        let mut cap = AppCapture::load(&cap_cfg)
            .with_context(|| format!("receiver {id}: loading the eBPF application capture"))?;
        let (hooks, why) = cap.socket_hooks();
        info!(receiver = %id, hooks = hooks.as_str(), reason = why, "socket capture hooks chosen");
        let mut p = EventLoop {
            discovery,
            tracker: Tracker::with_parsers(
                cfg.max_connections,
                cfg.capture.headers,
                Some(ParserConfig {
                    query_text: cfg.attributes.db_query_text,
                }),
            ),
            reporter: Reporter::new(
                Router::new(self.routes.clone()),
                ReportOptions {
                    metrics_url_path: cfg.attributes.url_path,
                    metrics_client_address: cfg.attributes.client_address,
                    span_headers: cfg.capture.headers,
                    span_query: cfg.capture.query,
                    db_query_text: cfg.attributes.db_query_text,
                },
                &self.buckets,
                ctx.output.wants(SignalKind::Metrics),
                ctx.output.wants(SignalKind::Traces),
            ),
            obs: Vec::new(),
            tls: cfg.tls,
            records: self.records.clone(),
        };
        p.rescan(&mut cap);
        cap.attach()
            .with_context(|| format!("receiver {id}: attaching the eBPF application capture"))?;
        info!(receiver = %id, selective = p.discovery.selective(), "app capture attached");
        ctx.readiness.ready(format!(
            "programs attached ({}), processes discovered",
            hooks.as_str()
        ));

        let mut metrics_tick = tokio::time::interval(cfg.metrics_interval);
        let mut scan_tick = tokio::time::interval(cfg.discovery.poll_interval);
        let mut span_tick = tokio::time::interval(SPAN_FLUSH);
        for t in [&mut metrics_tick, &mut scan_tick, &mut span_tick] {
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t.reset();
        }
        let mut events = Vec::with_capacity(4096);
        loop {
            let mut flush_metrics = false;
            let mut flush_spans = false;
            tokio::select! {
                _ = ctx.shutdown.cancelled() => break,
                r = cap.readable() => r.with_context(|| format!("receiver {id}: waiting on the ring buffer"))?,
                _ = metrics_tick.tick() => flush_metrics = true,
                _ = span_tick.tick() => flush_spans = true,
                _ = scan_tick.tick() => p.rescan(&mut cap),
            }
            cap.poll(&mut events);
            p.handle(&mut cap, &mut events, &self.observations);
            if flush_metrics {
                // (a bpf syscall: once per interval, not per wakeup)
                self.lost.set(cap.lost_events());
                self.http_fallbacks.set(cap.http_fallbacks());
                let now = report::monotonic_ns();
                p.tracker.expire(
                    now,
                    UNFRAMED_QUIET.as_nanos() as u64,
                    CONN_IDLE.as_nanos() as u64,
                    &mut p.obs,
                );
                p.report(&self.observations);
                p.reporter.refresh_clock();
                if !send(&ctx, p.reporter.take_metrics().map(Signal::Metrics)).await {
                    return Ok(());
                }
            }
            if flush_spans {
                p.reporter.expire_links(report::monotonic_ns());
                self.publish_link_stats(&p.reporter);
            }
            if (flush_spans || p.reporter.pending_spans() >= SPAN_BATCH)
                && !send(&ctx, p.reporter.take_spans().map(Signal::Traces)).await
            {
                return Ok(());
            }
        }
        // Shutdown: what the kernel already captured is still reported.
        cap.detach().ok();
        cap.poll(&mut events);
        p.handle(&mut cap, &mut events, &self.observations);
        self.lost.set(cap.lost_events());
        self.http_fallbacks.set(cap.http_fallbacks());
        // Spans still waiting for a parent leave as they are.
        p.reporter.expire_links(u64::MAX);
        self.publish_link_stats(&p.reporter);
        send(&ctx, p.reporter.take_spans().map(Signal::Traces)).await;
        send(&ctx, p.reporter.take_metrics().map(Signal::Metrics)).await;
        Ok(())
    }
}
