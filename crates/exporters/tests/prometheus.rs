//! The `prometheus` exporter, scraped by a real Prometheus server (`apt-get install
//! prometheus`): what PromQL returns is exactly what tapline was fed, in both exposition
//! formats, over plain HTTP and over TLS with basic auth; and 100,000 series scrape.

mod support;

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use support::*;
use tapline_core::data::*;
use tapline_core::telemetry::Telemetry;
use tapline_core::Registry;
use tapline_exporters::prometheus::PrometheusFactory;
use tapline_test_support::net::{http_get, url_encode};
use tapline_test_support::{eventually_async, free_port, need, start_graph, ChildGuard, Feed};

struct Prometheus {
    _peer: ChildGuard,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

/// Starts Prometheus with `scrape_configs` (YAML list items, already indented by 2).
async fn prometheus(scrape_configs: &str, dir: tempfile::TempDir) -> Prometheus {
    let bin = need("/usr/bin/prometheus", "apt-get install prometheus");
    let port = free_port();
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n{scrape_configs}"),
    )
    .unwrap();
    let peer = ChildGuard::spawn_logged(
        "prometheus",
        Command::new(bin)
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn"),
        &dir.path().join("prometheus.log"),
    );
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    eventually_async("prometheus to be ready", Duration::from_secs(30), || {
        http_get(addr, "/-/ready", &[]).is_ok_and(|(status, _)| status == 200)
    })
    .await;
    Prometheus {
        _peer: peer,
        addr,
        _dir: dir,
    }
}

impl Prometheus {
    /// Instant query; returns (labels, value) of every result.
    fn query(&self, promql: &str) -> Vec<(serde_json::Map<String, Json>, f64)> {
        let (status, body) = http_get(
            self.addr,
            &format!("/api/v1/query?query={}", url_encode(promql)),
            &[],
        )
        .unwrap();
        assert_eq!(status, 200, "query {promql}: {body}");
        let v: Json = serde_json::from_str(&body).unwrap();
        v["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["metric"].as_object().unwrap().clone(),
                    r["value"][1].as_str().unwrap().parse::<f64>().unwrap(),
                )
            })
            .collect()
    }

    fn scalar(&self, promql: &str) -> Option<f64> {
        let r = self.query(promql);
        (r.len() == 1).then(|| r[0].1)
    }
}

fn resource() -> Arc<Resource> {
    Resource::new(
        [
            ("service.name", Value::from("shop")),
            ("service.namespace", Value::from("prod")),
            ("host.name", Value::from("node-7")),
        ]
        .into_iter()
        .collect(),
    )
}

/// One batch: a delta counter, a gauge and a delta histogram.
fn batch(requests: i64, temperature: f64, durations: &[f64]) -> Signal {
    let mut h = HistogramPoint::new(
        [("http.route", "/cart")].into_iter().collect(),
        DURATION_SECONDS_BUCKETS.into(),
        1,
        2,
    );
    durations.iter().for_each(|d| h.record(*d));
    Signal::Metrics(Metrics {
        resource_metrics: vec![ResourceMetrics {
            resource: resource(),
            scope: "test".into(),
            metrics: vec![
                Metric {
                    name: "shop.requests".into(),
                    description: "Requests served".into(),
                    unit: "{request}".into(),
                    data: MetricData::Sum {
                        temporality: Temporality::Delta,
                        monotonic: true,
                        points: vec![NumberPoint {
                            attributes: [("http.request.method", "GET")].into_iter().collect(),
                            start_time_ns: 1,
                            time_ns: 2,
                            value: Number::Int(requests),
                        }],
                    },
                },
                Metric {
                    name: "shop.temperature".into(),
                    description: "Room temperature".into(),
                    unit: "Cel".into(),
                    data: MetricData::Gauge {
                        points: vec![NumberPoint {
                            attributes: Attributes::new(),
                            start_time_ns: 1,
                            time_ns: 2,
                            value: Number::Double(temperature),
                        }],
                    },
                },
                Metric {
                    name: "shop.request.duration".into(),
                    description: "Request duration".into(),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_exact_values_in_both_formats_and_over_tls() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed(dir.path());
        let (plain, text_only, secure) = (free_port(), free_port(), free_port());
        let (feed, tx) = Feed::new();
        let mut registry = Registry::new();
        registry.register_receiver(feed).register_exporter(PrometheusFactory);
        let yaml = format!(
            r#"
receivers:
  feed: {{}}
exporters:
  prometheus:
    endpoint: 127.0.0.1:{plain}
  prometheus/text:
    endpoint: 127.0.0.1:{text_only}
    open_metrics: false
  prometheus/secure:
    endpoint: 127.0.0.1:{secure}
    path: /secure-metrics
    tls: {{ cert_file: {cert}, key_file: {key} }}
    basic_auth: {{ username: scraper, password: "s3cret" }}
service:
  pipelines:
    metrics:
      receivers: [feed]
      exporters: [prometheus, prometheus/text, prometheus/secure]
"#,
            cert = cert.display(),
            key = key.display()
        );
        let telemetry = Telemetry::new();
        let running = start_graph(&yaml, &registry, &telemetry).await.unwrap();

        tx.send(batch(3, 20.0, &[0.003, 0.02, 0.2, 3.0])).await.unwrap();
        tx.send(batch(4, 21.5, &[0.003, 0.02, 0.2, 30.0])).await.unwrap();

        // Our own view first: a wrong password is refused; the right one is served.
        let plain_addr: SocketAddr = ([127, 0, 0, 1], plain).into();
        let text = eventually_async("tapline to serve the fed data", Duration::from_secs(10), || {
            let (s, body) = http_get(plain_addr, "/metrics", &[]).ok()?;
            (s == 200 && body.contains("shop_requests_total") && body.contains("} 7\n")).then_some(body)
        })
        .await;
        assert!(text.contains("# TYPE shop_requests_total counter"), "{text}");
        // The Accept header Prometheus 2.x sends picks OpenMetrics, unless it is turned off.
        let om_accept = [(
            "Accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )];
        let (_, om) = http_get(plain_addr, "/metrics", &om_accept).unwrap();
        assert!(om.ends_with("# EOF\n") && om.contains("# TYPE shop_requests counter\n"), "{om}");
        let (_, txt) = http_get(SocketAddr::from(([127, 0, 0, 1], text_only)), "/metrics", &om_accept).unwrap();
        assert!(!txt.contains("# EOF") && txt.contains("# TYPE shop_requests_total counter\n"), "{txt}");

        let secure_dir = tempfile::tempdir().unwrap();
        std::fs::copy(&cert, secure_dir.path().join("ca.pem")).unwrap();
        let jobs = format!(
            r#"  - job_name: openmetrics
    static_configs: [{{targets: ['127.0.0.1:{plain}']}}]
  - job_name: text
    static_configs: [{{targets: ['127.0.0.1:{text_only}']}}]
  - job_name: secure
    scheme: https
    metrics_path: /secure-metrics
    basic_auth: {{username: scraper, password: s3cret}}
    tls_config: {{ca_file: {ca}, server_name: localhost}}
    static_configs: [{{targets: ['127.0.0.1:{secure}']}}]
  - job_name: wrong_password
    scheme: https
    metrics_path: /secure-metrics
    basic_auth: {{username: scraper, password: nope}}
    tls_config: {{ca_file: {ca}, server_name: localhost}}
    static_configs: [{{targets: ['127.0.0.1:{secure}']}}]
"#,
            ca = cert.display()
        );
        let prom = prometheus(&jobs, dir).await;

        for job in ["openmetrics", "text", "secure"] {
            // Every job scraped successfully (a format Prometheus cannot parse gives up=0).
            eventually_async(&format!("job {job} to be up"), Duration::from_secs(20), || {
                (prom.scalar(&format!("up{{job=\"{job}\"}}")) == Some(1.0)).then_some(())
            })
            .await;
            let sel = format!("job=\"{job}\",service_name=\"shop\",service_namespace=\"prod\"");
            let q = |m: &str, extra: &str| prom.scalar(&format!("{m}{{{sel}{extra}}}"));
            assert_eq!(q("shop_requests_total", ",http_request_method=\"GET\""), Some(7.0), "{job}");
            assert_eq!(q("shop_temperature_celsius", ""), Some(21.5), "{job}");
            let h = ",http_route=\"/cart\"";
            assert_eq!(q("shop_request_duration_seconds_count", h), Some(8.0), "{job}");
            assert_eq!(q("shop_request_duration_seconds_sum", h), Some(33.446), "{job}");
            let buckets = prom.query(&format!("shop_request_duration_seconds_bucket{{{sel}{h}}}"));
            let le = |b: f64| {
                buckets
                    .iter()
                    .find(|(l, _)| {
                        let v = l["le"].as_str().unwrap();
                        v.parse::<f64>().unwrap() == b || (b.is_infinite() && v == "+Inf")
                    })
                    .map(|(_, v)| *v)
            };
            assert_eq!(buckets.len(), DURATION_SECONDS_BUCKETS.len() + 1, "{job}: {buckets:?}");
            assert_eq!(le(0.0), Some(0.0), "{job}");
            assert_eq!(le(0.005), Some(2.0), "{job}");
            assert_eq!(le(0.025), Some(4.0), "{job}");
            assert_eq!(le(0.25), Some(6.0), "{job}");
            assert_eq!(le(5.0), Some(7.0), "{job}");
            assert_eq!(le(10.0), Some(7.0), "{job}");
            assert_eq!(le(f64::INFINITY), Some(8.0), "{job}");
            assert_eq!(
                prom.scalar(&format!(
                    "target_info{{job=\"{job}\",service_name=\"shop\",service_namespace=\"prod\",host_name=\"node-7\"}}"
                )),
                Some(1.0),
                "{job}"
            );
        }
        // Its first scrape may come after the other jobs' ones: wait for it, then require a failure.
        let wrong = eventually_async("job wrong_password to be scraped", Duration::from_secs(20), || {
            prom.scalar("up{job=\"wrong_password\"}")
        })
        .await;
        assert_eq!(wrong, 0.0, "a wrong password must make the scrape fail");

        let report = running.shutdown(Duration::from_secs(5)).await;
        assert!(!report.timed_out);
    })
    .await
    .expect("test took longer than 120s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_of_100k_series_completes() {
    tokio::time::timeout(Duration::from_secs(180), async {
        const SERIES: usize = 100_000;
        let port = free_port();
        let (feed, tx) = Feed::new();
        let mut registry = Registry::new();
        registry.register_receiver(feed).register_exporter(PrometheusFactory);
        let yaml = format!(
            r#"
receivers:
  feed: {{}}
exporters:
  prometheus:
    endpoint: 127.0.0.1:{port}
service:
  pipelines:
    metrics: {{receivers: [feed], exporters: [prometheus]}}
"#
        );
        let telemetry = Telemetry::new();
        let running = start_graph(&yaml, &registry, &telemetry).await.unwrap();
        let resource = Resource::new([("service.name", Value::from("big"))].into_iter().collect());
        for chunk in 0..(SERIES / 10_000) {
            let points = (0..10_000)
                .map(|i| {
                    let n = chunk * 10_000 + i;
                    NumberPoint {
                        attributes: [
                            ("flow.id", Value::from(format!("f{n}"))),
                            ("src.address", Value::from(format!("10.{}.{}.{}", n >> 16, (n >> 8) & 255, n & 255))),
                        ]
                        .into_iter()
                        .collect(),
                        start_time_ns: 1,
                        time_ns: 2,
                        value: Number::Int(n as i64),
                    }
                })
                .collect();
            tx.send(Signal::Metrics(Metrics {
                resource_metrics: vec![ResourceMetrics {
                    resource: resource.clone(),
                    scope: "test".into(),
                    metrics: vec![Metric {
                        name: "flow.bytes".into(),
                        description: "Bytes per flow".into(),
                        unit: "By".into(),
                        data: MetricData::Sum {
                            temporality: Temporality::Delta,
                            monotonic: true,
                            points,
                        },
                    }],
                }],
            }))
            .await
            .unwrap();
        }
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let (elapsed, body) = eventually_async("all series to be served", Duration::from_secs(60), || {
            let t = Instant::now();
            let (s, body) = http_get(addr, "/metrics", &[]).ok()?;
            let elapsed = t.elapsed();
            (s == 200 && body.matches("flow_bytes_total{").count() == SERIES).then_some((elapsed, body))
        })
        .await;
        println!(
            "tapline: scrape of {SERIES} series ({} bytes) took {elapsed:?} over loopback",
            body.len()
        );
        assert!(body.contains("flow_bytes_total{flow_id=\"f99999\",service_name=\"big\",src_address=\"10.1.134.159\"} 99999\n"));

        let dir = tempfile::tempdir().unwrap();
        let prom = prometheus(
            &format!(
                "  - job_name: big\n    scrape_interval: 10s\n    scrape_timeout: 10s\n    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"
            ),
            dir,
        )
        .await;
        let scraped = eventually_async("prometheus to scrape the 100k series", Duration::from_secs(60), || {
            prom.scalar("scrape_samples_scraped{job=\"big\"}").filter(|v| *v > 0.0)
        })
        .await;
        let took = prom.scalar("scrape_duration_seconds{job=\"big\"}").unwrap();
        assert_eq!(prom.scalar("up{job=\"big\"}"), Some(1.0));
        assert_eq!(scraped, SERIES as f64);
        assert_eq!(prom.scalar("count(flow_bytes_total{job=\"big\"})"), Some(SERIES as f64));
        assert_eq!(prom.scalar("sum(flow_bytes_total{job=\"big\"})"), Some((SERIES * (SERIES - 1) / 2) as f64));
        println!("prometheus: scrape of {scraped} series took {took:.3}s (scrape_duration_seconds)");
        running.shutdown(Duration::from_secs(5)).await;
    })
    .await
    .expect("test took longer than 180s");
}

#[tokio::test]
async fn a_taken_port_fails_startup_naming_the_endpoint() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let (feed, _tx) = Feed::new();
    let mut registry = Registry::new();
    registry
        .register_receiver(feed)
        .register_exporter(PrometheusFactory);
    let yaml = format!(
        "receivers: {{feed: {{}}}}\nexporters: {{prometheus/x: {{endpoint: '127.0.0.1:{port}'}}}}\nservice: {{pipelines: {{metrics: {{receivers: [feed], exporters: [prometheus/x]}}}}}}\n"
    );
    let err = match start_graph(&yaml, &registry, &Telemetry::new()).await {
        Ok(_) => panic!("started on a taken port"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("exporters.prometheus/x.endpoint"), "{err}");
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
}
