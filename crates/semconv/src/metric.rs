//! Every metric tapline produces: [`ALL`] is the one table.
//!
//! A default attribute set keeps the attributes whose values come from a small, bounded set
//! (owners, namespaces, zones, configured CIDRs, methods, status codes, routes) and drops the
//! ones that grow with traffic (addresses, client ports, pod names, query texts). The `select`
//! processor applies it.

use crate::attr::*;
use crate::prometheus::{metric_name, NameKind};

/// The instrument a metric is recorded with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Instrument {
    /// A monotonic sum reported as deltas (a counter).
    DeltaCounter,
    /// An explicit-bucket histogram.
    Histogram,
}

impl Instrument {
    /// How `docs/metrics.md` names it.
    pub fn describe(self) -> &'static str {
        match self {
            Instrument::DeltaCounter => "sum (delta, monotonic)",
            Instrument::Histogram => "histogram",
        }
    }
    /// The Prometheus metric type it is exposed as.
    pub fn prometheus_kind(self) -> NameKind {
        match self {
            Instrument::DeltaCounter => NameKind::Counter,
            Instrument::Histogram => NameKind::Histogram,
        }
    }
}

/// One metric's definition.
#[derive(Clone, Copy, Debug)]
pub struct MetricDef {
    /// OpenTelemetry name.
    pub name: &'static str,
    pub instrument: Instrument,
    /// UCUM unit.
    pub unit: &'static str,
    /// The description carried with every batch.
    pub description: &'static str,
    /// Data point attributes kept by default.
    pub default_attributes: &'static [&'static str],
    /// Why the default set is what it is and what it costs, for the docs.
    pub cardinality: &'static str,
}

impl MetricDef {
    /// The name the Prometheus exporter exposes it under (unit suffix, `_total` for counters).
    pub fn prometheus_name(&self) -> String {
        metric_name(self.name, self.unit, self.instrument.prometheus_kind())
    }
    /// The default histogram boundaries for this metric.
    pub fn default_buckets(&self) -> &'static [f64] {
        crate::buckets::default_for_unit(self.unit)
    }
}

/// The definition of the metric named `name`, if tapline produces it.
pub fn by_name(name: &str) -> Option<&'static MetricDef> {
    ALL.iter().copied().find(|d| d.name == name)
}

const FLOW_DEFAULTS: &[&str] = &[
    K8S_SRC_NAMESPACE,
    K8S_SRC_OWNER_NAME,
    K8S_SRC_OWNER_TYPE,
    K8S_SRC_TYPE,
    K8S_DST_NAMESPACE,
    K8S_DST_OWNER_NAME,
    K8S_DST_OWNER_TYPE,
    K8S_DST_TYPE,
    SRC_ZONE,
    DST_ZONE,
    SRC_CIDR,
    DST_CIDR,
    TRANSPORT,
    NETWORK_TYPE,
    DIRECTION,
];

const FLOW_CARDINALITY: &str = "At most (owners × owners) per namespace pair, times zones and \
configured CIDRs, times transport (tcp/udp), network.type (ipv4/ipv6) and direction \
(request/response). Addresses, ports, interface names and pod names are left out: they grow with \
traffic and churn. Traffic to ends that are neither Kubernetes objects nor in a configured CIDR \
collapses into one series per direction, so configure `cidr` (with a `0.0.0.0/0` catch-all) to \
tell external destinations apart, or include `dst.name` where the set of peers is known to be small.";

const HTTP_DEFAULTS: &[&str] = &[
    HTTP_REQUEST_METHOD,
    HTTP_RESPONSE_STATUS_CODE,
    HTTP_ROUTE,
    URL_SCHEME,
    NETWORK_PROTOCOL_VERSION,
    SERVER_ADDRESS,
    SERVER_PORT,
    ERROR_TYPE,
];

const HTTP_CARDINALITY: &str = "Methods × status codes × routes. `http.route` is the templated \
route (`/users/{id}`), never the raw path; `server.address` is the host the client asked for, \
bounded by the services called. `client.address` and `url.path` are left out.";

const RPC_DEFAULTS: &[&str] = &[
    RPC_SYSTEM_NAME,
    RPC_METHOD,
    RPC_RESPONSE_STATUS_CODE,
    SERVER_ADDRESS,
    SERVER_PORT,
    ERROR_TYPE,
];

const RPC_CARDINALITY: &str = "Services × methods × status codes, all bounded by the protobuf \
definitions. `client.address` is left out.";

const DB_DEFAULTS: &[&str] = &[
    DB_SYSTEM_NAME,
    DB_OPERATION_NAME,
    DB_COLLECTION_NAME,
    DB_NAMESPACE,
    DB_RESPONSE_STATUS_CODE,
    SERVER_ADDRESS,
    SERVER_PORT,
    ERROR_TYPE,
];

const DB_CARDINALITY: &str = "Operations × collections (tables) × status codes. `db.query.text` \
is left out: it is unbounded even when parameters are stripped.";

const MESSAGING_DEFAULTS: &[&str] = &[
    MESSAGING_SYSTEM,
    MESSAGING_OPERATION_NAME,
    MESSAGING_OPERATION_TYPE,
    MESSAGING_DESTINATION_NAME,
    SERVER_ADDRESS,
    SERVER_PORT,
    ERROR_TYPE,
];

const MESSAGING_CARDINALITY: &str = "Operations × destinations (topics, queues). Partition and \
message ids are left out.";

pub const NETWORK_FLOW_BYTES: MetricDef = MetricDef {
    name: "tapline.network.flow.bytes",
    instrument: Instrument::DeltaCounter,
    unit: "By",
    description: "Bytes of the flow's packets, link-layer header included",
    default_attributes: FLOW_DEFAULTS,
    cardinality: FLOW_CARDINALITY,
};

pub const NETWORK_FLOW_PACKETS: MetricDef = MetricDef {
    name: "tapline.network.flow.packets",
    instrument: Instrument::DeltaCounter,
    unit: "{packet}",
    description: "Packets of the flow",
    default_attributes: FLOW_DEFAULTS,
    cardinality: FLOW_CARDINALITY,
};

pub const NETWORK_INTER_ZONE_BYTES: MetricDef = MetricDef {
    name: "tapline.network.inter.zone.bytes",
    instrument: Instrument::DeltaCounter,
    unit: "By",
    description: "Bytes of flows whose two ends are in different zones",
    default_attributes: &[
        SRC_ZONE,
        DST_ZONE,
        K8S_SRC_NAMESPACE,
        K8S_SRC_OWNER_NAME,
        K8S_SRC_OWNER_TYPE,
        K8S_DST_NAMESPACE,
        K8S_DST_OWNER_NAME,
        K8S_DST_OWNER_TYPE,
        TRANSPORT,
        DIRECTION,
    ],
    cardinality: "Zone pairs (zones² at most, usually a handful) × owner pairs that talk \
across zones. Produced by the `zones` processor only for flows whose two ends are in \
different known zones.",
};

const fn http(name: &'static str, unit: &'static str, description: &'static str) -> MetricDef {
    MetricDef {
        name,
        instrument: Instrument::Histogram,
        unit,
        description,
        default_attributes: HTTP_DEFAULTS,
        cardinality: HTTP_CARDINALITY,
    }
}

pub const HTTP_SERVER_REQUEST_DURATION: MetricDef = http(
    "http.server.request.duration",
    "s",
    "Duration of HTTP server requests.",
);
pub const HTTP_CLIENT_REQUEST_DURATION: MetricDef = http(
    "http.client.request.duration",
    "s",
    "Duration of HTTP client requests.",
);
pub const HTTP_SERVER_REQUEST_BODY_SIZE: MetricDef = http(
    "http.server.request.body.size",
    "By",
    "Size of HTTP server request bodies.",
);
pub const HTTP_SERVER_RESPONSE_BODY_SIZE: MetricDef = http(
    "http.server.response.body.size",
    "By",
    "Size of HTTP server response bodies.",
);
pub const HTTP_CLIENT_REQUEST_BODY_SIZE: MetricDef = http(
    "http.client.request.body.size",
    "By",
    "Size of HTTP client request bodies.",
);
pub const HTTP_CLIENT_RESPONSE_BODY_SIZE: MetricDef = http(
    "http.client.response.body.size",
    "By",
    "Size of HTTP client response bodies.",
);

pub const RPC_SERVER_CALL_DURATION: MetricDef = MetricDef {
    name: "rpc.server.call.duration",
    instrument: Instrument::Histogram,
    unit: "s",
    description: "Measures the duration of inbound RPC.",
    default_attributes: RPC_DEFAULTS,
    cardinality: RPC_CARDINALITY,
};

pub const RPC_CLIENT_CALL_DURATION: MetricDef = MetricDef {
    name: "rpc.client.call.duration",
    instrument: Instrument::Histogram,
    unit: "s",
    description: "Measures the duration of outbound RPC.",
    default_attributes: RPC_DEFAULTS,
    cardinality: RPC_CARDINALITY,
};

pub const DB_CLIENT_OPERATION_DURATION: MetricDef = MetricDef {
    name: "db.client.operation.duration",
    instrument: Instrument::Histogram,
    unit: "s",
    description: "Duration of database client operations.",
    default_attributes: DB_DEFAULTS,
    cardinality: DB_CARDINALITY,
};

pub const MESSAGING_CLIENT_OPERATION_DURATION: MetricDef = MetricDef {
    name: "messaging.client.operation.duration",
    instrument: Instrument::Histogram,
    unit: "s",
    description: "Duration of messaging operation initiated by a producer or consumer client.",
    default_attributes: MESSAGING_DEFAULTS,
    cardinality: MESSAGING_CARDINALITY,
};

/// Every metric tapline produces, in the order `docs/metrics.md` lists them.
pub const ALL: &[&MetricDef] = &[
    &NETWORK_FLOW_BYTES,
    &NETWORK_FLOW_PACKETS,
    &NETWORK_INTER_ZONE_BYTES,
    &HTTP_SERVER_REQUEST_DURATION,
    &HTTP_CLIENT_REQUEST_DURATION,
    &HTTP_SERVER_REQUEST_BODY_SIZE,
    &HTTP_SERVER_RESPONSE_BODY_SIZE,
    &HTTP_CLIENT_REQUEST_BODY_SIZE,
    &HTTP_CLIENT_RESPONSE_BODY_SIZE,
    &RPC_SERVER_CALL_DURATION,
    &RPC_CLIENT_CALL_DURATION,
    &DB_CLIENT_OPERATION_DURATION,
    &MESSAGING_CLIENT_OPERATION_DURATION,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_sets_have_no_duplicates() {
        let mut names: Vec<_> = ALL.iter().map(|d| d.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
        for d in ALL {
            let mut a = d.default_attributes.to_vec();
            a.sort();
            a.dedup();
            assert_eq!(a.len(), d.default_attributes.len(), "{}", d.name);
        }
    }

    #[test]
    fn prometheus_names_carry_unit_and_counter_suffixes() {
        assert_eq!(
            NETWORK_FLOW_BYTES.prometheus_name(),
            "tapline_network_flow_bytes_total"
        );
        assert_eq!(
            NETWORK_FLOW_PACKETS.prometheus_name(),
            "tapline_network_flow_packets_total"
        );
        assert_eq!(
            HTTP_SERVER_REQUEST_DURATION.prometheus_name(),
            "http_server_request_duration_seconds"
        );
        assert_eq!(
            HTTP_SERVER_REQUEST_BODY_SIZE.prometheus_name(),
            "http_server_request_body_size_bytes"
        );
        assert_eq!(
            HTTP_CLIENT_RESPONSE_BODY_SIZE.prometheus_name(),
            "http_client_response_body_size_bytes"
        );
        assert_eq!(by_name("db.client.operation.duration").unwrap().unit, "s");
        assert!(by_name("db.client.operation").is_none());
    }
}
