//! The default run without privileges: one clear error naming the capabilities to grant,
//! exit code 1, nothing left attached. With them, it needs no tracefs.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

fn tapline_programs() -> usize {
    let out = Command::new("bpftool")
        .args(["prog", "show"])
        .output()
        .expect("bpftool (apt package bpftool) is needed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(" name tapline_"))
        .count()
}

#[test]
fn unprivileged_default_run_names_the_missing_capabilities() {
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test must run as root (it drops to nobody itself)"
    );
    // A copy nobody can execute, outside a possibly private checkout.
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = dir.path().join("tapline");
    std::fs::copy(env!("CARGO_BIN_EXE_tapline"), &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let before = tapline_programs();
    let out = Command::new("timeout")
        .args([
            "30",
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(&bin)
        .args([
            "run",
            "--set",
            "service.telemetry.metrics.endpoint=127.0.0.1:0",
        ])
        .args(["--set", "exporters.prometheus.endpoint=127.0.0.1:0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "one clear error, not a cascade:\n{stderr}");
    assert!(
        errors[0].contains("CAP_BPF") && errors[0].contains("CAP_PERFMON"),
        "{stderr}"
    );
    assert!(errors[0].contains("root"), "{stderr}");
    assert_eq!(tapline_programs(), before, "nothing stays loaded");
}

#[test]
fn default_run_needs_no_tracefs() {
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test must run as root (it unmounts tracefs in a private mount namespace)"
    );
    // tracefs is unmounted only inside a private mount namespace, and CAP_SYS_ADMIN is dropped
    // so tapline could not mount it back: the host's mount is untouched. Every program
    // attaches through BPF links (tp_btf, tc, socket filters), none through tracefs.
    let script = format!(
        "umount /sys/kernel/tracing 2>/dev/null; umount /sys/kernel/debug 2>/dev/null; \
         test -e /sys/kernel/tracing/events && exit 99; \
         exec setpriv --bounding-set=-sys_admin -- {} run \
         --set service.telemetry.metrics.endpoint=127.0.0.1:0 \
         --set exporters.prometheus.endpoint=127.0.0.1:0",
        env!("CARGO_BIN_EXE_tapline")
    );
    let before = tapline_programs();
    // SIGINT after 8 s: the agent stops cleanly and reports its own exit status
    let out = Command::new("timeout")
        .args([
            "--preserve-status",
            "-s",
            "INT",
            "8",
            "unshare",
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        !stderr.lines().any(|l| l.contains("ERROR")),
        "no error:\n{stderr}"
    );
    assert!(stderr.contains("app capture attached"), "{stderr}");
    assert_eq!(tapline_programs(), before, "nothing stays loaded");
    assert!(
        std::fs::read_to_string("/proc/self/mounts")
            .unwrap()
            .contains(" /sys/kernel/tracing tracefs "),
        "the host's tracefs mount is untouched"
    );
}
