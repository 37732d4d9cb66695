//! Sending one encoded request over gRPC or HTTP/protobuf, and judging the answer:
//! delivered, worth retrying (with the server's requested delay, if any), or refused for good.

use std::io::Write as _;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use bytes::{Buf, BufMut};
use flate2::write::GzEncoder;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use tapline_core::data::SignalKind;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::{MetadataKey, MetadataValue};
use tonic::transport::{Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::Code;

use super::config::{Compression, Protocol, SignalSettings};
use super::tls::ClientTls;

/// The answer to one attempt.
#[derive(Debug)]
pub enum Outcome {
    /// Delivered; the server may have rejected part of it (partial success).
    Delivered {
        rejected: i64,
        message: String,
    },
    Retryable {
        message: String,
        /// What the server asked for (gRPC RetryInfo, HTTP Retry-After).
        delay: Option<Duration>,
    },
    Permanent {
        message: String,
    },
}

/// One request, encoded once: every attempt, over either transport, sends these bytes.
#[derive(Clone, Debug)]
pub struct Request {
    pub kind: SignalKind,
    pub body: Bytes,
}

impl Request {
    pub fn metrics(m: &ExportMetricsServiceRequest) -> Request {
        Request {
            kind: SignalKind::Metrics,
            body: m.encode_to_vec().into(),
        }
    }
    pub fn traces(t: &ExportTraceServiceRequest) -> Request {
        Request {
            kind: SignalKind::Traces,
            body: t.encode_to_vec().into(),
        }
    }
    /// The server's partial-success report in a response body, if any.
    fn partial(&self, response: &[u8]) -> Option<(i64, String)> {
        match self.kind {
            SignalKind::Metrics => ExportMetricsServiceResponse::decode(response)
                .ok()?
                .partial_success
                .map(|p| (p.rejected_data_points, p.error_message)),
            SignalKind::Traces => ExportTraceServiceResponse::decode(response)
                .ok()?
                .partial_success
                .map(|p| (p.rejected_spans, p.error_message)),
        }
    }
    fn grpc_path(&self) -> tonic::codegen::http::uri::PathAndQuery {
        tonic::codegen::http::uri::PathAndQuery::from_static(match self.kind {
            SignalKind::Metrics => {
                "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
            }
            SignalKind::Traces => "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        })
    }
}

/// A gRPC codec for messages that are already encoded: sends the bytes as they are and
/// hands back the response message's bytes.
#[derive(Clone, Copy, Default)]
struct EncodedCodec;
struct EncodedEncoder;
struct EncodedDecoder;

impl Encoder for EncodedEncoder {
    type Item = Bytes;
    type Error = tonic::Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for EncodedDecoder {
    type Item = Bytes;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, tonic::Status> {
        let n = src.remaining();
        Ok(Some(src.copy_to_bytes(n)))
    }
}

impl Codec for EncodedCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = EncodedEncoder;
    type Decoder = EncodedDecoder;
    fn encoder(&mut self) -> EncodedEncoder {
        EncodedEncoder
    }
    fn decoder(&mut self) -> EncodedDecoder {
        EncodedDecoder
    }
}

// google.rpc.Status and RetryInfo, as carried in `grpc-status-details-bin`.
#[derive(Clone, PartialEq, Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<ProtoAny>,
}
#[derive(Clone, PartialEq, Message)]
struct ProtoAny {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}
#[derive(Clone, PartialEq, Message)]
struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    retry_delay: Option<ProtoDuration>,
}
#[derive(Clone, PartialEq, Message)]
struct ProtoDuration {
    #[prost(int64, tag = "1")]
    seconds: i64,
    #[prost(int32, tag = "2")]
    nanos: i32,
}

const RETRY_INFO_TYPE: &str = "type.googleapis.com/google.rpc.RetryInfo";

/// The delay in a status's RetryInfo detail, if it has one.
fn retry_info(details: &[u8]) -> Option<Duration> {
    let status = RpcStatus::decode(details).ok()?;
    let any = status
        .details
        .iter()
        .find(|d| d.type_url == RETRY_INFO_TYPE)?;
    let d = RetryInfo::decode(any.value.as_slice()).ok()?.retry_delay?;
    Some(Duration::new(
        d.seconds.max(0) as u64,
        d.nanos.max(0) as u32,
    ))
}

/// Encodes a RetryInfo status detail; for tests and servers that want to ask for a delay.
pub fn retry_info_details(code: i32, message: &str, delay: Duration) -> Vec<u8> {
    RpcStatus {
        code,
        message: message.to_string(),
        details: vec![ProtoAny {
            type_url: RETRY_INFO_TYPE.into(),
            value: RetryInfo {
                retry_delay: Some(ProtoDuration {
                    seconds: delay.as_secs() as i64,
                    nanos: delay.subsec_nanos() as i32,
                }),
            }
            .encode_to_vec(),
        }],
    }
    .encode_to_vec()
}

/// Judges a gRPC status the way the OTLP specification says.
pub fn judge_grpc(status: &tonic::Status) -> Outcome {
    let mut message = format!("gRPC {:?}: {}", status.code(), status.message());
    let mut source = std::error::Error::source(status);
    // A failure to connect (refused, reset, TLS handshake) carries the transport error as
    // its source; no server answered, so it is worth retrying like UNAVAILABLE.
    let transport = source.is_some_and(|s| s.is::<tonic::transport::Error>());
    while let Some(s) = source {
        message.push_str(&format!(": {s}"));
        source = s.source();
    }
    let delay = retry_info(status.details());
    if transport {
        return Outcome::Retryable { message, delay };
    }
    match status.code() {
        Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unavailable
        | Code::DataLoss => Outcome::Retryable { message, delay },
        // Only worth retrying when the server says when.
        Code::ResourceExhausted if delay.is_some() => Outcome::Retryable { message, delay },
        _ => Outcome::Permanent { message },
    }
}

/// `Retry-After`: seconds, or an HTTP date.
fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// Judges an HTTP answer the way the OTLP specification says.
pub fn judge_http(status: u16, retry_after: Option<&str>, body: &[u8]) -> Outcome {
    // Error bodies are a google.rpc.Status; fall back to the text.
    let detail = RpcStatus::decode(body)
        .ok()
        .map(|s| s.message)
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned());
    let message = format!("HTTP {status}: {}", detail.trim());
    match status {
        429 | 502 | 503 | 504 => Outcome::Retryable {
            message,
            delay: retry_after.and_then(parse_retry_after),
        },
        _ => Outcome::Permanent { message },
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(
        Vec::with_capacity(data.len() / 4),
        flate2::Compression::fast(),
    );
    // Writing to a Vec cannot fail.
    let _ = enc.write_all(data);
    enc.finish().unwrap_or_default()
}

type HttpClient = Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

/// Largest response body read from an OTLP/HTTP server.
const MAX_RESPONSE: usize = 4 << 20;

pub enum Transport {
    Grpc {
        client: tonic::client::Grpc<Channel>,
        headers: Vec<(
            MetadataKey<tonic::metadata::Ascii>,
            MetadataValue<tonic::metadata::Ascii>,
        )>,
        timeout: Duration,
    },
    Http {
        // Boxed: the HTTP client is several times the size of the gRPC one.
        client: Box<HttpClient>,
        url: hyper::Uri,
        headers: Vec<(hyper::header::HeaderName, hyper::header::HeaderValue)>,
        gzip: bool,
    },
}

impl Transport {
    /// Builds the client without connecting: a server that is down at start is retried
    /// like any other failure.
    pub fn new(
        s: &SignalSettings,
        tls: Option<&ClientTls>,
        path: &str,
    ) -> Result<Transport, String> {
        match s.protocol {
            Protocol::Grpc => {
                let mut endpoint = Endpoint::from_shared(s.url.clone())
                    .map_err(|e| format!("{path}.endpoint: {:?}: {e}", s.url))?
                    .timeout(s.timeout)
                    .connect_timeout(s.timeout.min(Duration::from_secs(5)));
                if s.tls {
                    let tls = tls.ok_or_else(|| format!("{path}.tls: missing"))?;
                    let mut cfg = ClientTlsConfig::new();
                    if let Some((c, k)) = &tls.identity_pem {
                        cfg = cfg.identity(Identity::from_pem(c, k));
                    }
                    endpoint = endpoint
                        .tls_config_with_verifier(cfg, tls.verifier.clone())
                        .map_err(|e| format!("{path}.tls: {e}"))?;
                }
                let channel = endpoint.connect_lazy();
                let mut client =
                    tonic::client::Grpc::new(channel).max_decoding_message_size(MAX_RESPONSE);
                if s.compression == Compression::Gzip {
                    client = client.send_compressed(CompressionEncoding::Gzip);
                }
                let mut headers = Vec::new();
                for (k, v) in &s.headers {
                    let key = MetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes())
                        .map_err(|e| format!("{path}.headers: {k:?}: {e}"))?;
                    let value = MetadataValue::try_from(v.as_str())
                        .map_err(|e| format!("{path}.headers.{k}: {e}"))?;
                    headers.push((key, value));
                }
                Ok(Transport::Grpc {
                    client,
                    headers,
                    timeout: s.timeout,
                })
            }
            Protocol::HttpProtobuf => {
                let builder = hyper_rustls::HttpsConnectorBuilder::new();
                let connector = match tls {
                    Some(tls) if s.tls => builder
                        .with_tls_config(tls.rustls_config(&[], path)?)
                        .https_or_http(),
                    _ => builder
                        .with_tls_config(
                            ClientTls::new(&Default::default(), path)?.rustls_config(&[], path)?,
                        )
                        .https_or_http(),
                }
                .enable_http1()
                .build();
                let client = Client::builder(TokioExecutor::new())
                    .pool_idle_timeout(Duration::from_secs(30))
                    .build(connector);
                let mut headers = Vec::new();
                for (k, v) in &s.headers {
                    let key = hyper::header::HeaderName::from_bytes(k.as_bytes())
                        .map_err(|e| format!("{path}.headers: {k:?}: {e}"))?;
                    let value = hyper::header::HeaderValue::from_str(v)
                        .map_err(|e| format!("{path}.headers.{k}: {e}"))?;
                    headers.push((key, value));
                }
                Ok(Transport::Http {
                    client: Box::new(client),
                    url: s
                        .url
                        .parse()
                        .map_err(|e| format!("{path}.endpoint: {:?}: {e}", s.url))?,
                    headers,
                    gzip: s.compression == Compression::Gzip,
                })
            }
        }
    }

    /// Sends once.
    pub async fn send(&mut self, req: &Request) -> Outcome {
        match self {
            Transport::Grpc {
                client,
                headers,
                timeout,
            } => {
                let mut request = tonic::Request::new(req.body.clone());
                for (k, v) in headers.iter() {
                    request.metadata_mut().insert(k.clone(), v.clone());
                }
                request.set_timeout(*timeout);
                if let Err(e) = client.ready().await {
                    return Outcome::Retryable {
                        message: format!("gRPC channel not ready: {e}"),
                        delay: None,
                    };
                }
                match client.unary(request, req.grpc_path(), EncodedCodec).await {
                    Ok(resp) => {
                        let (rejected, message) = req.partial(resp.get_ref()).unwrap_or_default();
                        Outcome::Delivered { rejected, message }
                    }
                    Err(status) => judge_grpc(&status),
                }
            }
            Transport::Http {
                client,
                url,
                headers,
                gzip: compress,
            } => {
                let body = if *compress {
                    Bytes::from(gzip(&req.body))
                } else {
                    req.body.clone()
                };
                let mut builder = hyper::Request::post(url.clone())
                    .header(hyper::header::CONTENT_TYPE, "application/x-protobuf");
                if *compress {
                    builder = builder.header(hyper::header::CONTENT_ENCODING, "gzip");
                }
                for (k, v) in headers.iter() {
                    builder = builder.header(k, v);
                }
                let request = match builder.body(Full::new(body)) {
                    Ok(r) => r,
                    Err(e) => {
                        return Outcome::Permanent {
                            message: format!("building the HTTP request: {e}"),
                        }
                    }
                };
                let attempt = async {
                    let resp = client.request(request).await.map_err(|e| {
                        // Connection refused, reset, DNS: the server may come back.
                        let mut msg = format!("sending to {url}: {e}");
                        let mut src = std::error::Error::source(&e);
                        while let Some(s) = src {
                            msg.push_str(&format!(": {s}"));
                            src = s.source();
                        }
                        msg
                    })?;
                    let status = resp.status().as_u16();
                    let retry_after = resp
                        .headers()
                        .get(hyper::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    let body = Limited::new(resp.into_body(), MAX_RESPONSE)
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    Ok::<_, String>((status, retry_after, body))
                };
                // The exporter helper bounds the attempt by `timeout`.
                match attempt.await {
                    Err(message) => Outcome::Retryable {
                        message,
                        delay: None,
                    },
                    Ok((status, _, body)) if (200..300).contains(&status) => {
                        let partial = req.partial(&body);
                        let (rejected, message) = partial.unwrap_or_default();
                        Outcome::Delivered { rejected, message }
                    }
                    Ok((status, retry_after, body)) => {
                        judge_http(status, retry_after.as_deref(), &body)
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_codes_are_judged_per_the_specification() {
        let retry = |o: Outcome| matches!(o, Outcome::Retryable { .. });
        assert!(retry(judge_grpc(&tonic::Status::unavailable("down"))));
        assert!(!retry(judge_grpc(&tonic::Status::invalid_argument("bad"))));
        assert!(!retry(judge_grpc(&tonic::Status::resource_exhausted(
            "full"
        ))));
        let with_info = tonic::Status::with_details(
            Code::ResourceExhausted,
            "full",
            retry_info_details(8, "full", Duration::from_millis(1500)).into(),
        );
        match judge_grpc(&with_info) {
            Outcome::Retryable { delay, .. } => {
                assert_eq!(delay, Some(Duration::from_millis(1500)))
            }
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn http_statuses_are_judged_per_the_specification() {
        match judge_http(503, Some("7"), b"busy") {
            Outcome::Retryable { delay, message } => {
                assert_eq!(delay, Some(Duration::from_secs(7)));
                assert!(message.contains("busy"), "{message}");
            }
            o => panic!("{o:?}"),
        }
        assert!(matches!(
            judge_http(429, None, b""),
            Outcome::Retryable { delay: None, .. }
        ));
        assert!(matches!(
            judge_http(400, Some("1"), b"bad"),
            Outcome::Permanent { .. }
        ));
        assert!(matches!(
            judge_http(500, None, b""),
            Outcome::Permanent { .. }
        ));
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(30));
        match judge_http(502, Some(&later), b"") {
            Outcome::Retryable { delay: Some(d), .. } => assert!(d > Duration::from_secs(25)),
            o => panic!("{o:?}"),
        }
    }
}
