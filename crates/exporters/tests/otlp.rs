//! The `otlp` exporter against rotel (`pip install rotel`), a third-party OTLP receiver that
//! logs every item it decodes: names, values, attributes and resources arrive as sent, over
//! gRPC and HTTP/protobuf; an outage is ridden out with retries and exact drop accounting.
//! Status handling (permanent vs. retryable, RetryInfo, Retry-After) is checked against
//! in-test servers that answer with exactly the status under test.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::*;
use tapline_core::data::*;
use tapline_core::pipeline::RetryingExporter;
use tapline_core::telemetry::Telemetry;
use tapline_core::Registry;
use tapline_exporters::otlp::{OtlpConfig, OtlpExporter, OtlpFactory, Protocol};
use tapline_test_support::harness::build_context_with;
use tapline_test_support::{eventually_async, free_port, start_graph, Feed};

fn resource() -> Arc<Resource> {
    Resource::new(
        [
            ("service.name", Value::from("checkout")),
            ("host.name", Value::from("node-3")),
        ]
        .into_iter()
        .collect(),
    )
}

fn counter(value: i64, route: &'static str) -> Signal {
    Signal::Metrics(Metrics {
        resource_metrics: vec![ResourceMetrics {
            resource: resource(),
            scope: "tapline.test".into(),
            metrics: vec![Metric {
                name: "http.server.requests".into(),
                description: "Requests".into(),
                unit: "{request}".into(),
                data: MetricData::Sum {
                    temporality: Temporality::Delta,
                    monotonic: true,
                    points: vec![NumberPoint {
                        attributes: [("http.route", route)].into_iter().collect(),
                        start_time_ns: 1_000,
                        time_ns: 2_000,
                        value: Number::Int(value),
                    }],
                },
            }],
        }],
    })
}

fn mixed_metrics() -> Signal {
    let mut h = HistogramPoint::new(
        [("http.route", "/pay")].into_iter().collect(),
        vec![0.1, 1.0].into(),
        1_000,
        2_000,
    );
    for v in [0.05, 0.5, 2.0] {
        h.record(v);
    }
    Signal::Metrics(Metrics {
        resource_metrics: vec![ResourceMetrics {
            resource: resource(),
            scope: "tapline.test".into(),
            metrics: vec![
                Metric {
                    name: "queue.depth".into(),
                    description: "".into(),
                    unit: "{item}".into(),
                    data: MetricData::Gauge {
                        points: vec![NumberPoint {
                            attributes: [("queue", "orders")].into_iter().collect(),
                            start_time_ns: 0,
                            time_ns: 2_000,
                            value: Number::Double(12.5),
                        }],
                    },
                },
                Metric {
                    name: "http.server.duration".into(),
                    description: "".into(),
                    unit: "s".into(),
                    data: MetricData::Histogram {
                        temporality: Temporality::Delta,
                        points: vec![h],
                    },
                },
            ],
        }],
    })
}

fn spans(n: usize, tag: &'static str) -> Signal {
    Signal::Traces(Traces {
        resource_spans: vec![ResourceSpans {
            resource: resource(),
            scope: "tapline.test".into(),
            spans: (0..n)
                .map(|i| Span {
                    trace_id: [0xab; 16],
                    span_id: (i as u64 + 1).to_be_bytes(),
                    parent_span_id: if i == 0 { [0; 8] } else { 1u64.to_be_bytes() },
                    name: format!("{tag} {i}").into(),
                    kind: SpanKind::Server,
                    start_time_ns: 1_700_000_000_000_000_000,
                    end_time_ns: 1_700_000_000_250_000_000,
                    attributes: [
                        ("http.request.method", Value::from("POST")),
                        ("http.response.status_code", Value::Int(201)),
                        ("batch", Value::from(tag)),
                    ]
                    .into_iter()
                    .collect(),
                    status: if i == 0 {
                        StatusCode::Error
                    } else {
                        StatusCode::Unset
                    },
                    status_message: if i == 0 {
                        "boom".into()
                    } else {
                        Str::default()
                    },
                })
                .collect(),
        }],
    })
}

async fn deliver_to_rotel(protocol: &str, compression: &str) {
    let dir = tempfile::tempdir().unwrap();
    let rotel = Rotel::start(dir.path(), free_port(), free_port(), "rotel.log").await;
    let endpoint = match protocol {
        "grpc" => format!("127.0.0.1:{}", rotel.grpc),
        _ => format!("http://127.0.0.1:{}", rotel.http),
    };
    let (feed, tx) = Feed::new();
    let mut registry = Registry::new();
    registry
        .register_receiver(feed)
        .register_exporter(OtlpFactory);
    let yaml = format!(
        r#"
receivers: {{feed: {{}}}}
exporters:
  otlp:
    protocol: {protocol}
    endpoint: "{endpoint}"
    compression: {compression}
    headers: {{x-tenant: acme}}
service:
  pipelines:
    metrics: {{receivers: [feed], exporters: [otlp]}}
    traces: {{receivers: [feed], exporters: [otlp]}}
"#
    );
    let telemetry = Telemetry::new();
    let running = start_graph(&yaml, &registry, &telemetry).await.unwrap();
    // Two delta batches of one series: rotel must see the running total (cumulative default).
    tx.send(counter(3, "/a")).await.unwrap();
    tx.send(counter(4, "/a")).await.unwrap();
    tx.send(mixed_metrics()).await.unwrap();
    tx.send(spans(3, "first")).await.unwrap();
    let items = eventually_async("rotel to log everything", Duration::from_secs(20), || {
        let items = rotel.items();
        (items.iter().filter(|i| i.kind == "span").count() >= 3
            && items.iter().filter(|i| i.kind != "span").count() >= 4)
            .then_some(items)
    })
    .await;
    running.shutdown(Duration::from_secs(5)).await;

    let resource = vec![
        "service.name: Str(checkout)".to_string(),
        "host.name: Str(node-3)".into(),
    ];
    let counters: Vec<_> = items
        .iter()
        .filter(|i| i.metric == "http.server.requests")
        .collect();
    assert_eq!(counters.len(), 2, "{counters:#?}");
    for (c, want) in counters.iter().zip(["3", "7"]) {
        assert_eq!(c.kind, "number");
        assert_eq!(c.resource, resource);
        assert_eq!(c.scope, "tapline.test");
        assert_eq!(c.attributes, vec!["http.route: Str(/a)"]);
        assert_eq!(c.field("Value"), Some(want));
        assert_eq!(c.field("StartTimestamp"), Some("1000"), "{c:#?}");
        assert!(
            c.descriptor.contains(&"Unit: {request}".to_string()),
            "{c:#?}"
        );
        assert!(
            c.descriptor.contains(&"IsMonotonic: true".to_string()),
            "{c:#?}"
        );
        assert!(
            c.descriptor.contains(
                &"AggregationTemporality: AGGREGATION_TEMPORALITY_CUMULATIVE".to_string()
            ),
            "{c:#?}"
        );
    }
    let gauge = items.iter().find(|i| i.metric == "queue.depth").unwrap();
    assert_eq!(gauge.field("Value"), Some("12.5"));
    assert_eq!(gauge.attributes, vec!["queue: Str(orders)"]);
    let h = items
        .iter()
        .find(|i| i.metric == "http.server.duration")
        .unwrap();
    assert_eq!(h.kind, "histogram");
    assert_eq!(h.field("Count"), Some("3"));
    assert_eq!(h.field("Sum"), Some("2.55"));
    assert_eq!(h.field("Min"), Some("0.05"));
    assert_eq!(h.field("Max"), Some("2"));
    assert_eq!(h.field("ExplicitBounds #0"), Some("0.1"));
    assert_eq!(h.field("ExplicitBounds #1"), Some("1"));
    assert_eq!(h.field("Buckets #0, Count"), Some("1"));
    assert_eq!(h.field("Buckets #1, Count"), Some("1"));
    assert_eq!(h.field("Buckets #2, Count"), Some("1"));

    let spans: Vec<_> = items.iter().filter(|i| i.kind == "span").collect();
    assert_eq!(spans.len(), 3);
    for (i, s) in spans.iter().enumerate() {
        assert_eq!(s.resource, resource);
        assert_eq!(s.field("Name"), Some(format!("first {i}").as_str()));
        assert_eq!(
            s.field("Trace ID"),
            Some("abababababababababababababababab")
        );
        assert_eq!(s.field("ID"), Some(format!("{:016x}", i + 1).as_str()));
        assert_eq!(s.field("Kind"), Some("SPAN_KIND_SERVER"));
        assert_eq!(s.field("Start time"), Some("1700000000000000000"));
        assert_eq!(s.field("End time"), Some("1700000000250000000"));
        assert_eq!(
            s.attributes,
            vec![
                "http.request.method: Str(POST)",
                "http.response.status_code: Int(201)",
                "batch: Str(first)"
            ]
        );
    }
    assert_eq!(spans[0].field("Parent ID"), Some(""));
    assert_eq!(spans[1].field("Parent ID"), Some("0000000000000001"));
    assert_eq!(spans[0].field("Status code"), Some("STATUS_CODE_ERROR"));
    assert_eq!(spans[0].field("Status message"), Some("boom"));
    let exporter = [("kind", "exporter"), ("component", "otlp")];
    assert_eq!(
        telemetry.value("tapline_items_sent_total", &exporter),
        Some(2 + 2 + 3)
    );
    assert_eq!(
        telemetry.value("tapline_items_dropped_total", &exporter),
        Some(0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_with_gzip_delivers_names_values_attributes_and_resources_to_rotel() {
    tokio::time::timeout(Duration::from_secs(60), deliver_to_rotel("grpc", "gzip"))
        .await
        .expect("test took longer than 60s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_protobuf_delivers_names_values_attributes_and_resources_to_rotel() {
    tokio::time::timeout(
        Duration::from_secs(60),
        deliver_to_rotel("http/protobuf", "none"),
    )
    .await
    .expect("test took longer than 60s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_is_retried_through_and_drops_are_counted_exactly() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let dir = tempfile::tempdir().unwrap();
        let (grpc, http) = (free_port(), free_port());
        let (feed, tx) = Feed::new();
        let mut registry = Registry::new();
        registry.register_receiver(feed).register_exporter(OtlpFactory);
        let yaml = format!(
            r#"
receivers: {{feed: {{}}}}
exporters:
  otlp:
    endpoint: 127.0.0.1:{grpc}
    timeout: 2s
    retry: {{initial_interval: 100ms, max_interval: 400ms, max_elapsed_time: 3s}}
    queue: {{size: 2}}
service:
  pipelines:
    traces: {{receivers: [feed], exporters: [otlp]}}
"#
        );
        let telemetry = Telemetry::new();
        let running = start_graph(&yaml, &registry, &telemetry).await.unwrap();
        let exporter = [("kind", "exporter"), ("component", "otlp")];
        let retries = || telemetry.value("tapline_exporter_retries_total", &[("component", "otlp")]).unwrap_or(0);
        let dropped = || telemetry.value("tapline_items_dropped_total", &exporter).unwrap_or(0);

        // 1. The receiver is down at start: the exporter retries, and delivers once it is up.
        tx.send(spans(1, "early")).await.unwrap();
        eventually_async("retries while rotel is down", Duration::from_secs(10), || (retries() >= 2).then_some(())).await;
        let mut rotel = Rotel::start(dir.path(), grpc, http, "rotel-1.log").await;
        eventually_async("the early span after rotel came up", Duration::from_secs(10), || {
            rotel.items().iter().any(|i| i.field("Name") == Some("early 0")).then_some(())
        })
        .await;
        assert_eq!(dropped(), 0);

        // 2. The receiver goes down mid-run. Batches of 1, 2, 4, 8 and 16 spans arrive while it
        // is away; with a queue of 2 and 3s of retrying, some are lost. Every span is either
        // delivered after it returns or counted as dropped: exactly.
        rotel.peer.kill();
        let before_outage = retries();
        let sizes = [1usize, 2, 4, 8, 16];
        let tags = ["b1", "b2", "b4", "b8", "b16"];
        let mut max_queue = 0;
        for (n, tag) in sizes.iter().zip(tags) {
            tx.send(spans(*n, tag)).await.unwrap();
            // Batches arrive spread over the outage, as a receiver's traffic would: pacing
            // the scenario, not waiting for a result.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let q = telemetry
                .value("tapline_exporter_queue_size", &[("component", "otlp")])
                .unwrap_or(0);
            max_queue = max_queue.max(q);
        }
        // Let the first batch exhaust its retries, then bring the receiver back.
        eventually_async("a batch to be given up", Duration::from_secs(10), || (dropped() > 0).then_some(())).await;
        assert!(retries() > before_outage, "no retries during the outage");
        let rotel2 = Rotel::start(dir.path(), grpc, http, "rotel-2.log").await;
        let sent_total: usize = sizes.iter().sum();
        let delivered = eventually_async("every batch to be delivered or dropped", Duration::from_secs(30), || {
            let delivered: usize = tags
                .iter()
                .zip(sizes)
                .filter(|(tag, n)| {
                    rotel2
                        .items()
                        .iter()
                        .filter(|i| i.attributes.contains(&format!("batch: Str({tag})")))
                        .count()
                        == *n
                })
                .map(|(_, n)| n)
                .sum();
            (delivered as i64 + dropped() == sent_total as i64).then_some(delivered)
        })
        .await;
        assert!(delivered > 0, "nothing arrived after the receiver came back");
        assert!(dropped() > 0);
        // The queue never held more than its 2 batches: memory stays bounded during an outage.
        assert!(max_queue <= 2, "queue held {max_queue} batches");
        // Data sent after the receiver returned arrives as well.
        tx.send(spans(2, "after")).await.unwrap();
        eventually_async("data sent after the outage", Duration::from_secs(10), || {
            (rotel2.items().iter().filter(|i| i.attributes.contains(&"batch: Str(after)".to_string())).count() == 2).then_some(())
        })
        .await;
        println!(
            "outage: {sent_total} spans sent while down, {delivered} delivered after, {} dropped, {} retries",
            dropped(),
            retries()
        );
        running.shutdown(Duration::from_secs(5)).await;
    })
    .await
    .expect("test took longer than 120s");
}

// ---- status handling against servers that answer exactly what is under test ----

/// The exporter behind the framework's exporter helper, which does the retrying.
fn exporter(
    protocol: Protocol,
    endpoint: String,
    max_elapsed: Duration,
) -> (RetryingExporter, Telemetry) {
    let cfg = OtlpConfig {
        protocol: Some(protocol),
        endpoint: Some(endpoint),
        ..Default::default()
    };
    let retry = tapline_exporters::otlp::RetryConfig {
        enabled: true,
        initial_interval: Duration::from_millis(50),
        max_interval: Duration::from_millis(100),
        max_elapsed_time: max_elapsed,
    };
    let telemetry = Telemetry::new();
    let ctx = build_context_with("otlp", &telemetry, &Default::default());
    let retries = telemetry.counter(
        "tapline_exporter_retries_total",
        "Export attempts that failed in a retryable way and were retried.",
        &[("component", "otlp")],
    );
    let otlp = OtlpExporter::new(&cfg, "exporters.otlp", &ctx, &|_| None).unwrap();
    (
        RetryingExporter::new(Box::new(otlp), retry, retries),
        telemetry,
    )
}

/// A gRPC trace service answering each call with the next status of `script` (then OK),
/// recording when each call came.
#[derive(Clone)]
struct Scripted {
    script: Arc<Mutex<Vec<tonic::Status>>>,
    calls: Arc<Mutex<Vec<Instant>>>,
}

#[tonic::async_trait]
impl opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceService
    for Scripted
{
    async fn export(
        &self,
        _r: tonic::Request<
            opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest,
        >,
    ) -> Result<
        tonic::Response<
            opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse,
        >,
        tonic::Status,
    > {
        self.calls.lock().unwrap().push(Instant::now());
        let next = {
            let mut s = self.script.lock().unwrap();
            (!s.is_empty()).then(|| s.remove(0))
        };
        match next {
            Some(status) => Err(status),
            None => Ok(tonic::Response::new(Default::default())),
        }
    }
}

async fn scripted_grpc(script: Vec<tonic::Status>) -> (String, Scripted) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let svc = Scripted {
        script: Arc::new(Mutex::new(script)),
        calls: Default::default(),
    };
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceServiceServer::new(svc.clone()))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    (format!("http://{addr}"), svc)
}

#[tokio::test]
async fn grpc_permanent_failures_are_not_retried_and_retry_info_is_honoured() {
    tokio::time::timeout(Duration::from_secs(30), async {
        // INVALID_ARGUMENT: one call, an error, no retry.
        let (url, svc) = scripted_grpc(vec![tonic::Status::invalid_argument("bad span")]).await;
        let (mut exp, _) = exporter(Protocol::Grpc, url, Duration::from_secs(5));
        let err = exp
            .export(Arc::new(spans(1, "x")))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("failed permanently") && err.contains("bad span"),
            "{err}"
        );
        assert_eq!(svc.calls.lock().unwrap().len(), 1);

        // RESOURCE_EXHAUSTED without RetryInfo: permanent.
        let (url, svc) = scripted_grpc(vec![tonic::Status::resource_exhausted("full")]).await;
        let (mut exp, _) = exporter(Protocol::Grpc, url, Duration::from_secs(5));
        assert!(exp.export(Arc::new(spans(1, "x"))).await.is_err());
        assert_eq!(svc.calls.lock().unwrap().len(), 1);

        // RESOURCE_EXHAUSTED with RetryInfo of 700ms: retried, no sooner than asked.
        let details = tapline_exporters::otlp::transport::retry_info_details(
            8,
            "full",
            Duration::from_millis(700),
        );
        let (url, svc) = scripted_grpc(vec![tonic::Status::with_details(
            tonic::Code::ResourceExhausted,
            "full",
            details.into(),
        )])
        .await;
        let (mut exp, telemetry) = exporter(Protocol::Grpc, url, Duration::from_secs(5));
        exp.export(Arc::new(spans(1, "x"))).await.unwrap();
        let calls = svc.calls.lock().unwrap().clone();
        assert_eq!(calls.len(), 2);
        assert!(
            calls[1] - calls[0] >= Duration::from_millis(700),
            "{:?}",
            calls[1] - calls[0]
        );
        assert_eq!(
            telemetry.value("tapline_exporter_retries_total", &[("component", "otlp")]),
            Some(1)
        );

        // UNAVAILABLE forever: retried until max_elapsed_time, then given up.
        let (url, svc) = scripted_grpc(
            (0..1000)
                .map(|_| tonic::Status::unavailable("down"))
                .collect(),
        )
        .await;
        let (mut exp, _) = exporter(Protocol::Grpc, url, Duration::from_millis(800));
        let t = Instant::now();
        let err = exp
            .export(Arc::new(spans(1, "x")))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("gave up"), "{err}");
        assert!(t.elapsed() < Duration::from_secs(2));
        assert!(svc.calls.lock().unwrap().len() >= 3);
    })
    .await
    .expect("test took longer than 30s");
}

#[tokio::test]
async fn http_400_is_permanent_and_503_honours_retry_after() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let hits = Arc::new(AtomicUsize::new(0));
        let times = Arc::new(Mutex::new(Vec::new()));
        let (h, t) = (hits.clone(), times.clone());
        let app = axum::Router::new()
            .route(
                "/bad/v1/traces",
                axum::routing::post({
                    let h = h.clone();
                    move || {
                        h.fetch_add(1, Ordering::SeqCst);
                        async { (axum::http::StatusCode::BAD_REQUEST, "malformed") }
                    }
                }),
            )
            .route(
                "/busy/v1/traces",
                axum::routing::post(move || {
                    let n = {
                        let mut t = t.lock().unwrap();
                        t.push(Instant::now());
                        t.len()
                    };
                    async move {
                        if n == 1 {
                            (
                                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                                [("retry-after", "1")],
                                "busy",
                            )
                                .into_response_parts()
                        } else {
                            (axum::http::StatusCode::OK, [("retry-after", "0")], "")
                                .into_response_parts()
                        }
                    }
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });

        let (mut exp, _) = exporter(
            Protocol::HttpProtobuf,
            format!("http://{addr}/bad"),
            Duration::from_secs(5),
        );
        let err = exp
            .export(Arc::new(spans(1, "x")))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("HTTP 400") && err.contains("malformed"),
            "{err}"
        );
        assert_eq!(hits.load(Ordering::SeqCst), 1);

        let (mut exp, _) = exporter(
            Protocol::HttpProtobuf,
            format!("http://{addr}/busy"),
            Duration::from_secs(5),
        );
        exp.export(Arc::new(spans(1, "x"))).await.unwrap();
        let times = times.lock().unwrap().clone();
        assert_eq!(times.len(), 2);
        assert!(
            times[1] - times[0] >= Duration::from_secs(1),
            "{:?}",
            times[1] - times[0]
        );
    })
    .await
    .expect("test took longer than 30s");
}

trait IntoParts {
    fn into_response_parts(self) -> axum::response::Response;
}
impl<T: axum::response::IntoResponse> IntoParts for T {
    fn into_response_parts(self) -> axum::response::Response {
        self.into_response()
    }
}
