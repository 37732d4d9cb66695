//! OTLP/gRPC load generator for the pass-through benchmark (`scripts/bench otlp-passthrough`).
//!
//! Sends one pre-encoded `ExportTraceServiceRequest` of `--batch` spans over `--connections`
//! concurrent streams for `--seconds`, as fast as the target acknowledges, and prints the
//! spans the target accepted (`accepted_spans=N refused_requests=M`). The request is encoded
//! once so that the generator spends its CPU on sending, not on protobuf.
//!
//! `cargo run --release -p tapline-exporters --example otlp_load -- 127.0.0.1:4317 --seconds 10`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1 as pc;
use opentelemetry_proto::tonic::resource::v1 as pr;
use opentelemetry_proto::tonic::trace::v1 as pt;
use prost::Message;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

/// Sends bytes that are already a protobuf message; ignores the response body.
#[derive(Clone, Default)]
struct RawCodec;
struct RawEncoder;
struct DiscardDecoder;

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = tonic::Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for DiscardDecoder {
    type Item = ();
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<()>, tonic::Status> {
        let n = src.remaining();
        src.advance(n);
        Ok(Some(()))
    }
}

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = ();
    type Encoder = RawEncoder;
    type Decoder = DiscardDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> DiscardDecoder {
        DiscardDecoder
    }
}

fn kv(k: &str, v: pc::any_value::Value) -> pc::KeyValue {
    pc::KeyValue {
        key: k.into(),
        value: Some(pc::AnyValue { value: Some(v) }),
    }
}

fn request(spans: usize) -> Bytes {
    use pc::any_value::Value as V;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let req = ExportTraceServiceRequest {
        resource_spans: vec![pt::ResourceSpans {
            resource: Some(pr::Resource {
                attributes: vec![
                    kv("service.name", V::StringValue("loadgen".into())),
                    kv("host.name", V::StringValue("bench".into())),
                ],
                ..Default::default()
            }),
            scope_spans: vec![pt::ScopeSpans {
                scope: Some(pc::InstrumentationScope {
                    name: "otlp_load".into(),
                    ..Default::default()
                }),
                spans: (0..spans)
                    .map(|i| pt::Span {
                        trace_id: [(i % 251) as u8; 16].to_vec(),
                        span_id: (i as u64 + 1).to_be_bytes().to_vec(),
                        name: format!("GET /api/item/{}", i % 20),
                        kind: pt::span::SpanKind::Server as i32,
                        start_time_unix_nano: now,
                        end_time_unix_nano: now + 1_000_000,
                        attributes: vec![
                            kv("http.request.method", V::StringValue("GET".into())),
                            kv(
                                "http.route",
                                V::StringValue(format!("/api/item/{}", i % 20)),
                            ),
                            kv("http.response.status_code", V::IntValue(200)),
                            kv("server.address", V::StringValue("10.0.0.7".into())),
                            kv("server.port", V::IntValue(8080)),
                        ],
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    Bytes::from(req.encode_to_vec())
}

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}: cannot parse {v:?}"))
        })
        .unwrap_or(default)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let target = args
        .get(1)
        .filter(|a| !a.starts_with("--"))
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:4317".into());
    let seconds: u64 = arg(&args, "--seconds", 10);
    let batch: usize = arg(&args, "--batch", 1000);
    let connections: usize = arg(&args, "--connections", 4);
    let body = request(batch);
    let accepted = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    );
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{target}"))
            .expect("target")
            .connect()
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {target}: {e}"));
        let (body, accepted, refused, path) = (
            body.clone(),
            accepted.clone(),
            refused.clone(),
            path.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut grpc = tonic::client::Grpc::new(channel);
            while Instant::now() < deadline {
                if grpc.ready().await.is_err() {
                    break;
                }
                match grpc
                    .unary::<Bytes, (), _>(
                        tonic::Request::new(body.clone()),
                        path.clone(),
                        RawCodec,
                    )
                    .await
                {
                    Ok(_) => {
                        accepted.fetch_add(batch as u64, Ordering::Relaxed);
                    }
                    Err(_) => {
                        refused.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    println!(
        "accepted_spans={} refused_requests={} seconds={seconds} batch={batch} connections={connections}",
        accepted.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed)
    );
}
