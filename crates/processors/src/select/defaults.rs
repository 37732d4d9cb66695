//! The default attribute set of every metric tapline produces: the one table that the `select`
//! processor, the docs (`docs/metrics.md`) and any other code use.
//!
//! A default set keeps the attributes whose values come from a small, bounded set (owners,
//! namespaces, zones, configured CIDRs, methods, status codes, routes) and drops the ones that
//! grow with traffic (addresses, client ports, pod names, query texts).

/// One metric's documented defaults.
#[derive(Clone, Copy, Debug)]
pub struct MetricDefaults {
    /// OpenTelemetry name.
    pub name: &'static str,
    /// `sum`, `histogram`, `gauge`.
    pub instrument: &'static str,
    /// UCUM unit.
    pub unit: &'static str,
    /// Data point attributes kept by default.
    pub attributes: &'static [&'static str],
    /// Why the set is what it is and what it costs, for the docs.
    pub cardinality: &'static str,
}

const FLOW_DEFAULTS: &[&str] = &[
    "k8s.src.namespace",
    "k8s.src.owner.name",
    "k8s.src.owner.type",
    "k8s.src.type",
    "k8s.dst.namespace",
    "k8s.dst.owner.name",
    "k8s.dst.owner.type",
    "k8s.dst.type",
    "src.zone",
    "dst.zone",
    "src.cidr",
    "dst.cidr",
    "transport",
    "network.type",
    "direction",
];

const FLOW_CARDINALITY: &str = "At most (owners × owners) per namespace pair, times zones and \
configured CIDRs, times transport (tcp/udp), network.type (ipv4/ipv6) and direction \
(request/response). Addresses, ports, interface names and pod names are left out: they grow with \
traffic and churn. Traffic to ends that are neither Kubernetes objects nor in a configured CIDR \
collapses into one series per direction, so configure `cidr` (with a `0.0.0.0/0` catch-all) to \
tell external destinations apart, or include `dst.name` where the set of peers is known to be small.";

const HTTP_DEFAULTS: &[&str] = &[
    "http.request.method",
    "http.response.status_code",
    "http.route",
    "url.scheme",
    "network.protocol.version",
    "server.address",
    "server.port",
    "error.type",
];

const HTTP_CARDINALITY: &str = "Methods × status codes × routes. `http.route` is the templated \
route (`/users/{id}`), never the raw path; `server.address` is the host the client asked for, \
bounded by the services called. `client.address` and `url.path` are left out.";

const RPC_DEFAULTS: &[&str] = &[
    "rpc.system.name",
    "rpc.method",
    "rpc.response.status_code",
    "server.address",
    "server.port",
    "error.type",
];

const RPC_CARDINALITY: &str = "Services × methods × status codes, all bounded by the protobuf \
definitions. `client.address` is left out.";

const DB_DEFAULTS: &[&str] = &[
    "db.system.name",
    "db.operation.name",
    "db.collection.name",
    "db.namespace",
    "db.response.status_code",
    "server.address",
    "server.port",
    "error.type",
];

const DB_CARDINALITY: &str = "Operations × collections (tables) × status codes. `db.query.text` \
is left out: it is unbounded even when parameters are stripped.";

const MESSAGING_DEFAULTS: &[&str] = &[
    "messaging.system",
    "messaging.operation.name",
    "messaging.operation.type",
    "messaging.destination.name",
    "server.address",
    "server.port",
    "error.type",
];

const MESSAGING_CARDINALITY: &str = "Operations × destinations (topics, queues). Partition and \
message ids are left out.";

/// Every metric with a documented default set.
pub const METRIC_DEFAULTS: &[MetricDefaults] = &[
    MetricDefaults {
        name: "tapline.network.flow.bytes",
        instrument: "sum (delta, monotonic)",
        unit: "By",
        attributes: FLOW_DEFAULTS,
        cardinality: FLOW_CARDINALITY,
    },
    MetricDefaults {
        name: "tapline.network.flow.packets",
        instrument: "sum (delta, monotonic)",
        unit: "{packet}",
        attributes: FLOW_DEFAULTS,
        cardinality: FLOW_CARDINALITY,
    },
    MetricDefaults {
        name: "tapline.network.inter.zone.bytes",
        instrument: "sum (delta, monotonic)",
        unit: "By",
        attributes: &[
            "src.zone",
            "dst.zone",
            "k8s.src.namespace",
            "k8s.src.owner.name",
            "k8s.src.owner.type",
            "k8s.dst.namespace",
            "k8s.dst.owner.name",
            "k8s.dst.owner.type",
            "transport",
            "direction",
        ],
        cardinality: "Zone pairs (zones² at most, usually a handful) × owner pairs that talk \
across zones. Produced by the `zones` processor only for flows whose two ends are in \
different known zones.",
    },
    MetricDefaults {
        name: "http.server.request.duration",
        instrument: "histogram",
        unit: "s",
        attributes: HTTP_DEFAULTS,
        cardinality: HTTP_CARDINALITY,
    },
    MetricDefaults {
        name: "http.client.request.duration",
        instrument: "histogram",
        unit: "s",
        attributes: HTTP_DEFAULTS,
        cardinality: HTTP_CARDINALITY,
    },
    MetricDefaults {
        name: "http.server.request.body.size",
        instrument: "histogram",
        unit: "By",
        attributes: HTTP_DEFAULTS,
        cardinality: HTTP_CARDINALITY,
    },
    MetricDefaults {
        name: "http.server.response.body.size",
        instrument: "histogram",
        unit: "By",
        attributes: HTTP_DEFAULTS,
        cardinality: HTTP_CARDINALITY,
    },
    MetricDefaults {
        name: "http.client.request.body.size",
        instrument: "histogram",
        unit: "By",
        attributes: HTTP_DEFAULTS,
        cardinality: HTTP_CARDINALITY,
    },
    MetricDefaults {
        name: "http.client.response.body.size",
        instrument: "histogram",
        unit: "By",
        attributes: HTTP_DEFAULTS,
        cardinality: HTTP_CARDINALITY,
    },
    MetricDefaults {
        name: "rpc.server.call.duration",
        instrument: "histogram",
        unit: "s",
        attributes: RPC_DEFAULTS,
        cardinality: RPC_CARDINALITY,
    },
    MetricDefaults {
        name: "rpc.client.call.duration",
        instrument: "histogram",
        unit: "s",
        attributes: RPC_DEFAULTS,
        cardinality: RPC_CARDINALITY,
    },
    MetricDefaults {
        name: "db.client.operation.duration",
        instrument: "histogram",
        unit: "s",
        attributes: DB_DEFAULTS,
        cardinality: DB_CARDINALITY,
    },
    MetricDefaults {
        name: "messaging.client.operation.duration",
        instrument: "histogram",
        unit: "s",
        attributes: MESSAGING_DEFAULTS,
        cardinality: MESSAGING_CARDINALITY,
    },
];

/// The defaults of a metric by its OpenTelemetry name.
pub fn defaults_for(name: &str) -> Option<&'static MetricDefaults> {
    METRIC_DEFAULTS.iter().find(|d| d.name == name)
}

/// Renders the table as the "Default attributes" part of `docs/metrics.md`; a test keeps the
/// document and this table in agreement.
pub fn markdown() -> String {
    let mut out = String::new();
    for d in METRIC_DEFAULTS {
        out.push_str(&format!(
            "### `{}`\n\n{}, unit `{}`. Prometheus: `{}`.\n\nDefault attributes:\n\n",
            d.name,
            d.instrument,
            d.unit,
            super::prometheus_name(d.name, d.unit, d.instrument.starts_with("sum"))
        ));
        for a in d.attributes {
            out.push_str(&format!("- `{a}`\n"));
        }
        out.push_str(&format!("\nCardinality: {}\n\n", d.cardinality));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_sets_have_no_duplicates() {
        let mut names: Vec<_> = METRIC_DEFAULTS.iter().map(|d| d.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), METRIC_DEFAULTS.len());
        for d in METRIC_DEFAULTS {
            let mut a = d.attributes.to_vec();
            a.sort();
            a.dedup();
            assert_eq!(a.len(), d.attributes.len(), "{}", d.name);
        }
    }

    #[test]
    fn docs_contain_the_generated_table() {
        let doc = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/metrics.md"
        ))
        .expect("docs/metrics.md exists");
        assert!(
            doc.contains(&markdown()),
            "docs/metrics.md is out of date with select/defaults.rs: regenerate its \
             'Default attributes' section with `cargo test -p tapline-processors print_defaults_markdown -- --ignored --nocapture`"
        );
    }

    #[test]
    #[ignore = "prints the markdown for docs/metrics.md"]
    fn print_defaults_markdown() {
        println!("{}", markdown());
    }
}
