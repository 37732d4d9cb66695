use std::time::{Duration, Instant};

use tapline_core::config::types::Glob;
use tapline_core::data::buckets::{BucketRule, HistogramBuckets};
use tapline_core::data::*;

use super::render::{render, Format};
use super::store::Store;

fn resource() -> std::sync::Arc<Resource> {
    Resource::new(
        [
            ("service.name", Value::from("shop")),
            ("host.name", Value::from("h1")),
        ]
        .into_iter()
        .collect(),
    )
}

fn sum(temporality: Temporality, value: i64) -> Metrics {
    Metrics {
        resource_metrics: vec![ResourceMetrics {
            resource: resource(),
            scope: "s".into(),
            metrics: vec![Metric {
                name: "http.requests".into(),
                description: "Requests".into(),
                unit: "{request}".into(),
                data: MetricData::Sum {
                    temporality,
                    monotonic: true,
                    points: vec![NumberPoint {
                        attributes: [("http.request.method", "GET")].into_iter().collect(),
                        start_time_ns: 1,
                        time_ns: 2,
                        value: Number::Int(value),
                    }],
                },
            }],
        }],
    }
}

fn histogram(temporality: Temporality, values: &[f64], bounds: &[f64]) -> Metrics {
    let mut p = HistogramPoint::new(Attributes::new(), bounds.to_vec().into(), 1, 2);
    values.iter().for_each(|v| p.record(*v));
    Metrics {
        resource_metrics: vec![ResourceMetrics {
            resource: Resource::new(Attributes::new()),
            scope: "s".into(),
            metrics: vec![Metric {
                name: "rpc.duration".into(),
                description: "".into(),
                unit: "s".into(),
                data: MetricData::Histogram {
                    temporality,
                    points: vec![p],
                },
            }],
        }],
    }
}

#[test]
fn delta_sums_accumulate_and_cumulative_replaces() {
    let mut store = Store::new(Duration::from_secs(60), HistogramBuckets::default());
    let now = Instant::now();
    store.apply(&sum(Temporality::Delta, 3), now);
    store.apply(&sum(Temporality::Delta, 4), now);
    let text = render(&store, Format::Text, now);
    assert!(
        text.contains("# TYPE http_requests_total counter\n"),
        "{text}"
    );
    assert!(
        text.contains("http_requests_total{http_request_method=\"GET\",service_name=\"shop\"} 7\n"),
        "{text}"
    );
    assert!(
        text.contains("target_info{host_name=\"h1\",service_name=\"shop\"} 1\n"),
        "{text}"
    );
    store.apply(&sum(Temporality::Cumulative, 2), now);
    let text = render(&store, Format::Text, now);
    assert!(text.contains("service_name=\"shop\"} 2\n"), "{text}");
}

#[test]
fn openmetrics_names_counters_without_total_and_ends_with_eof() {
    let mut store = Store::new(Duration::from_secs(60), HistogramBuckets::default());
    let now = Instant::now();
    store.apply(&sum(Temporality::Delta, 1), now);
    store.apply(&histogram(Temporality::Delta, &[0.2], &[0.1, 1.0]), now);
    let text = render(&store, Format::OpenMetrics, now);
    assert!(text.contains("# TYPE http_requests counter\n"), "{text}");
    assert!(text.contains("http_requests_total{"), "{text}");
    assert!(
        text.contains("# UNIT rpc_duration_seconds seconds\n"),
        "{text}"
    );
    assert!(text.contains("# TYPE target info\n"), "{text}");
    assert!(text.ends_with("# EOF\n"), "{text}");
}

#[test]
fn delta_histograms_accumulate_and_rebucket_exactly() {
    let buckets = HistogramBuckets {
        rules: vec![BucketRule {
            pattern: Glob::new("rpc.*").unwrap(),
            bounds: vec![1.0].into(),
        }],
    };
    let mut store = Store::new(Duration::from_secs(60), buckets);
    let now = Instant::now();
    store.apply(
        &histogram(Temporality::Delta, &[0.05, 0.5, 2.0], &[0.1, 1.0]),
        now,
    );
    store.apply(&histogram(Temporality::Delta, &[0.7], &[0.1, 1.0]), now);
    let text = render(&store, Format::Text, now);
    assert!(
        text.contains("rpc_duration_seconds_bucket{le=\"1.0\"} 3\n"),
        "{text}"
    );
    assert!(
        text.contains("rpc_duration_seconds_bucket{le=\"+Inf\"} 4\n"),
        "{text}"
    );
    assert!(text.contains("rpc_duration_seconds_count 4\n"), "{text}");
    assert!(text.contains("rpc_duration_seconds_sum 3.25\n"), "{text}");
    assert!(!text.contains("le=\"0.1\""), "{text}");
}

#[test]
fn series_expire_after_ttl() {
    let mut store = Store::new(Duration::from_millis(100), HistogramBuckets::default());
    let t0 = Instant::now();
    store.apply(&sum(Temporality::Delta, 1), t0);
    assert!(render(&store, Format::Text, t0).contains("http_requests_total"));
    let later = t0 + Duration::from_millis(150);
    assert!(!render(&store, Format::Text, later).contains("http_requests_total"));
    store.prune(later);
    assert_eq!(store.series_count(), 0);
    // A new point after expiry starts the counter again from its own value.
    store.apply(&sum(Temporality::Delta, 5), later);
    assert!(render(&store, Format::Text, later).contains("} 5\n"));
}

#[test]
fn bad_config_is_reported_at_its_path_and_rules_are_published() {
    use tapline_core::config::ComponentConfig;
    use tapline_core::telemetry::Telemetry;
    use tapline_core::{ExporterFactory, SharedState};
    let shared = SharedState::default();
    let ctx =
        tapline_test_support::harness::build_context_with("prometheus", &Telemetry::new(), &shared);
    let bad = ComponentConfig::new(
        "exporters.prometheus",
        serde_json::json!({"path": "metrics", "histograms": [{"metrics": "x.*", "buckets": [1.0, 0.5]}]}),
    );
    let err = match super::PrometheusFactory.build(&bad, &ctx) {
        Ok(_) => panic!("accepted a bad config"),
        Err(e) => format!("{e:?}"),
    };
    assert!(err.contains("exporters.prometheus.path"), "{err}");
    assert!(
        err.contains("exporters.prometheus.histograms[0].buckets"),
        "{err}"
    );
    assert!(err.contains("increase strictly"), "{err}");

    let good = ComponentConfig::new(
        "exporters.prometheus",
        serde_json::json!({"histograms": [{"metrics": "http.*", "buckets": [0.1, 1.0]}]}),
    );
    assert!(super::PrometheusFactory.build(&good, &ctx).is_ok());
    // A receiver built afterwards finds the rules.
    let rules = HistogramBuckets::for_component(&ctx, "extension", None).unwrap();
    assert_eq!(&*rules.bounds_for("http.server.duration", "s"), &[0.1, 1.0]);
    assert_eq!(
        &*rules.bounds_for("dns.duration", "s"),
        DURATION_SECONDS_BUCKETS
    );
}
