//! Shared helpers of the application capture tests (real kernel, root).
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tapline_ebpf::app::{AppCapture, AppEvent, DataEvent, Direction};
use tapline_test_support::{wait_port, ChildGuard};

/// The captures see every process: run the tests of one binary one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// python3 ThreadingHTTPServer speaking HTTP/1.1 (keep-alive), serving `dir`.
pub fn python_server(dir: &Path, port: u16) -> ChildGuard {
    let code = format!(
        "import functools, http.server as h\n\
         h.SimpleHTTPRequestHandler.protocol_version = 'HTTP/1.1'\n\
         h.SimpleHTTPRequestHandler.log_message = lambda *a: None\n\
         handler = functools.partial(h.SimpleHTTPRequestHandler, directory={:?})\n\
         h.ThreadingHTTPServer(('127.0.0.1', {port}), handler).serve_forever()\n",
        dir.display().to_string()
    );
    let child = Command::new("python3")
        .arg("-c")
        .arg(code)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn python3");
    let child = ChildGuard::adopt("server", child);
    wait_port(port, Duration::from_secs(10));
    child
}

/// One curl run; returns (pid, stdout). `-w` output is in stdout.
pub fn curl(args: &[&str]) -> (u32, Output) {
    let child = Command::new("curl")
        .args(["-s", "--max-time", "20"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn curl");
    let pid = child.id();
    let out = child.wait_with_output().expect("curl");
    assert!(
        out.status.success(),
        "curl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (pid, out)
}

/// Polls `cap` into `events` until `done(events)` or `timeout`, then drains `linger` more.
pub fn collect_until(
    cap: &mut AppCapture,
    events: &mut Vec<AppEvent>,
    timeout: Duration,
    linger: Duration,
    done: impl Fn(&[AppEvent]) -> bool,
) -> bool {
    let deadline = Instant::now() + timeout;
    let mut ok = false;
    while Instant::now() < deadline {
        cap.wait(Duration::from_millis(50)).unwrap();
        cap.poll(events);
        if done(events) {
            ok = true;
            break;
        }
    }
    let end = Instant::now() + linger;
    while Instant::now() < end {
        cap.wait(Duration::from_millis(20)).unwrap();
        cap.poll(events);
    }
    ok
}

/// Events touching a local or remote TCP port.
pub fn on_port(events: &[AppEvent], port: u16) -> Vec<AppEvent> {
    events
        .iter()
        .filter(|e| {
            let (l, r) = match e {
                AppEvent::Data(d) => (d.local, d.remote),
                AppEvent::Accept(c) | AppEvent::Connect(c) | AppEvent::Close(c) => {
                    (c.local, c.remote)
                }
                AppEvent::Http(h) => (h.local, h.remote),
            };
            l.port() == port || r.port() == port
        })
        .cloned()
        .collect()
}

pub fn data(events: &[AppEvent]) -> impl Iterator<Item = &DataEvent> {
    events.iter().filter_map(|e| match e {
        AppEvent::Data(d) => Some(d),
        _ => None,
    })
}

/// Sum of the syscall return values of `pid`'s data events on `conn_id` in `dir`.
pub fn bytes_of(events: &[AppEvent], pid: u32, conn_id: u64, dir: Direction) -> i64 {
    data(events)
        .filter(|d| d.pid == pid && d.conn_id == conn_id && d.direction == dir)
        .map(|d| d.bytes)
        .sum()
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Writes `len` bytes of a deterministic pattern to `path`.
pub fn write_file(path: &Path, len: usize) {
    let body: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
    std::fs::write(path, body).unwrap();
}

/// nginx (master + 1 worker, `user root`, sendfile on) serving `dir/www` on 127.0.0.1:`port`.
pub fn nginx_server(dir: &Path, port: u16) -> ChildGuard {
    let root = dir.join("www");
    nginx_with_server_block(
        dir,
        port,
        &format!("listen 127.0.0.1:{port}; root {};", root.display()),
    )
}

/// nginx (master + 1 worker, `user root`, sendfile on, no access log) whose one `server` block
/// is `server_block`, listening on `port`; `dir` holds its configuration, logs and temp files.
pub fn nginx_with_server_block(dir: &Path, port: u16, server_block: &str) -> ChildGuard {
    let d = dir.display();
    for sub in ["www", "tmp"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let conf = format!(
        "worker_processes 1;\n\
         user root;\n\
         pid {d}/nginx.pid;\n\
         error_log {d}/error.log;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n\
           access_log off;\n\
           sendfile on;\n\
           default_type application/octet-stream;\n\
           client_body_temp_path {d}/tmp/body;\n\
           proxy_temp_path {d}/tmp/proxy;\n\
           fastcgi_temp_path {d}/tmp/fastcgi;\n\
           uwsgi_temp_path {d}/tmp/uwsgi;\n\
           scgi_temp_path {d}/tmp/scgi;\n\
           server {{ {server_block} }}\n\
         }}\n"
    );
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let child = Command::new("nginx")
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&conf_path)
        .args(["-g", "daemon off;"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn nginx (apt-get install nginx-light)");
    let child = ChildGuard::adopt("server", child);
    wait_port(port, Duration::from_secs(10));
    child
}
