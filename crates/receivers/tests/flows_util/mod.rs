//! Shared by tests/flows_*.rs: the `flows` receiver in a real pipeline graph running inside a
//! test network namespace, feeding a `collect` exporter, and the exported points flattened.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use tapline_core::data::{MetricData, Number, Signal};
use tapline_core::telemetry::Telemetry;
use tapline_test_support::Collect;

pub use tapline_test_support::eventually;
pub use tapline_test_support::netns::*;

/// One exported data point, flattened.
#[derive(Clone, Debug)]
pub struct Point {
    pub exporter: String,
    pub metric: String,
    pub attrs: BTreeMap<String, String>,
    pub value: i64,
}

impl Point {
    pub fn attr(&self, k: &str) -> Option<&str> {
        self.attrs.get(k).map(String::as_str)
    }
}

/// Everything an agent run exported.
pub struct Collected {
    pub points: Vec<Point>,
    pub telemetry: Telemetry,
}

impl Collected {
    /// Sum of `metric` over the points of `exporter` matching every `(key, value)`.
    pub fn sum(&self, exporter: &str, metric: &str, filter: &[(&str, &str)]) -> i64 {
        self.select(exporter, metric, filter).map(|p| p.value).sum()
    }
    pub fn select<'a>(
        &'a self,
        exporter: &'a str,
        metric: &'a str,
        filter: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Point> + 'a {
        self.points.iter().filter(move |p| {
            p.exporter == exporter
                && p.metric == metric
                && filter.iter().all(|(k, v)| p.attr(k) == Some(*v))
        })
    }
    pub fn counter(&self, name: &str, receiver: &str) -> i64 {
        self.telemetry
            .value(name, &[("receiver", receiver)])
            .unwrap_or(0)
    }
}

pub const BYTES: &str = "tapline.network.flow.bytes";
pub const PACKETS: &str = "tapline.network.flow.packets";

/// The graph running inside a network namespace, so the receiver attaches to that
/// namespace's interfaces.
pub struct Agent {
    graph: tapline_test_support::Agent,
    collect: Collect,
}

impl Agent {
    pub fn start(ns: &str, yaml: &str) -> Agent {
        let collect = Collect::new();
        let mut registry = tapline_core::Registry::new();
        tapline_receivers::register(&mut registry);
        registry.register_exporter(collect.clone());
        Agent {
            graph: tapline_test_support::Agent::start_in_netns(ns, yaml, registry),
            collect,
        }
    }

    pub fn gauge(&self, name: &str, receiver: &str) -> i64 {
        self.graph
            .telemetry()
            .value(name, &[("receiver", receiver)])
            .unwrap_or(-1)
    }

    /// Waits (bounded, 10 s) until `receiver` is attached to `n` interfaces.
    pub fn wait_attached(&self, receiver: &str, n: i64) {
        eventually(
            &format!("{receiver} to be attached to {n} interfaces"),
            Duration::from_secs(10),
            || {
                assert!(self.is_running(), "the agent stopped (a receiver failed?)");
                let got = self.gauge("tapline_flows_attached_interfaces", receiver);
                if got == n {
                    Ok(())
                } else {
                    Err(format!("attached to {got}"))
                }
            },
        );
    }

    pub fn is_running(&self) -> bool {
        self.graph.is_running()
    }

    /// Every point exported so far; the graph goes on.
    pub fn exported(&self) -> Collected {
        Collected {
            points: points(&self.collect),
            telemetry: self.graph.telemetry().clone(),
        }
    }

    /// Stops the graph (the receiver exports what the kernel still holds) and returns every
    /// point exported.
    pub fn stop(self) -> Collected {
        let telemetry = self.graph.stop();
        Collected {
            points: points(&self.collect),
            telemetry,
        }
    }
}

/// The flow data points `collect` got, flattened.
fn points(collect: &Collect) -> Vec<Point> {
    let mut points = Vec::new();
    for (exporter, b) in collect.batches_by_exporter() {
        let Signal::Metrics(m) = &*b else { continue };
        for (_, metric) in m.metrics() {
            let MetricData::Sum { points: ps, .. } = &metric.data else {
                continue;
            };
            for p in ps {
                let Number::Int(v) = p.value else {
                    panic!("flow metrics are integers")
                };
                points.push(Point {
                    exporter: exporter.clone(),
                    metric: metric.name.to_string(),
                    attrs: p
                        .attributes
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_text().into_owned()))
                        .collect(),
                    value: v,
                });
            }
        }
    }
    points
}

pub const ALL_ATTRIBUTES: &str = "[src.address, dst.address, src.port, dst.port, transport, network.type, direction, client.port, server.port, iface, iface.direction, tapline.ip]";

/// A config with one `flows` receiver (extra settings in `flows`, YAML flow-mapping entries)
/// feeding the `collect` exporter.
pub fn single(flows: &str) -> String {
    format!(
        "receivers: {{ flows: {{ {flows} }} }}
exporters: {{ collect: {{}} }}
service:
  pipelines: {{ metrics: {{ receivers: [flows], exporters: [collect] }} }}
"
    )
}

pub fn within_1pct(a: u64, b: u64) -> bool {
    a.abs_diff(b) * 100 <= b
}
