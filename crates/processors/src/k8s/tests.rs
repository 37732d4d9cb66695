use super::*;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use tapline_core::data::{ResourceSpans, Span, SpanKind, StatusCode, Traces};
use tapline_test_support::fixtures::k8s as fx;
use tapline_test_support::fixtures::{first_point_attrs, flow_batch};

fn obj<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).unwrap()
}

fn filled_cache() -> Arc<K8sCache> {
    let cache = Arc::new(K8sCache::new());
    cache.update(|s| {
        s.apply_node(&obj::<Node>(fx::node(
            "node-1",
            "192.168.0.1",
            Some("zone-a"),
        )));
        s.apply_replicaset(&obj::<ReplicaSet>(fx::replicaset(
            "shop",
            "web-7d9f8b6c5",
            "web",
        )));
        s.apply_pod(&obj::<Pod>(fx::pod(
            "shop",
            "web-7d9f8b6c5-x2x",
            "10.244.0.5",
            "node-1",
            "192.168.0.1",
            Some(("apps/v1", "ReplicaSet", "web-7d9f8b6c5")),
            &fx::container_id(1),
        )));
        s.apply_job(&obj::<Job>(fx::job("ops", "backup-28590", Some("backup"))));
        s.apply_pod(&obj::<Pod>(fx::pod(
            "ops",
            "backup-28590-q7",
            "10.244.0.6",
            "node-1",
            "192.168.0.1",
            Some(("batch/v1", "Job", "backup-28590")),
            &fx::container_id(2),
        )));
        let mut hostnet: serde_json::Value = fx::pod(
            "kube-system",
            "kube-proxy-abc",
            "192.168.0.1",
            "node-1",
            "192.168.0.1",
            Some(("apps/v1", "DaemonSet", "kube-proxy")),
            &fx::container_id(3),
        );
        hostnet["spec"]["hostNetwork"] = serde_json::json!(true);
        s.apply_pod(&obj::<Pod>(hostnet));
        s.apply_service(&obj::<Service>(fx::service("shop", "web", "10.96.0.20")));
    });
    cache
}

#[test]
fn flows_get_both_ends_decorated() {
    let p = K8sProcessor::new(filled_cache(), "/proc".into());
    let mut batch = flow_batch(&[("10.244.0.5", "10.96.0.20", 100)]);
    p.apply(&mut batch);
    let a = first_point_attrs(&batch);
    let s = |k: &str| a.get_str(k).map(str::to_string);
    assert_eq!(s("k8s.src.namespace").as_deref(), Some("shop"));
    assert_eq!(s("k8s.src.name").as_deref(), Some("web-7d9f8b6c5-x2x"));
    assert_eq!(s("k8s.src.type").as_deref(), Some("pod"));
    assert_eq!(s("k8s.src.owner.name").as_deref(), Some("web"));
    assert_eq!(s("k8s.src.owner.type").as_deref(), Some("Deployment"));
    assert_eq!(s("k8s.src.node.name").as_deref(), Some("node-1"));
    assert_eq!(s("k8s.src.node.ip").as_deref(), Some("192.168.0.1"));
    assert_eq!(s("src.name").as_deref(), Some("web-7d9f8b6c5-x2x"));
    assert_eq!(s("k8s.dst.type").as_deref(), Some("service"));
    assert_eq!(s("k8s.dst.name").as_deref(), Some("web"));
    assert_eq!(s("k8s.dst.owner.type").as_deref(), Some("Service"));
    assert_eq!(s("dst.name").as_deref(), Some("web"));
    assert_eq!(a.get("k8s.dst.node.name"), None);
}

#[test]
fn job_pods_report_the_cronjob_and_host_network_ip_names_the_node() {
    let p = K8sProcessor::new(filled_cache(), "/proc".into());
    let mut batch = flow_batch(&[("10.244.0.6", "192.168.0.1", 1)]);
    p.apply(&mut batch);
    let a = first_point_attrs(&batch);
    assert_eq!(a.get_str("k8s.src.owner.type"), Some("CronJob"));
    assert_eq!(a.get_str("k8s.src.owner.name"), Some("backup"));
    assert_eq!(a.get_str("k8s.dst.type"), Some("node"));
    assert_eq!(a.get_str("k8s.dst.name"), Some("node-1"));
    assert_eq!(a.get_str("dst.name"), Some("node-1"));
    assert_eq!(a.get("k8s.dst.namespace"), None);
}

#[test]
fn unknown_addresses_and_named_ends_are_left_alone() {
    let p = K8sProcessor::new(filled_cache(), "/proc".into());
    let mut batch = flow_batch(&[("8.8.8.8", "10.244.0.5", 1)]);
    if let Signal::Metrics(m) = &mut batch {
        m.metrics_mut().for_each(|x| {
            x.data
                .for_each_attributes(|a| a.push("dst.name", "already-named"))
        });
    }
    p.apply(&mut batch);
    let a = first_point_attrs(&batch);
    assert_eq!(a.get("k8s.src.name"), None);
    assert_eq!(a.get_str("k8s.dst.name"), Some("web-7d9f8b6c5-x2x"));
    assert_eq!(a.get_str("dst.name"), Some("already-named"));
}

fn app_traces(resource: Attributes) -> Signal {
    Signal::Traces(Traces {
        resource_spans: vec![ResourceSpans {
            resource: Resource::new(resource),
            scope: "tapline.app".into(),
            spans: vec![Span {
                trace_id: [1; 16],
                span_id: [2; 8],
                parent_span_id: [0; 8],
                name: "GET /".into(),
                kind: SpanKind::Server,
                start_time_ns: 1,
                end_time_ns: 2,
                attributes: [("server.address", "10.96.0.20")].into_iter().collect(),
                status: StatusCode::Unset,
                status_message: "".into(),
            }],
        }],
    })
}

fn resource_of(batch: &Signal) -> &Attributes {
    match batch {
        Signal::Traces(t) => &t.resource_spans[0].resource.attributes,
        Signal::Metrics(m) => &m.resource_metrics[0].resource.attributes,
    }
}

#[test]
fn application_resource_by_pid_through_proc_cgroup() {
    let proc_root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(proc_root.path().join("4242")).unwrap();
    std::fs::write(
        proc_root.path().join("4242/cgroup"),
        format!(
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/cri-containerd-{}.scope\n",
            fx::container_id(1)
        ),
    )
    .unwrap();
    let p = K8sProcessor::new(filled_cache(), proc_root.path().into());
    let mut batch = app_traces(
        [
            ("process.pid", Value::Int(4242)),
            ("service.name", "python3".into()),
            ("process.executable.name", "python3".into()),
        ]
        .into_iter()
        .collect(),
    );
    p.apply(&mut batch);
    let r = resource_of(&batch);
    assert_eq!(r.get_str("k8s.pod.name"), Some("web-7d9f8b6c5-x2x"));
    assert_eq!(r.get_str("k8s.namespace.name"), Some("shop"));
    assert_eq!(r.get_str("k8s.node.name"), Some("node-1"));
    assert_eq!(r.get_str("k8s.container.name"), Some("main"));
    assert_eq!(r.get_str("k8s.deployment.name"), Some("web"));
    assert_eq!(r.get_str("k8s.replicaset.name"), Some("web-7d9f8b6c5"));
    assert_eq!(r.get_str("k8s.owner.type"), Some("Deployment"));
    assert_eq!(
        r.get_str("container.id"),
        Some(fx::container_id(1).as_str())
    );
    // service.name equal to the executable name counts as unset: the workload's name wins.
    assert_eq!(r.get_str("service.name"), Some("web"));
    // A span's server.address that is a service is decorated as a flow end would not be: spans
    // carry src/dst only from the flows receiver.
    let Signal::Traces(t) = &batch else { panic!() };
    assert_eq!(t.resource_spans[0].spans[0].attributes.len(), 1);
}

#[test]
fn explicit_service_name_is_kept_and_container_id_is_used_directly() {
    let p = K8sProcessor::new(filled_cache(), "/nonexistent".into());
    let mut batch = app_traces(
        [
            ("container.id", fx::container_id(2)),
            ("service.name", "backup-tool".to_string()),
            ("process.executable.name", "sh".to_string()),
        ]
        .into_iter()
        .collect(),
    );
    p.apply(&mut batch);
    let r = resource_of(&batch);
    assert_eq!(r.get_str("service.name"), Some("backup-tool"));
    assert_eq!(r.get_str("k8s.cronjob.name"), Some("backup"));
    assert_eq!(r.get_str("k8s.job.name"), Some("backup-28590"));
    let mut batch = app_traces(
        [("container.id", fx::container_id(2))]
            .into_iter()
            .collect(),
    );
    p.apply(&mut batch);
    // app.kubernetes.io/name of the fixture pod is the first dash-separated part of its name.
    assert_eq!(resource_of(&batch).get_str("service.name"), Some("backup"));
}

#[test]
fn process_outside_containers_is_untouched() {
    let proc_root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(proc_root.path().join("7")).unwrap();
    std::fs::write(
        proc_root.path().join("7/cgroup"),
        "0::/user.slice/session-1.scope\n",
    )
    .unwrap();
    let p = K8sProcessor::new(filled_cache(), proc_root.path().into());
    let res: Attributes = [("process.pid", Value::Int(7))].into_iter().collect();
    let mut batch = app_traces(res.clone());
    p.apply(&mut batch);
    assert_eq!(resource_of(&batch), &res);
}

#[test]
fn enable_modes() {
    let mut cfg = K8sMetadataConfig::default();
    assert!(!is_enabled(&cfg, false));
    assert!(is_enabled(&cfg, true));
    cfg.kubeconfig = Some("/k".into());
    assert!(is_enabled(&cfg, false));
    cfg.enable = Enable::Off;
    assert!(!is_enabled(&cfg, true));
    let c: K8sConfig = serde_yaml::from_str("enable: true").unwrap();
    assert_eq!(c.enable, Enable::On);
    let c: K8sConfig = serde_yaml::from_str("enable: auto").unwrap();
    assert_eq!(c.enable, Enable::Auto);
    let e = serde_yaml::from_str::<K8sConfig>("enable: maybe")
        .unwrap_err()
        .to_string();
    assert!(e.contains("auto, true or false"), "{e}");
}
