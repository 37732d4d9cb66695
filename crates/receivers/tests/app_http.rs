//! The `app` receiver against real programs on the real kernel (root): python3 `http.server`
//! and nginx as servers; curl, python and wrk as clients. Every test counts exactly.
//!
//! `cargo test -p tapline-receivers --test app_http` as root. Needs: python3, curl, nginx
//! (`apt-get install nginx-light`), wrk (`apt-get install wrk`).

mod app_util;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use app_util::*;
use tapline_core::data::*;
use tapline_test_support::{eventually, free_port, need, tempdir, wait_port, ChildGuard};

// ---------- the graph and its sink (tests/app_util), seen as HTTP ----------

/// Histogram points of `metric` on `port`, per (method, route, status, error.type).
fn http_counts(
    sink: &Sink,
    metric: &str,
    port: u16,
) -> HashMap<(String, String, i64, String), Agg> {
    sink.counts(
        metric,
        port,
        &[
            "http.request.method",
            "http.route",
            "http.response.status_code",
            "error.type",
        ],
    )
    .into_iter()
    .map(|(k, a)| {
        let status = k[2].parse().unwrap_or(0);
        ((k[0].clone(), k[1].clone(), status, k[3].clone()), a)
    })
    .collect()
}

fn key(m: &str, r: &str, s: i64, e: &str) -> (String, String, i64, String) {
    (m.into(), r.into(), s, e.into())
}

/// Starts the app receiver and waits until a request to `/warmup` on `warm_port` shows up as a
/// span: before that, the capture is not attached yet.
fn start_tapline(extra: &str, warm_port: u16) -> Tapline {
    Tapline::start(
        extra,
        || {
            let _ = http11_status(warm_port, "/warmup");
        },
        |sink| has_span(sink, "url.path", "/warmup"),
    )
}

// ---------- peers ----------

const PY_SERVER: &str = r#"
import sys, http.server, socketserver
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def reply(self):
        p = self.path.split("?")[0]
        n = int(self.headers.get("Content-Length") or 0)
        if n: self.rfile.read(n)
        parts = p.split("/")
        code, size = 200, 5
        if p.startswith("/status/"): code = int(parts[2])
        if p.startswith("/big/"): size = int(parts[2])
        self.send_response(code)
        self.send_header("Content-Length", str(size))
        self.end_headers()
        left = size
        chunk = b"x" * 65536
        try:
            while left > 0:
                k = min(left, len(chunk)); self.wfile.write(chunk[:k]); left -= k
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
    do_GET = do_POST = do_PUT = do_DELETE = reply
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    request_queue_size = 512
S(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"#;

fn python_server(port: u16) -> ChildGuard {
    need("python3", "python3");
    let p = Command::new("python3")
        .args(["-c", PY_SERVER, &port.to_string()])
        .env("OTEL_SERVICE_NAME", "pyshop")
        .spawn()
        .expect("python3");
    wait_port(port, Duration::from_secs(10));
    ChildGuard::adopt("peer", p)
}

/// nginx with its own prefix in a temp dir; `root` has the files it serves.
fn nginx(port: u16, dir: &Path) -> ChildGuard {
    need("nginx", "nginx-light");
    let root = dir.join("www");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    std::fs::write(root.join("index.html"), "hello from nginx\n").unwrap();
    std::fs::write(root.join("mib.bin"), vec![b'm'; 1 << 20]).unwrap();
    let conf = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/logs/error.log;\nevents {{ worker_connections 1024; }}\nhttp {{\n access_log {d}/logs/access.log;\n client_body_temp_path {d}/tmp;\n proxy_temp_path {d}/tmp;\n fastcgi_temp_path {d}/tmp;\n uwsgi_temp_path {d}/tmp;\n scgi_temp_path {d}/tmp;\n sendfile on;\n keepalive_requests 100000;\n server {{ listen 127.0.0.1:{port}; root {r}; }}\n}}\n",
        d = dir.display(),
        r = root.display()
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let p = Command::new("nginx")
        .args(["-p", &dir.display().to_string(), "-c"])
        .arg(dir.join("nginx.conf"))
        .spawn()
        .expect("nginx");
    wait_port(port, Duration::from_secs(10));
    ChildGuard::adopt("peer", p)
}

/// One HTTP/1.1 GET on a fresh connection (`Connection: close`, as a browser's last request
/// would be); returns the status.
fn http11_status(port: u16, path: &str) -> std::io::Result<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    Ok(std::str::from_utf8(&buf[9..12])
        .unwrap_or("0")
        .parse()
        .unwrap_or(0))
}

fn curl(args: &[&str]) -> String {
    need("curl", "curl");
    // every URL's body goes to /dev/null, only the status codes are printed
    let mut full: Vec<&str> = vec!["-s", "-w", "%{http_code}\n"];
    for a in args {
        if a.starts_with("http://") {
            full.extend(["-o", "/dev/null"]);
        }
        full.push(a);
    }
    let out = Command::new("curl").args(&full).output().expect("curl");
    assert!(out.status.success(), "curl {args:?} failed: {}", out.status);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn python(code: &str, args: &[String]) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(code)
        .args(args)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "python client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// ---------- tests ----------

#[test]
fn python_server_curl_client_counts_durations_spans() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let port = free_port();
    let _srv = python_server(port);
    let t = start_tapline(
        "    routes: {patterns: [\"/users/{id}\"], ignored_patterns: [\"/health\"]}",
        port,
    );
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    // 20 GET /users/{id} (one curl, keep-alive), 4 x 404, 3 x 500, 5 POST, 2 ignored
    let urls: Vec<String> = (0..20)
        .map(|i| format!("{base}/users/{i}?q=secret"))
        .collect();
    let refs: Vec<&str> = urls.iter().map(String::as_str).collect();
    assert_eq!(curl(&refs).lines().count(), 20);
    for _ in 0..4 {
        curl(&[&format!("{base}/status/404")]);
    }
    for _ in 0..3 {
        curl(&[&format!("{base}/status/500")]);
    }
    for _ in 0..5 {
        curl(&[
            "-X",
            "POST",
            "-d",
            "0123456789",
            &format!("{base}/api/orders/9f8e7a"),
        ]);
    }
    curl(&[&format!("{base}/health")]);
    curl(&[&format!("{base}/health")]);
    let tp_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    curl(&[
        "-H",
        &format!("traceparent: 00-{tp_trace}-00f067aa0ba902b7-01"),
        &format!("{base}/traced"),
    ]);
    let client_elapsed = started.elapsed().as_secs_f64();
    let (sink, _) = t.stop();

    let server = http_counts(&sink, "http.server.request.duration", port);
    assert_eq!(
        server[&key("GET", "/users/{id}", 200, "")].count,
        20,
        "{server:?}"
    );
    assert_eq!(
        server[&key("GET", "/status/*", 404, "")].count,
        4,
        "{server:?}"
    );
    assert_eq!(
        server[&key("GET", "/status/*", 500, "500")].count,
        3,
        "{server:?}"
    );
    assert_eq!(
        server[&key("POST", "/api/orders/*", 200, "")].count,
        5,
        "{server:?}"
    );
    assert_eq!(
        server[&key("GET", "/traced", 200, "")].count,
        1,
        "{server:?}"
    );
    assert!(!server.keys().any(|k| k.1.contains("health")), "{server:?}");
    let client = http_counts(&sink, "http.client.request.duration", port);
    assert_eq!(
        client[&key("GET", "/users/{id}", 200, "")].count,
        20,
        "{client:?}"
    );
    assert_eq!(
        client[&key("GET", "/status/*", 404, "404")].count,
        4,
        "{client:?}"
    );
    assert_eq!(
        client[&key("POST", "/api/orders/*", 200, "")].count,
        5,
        "{client:?}"
    );
    // durations: positive and within what the clients measured in total
    for (k, a) in server.iter().chain(client.iter()) {
        assert!(
            a.min > 0.0 && a.max < client_elapsed,
            "{k:?}: {a:?}, client {client_elapsed}s"
        );
    }
    let req_body = http_counts(&sink, "http.server.request.body.size", port);
    let post = req_body[&key("POST", "/api/orders/*", 200, "")];
    assert_eq!((post.count, post.sum), (5, 50.0));
    let resp_body = http_counts(&sink, "http.client.response.body.size", port);
    assert_eq!(resp_body[&key("GET", "/users/{id}", 200, "")].sum, 100.0);

    let spans = sink.spans();
    let port_spans: Vec<&(Arc<Resource>, Str, Span)> = spans
        .iter()
        .filter(|(_, _, s)| s.attributes.get("server.port") == Some(&Value::Int(port as i64)))
        .collect();
    let named = |n: &str, k: SpanKind| {
        port_spans
            .iter()
            .filter(|(_, _, s)| s.name == n && s.kind == k)
            .count()
    };
    assert_eq!(named("GET /users/{id}", SpanKind::Server), 20);
    assert_eq!(named("GET /users/{id}", SpanKind::Client), 20);
    assert_eq!(named("GET /status/*", SpanKind::Server), 7);
    let (res, _, traced) = port_spans
        .iter()
        .find(|(_, _, s)| s.name == "GET /traced" && s.kind == SpanKind::Server)
        .expect("server span of /traced");
    let hex: String = traced.trace_id.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, tp_trace);
    assert_eq!(
        traced.parent_span_id,
        [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]
    );
    assert_eq!(res.attributes.get_str("service.name"), Some("pyshop"));
    assert!(res.attributes.get("process.pid").is_some());
    // most curls exit before tapline reads their /proc entry: named by the comm in the events
    // (not `unknown_service`)
    for (res, _, s) in port_spans
        .iter()
        .filter(|(_, _, s)| s.kind == SpanKind::Client)
    {
        let a = &res.attributes;
        assert_eq!(a.get_str("service.name"), Some("curl"), "{}", s.name);
        assert_eq!(
            a.get_str("process.executable.name"),
            Some("curl"),
            "{}",
            s.name
        );
    }
    // sanitised: no query string anywhere by default
    for (_, _, s) in &port_spans {
        assert!(s.attributes.get("url.query").is_none());
        assert!(s
            .attributes
            .iter()
            .all(|(_, v)| !v.to_text().contains("secret")));
        assert!(s.end_time_ns > s.start_time_ns);
        let now = now_unix_ns();
        assert!(s.start_time_ns > now - 120_000_000_000 && s.end_time_ns < now);
    }
    let errors = port_spans
        .iter()
        .filter(|(_, _, s)| s.status == StatusCode::Error && s.kind == SpanKind::Server)
        .count();
    assert_eq!(errors, 3);
}

const KEEPALIVE_CLIENT: &str = r#"
import sys, http.client
port, n, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
c = http.client.HTTPConnection("127.0.0.1", port)
ok = 0
for i in range(n):
    c.request("GET", path)
    r = c.getresponse(); r.read()
    ok += r.status == 200
print(ok)
"#;

#[test]
fn keep_alive_thousand_requests_one_connection() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let port = free_port();
    let _srv = python_server(port);
    let t = start_tapline("", port);
    let out = python(
        KEEPALIVE_CLIENT,
        &[port.to_string(), "1000".into(), "/ka/1".into()],
    );
    assert_eq!(out.trim(), "1000");
    let (sink, telemetry) = t.stop();
    let server = http_counts(&sink, "http.server.request.duration", port);
    assert_eq!(server.len(), 2, "/warmup and /ka/*: {server:?}");
    assert_eq!(server[&key("GET", "/ka/*", 200, "")].count, 1000);
    let client = http_counts(&sink, "http.client.request.duration", port);
    assert_eq!(
        client[&key("GET", "/ka/*", 200, "")].count,
        1000,
        "{client:?}"
    );
    assert_eq!(lost(&telemetry), 0);
}

const PIPELINE_CLIENT: &str = r#"
import sys, socket
port, n = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port))
s.sendall(b"".join(b"GET /pipe/%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(n)))
buf = b""
while buf.count(b"HTTP/1.1 200") < n or not buf.endswith(b"xxxxx"):
    d = s.recv(65536)
    if not d: break
    buf += d
print(buf.count(b"HTTP/1.1 200"))
s.close()
"#;

#[test]
fn pipelined_requests_in_one_write() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let port = free_port();
    let _srv = python_server(port);
    // 10 requests (~350 bytes) in one write, 10 responses (~1 KiB) in one read: the capture
    // must see them all (a message starting beyond the captured prefix of a read
    // cannot be seen)
    let t = start_tapline("    capture_bytes: 4096", port);
    let out = python(PIPELINE_CLIENT, &[port.to_string(), "10".into()]);
    assert_eq!(out.trim(), "10");
    let (sink, _) = t.stop();
    let server = http_counts(&sink, "http.server.request.duration", port);
    assert_eq!(
        server[&key("GET", "/pipe/*", 200, "")].count,
        10,
        "{server:?}"
    );
    let client = http_counts(&sink, "http.client.request.duration", port);
    assert_eq!(
        client[&key("GET", "/pipe/*", 200, "")].count,
        10,
        "{client:?}"
    );
}

#[test]
fn nginx_mib_response_sizes_and_keep_alive() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempdir("nginx-mib");
    let dir = tmp.path().to_path_buf();
    let port = free_port();
    let _ng = nginx(port, &dir);
    let t = start_tapline("", port);
    let url = format!("http://127.0.0.1:{port}/mib.bin");
    let urls = [url.as_str(); 3];
    assert_eq!(curl(&urls), "200\n200\n200\n");
    curl(&[&format!("http://127.0.0.1:{port}/index.html")]);
    curl(&[&format!("http://127.0.0.1:{port}/nope")]);
    let (sink, _) = t.stop();
    let sizes = http_counts(&sink, "http.server.response.body.size", port);
    let mib = sizes[&key("GET", "/mib.bin", 200, "")];
    assert_eq!(
        (mib.count, mib.sum),
        (3, 3.0 * (1 << 20) as f64),
        "{sizes:?}"
    );
    let csizes = http_counts(&sink, "http.client.response.body.size", port);
    assert_eq!(
        csizes[&key("GET", "/mib.bin", 200, "")].sum,
        3.0 * (1 << 20) as f64
    );
    assert_eq!(sizes[&key("GET", "/index.html", 200, "")].count, 1);
    assert_eq!(sizes[&key("GET", "/nope", 404, "")].count, 1);
}

const OLD_CONN_CLIENT: &str = r#"
import sys, http.client, time
port = int(sys.argv[1]); ready = sys.argv[2]; go = sys.argv[3]
c = http.client.HTTPConnection("127.0.0.1", port)
c.request("GET", "/old/before"); c.getresponse().read()
open(ready, "w").close()
while not __import__("os").path.exists(go): time.sleep(0.05)
# the server's read for this one began before the capture: it may be missed on that side
c.request("GET", "/old/sync"); c.getresponse().read()
for i in range(5):
    c.request("GET", "/old/after"); r = c.getresponse(); r.read()
print("done")
"#;

#[test]
fn server_and_connection_older_than_tapline() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempdir("old");
    let dir = tmp.path().to_path_buf();
    let port = free_port();
    let _srv = python_server(port);
    let (ready, go) = (dir.join("ready"), dir.join("go"));
    let client = Command::new("python3")
        .args(["-c", OLD_CONN_CLIENT, &port.to_string()])
        .arg(&ready)
        .arg(&go)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let client = ChildGuard::adopt("peer", client);
    eventually(
        "the client to become ready",
        Duration::from_secs(10),
        || ready.exists(),
    );
    let t = start_tapline("", port);
    std::fs::write(&go, "").unwrap();
    let mut client = client;
    let out = client.child().wait_with_output_ref();
    assert_eq!(out.trim(), "done");
    let (sink, _) = t.stop();
    let server = http_counts(&sink, "http.server.request.duration", port);
    assert_eq!(
        server[&key("GET", "/old/after", 200, "")].count,
        5,
        "{server:?}"
    );
    assert!(!server.contains_key(&key("GET", "/old/before", 200, "")));
    let client = http_counts(&sink, "http.client.request.duration", port);
    assert_eq!(
        client[&key("GET", "/old/after", 200, "")].count,
        5,
        "{client:?}"
    );
}

trait WaitRef {
    fn wait_with_output_ref(&mut self) -> String;
}
impl WaitRef for Child {
    fn wait_with_output_ref(&mut self) -> String {
        let mut s = String::new();
        if let Some(mut o) = self.stdout.take() {
            o.read_to_string(&mut s).unwrap();
        }
        let _ = self.wait();
        s
    }
}

const DISCONNECT_CLIENT: &str = r#"
import sys, socket, struct
port = int(sys.argv[1])
s = socket.create_connection(("127.0.0.1", port))
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.sendall(b"GET /big/67108864 HTTP/1.1\r\nHost: x\r\n\r\n")
head = s.recv(4096)
assert head.startswith(b"HTTP/1.1 200"), head
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
s.close()
print("gone")
"#;

#[test]
fn client_disconnecting_mid_response_is_one_error() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let port = free_port();
    let _srv = python_server(port);
    let t = start_tapline("", port);
    let out = python(DISCONNECT_CLIENT, &[port.to_string()]);
    assert_eq!(out.trim(), "gone");
    // The server learns of the disconnect only when its next write fails; no event marks that
    // for the test, so it gets this long before the capture's data is collected.
    std::thread::sleep(Duration::from_millis(500));
    let (sink, _) = t.stop();
    let server = http_counts(&sink, "http.server.request.duration", port);
    let big: Vec<_> = server.iter().filter(|(k, _)| k.1 == "/big/*").collect();
    assert_eq!(big.len(), 1, "{server:?}");
    let (k, a) = big[0];
    assert_eq!(
        (k.2, k.3.as_str(), a.count),
        (200, "response_incomplete", 1)
    );
    let client = http_counts(&sink, "http.client.request.duration", port);
    let cbig: Vec<_> = client.iter().filter(|(k, _)| k.1 == "/big/*").collect();
    assert_eq!(cbig.len(), 1, "{client:?}");
    assert_eq!(
        (cbig[0].0 .3.as_str(), cbig[0].1.count),
        ("response_incomplete", 1)
    );
}

const CONCURRENT_CLIENT: &str = r#"
import sys, http.client, threading
port, conns, per = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
ok = [0] * conns
barrier = threading.Barrier(conns)
def run(i):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.connect()
    barrier.wait()
    for _ in range(per):
        c.request("GET", "/conc/x"); r = c.getresponse(); r.read()
        ok[i] += r.status in (200, 404)
    c.close()
ts = [threading.Thread(target=run, args=(i,)) for i in range(conns)]
[t.start() for t in ts]; [t.join() for t in ts]
print(sum(ok))
"#;

#[test]
fn two_hundred_concurrent_connections() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempdir("conc");
    let dir = tmp.path().to_path_buf();
    let port = free_port();
    let _ng = nginx(port, &dir);
    let t = start_tapline("", port);
    let out = python(
        CONCURRENT_CLIENT,
        &[port.to_string(), "200".into(), "5".into()],
    );
    assert_eq!(out.trim(), "1000");
    let (sink, _) = t.stop();
    let server = http_counts(&sink, "http.server.request.duration", port);
    assert_eq!(
        server[&key("GET", "/conc/x", 404, "")].count,
        1000,
        "{server:?}"
    );
    let client = http_counts(&sink, "http.client.request.duration", port);
    assert_eq!(
        client[&key("GET", "/conc/x", 404, "404")].count,
        1000,
        "{client:?}"
    );
}

#[test]
fn wrk_paced_load_against_nginx_matches_access_log() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    need("wrk", "wrk");
    let tmp = tempdir("wrk");
    let dir = tmp.path().to_path_buf();
    let port = free_port();
    let _ng = nginx(port, &dir);
    let t = start_tapline("", port);
    // 50 connections, each pausing 10 ms between requests: about 5,000 requests/s
    let script = dir.join("pace.lua");
    std::fs::write(&script, "function delay() return 10 end\n").unwrap();
    let log = dir.join("logs/access.log");
    let before = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .count();
    let out = Command::new("wrk")
        .args(["-t2", "-c50", "-d10s", "-s"])
        .arg(&script)
        .arg(format!("http://127.0.0.1:{port}/index.html"))
        .output()
        .expect("wrk");
    assert!(out.status.success(), "wrk: {out:?}");
    let wrk = String::from_utf8_lossy(&out.stdout).into_owned();
    // wrk closes 50 connections at once when it ends; their last events reach the ring buffer
    // after wrk exits, and nothing tells the test when the last one has.
    std::thread::sleep(Duration::from_millis(500));
    let (sink, telemetry) = t.stop();
    let logged = std::fs::read_to_string(&log).unwrap().lines().count() - before;
    let server = http_counts(&sink, "http.server.request.duration", port);
    let seen: u64 = server
        .iter()
        .filter(|(k, _)| k.1 == "/index.html")
        .map(|(_, a)| a.count)
        .sum();
    eprintln!("wrk: {wrk}\nnginx logged {logged}, tapline saw {seen}");
    assert!(logged > 10_000, "wrk made too few requests: {wrk}");
    assert_eq!(seen as usize, logged, "{server:?}");
    assert_eq!(lost(&telemetry), 0);
}

/// `tapline_ebpf_records_total{receiver="app"}` counts exactly the records the kernel wrote
/// into the ring buffer (its own `APP_STAT_EMITTED`, read from the map): only the python
/// server is traced, curl makes N requests on one keep-alive connection.
#[test]
fn records_counter_equals_the_records_the_kernel_emitted() {
    const N: u64 = 50;
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let port = free_port();
    let _srv = python_server(port);
    let t = start_tapline(
        &format!("    tls: false\n    discovery: {{instrument: [{{open_ports: \"{port}\"}}]}}"),
        port,
    );
    let observed = |t: &Tapline| {
        t.telemetry()
            .counter(
                "tapline_app_requests_observed_total",
                "",
                &[("receiver", "app")],
            )
            .get()
    };
    // The kernel's count stays put once the traced server is idle and the receiver has read
    // everything: the state before and after the workload.
    let settled = |t: &Tapline, what: &str| {
        let mut last = (u64::MAX, Instant::now());
        let mut seen = (0, 0);
        eventually(what, Duration::from_secs(20), || {
            let emitted = kernel_emitted();
            seen = (records(t.telemetry()), emitted);
            if emitted != last.0 {
                last = (emitted, Instant::now());
            }
            // a second without a new record: the server has closed the connection too
            seen.0 == emitted && last.1.elapsed() >= Duration::from_secs(1)
        });
        seen.1
    };
    let emitted0 = settled(&t, "the receiver to take the warm-up's records");
    let observed0 = observed(&t);
    let base = format!("http://127.0.0.1:{port}");
    let urls: Vec<String> = (0..N).map(|i| format!("{base}/budget/{i}")).collect();
    let refs: Vec<&str> = urls.iter().map(String::as_str).collect();
    assert_eq!(curl(&refs).lines().count() as u64, N);
    let emitted1 = settled(&t, "the receiver to take the requests' records");
    let observed1 = observed(&t);
    let (sink, telemetry) = t.stop();
    // the shutdown drained nothing more: the server was idle
    assert_eq!(records(&telemetry), emitted1);
    assert_eq!(lost(&telemetry), 0);
    let server = http_counts(&sink, "http.server.request.duration", port);
    assert_eq!(
        server[&key("GET", "/budget/*", 200, "")].count,
        N,
        "{server:?}"
    );
    assert_eq!(
        observed1 - observed0,
        N,
        "exchanges observed (only the server is traced)"
    );
    let taken = emitted1 - emitted0;
    eprintln!(
        "{N} requests on one connection, server side: {taken} records ({:.2} per request)",
        taken as f64 / N as f64
    );
    assert!(taken >= N, "at least one record per request: {taken}");
}
