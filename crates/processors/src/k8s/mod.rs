//! `k8s`: decorates flows and application telemetry with Kubernetes metadata.
//!
//! ```yaml
//! processors:
//!   k8s:
//!     enable: auto              # auto (default) | true | false
//!     kubeconfig: ~/.kube/config  # default: in-cluster service account
//!     restrict_local_node: false  # true: watch only this node's pods
//!     node_name: ""               # default: $NODE_NAME
//! ```
//!
//! or, with the cache and its watchers in a `k8s_metadata` extension that `zones` shares:
//!
//! ```yaml
//! extensions:
//!   k8s_metadata:
//!     enable: auto                # the four settings above move here
//! processors:
//!   k8s: { extension: k8s_metadata }
//!   zones: { extension: k8s_metadata }
//! service:
//!   extensions: [k8s_metadata]
//! ```
//!
//! - Flow data (points and spans with `src.address`/`dst.address`): an address that is a pod
//!   IP, a service ClusterIP or a node IP gets `k8s.<end>.namespace`, `.name`, `.type`,
//!   `.owner.name`, `.owner.type`, `.node.name`, `.node.ip`, and `<end>.name` when unnamed.
//!   hostNetwork pods share their node's IP, so that IP names the node.
//! - Application telemetry (resource with `container.id` or `process.pid`): the pod, its
//!   namespace, owner, node and container, found through `/proc/<pid>/cgroup`; `service.name`
//!   from the workload when the process set none (or set its executable name).
//!
//! The cache is filled by watchers (Pods, ReplicaSets, Jobs, Services, Nodes) that start when
//! the pipelines run, never during `validate`, and is shared by every pipeline. Without
//! `extension`, the graph's default `k8s_metadata` cache is used (the one `zones` without
//! `extension` reads too) and each `k8s` processor starts its own watchers into it.
//!
//! Testing note: no Kubernetes cluster is available to the test suite. The watchers are
//! tested against an in-test HTTP server speaking the API's list/watch protocol (`tests/k8s.rs`),
//! not against a real API server.

pub mod cgroup;
pub mod resolve;
pub mod store;
pub mod watch;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tapline_core::data::{Attributes, MetricData, Resource, Signal, SignalKind, Str, Value};
use tapline_core::pipeline::{BatchFn, BatchLayer, ProcessorLayer};
use tapline_core::{BuildContext, Component, ConfigErrors, ExtensionComponent, ProcessorComponent};

use crate::net::{End, EndSlots, Layouts};
pub use cgroup::PidContainers;
pub use resolve::{Resolved, Resolver};
pub use store::{Endpoint, K8sCache, State};
use tapline_semconv::attr;
use watch::{ApiSource, WatchSettings};

pub const SIGNALS: &[SignalKind] = &[SignalKind::Metrics, SignalKind::Traces];

/// `enable: auto | true | false`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Enable {
    #[default]
    Auto,
    On,
    Off,
}

impl<'de> Deserialize<'de> for Enable {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            B(bool),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::B(true) => Ok(Enable::On),
            Raw::B(false) => Ok(Enable::Off),
            Raw::S(s) if s == "auto" => Ok(Enable::Auto),
            Raw::S(s) => Err(serde::de::Error::custom(format!(
                "invalid value {s:?}: write auto, true or false"
            ))),
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct K8sConfig {
    /// A `k8s_metadata` extension holding the cache and its watchers; the four watch
    /// settings below then belong to the extension.
    #[serde(default)]
    pub extension: Option<String>,
    #[serde(default)]
    pub enable: Enable,
    pub kubeconfig: Option<PathBuf>,
    #[serde(default)]
    pub restrict_local_node: bool,
    pub node_name: Option<String>,
    /// Where `/proc` is (`/host/proc` when the agent runs in a container with the host's
    /// proc mounted there).
    #[serde(default = "default_proc_root")]
    pub proc_root: PathBuf,
}

impl K8sConfig {
    /// The settings of the watchers, as a `k8s_metadata` extension would hold them.
    fn watch_config(&self) -> K8sMetadataConfig {
        K8sMetadataConfig {
            enable: self.enable,
            kubeconfig: self.kubeconfig.clone(),
            restrict_local_node: self.restrict_local_node,
            node_name: self.node_name.clone(),
        }
    }
}

/// `extensions.k8s_metadata`: what the watchers connect to and watch.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct K8sMetadataConfig {
    #[serde(default)]
    pub enable: Enable,
    pub kubeconfig: Option<PathBuf>,
    #[serde(default)]
    pub restrict_local_node: bool,
    pub node_name: Option<String>,
}

fn default_proc_root() -> PathBuf {
    PathBuf::from("/proc")
}

/// Attribute keys per end.
struct EndKeys {
    namespace: &'static str,
    name: &'static str,
    kind: &'static str,
    owner_name: &'static str,
    owner_type: &'static str,
    node_name: &'static str,
    node_ip: &'static str,
}

const SRC_KEYS: EndKeys = EndKeys {
    namespace: attr::K8S_SRC_NAMESPACE,
    name: attr::K8S_SRC_NAME,
    kind: attr::K8S_SRC_TYPE,
    owner_name: attr::K8S_SRC_OWNER_NAME,
    owner_type: attr::K8S_SRC_OWNER_TYPE,
    node_name: attr::K8S_SRC_NODE_NAME,
    node_ip: attr::K8S_SRC_NODE_IP,
};
const DST_KEYS: EndKeys = EndKeys {
    namespace: attr::K8S_DST_NAMESPACE,
    name: attr::K8S_DST_NAME,
    kind: attr::K8S_DST_TYPE,
    owner_name: attr::K8S_DST_OWNER_NAME,
    owner_type: attr::K8S_DST_OWNER_TYPE,
    node_name: attr::K8S_DST_NODE_NAME,
    node_ip: attr::K8S_DST_NODE_IP,
};

/// The key whose presence means an end is already decorated.
fn k8s_name_key(end: End) -> &'static str {
    keys(end).name
}

fn keys(end: End) -> &'static EndKeys {
    match end {
        End::Src => &SRC_KEYS,
        End::Dst => &DST_KEYS,
    }
}

/// The batch function; holds the shared cache.
pub struct K8sProcessor {
    cache: Arc<K8sCache>,
    pids: PidContainers,
}

impl K8sProcessor {
    pub fn new(cache: Arc<K8sCache>, proc_root: PathBuf) -> Self {
        K8sProcessor {
            cache,
            pids: PidContainers::new(proc_root, Duration::from_secs(30), 65_536),
        }
    }

    /// Decorates one point's or span's flow ends from an already locked view.
    pub fn decorate_flow(state: &State, attrs: &mut Attributes) {
        Self::decorate_flow_with(&mut Resolver::new(state), attrs);
    }

    /// [`Self::decorate_flow`] through a resolver kept for the whole batch.
    fn decorate_flow_with(resolver: &mut Resolver<'_>, attrs: &mut Attributes) {
        let slots = EndSlots::find(attrs, k8s_name_key);
        Self::decorate_flow_at(resolver, attrs, &slots);
    }

    /// Which keys [`Self::decorate_flow_at`] appends for `ep` at end `i`, as 5 bits: what a
    /// stamp on the result must tell apart.
    fn appended_keys(i: usize, ep: &Endpoint, slots: &EndSlots) -> u32 {
        (1 | (ep.namespace.is_some() as u32) << 1
            | (ep.node_name.is_some() as u32) << 2
            | (ep.node_ip.is_some() as u32) << 3
            | (!slots.named[i] as u32) << 4)
            << (5 * i)
    }

    /// [`Self::decorate_flow`] with the key positions already known (`slots` describes
    /// `attrs`'s layout).
    /// Returns which keys it appended ([`Self::appended_keys`] of each end), 0 for none.
    fn decorate_flow_at(
        resolver: &mut Resolver<'_>,
        attrs: &mut Attributes,
        slots: &EndSlots,
    ) -> u32 {
        let mut at: [Option<u32>; 2] = [None, None];
        for (i, at) in at.iter_mut().enumerate() {
            if !slots.written[i] {
                *at = slots.address(attrs, i).map(|a| resolver.resolve(a));
            }
        }
        let found: [Option<&Arc<Endpoint>>; 2] =
            at.map(|at| at.and_then(|at| resolver.get(at).endpoint.as_ref()));
        if found.iter().all(Option::is_none) {
            return 0;
        }
        let what = (0..2)
            .filter_map(|i| found[i].map(|ep| Self::appended_keys(i, ep, slots)))
            .fold(0, |w, b| w | b);
        let adds = |i: usize, ep: &Endpoint| {
            4 + usize::from(ep.namespace.is_some())
                + usize::from(ep.node_name.is_some())
                + usize::from(ep.node_ip.is_some())
                + usize::from(!slots.named[i])
        };
        let count: usize = (0..2).filter_map(|i| found[i].map(|ep| adds(i, ep))).sum();
        // Room for rdns, zones and cidr too (a name, a zone and a CIDR per end): one copy
        // of a shared list, and no reallocation, for the whole chain.
        let pairs = attrs.to_mut(count + 6);
        let mut put =
            |k: &'static str, v: &Str| pairs.push((Str::Static(k), Value::Str(v.clone())));
        for (i, end) in End::BOTH.into_iter().enumerate() {
            let Some(ep) = found[i] else {
                continue;
            };
            let k = keys(end);
            if let Some(ns) = &ep.namespace {
                put(k.namespace, ns);
            }
            put(k.name, &ep.name);
            put(k.kind, &Str::Static(ep.kind));
            put(k.owner_name, &ep.owner_name);
            put(k.owner_type, &ep.owner_type);
            if let Some(n) = &ep.node_name {
                put(k.node_name, n);
            }
            if let Some(n) = &ep.node_ip {
                put(k.node_ip, n);
            }
            if !slots.named[i] {
                put(end.name_key(), &ep.name);
            }
        }
        what
    }

    /// Decorates every point of one metric: key positions are found once per layout.
    fn decorate_points(resolver: &mut Resolver<'_>, data: &mut MetricData) {
        let mut layouts: Layouts<EndSlots> = Layouts::default();
        data.for_each_attributes(|a| {
            let slots = *layouts.get(a, |a| EndSlots::find(a, k8s_name_key));
            let what = Self::decorate_flow_at(resolver, a, &slots);
            if what != 0 {
                layouts.appended(a, what);
            }
        });
    }

    /// The resource with its pod's metadata added, or `None` when it is not in a known pod.
    fn decorate_resource(&self, state: &State, res: &Resource) -> Option<Arc<Resource>> {
        let a = &res.attributes;
        if a.get(attr::K8S_POD_NAME).is_some() {
            return None;
        }
        let container_id: Box<str> = match a.get_str(attr::CONTAINER_ID) {
            Some(id) => id.into(),
            None => {
                let pid = match a.get(attr::PROCESS_PID)? {
                    Value::Int(p) => *p,
                    Value::Str(s) => s.parse().ok()?,
                    _ => return None,
                };
                self.pids.container_of(pid)?
            }
        };
        let (pod, container) = state.lookup_container(&container_id)?;
        let ep = &pod.endpoint;
        let mut out = a.clone();
        let mut put = |k: &'static str, v: Value| {
            if out.get(k).is_none() {
                out.push(k, v);
            }
        };
        put(attr::K8S_POD_NAME, pod.name.clone().into());
        put(attr::K8S_POD_UID, pod.uid.clone().into());
        put(attr::K8S_NAMESPACE_NAME, pod.namespace.clone().into());
        put(attr::K8S_CONTAINER_NAME, container.clone().into());
        put(
            attr::CONTAINER_ID,
            Str::from(container_id.to_string()).into(),
        );
        if let Some(n) = &pod.node_name {
            put(attr::K8S_NODE_NAME, n.clone().into());
        }
        put(attr::K8S_OWNER_NAME, ep.owner_name.clone().into());
        put(attr::K8S_OWNER_TYPE, ep.owner_type.clone().into());
        if let Some(key) = owner_key(&ep.owner_type) {
            put(key, ep.owner_name.clone().into());
        }
        // A controller's intermediate owner is named too when it is the usual one.
        if let Some((kind, name)) = &pod.controller {
            if let Some(key) = owner_key(kind) {
                put(key, name.clone().into());
            }
        }
        let service_set = match (
            a.get_str(attr::SERVICE_NAME),
            a.get_str(attr::PROCESS_EXECUTABLE_NAME),
        ) {
            (None, _) => false,
            (Some(s), _) if s.starts_with("unknown_service") => false,
            (Some(s), Some(exe)) => s != exe,
            (Some(_), None) => true,
        };
        if !service_set {
            let name = pod
                .app_name
                .clone()
                .unwrap_or_else(|| ep.owner_name.clone());
            out.set(attr::SERVICE_NAME, name);
        }
        Some(Resource::new(out))
    }
}

/// The semantic-convention key for an owner kind (`k8s.deployment.name`, ...).
fn owner_key(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "Deployment" => attr::K8S_DEPLOYMENT_NAME,
        "ReplicaSet" => attr::K8S_REPLICASET_NAME,
        "DaemonSet" => attr::K8S_DAEMONSET_NAME,
        "StatefulSet" => attr::K8S_STATEFULSET_NAME,
        "Job" => attr::K8S_JOB_NAME,
        "CronJob" => attr::K8S_CRONJOB_NAME,
        _ => return None,
    })
}

impl BatchFn for K8sProcessor {
    fn apply(&self, batch: &mut Signal) {
        let state = self.cache.read();
        if state.pod_count() == 0 && state.service_count() == 0 && state.node_count() == 0 {
            return;
        }
        let mut resolver = Resolver::new(&state);
        match batch {
            Signal::Metrics(m) => {
                for rm in &mut m.resource_metrics {
                    if let Some(r) = self.decorate_resource(&state, &rm.resource) {
                        rm.resource = r;
                    }
                    for metric in &mut rm.metrics {
                        Self::decorate_points(&mut resolver, &mut metric.data);
                    }
                }
            }
            Signal::Traces(t) => {
                for rs in &mut t.resource_spans {
                    if let Some(r) = self.decorate_resource(&state, &rs.resource) {
                        rs.resource = r;
                    }
                    for s in &mut rs.spans {
                        Self::decorate_flow_with(&mut resolver, &mut s.attributes);
                    }
                }
            }
        }
    }
}

/// Passes batches through unchanged: `enable: false`, or `auto` outside a cluster.
struct Disabled;
impl BatchFn for Disabled {
    fn apply(&self, _batch: &mut Signal) {}
}

pub struct K8sFactory;

impl Component for K8sFactory {
    type Config = K8sConfig;
    const TYPE_NAME: &'static str = "k8s";
    const DESCRIPTION: &'static str = "Adds Kubernetes metadata (pod, namespace, owner, node, service) to flows and application telemetry";
    const SIGNALS: &'static [SignalKind] = SIGNALS;
}

/// Decides whether the processor runs, from the config and the environment.
pub fn is_enabled(cfg: &K8sMetadataConfig, in_cluster: bool) -> bool {
    match cfg.enable {
        Enable::On => true,
        Enable::Off => false,
        Enable::Auto => in_cluster || cfg.kubeconfig.is_some(),
    }
}

/// What the watchers connect to and watch, or `None` when Kubernetes metadata is off.
/// Problems are reported at the fields of `cfg`.
fn watch_settings(
    cfg: &K8sMetadataConfig,
    ctx: &BuildContext,
) -> Result<Option<WatchSettings>, ConfigErrors> {
    let in_cluster = std::env::var_os("KUBERNETES_SERVICE_HOST").is_some();
    if !is_enabled(cfg, in_cluster) {
        if cfg.enable == Enable::Auto {
            tracing::info!(
                "{}: not in a Kubernetes cluster (KUBERNETES_SERVICE_HOST unset, no kubeconfig): Kubernetes decoration is off",
                ctx.id
            );
        }
        return Ok(None);
    }
    let source = match &cfg.kubeconfig {
        Some(path) => {
            let config = kube::config::Kubeconfig::read_from(path).map_err(|e| {
                ConfigErrors::at(
                    "kubeconfig",
                    format!("cannot read kubeconfig {}: {e}", path.display()),
                )
            })?;
            ApiSource::Kubeconfig {
                path: path.clone(),
                config: Box::new(config),
            }
        }
        None if in_cluster => ApiSource::InCluster,
        None => {
            return Err(ConfigErrors::at(
                "enable",
                "enable: true outside a cluster needs `kubeconfig` (KUBERNETES_SERVICE_HOST is not set)",
            ))
        }
    };
    let local_node = if cfg.restrict_local_node {
        let node = cfg
            .node_name
            .clone()
            .filter(|n| !n.is_empty())
            .or_else(|| std::env::var("NODE_NAME").ok().filter(|n| !n.is_empty()));
        match node {
            Some(n) => Some(n),
            None => return Err(ConfigErrors::at(
                "restrict_local_node",
                "restrict_local_node needs this node's name: set `node_name`, or NODE_NAME from the downward API (fieldRef spec.nodeName)",
            )),
        }
    } else {
        None
    };
    Ok(Some(WatchSettings { source, local_node }))
}

/// Runs the watchers filling `cache` while the graph runs.
fn start_watchers(ctx: &BuildContext, cache: Arc<K8sCache>, settings: WatchSettings) {
    ctx.spawn_on_start(Box::new(move |cancel| {
        Box::pin(watch::run(cache, settings, cancel))
    }));
}

impl ProcessorComponent for K8sFactory {
    fn build(&self, cfg: K8sConfig, ctx: &BuildContext) -> Result<ProcessorLayer, ConfigErrors> {
        let cache = match &cfg.extension {
            Some(name) => {
                if cfg.watch_config() != K8sMetadataConfig::default() {
                    return Err(ConfigErrors::at(
                        "extension",
                        format!("enable, kubeconfig, restrict_local_node and node_name belong to the extension {name:?} when one is named: set them there"),
                    ));
                }
                let metadata = ctx.extension::<K8sMetadataExtension>("extension", name)?;
                metadata.watched.then(|| metadata.cache.clone())
            }
            None => match watch_settings(&cfg.watch_config(), ctx)? {
                None => None,
                Some(settings) => {
                    let metadata = K8sMetadata::default_for(ctx)?;
                    start_watchers(ctx, metadata.cache.clone(), settings);
                    Some(metadata.cache.clone())
                }
            },
        };
        Ok(match cache {
            Some(cache) => BatchLayer::boxed(
                K8sProcessor::new(cache, cfg.proc_root),
                &ctx.id,
                &ctx.telemetry,
            ),
            None => BatchLayer::boxed(Disabled, &ctx.id, &ctx.telemetry),
        })
    }
}

/// What a `k8s_metadata` extension gives the components that name it.
pub struct K8sMetadata {
    pub cache: Arc<K8sCache>,
    /// `false` when the extension found Kubernetes off (`enable: auto` outside a cluster):
    /// nothing fills the cache.
    pub watched: bool,
}

impl K8sMetadata {
    /// The graph's default cache, for components naming no extension. The `k8s` processors
    /// naming none fill it with their own watchers.
    pub fn default_for(ctx: &BuildContext) -> Result<Arc<K8sMetadata>, ConfigErrors> {
        ctx.extension_or_default::<K8sMetadataExtension>("extension", None, || K8sMetadata {
            cache: Arc::new(K8sCache::new()),
            watched: true,
        })
    }
}

/// The `k8s_metadata` extension: the Kubernetes cache and the watchers that fill it, shared by
/// the `k8s` and `zones` processors that name it.
pub struct K8sMetadataExtension;

impl Component for K8sMetadataExtension {
    type Config = K8sMetadataConfig;
    const TYPE_NAME: &'static str = "k8s_metadata";
    const DESCRIPTION: &'static str =
        "Kubernetes pods, services, nodes and owners, watched once for k8s and zones processors to share";
    const SIGNALS: &'static [SignalKind] = &[];
}

impl ExtensionComponent for K8sMetadataExtension {
    type Extension = K8sMetadata;
    fn build(
        &self,
        cfg: K8sMetadataConfig,
        ctx: &BuildContext,
    ) -> Result<K8sMetadata, ConfigErrors> {
        let cache = Arc::new(K8sCache::new());
        let settings = watch_settings(&cfg, ctx)?;
        let watched = settings.is_some();
        if let Some(settings) = settings {
            start_watchers(ctx, cache.clone(), settings);
        }
        Ok(K8sMetadata { cache, watched })
    }
}

#[cfg(test)]
mod tests;
