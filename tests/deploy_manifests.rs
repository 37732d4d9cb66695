//! The deployment files, checked without a cluster (none can run here):
//!
//! - every object of `deploy/kubernetes/` and of the Helm chart `deploy/helm/tapline/`
//!   (rendered by Helm's own engine, through the `helm-python-sdk` package) is read into its
//!   k8s-openapi type and written back; k8s-openapi ignores unknown fields, so the round trip
//!   must give back the same JSON, or a field was misspelt or misplaced;
//! - the ClusterRole grants list and watch on exactly the kinds the k8s processor watches
//!   (read from `crates/processors/src/k8s/watch.rs`), and nothing else;
//! - the objects agree with each other (names, ports, probes, mounts, labels) and with the
//!   embedded tapline configuration, which `tapline validate` must accept as the pod would
//!   run it (NODE_NAME set, in-cluster).
//!
//! Needs `python3` with `helm-python-sdk` (`pip install helm-python-sdk`) for the chart tests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Namespace, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const CONFIG_DIR: &str = "/etc/tapline";
const CONFIG_KEY: &str = "config.yaml";
const CAPABILITIES: [&str; 5] = [
    "BPF",
    "PERFMON",
    "NET_ADMIN",
    "SYS_PTRACE",
    "DAC_READ_SEARCH",
];

/// One YAML document and where it came from.
struct Doc {
    source: String,
    json: Value,
}

fn yaml_docs(source: &str, text: &str) -> Vec<Doc> {
    let mut out = Vec::new();
    for (i, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let v: serde_yaml::Value = serde::Deserialize::deserialize(de)
            .unwrap_or_else(|e| panic!("{source} document {i}: invalid YAML: {e}"));
        if v.is_null() {
            continue;
        }
        let json = serde_json::to_value(&v)
            .unwrap_or_else(|e| panic!("{source} document {i}: not JSON-compatible: {e}"));
        out.push(Doc {
            source: format!("{source} (document {i})"),
            json,
        });
    }
    out
}

fn manifest_docs() -> Vec<Doc> {
    let dir = Path::new(ROOT).join("deploy/kubernetes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no manifests in {}", dir.display());
    files
        .iter()
        .flat_map(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            yaml_docs(&f.display().to_string(), &text)
        })
        .collect()
}

/// The first place where `written` and `read_back` differ, as a JSON path and a reason.
fn first_difference(written: &Value, read_back: &Value, path: &str) -> Option<String> {
    match (written, read_back) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, va) in a {
                let p = format!("{path}.{k}");
                match b.get(k) {
                    None => {
                        return Some(format!(
                            "{p}: not a field of this type (misspelt or misplaced?)"
                        ))
                    }
                    Some(vb) => {
                        if let Some(d) = first_difference(va, vb, &p) {
                            return Some(d);
                        }
                    }
                }
            }
            b.keys()
                .find(|k| !a.contains_key(*k))
                .map(|k| format!("{path}.{k}: appeared when read back"))
        }
        (Value::Array(a), Value::Array(b)) => {
            if a.len() != b.len() {
                return Some(format!(
                    "{path}: {} items written, {} read",
                    a.len(),
                    b.len()
                ));
            }
            a.iter()
                .zip(b)
                .enumerate()
                .find_map(|(i, (x, y))| first_difference(x, y, &format!("{path}[{i}]")))
        }
        (a, b) if a == b => None,
        (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => None,
        (a, b) => Some(format!("{path}: written {a}, read back as {b}")),
    }
}

/// Reads `json` into `T` and checks that writing `T` gives the same JSON.
fn roundtrip<T: DeserializeOwned + Serialize>(json: &Value) -> Result<T, String> {
    let typed: T = serde_json::from_value(json.clone()).map_err(|e| e.to_string())?;
    let back = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    match first_difference(json, &back, "") {
        None => Ok(typed),
        Some(d) => Err(d),
    }
}

#[derive(Default)]
struct Objects {
    namespaces: Vec<Namespace>,
    service_accounts: Vec<ServiceAccount>,
    cluster_roles: Vec<ClusterRole>,
    cluster_role_bindings: Vec<ClusterRoleBinding>,
    config_maps: Vec<ConfigMap>,
    daemon_sets: Vec<DaemonSet>,
    services: Vec<Service>,
}

fn typed_objects(docs: &[Doc]) -> Objects {
    fn read<T: DeserializeOwned + Serialize>(d: &Doc, into: &mut Vec<T>) {
        match roundtrip::<T>(&d.json) {
            Ok(t) => into.push(t),
            Err(e) => panic!("{}: {e}", d.source),
        }
    }
    let mut o = Objects::default();
    for d in docs {
        let api_version = d.json["apiVersion"].as_str().unwrap_or_default();
        let kind = d.json["kind"].as_str().unwrap_or_default();
        match (api_version, kind) {
            ("v1", "Namespace") => read(d, &mut o.namespaces),
            ("v1", "ServiceAccount") => read(d, &mut o.service_accounts),
            ("rbac.authorization.k8s.io/v1", "ClusterRole") => read(d, &mut o.cluster_roles),
            ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
                read(d, &mut o.cluster_role_bindings)
            }
            ("v1", "ConfigMap") => read(d, &mut o.config_maps),
            ("apps/v1", "DaemonSet") => read(d, &mut o.daemon_sets),
            ("v1", "Service") => read(d, &mut o.services),
            other => panic!("{}: unexpected object {other:?}", d.source),
        }
    }
    o
}

fn one<'a, T>(v: &'a [T], what: &str, ctx: &str) -> &'a T {
    assert_eq!(
        v.len(),
        1,
        "{ctx}: expected exactly one {what}, found {}",
        v.len()
    );
    &v[0]
}

/// (API group, resource) of every kind `watch.rs` watches, from the source itself.
fn watched_resources() -> BTreeSet<(String, String)> {
    use k8s_openapi::Resource;
    fn gr<K: Resource>() -> (String, String) {
        (K::GROUP.to_string(), K::URL_PATH_SEGMENT.to_string())
    }
    let known: BTreeMap<&str, (String, String)> = [
        ("Pod", gr::<k8s_openapi::api::core::v1::Pod>()),
        ("Service", gr::<k8s_openapi::api::core::v1::Service>()),
        ("Node", gr::<k8s_openapi::api::core::v1::Node>()),
        ("ReplicaSet", gr::<k8s_openapi::api::apps::v1::ReplicaSet>()),
        ("Job", gr::<k8s_openapi::api::batch::v1::Job>()),
    ]
    .into();
    let path = Path::new(ROOT).join("crates/processors/src/k8s/watch.rs");
    let src = std::fs::read_to_string(&path).unwrap();
    let mut out = BTreeSet::new();
    for piece in src.split("Api::<").skip(1) {
        let name = piece.split('>').next().unwrap().trim();
        let r = known.get(name).unwrap_or_else(|| {
            panic!(
                "{} watches {name}: add it to the ClusterRoles (deploy/kubernetes/01-rbac.yaml, \
                 deploy/helm/tapline/templates/clusterrole.yaml) and to this table",
                path.display()
            )
        });
        out.insert(r.clone());
    }
    assert_eq!(
        out.len(),
        5,
        "watch.rs watches {out:?}: the table above is out of date"
    );
    out
}

fn check_cluster_role(role: &ClusterRole, ctx: &str) {
    let mut granted = BTreeSet::new();
    for (i, rule) in role.rules.iter().flatten().enumerate() {
        assert!(
            rule.resource_names.is_none() && rule.non_resource_urls.is_none(),
            "{ctx}: rule {i} must name neither resourceNames nor nonResourceURLs"
        );
        let verbs: BTreeSet<&str> = rule.verbs.iter().map(String::as_str).collect();
        assert_eq!(
            verbs,
            BTreeSet::from(["list", "watch"]),
            "{ctx}: rule {i}: the watchers only list and watch"
        );
        for g in rule.api_groups.iter().flatten() {
            for r in rule.resources.iter().flatten() {
                assert!(
                    granted.insert((g.clone(), r.clone())),
                    "{ctx}: {g}/{r} granted twice"
                );
            }
        }
    }
    assert_eq!(
        granted,
        watched_resources(),
        "{ctx}: the ClusterRole must grant exactly what the k8s processor watches"
    );
}

/// The tapline configuration inside the ConfigMap, as text and as JSON.
fn embedded_config(cm: &ConfigMap, ctx: &str) -> (String, Value) {
    let text = cm
        .data
        .as_ref()
        .and_then(|d| d.get(CONFIG_KEY))
        .unwrap_or_else(|| panic!("{ctx}: ConfigMap has no {CONFIG_KEY}"))
        .clone();
    let mut docs = yaml_docs(&format!("{ctx} ConfigMap {CONFIG_KEY}"), &text);
    assert_eq!(
        docs.len(),
        1,
        "{ctx}: {CONFIG_KEY} must be one YAML document"
    );
    (text, docs.remove(0).json)
}

fn endpoint_port(v: &Value, what: &str) -> i32 {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("{what}: expected host:port, got {v}"));
    let (host, port) = s.rsplit_once(':').unwrap();
    assert_eq!(
        host, "0.0.0.0",
        "{what}: must listen on every address of the node"
    );
    port.parse().unwrap()
}

fn resolve_port(c: &Container, port: &IntOrString, ctx: &str) -> i32 {
    match port {
        IntOrString::Int(p) => *p,
        IntOrString::String(name) => {
            c.ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .unwrap_or_else(|| panic!("{ctx}: no container port named {name}"))
                .container_port
        }
    }
}

/// The pod's view of a config: what a DaemonSet's env sets as plain values.
fn container_env(c: &Container) -> Vec<(String, String)> {
    c.env
        .iter()
        .flatten()
        .filter_map(|e| Some((e.name.clone(), e.value.clone()?)))
        .collect()
}

/// Runs `tapline validate` on `text` with `env`, as an in-cluster pod would.
fn validate(text: &str, env: &[(String, String)], node_name: bool) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.yaml");
    std::fs::write(&file, text).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tapline"));
    cmd.arg("validate").arg("--config").arg(&file);
    for (k, _) in std::env::vars() {
        if k.starts_with("TAPLINE_") || k.starts_with("OTEL_") || k == "NODE_NAME" {
            cmd.env_remove(k);
        }
    }
    // What the kubelet gives every pod (in-cluster API) and the downward API's NODE_NAME.
    cmd.env("KUBERNETES_SERVICE_HOST", "10.96.0.1")
        .env("KUBERNETES_SERVICE_PORT", "443");
    if node_name {
        cmd.env("NODE_NAME", "node-1");
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Every check that ties the objects together. `namespace` is the Namespace object the
/// manifests create (the chart installs into an existing one).
fn check_objects(o: &Objects, ctx: &str, namespace_object: bool) -> Value {
    let sa = one(&o.service_accounts, "ServiceAccount", ctx);
    let role = one(&o.cluster_roles, "ClusterRole", ctx);
    let binding = one(&o.cluster_role_bindings, "ClusterRoleBinding", ctx);
    let cm = one(&o.config_maps, "ConfigMap", ctx);
    let ds = one(&o.daemon_sets, "DaemonSet", ctx);
    let svc = one(&o.services, "Service", ctx);
    let ns = sa
        .metadata
        .namespace
        .clone()
        .expect("ServiceAccount namespace");
    if namespace_object {
        let n = one(&o.namespaces, "Namespace", ctx);
        assert_eq!(n.metadata.name.as_deref(), Some(ns.as_str()), "{ctx}");
        let labels = n.metadata.labels.clone().unwrap_or_default();
        assert_eq!(
            labels
                .get("pod-security.kubernetes.io/enforce")
                .map(String::as_str),
            Some("privileged"),
            "{ctx}: the DaemonSet needs a namespace that admits privileged pods"
        );
    } else {
        assert!(o.namespaces.is_empty(), "{ctx}: unexpected Namespace");
    }
    for (what, got) in [
        ("ConfigMap", &cm.metadata.namespace),
        ("DaemonSet", &ds.metadata.namespace),
        ("Service", &svc.metadata.namespace),
    ] {
        assert_eq!(got.as_deref(), Some(ns.as_str()), "{ctx}: {what} namespace");
    }

    check_cluster_role(role, ctx);
    assert_eq!(binding.role_ref.kind, "ClusterRole", "{ctx}");
    assert_eq!(
        Some(&binding.role_ref.name),
        role.metadata.name.as_ref(),
        "{ctx}"
    );
    let subjects = binding.subjects.clone().unwrap_or_default();
    assert_eq!(subjects.len(), 1, "{ctx}: one subject");
    assert_eq!(subjects[0].kind, "ServiceAccount", "{ctx}");
    assert_eq!(Some(&subjects[0].name), sa.metadata.name.as_ref(), "{ctx}");
    assert_eq!(subjects[0].namespace.as_deref(), Some(ns.as_str()), "{ctx}");

    let (config_text, config) = embedded_config(cm, ctx);
    let spec = ds.spec.as_ref().unwrap();
    let template_labels = spec
        .template
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .clone()
        .unwrap();
    for (k, v) in spec.selector.match_labels.iter().flatten() {
        assert_eq!(template_labels.get(k), Some(v), "{ctx}: selector label {k}");
    }
    let pod = spec.template.spec.as_ref().unwrap();
    assert_eq!(
        pod.service_account_name.as_ref(),
        sa.metadata.name.as_ref(),
        "{ctx}"
    );
    assert_eq!(
        pod.host_network,
        Some(true),
        "{ctx}: flows attach to the node's interfaces"
    );
    assert_eq!(
        pod.host_pid,
        Some(true),
        "{ctx}: app and k8s read every process of the node"
    );
    assert_eq!(
        pod.dns_policy.as_deref(),
        Some("ClusterFirstWithHostNet"),
        "{ctx}"
    );
    assert_eq!(pod.containers.len(), 1, "{ctx}: one container");
    let c = &pod.containers[0];
    assert_eq!(
        c.args.clone().unwrap_or_default(),
        ["run", "--config", &format!("{CONFIG_DIR}/{CONFIG_KEY}")],
        "{ctx}: container args"
    );
    let node_name = c
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "NODE_NAME")
        .unwrap_or_else(|| panic!("{ctx}: no NODE_NAME"));
    assert_eq!(
        node_name
            .value_from
            .as_ref()
            .and_then(|v| v.field_ref.as_ref())
            .map(|f| f.field_path.as_str()),
        Some("spec.nodeName"),
        "{ctx}: NODE_NAME comes from the downward API"
    );

    let sc = c.security_context.as_ref().expect("securityContext");
    assert_ne!(
        sc.privileged,
        Some(true),
        "{ctx}: capabilities, not privileged"
    );
    assert_eq!(sc.allow_privilege_escalation, Some(false), "{ctx}");
    assert_eq!(sc.read_only_root_filesystem, Some(true), "{ctx}");
    let caps = sc.capabilities.as_ref().expect("capabilities");
    assert_eq!(
        caps.drop.clone().unwrap_or_default(),
        ["ALL"],
        "{ctx}: drop ALL"
    );
    let added: BTreeSet<&str> = caps.add.iter().flatten().map(String::as_str).collect();
    assert_eq!(
        added,
        BTreeSet::from(CAPABILITIES),
        "{ctx}: added capabilities"
    );

    let requests = c
        .resources
        .as_ref()
        .and_then(|r| r.requests.clone())
        .unwrap_or_default();
    let limits = c
        .resources
        .as_ref()
        .and_then(|r| r.limits.clone())
        .unwrap_or_default();
    assert!(
        requests.contains_key("cpu") && requests.contains_key("memory"),
        "{ctx}: requests"
    );
    assert!(limits.contains_key("memory"), "{ctx}: memory limit");

    // Probes on the self-telemetry endpoint of the embedded configuration.
    let telemetry_port = endpoint_port(
        &config["service"]["telemetry"]["metrics"]["endpoint"],
        "service.telemetry.metrics.endpoint",
    );
    for (probe, path) in [
        (&c.readiness_probe, "/readyz"),
        (&c.liveness_probe, "/healthz"),
    ] {
        let get = probe
            .as_ref()
            .and_then(|p| p.http_get.as_ref())
            .unwrap_or_else(|| panic!("{ctx}: no {path} probe"));
        assert_eq!(get.path.as_deref(), Some(path), "{ctx}");
        assert_eq!(
            resolve_port(c, &get.port, ctx),
            telemetry_port,
            "{ctx}: {path} port"
        );
    }

    // The config volume is this ConfigMap, mounted where --config points.
    let volumes = pod.volumes.clone().unwrap_or_default();
    let mounts = c.volume_mounts.clone().unwrap_or_default();
    let config_volume = volumes
        .iter()
        .find(|v| v.config_map.as_ref().map(|m| &m.name) == cm.metadata.name.as_ref())
        .unwrap_or_else(|| panic!("{ctx}: the ConfigMap is not a volume"));
    let mount = mounts
        .iter()
        .find(|m| m.name == config_volume.name)
        .unwrap_or_else(|| panic!("{ctx}: the config volume is not mounted"));
    assert_eq!(mount.mount_path, CONFIG_DIR, "{ctx}");
    assert_eq!(mount.read_only, Some(true), "{ctx}");
    // Every program attaches through BPF links (tp_btf, tc, socket filters): no tracefs or
    // other host path is mounted.
    assert!(
        volumes.iter().all(|v| v.host_path.is_none()),
        "{ctx}: tapline needs no host path"
    );

    // The Service points at the prometheus exporter.
    let metrics_port = endpoint_port(
        &config["exporters"]["prometheus"]["endpoint"],
        "exporters.prometheus.endpoint",
    );
    let s = svc.spec.as_ref().unwrap();
    assert_eq!(s.cluster_ip.as_deref(), Some("None"), "{ctx}: headless");
    for (k, v) in s.selector.iter().flatten() {
        assert_eq!(
            template_labels.get(k),
            Some(v),
            "{ctx}: Service selector {k}"
        );
    }
    let ports = s.ports.clone().unwrap_or_default();
    assert_eq!(ports.len(), 1, "{ctx}: one Service port");
    assert_eq!(ports[0].port, metrics_port, "{ctx}");
    let target = ports[0]
        .target_port
        .clone()
        .unwrap_or(IntOrString::Int(ports[0].port));
    assert_eq!(
        resolve_port(c, &target, ctx),
        metrics_port,
        "{ctx}: targetPort"
    );
    let ann = svc.metadata.annotations.clone().unwrap_or_default();
    let path = config["exporters"]["prometheus"]["path"]
        .as_str()
        .unwrap_or("/metrics");
    assert_eq!(
        ann.get("prometheus.io/scrape").map(String::as_str),
        Some("true"),
        "{ctx}"
    );
    assert_eq!(
        ann.get("prometheus.io/port"),
        Some(&metrics_port.to_string()),
        "{ctx}"
    );
    assert_eq!(
        ann.get("prometheus.io/path").map(String::as_str),
        Some(path),
        "{ctx}"
    );

    // What the cluster configuration must contain.
    assert!(
        config["receivers"]["flows"].is_object(),
        "{ctx}: flows receiver"
    );
    assert!(
        config["receivers"]["app"].is_object(),
        "{ctx}: app receiver"
    );
    assert_eq!(
        config["processors"]["k8s"]["restrict_local_node"],
        json!(true),
        "{ctx}"
    );
    for p in ["zones", "select", "cidr"] {
        assert!(config["processors"][p].is_object(), "{ctx}: {p} processor");
    }
    assert!(
        config["exporters"]["otlp"].is_object(),
        "{ctx}: otlp exporter"
    );

    // The configuration is valid as the pod runs it, and NODE_NAME is what makes it so.
    let env = container_env(c);
    let (ok, out) = validate(&config_text, &env, true);
    assert!(
        ok,
        "{ctx}: tapline validate refused the ConfigMap's config:\n{out}"
    );
    assert!(
        !out.contains("warning:") && !out.contains("error:"),
        "{ctx}: tapline validate:\n{out}"
    );
    let (ok, out) = validate(&config_text, &env, false);
    assert!(
        !ok && out.contains("restrict_local_node"),
        "{ctx}: without NODE_NAME, restrict_local_node must be refused:\n{out}"
    );
    config
}

#[test]
fn manifests_read_back_unchanged_and_agree_with_each_other() {
    let docs = manifest_docs();
    let o = typed_objects(&docs);
    check_objects(&o, "deploy/kubernetes", true);
}

#[test]
fn a_misspelt_field_is_caught_by_the_round_trip() {
    let docs = manifest_docs();
    let ds = docs
        .iter()
        .find(|d| d.json["kind"] == "DaemonSet")
        .expect("a DaemonSet");
    assert!(roundtrip::<DaemonSet>(&ds.json).is_ok());
    let mut typo = ds.json.clone();
    typo["spec"]["template"]["spec"]["hostNetwrok"] = json!(true);
    let err = roundtrip::<DaemonSet>(&typo).unwrap_err();
    assert!(err.contains(".spec.template.spec.hostNetwrok"), "{err}");
    let mut misplaced = ds.json.clone();
    misplaced["spec"]["template"]["spec"]["containers"][0]["hostPID"] = json!(true);
    let err = roundtrip::<DaemonSet>(&misplaced).unwrap_err();
    assert!(err.contains("containers[0].hostPID"), "{err}");
}

#[test]
fn cluster_role_check_refuses_extra_verbs_and_resources() {
    let docs = manifest_docs();
    let role = docs
        .iter()
        .find(|d| d.json["kind"] == "ClusterRole")
        .unwrap();
    for change in [
        json!({"apiGroups": [""], "resources": ["secrets"], "verbs": ["list", "watch"]}),
        json!({"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}),
    ] {
        let mut r = role.json.clone();
        r["rules"].as_array_mut().unwrap().push(change.clone());
        let typed: ClusterRole = roundtrip(&r).unwrap();
        let caught = std::panic::catch_unwind(|| check_cluster_role(&typed, "changed"));
        assert!(caught.is_err(), "the rule {change} was accepted");
    }
}

// ---- The Helm chart ----

fn chart_dir() -> PathBuf {
    Path::new(ROOT).join("deploy/helm/tapline")
}

/// Renders the chart with `values` through Helm's engine (helm-python-sdk); the manifests
/// by template name, or Helm's error.
fn render_chart(values: &Value) -> Result<BTreeMap<String, String>, String> {
    const SCRIPT: &str = r#"
import json, sys
try:
    import helm_python as helm
except ImportError as e:
    print("NO_HELM_PYTHON: " + str(e))
    sys.exit(3)
values = json.load(sys.stdin)
try:
    with helm.Chart.load(sys.argv[1]) as chart:
        out = chart.render(values, name="tapline", namespace="tapline")
except Exception as e:
    print("RENDER_ERROR: " + str(e))
    sys.exit(4)
print(json.dumps(out))
"#;
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .arg(chart_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is needed to render the Helm chart");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(values.to_string().as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    match out.status.code() {
        Some(0) => Ok(serde_json::from_str(&stdout).unwrap()),
        Some(3) => panic!(
            "the Helm chart tests render with Helm's engine from the `helm-python-sdk` package: \
             `pip install helm-python-sdk` ({stdout})"
        ),
        Some(4) => Err(stdout),
        _ => panic!(
            "python3 failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

fn chart_docs(rendered: &BTreeMap<String, String>) -> Vec<Doc> {
    rendered
        .iter()
        .filter(|(name, _)| name.ends_with(".yaml"))
        .flat_map(|(name, text)| yaml_docs(name, text))
        .collect()
}

fn lint_chart() -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg("import json, sys, helm_python as h; print(json.dumps(h.lint(sys.argv[1])))")
        .arg(chart_dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn chart_lints_clean() {
    let report: Value = serde_json::from_str(&lint_chart()).unwrap();
    assert_eq!(report["errors"], json!([]), "{report}");
    // Severity 1 is INFO (e.g. "icon is recommended"); nothing worse is accepted.
    for m in report["messages"].as_array().unwrap() {
        assert!(m["severity"].as_i64().unwrap() <= 1, "helm lint: {m}");
    }
}

#[test]
fn chart_with_default_values_renders_the_manifests_objects() {
    let rendered = render_chart(&json!({})).expect("default values render");
    let chart = typed_objects(&chart_docs(&rendered));
    let chart_config = check_objects(&chart, "helm chart (default values)", false);

    let plain = typed_objects(&manifest_docs());
    let (_, plain_config) = embedded_config(&plain.config_maps[0], "deploy/kubernetes");
    assert_eq!(
        chart_config, plain_config,
        "the chart's default tapline configuration differs from deploy/kubernetes' one"
    );
    assert_eq!(chart.cluster_roles[0].rules, plain.cluster_roles[0].rules);
    let pod = |o: &Objects| {
        serde_json::to_value(&o.daemon_sets[0].spec.as_ref().unwrap().template.spec).unwrap()
    };
    assert_eq!(
        first_difference(&pod(&plain), &pod(&chart), ""),
        None,
        "the chart's pod spec differs from deploy/kubernetes/03-daemonset.yaml"
    );
    let svc_ports = |o: &Objects| o.services[0].spec.as_ref().unwrap().ports.clone();
    assert_eq!(svc_ports(&plain), svc_ports(&chart));
    assert_eq!(
        plain.services[0].metadata.annotations,
        chart.services[0].metadata.annotations
    );
}

#[test]
fn chart_values_shape_the_objects_and_the_config() {
    let values = json!({
        "image": {"repository": "registry.internal/tapline", "tag": "1.2.3"},
        "ports": {"metrics": 9500, "telemetry": 9501},
        "logs": {"level": "debug", "format": "text"},
        "receivers": {"flows": {"config": {"sampling": 10, "cache_active_timeout": "10s"}}},
        "processors": {
            "zones": {"cidrs": {"eu-west-1a": ["10.0.0.0/20"], "eu-west-1b": ["10.0.16.0/20"]}},
            // Helm merges maps with the defaults: null removes the default entry.
            "select": {"*": null,
                       "tapline_network_flow_bytes": {"include": ["k8s.*.owner.*", "src.zone", "dst.zone"]}}
        },
        "exporters": {
            "otlp": {"endpoint": "https://otlp.example.net:4317", "signals": ["metrics", "traces"],
                     "config": {"compression": "gzip"}},
            "prometheus": {"config": {"ttl": "10m"}}
        },
        "extraConfig": {"service": {"shutdown_timeout": "20s"}},
        "resources": {"requests": {"cpu": "250m", "memory": "300Mi"}, "limits": {"memory": "2Gi"}},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "obs", "effect": "NoSchedule"}],
        "extraCapabilities": ["NET_RAW"],
    });
    let rendered = render_chart(&values).expect("render");
    let o = typed_objects(&chart_docs(&rendered));
    let ds = &o.daemon_sets[0];
    let pod = ds.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    let c = &pod.containers[0];
    assert_eq!(c.image.as_deref(), Some("registry.internal/tapline:1.2.3"));
    assert_eq!(
        pod.node_selector
            .clone()
            .unwrap()
            .get("kubernetes.io/os")
            .map(String::as_str),
        Some("linux")
    );
    assert_eq!(
        pod.tolerations.clone().unwrap()[0].key.as_deref(),
        Some("dedicated")
    );
    let caps = c
        .security_context
        .clone()
        .unwrap()
        .capabilities
        .unwrap()
        .add
        .unwrap();
    assert!(caps.iter().any(|c| c == "NET_RAW"), "{caps:?}");
    let env = container_env(c);
    assert!(env.contains(&(
        "OTEL_EXPORTER_OTLP_ENDPOINT".into(),
        "https://otlp.example.net:4317".into()
    )));

    let (text, config) = embedded_config(&o.config_maps[0], "chart");
    assert_eq!(
        config["exporters"]["prometheus"]["endpoint"],
        "0.0.0.0:9500"
    );
    assert_eq!(config["exporters"]["prometheus"]["ttl"], "10m");
    assert_eq!(config["exporters"]["otlp"]["compression"], "gzip");
    assert_eq!(
        config["service"]["telemetry"]["metrics"]["endpoint"],
        "0.0.0.0:9501"
    );
    assert_eq!(config["service"]["telemetry"]["logs"]["level"], "debug");
    assert_eq!(config["service"]["shutdown_timeout"], "20s");
    assert_eq!(config["receivers"]["flows"]["sampling"], 10);
    assert_eq!(
        config["service"]["pipelines"]["metrics/app"]["exporters"],
        json!(["prometheus", "otlp"])
    );
    assert_eq!(
        config["processors"]["select"],
        json!({"tapline_network_flow_bytes": {"include": ["k8s.*.owner.*", "src.zone", "dst.zone"]}}),
        "the user's select entry, the default one removed by null"
    );
    let probe_port = c.readiness_probe.clone().unwrap().http_get.unwrap().port;
    assert_eq!(resolve_port(c, &probe_port, "chart"), 9501);
    let svc = o.services[0].spec.clone().unwrap();
    assert_eq!(svc.ports.unwrap()[0].port, 9500);
    assert_eq!(
        o.services[0].metadata.annotations.clone().unwrap()["prometheus.io/port"],
        "9500"
    );
    let (ok, out) = validate(&text, &env, true);
    assert!(ok && !out.contains("error:"), "tapline validate:\n{out}");

    // Without flows the network processors and pipeline go away; still a valid config.
    let rendered = render_chart(&json!({"receivers": {"flows": {"enabled": false}},
                                        "exporters": {"otlp": {"enabled": false}}}))
    .expect("render");
    let o = typed_objects(&chart_docs(&rendered));
    let (text, config) = embedded_config(&o.config_maps[0], "chart without flows");
    assert!(config["receivers"]["flows"].is_null());
    assert!(config["processors"]["zones"].is_null());
    assert!(config["service"]["pipelines"]["traces"].is_null());
    assert!(config["exporters"]["otlp"].is_null());
    let c = &o.daemon_sets[0]
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0];
    assert!(container_env(c)
        .iter()
        .all(|(k, _)| k != "OTEL_EXPORTER_OTLP_ENDPOINT"));
    let (ok, out) = validate(&text, &[], true);
    assert!(ok && !out.contains("warning:"), "tapline validate:\n{out}");
}

#[test]
fn chart_refuses_values_that_leave_metrics_nowhere_to_go() {
    let err = render_chart(&json!({"exporters": {"prometheus": {"enabled": false},
                                                  "otlp": {"enabled": false}}}))
    .unwrap_err();
    assert!(err.contains("no exporter for metrics"), "{err}");
    let err = render_chart(&json!({"exporters": {"otlp": {"signals": ["logs"]}}})).unwrap_err();
    assert!(err.contains("neither metrics nor traces"), "{err}");
    // Without the prometheus exporter there is no Service to scrape.
    let rendered = render_chart(&json!({"exporters": {"prometheus": {"enabled": false},
                                                       "otlp": {"signals": ["metrics", "traces"]}}}))
    .unwrap();
    let o = typed_objects(&chart_docs(&rendered));
    assert!(o.services.is_empty());
}
