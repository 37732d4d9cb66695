use super::*;
use proptest::prelude::*;
use tapline_core::data::{Number, Temporality, Value};
use tapline_test_support::fixtures::{flow_attributes, flow_batch, points};

fn processor(yaml: &str) -> SelectProcessor {
    let cfg: SelectConfig = serde_yaml::from_str(yaml).unwrap();
    SelectProcessor::new(cfg).unwrap()
}

fn decorated(src: &str, dst: &str, src_owner: &str, dst_owner: &str) -> Attributes {
    let mut a = flow_attributes(src, dst);
    a.push("k8s.src.namespace", "shop");
    a.push("k8s.src.owner.name", src_owner.to_string());
    a.push("k8s.src.owner.type", "Deployment");
    a.push("k8s.src.name", format!("{src_owner}-abc"));
    a.push("k8s.dst.namespace", "shop");
    a.push("k8s.dst.owner.name", dst_owner.to_string());
    a.push("k8s.dst.owner.type", "Deployment");
    a.push("src.zone", "a");
    a.push("dst.zone", "b");
    a
}

fn sum_metric(name: &'static str, unit: &'static str, pts: Vec<(Attributes, i64)>) -> Metric {
    Metric {
        name: name.into(),
        description: "".into(),
        unit: unit.into(),
        data: MetricData::Sum {
            temporality: Temporality::Delta,
            monotonic: true,
            points: pts
                .into_iter()
                .map(|(attributes, v)| NumberPoint {
                    attributes,
                    start_time_ns: 1,
                    time_ns: 2,
                    value: Number::Int(v),
                })
                .collect(),
        },
    }
}

fn batch_of(resource: Attributes, metrics: Vec<Metric>) -> Signal {
    Signal::Metrics(Metrics {
        resource_metrics: vec![ResourceMetrics {
            resource: Resource::new(resource),
            scope: "s".into(),
            metrics,
        }],
    })
}

fn values(batch: &Signal) -> Vec<i64> {
    let Signal::Metrics(m) = batch else { panic!() };
    m.metrics()
        .flat_map(|(_, m)| match &m.data {
            MetricData::Sum { points, .. } => points
                .iter()
                .map(|p| match p.value {
                    Number::Int(i) => i,
                    Number::Double(d) => d as i64,
                })
                .collect::<Vec<_>>(),
            _ => vec![],
        })
        .collect()
}

#[test]
fn include_keeps_only_matching_and_merges_series() {
    let p = processor(
        r#"
tapline_network_flow_bytes:
  include: ["k8s.src.owner.*", "k8s.dst.owner.*", "src.zone", "dst.zone"]
"#,
    );
    let mut batch = batch_of(
        [("host.name", "n")].into_iter().collect(),
        vec![sum_metric(
            "tapline.network.flow.bytes",
            "By",
            vec![
                (decorated("10.0.0.1", "10.0.0.9", "web", "db"), 100),
                (decorated("10.0.0.2", "10.0.0.9", "web", "db"), 50),
                (decorated("10.0.0.3", "10.0.0.8", "web", "cache"), 7),
            ],
        )],
    );
    p.apply(&mut batch);
    let pts = points(&batch);
    assert_eq!(pts.len(), 2, "{pts:?}");
    let keys: Vec<&str> = pts[0].iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "dst.zone",
            "k8s.dst.owner.name",
            "k8s.dst.owner.type",
            "k8s.src.owner.name",
            "k8s.src.owner.type",
            "src.zone"
        ]
    );
    assert_eq!(pts[0].get_str("k8s.dst.owner.name"), Some("db"));
    assert_eq!(pts[1].get_str("k8s.dst.owner.name"), Some("cache"));
    assert_eq!(values(&batch), vec![150, 7]);
}

#[test]
fn empty_config_applies_defaults() {
    let p = processor("{}");
    let mut batch = batch_of(
        Attributes::new(),
        vec![sum_metric(
            "tapline.network.flow.bytes",
            "By",
            vec![
                (decorated("10.0.0.1", "10.0.0.9", "web", "db"), 1),
                (decorated("10.0.0.2", "10.0.0.9", "web", "db"), 2),
            ],
        )],
    );
    p.apply(&mut batch);
    let pts = points(&batch);
    assert_eq!(pts.len(), 1);
    for (k, _) in pts[0].iter() {
        assert!(
            tapline_semconv::metric::NETWORK_FLOW_BYTES
                .default_attributes
                .contains(&k.as_str()),
            "{k} is not a default"
        );
    }
    assert_eq!(pts[0].get_str("transport"), Some("tcp"));
    assert_eq!(pts[0].get("src.address"), None);
    assert_eq!(pts[0].get("k8s.src.name"), None);
    assert_eq!(values(&batch), vec![3]);
}

#[test]
fn unknown_metric_keeps_everything_unless_excluded() {
    let p = processor("custom_*: { exclude: [secret] }");
    let attrs: Attributes = [("a", "1"), ("secret", "x")].into_iter().collect();
    let mut batch = batch_of(
        Attributes::new(),
        vec![
            sum_metric("custom.thing", "1", vec![(attrs.clone(), 1)]),
            sum_metric("other.thing", "1", vec![(attrs, 1)]),
        ],
    );
    p.apply(&mut batch);
    let pts = points(&batch);
    assert_eq!(pts[0].get("secret"), None);
    assert_eq!(pts[0].get_str("a"), Some("1"));
    assert_eq!(pts[1].get_str("secret"), Some("x"));
}

#[test]
fn total_suffix_and_otel_name_match_too() {
    for key in [
        "tapline_network_flow_bytes_total",
        "tapline.network.flow.bytes",
        "tapline_network_flow_*",
    ] {
        let p = processor(&format!("{key}: {{ include: [transport] }}"));
        let mut batch = flow_batch(&[("10.0.0.1", "10.0.0.2", 5), ("10.0.0.3", "10.0.0.2", 6)]);
        p.apply(&mut batch);
        let pts = points(&batch);
        assert_eq!(pts.len(), 1, "{key}");
        assert_eq!(pts[0].len(), 1, "{key}");
        assert_eq!(values(&batch), vec![11]);
    }
}

#[test]
fn every_matching_entry_applies_and_exclude_wins() {
    let p = processor(
        r#"
"*": { exclude: ["k8s.pod.*"] }
db_client_operation_duration:
  include: ["*"]
  exclude: ["db.query.text"]
"#,
    );
    let attrs: Attributes = [
        ("db.query.text", "SELECT 1"),
        ("db.operation.name", "SELECT"),
        ("k8s.pod.name", "p"),
        ("custom", "c"),
    ]
    .into_iter()
    .collect();
    let bounds: Arc<[f64]> = vec![0.1, 1.0].into();
    let mut h1 = HistogramPoint::new(attrs.clone(), bounds.clone(), 1, 2);
    h1.record(0.05);
    let mut h2 = HistogramPoint::new(
        {
            let mut a = attrs.clone();
            a.set("db.query.text", "SELECT 2");
            a
        },
        bounds,
        1,
        3,
    );
    h2.record(5.0);
    let resource: Attributes = [("service.name", "api"), ("k8s.pod.name", "api-1")]
        .into_iter()
        .collect();
    let mut batch = batch_of(
        resource,
        vec![Metric {
            name: "db.client.operation.duration".into(),
            description: "".into(),
            unit: "s".into(),
            data: MetricData::Histogram {
                temporality: Temporality::Delta,
                points: vec![h1, h2],
            },
        }],
    );
    p.apply(&mut batch);
    let Signal::Metrics(m) = &batch else { panic!() };
    let rm = &m.resource_metrics[0];
    assert_eq!(rm.resource.attributes.get_str("service.name"), Some("api"));
    assert_eq!(rm.resource.attributes.get("k8s.pod.name"), None);
    let MetricData::Histogram { points, .. } = &rm.metrics[0].data else {
        panic!()
    };
    assert_eq!(points.len(), 1);
    let keys: Vec<&str> = points[0]
        .attributes
        .iter()
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(keys, ["custom", "db.operation.name"]);
    assert_eq!(points[0].count, 2);
    assert_eq!(points[0].bucket_counts, vec![1, 0, 1]);
    assert_eq!(points[0].time_ns, 3);
}

#[test]
fn resources_that_become_equal_are_merged() {
    let p = processor("\"*\": { exclude: [process.pid] }");
    let mk = |pid: i64, v: i64| ResourceMetrics {
        resource: Resource::new(
            [
                ("service.name", Value::from("api")),
                ("process.pid", Value::Int(pid)),
            ]
            .into_iter()
            .collect(),
        ),
        scope: "s".into(),
        metrics: vec![sum_metric(
            "custom.requests",
            "1",
            vec![([("route", "/a")].into_iter().collect(), v)],
        )],
    };
    let mut batch = Signal::Metrics(Metrics {
        resource_metrics: vec![mk(1, 3), mk(2, 4)],
    });
    p.apply(&mut batch);
    let Signal::Metrics(m) = &batch else { panic!() };
    assert_eq!(m.resource_metrics.len(), 1);
    assert_eq!(values(&batch), vec![7]);
}

#[test]
fn bad_glob_names_the_entry() {
    let cfg: Result<SelectConfig, _> = serde_yaml::from_str("x: { include: [\"a[\"] }");
    assert!(cfg.unwrap_err().to_string().contains("invalid glob"));
    let cfg: Result<SelectConfig, _> = serde_yaml::from_str("x: { inclde: [a] }");
    assert!(cfg.unwrap_err().to_string().contains("inclde"));
}

fn arb_attrs() -> impl Strategy<Value = Attributes> {
    let keys = ["a", "b", "c", "k8s.pod.name", "src.address", "transport"];
    proptest::collection::vec((0..keys.len(), 0..3u8), 0..6).prop_map(move |pairs| {
        let mut a = Attributes::new();
        for (k, v) in pairs {
            a.set(keys[k], format!("v{v}"));
        }
        a
    })
}

proptest! {
    #[test]
    fn counter_totals_survive_selection(
        pts in proptest::collection::vec((arb_attrs(), -1000i64..1000), 0..40),
        include in proptest::option::of(proptest::sample::subsequence(vec!["a", "b", "k8s.*", "*"], 0..3)),
        exclude in proptest::sample::subsequence(vec!["b", "c", "src.*"], 0..2),
        name in proptest::sample::select(vec!["tapline.network.flow.bytes", "custom.metric"]),
    ) {
        let mut cfg = String::from("\"*\":\n");
        if let Some(inc) = &include {
            cfg.push_str(&format!("  include: {inc:?}\n"));
        }
        cfg.push_str(&format!("  exclude: {exclude:?}\n"));
        let p = processor(&cfg);
        let before: i64 = pts.iter().map(|(_, v)| *v).sum();
        let n_before = pts.len();
        let mut batch = batch_of(Attributes::new(), vec![sum_metric(name, "By", pts)]);
        p.apply(&mut batch);
        let after: i64 = values(&batch).iter().sum();
        prop_assert_eq!(before, after);
        let out = points(&batch);
        prop_assert!(out.len() <= n_before);
        // Really merged: no two output series are equal.
        for (i, a) in out.iter().enumerate() {
            for b in &out[i + 1..] {
                prop_assert_ne!(a, b);
            }
        }
    }
}

#[test]
fn defaults_keep_every_listed_attribute() {
    let p = processor("{}");
    let mut a = flow_attributes("10.0.0.1", "10.0.0.2");
    a.push("k8s.src.type", "pod");
    a.push("src.cidr", Str::from("10.0.0.0/8".to_string()));
    let mut batch = batch_of(
        Attributes::new(),
        vec![sum_metric("tapline.network.flow.bytes", "By", vec![(a, 1)])],
    );
    p.apply(&mut batch);
    let keys: Vec<&str> = points(&batch)[0].iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "direction",
            "k8s.src.type",
            "network.type",
            "src.cidr",
            "transport"
        ]
    );
}

proptest! {
    /// Short strings of one length get words as distinct as the strings, so the merge hash
    /// tells apart what differs in any byte, as the bytes it replaced did.
    #[test]
    fn short_words_tell_same_length_strings_apart(
        a in proptest::collection::vec(any::<u8>(), 0..8),
        flip in 0usize..8,
        by in 1u8..=255,
    ) {
        prop_assert_eq!(short_word(&a), short_word(&a.clone()));
        if !a.is_empty() {
            let mut b = a.clone();
            let i = flip % a.len();
            b[i] ^= by;
            prop_assert_ne!(short_word(&a), short_word(&b));
        }
    }
}
