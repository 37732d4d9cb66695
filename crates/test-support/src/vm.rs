//! Another kernel under QEMU: the host's own root file system, binaries and tests, booted on
//! Debian 12's Linux 6.1 (or Ubuntu 22.04's 5.15) to check what tapline does on the kernels
//! users run.
//!
//! `scripts/vm/prepare.sh <series>` downloads the kernel package once and builds an initramfs
//! (cached under `/var/cache/tapline-vm`). [`Kernel::run`] boots it with software emulation
//! (QEMU TCG: timings are not those of hardware; counts, loads and attach results are): the
//! guest mounts the host's `/` read-only over 9p, puts tmpfs on `/tmp`, `/run`, `/var/log`,
//! `/var/tmp`, `/var/lib/tapline` and `/root` (what the host has under `/tmp`, `/root` and
//! `/var/tmp`, such as a checkout and its build, stays there, read-only, at the same paths),
//! brings loopback up, and runs the given shell
//! script as root in a chroot of the host's root. The script's directory is shared
//! read-write: it is the guest's `/tmp/vm`, and what the script writes there is readable with
//! [`VmRun::file`] afterwards. The guest runs with `TEST_VM_GUEST=1` in its environment (not `TAPLINE_*`: the agent reads those as configuration).
//!
//! ```no_run
//! use std::time::Duration;
//! use tapline_test_support::vm::Kernel;
//! let Some(kernel) = Kernel::prepare_or_skip("6.1") else { return };
//! let run = kernel.run("uname -r > /tmp/vm/release", Duration::from_secs(120));
//! run.assert_success();
//! assert!(run.file("release").starts_with("6.1."));
//! ```

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::process::{find_program, ChildGuard};

/// The line the guest's init prints with the script's exit status before it powers off.
const EXIT_MARKER: &str = "TAPLINE-VM-EXIT ";

/// Set (to anything but `0`) where the VM tests must run: a kernel that cannot be prepared is
/// then a failure, not a skip. `scripts/test.sh` sets it.
pub const REQUIRED_ENV: &str = "TEST_VM_REQUIRED";

/// Set in the guest's environment: tests that must only run inside the VM check it.
pub const IN_VM_ENV: &str = "TEST_VM_GUEST";

/// Set to stream the guest's console to stderr as it comes (`vm| ` prefixed lines).
pub const VERBOSE_ENV: &str = "TEST_VM_VERBOSE";

/// A prepared kernel and initramfs.
#[derive(Debug, Clone)]
pub struct Kernel {
    /// The kernel's `uname -r`, e.g. `6.1.0-57-amd64`.
    pub release: String,
    pub vmlinuz: PathBuf,
    pub initrd: PathBuf,
    /// Guest memory in MiB (2048 unless changed).
    pub memory_mib: u32,
    /// Guest CPUs (2 unless changed).
    pub cpus: u32,
}

/// What a guest run did.
#[derive(Debug)]
pub struct VmRun {
    /// The script's exit status, `None` when the marker never came (timeout, panic, crash).
    pub status: Option<i32>,
    /// The whole console: kernel messages, init's lines and the script's stdout and stderr.
    pub console: String,
    /// How long from the start of QEMU to its exit.
    pub elapsed: Duration,
    dir: tempfile::TempDir,
}

/// True inside the guest of [`Kernel::run`].
pub fn in_vm() -> bool {
    std::env::var_os(IN_VM_ENV).is_some()
}

fn required() -> bool {
    std::env::var(REQUIRED_ENV).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The repository's `scripts/vm/prepare.sh`.
pub fn prepare_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/vm/prepare.sh")
}

impl Kernel {
    /// Runs `scripts/vm/prepare.sh <series>` (downloads once, then reuses its cache); the
    /// error says why the kernel cannot be had.
    pub fn prepare(series: &str) -> Result<Kernel, String> {
        if find_program("qemu-system-x86_64").is_none() {
            return Err("qemu-system-x86_64 is not installed (apt-get install qemu-system-x86; scripts/install-test-deps.sh does)".into());
        }
        let script = prepare_script();
        let out = crate::process::run_output(
            Command::new("bash").arg(&script).arg(series),
            Duration::from_secs(900),
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            return Err(format!(
                "{} {series} failed ({}): {}",
                script.display(),
                out.status,
                stderr.trim()
            ));
        }
        let field = |name: &str| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name}=")))
                .map(str::to_string)
                .ok_or_else(|| format!("prepare.sh printed no {name}= line:\n{stdout}{stderr}"))
        };
        Ok(Kernel {
            release: field("release")?,
            vmlinuz: field("kernel")?.into(),
            initrd: field("initrd")?.into(),
            memory_mib: 2048,
            cpus: 2,
        })
    }

    /// [`Kernel::prepare`] for a test: `None` after printing why the test is skipped, or a
    /// panic with that reason when [`REQUIRED_ENV`] is set. Also `None` inside a guest already.
    pub fn prepare_or_skip(series: &str) -> Option<Kernel> {
        if in_vm() {
            eprintln!("SKIPPED: already inside a VM");
            return None;
        }
        match Kernel::prepare(series) {
            Ok(k) => Some(k),
            Err(why) if required() => panic!("the {series} kernel for the VM tests: {why}"),
            Err(why) => {
                eprintln!("SKIPPED: no {series} kernel to boot ({why}); set {REQUIRED_ENV}=1 to make this a failure");
                None
            }
        }
    }

    /// Boots the kernel, runs `script` with `/bin/sh` in the chroot of the host's root,
    /// and powers off; QEMU is killed after `timeout`. Never panics on the guest's behalf:
    /// look at [`VmRun::status`] (or call [`VmRun::assert_success`]).
    pub fn run(&self, script: &str, timeout: Duration) -> VmRun {
        let dir = tempfile::Builder::new()
            .prefix("tapline-vm-")
            .tempdir()
            .expect("creating the VM's run directory");
        std::fs::write(dir.path().join("run.sh"), script).expect("writing run.sh");
        let share = |path: &Path, tag: &str, ro: bool| {
            format!(
                "local,path={},mount_tag={tag},security_model=none,multidevs=remap{}",
                path.display(),
                if ro { ",readonly=on" } else { "" }
            )
        };
        let started = Instant::now();
        let mut qemu = ChildGuard::spawn(
            "qemu",
            Command::new("qemu-system-x86_64")
                .args(["-accel", "tcg", "-no-reboot", "-display", "none"])
                .args(["-monitor", "none", "-serial", "stdio"])
                .args(["-m", &self.memory_mib.to_string()])
                .args(["-smp", &self.cpus.to_string()])
                .arg("-kernel")
                .arg(&self.vmlinuz)
                .arg("-initrd")
                .arg(&self.initrd)
                .args(["-append", "console=ttyS0 panic=-1 quiet loglevel=3"])
                .args(["-virtfs", &share(Path::new("/"), "hostroot", true)])
                .args(["-virtfs", &share(dir.path(), "vmrun", false)])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        );
        let (tx, rx) = mpsc::channel::<String>();
        let stdout = qemu.child().stdout.take().expect("qemu's stdout");
        let stderr = qemu.child().stderr.take().expect("qemu's stderr");
        let tx2 = tx.clone();
        let readers = [
            std::thread::spawn(move || forward_lines(stdout, tx)),
            std::thread::spawn(move || forward_lines(stderr, tx2)),
        ];
        let verbose = std::env::var_os(VERBOSE_ENV).is_some();
        let deadline = started + timeout;
        let mut console = String::new();
        let mut timed_out = false;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left.min(Duration::from_millis(500))) {
                Ok(line) => {
                    if verbose {
                        eprintln!("vm| {line}");
                    }
                    console.push_str(&line);
                    console.push('\n');
                }
                // Both pipes closed: QEMU has exited.
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if Instant::now() >= deadline {
                        timed_out = true;
                        break;
                    }
                }
            }
        }
        let status = exit_status(&console);
        if timed_out {
            console.push_str(&format!(
                "[test-support: the VM timed out after {timeout:?}; QEMU killed]\n"
            ));
            qemu.kill();
        } else {
            // Powered off: reap it (bounded: a QEMU that closed its output and hangs is killed).
            let end = Instant::now() + Duration::from_secs(10);
            while qemu.exited().is_none() && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(20));
            }
            qemu.kill();
        }
        for r in readers {
            let _ = r.join();
        }
        VmRun {
            status,
            console,
            elapsed: started.elapsed(),
            dir,
        }
    }
}

/// The script's exit status: the number after the last exit marker. The serial console
/// interleaves the kernel's own messages with what init writes, and the power-off message can
/// land inside the marker's line (`TAPLINE-VM-EXIT [  143.83] sysrq: Power Off`, then `0` on
/// the next line): the number is the one right after the marker, else the first later line
/// that is only a number.
fn exit_status(console: &str) -> Option<i32> {
    let at = console.rfind(EXIT_MARKER)? + EXIT_MARKER.len();
    let mut lines = console[at..].lines();
    let first = lines.next().unwrap_or("").trim_start();
    let digits = first
        .char_indices()
        .take_while(|&(i, c)| c.is_ascii_digit() || (i == 0 && c == '-'))
        .count();
    if let Ok(code) = first[..digits].parse() {
        return Some(code);
    }
    lines.find_map(|l| l.trim().parse().ok())
}

fn forward_lines(from: impl std::io::Read, to: mpsc::Sender<String>) {
    let mut reader = BufReader::new(from);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buf);
                let line = line.trim_end_matches(['\n', '\r']).replace('\r', "");
                if to.send(line).is_err() {
                    return;
                }
            }
        }
    }
}

impl VmRun {
    /// The file `name` the script wrote into `/tmp/vm` (empty when it wrote none).
    pub fn file(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    /// The run directory on the host (the guest's `/tmp/vm`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Panics with the console unless the script exited 0.
    pub fn assert_success(&self) {
        assert_eq!(
            self.status,
            Some(0),
            "the script in the VM failed (status {:?} after {:?}); console:\n{}",
            self.status,
            self.elapsed,
            self.console
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The status after the marker, also when a kernel message cut into its line (as seen:
    /// the power-off message between the marker and the number).
    #[test]
    fn the_exit_status_is_read_through_kernel_messages() {
        let plain = "ok\nTAPLINE-VM-EXIT 101\n[  143.8] sysrq: Power Off\n";
        assert_eq!(exit_status(plain), Some(101));
        let cut =
            "TAPLINE-VM-EXIT [  143.833955] sysrq: Power Off\n0\n[  143.85] reboot: Power down\n";
        assert_eq!(exit_status(cut), Some(0));
        let glued = "TAPLINE-VM-EXIT 3[  143.8] sysrq: Power Off\n";
        assert_eq!(exit_status(glued), Some(3));
        assert_eq!(
            exit_status("echo TAPLINE-VM-EXIT 1\nTAPLINE-VM-EXIT 0\n"),
            Some(0)
        );
        assert_eq!(exit_status("[  143.8] sysrq: Power Off\n0\n"), None);
        assert_eq!(
            exit_status("TAPLINE-VM-EXIT [  1.0] sysrq: Power Off\n"),
            None
        );
    }

    /// Boots the 6.1 kernel (when it can be prepared) and checks what the harness promises:
    /// the kernel, the exit status, the shared directory, writable tmpfs, loopback up, the
    /// modules the tests need, the timeout.
    #[test]
    fn a_script_runs_on_the_other_kernel_and_reports_its_status() {
        let Some(kernel) = Kernel::prepare_or_skip("6.1") else {
            return;
        };
        let run = kernel.run(
            r#"set -e
uname -r > /tmp/vm/release
echo "$TEST_VM_GUEST" > /tmp/vm/in_vm
touch /tmp/x /run/x /var/log/x /root/x
ip -o link show lo | grep -q 'UP' && echo up > /tmp/vm/lo
ip link add tvm0 type veth peer name tvm1 && ip link del tvm0
tc qdisc add dev lo clsact && tc qdisc del dev lo clsact
ls /sys/kernel/btf/vmlinux /sys/kernel/tracing/events/sock >/dev/null
echo to-stderr >&2
exit 3
"#,
            Duration::from_secs(300),
        );
        assert_eq!(run.status, Some(3), "console:\n{}", run.console);
        assert_eq!(run.file("release").trim(), kernel.release);
        assert_eq!(run.file("in_vm").trim(), "1");
        assert_eq!(run.file("lo").trim(), "up", "console:\n{}", run.console);
        assert!(run.console.contains("to-stderr"), "{}", run.console);

        let hung = kernel.run("sleep 600", Duration::from_secs(20));
        assert_eq!(hung.status, None);
        assert!(hung.console.contains("timed out"), "{}", hung.console);
    }
}
