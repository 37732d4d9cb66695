//! OTLP over HTTP/protobuf: `POST /v1/metrics` and `POST /v1/traces`.

use std::io::Read as _;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use tapline_core::tls::TlsListener;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{skipped_message, Intake, ProtocolConfig, Refusal};

const PROTOBUF: &str = "application/x-protobuf";

#[derive(Clone)]
struct HttpState {
    intake: Intake,
    limit: usize,
}

// google.rpc.Status, the body of OTLP/HTTP error responses.
#[derive(Clone, PartialEq, Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

fn error(status: StatusCode, grpc_code: i32, message: String) -> Response {
    let body = RpcStatus {
        code: grpc_code,
        message,
    }
    .encode_to_vec();
    let mut resp = (status, [(header::CONTENT_TYPE, PROTOBUF)], body).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    }
    resp
}

fn refusal(state: &HttpState, r: Refusal) -> Response {
    match r {
        Refusal::Invalid(m) => error(StatusCode::BAD_REQUEST, 3, m),
        Refusal::Busy => error(
            StatusCode::SERVICE_UNAVAILABLE,
            14,
            "the pipeline is full; retry later (tapline applies back-pressure)".into(),
        ),
        Refusal::NotWanted(kind) => error(
            StatusCode::NOT_FOUND,
            12,
            state.intake.not_wanted_message(kind),
        ),
    }
}

/// Checks the content type and undoes `Content-Encoding`, never past `limit` bytes.
/// A refused request: HTTP status, the matching gRPC code, and the message.
type Rejection = (StatusCode, i32, String);

fn body_of(headers: &HeaderMap, body: Bytes, limit: usize) -> Result<Bytes, Rejection> {
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ctype.starts_with(PROTOBUF) {
        return Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            3,
            format!("content type {ctype:?} is not supported; send {PROTOBUF} (OTLP/HTTP JSON is not accepted)"),
        ));
    }
    match headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
    {
        None | Some("") | Some("identity") => Ok(body),
        Some("gzip") => {
            let mut out = Vec::with_capacity((body.len() * 4).min(limit));
            let mut dec = flate2::read::GzDecoder::new(&body[..]).take(limit as u64 + 1);
            dec.read_to_end(&mut out).map_err(|e| {
                (
                    StatusCode::BAD_REQUEST,
                    3,
                    format!("the gzip body cannot be decompressed: {e}"),
                )
            })?;
            if out.len() > limit {
                return Err((
                    StatusCode::PAYLOAD_TOO_LARGE,
                    8,
                    format!("the decompressed body exceeds max_recv_msg_size ({limit} bytes)"),
                ));
            }
            Ok(out.into())
        }
        Some(other) => Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            3,
            format!("content encoding {other:?} is not supported; use gzip or none"),
        )),
    }
}

async fn metrics(State(state): State<HttpState>, headers: HeaderMap, body: Bytes) -> Response {
    let body = match body_of(&headers, body, state.limit) {
        Ok(b) => b,
        Err((status, code, message)) => return error(status, code, message),
    };
    let req = match ExportMetricsServiceRequest::decode(body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                3,
                format!("the body is not an OTLP ExportMetricsServiceRequest: {e}"),
            )
        }
    };
    match state.intake.metrics(&req) {
        Ok(skipped) => {
            let resp = ExportMetricsServiceResponse {
                partial_success: (skipped > 0).then(|| ExportMetricsPartialSuccess {
                    rejected_data_points: skipped as i64,
                    error_message: skipped_message(skipped),
                }),
            };
            ([(header::CONTENT_TYPE, PROTOBUF)], resp.encode_to_vec()).into_response()
        }
        Err(r) => refusal(&state, r),
    }
}

async fn traces(State(state): State<HttpState>, headers: HeaderMap, body: Bytes) -> Response {
    let body = match body_of(&headers, body, state.limit) {
        Ok(b) => b,
        Err((status, code, message)) => return error(status, code, message),
    };
    let req = match ExportTraceServiceRequest::decode(body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                3,
                format!("the body is not an OTLP ExportTraceServiceRequest: {e}"),
            )
        }
    };
    match state.intake.traces(&req) {
        Ok(()) => (
            [(header::CONTENT_TYPE, PROTOBUF)],
            ExportTraceServiceResponse {
                partial_success: None,
            }
            .encode_to_vec(),
        )
            .into_response(),
        Err(r) => refusal(&state, r),
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
    let app = axum::Router::new()
        .route("/v1/metrics", axum::routing::post(metrics))
        .route("/v1/traces", axum::routing::post(traces))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(HttpState { intake, limit });
    let stop = async move { shutdown.cancelled().await };
    let endpoint = cfg.endpoint;
    let result = match tls {
        None => {
            use axum::serve::ListenerExt as _;
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await
        }
        Some(tls) => {
            axum::serve(TlsListener::new(listener, tls)?, app)
                .with_graceful_shutdown(stop)
                .await
        }
    };
    result.map_err(|e| anyhow::anyhow!("OTLP/HTTP server on {endpoint}: {e}"))
}
