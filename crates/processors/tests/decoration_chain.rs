//! The decoration chain (k8s → rdns → zones → cidr → select) on whole batches gives the same
//! output as the same processors applied one data point at a time, where nothing learnt from
//! one point (key positions per layout, parsed addresses, a copied list) can apply to another.
//! Random batches mix layouts (keys in other orders, keys as shared strings with the same text,
//! ends already decorated), points that share one attribute list, and addresses that are not
//! Kubernetes objects or not addresses at all. The input a batch was cloned from stays intact.

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use tapline_core::data::{
    Attributes, Metric, MetricData, Metrics, Number, NumberPoint, Resource, ResourceMetrics,
    Signal, Str, Temporality, Value,
};
use tapline_core::pipeline::BatchFn;
use tapline_processors::cidr::{CidrConfig, CidrProcessor};
use tapline_processors::k8s::{K8sCache, K8sProcessor};
use tapline_processors::rdns::{NameCache, RdnsConfig, RdnsProcessor};
use tapline_processors::select::{SelectConfig, SelectProcessor};
use tapline_processors::zones::{ZonesConfig, ZonesProcessor};
use tapline_test_support::fixtures::bytes_sum;
use tapline_test_support::fixtures::k8s as fx;

const ADDRESSES: &[&str] = &[
    "10.244.0.1",
    "10.244.0.2",
    "10.244.0.3",
    "10.244.0.4",
    "10.96.0.1",
    "10.96.0.2",
    "192.168.0.1",
    "203.0.113.1",
    "203.0.113.2",
    "198.51.100.7",
    "::ffff:10.244.0.2",
    "not-an-ip",
];

struct Chain {
    cache: Arc<K8sCache>,
    k8s: K8sProcessor,
    rdns: RdnsProcessor,
    zones: ZonesProcessor,
    cidr: CidrProcessor,
    select: SelectProcessor,
}

fn chain() -> Chain {
    let cache = Arc::new(K8sCache::new());
    cache.update(|s| {
        for n in 0..3 {
            s.apply_node(
                &serde_json::from_value(fx::node(
                    &format!("node-{n}"),
                    &format!("192.168.0.{}", n + 1),
                    Some(&format!("zone-{}", n % 2)),
                ))
                .unwrap(),
            );
        }
        for p in 0..4 {
            s.apply_replicaset(
                &serde_json::from_value(fx::replicaset(
                    "ns",
                    &format!("app-{}-5c6d7f8b9", p % 2),
                    &format!("app-{}", p % 2),
                ))
                .unwrap(),
            );
            s.apply_pod(
                &serde_json::from_value(fx::pod(
                    "ns",
                    &format!("app-{}-5c6d7f8b9-{p}", p % 2),
                    &format!("10.244.0.{}", p + 1),
                    &format!("node-{}", p % 3),
                    &format!("192.168.0.{}", p % 3 + 1),
                    Some(("apps/v1", "ReplicaSet", &format!("app-{}-5c6d7f8b9", p % 2))),
                    &fx::container_id(p),
                ))
                .unwrap(),
            );
        }
        for i in 0..2 {
            s.apply_service(
                &serde_json::from_value(fx::service(
                    "ns",
                    &format!("svc-{i}"),
                    &format!("10.96.0.{}", i + 1),
                ))
                .unwrap(),
            );
        }
    });
    let names = Arc::new(NameCache::new(1000));
    names.insert(
        "203.0.113.1".parse().unwrap(),
        Some("one.example.net".into()),
        Duration::from_secs(3600),
    );
    names.insert(
        "203.0.113.2".parse().unwrap(),
        None,
        Duration::from_secs(3600),
    );
    let cidr: CidrConfig = serde_json::from_value(serde_json::json!({"definitions": [
        "10.244.0.0/16", {"cidr": "10.96.0.0/12", "name": "services"}, "0.0.0.0/0"
    ]}))
    .unwrap();
    let zones: ZonesConfig =
        serde_json::from_value(serde_json::json!({"cidrs": {"static": ["203.0.113.0/24"]}}))
            .unwrap();
    Chain {
        cache: cache.clone(),
        k8s: K8sProcessor::new(cache.clone(), "/proc".into()),
        rdns: RdnsProcessor::new(RdnsConfig::default(), names).unwrap(),
        zones: ZonesProcessor::new(zones, cache).unwrap(),
        cidr: CidrProcessor::new(cidr).unwrap(),
        select: SelectProcessor::new(SelectConfig::default()).unwrap(),
    }
}

/// One generated data point.
#[derive(Clone, Debug)]
struct PointSpec {
    src: usize,
    dst: usize,
    /// Bit i: the i-th of [`EXTRAS`] is already set.
    extras: u8,
    /// Keys rotated left by this much.
    rotate: usize,
    /// Keys as shared strings (same text, other addresses) instead of static ones.
    shared_keys: bool,
    /// Reuses the previous point's attribute list (one shared list, as bytes and packets
    /// points of one flow have).
    same_list_as_previous: bool,
    value: i64,
}

const EXTRAS: &[(&str, &str)] = &[
    ("src.name", "given-name"),
    ("k8s.dst.name", "given-k8s-name"),
    ("src.zone", "given-zone"),
    ("dst.cidr", "given-cidr"),
];

fn attributes(p: &PointSpec) -> Attributes {
    let mut pairs: Vec<(&'static str, Value)> = vec![
        ("src.address", ADDRESSES[p.src].to_string().into()),
        ("dst.address", ADDRESSES[p.dst].to_string().into()),
        ("src.port", Value::Int(43512)),
        ("dst.port", Value::Int(80)),
        ("transport", "tcp".into()),
        ("network.type", "ipv4".into()),
        ("direction", "egress".into()),
    ];
    for (i, (k, v)) in EXTRAS.iter().enumerate() {
        if p.extras & (1 << i) != 0 {
            pairs.push((k, Value::from(*v)));
        }
    }
    let n = pairs.len();
    pairs.rotate_left(p.rotate % n);
    pairs
        .into_iter()
        .map(|(k, v)| {
            let key = if p.shared_keys {
                Str::from(k.to_string())
            } else {
                Str::from_static(k)
            };
            (key, v)
        })
        .collect()
}

fn point_spec() -> impl Strategy<Value = PointSpec> {
    (
        0..ADDRESSES.len(),
        0..ADDRESSES.len(),
        0u8..16,
        0usize..10,
        any::<bool>(),
        prop::bool::weighted(0.3),
        1i64..1000,
    )
        .prop_map(
            |(src, dst, extras, rotate, shared_keys, same_list_as_previous, value)| PointSpec {
                src,
                dst,
                // Mostly undecorated, as the flows receiver writes them.
                extras: if extras >= 8 { 0 } else { extras },
                rotate: if rotate >= 6 { 0 } else { rotate },
                shared_keys,
                same_list_as_previous,
                value,
            },
        )
}

fn batch_of(metrics: Vec<Metric>) -> Signal {
    Signal::Metrics(Metrics {
        resource_metrics: vec![ResourceMetrics {
            resource: Resource::new([("host.name", "node-0")].into_iter().collect()),
            scope: "tapline.flows".into(),
            metrics,
        }],
    })
}

/// Bytes and packets points of the generated flows; consecutive points may share a list.
fn batch(specs: &[PointSpec]) -> Signal {
    let mut lists: Vec<Attributes> = Vec::new();
    for s in specs {
        let list = match lists.last() {
            Some(prev) if s.same_list_as_previous => prev.clone(),
            _ => attributes(s),
        };
        lists.push(list);
    }
    let points = |scale: i64| {
        lists
            .iter()
            .zip(specs)
            .map(|(a, s)| NumberPoint {
                attributes: a.clone(),
                start_time_ns: 1,
                time_ns: 2,
                value: Number::Int(s.value * scale),
            })
            .collect()
    };
    batch_of(vec![
        bytes_sum("tapline.network.flow.bytes", points(100)),
        bytes_sum("tapline.network.flow.packets", points(1)),
    ])
}

fn metrics(batch: &Signal) -> &[Metric] {
    let Signal::Metrics(m) = batch else {
        unreachable!()
    };
    assert_eq!(m.resource_metrics.len(), 1);
    &m.resource_metrics[0].metrics
}

/// `p` applied to each point alone (in a batch of its own, with a fresh copy of its list),
/// the results put back together: metrics in the input's order, then the ones `p` added.
fn point_by_point(p: &dyn BatchFn, input: &Signal) -> Signal {
    let mut out: Vec<Metric> = Vec::new();
    for metric in metrics(input) {
        let MetricData::Sum { points, .. } = &metric.data else {
            unreachable!()
        };
        for point in points {
            let one = NumberPoint {
                attributes: point
                    .attributes
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                ..point.clone()
            };
            let mut single = batch_of(vec![Metric {
                data: MetricData::Sum {
                    temporality: Temporality::Delta,
                    monotonic: true,
                    points: vec![one],
                },
                ..metric.clone()
            }]);
            p.apply(&mut single);
            for m in metrics(&single) {
                let MetricData::Sum { points, .. } = &m.data else {
                    unreachable!()
                };
                match out.iter_mut().find(|o| o.name == m.name) {
                    Some(Metric {
                        data: MetricData::Sum { points: into, .. },
                        ..
                    }) => into.extend(points.iter().cloned()),
                    _ => out.push(m.clone()),
                }
            }
        }
        if !out.iter().any(|o| o.name == metric.name) {
            out.push(Metric {
                data: MetricData::Sum {
                    temporality: Temporality::Delta,
                    monotonic: true,
                    points: Vec::new(),
                },
                ..metric.clone()
            });
        }
    }
    // Metrics the processor added go after the input's, as a whole batch places them.
    let input_names: Vec<&Str> = metrics(input).iter().map(|m| &m.name).collect();
    let (mut kept, added): (Vec<Metric>, Vec<Metric>) = out
        .into_iter()
        .partition(|m| input_names.contains(&&m.name));
    kept.sort_by_key(|m| input_names.iter().position(|n| **n == m.name));
    kept.extend(added);
    batch_of(kept)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn whole_batches_decorate_and_select_as_points_alone_do(
        specs in prop::collection::vec(point_spec(), 0..40),
    ) {
        let c = chain();
        let input = batch(&specs);
        let pristine = batch(&specs);

        let mut whole = input.clone();
        let mut reference = input.clone();
        for p in [&c.k8s as &dyn BatchFn, &c.rdns, &c.zones, &c.cidr] {
            p.apply(&mut whole);
            reference = point_by_point(p, &reference);
            prop_assert_eq!(&whole, &reference);
        }
        // select merges across points: the reference selects each point alone, then lets
        // select merge the already-selected points.
        c.select.apply(&mut whole);
        let mut reference = point_by_point(&c.select, &reference);
        c.select.apply(&mut reference);
        prop_assert_eq!(&whole, &reference);
        prop_assert_eq!(&input, &pristine, "the input the batch was cloned from is unchanged");
    }
}

/// The chain remembers what an address string resolved to across batches (the flows receiver
/// reuses one string per address): a change to the cache between two batches must show in the
/// second, for the same strings.
#[test]
fn a_cache_change_between_batches_is_seen() {
    let c = chain();
    let (src, dst): (Str, Str) = (
        "10.244.0.1".to_string().into(),
        "10.244.0.9".to_string().into(),
    );
    let flow = || {
        let attrs: Attributes = [
            (Str::from_static("src.address"), Value::Str(src.clone())),
            (Str::from_static("dst.address"), Value::Str(dst.clone())),
        ]
        .into_iter()
        .collect();
        batch_of(vec![bytes_sum(
            "tapline.network.flow.bytes",
            vec![NumberPoint {
                attributes: attrs,
                start_time_ns: 1,
                time_ns: 2,
                value: Number::Int(1),
            }],
        )])
    };
    let decorated = |c: &Chain| {
        let mut b = flow();
        for p in [&c.k8s as &dyn BatchFn, &c.rdns, &c.zones] {
            p.apply(&mut b);
        }
        let MetricData::Sum { points, .. } = &metrics(&b)[0].data else {
            unreachable!()
        };
        let get = |k: &str| points[0].attributes.get_str(k).map(str::to_string);
        (
            get("k8s.src.name"),
            get("src.zone"),
            get("k8s.dst.name"),
            get("dst.zone"),
        )
    };
    let pod = |name: &str, ip: &str, node: usize| {
        serde_json::from_value(fx::pod(
            "ns",
            name,
            ip,
            &format!("node-{node}"),
            &format!("192.168.0.{}", node + 1),
            None,
            &fx::container_id(100 + node),
        ))
        .unwrap()
    };
    let before = decorated(&c);
    assert_eq!(before.0.as_deref(), Some("app-0-5c6d7f8b9-0"));
    assert_eq!(before.1.as_deref(), Some("zone-0"));
    assert_eq!((before.2, before.3), (None, None));

    // The pod at src goes, another takes its IP on a node in another zone; dst appears.
    c.cache.update(|s| {
        s.delete_pod(&pod("app-0-5c6d7f8b9-0", "10.244.0.1", 0));
        s.apply_pod(&pod("moved", "10.244.0.1", 1));
        s.apply_pod(&pod("new", "10.244.0.9", 2));
    });
    let after = decorated(&c);
    assert_eq!(after.0.as_deref(), Some("moved"));
    assert_eq!(after.1.as_deref(), Some("zone-1"));
    assert_eq!(after.2.as_deref(), Some("new"));
    assert_eq!(after.3.as_deref(), Some("zone-0"));

    // A node changes zone: its pods' zone follows.
    c.cache.update(|s| {
        s.apply_node(
            &serde_json::from_value(fx::node("node-1", "192.168.0.2", Some("zone-9"))).unwrap(),
        )
    });
    assert_eq!(decorated(&c).1.as_deref(), Some("zone-9"));
}
