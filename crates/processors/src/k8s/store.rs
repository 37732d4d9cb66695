//! The Kubernetes cache: the few fields of Pods, ReplicaSets, Jobs, Services and Nodes that
//! decoration needs, indexed by IP address and container id.
//!
//! Objects arrive as full API objects from the watchers and are reduced here to small records;
//! nothing else keeps them. One cache is shared by every pipeline and by the `zones`
//! processor (see [`super::K8sMetadata`]).

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock, RwLockReadGuard};

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use tapline_core::data::Str;

use crate::net::{parse_ip, FastMap};

/// The zone label on nodes.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// What a flow's end is, ready to be written as attributes.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    /// `pod`, `service`, `node`.
    pub kind: &'static str,
    pub namespace: Option<Str>,
    pub name: Str,
    pub owner_name: Str,
    pub owner_type: Str,
    pub node_name: Option<Str>,
    pub node_ip: Option<Str>,
    /// The uid of the object, to tell two objects that had the same IP apart.
    uid: Str,
}

/// A pod, reduced to what decoration needs.
#[derive(Debug, Clone)]
pub struct PodRecord {
    pub uid: Str,
    pub namespace: Str,
    pub name: Str,
    pub node_name: Option<Str>,
    pub host_ip: Option<IpAddr>,
    pub ips: Vec<IpAddr>,
    pub host_network: bool,
    /// Succeeded or Failed: its IP may already belong to another pod.
    pub finished: bool,
    /// The controller owner as written on the pod (kind, name).
    pub controller: Option<(Str, Str)>,
    /// `app.kubernetes.io/name`, then `app`, for `service.name`.
    pub app_name: Option<Str>,
    /// (container id without the runtime prefix, container name).
    pub containers: Vec<(Box<str>, Str)>,
    /// The resolved owner and endpoint, recomputed when an owner changes.
    pub endpoint: Arc<Endpoint>,
}

#[derive(Debug, Default)]
struct IpSlot {
    node: Option<Arc<Endpoint>>,
    service: Option<Arc<Endpoint>>,
    pod: Option<Arc<Endpoint>>,
}

impl IpSlot {
    /// hostNetwork pods share the node's IP and are not indexed, so a node IP names the node;
    /// service and pod IP ranges do not overlap in a working cluster.
    fn best(&self) -> Option<&Arc<Endpoint>> {
        self.node
            .as_ref()
            .or(self.service.as_ref())
            .or(self.pod.as_ref())
    }
    fn is_empty(&self) -> bool {
        self.node.is_none() && self.service.is_none() && self.pod.is_none()
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum SlotKind {
    Node,
    Service,
    Pod,
}

#[derive(Debug)]
struct NodeRecord {
    ips: Vec<IpAddr>,
    zone: Option<Str>,
}

#[derive(Debug)]
struct ServiceRecord {
    ips: Vec<IpAddr>,
    uid: Str,
}

/// The cache's content; read through [`K8sCache::read`].
#[derive(Default, Debug)]
pub struct State {
    pods: FastMap<Str, PodRecord>,
    by_ip: FastMap<IpAddr, IpSlot>,
    by_container: FastMap<Box<str>, (Str, Str)>,
    /// (namespace, owner kind, owner name) → uids of the pods it controls.
    pods_by_owner: FastMap<(Str, Str, Str), HashSet<Str>>,
    /// (namespace, name) of ReplicaSets and Jobs → their controller (kind, name).
    replicasets: FastMap<(Str, Str), Option<(Str, Str)>>,
    jobs: FastMap<(Str, Str), Option<(Str, Str)>>,
    services: FastMap<(Str, Str), ServiceRecord>,
    nodes: FastMap<Str, NodeRecord>,
    /// One copy of each namespace, owner, node name and node IP the endpoints carry.
    /// Thousands of pods share a few of each: decoration then clones (touches the reference
    /// count of) a few hot strings instead of a cold copy per pod, and the cache is smaller.
    interned: Interner,
    /// Names this content; changed by every change, so what was derived from it (the
    /// per-thread memo of [`crate::k8s::resolve::Resolver`]) can tell it is stale.
    generation: Generation,
}

/// A number that names one content of one cache: made from one counter for the whole
/// process, so two caches, or two contents of one cache, never share one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Generation(u64);

static NEXT_GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl Generation {
    fn next() -> Self {
        Generation(NEXT_GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
    }
}

impl Default for Generation {
    fn default() -> Self {
        Generation::next()
    }
}

/// Shared copies of repeated strings. A string no endpoint uses any more is dropped when the
/// set has doubled since the last sweep, so churn does not grow it without bound.
#[derive(Default, Debug)]
struct Interner {
    set: std::collections::HashSet<Str, foldhash::fast::RandomState>,
    after_sweep: usize,
}

impl Interner {
    fn get(&mut self, s: Str) -> Str {
        if let Some(shared) = self.set.get(s.as_str()) {
            return shared.clone();
        }
        if self.set.len() >= 2 * self.after_sweep.max(512) {
            // Held by the set alone: no endpoint uses it.
            self.set.retain(|s| match s {
                Str::Shared(a) => Arc::strong_count(a) > 1,
                Str::Static(_) => true,
            });
            self.after_sweep = self.set.len();
        }
        self.set.insert(s.clone());
        s
    }
}

/// One Kubernetes cache, shared by every pipeline and processor that needs it.
#[derive(Default, Debug)]
pub struct K8sCache {
    state: RwLock<State>,
    /// Set by the first watcher task that runs, so a cache listed in several pipelines is
    /// watched once.
    pub(crate) watching: AtomicBool,
}

fn str_of(s: &Option<String>) -> Str {
    Str::from(s.clone().unwrap_or_default())
}

fn controller_of(meta: &ObjectMeta) -> Option<(Str, Str)> {
    let refs: &[OwnerReference] = meta.owner_references.as_deref().unwrap_or(&[]);
    refs.iter()
        .find(|r| r.controller == Some(true))
        .or(refs.first())
        .map(|r| (Str::from(r.kind.clone()), Str::from(r.name.clone())))
}

impl State {
    pub fn lookup_ip(&self, ip: &IpAddr) -> Option<&Arc<Endpoint>> {
        self.by_ip.get(ip).and_then(IpSlot::best)
    }

    /// The pod and container name that run container `id` (without runtime prefix).
    pub fn lookup_container(&self, id: &str) -> Option<(&PodRecord, &Str)> {
        let (uid, container) = self.by_container.get(id)?;
        Some((self.pods.get(uid)?, container))
    }

    pub fn pod(&self, uid: &str) -> Option<&PodRecord> {
        self.pods.get(uid)
    }

    /// The zone of the node named `node`.
    pub fn node_zone(&self, node: &str) -> Option<&Str> {
        self.nodes.get(node).and_then(|n| n.zone.as_ref())
    }

    /// The zone an address lives in: a node's own zone, or a pod's node's zone. Services
    /// have no zone (their endpoints may be anywhere).
    pub fn zone_of_ip(&self, ip: &IpAddr) -> Option<&Str> {
        let ep = self.lookup_ip(ip)?;
        match ep.kind {
            "node" => self.node_zone(&ep.name),
            "pod" => self.node_zone(ep.node_name.as_deref()?),
            _ => None,
        }
    }

    /// Names the current content: changes whenever anything in the cache changes.
    pub fn generation(&self) -> Generation {
        self.generation
    }

    pub fn pod_count(&self) -> usize {
        self.pods.len()
    }
    pub fn service_count(&self) -> usize {
        self.services.len()
    }
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    fn resolve_owner(
        &self,
        namespace: &Str,
        controller: &Option<(Str, Str)>,
        name: &Str,
    ) -> (Str, Str) {
        let Some((kind, owner)) = controller else {
            return (Str::from_static("Pod"), name.clone());
        };
        let parent = match kind.as_str() {
            "ReplicaSet" => self.replicasets.get(&(namespace.clone(), owner.clone())),
            "Job" => self.jobs.get(&(namespace.clone(), owner.clone())),
            _ => None,
        };
        match parent {
            Some(Some((pk, pn))) => (pk.clone(), pn.clone()),
            _ => (kind.clone(), owner.clone()),
        }
    }

    fn pod_endpoint(&mut self, p: &PodRecord) -> Arc<Endpoint> {
        let (owner_type, owner_name) = self.resolve_owner(&p.namespace, &p.controller, &p.name);
        let i = &mut self.interned;
        Arc::new(Endpoint {
            kind: "pod",
            namespace: Some(i.get(p.namespace.clone())),
            name: p.name.clone(),
            owner_name: i.get(owner_name),
            owner_type: i.get(owner_type),
            node_name: p.node_name.clone().map(|n| i.get(n)),
            node_ip: p.host_ip.map(|ip| i.get(Str::from(ip.to_string()))),
            uid: p.uid.clone(),
        })
    }

    fn index_ip(&mut self, ip: IpAddr, kind: SlotKind, ep: &Arc<Endpoint>) {
        let slot = self.by_ip.entry(ip).or_default();
        let field = match kind {
            SlotKind::Node => &mut slot.node,
            SlotKind::Service => &mut slot.service,
            SlotKind::Pod => &mut slot.pod,
        };
        *field = Some(ep.clone());
    }

    /// Removes `ip` → object `uid`, unless another object took the IP over since.
    fn unindex_ip(&mut self, ip: IpAddr, kind: SlotKind, uid: &Str) {
        let Some(slot) = self.by_ip.get_mut(&ip) else {
            return;
        };
        let field = match kind {
            SlotKind::Node => &mut slot.node,
            SlotKind::Service => &mut slot.service,
            SlotKind::Pod => &mut slot.pod,
        };
        if field.as_ref().is_some_and(|e| e.uid == *uid) {
            *field = None;
        }
        if slot.is_empty() {
            self.by_ip.remove(&ip);
        }
    }

    fn owner_key(p: &PodRecord) -> Option<(Str, Str, Str)> {
        p.controller
            .as_ref()
            .map(|(k, n)| (p.namespace.clone(), k.clone(), n.clone()))
    }

    fn remove_pod_record(&mut self, uid: &Str) -> Option<PodRecord> {
        let old = self.pods.remove(uid)?;
        for ip in &old.ips {
            self.unindex_ip(*ip, SlotKind::Pod, uid);
        }
        for (cid, _) in &old.containers {
            if self.by_container.get(cid).is_some_and(|(u, _)| u == uid) {
                self.by_container.remove(cid);
            }
        }
        if let Some(k) = Self::owner_key(&old) {
            if let Some(set) = self.pods_by_owner.get_mut(&k) {
                set.remove(uid);
                if set.is_empty() {
                    self.pods_by_owner.remove(&k);
                }
            }
        }
        Some(old)
    }

    fn insert_pod_record(&mut self, mut rec: PodRecord) {
        rec.endpoint = self.pod_endpoint(&rec);
        if !rec.host_network && !rec.finished {
            for ip in rec.ips.clone() {
                self.index_ip(ip, SlotKind::Pod, &rec.endpoint.clone());
            }
        }
        for (cid, name) in &rec.containers {
            self.by_container
                .insert(cid.clone(), (rec.uid.clone(), name.clone()));
        }
        if let Some(k) = Self::owner_key(&rec) {
            self.pods_by_owner
                .entry(k)
                .or_default()
                .insert(rec.uid.clone());
        }
        self.pods.insert(rec.uid.clone(), rec);
    }

    /// Recomputes the endpoints of the pods that `kind/name` controls (its own owner changed).
    fn refresh_owned(&mut self, namespace: &Str, kind: &'static str, name: &Str) {
        let key = (namespace.clone(), Str::from_static(kind), name.clone());
        let Some(uids) = self.pods_by_owner.get(&key) else {
            return;
        };
        let uids: Vec<Str> = uids.iter().cloned().collect();
        for uid in uids {
            if let Some(rec) = self.remove_pod_record(&uid) {
                self.insert_pod_record(rec);
            }
        }
    }

    pub fn apply_pod(&mut self, pod: &Pod) {
        self.generation = Generation::next();
        let meta = &pod.metadata;
        let uid = str_of(&meta.uid);
        let spec = pod.spec.as_ref();
        let status = pod.status.as_ref();
        let mut ips: Vec<IpAddr> = status
            .and_then(|s| s.pod_ips.as_ref())
            .map(|v| v.iter().filter_map(|p| parse_ip(&p.ip)).collect())
            .unwrap_or_default();
        if let Some(ip) = status.and_then(|s| s.pod_ip.as_deref()).and_then(parse_ip) {
            if !ips.contains(&ip) {
                ips.push(ip);
            }
        }
        let labels = meta.labels.as_ref();
        let app_name = labels
            .and_then(|l| l.get("app.kubernetes.io/name").or_else(|| l.get("app")))
            .map(|s| Str::from(s.clone()));
        let containers = status
            .into_iter()
            .flat_map(|s| {
                s.container_statuses
                    .iter()
                    .flatten()
                    .chain(s.init_container_statuses.iter().flatten())
            })
            .filter_map(|c| {
                let id = c.container_id.as_deref()?;
                let bare = id.split_once("://").map_or(id, |(_, b)| b);
                (!bare.is_empty()).then(|| (Box::from(bare), Str::from(c.name.clone())))
            })
            .collect();
        let rec = PodRecord {
            uid: uid.clone(),
            namespace: str_of(&meta.namespace),
            name: str_of(&meta.name),
            node_name: spec.and_then(|s| s.node_name.clone()).map(Str::from),
            host_ip: status.and_then(|s| s.host_ip.as_deref()).and_then(parse_ip),
            ips,
            host_network: spec.and_then(|s| s.host_network).unwrap_or(false),
            finished: matches!(
                status.and_then(|s| s.phase.as_deref()),
                Some("Succeeded" | "Failed")
            ),
            controller: controller_of(meta),
            app_name,
            containers,
            endpoint: Arc::new(Endpoint {
                kind: "pod",
                namespace: None,
                name: Str::default(),
                owner_name: Str::default(),
                owner_type: Str::default(),
                node_name: None,
                node_ip: None,
                uid: uid.clone(),
            }),
        };
        self.remove_pod_record(&uid);
        self.insert_pod_record(rec);
    }

    pub fn delete_pod(&mut self, pod: &Pod) {
        self.generation = Generation::next();
        self.remove_pod_record(&str_of(&pod.metadata.uid));
    }

    pub fn apply_replicaset(&mut self, rs: &ReplicaSet) {
        self.generation = Generation::next();
        let key = (str_of(&rs.metadata.namespace), str_of(&rs.metadata.name));
        let owner = controller_of(&rs.metadata);
        if self.replicasets.get(&key) != Some(&owner) {
            self.replicasets.insert(key.clone(), owner);
            self.refresh_owned(&key.0, "ReplicaSet", &key.1);
        }
    }

    pub fn delete_replicaset(&mut self, rs: &ReplicaSet) {
        self.generation = Generation::next();
        let key = (str_of(&rs.metadata.namespace), str_of(&rs.metadata.name));
        if self.replicasets.remove(&key).is_some() {
            self.refresh_owned(&key.0, "ReplicaSet", &key.1);
        }
    }

    pub fn apply_job(&mut self, job: &Job) {
        self.generation = Generation::next();
        let key = (str_of(&job.metadata.namespace), str_of(&job.metadata.name));
        let owner = controller_of(&job.metadata);
        if self.jobs.get(&key) != Some(&owner) {
            self.jobs.insert(key.clone(), owner);
            self.refresh_owned(&key.0, "Job", &key.1);
        }
    }

    pub fn delete_job(&mut self, job: &Job) {
        self.generation = Generation::next();
        let key = (str_of(&job.metadata.namespace), str_of(&job.metadata.name));
        if self.jobs.remove(&key).is_some() {
            self.refresh_owned(&key.0, "Job", &key.1);
        }
    }

    pub fn apply_service(&mut self, svc: &Service) {
        self.generation = Generation::next();
        let ns = str_of(&svc.metadata.namespace);
        let name = str_of(&svc.metadata.name);
        let uid = str_of(&svc.metadata.uid);
        self.delete_service_key(&ns, &name);
        let spec = svc.spec.as_ref();
        let mut ips: Vec<IpAddr> = spec
            .and_then(|s| s.cluster_ips.as_ref())
            .map(|v| v.iter().filter_map(|s| parse_ip(s)).collect())
            .unwrap_or_default();
        // Headless services ("None") have no address of their own.
        if let Some(ip) = spec
            .and_then(|s| s.cluster_ip.as_deref())
            .and_then(parse_ip)
        {
            if !ips.contains(&ip) {
                ips.push(ip);
            }
        }
        let ep = Arc::new(Endpoint {
            kind: "service",
            namespace: Some(self.interned.get(ns.clone())),
            name: name.clone(),
            owner_name: name.clone(),
            owner_type: Str::from_static("Service"),
            node_name: None,
            node_ip: None,
            uid: uid.clone(),
        });
        for ip in &ips {
            self.index_ip(*ip, SlotKind::Service, &ep);
        }
        self.services.insert((ns, name), ServiceRecord { ips, uid });
    }

    fn delete_service_key(&mut self, ns: &Str, name: &Str) {
        if let Some(old) = self.services.remove(&(ns.clone(), name.clone())) {
            for ip in old.ips {
                self.unindex_ip(ip, SlotKind::Service, &old.uid);
            }
        }
    }

    pub fn delete_service(&mut self, svc: &Service) {
        self.generation = Generation::next();
        self.delete_service_key(
            &str_of(&svc.metadata.namespace),
            &str_of(&svc.metadata.name),
        );
    }

    pub fn apply_node(&mut self, node: &Node) {
        self.generation = Generation::next();
        let name = str_of(&node.metadata.name);
        // A node's identity for IP ownership is its name: nodes are cluster-scoped and
        // unique by name.
        self.delete_node_name(&name);
        let ips: Vec<IpAddr> = node
            .status
            .as_ref()
            .and_then(|s| s.addresses.as_ref())
            .map(|a| {
                a.iter()
                    .filter(|a| a.type_ == "InternalIP" || a.type_ == "ExternalIP")
                    .filter_map(|a| parse_ip(&a.address))
                    .collect()
            })
            .unwrap_or_default();
        let zone = node
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(ZONE_LABEL))
            .map(|z| Str::from(z.clone()));
        let ep = Arc::new(Endpoint {
            kind: "node",
            namespace: None,
            name: name.clone(),
            owner_name: name.clone(),
            owner_type: Str::from_static("Node"),
            node_name: Some(name.clone()),
            node_ip: ips.first().map(|ip| Str::from(ip.to_string())),
            uid: name.clone(),
        });
        for ip in &ips {
            self.index_ip(*ip, SlotKind::Node, &ep);
        }
        self.nodes.insert(name, NodeRecord { ips, zone });
    }

    fn delete_node_name(&mut self, name: &Str) {
        if let Some(old) = self.nodes.remove(name) {
            for ip in old.ips {
                self.unindex_ip(ip, SlotKind::Node, name);
            }
        }
    }

    pub fn delete_node(&mut self, node: &Node) {
        self.generation = Generation::next();
        self.delete_node_name(&str_of(&node.metadata.name));
    }

    /// After a relist: drops every object of `kind` that the new listing did not contain.
    pub(crate) fn retain_listed(&mut self, kind: ObjectKind, listed: &HashSet<String>) {
        self.generation = Generation::next();
        match kind {
            ObjectKind::Pod => {
                let gone: Vec<Str> = self
                    .pods
                    .keys()
                    .filter(|u| !listed.contains(u.as_str()))
                    .cloned()
                    .collect();
                for uid in gone {
                    self.remove_pod_record(&uid);
                }
            }
            ObjectKind::ReplicaSet | ObjectKind::Job => {
                let map = if kind == ObjectKind::ReplicaSet {
                    &self.replicasets
                } else {
                    &self.jobs
                };
                let gone: Vec<(Str, Str)> = map
                    .keys()
                    .filter(|(ns, n)| !listed.contains(&format!("{ns}/{n}")))
                    .cloned()
                    .collect();
                for key in gone {
                    let kind_name = if kind == ObjectKind::ReplicaSet {
                        self.replicasets.remove(&key);
                        "ReplicaSet"
                    } else {
                        self.jobs.remove(&key);
                        "Job"
                    };
                    self.refresh_owned(&key.0, kind_name, &key.1);
                }
            }
            ObjectKind::Service => {
                let gone: Vec<(Str, Str)> = self
                    .services
                    .keys()
                    .filter(|(ns, n)| !listed.contains(&format!("{ns}/{n}")))
                    .cloned()
                    .collect();
                for (ns, n) in gone {
                    self.delete_service_key(&ns, &n);
                }
            }
            ObjectKind::Node => {
                let gone: Vec<Str> = self
                    .nodes
                    .keys()
                    .filter(|n| !listed.contains(n.as_str()))
                    .cloned()
                    .collect();
                for n in gone {
                    self.delete_node_name(&n);
                }
            }
        }
    }
}

/// The kinds the cache watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectKind {
    Pod,
    ReplicaSet,
    Job,
    Service,
    Node,
}

impl K8sCache {
    pub fn new() -> Self {
        Self::default()
    }
    /// A consistent view for one batch.
    pub fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }
    /// Changes the cache (the watchers, and tests that fill it directly).
    pub fn update<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        state.generation = Generation::next();
        f(&mut state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn pod(ns: &str, name: &str, ip: &str, owner: Option<(&str, &str)>) -> Pod {
        let mut v = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "uid": format!("uid-{ns}-{name}"), "resourceVersion": "1"},
            "spec": {"nodeName": "node-1", "containers": [{"name": "main", "image": "x"}]},
            "status": {"phase": "Running", "hostIP": "192.168.0.1", "podIP": ip, "podIPs": [{"ip": ip}],
                "containerStatuses": [{"name": "main", "containerID": format!("containerd://{:0>64}", name.len()), "image": "x", "imageID": "", "ready": true, "restartCount": 0}]}
        });
        if let Some((k, n)) = owner {
            v["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": k, "name": n, "uid": "o", "controller": true}]);
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn owner_resolves_through_replicaset_in_any_order() {
        let mut s = State::default();
        s.apply_pod(&pod(
            "shop",
            "web-7d9-abc",
            "10.0.0.5",
            Some(("ReplicaSet", "web-7d9")),
        ));
        let ip: IpAddr = "10.0.0.5".parse().unwrap();
        assert_eq!(s.lookup_ip(&ip).unwrap().owner_type, "ReplicaSet");
        let rs: ReplicaSet = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web-7d9", "namespace": "shop", "uid": "rs1",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "d1", "controller": true}]}
        }))
        .unwrap();
        s.apply_replicaset(&rs);
        let ep = s.lookup_ip(&ip).unwrap();
        assert_eq!(
            (ep.owner_type.as_str(), ep.owner_name.as_str()),
            ("Deployment", "web")
        );
        s.delete_replicaset(&rs);
        assert_eq!(s.lookup_ip(&ip).unwrap().owner_type, "ReplicaSet");
    }

    #[test]
    fn endpoints_share_repeated_strings_and_forget_unused_ones() {
        let mut s = State::default();
        let ip = |i: usize| format!("10.1.{}.{}", i / 250, i % 250 + 1);
        for i in 0..100 {
            let ns = format!("ns-{}", i % 2);
            s.apply_pod(&pod(
                &ns,
                &format!("p{i}"),
                &ip(i),
                Some(("StatefulSet", "db")),
            ));
        }
        let a = s.lookup_ip(&ip(0).parse().unwrap()).unwrap().clone();
        let b = s.lookup_ip(&ip(2).parse().unwrap()).unwrap().clone();
        let same = |x: &Str, y: &Str| x == y && x.as_ptr() == y.as_ptr();
        assert!(same(
            a.namespace.as_ref().unwrap(),
            b.namespace.as_ref().unwrap()
        ));
        assert!(same(&a.owner_name, &b.owner_name) && same(&a.owner_type, &b.owner_type));
        assert!(same(
            a.node_ip.as_ref().unwrap(),
            b.node_ip.as_ref().unwrap()
        ));
        assert!(same(
            a.node_name.as_ref().unwrap(),
            b.node_name.as_ref().unwrap()
        ));
        assert_eq!(a.namespace.as_deref(), Some("ns-0"));
        assert_eq!(a.name, "p0");
        assert_ne!(a.name.as_ptr(), b.name.as_ptr());
        // Churn: pods come and go in ever new namespaces; the strings of the gone ones do not
        // pile up.
        for round in 0..100 {
            for i in 0..20 {
                let p = pod(&format!("churn-{round}-{i}"), "x", "10.2.0.1", None);
                s.apply_pod(&p);
                s.delete_pod(&p);
            }
        }
        assert!(s.interned.set.len() < 1100, "{}", s.interned.set.len());
        assert!(s.interned.set.contains("ns-1"), "strings still in use stay");
    }

    #[test]
    fn reused_ip_survives_the_old_pods_deletion() {
        let mut s = State::default();
        let old = pod("a", "old", "10.0.0.9", None);
        s.apply_pod(&old);
        s.apply_pod(&pod("a", "new", "10.0.0.9", None));
        s.delete_pod(&old);
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        assert_eq!(s.lookup_ip(&ip).unwrap().name, "new");
        assert_eq!(s.lookup_ip(&ip).unwrap().owner_type, "Pod");
    }
}
