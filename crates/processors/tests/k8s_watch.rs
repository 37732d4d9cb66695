//! The `k8s` processor's watchers against an in-test server that speaks the Kubernetes API's
//! list/watch protocol: paginated JSON lists carrying `metadata.resourceVersion`, chunked watch
//! streams of `{"type":..., "object":...}` resuming from a resourceVersion, BOOKMARK events,
//! `410 Gone` (an ERROR event with a `Status`) once history is compacted, and connections that
//! drop mid-stream. No real cluster is available to the test suite; this fake is what the
//! watchers are tested against.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::response::Response;
use futures::StreamExt;
use serde_json::{json, Value};
use tapline_core::data::Signal;
use tapline_core::pipeline::BatchFn;
use tapline_processors::k8s::watch::{self, ApiSource, WatchSettings};
use tapline_processors::k8s::{K8sCache, K8sProcessor};
use tapline_test_support::eventually_async;
use tapline_test_support::fixtures::k8s as fx;
use tapline_test_support::fixtures::{first_point_attrs, flow_batch};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

const PODS: &str = "/api/v1/pods";
const NODES: &str = "/api/v1/nodes";
const SERVICES: &str = "/api/v1/services";
const REPLICASETS: &str = "/apis/apps/v1/replicasets";
const JOBS: &str = "/apis/batch/v1/jobs";

fn list_kind(path: &str) -> (&'static str, &'static str) {
    match path {
        PODS => ("v1", "Pod"),
        NODES => ("v1", "Node"),
        SERVICES => ("v1", "Service"),
        REPLICASETS => ("apps/v1", "ReplicaSet"),
        JOBS => ("batch/v1", "Job"),
        _ => unreachable!(),
    }
}

#[derive(Clone, Debug)]
struct WatchEvent {
    path: &'static str,
    rv: u64,
    kind: &'static str,
    object: Value,
}

#[derive(Default)]
struct ApiState {
    rv: u64,
    objects: HashMap<&'static str, BTreeMap<String, Value>>,
    history: Vec<WatchEvent>,
    /// Watches from a resourceVersion below this get 410 Gone.
    compacted_below: u64,
    /// During an outage changes go to history but reach no open watch.
    quiet: bool,
    requests: Vec<String>,
}

#[derive(Clone)]
struct FakeApi {
    state: Arc<Mutex<ApiState>>,
    events: broadcast::Sender<WatchEvent>,
    drops: broadcast::Sender<()>,
}

fn key_of(o: &Value) -> String {
    format!(
        "{}/{}",
        o["metadata"]["namespace"].as_str().unwrap_or(""),
        o["metadata"]["name"].as_str().unwrap()
    )
}

fn matches_selector(o: &Value, selector: Option<&str>) -> bool {
    match selector.and_then(|s| s.strip_prefix("spec.nodeName=")) {
        Some(node) => o["spec"]["nodeName"].as_str() == Some(node),
        None => true,
    }
}

impl FakeApi {
    fn new() -> Self {
        FakeApi {
            state: Default::default(),
            events: broadcast::channel(1024).0,
            drops: broadcast::channel(16).0,
        }
    }

    fn record(&self, st: &mut ApiState, path: &'static str, kind: &'static str, mut obj: Value) {
        st.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(st.rv.to_string());
        let ev = WatchEvent {
            path,
            rv: st.rv,
            kind,
            object: obj,
        };
        st.history.push(ev.clone());
        if !st.quiet {
            let _ = self.events.send(ev);
        }
    }

    fn apply(&self, path: &'static str, obj: Value) {
        let mut st = self.state.lock().unwrap();
        let key = key_of(&obj);
        let existed = st.objects.get(path).is_some_and(|m| m.contains_key(&key));
        let mut stored = obj;
        stored["metadata"]["resourceVersion"] = json!((st.rv + 1).to_string());
        st.objects
            .entry(path)
            .or_default()
            .insert(key, stored.clone());
        let kind = if existed { "MODIFIED" } else { "ADDED" };
        self.record(&mut st, path, kind, stored);
    }

    fn delete(&self, path: &'static str, key: &str) {
        let mut st = self.state.lock().unwrap();
        let obj = st.objects.get_mut(path).unwrap().remove(key).unwrap();
        self.record(&mut st, path, "DELETED", obj);
    }

    /// A watch outage that outlives history: every open watch is cut, `change` happens
    /// unseen by any watch, and history is compacted, so a watcher can only catch up by
    /// relisting after its resume gets 410 Gone. Until the end every resume gets 410 (a
    /// watcher reconnecting early must not see the changes as watch events either).
    fn outage(&self, change: impl FnOnce(&FakeApi)) {
        {
            let mut st = self.state.lock().unwrap();
            st.quiet = true;
            st.compacted_below = u64::MAX;
        }
        self.drop_watches();
        change(self);
        let mut st = self.state.lock().unwrap();
        // Watching from the current version is still possible (it asks for what comes after).
        st.compacted_below = st.rv;
        st.history.clear();
        st.quiet = false;
    }

    /// Cuts every open watch connection mid-stream.
    fn drop_watches(&self) {
        let _ = self.drops.send(());
    }

    fn requests(&self, prefix: &str) -> Vec<String> {
        let st = self.state.lock().unwrap();
        st.requests
            .iter()
            .filter(|r| r.starts_with(prefix))
            .cloned()
            .collect()
    }

    fn handle(&self, req: Request<Body>) -> Response {
        let path = req.uri().path().to_string();
        let query: HashMap<String, String> = req
            .uri()
            .query()
            .map(|q| {
                url_decode_pairs(q)
                    .into_iter()
                    .collect::<HashMap<String, String>>()
            })
            .unwrap_or_default();
        let path: &'static str = match path.as_str() {
            PODS => PODS,
            NODES => NODES,
            SERVICES => SERVICES,
            REPLICASETS => REPLICASETS,
            JOBS => JOBS,
            other => {
                return Response::builder()
                    .status(StatusCode::NOT_FOUND)
                    .body(Body::from(format!("{{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{{}},\"status\":\"Failure\",\"message\":\"the server could not find the requested resource ({other})\",\"reason\":\"NotFound\",\"code\":404}}")))
                    .unwrap()
            }
        };
        let selector = query.get("fieldSelector").cloned();
        let watch = query.get("watch").is_some_and(|w| w == "true" || w == "1");
        self.state
            .lock()
            .unwrap()
            .requests
            .push(format!("{path}?{}", req.uri().query().unwrap_or("")));
        let (api_version, kind) = list_kind(path);
        if !watch {
            let st = self.state.lock().unwrap();
            let items: Vec<Value> = st
                .objects
                .get(path)
                .into_iter()
                .flat_map(|m| m.values())
                .filter(|o| matches_selector(o, selector.as_deref()))
                .map(|o| {
                    // Items of a list carry no apiVersion/kind of their own.
                    let mut o = o.clone();
                    let m = o.as_object_mut().unwrap();
                    m.remove("apiVersion");
                    m.remove("kind");
                    o
                })
                .collect();
            let offset: usize = query
                .get("continue")
                .map(|c| c.parse().unwrap())
                .unwrap_or(0);
            let limit: usize = query
                .get("limit")
                .map(|l| l.parse().unwrap())
                .unwrap_or(usize::MAX);
            let page: Vec<Value> = items.iter().skip(offset).take(limit).cloned().collect();
            let mut metadata = json!({"resourceVersion": st.rv.to_string()});
            if offset + page.len() < items.len() {
                metadata["continue"] = json!((offset + page.len()).to_string());
                metadata["remainingItemCount"] = json!(items.len() - offset - page.len());
            }
            let body = json!({"apiVersion": api_version, "kind": format!("{kind}List"), "metadata": metadata, "items": page});
            return Response::builder()
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
                .unwrap();
        }
        let from: u64 = query
            .get("resourceVersion")
            .and_then(|r| r.parse().ok())
            .unwrap_or(0);
        let bookmarks = query
            .get("allowWatchBookmarks")
            .is_some_and(|b| b == "true");
        let st = self.state.lock().unwrap();
        let mut first: Vec<Value> = Vec::new();
        if from < st.compacted_below {
            first.push(json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "metadata": {},
                "status": "Failure", "message": format!("too old resource version: {from} ({})", st.rv),
                "reason": "Expired", "code": 410}}));
            let body = first
                .into_iter()
                .map(|v| Ok::<_, std::io::Error>(format!("{v}\n")))
                .collect::<Vec<_>>();
            return Response::builder()
                .header("content-type", "application/json")
                .body(Body::from_stream(futures::stream::iter(body)))
                .unwrap();
        }
        let live = self.events.subscribe();
        let mut drops = self.drops.subscribe();
        let mut last = from;
        for ev in st.history.iter().filter(|e| e.path == path && e.rv > from) {
            if matches_selector(&ev.object, selector.as_deref()) {
                first.push(json!({"type": ev.kind, "object": ev.object}));
            }
            last = ev.rv;
        }
        if bookmarks {
            first.push(
                json!({"type": "BOOKMARK", "object": {"apiVersion": api_version, "kind": kind,
                "metadata": {"resourceVersion": st.rv.to_string()}}}),
            );
        }
        drop(st);
        let backlog = futures::stream::iter(first.into_iter().map(|v| Ok(format!("{v}\n"))));
        let live = futures::stream::unfold(
            (live, last, selector),
            move |(mut live, mut last, selector)| async move {
                loop {
                    match live.recv().await {
                        Ok(ev) if ev.path == path && ev.rv > last => {
                            last = ev.rv;
                            if matches_selector(&ev.object, selector.as_deref()) {
                                let line =
                                    format!("{}\n", json!({"type": ev.kind, "object": ev.object}));
                                return Some((Ok(line), (live, last, selector)));
                            }
                        }
                        Ok(_) => {}
                        Err(_) => return None,
                    }
                }
            },
        );
        let dropped = async move {
            let _ = drops.recv().await;
            Err::<String, _>(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "test dropped the watch",
            ))
        };
        // Events until the test cuts the connection; the error aborts the chunked body.
        let stream = futures::stream::select(backlog.chain(live), futures::stream::once(dropped))
            .take_while_inclusive_error();
        Response::builder()
            .header("content-type", "application/json")
            .body(Body::from_stream(stream))
            .unwrap()
    }
}

/// Ends a stream after its first error (which hyper turns into an aborted connection).
trait TakeWhileInclusiveError:
    futures::Stream<Item = Result<String, std::io::Error>> + Sized + Send + 'static
{
    fn take_while_inclusive_error(
        self,
    ) -> futures::stream::BoxStream<'static, Result<String, std::io::Error>> {
        futures::stream::unfold((Box::pin(self), false), |(mut s, done)| async move {
            if done {
                return None;
            }
            let item = s.next().await?;
            let is_err = item.is_err();
            Some((item, (s, is_err)))
        })
        .boxed()
    }
}
impl<S: futures::Stream<Item = Result<String, std::io::Error>> + Send + 'static>
    TakeWhileInclusiveError for S
{
}

fn url_decode_pairs(q: &str) -> Vec<(String, String)> {
    fn dec(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'%' if i + 2 < b.len() => {
                    let h = std::str::from_utf8(&b[i + 1..i + 3]).unwrap();
                    out.push(u8::from_str_radix(h, 16).unwrap());
                    i += 3;
                }
                b'+' => {
                    out.push(b' ');
                    i += 1;
                }
                c => {
                    out.push(c);
                    i += 1;
                }
            }
        }
        String::from_utf8(out).unwrap()
    }
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (dec(k), dec(v))
        })
        .collect()
}

struct Harness {
    api: FakeApi,
    cache: Arc<K8sCache>,
    processor: K8sProcessor,
    cancel: CancellationToken,
    _kubeconfig: tempfile::NamedTempFile,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn start_server(api: FakeApi) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(move |req: Request<Body>| {
        let api = api.clone();
        async move { api.handle(req) }
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn kubeconfig(addr: SocketAddr) -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        f.path(),
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://{addr}\nusers:\n- name: u\n  user: {{}}\ncontexts:\n- name: c\n  context:\n    cluster: fake\n    user: u\ncurrent-context: c\n"
        ),
    )
    .unwrap();
    f
}

async fn harness(api: FakeApi, local_node: Option<&str>) -> Harness {
    let addr = start_server(api.clone()).await;
    let kc = kubeconfig(addr);
    let cache = Arc::new(K8sCache::new());
    let cancel = CancellationToken::new();
    let settings = WatchSettings {
        source: ApiSource::Kubeconfig {
            path: kc.path().into(),
            config: Box::new(kube::config::Kubeconfig::read_from(kc.path()).unwrap()),
        },
        local_node: local_node.map(str::to_string),
    };
    tokio::spawn(watch::run(cache.clone(), settings, cancel.clone()));
    Harness {
        api,
        processor: K8sProcessor::new(cache.clone(), "/proc".into()),
        cache,
        cancel,
        _kubeconfig: kc,
    }
}

impl Harness {
    /// What the processor writes for a flow from `src` to an unknown address.
    fn decorate(&self, src: &str) -> Option<(String, String, String)> {
        let mut batch: Signal = flow_batch(&[(src, "203.0.113.1", 1)]);
        self.processor.apply(&mut batch);
        let a = first_point_attrs(&batch);
        Some((
            a.get_str("k8s.src.name")?.to_string(),
            a.get_str("k8s.src.owner.type")?.to_string(),
            a.get_str("k8s.src.owner.name")?.to_string(),
        ))
    }

    /// Polls `ok` until it holds; a timeout shows the requests the fake API server got.
    async fn eventually(&self, what: &str, mut ok: impl FnMut(&Self) -> bool) {
        eventually_async(what, Duration::from_secs(20), || {
            if ok(self) {
                Ok(())
            } else {
                Err(format!(
                    "requests: {:#?}",
                    self.api.state.lock().unwrap().requests
                ))
            }
        })
        .await
    }
}

fn owned(n: &str, t: &str, o: &str) -> Option<(String, String, String)> {
    Some((n.into(), t.into(), o.into()))
}

fn seed(api: &FakeApi) {
    api.apply(NODES, fx::node("node-1", "192.168.0.1", Some("zone-a")));
    api.apply(NODES, fx::node("node-2", "192.168.0.2", Some("zone-b")));
    api.apply(REPLICASETS, fx::replicaset("shop", "web-5c6d", "web"));
    api.apply(JOBS, fx::job("ops", "backup-2859", Some("backup")));
    api.apply(SERVICES, fx::service("shop", "web", "10.96.0.20"));
    api.apply(
        PODS,
        fx::pod(
            "shop",
            "web-5c6d-aaaaa",
            "10.244.1.5",
            "node-1",
            "192.168.0.1",
            Some(("apps/v1", "ReplicaSet", "web-5c6d")),
            &fx::container_id(1),
        ),
    );
    api.apply(
        PODS,
        fx::pod(
            "ops",
            "backup-2859-bbbbb",
            "10.244.2.6",
            "node-2",
            "192.168.0.2",
            Some(("batch/v1", "Job", "backup-2859")),
            &fx::container_id(2),
        ),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_added_changed_deleted_and_owner_chains() {
    let api = FakeApi::new();
    seed(&api);
    let h = harness(api.clone(), None).await;
    h.eventually("initial list", |h| {
        h.decorate("10.244.1.5") == owned("web-5c6d-aaaaa", "Deployment", "web")
            && h.decorate("10.244.2.6") == owned("backup-2859-bbbbb", "CronJob", "backup")
            && h.cache.read().service_count() == 1
            && h.cache.read().node_count() == 2
    })
    .await;

    // Added through the watch, with an owner the cache has not seen yet...
    api.apply(
        PODS,
        fx::pod(
            "shop",
            "api-77f-ccccc",
            "10.244.1.7",
            "node-1",
            "192.168.0.1",
            Some(("apps/v1", "ReplicaSet", "api-77f")),
            &fx::container_id(3),
        ),
    );
    h.eventually("watched pod", |h| {
        h.decorate("10.244.1.7") == owned("api-77f-ccccc", "ReplicaSet", "api-77f")
    })
    .await;
    // ...which arrives later and re-points the pod at the Deployment.
    api.apply(REPLICASETS, fx::replicaset("shop", "api-77f", "api"));
    h.eventually("owner chain after late ReplicaSet", |h| {
        h.decorate("10.244.1.7") == owned("api-77f-ccccc", "Deployment", "api")
    })
    .await;

    // Changed: the pod is recreated with the same name on a new IP.
    api.apply(
        PODS,
        fx::pod(
            "shop",
            "api-77f-ccccc",
            "10.244.1.8",
            "node-1",
            "192.168.0.1",
            Some(("apps/v1", "ReplicaSet", "api-77f")),
            &fx::container_id(3),
        ),
    );
    h.eventually("new IP", |h| {
        h.decorate("10.244.1.8") == owned("api-77f-ccccc", "Deployment", "api")
            && h.decorate("10.244.1.7").is_none()
    })
    .await;

    // Deleted.
    api.delete(PODS, "shop/api-77f-ccccc");
    h.eventually("deleted pod", |h| h.decorate("10.244.1.8").is_none())
        .await;
    // Service and node ends.
    let mut batch = flow_batch(&[("192.168.0.2", "10.96.0.20", 1)]);
    h.processor.apply(&mut batch);
    let a = first_point_attrs(&batch);
    assert_eq!(a.get_str("k8s.src.type"), Some("node"));
    assert_eq!(a.get_str("k8s.src.name"), Some("node-2"));
    assert_eq!(a.get_str("k8s.dst.type"), Some("service"));
    assert_eq!(a.get_str("k8s.dst.namespace"), Some("shop"));
    // Everything came through one list per kind and then watches.
    assert_eq!(
        h.api
            .requests(&format!("{PODS}?"))
            .iter()
            .filter(|r| !r.contains("watch="))
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_forces_a_relist_that_catches_up() {
    let api = FakeApi::new();
    seed(&api);
    let h = harness(api.clone(), None).await;
    h.eventually("initial list", |h| {
        h.decorate("10.244.1.5").is_some() && h.decorate("10.244.2.6").is_some()
    })
    .await;
    let lists_before = api
        .requests(PODS)
        .iter()
        .filter(|r| !r.contains("watch="))
        .count();
    // While the watch is down, a pod goes and another comes, and history is compacted: the
    // watcher's resourceVersion is too old, so only a relist can find out.
    api.outage(|api| {
        api.delete(PODS, "ops/backup-2859-bbbbb");
        api.apply(
            PODS,
            fx::pod(
                "shop",
                "web-5c6d-ddddd",
                "10.244.1.9",
                "node-1",
                "192.168.0.1",
                Some(("apps/v1", "ReplicaSet", "web-5c6d")),
                &fx::container_id(4),
            ),
        );
    });
    h.eventually("relist after 410", |h| {
        h.decorate("10.244.2.6").is_none()
            && h.decorate("10.244.1.9") == owned("web-5c6d-ddddd", "Deployment", "web")
            && h.decorate("10.244.1.5") == owned("web-5c6d-aaaaa", "Deployment", "web")
    })
    .await;
    let lists_after = api
        .requests(PODS)
        .iter()
        .filter(|r| !r.contains("watch="))
        .count();
    assert!(
        lists_after > lists_before,
        "no relist: {:#?}",
        api.requests(PODS)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_watch_resumes_from_its_resource_version() {
    let api = FakeApi::new();
    seed(&api);
    let h = harness(api.clone(), None).await;
    h.eventually("initial list", |h| h.decorate("10.244.1.5").is_some())
        .await;
    api.drop_watches();
    api.apply(
        PODS,
        fx::pod(
            "shop",
            "web-5c6d-eeeee",
            "10.244.1.10",
            "node-1",
            "192.168.0.1",
            Some(("apps/v1", "ReplicaSet", "web-5c6d")),
            &fx::container_id(5),
        ),
    );
    api.delete(PODS, "shop/web-5c6d-aaaaa");
    h.eventually("changes made while the connection was down", |h| {
        h.decorate("10.244.1.10") == owned("web-5c6d-eeeee", "Deployment", "web")
            && h.decorate("10.244.1.5").is_none()
    })
    .await;
    let pods = api.requests(PODS);
    assert_eq!(
        pods.iter().filter(|r| !r.contains("watch=")).count(),
        1,
        "{pods:#?}"
    );
    let watches: Vec<_> = pods.iter().filter(|r| r.contains("watch=")).collect();
    assert!(watches.len() >= 2, "{watches:#?}");
    assert!(watches
        .iter()
        .all(|w| w.contains("allowWatchBookmarks=true") && w.contains("resourceVersion=")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restrict_local_node_watches_only_this_nodes_pods() {
    let api = FakeApi::new();
    seed(&api);
    let h = harness(api.clone(), Some("node-1")).await;
    h.eventually("local pod", |h| h.decorate("10.244.1.5").is_some())
        .await;
    h.eventually("nodes", |h| h.cache.read().node_count() == 2)
        .await;
    assert_eq!(h.decorate("10.244.2.6"), None);
    assert_eq!(h.cache.read().pod_count(), 1);
    let pods = api.requests(PODS);
    assert!(
        pods.iter()
            .all(|r| r.contains("fieldSelector=spec.nodeName%3Dnode-1")),
        "{pods:#?}"
    );
}

#[test]
fn validate_builds_without_contacting_the_api() {
    use tapline_core::config::ComponentConfig;
    use tapline_core::{ProcessorFactory, SharedState};
    use tapline_processors::k8s::K8sMetadata;
    use tapline_test_support::harness::build_context_with;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let api = FakeApi::new();
    let addr = rt.block_on(start_server(api.clone()));
    let kc = kubeconfig(addr);
    let shared = SharedState::default();
    for _id in ["k8s", "k8s/second"] {
        let ctx = build_context_with("k8s", &tapline_core::telemetry::Telemetry::new(), &shared);
        let cfg = ComponentConfig::new(
            "processors.k8s",
            json!({"kubeconfig": kc.path().to_str().unwrap()}),
        );
        tapline_processors::k8s::K8sFactory
            .build(&cfg, &ctx)
            .unwrap();
    }
    // A watcher wrongly started at build time would call the API within this window; absence
    // cannot be polled for, so the window is the check.
    std::thread::sleep(Duration::from_millis(300));
    assert!(api.state.lock().unwrap().requests.is_empty());
    // One default cache for every k8s processor that names no extension (and for zones).
    let ctx = build_context_with("zones", &tapline_core::telemetry::Telemetry::new(), &shared);
    let a = K8sMetadata::default_for(&ctx).unwrap();
    let b = K8sMetadata::default_for(&ctx).unwrap();
    assert!(Arc::ptr_eq(&a.cache, &b.cache));
    let bad = ComponentConfig::new(
        "processors.k8s",
        json!({"kubeconfig": "/nonexistent/kubeconfig"}),
    );
    let ctx = build_context_with("k8s", &tapline_core::telemetry::Telemetry::new(), &shared);
    let err = tapline_processors::k8s::K8sFactory
        .build(&bad, &ctx)
        .err()
        .unwrap();
    let text = format!("{err:?}");
    assert!(
        text.contains("processors.k8s.kubeconfig") && text.contains("/nonexistent/kubeconfig"),
        "{text}"
    );
}
