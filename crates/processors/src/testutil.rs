//! Batches shaped like the flows receiver's output, for tests and benchmarks.

use tapline_core::data::{
    Attributes, Metric, MetricData, Metrics, Number, NumberPoint, Resource, ResourceMetrics,
    Signal, Temporality,
};

/// The attributes the flows receiver puts on a data point.
pub fn flow_attributes(src: &str, dst: &str) -> Attributes {
    let mut a = Attributes::with_capacity(32);
    a.push("src.address", src.to_string());
    a.push("dst.address", dst.to_string());
    a.push("src.port", 43512u16);
    a.push("dst.port", 80u16);
    a.push("client.port", 43512u16);
    a.push("server.port", 80u16);
    a.push("transport", "tcp");
    a.push("network.type", "ipv4");
    a.push("direction", "egress");
    a.push("iface", "eth0");
    a.push("iface.direction", "egress");
    a.push("tapline.ip", "192.0.2.1");
    a
}

/// A metric of the given name and unit with one delta-sum point per `(src, dst, value)`.
pub fn flow_metric(name: &'static str, flows: &[(&str, &str, i64)]) -> Metric {
    Metric {
        name: name.into(),
        description: "".into(),
        unit: "By".into(),
        data: MetricData::Sum {
            temporality: Temporality::Delta,
            monotonic: true,
            points: flows
                .iter()
                .map(|(s, d, v)| NumberPoint {
                    attributes: flow_attributes(s, d),
                    start_time_ns: 1_000,
                    time_ns: 2_000,
                    value: Number::Int(*v),
                })
                .collect(),
        },
    }
}

/// One `tapline.network.flow.bytes` metric with one point per `(src, dst, bytes)`.
pub fn flow_batch(flows: &[(&str, &str, i64)]) -> Signal {
    Signal::Metrics(Metrics {
        resource_metrics: vec![ResourceMetrics {
            resource: Resource::new([("host.name", "node-a")].into_iter().collect()),
            scope: "tapline.flows".into(),
            metrics: vec![flow_metric("tapline.network.flow.bytes", flows)],
        }],
    })
}

/// The attributes of the first data point of the first metric.
pub fn first_point_attrs(batch: &Signal) -> &Attributes {
    points(batch)[0]
}

/// Every number point's attributes, in order.
pub fn points(batch: &Signal) -> Vec<&Attributes> {
    let Signal::Metrics(m) = batch else {
        panic!("expected metrics, got {:?}", batch.kind())
    };
    m.metrics()
        .flat_map(|(_, metric)| match &metric.data {
            MetricData::Sum { points, .. } | MetricData::Gauge { points } => {
                points.iter().map(|p| &p.attributes).collect::<Vec<_>>()
            }
            MetricData::Histogram { points, .. } => points.iter().map(|p| &p.attributes).collect(),
        })
        .collect()
}
