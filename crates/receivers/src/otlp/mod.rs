//! `otlp`: accepts OTLP metrics and traces over gRPC and HTTP/protobuf (gateway mode).
//!
//! Data is handed on with [`ReceiverOutput::try_send`]: when a pipeline is full the sender
//! is told to retry (gRPC UNAVAILABLE, HTTP 503 with `Retry-After`) instead of being kept
//! waiting, so back-pressure reaches the sender without holding its connections. Malformed
//! payloads are refused with INVALID_ARGUMENT / HTTP 400 naming what is wrong. Exponential
//! histograms and summaries, which tapline's model lacks, are skipped and reported to the
//! sender as rejected points (OTLP partial success).

mod grpc;
mod http;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use serde::Deserialize;
use tapline_core::config::types::ByteSize;
use tapline_core::data::otlp::{metrics_from_proto, traces_from_proto};
use tapline_core::data::{Signal, SignalKind};
use tapline_core::pipeline::{ReceiverOutput, SendError};
use tapline_core::tls::TlsServerConfig;
use tapline_core::{
    BuildContext, Component, ConfigErrors, Receiver, ReceiverComponent, ReceiverContext,
};

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtocolConfig {
    pub endpoint: SocketAddr,
    /// Largest request accepted, after decompression.
    #[serde(default = "default_max_size")]
    pub max_recv_msg_size: ByteSize,
    #[serde(default)]
    pub tls: Option<TlsServerConfig>,
}

fn default_max_size() -> ByteSize {
    ByteSize(4 << 20)
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProtocolOverrides {
    #[serde(default)]
    endpoint: Option<SocketAddr>,
    #[serde(default)]
    max_recv_msg_size: Option<ByteSize>,
    #[serde(default)]
    tls: Option<TlsServerConfig>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProtocolsConfig {
    /// Present (even empty) = enabled.
    #[serde(default, deserialize_with = "present")]
    grpc: Option<ProtocolOverrides>,
    #[serde(default, deserialize_with = "present")]
    http: Option<ProtocolOverrides>,
}

/// `grpc:` with an empty body means "enabled with defaults", not "absent".
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<ProtocolOverrides>, D::Error> {
    Ok(Some(
        Option::<ProtocolOverrides>::deserialize(d)?.unwrap_or_default(),
    ))
}

/// `receivers.otlp` as written; [`OtlpReceiverConfig`] is what it resolves to.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Both protocols on their default endpoints when left out.
    #[serde(default)]
    protocols: Option<ProtocolsConfig>,
}

/// The receiver's resolved configuration.
#[derive(Clone, Debug)]
pub struct OtlpReceiverConfig {
    pub grpc: Option<ProtocolConfig>,
    pub http: Option<ProtocolConfig>,
}

fn resolve(o: Option<ProtocolOverrides>, default_port: u16) -> Option<ProtocolConfig> {
    o.map(|o| ProtocolConfig {
        endpoint: o
            .endpoint
            .unwrap_or_else(|| ([127, 0, 0, 1], default_port).into()),
        max_recv_msg_size: o.max_recv_msg_size.unwrap_or_else(default_max_size),
        tls: o.tls,
    })
}

pub struct OtlpReceiverFactory;

impl Component for OtlpReceiverFactory {
    type Config = RawConfig;
    const TYPE_NAME: &'static str = "otlp";
    const DESCRIPTION: &'static str =
        "Accepts OTLP metrics and traces over gRPC (4317) and HTTP/protobuf (4318)";
    const SIGNALS: &'static [SignalKind] = &[SignalKind::Metrics, SignalKind::Traces];
}

impl ReceiverComponent for OtlpReceiverFactory {
    fn build(&self, raw: RawConfig, ctx: &BuildContext) -> Result<Box<dyn Receiver>, ConfigErrors> {
        let protocols = raw.protocols.unwrap_or(ProtocolsConfig {
            grpc: Some(Default::default()),
            http: Some(Default::default()),
        });
        let cfg = OtlpReceiverConfig {
            grpc: resolve(protocols.grpc, 4317),
            http: resolve(protocols.http, 4318),
        };
        let mut errors = ConfigErrors::new();
        if cfg.grpc.is_none() && cfg.http.is_none() {
            errors.push("protocols", "enable at least one of grpc and http");
        }
        let mut tls = [None, None];
        for (i, (name, p)) in [("grpc", &cfg.grpc), ("http", &cfg.http)]
            .into_iter()
            .enumerate()
        {
            let Some(p) = p else { continue };
            let field = format!("protocols.{name}");
            if p.max_recv_msg_size.0 == 0 {
                errors.push(format!("{field}.max_recv_msg_size"), "must be above zero");
            }
            if let Some(t) = &p.tls {
                let alpn: &[&[u8]] = if name == "grpc" {
                    &[b"h2"]
                } else {
                    &[b"http/1.1"]
                };
                match t.build(&format!("{}.{field}.tls", ctx.path), alpn) {
                    Ok(c) => tls[i] = Some(c),
                    Err(e) => errors.push(format!("{field}.tls"), e),
                }
            }
        }
        let [grpc_tls, http_tls] = tls;
        errors.or_ok(Box::new(OtlpReceiver {
            path: ctx.path.clone(),
            config: cfg,
            grpc_tls,
            http_tls,
        }) as Box<dyn Receiver>)
    }
}

pub struct OtlpReceiver {
    path: String,
    config: OtlpReceiverConfig,
    grpc_tls: Option<Arc<rustls::ServerConfig>>,
    http_tls: Option<Arc<rustls::ServerConfig>>,
}

/// Why a request was not taken.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// The payload is malformed.
    Invalid(String),
    /// A pipeline is full or shutting down: the sender should retry.
    Busy,
    /// No pipeline of this signal is fed by this receiver.
    NotWanted(SignalKind),
}

/// What both transports share: decoding into tapline's model and handing on.
#[derive(Clone)]
pub(crate) struct Intake {
    pub(crate) id: Arc<str>,
    pub(crate) output: ReceiverOutput,
}

impl Intake {
    fn hand_on(&self, signal: Signal) -> Result<(), Refusal> {
        let kind = signal.kind();
        if !self.output.wants(kind) {
            return Err(Refusal::NotWanted(kind));
        }
        if signal.item_count() == 0 {
            return Ok(());
        }
        match self.output.try_send(signal) {
            Ok(()) => Ok(()),
            Err(SendError::Full) | Err(SendError::Closed) => Err(Refusal::Busy),
            Err(SendError::NotConnected(k)) => Err(Refusal::NotWanted(k)),
        }
    }

    /// Returns how many data points were skipped (unsupported types).
    pub(crate) fn metrics(&self, req: &ExportMetricsServiceRequest) -> Result<usize, Refusal> {
        if !self.output.wants(SignalKind::Metrics) {
            return Err(Refusal::NotWanted(SignalKind::Metrics));
        }
        let (metrics, skipped) =
            metrics_from_proto(req).map_err(|e| Refusal::Invalid(e.to_string()))?;
        self.hand_on(Signal::Metrics(metrics))?;
        Ok(skipped)
    }

    pub(crate) fn traces(&self, req: &ExportTraceServiceRequest) -> Result<(), Refusal> {
        if !self.output.wants(SignalKind::Traces) {
            return Err(Refusal::NotWanted(SignalKind::Traces));
        }
        let traces = traces_from_proto(req).map_err(|e| Refusal::Invalid(e.to_string()))?;
        self.hand_on(Signal::Traces(traces))
    }

    pub(crate) fn not_wanted_message(&self, kind: SignalKind) -> String {
        format!(
            "receiver {} feeds no {kind} pipeline; {kind} sent here are not accepted",
            self.id
        )
    }
}

/// Message for skipped exponential histograms and summaries.
pub(crate) fn skipped_message(n: usize) -> String {
    format!("{n} data points of exponential histograms or summaries were rejected: tapline does not support these types")
}

/// How long servers may take to finish open requests at shutdown.
const STOP_GRACE: Duration = Duration::from_secs(5);

#[async_trait]
impl Receiver for OtlpReceiver {
    /// Ready once its listeners are bound.
    fn reports_readiness(&self) -> bool {
        true
    }

    async fn run(self: Box<Self>, ctx: ReceiverContext) -> anyhow::Result<()> {
        let intake = Intake {
            id: ctx.id.to_string().into(),
            output: ctx.output,
        };
        let mut servers = Vec::new();
        if let Some(g) = &self.config.grpc {
            let listener = tokio::net::TcpListener::bind(g.endpoint)
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "{}.protocols.grpc.endpoint: cannot listen on {}: {e}",
                        self.path,
                        g.endpoint
                    )
                })?;
            tracing::info!(receiver = %ctx.id, endpoint = %g.endpoint, "OTLP/gRPC listening");
            servers.push(tokio::spawn(grpc::serve(
                listener,
                g.clone(),
                self.grpc_tls.clone(),
                intake.clone(),
                ctx.shutdown.clone(),
            )));
        }
        if let Some(h) = &self.config.http {
            let listener = tokio::net::TcpListener::bind(h.endpoint)
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "{}.protocols.http.endpoint: cannot listen on {}: {e}",
                        self.path,
                        h.endpoint
                    )
                })?;
            tracing::info!(receiver = %ctx.id, endpoint = %h.endpoint, "OTLP/HTTP listening");
            servers.push(tokio::spawn(http::serve(
                listener,
                h.clone(),
                self.http_tls.clone(),
                intake.clone(),
                ctx.shutdown.clone(),
            )));
        }
        let endpoints: Vec<String> = [
            self.config
                .grpc
                .as_ref()
                .map(|g| format!("gRPC on {}", g.endpoint)),
            self.config
                .http
                .as_ref()
                .map(|h| format!("HTTP on {}", h.endpoint)),
        ]
        .into_iter()
        .flatten()
        .collect();
        ctx.readiness
            .ready(format!("listening: {}", endpoints.join(", ")));
        // Our own copy of the output must go, or the pipelines would never drain.
        drop(intake);
        ctx.shutdown.cancelled().await;
        for s in servers {
            let abort = s.abort_handle();
            match tokio::time::timeout(STOP_GRACE, s).await {
                Ok(Ok(Err(e))) => {
                    tracing::warn!(receiver = %ctx.id, error = %e, "OTLP server failed")
                }
                Ok(_) => {}
                Err(_) => abort.abort(),
            }
        }
        Ok(())
    }
}
