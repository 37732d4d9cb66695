//! Child processes that die with the test (however it ends), the programs a test needs, and
//! running a command to completion.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a child gets to exit after SIGTERM before it is killed: long enough for nginx's
/// master to stop its workers or postgres to shut down (SIGKILL would orphan them).
const GRACE: Duration = Duration::from_secs(10);

/// A child process stopped when dropped: SIGTERM, then SIGKILL after a grace period.
pub struct ChildGuard {
    child: Child,
    name: String,
    stopped: bool,
}

impl ChildGuard {
    /// Starts `cmd`; panics naming `name` when it cannot be started.
    pub fn spawn(name: &str, cmd: &mut Command) -> ChildGuard {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name} ({cmd:?}): {e}"));
        Self::adopt(name, child)
    }

    /// Starts `cmd` with no input and its stdout and stderr in the file `log`.
    pub fn spawn_logged(name: &str, cmd: &mut Command, log: &Path) -> ChildGuard {
        let out = std::fs::File::create(log)
            .unwrap_or_else(|e| panic!("creating {name}'s log {}: {e}", log.display()));
        let err = out.try_clone().expect("duplicating a log file handle");
        Self::spawn(
            name,
            cmd.stdin(Stdio::null())
                .stdout(Stdio::from(out))
                .stderr(Stdio::from(err)),
        )
    }

    /// Takes charge of a child started elsewhere.
    pub fn adopt(name: &str, child: Child) -> ChildGuard {
        ChildGuard {
            child,
            name: name.to_string(),
            stopped: false,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    /// The exit status when the child has exited already.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGTERM, then SIGKILL if it has not exited within the grace period; reaps it.
    pub fn stop(&mut self) {
        if std::mem::replace(&mut self.stopped, true) {
            return;
        }
        if self.exited().is_some() {
            return;
        }
        // SAFETY: signalling our own, not yet reaped, child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + GRACE;
        while Instant::now() < deadline {
            if self.exited().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGKILL now (a peer that vanishes without a goodbye), and reaps it.
    pub fn kill(&mut self) {
        self.stopped = true;
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Several named children logging into one directory, stopped last-started first.
pub struct Processes {
    log_dir: PathBuf,
    children: Vec<ChildGuard>,
}

impl Processes {
    pub fn new(log_dir: &Path) -> Processes {
        Processes {
            log_dir: log_dir.to_path_buf(),
            children: Vec::new(),
        }
    }

    pub fn log_path(&self, name: &str) -> PathBuf {
        self.log_dir.join(format!("{name}.log"))
    }

    /// Starts `cmd` with stdout and stderr in `<name>.log`.
    pub fn spawn(&mut self, name: &str, cmd: &mut Command) {
        let log = self.log_path(name);
        self.children
            .push(ChildGuard::spawn_logged(name, cmd, &log));
    }

    /// What `name` has logged so far.
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.log_path(name)).unwrap_or_default()
    }

    /// Every child's log, each under its name.
    pub fn all_logs(&self) -> String {
        self.children
            .iter()
            .map(|c| format!("---- {}.log\n{}", c.name(), self.log(c.name())))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Panics with the logs when a child has exited.
    pub fn check_alive(&mut self) {
        let dead = self
            .children
            .iter_mut()
            .find_map(|c| c.exited().map(|status| (c.name().to_string(), status)));
        if let Some((name, status)) = dead {
            panic!("{name} exited early ({status}):\n{}", self.all_logs());
        }
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        // Clients before the servers they talk to.
        while let Some(mut c) = self.children.pop() {
            c.stop();
        }
    }
}

/// The path of `program` (a name looked up in PATH and the sbin directories, or a path);
/// fails the test naming the package that provides it.
pub fn need(program: &str, package: &str) -> PathBuf {
    find_program(program).unwrap_or_else(|| {
        panic!("`{program}` not found: install it with `{package}` (CI installs it)")
    })
}

/// The path of `program` when it is installed.
pub fn find_program(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let p = PathBuf::from(program);
        return p.is_file().then_some(p);
    }
    // PostgreSQL's server programs live in a versioned directory off PATH.
    let postgres_bins: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/usr/local/sbin", "/usr/local/bin"])
        .map(PathBuf::from)
        .chain(postgres_bins)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file());
    found
}

/// Runs `cmd` to completion with no input, killing it after `within`; panics with its output
/// when it fails. Returns its stdout.
pub fn run(cmd: &mut Command, within: Duration) -> String {
    let out = run_output(cmd, within);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `cmd` to completion with no input, killing it after `within`; whatever its status.
pub fn run_output(cmd: &mut Command, within: Duration) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"));
    let pid = child.id() as i32;
    let done = Arc::new(AtomicBool::new(false));
    let watch = done.clone();
    let killer = std::thread::spawn(move || {
        let deadline = Instant::now() + within;
        while !watch.load(Ordering::Relaxed) {
            if Instant::now() > deadline {
                // SAFETY: our child; not reaped before `done` is set.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("waiting for {cmd:?}: {e}"));
    done.store(true, Ordering::Relaxed);
    let _ = killer.join();
    out
}

/// (program ids, link ids) held by `pid`'s file descriptors.
pub fn bpf_objects(pid: u32) -> (Vec<u32>, Vec<u32>) {
    let mut progs = Vec::new();
    let mut links = Vec::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return (progs, links);
    };
    for e in dir.flatten() {
        let Ok(text) = std::fs::read_to_string(e.path()) else {
            continue;
        };
        for line in text.lines() {
            let mut it = line.split_whitespace();
            match (it.next(), it.next().and_then(|v| v.parse().ok())) {
                (Some("prog_id:"), Some(id)) => progs.push(id),
                (Some("link_id:"), Some(id)) => links.push(id),
                _ => {}
            }
        }
    }
    progs.sort();
    progs.dedup();
    links.sort();
    links.dedup();
    (progs, links)
}

/// Asserts that none of the programs and links (ids as [`bpf_objects`] gives them) exists any
/// more: what an exited tapline held was released.
pub fn assert_bpf_objects_released(progs: &[u32], links: &[u32]) {
    for id in progs {
        assert!(
            !crate::netns::bpf_object_remains("prog", *id),
            "program {id} still loaded"
        );
    }
    for id in links {
        assert!(
            !crate::netns::bpf_object_remains("link", *id),
            "link {id} still exists"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guard_stops_its_child_when_dropped() {
        let mut guard = ChildGuard::spawn("sleep", Command::new("sleep").arg("60"));
        let pid = guard.id() as i32;
        assert!(guard.exited().is_none());
        drop(guard);
        // SAFETY: signal 0 only probes; the pid was reaped, so it no longer names our child.
        assert_ne!(unsafe { libc::kill(pid, 0) }, 0, "the child still runs");
    }

    #[test]
    fn run_returns_stdout_and_fails_with_the_output() {
        assert_eq!(
            run(Command::new("echo").arg("hi"), Duration::from_secs(10)),
            "hi\n"
        );
        let err = std::panic::catch_unwind(|| {
            run(
                Command::new("sh").args(["-c", "echo oops >&2; exit 3"]),
                Duration::from_secs(10),
            )
        })
        .unwrap_err();
        let text = err.downcast_ref::<String>().unwrap();
        assert!(text.contains("oops"), "{text}");
    }

    #[test]
    fn need_names_the_package() {
        let err = std::panic::catch_unwind(|| need("no-such-program-xyz", "apt-get install xyz"))
            .unwrap_err();
        let text = err.downcast_ref::<String>().unwrap();
        assert!(text.contains("apt-get install xyz"), "{text}");
    }
}
