//! Observations → OpenTelemetry: delta histograms aggregated per (process, method, route,
//! status, ...) and one span per exchange. What each protocol's operations become (metric,
//! span name and kind, attributes) is its row's [`Conventions`]; HTTP's route comes from the
//! receiver's [`Router`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use tapline_core::data::buckets::HistogramBuckets;
use tapline_core::data::*;

use tapline_protocols::conventions::{self, Conventions, OperationMetric, SpanName};
use tapline_protocols::http1::head::{self as http, Method};
use tapline_protocols::{self as protocols, Side, Status, ERROR_NO_RESPONSE};
use tapline_semconv::attr::*;
use tapline_semconv::metric::{self, MetricDef};

use super::discovery::ProcessInfo;
use super::linker::{Linker, Origin};
use super::routes::Router;
use super::tracker::Observation;
use crate::lru::{fast_map, BoundedMap, FastMap};

fn push_span(spans: &mut FastMap<u32, Vec<Span>>, count: &mut usize, pid: u32, span: Span) {
    spans
        .entry(pid)
        .or_insert_with(|| Vec::with_capacity(SPANS_PER_PID))
        .push(span);
    *count += 1;
}

/// First allocation of a process's span list per flush: small, since most processes make a
/// few spans per flush (a busy one grows its list by doubling).
const SPANS_PER_PID: usize = 16;

/// A span's attributes, built before they are shared (no copy-on-write check per push).
struct Pairs(Vec<(Str, Value)>);

impl Pairs {
    fn push(&mut self, key: impl Into<Str>, value: impl Into<Value>) {
        self.0.push((key.into(), value.into()));
    }
}

/// Entries of the caches of address texts and span names (each one `Str` per entry).
const TEXT_CACHE: usize = 4096;

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
    /// `db.query.text` (sanitized) on database metrics and spans.
    pub db_query_text: bool,
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
    tls: bool,
}

struct Series {
    duration: HistogramPoint,
    request_body: HistogramPoint,
    response_body: HistogramPoint,
}

/// The three histograms of each side ([`Side`] order): request duration, request body size,
/// response body size.
const HTTP_METRICS: [[&MetricDef; 3]; 2] = [
    [
        &metric::HTTP_SERVER_REQUEST_DURATION,
        &metric::HTTP_SERVER_REQUEST_BODY_SIZE,
        &metric::HTTP_SERVER_RESPONSE_BODY_SIZE,
    ],
    [
        &metric::HTTP_CLIENT_REQUEST_DURATION,
        &metric::HTTP_CLIENT_REQUEST_BODY_SIZE,
        &metric::HTTP_CLIENT_RESPONSE_BODY_SIZE,
    ],
];

pub const SCOPE: &str = tapline_semconv::SCOPE_APP;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct OpKey {
    pid: u32,
    metric: OperationMetric,
    /// String attributes in output order.
    attrs: Vec<(&'static str, Str)>,
    /// `server.address` and `server.port` (None when the socket is not known).
    server: Option<(IpAddr, u16)>,
}

fn core_str(s: &protocols::Str) -> Str {
    match s {
        std::borrow::Cow::Borrowed(b) => Str::from_static(b),
        std::borrow::Cow::Owned(o) => Str::from(o.clone()),
    }
}

/// What an operation's conventions say about it, before it becomes a span or a point.
struct Described<'a> {
    /// Its protocol's attributes, then `error.type`.
    attrs: Vec<(&'static str, Str)>,
    error: Option<Str>,
    /// The query text and its attribute key, when the protocol and the configuration allow it.
    query: Option<(&'static str, &'a str)>,
    /// `server.address` and `server.port` (None when the socket is not known).
    server: Option<(IpAddr, u16)>,
}

impl<'a> Described<'a> {
    fn of(o: &'a Observation, conventions: &Conventions, query_text: bool) -> Self {
        let mut described = Vec::with_capacity(6);
        let error = (conventions.attributes)(&o.op, o.side, &mut described).map(|e| core_str(&e));
        let mut attrs: Vec<(&'static str, Str)> =
            described.iter().map(|(k, v)| (*k, core_str(v))).collect();
        if let Some(e) = &error {
            attrs.push((ERROR_TYPE, e.clone()));
        }
        let query = conventions
            .query_text
            .zip(o.op.query_text.as_deref())
            .filter(|_| query_text);
        let server = match o.side {
            Side::Server => o.local,
            Side::Client => o.remote,
        };
        let server = (server.port() != 0).then(|| (server.ip().to_canonical(), server.port()));
        Described {
            attrs,
            error,
            query,
            server,
        }
    }
}

fn operation_span_name(op: &protocols::Operation, rule: SpanName) -> Str {
    match (rule, &op.target) {
        (SpanName::OperationAndTarget, Some(t)) => Str::from(format!("{} {t}", op.name)),
        _ => core_str(&op.name),
    }
}

fn scheme(tls: bool) -> &'static str {
    if tls {
        "https"
    } else {
        "http"
    }
}

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

/// `error.type` of an HTTP exchange: the connection failure, else the status when it is an
/// error for this side (5xx for servers, 4xx and 5xx for clients).
pub fn error_type(side: Side, status: u16, failure: Option<&'static str>) -> Option<Str> {
    if let Some(e) = failure {
        return Some(Str::from_static(e));
    }
    let threshold = match side {
        Side::Server => 500,
        Side::Client => 400,
    };
    (status >= threshold).then(|| status_text(status))
}

/// An HTTP exchange's fields as the HTTP conventions read them.
struct HttpExchange<'a> {
    method: Method,
    /// The request target (path and query).
    target: &'a [u8],
    /// 0 when no response was seen.
    status: u16,
    /// A connection-level failure (`response_incomplete`, `no_response`, a reset stream).
    failure: Option<&'static str>,
}

impl<'a> HttpExchange<'a> {
    /// None for a method tapline does not recognise.
    fn of(op: &'a protocols::Operation) -> Option<Self> {
        let method = Method::from_token(op.name.as_bytes())?;
        let status = match op.status {
            Status::Http(s) => s,
            _ => 0,
        };
        let failure = match (&op.error, status) {
            (_, 0) => Some(ERROR_NO_RESPONSE),
            (Some(std::borrow::Cow::Borrowed(e)), _) => Some(*e),
            _ => None,
        };
        Some(HttpExchange {
            method,
            target: op.target.as_deref().map(str::as_bytes).unwrap_or(b"/"),
            status,
            failure,
        })
    }
}

/// Turns observations into metrics and spans.
pub struct Reporter {
    router: Router,
    opts: ReportOptions,
    want_metrics: bool,
    want_spans: bool,
    series: FastMap<SeriesKey, Series>,
    resources: FastMap<u32, Arc<Resource>>,
    spans: FastMap<u32, Vec<Span>>,
    span_count: usize,
    /// Holds spans until their parent on this host is known.
    pub linker: Linker,
    /// `[side][duration, request body, response body]`.
    bounds: [[Arc<[f64]>; 3]; 2],
    interval_start_ns: u64,
    /// unix ns − monotonic ns.
    boot_offset: i128,
    /// Observations not reported because their path is in `routes.ignored_patterns`.
    pub ignored: u64,
    op_series: FastMap<OpKey, HistogramPoint>,
    /// Indexed by [`OperationMetric`].
    op_bounds: [Arc<[f64]>; 4],
    /// Database and messaging operations seen from the server's side (the server process is
    /// instrumented): not reported, their clients report them.
    pub server_side_ops: u64,
    /// `server.address` / `client.address` texts: formatting an address per span cost more
    /// than the rest of the span.
    addr_text: BoundedMap<IpAddr, Str>,
    /// `"{method} {route}"` span names.
    span_names: BoundedMap<(Method, Str), Str>,
    /// Trace and span ids: random, not secret (a fast generator, seeded from the OS).
    ids: SmallRng,
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
        let bounds = HTTP_METRICS.map(|defs| defs.map(|d| buckets.bounds_for(d.name, d.unit)));
        Reporter {
            router,
            opts,
            want_metrics,
            want_spans,
            series: fast_map(0),
            resources: fast_map(0),
            spans: fast_map(0),
            span_count: 0,
            linker: Linker::default(),
            bounds,
            interval_start_ns: now_unix_ns(),
            boot_offset: boot_offset(),
            ignored: 0,
            op_series: fast_map(0),
            op_bounds: OperationMetric::ALL.map(|m| buckets.bounds_for(m.def().name, m.def().unit)),
            server_side_ops: 0,
            addr_text: BoundedMap::new(TEXT_CACHE),
            span_names: BoundedMap::new(TEXT_CACHE),
            ids: SmallRng::from_os_rng(),
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

    fn addr_text(&mut self, ip: IpAddr) -> Str {
        if let Some(t) = self.addr_text.get(&ip) {
            return t;
        }
        let t = Str::from(ip.to_string());
        self.addr_text.insert(ip, t.clone());
        t
    }

    fn span_name(&mut self, method: Method, route: &Str) -> Str {
        let key = (method, route.clone());
        if let Some(n) = self.span_names.get(&key) {
            return n;
        }
        let n = Str::from(format!("{} {}", method.as_str(), route));
        self.span_names.insert(key, n.clone());
        n
    }

    fn push_span(&mut self, pid: u32, span: Span) {
        push_span(&mut self.spans, &mut self.span_count, pid, span);
    }

    /// Hands `span` to the linker, which passes it on once its place in a trace is final.
    fn link_span(&mut self, span: Span, origin: Origin) {
        let (spans, count) = (&mut self.spans, &mut self.span_count);
        self.linker
            .add(span, origin, origin.end_ns, &mut |pid, span| {
                push_span(spans, count, pid, span)
            });
    }

    /// Spans that waited for a parent past their time leave unconnected (`now_ns`
    /// monotonic; `u64::MAX`: all of them, at shutdown).
    pub fn expire_links(&mut self, now_ns: u64) {
        let (spans, count) = (&mut self.spans, &mut self.span_count);
        self.linker
            .expire(now_ns, &mut |pid, span| push_span(spans, count, pid, span));
    }

    /// A random id, never all zeros (invalid in W3C trace context).
    fn random_id<const N: usize>(&mut self) -> [u8; N] {
        loop {
            let b: [u8; N] = self.ids.random();
            if b != [0; N] {
                return b;
            }
        }
    }

    /// Records one operation, as its protocol's conventions say.
    pub fn record(&mut self, o: &Observation, proc_info: &ProcessInfo) {
        let conventions = &o.op.protocol.spec().conventions;
        match (conventions.record)(o.side) {
            // database and messaging servers: their clients report the operation
            None => self.server_side_ops += 1,
            Some((conventions::Metric::Http, _)) => self.record_http(o, proc_info),
            Some((conventions::Metric::Operation(metric), kind)) => {
                self.record_operation(o, conventions, metric, kind, proc_info)
            }
        }
    }

    /// The HTTP conventions: request duration and body size histograms per route, and a
    /// span named `{method} {route}`.
    fn record_http(&mut self, o: &Observation, proc_info: &ProcessInfo) {
        let op = &o.op;
        let Some(x) = HttpExchange::of(op) else {
            return;
        };
        let path_bytes = http::target_path(x.target);
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
        let error = error_type(o.side, x.status, x.failure);
        let duration_s = op.end_ns.saturating_sub(op.start_ns) as f64 / 1e9;
        self.resources
            .entry(o.pid)
            .or_insert_with(|| proc_info.resource.clone());

        if self.want_metrics {
            let key = SeriesKey {
                pid: o.pid,
                side: o.side,
                method: x.method,
                route: route.clone(),
                status: x.status,
                server_address: server.ip().to_canonical(),
                server_port: server.port(),
                error: error.clone(),
                url_path: self
                    .opts
                    .metrics_url_path
                    .then(|| Str::from(path.to_string())),
                client_address: (self.opts.metrics_client_address && o.side == Side::Server)
                    .then(|| client.ip().to_canonical()),
                tls: o.tls,
            };
            let [d, rq, rs] = &self.bounds[o.side as usize];
            let series = self.series.entry(key).or_insert_with(|| Series {
                duration: HistogramPoint::new(Attributes::new(), d.clone(), 0, 0),
                request_body: HistogramPoint::new(Attributes::new(), rq.clone(), 0, 0),
                response_body: HistogramPoint::new(Attributes::new(), rs.clone(), 0, 0),
            });
            series.duration.record(duration_s);
            series.request_body.record(op.request_size as f64);
            series.response_body.record(op.response_size as f64);
        }

        if self.want_spans {
            let mut a = Pairs(Vec::with_capacity(12));
            a.push(HTTP_REQUEST_METHOD, x.method.as_str());
            a.push(HTTP_ROUTE, route.clone());
            // the route when the path is its own route (no allocation)
            let path_value = if route.as_str() == path {
                route.clone()
            } else {
                Str::from(path.to_string())
            };
            a.push(URL_PATH, path_value);
            if x.status != 0 {
                a.push(HTTP_RESPONSE_STATUS_CODE, x.status as i64);
            }
            a.push(URL_SCHEME, scheme(o.tls));
            if server.port() != 0 {
                a.push(SERVER_ADDRESS, self.addr_text(server.ip().to_canonical()));
                a.push(SERVER_PORT, server.port() as i64);
            }
            if o.side == Side::Server && client.port() != 0 {
                a.push(CLIENT_ADDRESS, self.addr_text(client.ip().to_canonical()));
            }
            if let Some(e) = &error {
                a.push(ERROR_TYPE, e.clone());
            }
            a.push(HTTP_REQUEST_BODY_SIZE, op.request_size as i64);
            a.push(HTTP_RESPONSE_BODY_SIZE, op.response_size as i64);
            if self.opts.span_query {
                if let Some(q) = http::target_query(x.target) {
                    a.push(
                        URL_QUERY,
                        Value::from(String::from_utf8_lossy(q).into_owned()),
                    );
                }
            }
            if self.opts.span_headers {
                for (n, v) in &op.request_headers {
                    a.push(
                        Str::from(format!("http.request.header.{n}")),
                        Value::from(v.to_string()),
                    );
                }
            }
            // New ids unless the request carried them; the linker may still make this span
            // the child of another one on this host.
            let (trace_id, parent_span_id) = match op.traceparent {
                Some(tp) => (tp.trace_id, tp.parent_id),
                None => (self.random_id::<16>(), [0; 8]),
            };
            let span = Span {
                trace_id,
                span_id: self.random_id::<8>(),
                parent_span_id,
                name: self.span_name(x.method, &route),
                kind: match o.side {
                    Side::Server => SpanKind::Server,
                    Side::Client => SpanKind::Client,
                },
                start_time_ns: self.to_unix(op.start_ns),
                end_time_ns: self.to_unix(op.end_ns),
                attributes: a.0.into(),
                status: if error.is_some() {
                    StatusCode::Error
                } else {
                    StatusCode::Unset
                },
                status_message: error.unwrap_or_default(),
            };
            let exchange = |(conn, start): (u64, u64)| (o.pid, conn, start);
            let origin = Origin {
                pid: o.pid,
                side: o.side,
                local: o.local,
                remote: o.remote,
                start_ns: op.start_ns,
                end_ns: op.end_ns,
                exchange: o.exchange.map(exchange),
                served: o.served.map(exchange),
                placed: op.traceparent.is_some(),
                sequential: op.protocol == protocols::Protocol::Http1,
            };
            self.link_span(span, origin);
        }
    }

    /// The conventions of the protocols other than HTTP: one duration histogram and one span
    /// per operation, with the attributes its protocol gives.
    fn record_operation(
        &mut self,
        o: &Observation,
        conventions: &Conventions,
        metric: OperationMetric,
        kind: conventions::SpanKind,
        proc_info: &ProcessInfo,
    ) {
        let described = Described::of(o, conventions, self.opts.db_query_text);
        self.resources
            .entry(o.pid)
            .or_insert_with(|| proc_info.resource.clone());
        if self.want_spans {
            self.push_operation_span(o, conventions.span_name, kind, &described);
        }
        if self.want_metrics {
            self.record_operation_duration(o, metric, described);
        }
    }

    /// One span per operation: its attributes, the query text when allowed, the server's
    /// address, `tls`; the error as the span's status.
    fn push_operation_span(
        &mut self,
        o: &Observation,
        name: SpanName,
        kind: conventions::SpanKind,
        d: &Described,
    ) {
        let op = &o.op;
        let mut a = Pairs(Vec::with_capacity(d.attrs.len() + 4));
        for (k, v) in &d.attrs {
            a.push(*k, v.clone());
        }
        if let Some((key, q)) = d.query {
            a.push(key, Value::from(q.to_string()));
        }
        if let Some((ip, port)) = d.server {
            a.push(SERVER_ADDRESS, self.addr_text(ip));
            a.push(SERVER_PORT, port as i64);
        }
        if o.tls {
            a.push("tls", true);
        }
        // A server (gRPC) honours the trace context its request carried.
        let (trace_id, parent_span_id) = match op.traceparent {
            Some(tp) => (tp.trace_id, tp.parent_id),
            None => (self.random_id::<16>(), [0; 8]),
        };
        let span = Span {
            trace_id,
            span_id: self.random_id::<8>(),
            parent_span_id,
            name: operation_span_name(op, name),
            kind: match kind {
                conventions::SpanKind::Server => SpanKind::Server,
                conventions::SpanKind::Client => SpanKind::Client,
            },
            start_time_ns: self.to_unix(op.start_ns),
            end_time_ns: self.to_unix(op.end_ns),
            attributes: a.0.into(),
            status: if d.error.is_some() {
                StatusCode::Error
            } else {
                StatusCode::Unset
            },
            status_message: d.error.clone().unwrap_or_default(),
        };
        self.push_span(o.pid, span);
    }

    /// The operation's duration into its metric's series of (process, attributes, server).
    fn record_operation_duration(
        &mut self,
        o: &Observation,
        metric: OperationMetric,
        d: Described,
    ) {
        let Described {
            mut attrs,
            query,
            server,
            ..
        } = d;
        if let Some((key, q)) = query {
            attrs.push((key, Str::from(q.to_string())));
        }
        let key = OpKey {
            pid: o.pid,
            metric,
            attrs,
            server,
        };
        let bounds = &self.op_bounds[metric as usize];
        let duration_s = o.op.end_ns.saturating_sub(o.op.start_ns) as f64 / 1e9;
        self.op_series
            .entry(key)
            .or_insert_with(|| HistogramPoint::new(Attributes::new(), bounds.clone(), 0, 0))
            .record(duration_s);
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
        if self.series.is_empty() && self.op_series.is_empty() {
            return None;
        }
        let mut by_pid: HashMap<u32, [[Vec<HistogramPoint>; 3]; 2]> = HashMap::new();
        let mut ops_by_pid: HashMap<u32, [Vec<HistogramPoint>; 4]> = HashMap::new();
        for (k, mut p) in self.op_series.drain() {
            let mut attrs = Attributes::with_capacity(k.attrs.len() + 2);
            for (name, v) in k.attrs {
                attrs.push(name, v);
            }
            if let Some((ip, port)) = k.server {
                attrs.push(SERVER_ADDRESS, Value::from(ip.to_string()));
                attrs.push(SERVER_PORT, port as i64);
            }
            p.attributes = attrs;
            p.start_time_ns = start;
            p.time_ns = now;
            ops_by_pid.entry(k.pid).or_default()[k.metric as usize].push(p);
        }
        for (k, s) in self.series.drain() {
            let mut attrs = Attributes::with_capacity(9);
            attrs.push(HTTP_REQUEST_METHOD, k.method.as_str());
            attrs.push(HTTP_ROUTE, k.route);
            if k.status != 0 {
                attrs.push(HTTP_RESPONSE_STATUS_CODE, k.status as i64);
            }
            attrs.push(URL_SCHEME, scheme(k.tls));
            if k.server_port != 0 {
                attrs.push(SERVER_ADDRESS, Value::from(k.server_address.to_string()));
                attrs.push(SERVER_PORT, k.server_port as i64);
            }
            if let Some(e) = k.error {
                attrs.push(ERROR_TYPE, e);
            }
            if let Some(p) = k.url_path {
                attrs.push(URL_PATH, p);
            }
            if let Some(c) = k.client_address {
                attrs.push(CLIENT_ADDRESS, Value::from(c.to_string()));
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
        let mut pids: Vec<u32> = by_pid.keys().chain(ops_by_pid.keys()).copied().collect();
        pids.sort_unstable();
        pids.dedup();
        let mut resource_metrics = Vec::new();
        for pid in pids {
            let Some(resource) = self.resources.get(&pid).cloned() else {
                continue;
            };
            let sides = by_pid.remove(&pid).unwrap_or_default();
            let mut metrics = Vec::new();
            for (defs, hists) in HTTP_METRICS.iter().zip(sides) {
                for (def, points) in defs.iter().zip(hists) {
                    if points.is_empty() {
                        continue;
                    }
                    metrics.push(Metric {
                        name: Str::from_static(def.name),
                        description: Str::from_static(def.description),
                        unit: Str::from_static(def.unit),
                        data: MetricData::Histogram {
                            temporality: Temporality::Delta,
                            points,
                        },
                    });
                }
            }
            let ops = ops_by_pid.remove(&pid).unwrap_or_default();
            for (metric, points) in OperationMetric::ALL.iter().zip(ops) {
                if points.is_empty() {
                    continue;
                }
                metrics.push(Metric {
                    name: Str::from_static(metric.def().name),
                    description: Str::from_static(metric.def().description),
                    unit: Str::from_static(metric.def().unit),
                    data: MetricData::Histogram {
                        temporality: Temporality::Delta,
                        points,
                    },
                });
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
        if !self.spans.contains_key(&pid)
            && !self.series.keys().any(|k| k.pid == pid)
            && !self.op_series.keys().any(|k| k.pid == pid)
        {
            self.resources.remove(&pid);
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
