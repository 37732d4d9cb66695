//! The watchers that keep the [`K8sCache`] current: one kube-rs watcher per kind, each
//! relisting by itself after `410 Gone` or a dropped connection (with kube-rs' backoff).

use std::collections::HashSet;
use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use kube::api::Api;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Client, Config, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use super::store::{K8sCache, ObjectKind, State};

/// Where the API server is.
#[derive(Clone, Debug)]
pub enum ApiSource {
    /// The pod's service account (`KUBERNETES_SERVICE_HOST`, the mounted token and CA).
    InCluster,
    /// A kubeconfig file, already read and checked while the config was validated.
    Kubeconfig {
        path: PathBuf,
        config: Box<Kubeconfig>,
    },
}

#[derive(Clone, Debug)]
pub struct WatchSettings {
    pub source: ApiSource,
    /// Watch only the pods of this node (`spec.nodeName=<node>`).
    pub local_node: Option<String>,
}

async fn client(source: &ApiSource) -> Result<Client, String> {
    let config = match source {
        ApiSource::InCluster => Config::incluster().map_err(|e| {
            format!("k8s: cannot use the in-cluster configuration: {e} (is the service account token mounted?)")
        })?,
        ApiSource::Kubeconfig { path, config } => {
            Config::from_custom_kubeconfig((**config).clone(), &KubeConfigOptions::default())
                .await
                .map_err(|e| format!("k8s: kubeconfig {}: {e}", path.display()))?
        }
    };
    let url = config.cluster_url.clone();
    Client::try_from(config).map_err(|e| format!("k8s: cannot create a client for {url}: {e}"))
}

/// Runs every watcher until `cancel` fires. Only the first call per cache does anything: the
/// cache is shared by every pipeline that lists a `k8s` processor.
pub async fn run(cache: Arc<K8sCache>, settings: WatchSettings, cancel: CancellationToken) {
    if cache.watching.swap(true, Ordering::SeqCst) {
        return;
    }
    let client = match client(&settings.source).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{e}; Kubernetes decoration stays off");
            return;
        }
    };
    let pods_cfg = match &settings.local_node {
        Some(node) => watcher::Config::default().fields(&format!("spec.nodeName={node}")),
        None => watcher::Config::default(),
    };
    let all = watcher::Config::default;
    tokio::join!(
        watch_kind(
            Api::<Pod>::all(client.clone()),
            pods_cfg,
            &cache,
            ObjectKind::Pod,
            State::apply_pod,
            State::delete_pod,
            |p: &Pod| p.uid().unwrap_or_default(),
            &cancel,
        ),
        watch_kind(
            Api::<ReplicaSet>::all(client.clone()),
            all(),
            &cache,
            ObjectKind::ReplicaSet,
            State::apply_replicaset,
            State::delete_replicaset,
            ns_name,
            &cancel,
        ),
        watch_kind(
            Api::<Job>::all(client.clone()),
            all(),
            &cache,
            ObjectKind::Job,
            State::apply_job,
            State::delete_job,
            ns_name,
            &cancel,
        ),
        watch_kind(
            Api::<Service>::all(client.clone()),
            all(),
            &cache,
            ObjectKind::Service,
            State::apply_service,
            State::delete_service,
            ns_name,
            &cancel,
        ),
        watch_kind(
            Api::<Node>::all(client),
            all(),
            &cache,
            ObjectKind::Node,
            State::apply_node,
            State::delete_node,
            |n: &Node| n.name_any(),
            &cancel,
        ),
    );
}

fn ns_name<K: ResourceExt>(o: &K) -> String {
    format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any())
}

#[allow(clippy::too_many_arguments)]
async fn watch_kind<K>(
    api: Api<K>,
    config: watcher::Config,
    cache: &K8sCache,
    kind: ObjectKind,
    apply: fn(&mut State, &K),
    delete: fn(&mut State, &K),
    key: fn(&K) -> String,
    cancel: &CancellationToken,
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let stream = watcher::watcher(api, config).default_backoff();
    futures::pin_mut!(stream);
    // Keys seen since the last `Init`: objects missing from a relist were deleted while the
    // watch was down.
    let mut listed: Option<HashSet<String>> = None;
    let mut failures_logged = 0u32;
    loop {
        let event = tokio::select! {
            _ = cancel.cancelled() => return,
            e = stream.next() => e,
        };
        match event {
            None => return,
            Some(Ok(Event::Init)) => listed = Some(HashSet::new()),
            Some(Ok(Event::InitApply(o))) => {
                if let Some(l) = &mut listed {
                    l.insert(key(&o));
                }
                cache.update(|s| apply(s, &o));
            }
            Some(Ok(Event::InitDone)) => {
                if let Some(l) = listed.take() {
                    cache.update(|s| s.retain_listed(kind, &l));
                }
                failures_logged = 0;
                tracing::debug!(?kind, "k8s: listed");
            }
            Some(Ok(Event::Apply(o))) => cache.update(|s| apply(s, &o)),
            Some(Ok(Event::Delete(o))) => cache.update(|s| delete(s, &o)),
            Some(Err(e)) => {
                // 410 Gone and dropped connections are routine: kube-rs relists or rewatches.
                // Say so once per outage, not once per retry.
                if failures_logged == 0 {
                    tracing::warn!(?kind, "k8s: watch interrupted, resuming: {e}");
                }
                failures_logged += 1;
            }
        }
    }
}
