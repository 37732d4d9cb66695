//! OTLP encoding + export of spans against a local OTLP/gRPC and OTLP/HTTP receiver.
//!
//! The receiving side is a minimal server in this process that decodes each request and
//! discards it, so the figure is the exporter's cost (conversion from tapline's model,
//! protobuf encoding, transport) plus the receiver's decode. Run:
//! Times are the process's CPU time, so the throughput is spans per CPU-second (per core)
//! even when other work shares the machine.
//! `cargo bench -p tapline-exporters --bench otlp_export`

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tapline_core::component::Exporter;
use tapline_core::data::*;
use tapline_exporters::otlp::{OtlpConfig, OtlpExporter, Protocol};

const SPANS_PER_BATCH: usize = 1000;

struct Sink;

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        std::hint::black_box(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

async fn grpc_sink() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(Sink).max_decoding_message_size(64 << 20))
            .serve_with_incoming(
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            ),
    );
    addr
}

/// `decode`: the sink decodes each request as a real receiver would; otherwise it only reads
/// the body, so the figure is the exporter's own cost.
async fn http_sink(decode: bool) -> SocketAddr {
    use prost::Message;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route(
            "/v1/traces",
            axum::routing::post(move |body: axum::body::Bytes| async move {
                if decode {
                    std::hint::black_box(ExportTraceServiceRequest::decode(body).unwrap());
                } else {
                    std::hint::black_box(body.len());
                }
                ExportTraceServiceResponse {
                    partial_success: None,
                }
                .encode_to_vec()
            }),
        )
        .layer(axum::extract::DefaultBodyLimit::max(64 << 20));
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// Spans shaped like the app receiver's: HTTP server spans with a handful of attributes.
fn batch() -> SharedSignal {
    let resource = Resource::new(
        [
            ("service.name", Value::from("checkout")),
            ("host.name", Value::from("node-1")),
            ("process.pid", Value::Int(4242)),
        ]
        .into_iter()
        .collect(),
    );
    let routes: Vec<Str> = (0..20)
        .map(|i| Str::from(format!("/api/v1/item/{i}")))
        .collect();
    let spans = (0..SPANS_PER_BATCH)
        .map(|i| {
            let mut attributes = Attributes::with_capacity(6);
            attributes.push("http.request.method", "GET");
            attributes.push("http.route", routes[i % routes.len()].clone());
            attributes.push("http.response.status_code", 200i64);
            attributes.push("server.address", "10.0.0.7");
            attributes.push("server.port", 8080u16);
            attributes.push("network.protocol.version", "1.1");
            let mut trace_id = [0u8; 16];
            trace_id[..8].copy_from_slice(&(i as u64).to_be_bytes());
            Span {
                trace_id,
                span_id: (i as u64 + 1).to_be_bytes(),
                parent_span_id: [0; 8],
                name: Str::from(format!("GET {}", routes[i % routes.len()])),
                kind: SpanKind::Server,
                start_time_ns: 1_700_000_000_000_000_000 + i as u64,
                end_time_ns: 1_700_000_000_001_000_000 + i as u64,
                attributes,
                status: StatusCode::Unset,
                status_message: Str::default(),
            }
        })
        .collect();
    Arc::new(Signal::Traces(Traces {
        resource_spans: vec![ResourceSpans {
            resource,
            scope: "tapline.app".into(),
            spans,
        }],
    }))
}

fn exporter(protocol: Protocol, addr: SocketAddr) -> OtlpExporter {
    let cfg = OtlpConfig {
        protocol: Some(protocol),
        endpoint: Some(format!("http://{addr}")),
        ..Default::default()
    };
    let ctx = tapline_test_support::build_context("otlp/bench");
    OtlpExporter::new(&cfg, "exporters.otlp/bench", &ctx, &|_| None).unwrap()
}

/// CPU time of the whole process (exporter, sink, runtime): on a machine shared with other
/// work, CPU time rather than wall time gives the "per core" figure.
fn process_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let batch = batch();
    // Times are process CPU time (see `process_cpu_time`), so throughput is spans per CPU-second.
    let mut group = c.benchmark_group("otlp_export_spans_cpu");
    group.throughput(Throughput::Elements(SPANS_PER_BATCH as u64));
    let (grpc, http, http_raw) = rt.block_on(async {
        (
            grpc_sink().await,
            http_sink(true).await,
            http_sink(false).await,
        )
    });
    for (name, protocol, addr) in [
        ("grpc_decoding_sink", Protocol::Grpc, grpc),
        ("http_protobuf_decoding_sink", Protocol::HttpProtobuf, http),
        (
            "http_protobuf_discarding_sink",
            Protocol::HttpProtobuf,
            http_raw,
        ),
    ] {
        let mut exp = exporter(protocol, addr);
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let start = process_cpu_time();
                for _ in 0..iters {
                    rt.block_on(exp.export(batch.clone())).unwrap();
                }
                process_cpu_time() - start
            })
        });
    }
    // What the exporter does per batch before the transport: tapline model → OTLP bytes.
    group.bench_function("encode_only", |b| {
        let Signal::Traces(t) = &*batch else {
            unreachable!()
        };
        b.iter_custom(|iters| {
            let start = process_cpu_time();
            for _ in 0..iters {
                std::hint::black_box(tapline_core::data::otlp::encode_traces_request(t));
            }
            process_cpu_time() - start
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
