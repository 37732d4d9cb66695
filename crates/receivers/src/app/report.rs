//! Observations → OpenTelemetry: delta histograms aggregated per (process, method, route,
//! status, ...) and one span per exchange.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use tapline_core::data::buckets::HistogramBuckets;
use tapline_core::data::*;

use super::conn::{Observation, Side};
use super::discovery::ProcessInfo;
use super::http::{self, Method};
use super::routes::Router;

/// Optional attributes (high cardinality, off by default).
#[derive(Clone, Copy, Debug, Default)]
pub struct ReportOptions {
    /// `url.path` on metrics.
    pub metrics_url_path: bool,
    /// `client.address` on server metrics.
    pub metrics_client_address: bool,
    /// `http.request.header.<name>` on spans.
    pub span_headers: bool,
    /// `url.query` on spans.
    pub span_query: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct SeriesKey {
    pid: u32,
    side: Side,
    method: Method,
    route: Str,
    status: u16,
    server_address: IpAddr,
    server_port: u16,
    error: Option<Str>,
    url_path: Option<Str>,
    client_address: Option<IpAddr>,
}

struct Series {
    duration: HistogramPoint,
    request_body: HistogramPoint,
    response_body: HistogramPoint,
}

/// Name, description, unit.
type MetricDef = (&'static str, &'static str, &'static str);

/// The three histograms of one side.
const METRICS: [(Side, [MetricDef; 3]); 2] = [
    (
        Side::Server,
        [
            (
                "http.server.request.duration",
                "Duration of HTTP server requests.",
                "s",
            ),
            (
                "http.server.request.body.size",
                "Size of HTTP server request bodies.",
                "By",
            ),
            (
                "http.server.response.body.size",
                "Size of HTTP server response bodies.",
                "By",
            ),
        ],
    ),
    (
        Side::Client,
        [
            (
                "http.client.request.duration",
                "Duration of HTTP client requests.",
                "s",
            ),
            (
                "http.client.request.body.size",
                "Size of HTTP client request bodies.",
                "By",
            ),
            (
                "http.client.response.body.size",
                "Size of HTTP client response bodies.",
                "By",
            ),
        ],
    ),
];

pub const SCOPE: &str = "tapline.app";

fn status_text(status: u16) -> Str {
    const COMMON: [(u16, &str); 12] = [
        (400, "400"),
        (401, "401"),
        (403, "403"),
        (404, "404"),
        (405, "405"),
        (409, "409"),
        (429, "429"),
        (500, "500"),
        (501, "501"),
        (502, "502"),
        (503, "503"),
        (504, "504"),
    ];
    match COMMON.iter().find(|(s, _)| *s == status) {
        Some((_, t)) => Str::from_static(t),
        None => Str::from(status.to_string()),
    }
}

/// `error.type` of an exchange: the connection failure, else the status when it is an error
/// for this side (5xx for servers, 4xx and 5xx for clients).
pub fn error_type(o: &Observation) -> Option<Str> {
    if let Some(e) = o.error {
        return Some(Str::from_static(e));
    }
    let threshold = match o.side {
        Side::Server => 500,
        Side::Client => 400,
    };
    (o.status >= threshold).then(|| status_text(o.status))
}

/// Turns observations into metrics and spans.
pub struct Reporter {
    router: Router,
    opts: ReportOptions,
    want_metrics: bool,
    want_spans: bool,
    series: HashMap<SeriesKey, Series>,
    resources: HashMap<u32, Arc<Resource>>,
    spans: HashMap<u32, Vec<Span>>,
    span_count: usize,
    /// `[side][duration, request body, response body]`.
    bounds: [[Arc<[f64]>; 3]; 2],
    interval_start_ns: u64,
    /// unix ns − monotonic ns.
    boot_offset: i128,
    /// Observations not reported because their path is in `routes.ignored_patterns`.
    pub ignored: u64,
}

impl Reporter {
    /// Records into the boundaries `buckets` gives each metric (the core defaults, or an
    /// exporter's configured rules).
    pub fn new(
        router: Router,
        opts: ReportOptions,
        buckets: &HistogramBuckets,
        want_metrics: bool,
        want_spans: bool,
    ) -> Self {
        let bounds =
            METRICS.map(|(_, defs)| defs.map(|(name, _, unit)| buckets.bounds_for(name, unit)));
        Reporter {
            router,
            opts,
            want_metrics,
            want_spans,
            series: HashMap::new(),
            resources: HashMap::new(),
            spans: HashMap::new(),
            span_count: 0,
            bounds,
            interval_start_ns: now_unix_ns(),
            boot_offset: boot_offset(),
            ignored: 0,
        }
    }

    /// Re-reads the monotonic → unix offset (the wall clock may have been stepped).
    pub fn refresh_clock(&mut self) {
        self.boot_offset = boot_offset();
    }

    fn to_unix(&self, mono_ns: u64) -> u64 {
        (mono_ns as i128 + self.boot_offset).clamp(0, u64::MAX as i128) as u64
    }

    pub fn pending_spans(&self) -> usize {
        self.span_count
    }

    pub fn record(&mut self, o: &Observation, proc_info: &ProcessInfo) {
        let path_bytes = http::target_path(&o.target);
        let path = String::from_utf8_lossy(path_bytes);
        if self.router.is_ignored(&path) {
            self.ignored += 1;
            return;
        }
        let route = self.router.route(&proc_info.service_name, &path);
        let server = match o.side {
            Side::Server => o.local,
            Side::Client => o.remote,
        };
        let client = match o.side {
            Side::Server => o.remote,
            Side::Client => o.local,
        };
        let error = error_type(o);
        let duration_s = o.end_ns.saturating_sub(o.start_ns) as f64 / 1e9;
        self.resources
            .entry(o.pid)
            .or_insert_with(|| proc_info.resource.clone());

        if self.want_metrics {
            let key = SeriesKey {
                pid: o.pid,
                side: o.side,
                method: o.method,
                route: route.clone(),
                status: o.status,
                server_address: server.ip().to_canonical(),
                server_port: server.port(),
                error: error.clone(),
                url_path: self
                    .opts
                    .metrics_url_path
                    .then(|| Str::from(path.to_string())),
                client_address: (self.opts.metrics_client_address && o.side == Side::Server)
                    .then(|| client.ip().to_canonical()),
            };
            let [d, rq, rs] = &self.bounds[o.side as usize];
            let series = self.series.entry(key).or_insert_with(|| Series {
                duration: HistogramPoint::new(Attributes::new(), d.clone(), 0, 0),
                request_body: HistogramPoint::new(Attributes::new(), rq.clone(), 0, 0),
                response_body: HistogramPoint::new(Attributes::new(), rs.clone(), 0, 0),
            });
            series.duration.record(duration_s);
            series.request_body.record(o.request_body as f64);
            series.response_body.record(o.response_body as f64);
        }

        if self.want_spans {
            let mut a = Attributes::with_capacity(10);
            a.push("http.request.method", o.method.as_str());
            a.push("http.route", route.clone());
            a.push("url.path", Value::from(path.to_string()));
            if o.status != 0 {
                a.push("http.response.status_code", o.status as i64);
            }
            a.push(
                "server.address",
                Value::from(server.ip().to_canonical().to_string()),
            );
            a.push("server.port", server.port() as i64);
            if o.side == Side::Server {
                a.push(
                    "client.address",
                    Value::from(client.ip().to_canonical().to_string()),
                );
            }
            if let Some(e) = &error {
                a.push("error.type", e.clone());
            }
            a.push("http.request.body.size", o.request_body as i64);
            a.push("http.response.body.size", o.response_body as i64);
            if self.opts.span_query {
                if let Some(q) = http::target_query(&o.target) {
                    a.push(
                        "url.query",
                        Value::from(String::from_utf8_lossy(q).into_owned()),
                    );
                }
            }
            if self.opts.span_headers {
                for (n, v) in &o.headers {
                    a.push(
                        Str::from(format!("http.request.header.{n}")),
                        Value::from(v.to_string()),
                    );
                }
            }
            let (trace_id, parent_span_id) = match o.traceparent {
                Some(tp) => (tp.trace_id, tp.parent_id),
                None => (random_nonzero::<16>(), [0; 8]),
            };
            let span = Span {
                trace_id,
                span_id: random_nonzero::<8>(),
                parent_span_id,
                name: Str::from(format!("{} {}", o.method.as_str(), route)),
                kind: match o.side {
                    Side::Server => SpanKind::Server,
                    Side::Client => SpanKind::Client,
                },
                start_time_ns: self.to_unix(o.start_ns),
                end_time_ns: self.to_unix(o.end_ns),
                attributes: a,
                status: if error.is_some() {
                    StatusCode::Error
                } else {
                    StatusCode::Unset
                },
                status_message: error.unwrap_or_default(),
            };
            self.spans.entry(o.pid).or_default().push(span);
            self.span_count += 1;
        }
    }

    /// The spans recorded since the last call, grouped by process.
    pub fn take_spans(&mut self) -> Option<Traces> {
        if self.span_count == 0 {
            return None;
        }
        self.span_count = 0;
        let mut pids: Vec<u32> = self.spans.keys().copied().collect();
        pids.sort_unstable();
        let resource_spans = pids
            .into_iter()
            .filter_map(|pid| {
                let spans = self.spans.remove(&pid)?;
                Some(ResourceSpans {
                    resource: self.resources.get(&pid)?.clone(),
                    scope: Str::from_static(SCOPE),
                    spans,
                })
            })
            .collect();
        Some(Traces { resource_spans })
    }

    /// The delta histograms of the interval that ends now; `None` when nothing happened.
    pub fn take_metrics(&mut self) -> Option<Metrics> {
        let now = now_unix_ns();
        let start = std::mem::replace(&mut self.interval_start_ns, now);
        if self.series.is_empty() {
            return None;
        }
        let mut by_pid: HashMap<u32, [[Vec<HistogramPoint>; 3]; 2]> = HashMap::new();
        for (k, s) in self.series.drain() {
            let mut attrs = Attributes::with_capacity(9);
            attrs.push("http.request.method", k.method.as_str());
            attrs.push("http.route", k.route);
            if k.status != 0 {
                attrs.push("http.response.status_code", k.status as i64);
            }
            attrs.push("server.address", Value::from(k.server_address.to_string()));
            attrs.push("server.port", k.server_port as i64);
            if let Some(e) = k.error {
                attrs.push("error.type", e);
            }
            if let Some(p) = k.url_path {
                attrs.push("url.path", p);
            }
            if let Some(c) = k.client_address {
                attrs.push("client.address", Value::from(c.to_string()));
            }
            let side = match k.side {
                Side::Server => 0,
                Side::Client => 1,
            };
            let slot = &mut by_pid.entry(k.pid).or_default()[side];
            for (i, mut p) in [s.duration, s.request_body, s.response_body]
                .into_iter()
                .enumerate()
            {
                p.attributes = attrs.clone();
                p.start_time_ns = start;
                p.time_ns = now;
                slot[i].push(p);
            }
        }
        let mut pids: Vec<u32> = by_pid.keys().copied().collect();
        pids.sort_unstable();
        let mut resource_metrics = Vec::new();
        for pid in pids {
            let Some(resource) = self.resources.get(&pid).cloned() else {
                continue;
            };
            let sides = by_pid.remove(&pid).unwrap_or_default();
            let mut metrics = Vec::new();
            for ((_, defs), hists) in METRICS.iter().zip(sides) {
                for ((name, description, unit), points) in defs.iter().zip(hists) {
                    if points.is_empty() {
                        continue;
                    }
                    metrics.push(Metric {
                        name: Str::from_static(name),
                        description: Str::from_static(description),
                        unit: Str::from_static(unit),
                        data: MetricData::Histogram {
                            temporality: Temporality::Delta,
                            points,
                        },
                    });
                }
            }
            resource_metrics.push(ResourceMetrics {
                resource,
                scope: Str::from_static(SCOPE),
                metrics,
            });
        }
        Some(Metrics { resource_metrics })
    }

    /// Forgets a process that exited (after its data was flushed).
    pub fn forget_pid(&mut self, pid: u32) {
        if !self.spans.contains_key(&pid) && !self.series.keys().any(|k| k.pid == pid) {
            self.resources.remove(&pid);
        }
    }
}

fn random_nonzero<const N: usize>() -> [u8; N] {
    loop {
        let b: [u8; N] = rand::random();
        if b != [0; N] {
            return b;
        }
    }
}

/// CLOCK_MONOTONIC now, in ns: the clock of the capture's timestamps.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn boot_offset() -> i128 {
    // read the monotonic clock on both sides of the wall clock and use the midpoint
    let a = monotonic_ns();
    let wall = now_unix_ns();
    let b = monotonic_ns();
    wall as i128 - (a as i128 + b as i128) / 2
}
