//! The `otlp` receiver with the OpenTelemetry Python SDK as the sender
//! (`pip install opentelemetry-sdk opentelemetry-exporter-otlp-proto-grpc
//! opentelemetry-exporter-otlp-proto-http`): what the SDK sends is what reaches the exporter,
//! over gRPC and HTTP, gzip, TLS. Back-pressure, malformed payloads, size limits and
//! partial success are checked with a raw client that sends exactly the case under test.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::metrics::v1 as pm;
use opentelemetry_proto::tonic::trace::v1 as pt;
use prost::Message;
use tapline_core::data::*;
use tapline_core::pipeline::RunningGraph;
use tapline_core::telemetry::Telemetry;
use tapline_core::Registry;
use tapline_receivers::otlp::OtlpReceiverFactory;
use tapline_test_support::{eventually_async, free_port, start_graph, Collect};
use tokio::sync::Semaphore;

/// Starts the graph of `yaml` (the `otlp` receiver on `grpc` and `http`, feeding `collect`)
/// and waits until the receiver listens on both ports: it binds in its own task.
async fn start(
    yaml: &str,
    (grpc, http): (u16, u16),
    collect: &Collect,
    telemetry: &Telemetry,
) -> RunningGraph {
    let mut registry = Registry::new();
    registry
        .register_receiver(OtlpReceiverFactory)
        .register_exporter(collect.clone());
    let running = start_graph(yaml, &registry, telemetry).await.unwrap();
    eventually_async(
        "the otlp receiver to listen on both ports",
        Duration::from_secs(10),
        || {
            TcpStream::connect(("127.0.0.1", grpc)).is_ok()
                && TcpStream::connect(("127.0.0.1", http)).is_ok()
        },
    )
    .await;
    running
}

fn graph_yaml(grpc: u16, http: u16, extra: &str) -> String {
    format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{grpc}"{extra}}}
      http: {{endpoint: "127.0.0.1:{http}"{extra}}}
exporters:
  collect: {{}}
service:
  pipelines:
    metrics: {{receivers: [otlp], exporters: [collect]}}
    traces: {{receivers: [otlp], exporters: [collect]}}
"#
    )
}

fn python() -> String {
    let ok = Command::new("python3")
        .args(["-c", "import opentelemetry.sdk, opentelemetry.exporter.otlp.proto.grpc, opentelemetry.exporter.otlp.proto.http"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "python3 with the OpenTelemetry SDK is missing: pip install opentelemetry-sdk opentelemetry-exporter-otlp-proto-grpc opentelemetry-exporter-otlp-proto-http"
    );
    "python3".into()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Runs the Python sender; returns what it says it sent.
async fn python_send(
    protocol: &str,
    endpoint: &str,
    compression: &str,
    ca: Option<&std::path::Path>,
) -> serde_json::Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/otlp_support/sender.py");
    let mut cmd = tokio::process::Command::new(python());
    cmd.arg(script)
        .args([protocol, endpoint, compression])
        // `requests` lets these override the CA file the exporter is given.
        .env_remove("REQUESTS_CA_BUNDLE")
        .env_remove("CURL_CA_BUNDLE")
        .kill_on_drop(true);
    if let Some(ca) = ca {
        cmd.arg(ca);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("python sender took over 60s")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "sender failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sent: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| {
            panic!(
                "sender output: {e}: {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    // Shown when the test fails: the SDK logs export failures there.
    eprintln!("sender stderr:\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        sent["ok"],
        true,
        "the SDK reported a failed export: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    sent
}

fn check_sdk_data(capture: &Collect, sent: &serde_json::Value) {
    // Spans: ids, names, kinds, status, attributes of every type, resource and scope.
    let spans = capture.spans();
    assert_eq!(spans.len(), 2, "{spans:#?}");
    for want in sent["spans"].as_array().unwrap() {
        let (resource, scope, s) = spans
            .iter()
            .find(|(_, _, s)| s.name == want["name"].as_str().unwrap())
            .unwrap_or_else(|| panic!("span {} missing", want["name"]));
        assert_eq!(hex(&s.trace_id), want["trace_id"].as_str().unwrap());
        assert_eq!(hex(&s.span_id), want["span_id"].as_str().unwrap());
        assert_eq!(
            hex(&s.parent_span_id),
            want["parent_span_id"].as_str().unwrap()
        );
        assert_eq!(s.start_time_ns, want["start"].as_u64().unwrap());
        assert_eq!(s.end_time_ns, want["end"].as_u64().unwrap());
        assert_eq!(&**scope, "shop.tracer");
        assert_eq!(resource.attributes.get_str("service.name"), Some("py-shop"));
        assert_eq!(
            resource.attributes.get_str("deployment.environment"),
            Some("test")
        );
        assert_eq!(
            resource.attributes.get_str("telemetry.sdk.language"),
            Some("python")
        );
    }
    let checkout = &spans
        .iter()
        .find(|(_, _, s)| s.name == "checkout")
        .unwrap()
        .2;
    assert_eq!(checkout.kind, SpanKind::Server);
    assert_eq!(
        checkout.attributes.get("http.request.method"),
        Some(&Value::from("POST"))
    );
    assert_eq!(checkout.attributes.get("cart.items"), Some(&Value::Int(3)));
    assert_eq!(
        checkout.attributes.get("cart.total"),
        Some(&Value::Double(41.5))
    );
    assert_eq!(
        checkout.attributes.get("cart.gift"),
        Some(&Value::Bool(true))
    );
    let charge = &spans.iter().find(|(_, _, s)| s.name == "charge").unwrap().2;
    assert_eq!(charge.kind, SpanKind::Client);
    assert_eq!(charge.status, StatusCode::Error);
    assert_eq!(&*charge.status_message, "card declined");
    assert_eq!(
        charge.attributes.get("payment.provider"),
        Some(&Value::from("acme"))
    );

    // Metrics: the last value of each series (the SDK sends cumulative, possibly twice).
    let metrics = capture.metrics();
    let last = |name: &str| {
        metrics
            .iter()
            .rev()
            .find(|(_, _, m)| m.name == name)
            .unwrap_or_else(|| panic!("metric {name} missing: {metrics:#?}"))
            .clone()
    };
    let (resource, scope, orders) = last("orders.placed");
    assert_eq!(resource.attributes.get_str("service.name"), Some("py-shop"));
    assert_eq!(&*scope, "shop.meter");
    assert_eq!(&*orders.unit, "{order}");
    assert_eq!(&*orders.description, "Orders placed");
    match &orders.data {
        MetricData::Sum {
            temporality: Temporality::Cumulative,
            monotonic: true,
            points,
        } => {
            let v = |region: &str| {
                points
                    .iter()
                    .find(|p| p.attributes.get_str("region") == Some(region))
                    .map(|p| p.value)
            };
            assert_eq!(v("eu"), Some(Number::Int(12)));
            assert_eq!(v("us"), Some(Number::Int(1)));
            assert_eq!(points.len(), 2);
        }
        other => panic!("orders.placed: {other:?}"),
    }
    match &last("order.value").2.data {
        MetricData::Histogram {
            temporality: Temporality::Cumulative,
            points,
        } => {
            assert_eq!(points.len(), 1);
            let p = &points[0];
            assert_eq!(
                (p.count, p.sum, p.min, p.max),
                (3, 333.0, Some(3.0), Some(300.0))
            );
            // The SDK's default boundaries: 0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, ...
            assert_eq!(&p.bounds[..4], &[0.0, 5.0, 10.0, 25.0]);
            let bucket = |le: f64| p.bucket_counts[p.bounds.iter().position(|b| *b == le).unwrap()];
            assert_eq!((bucket(5.0), bucket(50.0), bucket(500.0)), (1, 1, 1));
            assert_eq!(p.bucket_counts.iter().sum::<u64>(), 3);
        }
        other => panic!("order.value: {other:?}"),
    }
    match &last("queue.size").2.data {
        MetricData::Sum {
            monotonic: false,
            points,
            ..
        } => assert_eq!(points[0].value, Number::Int(4)),
        other => panic!("queue.size: {other:?}"),
    }
    // The exponential histogram is not part of tapline's model: it is skipped, not forwarded.
    assert!(metrics.iter().all(|(_, _, m)| m.name != "latency.exp"));
}

async fn sdk_round_trip(protocol: &str, compression: &str) {
    let (grpc, http) = (free_port(), free_port());
    let capture = Collect::new();
    let telemetry = Telemetry::new();
    let running = start(
        &graph_yaml(grpc, http, ""),
        (grpc, http),
        &capture,
        &telemetry,
    )
    .await;
    let endpoint = match protocol {
        "grpc" => format!("http://127.0.0.1:{grpc}"),
        _ => format!("http://127.0.0.1:{http}"),
    };
    let sent = python_send(protocol, &endpoint, compression, None).await;
    running.shutdown(Duration::from_secs(5)).await;
    check_sdk_data(&capture, &sent);
    let receiver = [("kind", "receiver"), ("component", "otlp")];
    assert_eq!(
        telemetry.value("tapline_items_refused_total", &receiver),
        Some(0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_over_grpc_with_gzip_arrives_exactly() {
    tokio::time::timeout(Duration::from_secs(90), sdk_round_trip("grpc", "gzip"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_over_http_with_gzip_arrives_exactly() {
    tokio::time::timeout(Duration::from_secs(90), sdk_round_trip("http", "gzip"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_over_tls_on_both_protocols() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let dir = tempfile::tempdir().unwrap();
        // A CA and a server certificate it signs (strict verifiers refuse a self-signed leaf).
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "tapline test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &ca_cert, &ca_key)
            .unwrap();
        let (ca, c, k) = (
            dir.path().join("ca.pem"),
            dir.path().join("cert.pem"),
            dir.path().join("key.pem"),
        );
        std::fs::write(&ca, ca_cert.pem()).unwrap();
        std::fs::write(&c, leaf.pem()).unwrap();
        std::fs::write(&k, leaf_key.serialize_pem()).unwrap();
        let (grpc, http) = (free_port(), free_port());
        let tls = format!(
            ", tls: {{cert_file: {}, key_file: {}}}",
            c.display(),
            k.display()
        );
        for protocol in ["grpc", "http"] {
            let capture = Collect::new();
            let running = start(
                &graph_yaml(grpc, http, &tls),
                (grpc, http),
                &capture,
                &Telemetry::new(),
            )
            .await;
            let port = if protocol == "grpc" { grpc } else { http };
            let sent = python_send(
                protocol,
                &format!("https://localhost:{port}"),
                "none",
                Some(&ca),
            )
            .await;
            running.shutdown(Duration::from_secs(5)).await;
            check_sdk_data(&capture, &sent);
        }
    })
    .await
    .unwrap();
}

/// POSTs a body; returns status, headers and body.
fn post(addr: SocketAddr, path: &str, ctype: &str, body: &[u8]) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (
        status,
        head,
        raw.get(split + 4..).unwrap_or_default().to_vec(),
    )
}

fn span_request(n: usize) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![pt::ResourceSpans {
            scope_spans: vec![pt::ScopeSpans {
                spans: (0..n)
                    .map(|i| pt::Span {
                        trace_id: vec![1; 16],
                        span_id: (i as u64 + 1).to_be_bytes().to_vec(),
                        name: format!("s{i}"),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_oversized_and_unsupported_requests_are_refused_and_serving_goes_on() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let (grpc, http) = (free_port(), free_port());
        let capture = Collect::new();
        let running = start(&graph_yaml(grpc, http, ", max_recv_msg_size: 64KiB"), (grpc, http), &capture, &Telemetry::new()).await;
        let addr: SocketAddr = ([127, 0, 0, 1], http).into();

        // Not protobuf at all.
        let (s, _, body) = post(addr, "/v1/traces", "application/x-protobuf", b"\xff\xff\xff garbage");
        assert_eq!(s, 400);
        assert!(String::from_utf8_lossy(&body).contains("not an OTLP ExportTraceServiceRequest"));
        // Valid protobuf, invalid OTLP: a 3-byte trace id, named by its position.
        let mut bad = span_request(1);
        bad.resource_spans[0].scope_spans[0].spans[0].trace_id = vec![1, 2, 3];
        let (s, _, body) = post(addr, "/v1/traces", "application/x-protobuf", &bad.encode_to_vec());
        assert_eq!(s, 400);
        let msg = String::from_utf8_lossy(&body);
        assert!(msg.contains("resource_spans[0].scope_spans[0].spans[0]") && msg.contains("trace_id has 3 bytes"), "{msg}");
        // JSON is not accepted.
        let (s, _, _) = post(addr, "/v1/traces", "application/json", b"{}");
        assert_eq!(s, 415);
        // Over max_recv_msg_size.
        let big = span_request(3000).encode_to_vec();
        assert!(big.len() > 64 * 1024);
        let (s, _, _) = post(addr, "/v1/traces", "application/x-protobuf", &big);
        assert_eq!(s, 413);

        let mut client = TraceServiceClient::connect(format!("http://127.0.0.1:{grpc}")).await.unwrap();
        let err = client.export(bad.clone()).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(err.message().contains("trace_id has 3 bytes"), "{}", err.message());
        let err = client.export(span_request(3000)).await.unwrap_err();
        assert_ne!(err.code(), tonic::Code::Ok);

        // Exponential histograms and summaries: skipped and reported as rejected points.
        let req = ExportMetricsServiceRequest {
            resource_metrics: vec![pm::ResourceMetrics {
                scope_metrics: vec![pm::ScopeMetrics {
                    metrics: vec![
                        pm::Metric {
                            name: "exp".into(),
                            data: Some(pm::metric::Data::ExponentialHistogram(pm::ExponentialHistogram {
                                data_points: vec![Default::default(), Default::default()],
                                aggregation_temporality: 1,
                            })),
                            ..Default::default()
                        },
                        pm::Metric {
                            name: "kept".into(),
                            data: Some(pm::metric::Data::Gauge(pm::Gauge {
                                data_points: vec![pm::NumberDataPoint {
                                    value: Some(pm::number_data_point::Value::AsInt(9)),
                                    ..Default::default()
                                }],
                            })),
                            ..Default::default()
                        },
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let mut mclient = MetricsServiceClient::connect(format!("http://127.0.0.1:{grpc}")).await.unwrap();
        let partial = mclient.export(req.clone()).await.unwrap().into_inner().partial_success.unwrap();
        assert_eq!(partial.rejected_data_points, 2);
        assert!(partial.error_message.contains("exponential histograms or summaries"));
        let (s, _, body) = post(addr, "/v1/metrics", "application/x-protobuf", &req.encode_to_vec());
        assert_eq!(s, 200);
        let resp = opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse::decode(&body[..]).unwrap();
        assert_eq!(resp.partial_success.unwrap().rejected_data_points, 2);

        // Still serving: a good request goes through on both.
        client.export(span_request(2)).await.unwrap();
        let (s, _, _) = post(addr, "/v1/traces", "application/x-protobuf", &span_request(3).encode_to_vec());
        assert_eq!(s, 200);
        running.shutdown(Duration::from_secs(5)).await;
        assert_eq!(capture.spans().len(), 5);
        let kept: Vec<_> = capture.metrics().into_iter().filter(|(_, _, m)| m.name == "kept").collect();
        assert_eq!(kept.len(), 2);
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_pipeline_refuses_with_retryable_statuses_and_counts_them() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let (grpc, http) = (free_port(), free_port());
        let gate = Arc::new(Semaphore::new(0));
        let held = gate.clone();
        let capture = Collect::new().before_export(move |_| {
            let held = held.clone();
            async move { held.acquire().await.unwrap().forget() }
        });
        let telemetry = Telemetry::new();
        let yaml = graph_yaml(grpc, http, "").replace(
            "collect: {}",
            "collect: {queue: {size: 1, when_full: block}}",
        );
        let running = start(&yaml, (grpc, http), &capture, &telemetry).await;
        let addr: SocketAddr = ([127, 0, 0, 1], http).into();
        let body = span_request(1).encode_to_vec();
        // The exporter holds its batch, the queue and then the pipeline channel fill up.
        let mut accepted = 0;
        let deadline = Instant::now() + Duration::from_secs(20);
        let (status, head) = loop {
            let (s, head, _) = post(addr, "/v1/traces", "application/x-protobuf", &body);
            if s != 200 {
                break (s, head);
            }
            accepted += 1;
            assert!(
                Instant::now() < deadline,
                "never refused after {accepted} requests"
            );
        };
        assert_eq!(status, 503, "{head}");
        assert!(
            head.to_ascii_lowercase().contains("retry-after: 1"),
            "{head}"
        );
        let mut client = TraceServiceClient::connect(format!("http://127.0.0.1:{grpc}"))
            .await
            .unwrap();
        let err = client.export(span_request(4)).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unavailable);
        let receiver = [("kind", "receiver"), ("component", "otlp")];
        assert_eq!(
            telemetry.value("tapline_items_refused_total", &receiver),
            Some(1 + 4)
        );
        assert_eq!(
            telemetry.value("tapline_items_accepted_total", &receiver),
            Some(accepted)
        );

        // Let everything through: what was accepted arrives, and retrying now succeeds.
        gate.add_permits(1_000_000);
        // The pipeline drains asynchronously: a sender that honours UNAVAILABLE retries.
        let mut tries = 0;
        while let Err(e) = client.export(span_request(4)).await {
            assert_eq!(e.code(), tonic::Code::Unavailable, "{e}");
            tries += 1;
            assert!(tries < 100, "still refused after the gate opened");
            // The sender's backoff between retries: part of the scenario, not a wait.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        running.shutdown(Duration::from_secs(10)).await;
        assert_eq!(capture.spans().len() as i64, accepted + 4);
    })
    .await
    .unwrap();
}
