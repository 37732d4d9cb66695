//! OTLP over gRPC: the collector's `MetricsService` and `TraceService`.

use std::sync::Arc;

use futures::StreamExt;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tapline_core::tls::TlsListener;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::codec::CompressionEncoding;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

use super::{skipped_message, Intake, ProtocolConfig, Refusal};

fn status(intake: &Intake, r: Refusal) -> Status {
    match r {
        Refusal::Invalid(m) => Status::invalid_argument(m),
        Refusal::Busy => {
            Status::unavailable("the pipeline is full; retry later (tapline applies back-pressure)")
        }
        Refusal::NotWanted(kind) => Status::unimplemented(intake.not_wanted_message(kind)),
    }
}

#[derive(Clone)]
struct Service(Intake);

#[tonic::async_trait]
impl MetricsService for Service {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        let skipped = self
            .0
            .metrics(request.get_ref())
            .map_err(|r| status(&self.0, r))?;
        Ok(Response::new(ExportMetricsServiceResponse {
            partial_success: (skipped > 0).then(|| ExportMetricsPartialSuccess {
                rejected_data_points: skipped as i64,
                error_message: skipped_message(skipped),
            }),
        }))
    }
}

#[tonic::async_trait]
impl TraceService for Service {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        self.0
            .traces(request.get_ref())
            .map_err(|r| status(&self.0, r))?;
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

pub(super) async fn serve(
    listener: TcpListener,
    cfg: ProtocolConfig,
    tls: Option<Arc<rustls::ServerConfig>>,
    intake: Intake,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let limit = cfg.max_recv_msg_size.0 as usize;
    let svc = Service(intake);
    // Both services are always served; one whose signal no pipeline takes answers
    // UNIMPLEMENTED with a message saying so.
    let metrics = MetricsServiceServer::new(svc.clone())
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(limit);
    let traces = TraceServiceServer::new(svc)
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(limit);
    let router = tonic::transport::Server::builder()
        .add_service(metrics)
        .add_service(traces);
    let stop = async move { shutdown.cancelled().await };
    let endpoint = cfg.endpoint;
    let result = match tls {
        None => {
            router
                .serve_with_incoming_shutdown(
                    // Small responses must not wait for Nagle's algorithm.
                    TcpIncoming::from(listener).with_nodelay(Some(true)),
                    stop,
                )
                .await
        }
        Some(tls) => {
            use axum::serve::Listener as _;
            let listener = TlsListener::new(listener, tls)?;
            let incoming = futures::stream::unfold(listener, |mut l| async move {
                let (io, _) = l.accept().await;
                Some((Ok::<_, std::io::Error>(io), l))
            })
            .boxed();
            router.serve_with_incoming_shutdown(incoming, stop).await
        }
    };
    result.map_err(|e| anyhow::anyhow!("OTLP/gRPC server on {endpoint}: {e}"))
}
