//! From a process to its container: the container id in `/proc/<pid>/cgroup`.
//!
//! Runtimes name the container's cgroup after its id, in a few layouts:
//! - cgroupfs driver, v1 or v2: `.../kubepods/burstable/pod<uid>/<id>`, `/docker/<id>`
//! - systemd driver: `.../kubepods-burstable-pod<uid>.slice/cri-containerd-<id>.scope`,
//!   `crio-<id>.scope`, `docker-<id>.scope`, `libpod-<id>.scope`
//!
//! The id is the last path segment that, without those prefixes and `.scope`, is 64 hex
//! digits. CRI-O's `crio-conmon-<id>.scope` is its monitor process, not the container.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::net::{fast_map, FastMap};

const PREFIXES: &[&str] = &[
    "cri-containerd-",
    "crio-",
    "docker-",
    "libpod-",
    "containerd-",
];

fn container_id_of_segment(seg: &str) -> Option<&str> {
    if seg.starts_with("crio-conmon-") {
        return None;
    }
    let s = seg.strip_suffix(".scope").unwrap_or(seg);
    let s = PREFIXES.iter().find_map(|p| s.strip_prefix(p)).unwrap_or(s);
    (s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())).then_some(s)
}

/// The container id in the text of a `/proc/<pid>/cgroup` file, if the process runs in one.
pub fn container_id(cgroup_file: &str) -> Option<&str> {
    // Prefer the v2 line (`0::`), where there is one; v1 hierarchies all agree anyway.
    let mut lines: Vec<&str> = cgroup_file.lines().collect();
    lines.sort_by_key(|l| !l.starts_with("0::"));
    lines.into_iter().find_map(|line| {
        let path = line.splitn(3, ':').nth(2)?;
        path.rsplit('/').find_map(container_id_of_segment)
    })
}

/// A pid's container id (or none), and when it was read.
type Remembered = (Option<Box<str>>, Instant);

/// pid → container id, read from `<proc_root>/<pid>/cgroup` and remembered for a while (a
/// pid's container never changes while the pid lives; the ttl bounds the cost of pid reuse).
pub struct PidContainers {
    proc_root: PathBuf,
    ttl: Duration,
    capacity: usize,
    entries: Mutex<FastMap<i64, Remembered>>,
}

impl PidContainers {
    pub fn new(proc_root: impl Into<PathBuf>, ttl: Duration, capacity: usize) -> Self {
        PidContainers {
            proc_root: proc_root.into(),
            ttl,
            capacity,
            entries: Mutex::new(fast_map()),
        }
    }

    pub fn proc_root(&self) -> &Path {
        &self.proc_root
    }

    /// The container id of `pid`, or `None` when it runs outside a container or is gone.
    pub fn container_of(&self, pid: i64) -> Option<Box<str>> {
        let now = Instant::now();
        {
            let map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((id, at)) = map.get(&pid) {
                if now.duration_since(*at) < self.ttl {
                    return id.clone();
                }
            }
        }
        let path = self.proc_root.join(pid.to_string()).join("cgroup");
        let id = match std::fs::read_to_string(&path) {
            Ok(text) => container_id(&text).map(Box::from),
            // The process is gone, or this is not Linux: there is nothing to match.
            Err(_) => None,
        };
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= self.capacity {
            let ttl = self.ttl;
            map.retain(|_, (_, at)| now.duration_since(*at) < ttl);
            if map.len() >= self.capacity {
                map.clear();
            }
        }
        map.insert(pid, (id.clone(), now));
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f0c8b2f6a6e4b1d9c7a0e5f2d1b8a6c4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b";

    #[test]
    fn recorded_runtime_layouts() {
        let cases = [
            // containerd, systemd driver, cgroup v2 (most current clusters)
            format!("0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod5a1e8c2b_6f3d_4e7a_9b1c_2d4f6a8b0c1e.slice/cri-containerd-{ID}.scope\n"),
            // containerd, cgroupfs driver, cgroup v1
            format!("12:memory:/kubepods/burstable/pod5a1e8c2b-6f3d-4e7a-9b1c-2d4f6a8b0c1e/{ID}\n11:cpu,cpuacct:/kubepods/burstable/pod5a1e8c2b-6f3d-4e7a-9b1c-2d4f6a8b0c1e/{ID}\n1:name=systemd:/kubepods/burstable/pod5a1e8c2b-6f3d-4e7a-9b1c-2d4f6a8b0c1e/{ID}\n0::/\n"),
            // CRI-O, systemd driver, v2
            format!("0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0b7e.slice/crio-{ID}.scope\n"),
            // CRI-O, v1 systemd
            format!("10:pids:/kubepods.slice/kubepods-pod1.slice/crio-{ID}.scope\n9:name=systemd:/kubepods.slice/kubepods-pod1.slice/crio-{ID}.scope\n"),
            // Docker, systemd driver, v2
            format!("0::/system.slice/docker-{ID}.scope\n"),
            // Docker, cgroupfs driver, v1
            format!("13:pids:/docker/{ID}\n12:memory:/docker/{ID}\n"),
            // Docker-in-kind node: the kubelet's pods inside a docker container
            format!("0::/docker/1111111111111111111111111111111111111111111111111111111111111111/kubepods/besteffort/podabc/{ID}\n"),
            // podman
            format!("0::/machine.slice/libpod-{ID}.scope/container\n"),
        ];
        for c in &cases {
            assert_eq!(container_id(c), Some(ID), "{c}");
        }
    }

    #[test]
    fn non_container_processes_have_none() {
        for c in [
            "0::/user.slice/user-1000.slice/session-2.scope\n",
            "0::/\n",
            "12:memory:/user.slice\n0::/init.scope\n",
            &format!("0::/kubepods.slice/kubepods-pod1.slice/crio-conmon-{ID}.scope\n"),
            "0::/kubepods/besteffort/podabc/notanid\n",
            "",
            "garbage without colons",
        ] {
            assert_eq!(container_id(c), None, "{c}");
        }
    }
}
