//! What this kernel lets each capture do, found by probing it (its BTF, program and map types,
//! the interfaces it offers), never by comparing version numbers: the report
//! `tapline doctor` prints. The captures make the same choices when they load.

use std::path::Path;

use aya::maps::MapType;
use aya::programs::ProgramType;
use aya::sys::{is_map_supported, is_program_supported};
use aya::Btf;
use aya_obj::btf::BtfKind;

use crate::app::SocketHooks;

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feature {
    /// The receiver it matters to (`flows`, `app`, `rdns`), or `kernel`.
    pub receiver: &'static str,
    pub feature: &'static str,
    /// `yes`, `no`, or the choice made (`netlink clsact filters`).
    pub status: String,
    /// Why, or what the receiver does without it.
    pub detail: String,
}

fn row(receiver: &'static str, feature: &'static str, status: &str, detail: String) -> Feature {
    Feature {
        receiver,
        feature,
        status: status.to_owned(),
        detail,
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn program_type(t: ProgramType) -> bool {
    is_program_supported(t).unwrap_or(false)
}

fn map_type(t: MapType) -> bool {
    is_map_supported(t).unwrap_or(false)
}

/// Whether a kernel module is loaded, built in, or can be loaded from /lib/modules.
fn module(name: &str) -> &'static str {
    if Path::new("/sys/module").join(name).exists() {
        return "loaded";
    }
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let dir = Path::new("/lib/modules").join(release.trim());
    let builtin = std::fs::read_to_string(dir.join("modules.builtin")).unwrap_or_default();
    if builtin.lines().any(|l| l.ends_with(&format!("/{name}.ko"))) {
        return "built in";
    }
    let listed = std::fs::read_to_string(dir.join("modules.dep")).unwrap_or_default();
    if listed.lines().any(|l| {
        l.split(':')
            .next()
            .is_some_and(|m| m.contains(&format!("/{name}.ko")))
    }) {
        return "loadable module";
    }
    "not found"
}

/// Probes this kernel; needs root (or CAP_BPF + CAP_PERFMON) for the program and map probes.
pub fn probe() -> Vec<Feature> {
    let mut out = Vec::new();
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    out.push(row(
        "kernel",
        "release",
        release.trim(),
        "for information only: every choice below comes from a probe".into(),
    ));
    let btf = Btf::from_sys_fs();
    out.push(row(
        "kernel",
        "BTF (/sys/kernel/btf/vmlinux)",
        yes_no(btf.is_ok()),
        match &btf {
            Ok(_) => "CO-RE programs relocate against it".into(),
            Err(e) => format!("{e}: the app receiver cannot load"),
        },
    ));
    let has = |name: &str, kind| {
        btf.as_ref()
            .is_ok_and(|b| b.id_by_type_name_kind(name, kind).is_ok())
    };
    let ringbuf = map_type(MapType::RingBuf);
    out.push(row(
        "kernel",
        "ring buffer map",
        yes_no(ringbuf),
        "flows overflow records and every app record".into(),
    ));

    // flows
    let sched_cls = program_type(ProgramType::SchedClassifier);
    let tcx = has("tcx_entry", BtfKind::Struct);
    let (tc_status, tc_detail) = if !sched_cls {
        (
            "no",
            "no sched_cls programs: use `source: socket_filter`".to_owned(),
        )
    } else if tcx {
        ("tcx", "TCX links: they go away with the process".to_owned())
    } else {
        (
            "netlink clsact filters",
            format!(
                "no TCX (struct tcx_entry not in BTF): cls_bpf filters on the clsact qdisc \
                 (cls_bpf: {}, sch_ingress: {}), removed at exit and by the next start after a kill",
                module("cls_bpf"),
                module("sch_ingress")
            ),
        )
    };
    out.push(row(
        "flows",
        "tc capture (source: tc)",
        tc_status,
        tc_detail,
    ));
    out.push(row(
        "flows",
        "socket filter (source: socket_filter)",
        yes_no(program_type(ProgramType::SocketFilter)),
        "one AF_PACKET socket per interface".into(),
    ));
    out.push(row(
        "flows",
        "per-CPU and LRU hash maps",
        yes_no(map_type(MapType::PerCpuHash) && map_type(MapType::LruHash)),
        "the flow maps".into(),
    ));

    // app
    let (hooks_status, hooks_detail) = match &btf {
        Ok(b) => match SocketHooks::probe(b) {
            Ok((SocketHooks::Tracepoints, why)) => ("tp_btf tracepoints", why),
            Ok((SocketHooks::Fexit, why)) => ("fexit", why),
            Err(why) => ("no", format!("{why}: the app receiver cannot capture")),
        },
        Err(_) => ("no", "no kernel BTF".into()),
    };
    out.push(row(
        "app",
        "socket send/receive hooks",
        hooks_status,
        hooks_detail,
    ));
    out.push(row(
        "app",
        "connection roles and closes (tp_btf/inet_sock_set_state)",
        yes_no(has("btf_trace_inet_sock_set_state", BtfKind::Typedef)),
        "client or server side, and the end of each connection".into(),
    ));
    out.push(row(
        "app",
        "socket and task local storage",
        yes_no(map_type(MapType::SkStorage) && map_type(MapType::TaskStorage)),
        "per-connection state and per-thread TLS calls".into(),
    ));
    out.push(row(
        "app",
        "syscall registers (bpf_task_pt_regs)",
        yes_no(has("bpf_task_pt_regs", BtfKind::Func)),
        "the fd and buffer of the call that moved the bytes".into(),
    ));
    let uprobes = Path::new("/sys/bus/event_source/devices/uprobe").exists();
    out.push(row(
        "app",
        "TLS through libssl (uprobes)",
        yes_no(uprobes),
        "plaintext of SSL_read/SSL_write".into(),
    ));

    // rdns sniff
    out.push(row(
        "rdns",
        "DNS answer sniffer (mode: sniff)",
        yes_no(program_type(ProgramType::SocketFilter)),
        "a socket filter on one AF_PACKET socket".into(),
    ));
    out
}

/// The report as an aligned table.
pub fn table(features: &[Feature]) -> String {
    let w0 = features.iter().map(|f| f.receiver.len()).max().unwrap_or(0);
    let w1 = features.iter().map(|f| f.feature.len()).max().unwrap_or(0);
    let w2 = features.iter().map(|f| f.status.len()).max().unwrap_or(0);
    let mut out = String::new();
    for f in features {
        out.push_str(&format!(
            "{:w0$}  {:w1$}  {:w2$}  {}\n",
            f.receiver, f.feature, f.status, f.detail
        ));
    }
    out
}
