//! Private database and broker peers for the receiver tests that watch real protocol traffic
//! (`app_protocols` through the kernel capture, `protocols_*` through a recording proxy): each
//! runs on a free port with its data in a temporary directory, and stops with the test.
#![allow(dead_code)]

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use tapline_test_support::process::{need, run};
use tapline_test_support::temp::TempDir;
use tapline_test_support::{free_port, tempdir, wait_port, ChildGuard};

/// A peer server on 127.0.0.1:`port`.
pub struct Peer {
    pub port: u16,
    _guard: ChildGuard,
    _dir: TempDir,
}

impl Peer {
    /// Starts `cmd` (listening on `port`, its data in `dir`) and waits until it accepts
    /// connections.
    fn serve(name: &str, cmd: &mut Command, port: u16, dir: TempDir, within: Duration) -> Peer {
        let guard = ChildGuard::spawn(name, cmd.stdout(Stdio::null()).stderr(Stdio::null()));
        wait_port(port, within);
        Peer {
            port,
            _guard: guard,
            _dir: dir,
        }
    }
}

/// The uid and gid of the `postgres` user (postgres refuses to run as root).
fn postgres_ids() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .expect("id");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("no `postgres` user: install `apt-get install postgresql`"))
    };
    (id("-u"), id("-g"))
}

/// A private PostgreSQL cluster (trust authentication, user `postgres`, no fsync, no TLS).
pub fn postgres() -> Peer {
    let initdb = need("initdb", "apt-get install postgresql");
    let postgres = need("postgres", "apt-get install postgresql");
    let (uid, gid) = postgres_ids();
    let dir = tempdir("pg");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    for p in [dir.path(), &data] {
        std::os::unix::fs::chown(p, Some(uid), Some(gid)).unwrap();
    }
    run(
        Command::new(&initdb)
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(&data)
            .uid(uid)
            .gid(gid)
            .env("LC_ALL", "C"),
        Duration::from_secs(120),
    );
    let port = free_port();
    let mut cmd = Command::new(postgres);
    cmd.arg("-D")
        .arg(&data)
        .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
        .args(["-c", "fsync=off", "-c", "ssl=off", "-k"])
        .arg(dir.path())
        .uid(uid)
        .gid(gid);
    Peer::serve("postgres", &mut cmd, port, dir, Duration::from_secs(30))
}

/// pgbench against the cluster on `port` (database `postgres`).
pub fn pgbench(port: u16, args: &[&str]) {
    let bin = need("pgbench", "apt-get install postgresql");
    run(
        Command::new(bin)
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
            .args(args)
            .arg("postgres")
            .env("PGSSLMODE", "disable"),
        Duration::from_secs(300),
    );
}

/// A private MariaDB server (root without password, no binary log).
pub fn mariadb() -> Peer {
    let install = need("mariadb-install-db", "apt-get install mariadb-server");
    let server = need("mariadbd", "apt-get install mariadb-server");
    let dir = tempdir("maria");
    let data = dir.path().join("data");
    run(
        Command::new(install)
            .args(["--no-defaults", "--user=root", "--skip-test-db"])
            .arg("--auth-root-authentication-method=normal")
            .arg(format!("--datadir={}", data.display())),
        Duration::from_secs(180),
    );
    let port = free_port();
    let mut cmd = Command::new(server);
    cmd.arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .arg(format!("--socket={}", dir.path().join("sock").display()))
        .arg(format!("--pid-file={}", dir.path().join("pid").display()))
        .args(["--user=root", "--bind-address=127.0.0.1", "--skip-log-bin"])
        .args(["--innodb-buffer-pool-size=16M", "--skip-name-resolve"])
        .arg(format!("--port={port}"));
    Peer::serve("mariadbd", &mut cmd, port, dir, Duration::from_secs(60))
}

/// Runs `sql` (a script, on stdin) with the mariadb client against `port`, going on after
/// errors; returns stdout and stderr, where the errors are reported.
pub fn mariadb_client(port: u16, sql: &str) -> String {
    let bin = need("mariadb", "apt-get install mariadb-client");
    let mut child = Command::new(bin)
        .args([
            "--no-defaults",
            "--skip-ssl",
            "-h",
            "127.0.0.1",
            "-u",
            "root",
        ])
        .args(["--force", "-B", &format!("-P{port}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mariadb");
    let mut stdin = child.stdin.take().unwrap();
    let sql = sql.to_string();
    // Written from another thread: a long script would fill the pipe while output waits.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(sql.as_bytes());
    });
    let out = child.wait_with_output().expect("run mariadb");
    let _ = writer.join();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A redis-server without persistence.
pub fn redis() -> Peer {
    let bin = need("redis-server", "apt-get install redis-server");
    let dir = tempdir("redis");
    let port = free_port();
    let mut cmd = Command::new(bin);
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args([
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "no",
            "--dir",
        ])
        .arg(dir.path());
    Peer::serve("redis-server", &mut cmd, port, dir, Duration::from_secs(10))
}

/// python3 with the `kafka` module (kafka-python), which the broker and client scripts use.
pub fn python_with_kafka() -> PathBuf {
    let python = need("python3", "apt-get install python3");
    let ok = Command::new(&python)
        .args(["-c", "import kafka"])
        .output()
        .expect("run python3");
    assert!(
        ok.status.success(),
        "python module `kafka` missing: pip install kafka-python (scripts/install-test-deps.sh)"
    );
    python
}

/// A script of this crate's `tests/` directory.
pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(name)
}

/// `kafka_broker.py` on `port`, telling clients to come back on `advertise_port`, answering
/// as `profile`, refusing the topic `deny`, logging every request to `log`.
pub fn kafka_broker(
    port: u16,
    advertise_port: u16,
    profile: &str,
    deny: &str,
    log: &Path,
) -> ChildGuard {
    let broker = ChildGuard::spawn(
        "kafka_broker.py",
        Command::new(python_with_kafka())
            .arg(script("kafka_broker.py"))
            .args(["--port", &port.to_string()])
            .args(["--advertise-port", &advertise_port.to_string()])
            .args(["--profile", profile, "--deny", deny, "--log"])
            .arg(log),
    );
    wait_port(port, Duration::from_secs(10));
    broker
}
