//! Batches shaped like the flows receiver's output, and Kubernetes objects shaped like the API
//! server's, for tests and benchmarks.

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

/// A monotonic delta sum in bytes with the given points.
pub fn bytes_sum(name: &'static str, points: Vec<NumberPoint>) -> Metric {
    Metric {
        name: name.into(),
        description: "".into(),
        unit: "By".into(),
        data: MetricData::Sum {
            temporality: Temporality::Delta,
            monotonic: true,
            points,
        },
    }
}

/// A byte sum of the given name with one point per `(src, dst, value)`.
pub fn flow_metric(name: &'static str, flows: &[(&str, &str, i64)]) -> Metric {
    let points = flows
        .iter()
        .map(|(s, d, v)| NumberPoint {
            attributes: flow_attributes(s, d),
            start_time_ns: 1_000,
            time_ns: 2_000,
            value: Number::Int(*v),
        })
        .collect();
    bytes_sum(name, points)
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

/// Kubernetes objects shaped exactly as the API server returns them (`kubectl get -o json`).
pub mod k8s {
    use serde_json::{json, Value};

    pub fn owner_ref(api_version: &str, kind: &str, name: &str) -> Value {
        json!({"apiVersion": api_version, "kind": kind, "name": name,
               "uid": format!("uid-{}-{name}", kind.to_lowercase()),
               "controller": true, "blockOwnerDeletion": true})
    }

    /// A running pod. `owner` is (apiVersion, kind, name) of its controller.
    pub fn pod(
        ns: &str,
        name: &str,
        ip: &str,
        node: &str,
        node_ip: &str,
        owner: Option<(&str, &str, &str)>,
        container_id: &str,
    ) -> Value {
        let mut metadata = json!({
            "name": name, "namespace": ns, "uid": format!("uid-pod-{ns}-{name}"),
            "resourceVersion": "1", "creationTimestamp": "2024-05-01T10:00:00Z",
            "labels": {"app.kubernetes.io/name": name.split('-').next().unwrap_or(name), "pod-template-hash": "7d9f8b6c5"},
            "annotations": {"kubectl.kubernetes.io/restartedAt": "2024-05-01T10:00:00Z"},
        });
        if let Some((api, kind, oname)) = owner {
            metadata["ownerReferences"] = json!([owner_ref(api, kind, oname)]);
        }
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": metadata,
            "spec": {
                "nodeName": node, "restartPolicy": "Always", "dnsPolicy": "ClusterFirst",
                "serviceAccountName": "default", "schedulerName": "default-scheduler",
                "containers": [{"name": "main", "image": "registry.example/app:1.2.3",
                    "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                    "terminationMessagePath": "/dev/termination-log", "imagePullPolicy": "IfNotPresent"}],
                "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]
            },
            "status": {
                "phase": "Running", "hostIP": node_ip, "hostIPs": [{"ip": node_ip}],
                "podIP": ip, "podIPs": [{"ip": ip}], "qosClass": "Burstable",
                "startTime": "2024-05-01T10:00:01Z",
                "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2024-05-01T10:00:05Z"}],
                "containerStatuses": [{"name": "main", "ready": true, "restartCount": 0, "started": true,
                    "image": "registry.example/app:1.2.3", "imageID": "registry.example/app@sha256:0123",
                    "containerID": format!("containerd://{container_id}"),
                    "state": {"running": {"startedAt": "2024-05-01T10:00:03Z"}}}]
            }
        })
    }

    pub fn replicaset(ns: &str, name: &str, deployment: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name, "namespace": ns, "uid": format!("uid-replicaset-{name}"), "resourceVersion": "1",
                "labels": {"pod-template-hash": "7d9f8b6c5"},
                "ownerReferences": [owner_ref("apps/v1", "Deployment", deployment)]},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": deployment}}},
            "status": {"replicas": 2, "readyReplicas": 2}})
    }

    pub fn job(ns: &str, name: &str, cronjob: Option<&str>) -> Value {
        let mut v = json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": ns, "uid": format!("uid-job-{name}"), "resourceVersion": "1"},
            "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}], "restartPolicy": "Never"}}},
            "status": {"active": 1}});
        if let Some(c) = cronjob {
            v["metadata"]["ownerReferences"] = json!([owner_ref("batch/v1", "CronJob", c)]);
        }
        v
    }

    pub fn service(ns: &str, name: &str, cluster_ip: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": ns, "uid": format!("uid-svc-{ns}-{name}"), "resourceVersion": "1"},
            "spec": {"type": "ClusterIP", "clusterIP": cluster_ip, "clusterIPs": [cluster_ip],
                "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}],
                "selector": {"app": name}, "sessionAffinity": "None"},
            "status": {"loadBalancer": {}}})
    }

    pub fn node(name: &str, ip: &str, zone: Option<&str>) -> Value {
        let mut labels = json!({"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"});
        if let Some(z) = zone {
            labels["topology.kubernetes.io/zone"] = json!(z);
        }
        json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "uid": format!("uid-node-{name}"), "resourceVersion": "1", "labels": labels},
            "spec": {"podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24"]},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
                "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"},
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "lastHeartbeatTime": "2024-05-01T10:00:00Z", "lastTransitionTime": "2024-05-01T09:00:00Z"}],
                "nodeInfo": {"kubeletVersion": "v1.33.1", "containerRuntimeVersion": "containerd://2.0.5", "osImage": "Ubuntu 24.04", "kernelVersion": "6.8.0", "architecture": "amd64", "operatingSystem": "linux", "machineID": "m", "systemUUID": "s", "bootID": "b", "kubeProxyVersion": ""}}})
    }

    /// A 64-hex-digit container id derived from `n`.
    pub fn container_id(n: usize) -> String {
        format!("{:064x}", n as u128 * 0x9e37_79b9_7f4a_7c15)
    }
}
