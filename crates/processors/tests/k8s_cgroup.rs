//! Process → container on a real kernel: the test puts a process into a cgroup it creates under
//! the cgroup v2 hierarchy, named the way containerd's systemd driver names a container's
//! scope, and the `k8s` processor finds the pod from that process's `/proc/<pid>/cgroup`.
//! Needs root and a cgroup v2 mount (`/sys/fs/cgroup` or `/sys/fs/cgroup/unified`).

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use tapline_core::data::{
    Resource, ResourceSpans, Signal, Span, SpanKind, StatusCode, Traces, Value,
};
use tapline_core::pipeline::BatchFn;
use tapline_processors::k8s::{K8sCache, K8sProcessor, PidContainers};
use tapline_test_support::fixtures::k8s as fx;
use tapline_test_support::ChildGuard;

/// Where cgroup2 is mounted, from this process's mount table.
fn cgroup2_mount() -> PathBuf {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    mounts
        .lines()
        .find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let mount_point = left.split_whitespace().nth(4)?;
            (right.split_whitespace().next() == Some("cgroup2")).then(|| PathBuf::from(mount_point))
        })
        .expect("no cgroup2 mount on this machine (looked for /sys/fs/cgroup or /sys/fs/cgroup/unified in /proc/self/mountinfo)")
}

/// A process in a container-like cgroup; the cgroups are removed once it is gone.
struct InCgroup {
    child: ChildGuard,
    dirs: Vec<PathBuf>,
}

impl Drop for InCgroup {
    fn drop(&mut self) {
        self.child.kill();
        for d in self.dirs.iter().rev() {
            // The kernel needs a moment to notice the group is empty.
            for _ in 0..50 {
                if std::fs::remove_dir(d).is_ok() || !d.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

fn process_in_container_cgroup(id: &str) -> InCgroup {
    let root = cgroup2_mount();
    let parent = root.join(format!("tapline-test-{}", std::process::id()));
    let scope = parent.join(format!("cri-containerd-{id}.scope"));
    std::fs::create_dir_all(&scope)
        .unwrap_or_else(|e| panic!("cannot create cgroup {} (needs root): {e}", scope.display()));
    let child = ChildGuard::spawn("sleep", Command::new("sleep").arg("30"));
    let guard = InCgroup {
        child,
        dirs: vec![parent, scope.clone()],
    };
    std::fs::write(scope.join("cgroup.procs"), guard.child.id().to_string())
        .unwrap_or_else(|e| panic!("cannot move pid into {}: {e}", scope.display()));
    guard
}

#[test]
fn pod_found_from_a_real_process_cgroup() {
    let id = fx::container_id(77);
    let proc_ = process_in_container_cgroup(&id);
    let pid = proc_.child.id() as i64;
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(
        text.contains(&format!("cri-containerd-{id}.scope")),
        "{text}"
    );

    let pids = PidContainers::new("/proc", Duration::from_secs(30), 100);
    assert_eq!(pids.container_of(pid).as_deref(), Some(id.as_str()));
    // This test process itself is in no container.
    assert_eq!(pids.container_of(std::process::id() as i64), None);

    let cache = Arc::new(K8sCache::new());
    cache.update(|s| {
        s.apply_pod(
            &serde_json::from_value(fx::pod(
                "shop",
                "cart-6b7-xyz",
                "10.244.3.3",
                "node-1",
                "192.168.0.1",
                Some(("apps/v1", "StatefulSet", "cart")),
                &id,
            ))
            .unwrap(),
        )
    });
    let p = K8sProcessor::new(cache, "/proc".into());
    let mut batch = Signal::Traces(Traces {
        resource_spans: vec![ResourceSpans {
            resource: Resource::new(
                [
                    ("process.pid", Value::Int(pid)),
                    ("process.executable.name", "sleep".into()),
                ]
                .into_iter()
                .collect(),
            ),
            scope: "tapline.app".into(),
            spans: vec![Span {
                trace_id: [1; 16],
                span_id: [1; 8],
                parent_span_id: [0; 8],
                name: "GET".into(),
                kind: SpanKind::Server,
                start_time_ns: 1,
                end_time_ns: 2,
                attributes: Default::default(),
                status: StatusCode::Unset,
                status_message: "".into(),
            }],
        }],
    });
    p.apply(&mut batch);
    let Signal::Traces(t) = &batch else {
        unreachable!()
    };
    let r = &t.resource_spans[0].resource.attributes;
    assert_eq!(r.get_str("k8s.pod.name"), Some("cart-6b7-xyz"));
    assert_eq!(r.get_str("k8s.statefulset.name"), Some("cart"));
    assert_eq!(r.get_str("k8s.container.name"), Some("main"));
    assert_eq!(r.get_str("service.name"), Some("cart"));
}
