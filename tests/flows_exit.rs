//! The real `tapline` binary with the `flows` receiver: SIGTERM → exit 0, and nothing it
//! loaded or attached stays behind (programs, TCX links, tc filters). Root required.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use tapline_test_support::netns::*;
use tapline_test_support::process::{assert_bpf_objects_released, bpf_objects};
use tapline_test_support::{eventually, ChildGuard};

/// What the child wrote to its (piped) stderr; read once it has exited.
fn stderr(child: &mut ChildGuard) -> String {
    let mut err = String::new();
    if let Some(mut e) = child.child().stderr.take() {
        e.read_to_string(&mut err).unwrap();
    }
    err
}

#[test]
fn sigterm_exits_0_and_leaves_nothing_attached() {
    require_root();
    let pair = NetPair::new("exit", false);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("flows.yaml");
    std::fs::write(
        &cfg,
        "receivers: { flows: { interfaces: [va], cache_active_timeout: 500ms } }
exporters: { debug: { verbosity: detailed } }
service:
  pipelines: { metrics: { receivers: [flows], exporters: [debug] } }
  telemetry: { metrics: { endpoint: null } }
",
    )
    .unwrap();
    let out_path = dir.path().join("stdout");
    let mut tapline = ChildGuard::spawn(
        "tapline",
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &pair.a,
                env!("CARGO_BIN_EXE_tapline"),
                "run",
                "--config",
            ])
            .arg(&cfg)
            .stdout(std::fs::File::create(&out_path).unwrap())
            .stderr(Stdio::piped()),
    );
    // `ip netns exec` execs the program: the child's pid is tapline's.
    let pid = tapline.id();

    // Attached: two programs (tc ingress/egress) and their two TCX links.
    let (progs, links) = eventually("tapline to attach", Duration::from_secs(20), || {
        if let Some(status) = tapline.exited() {
            panic!("tapline exited early ({status}): {}", stderr(&mut tapline));
        }
        let (p, l) = bpf_objects(pid);
        if p.len() >= 2 && l.len() >= 2 {
            Ok((p, l))
        } else {
            Err(format!("programs {p:?}, links {l:?}"))
        }
    });
    let names = Command::new("bpftool")
        .args(["prog", "show", "id", &progs[0].to_string()])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&names.stdout).contains("tapline_"));
    // (This bpftool does not list TCX links under `net show`; the link ids say what they are.)
    let link = sh_out(&["bpftool", "link", "show", "id", &links[0].to_string()]);
    // An older bpftool prints the TCX link type by number (BPF_LINK_TYPE_TCX = 11).
    assert!(link.contains("tcx") || link.contains("type 11"), "{link}");

    in_netns(&pair.a, || ping4(B4.parse().unwrap(), 3, 56));
    // The flows are exported on the 500 ms active timeout: seen printed, they are counted.
    eventually(
        "the debug exporter to print the ICMP flows",
        Duration::from_secs(10),
        || std::fs::read_to_string(&out_path).is_ok_and(|out| out.contains("transport=icmp")),
    );

    // SAFETY: plain syscall on our child.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGTERM) }, 0);
    let status = eventually(
        "tapline to exit within 15 s of SIGTERM",
        Duration::from_secs(15),
        || tapline.exited(),
    );
    let err = stderr(&mut tapline);
    assert_eq!(status.code(), Some(0), "exit status; stderr:\n{err}");

    assert_bpf_objects_released(&progs, &links);
    let net_show = sh_out(&[
        "ip", "netns", "exec", &pair.a, "bpftool", "net", "show", "dev", "va",
    ]);
    assert!(!net_show.contains("tapline"), "{net_show}");
    for dir in ["ingress", "egress"] {
        let filters = sh_out(&["tc", "-n", &pair.a, "filter", "show", "dev", "va", dir]);
        assert!(
            filters.trim().is_empty(),
            "tc {dir} filters left: {filters}"
        );
    }
    let stdout = std::fs::read_to_string(&out_path).unwrap();
    assert!(
        stdout.contains("tapline.network.flow.packets") && stdout.contains("transport=icmp"),
        "the debug exporter printed the flows:\n{stdout}\nstderr:\n{err}"
    );
}
