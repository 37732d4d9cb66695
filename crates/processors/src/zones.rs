//! `zones`: the availability zone of each end of a flow, and the bytes that cross zones.
//!
//! ```yaml
//! processors:
//!   zones:
//!     cidrs:                       # optional static map, for what Kubernetes does not know
//!       eu-west-1a: [10.0.0.0/20]
//!       eu-west-1b: [10.0.16.0/20]
//!     extension: k8s_metadata      # optional: the cache of this `k8s_metadata` extension
//! ```
//!
//! - A pod's zone is its node's `topology.kubernetes.io/zone` label, and a node IP's zone is the
//!   node's. Those come from a Kubernetes cache: the `k8s_metadata` extension named by
//!   `extension`, or else the graph's default cache that `k8s` processors naming no extension
//!   fill ([`crate::k8s::K8sMetadata`]); this processor never starts watchers of its own. Otherwise, or when Kubernetes does not know the address, the
//!   narrowest `cidrs` entry decides.
//! - Writes `src.zone` / `dst.zone` on data points and spans.
//! - For every `tapline.network.flow.bytes` point whose two ends are in different known zones,
//!   adds a point to `tapline.network.inter.zone.bytes` (delta sum; Prometheus
//!   `tapline_network_inter_zone_bytes_total`) with the same attributes, zones included.

use std::collections::BTreeMap;
use std::sync::Arc;

use ipnet::IpNet;
use serde::Deserialize;
use tapline_core::data::{Metric, MetricData, Signal, SignalKind, Str};
use tapline_core::pipeline::{BatchFn, BatchLayer, ProcessorLayer};
use tapline_core::{BuildContext, Component, ConfigErrors, ProcessorComponent};

use crate::cidr::CidrTable;
use crate::k8s::{K8sCache, K8sMetadata, K8sMetadataExtension, Resolver};
use crate::net::{self, End, EndSlots, Layouts};
use tapline_semconv::metric;

pub const SIGNALS: &[SignalKind] = &[SignalKind::Metrics, SignalKind::Traces];
pub const FLOW_BYTES: &str = metric::NETWORK_FLOW_BYTES.name;
pub const INTER_ZONE_BYTES: &str = metric::NETWORK_INTER_ZONE_BYTES.name;

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZonesConfig {
    /// zone → CIDRs.
    #[serde(default)]
    pub cidrs: BTreeMap<String, Vec<String>>,
    /// A `k8s_metadata` extension whose cache gives node zones.
    #[serde(default)]
    pub extension: Option<String>,
}

pub struct ZonesProcessor {
    cache: Arc<K8sCache>,
    table: CidrTable,
}

impl ZonesProcessor {
    pub fn new(cfg: ZonesConfig, cache: Arc<K8sCache>) -> Result<Self, (String, String)> {
        let mut defs = Vec::new();
        let mut seen = std::collections::HashMap::new();
        for (zone, nets) in cfg.cidrs {
            for (i, text) in nets.iter().enumerate() {
                let field = format!("cidrs.{zone}[{i}]");
                let n: IpNet = text.trim().parse().map_err(|_| {
                    (
                        field.clone(),
                        format!("{text:?} is not a CIDR (write e.g. 10.0.0.0/20)"),
                    )
                })?;
                if let Some(other) = seen.insert(n.trunc(), zone.clone()) {
                    return Err((field, format!("{text} is already in zone {other:?}")));
                }
                defs.push((n.trunc(), Str::from(zone.clone())));
            }
        }
        Ok(ZonesProcessor {
            cache,
            table: CidrTable::new(&defs),
        })
    }
}

impl BatchFn for ZonesProcessor {
    fn apply(&self, batch: &mut Signal) {
        let state = self.cache.read();
        // Shares the memo `k8s` fills: an address is looked up once for the chain.
        let mut resolver = Resolver::new(&state);
        let table = &self.table;
        let mut zone_of = |addr: &Str| -> Option<Str> {
            let at = resolver.resolve(addr);
            let r = resolver.get(at);
            r.zone
                .as_ref()
                .or_else(|| r.ip.and_then(|ip| table.lookup(ip)))
                .cloned()
        };
        let mut layouts: Layouts<EndSlots> = Layouts::default();
        let mut decorate = |attrs: &mut tapline_core::data::Attributes| -> bool {
            let slots = *layouts.get(attrs, |a| EndSlots::find(a, End::zone_key));
            // Zones written before this processor, and the ones it adds.
            let mut written: [Option<Str>; 2] = [None, None];
            let mut found: [Option<(&'static str, Str)>; 2] = [None, None];
            for (i, end) in End::BOTH.into_iter().enumerate() {
                if slots.written[i] {
                    if let Some(tapline_core::data::Value::Str(z)) = attrs.get(end.zone_key()) {
                        written[i] = Some(z.clone());
                    }
                    continue;
                }
                found[i] = slots
                    .address(attrs, i)
                    .and_then(&mut zone_of)
                    .map(|z| (end.zone_key(), z));
            }
            let zone = |i: usize| written[i].as_ref().or(found[i].as_ref().map(|(_, z)| z));
            let crossing = matches!((zone(0), zone(1)), (Some(a), Some(b)) if a != b);
            let what = net::push_ends(attrs, found);
            if what != 0 {
                layouts.appended(attrs, what);
            }
            crossing
        };
        match batch {
            Signal::Metrics(m) => {
                for rm in &mut m.resource_metrics {
                    let mut inter: Vec<Metric> = Vec::new();
                    for metric in &mut rm.metrics {
                        let is_bytes = metric.name == FLOW_BYTES;
                        let MetricData::Sum {
                            temporality,
                            monotonic,
                            points,
                        } = &mut metric.data
                        else {
                            metric.data.for_each_attributes(|a| {
                                decorate(a);
                            });
                            continue;
                        };
                        let mut crossing = Vec::new();
                        for p in points.iter_mut() {
                            if decorate(&mut p.attributes) && is_bytes {
                                crossing.push(p.clone());
                            }
                        }
                        if !crossing.is_empty() {
                            inter.push(Metric {
                                name: Str::from_static(INTER_ZONE_BYTES),
                                description: Str::from_static(
                                    metric::NETWORK_INTER_ZONE_BYTES.description,
                                ),
                                unit: Str::from_static(metric::NETWORK_INTER_ZONE_BYTES.unit),
                                data: MetricData::Sum {
                                    temporality: *temporality,
                                    monotonic: *monotonic,
                                    points: crossing,
                                },
                            });
                        }
                    }
                    rm.metrics.extend(inter);
                }
            }
            Signal::Traces(t) => t.spans_mut().for_each(|s| {
                decorate(&mut s.attributes);
            }),
        }
    }
}

pub struct ZonesFactory;

impl Component for ZonesFactory {
    type Config = ZonesConfig;
    const TYPE_NAME: &'static str = "zones";
    const DESCRIPTION: &'static str =
        "Adds src.zone/dst.zone (Kubernetes node zones or static CIDRs) and counts inter-zone bytes";
    const SIGNALS: &'static [SignalKind] = SIGNALS;
}

impl ProcessorComponent for ZonesFactory {
    fn build(&self, cfg: ZonesConfig, ctx: &BuildContext) -> Result<ProcessorLayer, ConfigErrors> {
        let metadata = match &cfg.extension {
            Some(name) => ctx.extension::<K8sMetadataExtension>("extension", name)?,
            None => K8sMetadata::default_for(ctx)?,
        };
        let p = ZonesProcessor::new(cfg, metadata.cache.clone())?;
        Ok(BatchLayer::boxed(p, &ctx.id, &ctx.telemetry))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapline_core::data::Number;
    use tapline_test_support::fixtures::k8s as fx;
    use tapline_test_support::fixtures::{flow_batch, points};

    fn cache() -> Arc<K8sCache> {
        let c = Arc::new(K8sCache::new());
        c.update(|s| {
            s.apply_node(
                &serde_json::from_value(fx::node("n1", "192.168.0.1", Some("zone-a"))).unwrap(),
            );
            s.apply_node(
                &serde_json::from_value(fx::node("n2", "192.168.0.2", Some("zone-b"))).unwrap(),
            );
            s.apply_pod(
                &serde_json::from_value(fx::pod(
                    "a",
                    "p1",
                    "10.244.1.5",
                    "n1",
                    "192.168.0.1",
                    None,
                    &fx::container_id(1),
                ))
                .unwrap(),
            );
            s.apply_pod(
                &serde_json::from_value(fx::pod(
                    "a",
                    "p2",
                    "10.244.2.5",
                    "n2",
                    "192.168.0.2",
                    None,
                    &fx::container_id(2),
                ))
                .unwrap(),
            );
        });
        c
    }

    fn processor(yaml: &str) -> ZonesProcessor {
        ZonesProcessor::new(serde_yaml::from_str(yaml).unwrap(), cache()).unwrap()
    }

    #[test]
    fn pods_inherit_node_zones_and_cross_zone_bytes_are_counted() {
        let p = processor("cidrs: { static-z: [172.16.0.0/12] }");
        let mut batch = flow_batch(&[
            ("10.244.1.5", "10.244.2.5", 100), // a → b
            ("10.244.1.5", "192.168.0.1", 7),  // a → a (node)
            ("10.244.2.5", "172.16.3.3", 20),  // b → static
            ("10.244.2.5", "8.8.8.8", 1),      // unknown end
        ]);
        p.apply(&mut batch);
        let pts = points(&batch);
        assert_eq!(pts[0].get_str("src.zone"), Some("zone-a"));
        assert_eq!(pts[0].get_str("dst.zone"), Some("zone-b"));
        assert_eq!(pts[1].get_str("dst.zone"), Some("zone-a"));
        assert_eq!(pts[2].get_str("dst.zone"), Some("static-z"));
        assert_eq!(pts[3].get("dst.zone"), None);
        let Signal::Metrics(m) = &batch else { panic!() };
        let inter = &m.resource_metrics[0].metrics[1];
        assert_eq!(inter.name, INTER_ZONE_BYTES);
        let MetricData::Sum {
            points,
            temporality,
            monotonic,
        } = &inter.data
        else {
            panic!()
        };
        assert_eq!(*temporality, tapline_core::data::Temporality::Delta);
        assert!(*monotonic);
        let got: Vec<(i64, &str, &str)> = points
            .iter()
            .map(|p| {
                let Number::Int(v) = p.value else { panic!() };
                (
                    v,
                    p.attributes.get_str("src.zone").unwrap(),
                    p.attributes.get_str("dst.zone").unwrap(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![(100, "zone-a", "zone-b"), (20, "zone-b", "static-z")]
        );
    }

    #[test]
    fn packets_get_zones_but_no_inter_zone_metric() {
        let p = processor("{}");
        let mut batch = flow_batch(&[("10.244.1.5", "10.244.2.5", 3)]);
        if let Signal::Metrics(m) = &mut batch {
            m.resource_metrics[0].metrics[0].name = "tapline.network.flow.packets".into();
        }
        p.apply(&mut batch);
        let Signal::Metrics(m) = &batch else { panic!() };
        assert_eq!(m.resource_metrics[0].metrics.len(), 1);
        assert_eq!(points(&batch)[0].get_str("dst.zone"), Some("zone-b"));
    }

    #[test]
    fn config_errors_name_the_entry() {
        let e = ZonesProcessor::new(
            serde_yaml::from_str("cidrs: { z: [10.0.0.0/8, nope] }").unwrap(),
            cache(),
        )
        .err()
        .unwrap();
        assert_eq!(e.0, "cidrs.z[1]");
        let e = ZonesProcessor::new(
            serde_yaml::from_str("cidrs: { a: [10.0.0.0/8], b: [10.0.0.0/8] }").unwrap(),
            cache(),
        )
        .err()
        .unwrap();
        assert!(e.1.contains("already in zone \"a\""), "{e:?}");
    }
}
