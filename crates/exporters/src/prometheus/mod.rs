//! `prometheus`: serves what the pipeline delivers for Prometheus to scrape.
//!
//! - Text exposition format 0.0.4, or OpenMetrics 1.0 when the scraper's `Accept` asks for
//!   `application/openmetrics-text`.
//! - Delta sums and histograms are accumulated into cumulative series; cumulative input is
//!   served as it comes. A series that receives nothing for `ttl` disappears.
//! - Names follow the OpenTelemetry → Prometheus rules ([`tapline_semconv::prometheus`]). The resource attributes
//!   `service.name` and `service.namespace` become the labels `service_name` and
//!   `service_namespace` of every series; the other resource attributes are served once per
//!   service on `target_info`, keyed by those two labels.
//! - `histograms:` (or the `histogram_buckets` extension named by `extension:`) chooses bucket
//!   boundaries per metric-name glob. The rules are shared with receivers (see
//!   [`tapline_core::data::buckets`]) so that tapline's own receivers record into exactly
//!   these boundaries. Histograms that arrive with other boundaries (from the
//!   `otlp` receiver) are re-bucketed when that is exact — every configured boundary is one of
//!   the incoming boundaries — and served with their own boundaries otherwise (logged once).

mod render;
mod store;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::Deserialize;
use tapline_core::config::types::duration;
pub use tapline_core::data::buckets::HistogramRuleConfig;
use tapline_core::data::buckets::{HistogramBuckets, HistogramBucketsExtension};
use tapline_core::data::{SharedSignal, Signal, SignalKind};
use tapline_core::tls::{TlsListener, TlsServerConfig};
use tapline_core::{
    BuildContext, Component, ConfigErrors, ExportError, Exporter, ExporterComponent,
};
use tokio_util::sync::CancellationToken;

pub use render::Format;
use store::Store;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusConfig {
    #[serde(default = "default_endpoint")]
    pub endpoint: SocketAddr,
    #[serde(default = "default_path")]
    pub path: String,
    /// A series that receives nothing for this long is no longer served.
    #[serde(default = "default_ttl", with = "duration")]
    pub ttl: Duration,
    /// Bucket boundaries per metric-name glob; the first match wins.
    #[serde(default)]
    pub histograms: Vec<HistogramRuleConfig>,
    /// A `histogram_buckets` extension holding the rules instead of `histograms`.
    #[serde(default)]
    pub extension: Option<String>,
    #[serde(default)]
    pub tls: Option<TlsServerConfig>,
    #[serde(default)]
    pub basic_auth: Option<BasicAuthConfig>,
    /// Serve OpenMetrics to scrapers that ask for it; `false` always serves the text format.
    #[serde(default = "yes")]
    pub open_metrics: bool,
}

fn yes() -> bool {
    true
}

impl Default for PrometheusConfig {
    fn default() -> Self {
        tapline_core::config::all_defaults()
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuthConfig {
    pub username: String,
    pub password: String,
}

fn default_endpoint() -> SocketAddr {
    ([127, 0, 0, 1], 9400).into()
}
fn default_path() -> String {
    "/metrics".into()
}
fn default_ttl() -> Duration {
    Duration::from_secs(300)
}

pub struct PrometheusFactory;

impl Component for PrometheusFactory {
    type Config = PrometheusConfig;
    const TYPE_NAME: &'static str = "prometheus";
    const DESCRIPTION: &'static str =
        "Serves metrics for Prometheus to scrape (text format and OpenMetrics)";
    const SIGNALS: &'static [SignalKind] = &[SignalKind::Metrics];
}

impl ExporterComponent for PrometheusFactory {
    fn build(
        &self,
        cfg: PrometheusConfig,
        ctx: &BuildContext,
    ) -> Result<Box<dyn Exporter>, ConfigErrors> {
        let mut errors = ConfigErrors::new();
        if !cfg.path.starts_with('/') {
            errors.push("path", format!("{:?} must start with `/`", cfg.path));
        }
        if cfg.ttl.is_zero() {
            errors.push("ttl", "must be longer than zero");
        }
        let buckets = match &cfg.extension {
            Some(name) if !cfg.histograms.is_empty() => {
                errors.push(
                    "histograms",
                    format!("the bucket rules come from the extension {name:?}: set them there, not here"),
                );
                None
            }
            Some(name) => match ctx.extension::<HistogramBucketsExtension>("extension", name) {
                Ok(b) => Some((*b).clone()),
                Err(e) => {
                    errors.extend(e);
                    None
                }
            },
            None => match HistogramBuckets::from_rules(&cfg.histograms, "histograms") {
                Ok(b) => Some(b),
                Err(e) => {
                    errors.extend(e);
                    None
                }
            },
        };
        let tls = match &cfg.tls {
            Some(t) => match t.build(&format!("{}.tls", ctx.path), &[b"http/1.1"]) {
                Ok(c) => Some(c),
                Err(e) => {
                    errors.push("tls", e);
                    None
                }
            },
            None => None,
        };
        let Some(buckets) = buckets.filter(|_| errors.is_empty()) else {
            return Err(errors);
        };
        // Receivers naming no extension, built after this exporter, record their histograms
        // into these bounds: they become the graph's default `histogram_buckets`.
        ctx.extension_or_default::<HistogramBucketsExtension>("extension", None, || {
            buckets.clone()
        })?;
        Ok(Box::new(PrometheusExporter::new(
            cfg,
            buckets,
            tls,
            format!("{}.endpoint", ctx.path),
        )))
    }
}

pub struct PrometheusExporter {
    config: PrometheusConfig,
    tls: Option<Arc<rustls::ServerConfig>>,
    /// The config path of `endpoint`, for errors.
    endpoint_path: String,
    store: Arc<Mutex<Store>>,
    stop: CancellationToken,
    server: Option<tokio::task::JoinHandle<()>>,
    local_addr: Option<SocketAddr>,
}

impl PrometheusExporter {
    pub fn new(
        config: PrometheusConfig,
        buckets: HistogramBuckets,
        tls: Option<Arc<rustls::ServerConfig>>,
        endpoint_path: String,
    ) -> Self {
        PrometheusExporter {
            store: Arc::new(Mutex::new(Store::new(config.ttl, buckets))),
            config,
            tls,
            endpoint_path,
            stop: CancellationToken::new(),
            server: None,
            local_addr: None,
        }
    }

    /// The bound address (after `start`), useful when the endpoint's port is 0.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// Renders what a scrape would return now.
    pub fn render(&self, format: Format) -> String {
        let mut store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        store.prune(now);
        render::render(&store, format, now)
    }
}

#[derive(Clone)]
struct ServeState {
    store: Arc<Mutex<Store>>,
    /// `Basic <base64>` expected in `Authorization`.
    auth: Option<Arc<str>>,
    open_metrics: bool,
}

/// Compares without leaking, through timing, how much of a secret matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn scrape(state: ServeState, headers: HeaderMap) -> Response {
    if let Some(want) = &state.auth {
        let got = headers
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if !constant_time_eq(got, want.as_bytes()) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Basic realm=\"tapline\"")],
                "unauthorized\n",
            )
                .into_response();
        }
    }
    let format = match state.open_metrics {
        true => Format::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok())),
        false => Format::Text,
    };
    // Rendering 100k series takes tens of milliseconds: keep it off the async workers.
    let store = state.store.clone();
    let body = tokio::task::spawn_blocking(move || {
        let mut store = store.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        store.prune(now);
        render::render(&store, format, now)
    })
    .await;
    match body {
        Ok(body) => ([(header::CONTENT_TYPE, format.content_type())], body).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("rendering metrics failed: {e}\n"),
        )
            .into_response(),
    }
}

#[async_trait]
impl Exporter for PrometheusExporter {
    async fn start(&mut self) -> anyhow::Result<()> {
        let endpoint = self.config.endpoint;
        let listener = tokio::net::TcpListener::bind(endpoint).await.map_err(|e| {
            anyhow::anyhow!(
                "{}: cannot listen on {endpoint}: {e} (is another process using the port?)",
                self.endpoint_path
            )
        })?;
        self.local_addr = Some(listener.local_addr()?);
        let state = ServeState {
            store: self.store.clone(),
            auth: self.config.basic_auth.as_ref().map(|a| {
                let raw = format!("{}:{}", a.username, a.password);
                Arc::from(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(raw)
                ))
            }),
            open_metrics: self.config.open_metrics,
        };
        let app = axum::Router::new().route(
            &self.config.path,
            axum::routing::get(move |headers: HeaderMap| scrape(state.clone(), headers)),
        );
        let stop = self.stop.clone();
        let tls = self.tls.clone();
        self.server = Some(tokio::spawn(async move {
            let shutdown = async move { stop.cancelled().await };
            let result = match tls {
                None => {
                    axum::serve(listener, app)
                        .with_graceful_shutdown(shutdown)
                        .await
                }
                Some(cfg) => match TlsListener::new(listener, cfg) {
                    Ok(l) => axum::serve(l, app).with_graceful_shutdown(shutdown).await,
                    Err(e) => Err(e),
                },
            };
            if let Err(e) = result {
                tracing::error!(%endpoint, error = %e, "prometheus endpoint stopped");
            }
        }));
        tracing::info!(endpoint = %endpoint, path = %self.config.path, tls = self.tls.is_some(), "prometheus exporter serving");
        Ok(())
    }

    async fn export(&mut self, batch: SharedSignal) -> Result<(), ExportError> {
        let Signal::Metrics(metrics) = &*batch else {
            return Err(ExportError::new(
                "the prometheus exporter takes metrics only",
            ));
        };
        let mut store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        store.apply(metrics, Instant::now());
        Ok(())
    }

    async fn shutdown(&mut self) -> anyhow::Result<()> {
        self.stop.cancel();
        if let Some(h) = self.server.take() {
            // Open keep-alive connections would hold graceful shutdown forever.
            let abort = h.abort_handle();
            if tokio::time::timeout(Duration::from_secs(2), h)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
        Ok(())
    }
}

impl Drop for PrometheusExporter {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(h) = &self.server {
            h.abort();
        }
    }
}

#[cfg(test)]
mod tests;
