//! Attribute keys tapline writes. Standard OpenTelemetry keys keep their semantic-convention
//! names; tapline's own network keys (`src.*`, `dst.*`, `k8s.src.*`, ...) describe the two ends
//! of a flow, which OpenTelemetry has no pair of keys for.

// ---- Resource: what produced the telemetry ----
pub const SERVICE_NAME: &str = "service.name";
pub const SERVICE_NAMESPACE: &str = "service.namespace";
pub const HOST_NAME: &str = "host.name";
pub const PROCESS_PID: &str = "process.pid";
pub const PROCESS_EXECUTABLE_NAME: &str = "process.executable.name";
pub const PROCESS_EXECUTABLE_PATH: &str = "process.executable.path";
pub const CONTAINER_ID: &str = "container.id";
pub const TELEMETRY_SDK_NAME: &str = "telemetry.sdk.name";
/// The address of the node the agent runs on.
pub const TAPLINE_IP: &str = "tapline.ip";

// ---- Network flows ----
pub const SRC_ADDRESS: &str = "src.address";
pub const DST_ADDRESS: &str = "dst.address";
pub const SRC_PORT: &str = "src.port";
pub const DST_PORT: &str = "dst.port";
/// The port of the end that accepted the connection (or received the first datagram).
pub const SERVER_PORT: &str = "server.port";
/// The port of the end that opened the connection.
pub const CLIENT_PORT: &str = "client.port";
/// `tcp`, `udp`, `icmp`, `icmpv6`, `sctp`, `udplite`.
pub const TRANSPORT: &str = "transport";
/// `ipv4` or `ipv6`.
pub const NETWORK_TYPE: &str = "network.type";
/// `request` (client to server) or `response`.
pub const DIRECTION: &str = "direction";
/// The interface the packets were seen on.
pub const IFACE: &str = "iface";
/// `ingress` or `egress` at that interface.
pub const IFACE_DIRECTION: &str = "iface.direction";

// ---- Decorations of the two ends (processors `rdns`, `zones`, `cidr`, `k8s`) ----
pub const SRC_NAME: &str = "src.name";
pub const DST_NAME: &str = "dst.name";
pub const SRC_ZONE: &str = "src.zone";
pub const DST_ZONE: &str = "dst.zone";
pub const SRC_CIDR: &str = "src.cidr";
pub const DST_CIDR: &str = "dst.cidr";
pub const K8S_SRC_NAMESPACE: &str = "k8s.src.namespace";
pub const K8S_SRC_NAME: &str = "k8s.src.name";
pub const K8S_SRC_TYPE: &str = "k8s.src.type";
pub const K8S_SRC_OWNER_NAME: &str = "k8s.src.owner.name";
pub const K8S_SRC_OWNER_TYPE: &str = "k8s.src.owner.type";
pub const K8S_SRC_NODE_NAME: &str = "k8s.src.node.name";
pub const K8S_SRC_NODE_IP: &str = "k8s.src.node.ip";
pub const K8S_DST_NAMESPACE: &str = "k8s.dst.namespace";
pub const K8S_DST_NAME: &str = "k8s.dst.name";
pub const K8S_DST_TYPE: &str = "k8s.dst.type";
pub const K8S_DST_OWNER_NAME: &str = "k8s.dst.owner.name";
pub const K8S_DST_OWNER_TYPE: &str = "k8s.dst.owner.type";
pub const K8S_DST_NODE_NAME: &str = "k8s.dst.node.name";
pub const K8S_DST_NODE_IP: &str = "k8s.dst.node.ip";

// ---- Kubernetes resource attributes of a process (processor `k8s`) ----
pub const K8S_POD_NAME: &str = "k8s.pod.name";
pub const K8S_POD_UID: &str = "k8s.pod.uid";
pub const K8S_NAMESPACE_NAME: &str = "k8s.namespace.name";
pub const K8S_CONTAINER_NAME: &str = "k8s.container.name";
pub const K8S_NODE_NAME: &str = "k8s.node.name";
pub const K8S_OWNER_NAME: &str = "k8s.owner.name";
pub const K8S_OWNER_TYPE: &str = "k8s.owner.type";
pub const K8S_DEPLOYMENT_NAME: &str = "k8s.deployment.name";
pub const K8S_REPLICASET_NAME: &str = "k8s.replicaset.name";
pub const K8S_DAEMONSET_NAME: &str = "k8s.daemonset.name";
pub const K8S_STATEFULSET_NAME: &str = "k8s.statefulset.name";
pub const K8S_JOB_NAME: &str = "k8s.job.name";
pub const K8S_CRONJOB_NAME: &str = "k8s.cronjob.name";

// ---- Application requests (receiver `app`) ----
pub const SERVER_ADDRESS: &str = "server.address";
pub const CLIENT_ADDRESS: &str = "client.address";
pub const ERROR_TYPE: &str = "error.type";
pub const NETWORK_PROTOCOL_NAME: &str = "network.protocol.name";
pub const NETWORK_PROTOCOL_VERSION: &str = "network.protocol.version";
pub const HTTP_REQUEST_METHOD: &str = "http.request.method";
pub const HTTP_RESPONSE_STATUS_CODE: &str = "http.response.status_code";
pub const HTTP_ROUTE: &str = "http.route";
pub const HTTP_REQUEST_BODY_SIZE: &str = "http.request.body.size";
pub const HTTP_RESPONSE_BODY_SIZE: &str = "http.response.body.size";
pub const URL_SCHEME: &str = "url.scheme";
pub const URL_PATH: &str = "url.path";
pub const URL_QUERY: &str = "url.query";
pub const RPC_SYSTEM_NAME: &str = "rpc.system.name";
pub const RPC_METHOD: &str = "rpc.method";
pub const RPC_RESPONSE_STATUS_CODE: &str = "rpc.response.status_code";
pub const DB_SYSTEM_NAME: &str = "db.system.name";
pub const DB_OPERATION_NAME: &str = "db.operation.name";
pub const DB_COLLECTION_NAME: &str = "db.collection.name";
pub const DB_NAMESPACE: &str = "db.namespace";
pub const DB_RESPONSE_STATUS_CODE: &str = "db.response.status_code";
/// Off unless turned on: query texts can carry literals.
pub const DB_QUERY_TEXT: &str = "db.query.text";
pub const MESSAGING_SYSTEM: &str = "messaging.system";
pub const MESSAGING_OPERATION_NAME: &str = "messaging.operation.name";
pub const MESSAGING_OPERATION_TYPE: &str = "messaging.operation.type";
pub const MESSAGING_DESTINATION_NAME: &str = "messaging.destination.name";
