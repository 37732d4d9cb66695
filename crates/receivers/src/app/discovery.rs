//! Which processes to instrument, and who they are: `/proc` scanning for the `discovery`
//! selectors and for the resource attributes (`service.name`, `process.pid`, `container.id`).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer};
use tapline_core::config::types::Glob;
use tapline_core::data::{Attributes, Resource, Str, Value};

use crate::lru::{fast_map, FastMap};
use tapline_semconv::attr;

/// `80,8000-8999`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortRanges(pub Vec<(u16, u16)>);

impl PortRanges {
    pub fn contains(&self, port: u16) -> bool {
        self.0.iter().any(|&(a, b)| (a..=b).contains(&port))
    }
}

impl FromStr for PortRanges {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let bad =
                || format!("invalid port range {part:?} in {s:?}: write ports like `80,8000-8999`");
            let (a, b) = match part.split_once('-') {
                Some((a, b)) => (a.trim(), b.trim()),
                None => (part, part),
            };
            let a: u16 = a.parse().map_err(|_| bad())?;
            let b: u16 = b.parse().map_err(|_| bad())?;
            if a == 0 || a > b {
                return Err(bad());
            }
            out.push((a, b));
        }
        if out.is_empty() {
            return Err(format!(
                "empty port list {s:?}: write ports like `80,8000-8999`"
            ));
        }
        Ok(PortRanges(out))
    }
}

impl<'de> Deserialize<'de> for PortRanges {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u16),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => n.to_string().parse().map_err(serde::de::Error::custom),
            Raw::S(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// One `discovery.instrument` / `discovery.exclude` entry; every field given must match.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selector {
    /// The process listens on one of these TCP ports.
    #[serde(default)]
    pub open_ports: Option<PortRanges>,
    /// Glob on the executable's full path (`/usr/sbin/nginx*`).
    #[serde(default)]
    pub exe_path: Option<Glob>,
}

impl Selector {
    fn is_empty(&self) -> bool {
        self.open_ports.is_none() && self.exe_path.is_none()
    }
}

/// Who a process is.
#[derive(Debug)]
pub struct ProcessInfo {
    pub pid: u32,
    pub exe_path: String,
    pub service_name: Str,
    pub resource: Arc<Resource>,
    pub instrumented: bool,
}

/// The container id in a `/proc/<pid>/cgroup` text (docker, containerd, cri-o layouts).
pub fn container_id(cgroup: &str) -> Option<String> {
    for line in cgroup.lines() {
        let path = line.splitn(3, ':').nth(2).unwrap_or("");
        for seg in path.rsplit('/') {
            let mut s = seg.strip_suffix(".scope").unwrap_or(seg);
            for prefix in [
                "docker-",
                "cri-containerd-",
                "crio-",
                "containerd-",
                "libpod-",
            ] {
                if let Some(rest) = s.strip_prefix(prefix) {
                    s = rest;
                }
            }
            if s.len() == 64 && s.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Some(s.to_ascii_lowercase());
            }
        }
    }
    None
}

/// `KEY=value` from a NUL-separated environ block.
pub fn environ_var<'a>(environ: &'a [u8], key: &str) -> Option<&'a str> {
    environ.split(|&c| c == 0).find_map(|kv| {
        let v = kv.strip_prefix(key.as_bytes())?.strip_prefix(b"=")?;
        std::str::from_utf8(v).ok().filter(|v| !v.is_empty())
    })
}

/// Inodes of the listening TCP sockets in a `/proc/net/tcp{,6}` table, with their ports.
pub fn listening_inodes(table: &str, out: &mut HashMap<u64, u16>) {
    for line in table.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 10 || f[3] != "0A" {
            continue;
        }
        let Some(port) = f[1]
            .rsplit_once(':')
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
        else {
            continue;
        };
        if let Ok(inode) = f[9].parse::<u64>() {
            out.insert(inode, port);
        }
    }
}

/// Finds processes and tells which to instrument.
pub struct Discovery {
    proc_root: PathBuf,
    instrument: Vec<Selector>,
    exclude: Vec<Selector>,
    host_name: Str,
    self_pid: u32,
    /// Looked up for every event: a fast hasher.
    known: FastMap<u32, Arc<ProcessInfo>>,
    /// The processes the last rescan found gone: their last observations (e.g. a connection
    /// ended by the exit) are reported after that rescan, under the identity they had.
    recently_gone: HashMap<u32, Arc<ProcessInfo>>,
    /// Listening socket inode → port, per network namespace, for the current scan.
    listen_cache: HashMap<String, Arc<HashMap<u64, u16>>>,
}

impl Discovery {
    pub fn new(
        proc_root: impl Into<PathBuf>,
        instrument: Vec<Selector>,
        exclude: Vec<Selector>,
    ) -> Self {
        let proc_root = proc_root.into();
        let host_name = std::fs::read_to_string(proc_root.join("sys/kernel/hostname"))
            .map(|h| h.trim().to_string())
            .unwrap_or_default();
        Discovery {
            proc_root,
            instrument,
            exclude,
            host_name: host_name.into(),
            self_pid: std::process::id(),
            known: fast_map(0),
            recently_gone: HashMap::new(),
            listen_cache: HashMap::new(),
        }
    }

    /// Whether only selected processes are traced (else every process but excluded ones).
    pub fn selective(&self) -> bool {
        !self.instrument.is_empty()
    }

    /// The processes known to be instrumented (as of the last scan or event).
    pub fn instrumented_pids(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self
            .known
            .values()
            .filter(|p| p.instrumented)
            .map(|p| p.pid)
            .collect();
        v.sort_unstable();
        v
    }

    fn listening_ports(&mut self, pid: u32) -> Vec<u16> {
        let pdir = self.proc_root.join(pid.to_string());
        let ns = std::fs::read_link(pdir.join("ns/net"))
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let table = match self.listen_cache.get(&ns) {
            Some(t) => t.clone(),
            None => {
                let mut m = HashMap::new();
                for f in ["net/tcp", "net/tcp6"] {
                    if let Ok(t) = std::fs::read_to_string(pdir.join(f)) {
                        listening_inodes(&t, &mut m);
                    }
                }
                let m = Arc::new(m);
                self.listen_cache.insert(ns, m.clone());
                m
            }
        };
        let mut ports = Vec::new();
        if let Ok(fds) = std::fs::read_dir(pdir.join("fd")) {
            for fd in fds.flatten() {
                let Ok(link) = std::fs::read_link(fd.path()) else {
                    continue;
                };
                let l = link.to_string_lossy();
                if let Some(inode) = l
                    .strip_prefix("socket:[")
                    .and_then(|s| s.strip_suffix(']'))
                    .and_then(|s| s.parse::<u64>().ok())
                {
                    if let Some(&p) = table.get(&inode) {
                        ports.push(p);
                    }
                }
            }
        }
        ports
    }

    fn matches(
        &mut self,
        sel_exclude: bool,
        pid: u32,
        exe: &str,
        ports: &mut Option<Vec<u16>>,
    ) -> bool {
        let n = if sel_exclude {
            self.exclude.len()
        } else {
            self.instrument.len()
        };
        for i in 0..n {
            let sel = if sel_exclude {
                &self.exclude[i]
            } else {
                &self.instrument[i]
            };
            if sel.is_empty() {
                continue;
            }
            if sel.exe_path.as_ref().is_some_and(|g| !g.is_match(exe)) {
                continue;
            }
            if let Some(ranges) = sel.open_ports.clone() {
                if ports.is_none() {
                    *ports = Some(self.listening_ports(pid));
                }
                if !ports
                    .as_ref()
                    .is_some_and(|ps| ps.iter().any(|&p| ranges.contains(p)))
                {
                    continue;
                }
            }
            return true;
        }
        false
    }

    /// Reads a process from `/proc`; `None` when it is gone.
    fn read(&mut self, pid: u32) -> Option<ProcessInfo> {
        let pdir = self.proc_root.join(pid.to_string());
        let exe_path = std::fs::read_link(pdir.join("exe"))
            .map(|p| {
                p.to_string_lossy()
                    .trim_end_matches(" (deleted)")
                    .to_string()
            })
            .ok();
        let comm = std::fs::read_to_string(pdir.join("comm")).ok()?;
        let exe_path = exe_path.unwrap_or_default();
        let exe_name = Path::new(&exe_path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| comm.trim().to_string());
        let mut ports = None;
        let instrumented = pid != self.self_pid
            && (self.instrument.is_empty() || self.matches(false, pid, &exe_path, &mut ports))
            && !self.matches(true, pid, &exe_path, &mut ports);
        let environ = std::fs::read(pdir.join("environ")).unwrap_or_default();
        let service_name: Str = environ_var(&environ, "OTEL_SERVICE_NAME")
            .map(str::to_string)
            .unwrap_or_else(|| exe_name.clone())
            .into();
        let mut attrs = Attributes::with_capacity(6);
        attrs.push(attr::SERVICE_NAME, service_name.clone());
        if let Some(ns) = environ_var(&environ, "OTEL_SERVICE_NAMESPACE") {
            attrs.push(attr::SERVICE_NAMESPACE, Value::from(ns.to_string()));
        }
        attrs.push(attr::PROCESS_PID, pid as i64);
        attrs.push(attr::PROCESS_EXECUTABLE_NAME, Value::from(exe_name));
        if !exe_path.is_empty() {
            attrs.push(attr::PROCESS_EXECUTABLE_PATH, Value::from(exe_path.clone()));
        }
        attrs.push(attr::HOST_NAME, self.host_name.clone());
        if let Some(id) = std::fs::read_to_string(pdir.join("cgroup"))
            .ok()
            .and_then(|c| container_id(&c))
        {
            attrs.push(attr::CONTAINER_ID, Value::from(id));
        }
        attrs.push(attr::TELEMETRY_SDK_NAME, "tapline");
        Some(ProcessInfo {
            pid,
            exe_path,
            service_name,
            resource: Resource::new(attrs),
            instrumented,
        })
    }

    /// A process that exited before `/proc/<pid>` could be read: named by the `comm` its
    /// events carried (`unknown_service` only if that is empty too).
    fn vanished(&self, pid: u32, comm: &[u8; 16]) -> ProcessInfo {
        let end = comm.iter().position(|&c| c == 0).unwrap_or(comm.len());
        let comm = String::from_utf8_lossy(&comm[..end]);
        let comm = comm.trim();
        let mut attrs = Attributes::with_capacity(5);
        let service_name = if comm.is_empty() {
            Str::from_static("unknown_service")
        } else {
            Str::from(comm.to_string())
        };
        attrs.push(attr::SERVICE_NAME, service_name.clone());
        attrs.push(attr::PROCESS_PID, pid as i64);
        if !comm.is_empty() {
            attrs.push(attr::PROCESS_EXECUTABLE_NAME, Value::from(comm.to_string()));
        }
        attrs.push(attr::HOST_NAME, self.host_name.clone());
        attrs.push(attr::TELEMETRY_SDK_NAME, "tapline");
        ProcessInfo {
            pid,
            exe_path: String::new(),
            service_name,
            resource: Resource::new(attrs),
            instrumented: true,
        }
    }

    /// The process behind `pid`, read on first use and cached until it exits.
    pub fn process(&mut self, pid: u32) -> Option<Arc<ProcessInfo>> {
        self.process_with_comm(pid, &[0; 16])
    }

    /// Whether the process of an event is instrumented (`None`: not reported at all), as
    /// [`Discovery::process_with_comm`] decides; known processes cost one lookup and no
    /// reference count change (this runs for every event).
    pub fn instrumented_with_comm(&mut self, pid: u32, comm: &[u8; 16]) -> Option<bool> {
        if let Some(p) = self.known.get(&pid) {
            return Some(p.instrumented);
        }
        self.process_with_comm(pid, comm).map(|p| p.instrumented)
    }

    /// [`Discovery::process`], with the process name (`comm`, NUL-padded) the kernel put in
    /// the event: it names the process when `/proc/<pid>` is already gone.
    pub fn process_with_comm(&mut self, pid: u32, comm: &[u8; 16]) -> Option<Arc<ProcessInfo>> {
        if let Some(p) = self.known.get(&pid) {
            return Some(p.clone());
        }
        self.listen_cache.clear();
        let info = match self.read(pid) {
            Some(i) => i,
            None => {
                if let Some(p) = self.recently_gone.get(&pid) {
                    return Some(p.clone());
                }
                if self.selective() || pid == self.self_pid {
                    return None;
                }
                // Gone before its first events were read (a short-lived client such as
                // curl): in "every process" mode it is still reported, under its comm.
                self.vanished(pid, comm)
            }
        };
        let info = Arc::new(info);
        self.known.insert(pid, info.clone());
        Some(info)
    }

    /// Rescans `/proc`: returns the processes seen for the first time and the pids that
    /// exited since the last scan. Processes that did not match before are checked again (a
    /// server may open its port after it started).
    pub fn rescan(&mut self) -> (Vec<Arc<ProcessInfo>>, Vec<u32>) {
        self.listen_cache.clear();
        let mut alive = HashSet::new();
        let mut new = Vec::new();
        if let Ok(dir) = std::fs::read_dir(&self.proc_root) {
            for e in dir.flatten() {
                let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                    continue;
                };
                alive.insert(pid);
                let recheck = self
                    .known
                    .get(&pid)
                    .is_some_and(|p| !p.instrumented && self.selective() && pid != self.self_pid);
                if self.known.contains_key(&pid) && !recheck {
                    continue;
                }
                if let Some(info) = self.read(pid) {
                    let info = Arc::new(info);
                    let changed = self
                        .known
                        .get(&pid)
                        .is_none_or(|old| old.instrumented != info.instrumented);
                    self.known.insert(pid, info.clone());
                    if changed {
                        new.push(info);
                    }
                }
            }
        }
        let gone: Vec<u32> = self
            .known
            .keys()
            .filter(|p| !alive.contains(p))
            .copied()
            .collect();
        self.recently_gone.clear();
        for p in &gone {
            if let Some(info) = self.known.remove(p) {
                self.recently_gone.insert(*p, info);
            }
        }
        (new, gone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_ranges() {
        let r: PortRanges = "80,8000-8999".parse().unwrap();
        assert!(r.contains(80) && r.contains(8500) && !r.contains(81) && !r.contains(9000));
        assert!("80-70".parse::<PortRanges>().is_err());
        assert!("x".parse::<PortRanges>().is_err());
        assert!("".parse::<PortRanges>().is_err());
    }

    #[test]
    fn container_ids() {
        let id = "a".repeat(64);
        for line in [
            format!("0::/system.slice/docker-{id}.scope"),
            format!("12:memory:/docker/{id}"),
            format!("0::/kubepods.slice/kubepods-burstable.slice/cri-containerd-{id}.scope"),
            format!("0::/kubepods/burstable/pod1/{id}"),
            format!("0::/machine.slice/crio-{id}.scope"),
        ] {
            assert_eq!(container_id(&line).as_deref(), Some(id.as_str()), "{line}");
        }
        assert_eq!(
            container_id("0::/user.slice/user-0.slice/session-1.scope"),
            None
        );
    }

    #[test]
    fn environ_and_tcp_table() {
        let env = b"A=1\0OTEL_SERVICE_NAME=shop\0OTEL_SERVICE_NAME_X=no\0";
        assert_eq!(environ_var(env, "OTEL_SERVICE_NAME"), Some("shop"));
        assert_eq!(environ_var(env, "B"), None);
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0 100 0 0 10 0\n   1: 0100007F:1F91 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 12346 1 0 100 0 0 10 0\n";
        let mut m = HashMap::new();
        listening_inodes(table, &mut m);
        assert_eq!(m.len(), 1);
        assert_eq!(m[&12345], 8080);
    }

    #[test]
    fn vanished_process_is_named_by_its_comm() {
        let dir = std::env::temp_dir().join(format!("tapline-disc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut d = Discovery::new(&dir, vec![], vec![]);
        let mut comm = [0u8; 16];
        comm[..4].copy_from_slice(b"curl");
        let info = d.process_with_comm(4_000_001, &comm).unwrap();
        assert_eq!(&*info.service_name, "curl");
        let a = &info.resource.attributes;
        assert_eq!(a.get_str("service.name"), Some("curl"));
        assert_eq!(a.get_str("process.executable.name"), Some("curl"));
        // cached: a later lookup without the comm keeps the name
        assert_eq!(&*d.process(4_000_001).unwrap().service_name, "curl");
        // no comm either: unknown_service
        let info = d.process(4_000_002).unwrap();
        assert_eq!(&*info.service_name, "unknown_service");
        assert_eq!(
            info.resource.attributes.get("process.executable.name"),
            None
        );
        // selective mode reports nothing it cannot match
        let sel = Selector {
            open_ports: Some(PortRanges(vec![(1, 1)])),
            exe_path: None,
        };
        let mut d = Discovery::new(&dir, vec![sel], vec![]);
        assert!(d.process_with_comm(4_000_003, &comm).is_none());
        assert_eq!(d.instrumented_with_comm(4_000_003, &comm), None);
        // every-process mode: a vanished process is instrumented, first and cached lookups agree
        let mut d = Discovery::new(&dir, vec![], vec![]);
        assert_eq!(d.instrumented_with_comm(4_000_005, &comm), Some(true));
        assert_eq!(d.instrumented_with_comm(4_000_005, &[0; 16]), Some(true));
        assert_eq!(&*d.process(4_000_005).unwrap().service_name, "curl");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn gone_process_keeps_its_identity_for_late_observations() {
        let dir = std::env::temp_dir().join(format!("tapline-gone-{}", std::process::id()));
        let pdir = dir.join("4000004");
        std::fs::create_dir_all(&pdir).unwrap();
        std::fs::write(pdir.join("comm"), "shopd\n").unwrap();
        std::fs::write(pdir.join("environ"), "OTEL_SERVICE_NAME=shop\0").unwrap();
        let mut d = Discovery::new(&dir, vec![], vec![]);
        assert_eq!(&*d.process(4_000_004).unwrap().service_name, "shop");
        std::fs::remove_dir_all(&pdir).unwrap();
        let (_, gone) = d.rescan();
        assert_eq!(gone, vec![4_000_004]);
        assert_eq!(&*d.process(4_000_004).unwrap().service_name, "shop");
        d.rescan();
        assert_eq!(
            &*d.process(4_000_004).unwrap().service_name,
            "unknown_service"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn discovers_this_process_listener() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let sel = Selector {
            open_ports: Some(PortRanges(vec![(port, port)])),
            exe_path: None,
        };
        let mut d = Discovery::new("/proc", vec![sel], vec![]);
        // tapline never instruments itself, but the selector machinery must see the port
        let mut ports = None;
        let me = std::process::id();
        assert!(d.matches(false, me, "", &mut ports));
        assert!(ports.unwrap().contains(&port));
        let info = d.process(me).unwrap();
        assert!(!info.instrumented);
        assert_eq!(
            info.resource.attributes.get("process.pid"),
            Some(&Value::Int(me as i64))
        );
    }
}
