//! How operations become telemetry, per the OpenTelemetry semantic conventions: which metric an
//! operation is recorded into, its span's name and kind, and its attributes. Each protocol's
//! [`ProtocolSpec`](crate::ProtocolSpec) carries one [`Conventions`], built from the family
//! functions here (HTTP, RPC, database, messaging).

use tapline_semconv::attr::*;
use tapline_semconv::metric::{self, MetricDef};

use crate::{grpc, Operation, Side, Status, Str, ERROR_NO_RESPONSE};

/// A duration histogram of the operations other than HTTP's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OperationMetric {
    RpcServer = 0,
    RpcClient = 1,
    DbClient = 2,
    MessagingClient = 3,
}

impl OperationMetric {
    /// Every operation metric, in the order they are exported.
    pub const ALL: [OperationMetric; 4] = [
        OperationMetric::RpcServer,
        OperationMetric::RpcClient,
        OperationMetric::DbClient,
        OperationMetric::MessagingClient,
    ];

    /// Its definition in the telemetry schema.
    pub fn def(self) -> &'static MetricDef {
        match self {
            OperationMetric::RpcServer => &metric::RPC_SERVER_CALL_DURATION,
            OperationMetric::RpcClient => &metric::RPC_CLIENT_CALL_DURATION,
            OperationMetric::DbClient => &metric::DB_CLIENT_OPERATION_DURATION,
            OperationMetric::MessagingClient => &metric::MESSAGING_CLIENT_OPERATION_DURATION,
        }
    }
}

/// Where an operation is recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// The HTTP request duration and body size histograms of the process's side; the span is
    /// named `{method} {route}` (the route comes from the receiver's route policy).
    Http,
    /// One operation duration histogram.
    Operation(OperationMetric),
}

/// The kind of an operation's span.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpanKind {
    Server,
    Client,
}

/// How an operation's span is named.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpanName {
    /// The operation's name (`package.Service/Method`).
    Operation,
    /// `{name} {target}` (`SELECT orders`, `send topic`), or the name without a target.
    OperationAndTarget,
    /// `{method} {route}` (HTTP).
    MethodAndRoute,
}

/// String attributes in output order: (key, value).
pub type Attributes = Vec<(&'static str, Str)>;

/// Appends an operation's attributes (seen from a side) and returns its `error.type`.
pub type DescribeFn = fn(&Operation, Side, &mut Attributes) -> Option<Str>;

/// One protocol's semantic conventions.
#[derive(Clone, Copy)]
pub struct Conventions {
    /// The metric of an operation seen from `side`, and its span kind; None: not reported
    /// from that side (database and messaging servers: their clients report the operation).
    pub record: fn(Side) -> Option<(Metric, SpanKind)>,
    pub span_name: SpanName,
    /// Appends the operation's attributes in output order and returns its `error.type`
    /// (unused for [`Metric::Http`], whose attributes depend on the route).
    pub attributes: DescribeFn,
    /// The attribute that carries [`Operation::query_text`], for the protocols that may
    /// report it (when the receiver is configured to).
    pub query_text: Option<&'static str>,
}

/// The span kind of the process's side.
fn kind_of(side: Side) -> SpanKind {
    match side {
        Side::Server => SpanKind::Server,
        Side::Client => SpanKind::Client,
    }
}

/// HTTP/1.x and HTTP/2: `http.server.*` / `http.client.*`.
pub const HTTP: Conventions = Conventions {
    record: |side| Some((Metric::Http, kind_of(side))),
    span_name: SpanName::MethodAndRoute,
    attributes: |_, _, _| None,
    query_text: None,
};

/// gRPC: `rpc.server.call.duration` / `rpc.client.call.duration`.
pub const RPC: Conventions = Conventions {
    record: |side| {
        let metric = match side {
            Side::Server => OperationMetric::RpcServer,
            Side::Client => OperationMetric::RpcClient,
        };
        Some((Metric::Operation(metric), kind_of(side)))
    },
    span_name: SpanName::Operation,
    attributes: rpc_attributes,
    query_text: None,
};

/// A database without a status code attribute (Redis).
pub const DATABASE: Conventions = Conventions {
    record: client_only_db,
    span_name: SpanName::OperationAndTarget,
    attributes: |op, _, attrs| database_attributes(op, attrs, false),
    query_text: Some(DB_QUERY_TEXT),
};

/// A SQL database: a failed operation's error code is also `db.response.status_code`.
pub const SQL_DATABASE: Conventions = Conventions {
    record: client_only_db,
    span_name: SpanName::OperationAndTarget,
    attributes: |op, _, attrs| database_attributes(op, attrs, true),
    query_text: Some(DB_QUERY_TEXT),
};

/// A message broker: `messaging.client.operation.duration`.
pub const MESSAGING: Conventions = Conventions {
    record: |side| match side {
        Side::Server => None,
        Side::Client => Some((
            Metric::Operation(OperationMetric::MessagingClient),
            SpanKind::Client,
        )),
    },
    span_name: SpanName::OperationAndTarget,
    attributes: messaging_attributes,
    query_text: None,
};

fn client_only_db(side: Side) -> Option<(Metric, SpanKind)> {
    match side {
        Side::Server => None,
        Side::Client => Some((
            Metric::Operation(OperationMetric::DbClient),
            SpanKind::Client,
        )),
    }
}

fn rpc_attributes(op: &Operation, side: Side, attrs: &mut Attributes) -> Option<Str> {
    attrs.push((RPC_SYSTEM_NAME, Str::Borrowed(op.protocol.as_str())));
    attrs.push((RPC_METHOD, op.name.clone()));
    let mut error = op.error.clone();
    match op.status {
        Status::Grpc(code) => {
            let status_code = grpc::status_attribute(code);
            attrs.push((RPC_RESPONSE_STATUS_CODE, status_code.clone()));
            if !grpc::is_error(side, code) {
                error = None;
            } else if error.is_none() {
                error = Some(status_code);
            }
        }
        _ => {
            error.get_or_insert(Str::Borrowed(ERROR_NO_RESPONSE));
        }
    }
    error
}

fn database_attributes(op: &Operation, attrs: &mut Attributes, status_code: bool) -> Option<Str> {
    attrs.push((DB_SYSTEM_NAME, Str::Borrowed(op.protocol.as_str())));
    attrs.push((DB_OPERATION_NAME, op.name.clone()));
    if let Some(t) = &op.target {
        attrs.push((DB_COLLECTION_NAME, t.clone()));
    }
    if status_code && op.status == Status::Error {
        if let Some(e) = &op.error {
            attrs.push((DB_RESPONSE_STATUS_CODE, e.clone()));
        }
    }
    op.error.clone()
}

fn messaging_attributes(op: &Operation, _: Side, attrs: &mut Attributes) -> Option<Str> {
    attrs.push((MESSAGING_SYSTEM, Str::Borrowed(op.protocol.as_str())));
    attrs.push((MESSAGING_OPERATION_NAME, op.name.clone()));
    match op.name.as_ref() {
        "send" => attrs.push((MESSAGING_OPERATION_TYPE, Str::Borrowed("send"))),
        "receive" => attrs.push((MESSAGING_OPERATION_TYPE, Str::Borrowed("receive"))),
        _ => {}
    }
    if let Some(t) = &op.target {
        attrs.push((MESSAGING_DESTINATION_NAME, t.clone()));
    }
    op.error.clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Protocol;

    fn op(
        protocol: Protocol,
        name: &'static str,
        status: Status,
        error: Option<&'static str>,
    ) -> Operation {
        let mut op = Operation::new(protocol, Str::Borrowed(name), 1);
        op.status = status;
        op.error = error.map(Str::Borrowed);
        op
    }

    #[test]
    fn grpc_errors_depend_on_the_side() {
        let not_found = op(Protocol::Grpc, "a.B/C", Status::Grpc(5), Some("NOT_FOUND"));
        let mut attrs = Vec::new();
        // NOT_FOUND is the caller's problem: an error for the client only
        assert_eq!(rpc_attributes(&not_found, Side::Server, &mut attrs), None);
        assert_eq!(
            attrs,
            [
                ("rpc.system.name", Str::Borrowed("grpc")),
                ("rpc.method", Str::Borrowed("a.B/C")),
                ("rpc.response.status_code", Str::Borrowed("NOT_FOUND")),
            ]
        );
        assert_eq!(
            rpc_attributes(&not_found, Side::Client, &mut Vec::new()).as_deref(),
            Some("NOT_FOUND")
        );
        // a code beyond the table: reported as its number
        let odd = op(Protocol::Grpc, "a.B/C", Status::Grpc(99), Some("UNKNOWN"));
        let mut attrs = Vec::new();
        assert_eq!(
            rpc_attributes(&odd, Side::Client, &mut attrs).as_deref(),
            Some("UNKNOWN")
        );
        assert_eq!(attrs[2], ("rpc.response.status_code", Str::Borrowed("99")));
        let lost = op(Protocol::Grpc, "a.B/C", Status::Unknown, None);
        assert_eq!(
            rpc_attributes(&lost, Side::Server, &mut Vec::new()).as_deref(),
            Some(ERROR_NO_RESPONSE)
        );
    }

    #[test]
    fn databases_are_reported_by_their_clients() {
        for p in [
            Protocol::Redis,
            Protocol::Postgres,
            Protocol::Mysql,
            Protocol::Kafka,
        ] {
            let c = p.spec().conventions;
            assert_eq!((c.record)(Side::Server), None, "{p}");
            assert!((c.record)(Side::Client).is_some(), "{p}");
        }
        let failed = op(Protocol::Postgres, "SELECT", Status::Error, Some("42P01"));
        let mut attrs = Vec::new();
        let error = (SQL_DATABASE.attributes)(&failed, Side::Client, &mut attrs);
        assert_eq!(error.as_deref(), Some("42P01"));
        assert_eq!(
            attrs.last(),
            Some(&("db.response.status_code", Str::Borrowed("42P01")))
        );
        let mut attrs = Vec::new();
        (DATABASE.attributes)(&failed, Side::Client, &mut attrs);
        assert!(attrs.iter().all(|(k, _)| *k != "db.response.status_code"));
    }
}
