//! What the Kubernetes cache costs: 10,000 pods (with 3,000 ReplicaSets, 1,000 services and
//! 100 nodes) must stay under 50 MiB. Measured with a counting allocator, after the API objects
//! the cache was fed from are dropped. `cargo test -p tapline-processors --test k8s_memory --
//! --nocapture` prints the figure recorded in docs/performance.md.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use tapline_processors::k8s::K8sCache;
use tapline_test_support::fixtures::k8s as fx;

struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::SeqCst);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::SeqCst);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::SeqCst);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static A: Counting = Counting;

#[test]
fn ten_thousand_pods_fit_in_fifty_mib() {
    let before = LIVE.load(Ordering::SeqCst);
    let cache = K8sCache::new();
    for n in 0..100 {
        let node = serde_json::from_value(fx::node(
            &format!("node-{n}"),
            &format!("192.168.{}.{}", n / 250, n % 250 + 1),
            Some(&format!("zone-{}", n % 3)),
        ))
        .unwrap();
        cache.update(|s| s.apply_node(&node));
    }
    for r in 0..3000 {
        let rs = serde_json::from_value(fx::replicaset(
            &format!("ns-{}", r % 50),
            &format!("app-{r}-5c6d7f8b9"),
            &format!("app-{r}"),
        ))
        .unwrap();
        cache.update(|s| s.apply_replicaset(&rs));
    }
    for s in 0..1000 {
        let svc = serde_json::from_value(fx::service(
            &format!("ns-{}", s % 50),
            &format!("svc-{s}"),
            &format!("10.96.{}.{}", s / 250, s % 250 + 1),
        ))
        .unwrap();
        cache.update(|st| st.apply_service(&svc));
    }
    for p in 0..10_000usize {
        let r = p % 3000;
        let pod = serde_json::from_value(fx::pod(
            &format!("ns-{}", r % 50),
            &format!("app-{r}-5c6d7f8b9-{p:05x}"),
            &format!("10.244.{}.{}", p / 250, p % 250 + 1),
            &format!("node-{}", p % 100),
            &format!("192.168.0.{}", p % 100 + 1),
            Some(("apps/v1", "ReplicaSet", &format!("app-{r}-5c6d7f8b9"))),
            &fx::container_id(p),
        ))
        .unwrap();
        cache.update(|s| s.apply_pod(&pod));
    }
    let used = LIVE.load(Ordering::SeqCst) - before;
    let st = cache.read();
    assert_eq!(
        (st.pod_count(), st.service_count(), st.node_count()),
        (10_000, 1000, 100)
    );
    let mib = used as f64 / (1024.0 * 1024.0);
    println!("k8s cache: 10000 pods, 3000 replicasets, 1000 services, 100 nodes: {used} bytes = {mib:.2} MiB ({:.0} bytes/pod all included)", used as f64 / 10_000.0);
    assert!(mib < 50.0, "{mib:.2} MiB");
    drop(st);
}
