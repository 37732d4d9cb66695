//! The `app` receiver on TLS traffic (libssl uprobes) on the real kernel (root): a python3
//! `ssl` HTTPS server and nginx with TLS, curl as the client. Each run is compared with the
//! same workload in plain text at the same time: exactly the same counts per (method, route,
//! status) on the server and the client side, `url.scheme` telling them apart, nothing
//! counted twice (the TLS records under the plaintext are not parsed).
//!
//! `cargo test -p tapline-receivers --test app_tls` as root. Needs: python3, curl, openssl
//! (CLI), nginx (`apt-get install nginx-light openssl curl`).

mod app_util;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use app_util::*;
use tapline_core::data::{SpanKind, Value};
use tapline_test_support::{free_port, need, tempdir, wait_port, ChildGuard};

/// A self-signed certificate and key made with the `openssl` CLI.
fn make_cert(dir: &Path) -> (String, String) {
    need("openssl", "apt-get install openssl");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    run(Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert));
    (cert.display().to_string(), key.display().to_string())
}

const PY_SERVER: &str = r#"
import sys, ssl, http.server, socketserver
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def reply(self):
        p = self.path.split("?")[0]
        n = int(self.headers.get("Content-Length") or 0)
        if n: self.rfile.read(n)
        code = int(p.split("/")[2]) if p.startswith("/status/") else 200
        self.send_response(code)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"hello")
    do_GET = do_POST = reply
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
srv = S(("127.0.0.1", int(sys.argv[1])), H)
if len(sys.argv) > 2:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[2], sys.argv[3])
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
"#;

fn python_server(port: u16, tls: Option<&(String, String)>) -> ChildGuard {
    need("python3", "apt-get install python3");
    let mut cmd = Command::new("python3");
    cmd.args(["-c", PY_SERVER, &port.to_string()]);
    if let Some((cert, key)) = tls {
        cmd.args([cert, key]);
    }
    let p = ChildGuard::adopt("peer", cmd.spawn().expect("python3"));
    wait_port(port, Duration::from_secs(10));
    p
}

/// curl (`-k`: the certificate is self-signed); every body to /dev/null. Returns the status
/// codes, one per line.
fn curl(args: &[&str]) -> String {
    need("curl", "apt-get install curl");
    let mut full: Vec<&str> = vec!["-k", "-s", "-w", "%{http_code}\n"];
    for a in args {
        if a.starts_with("http") {
            full.extend(["-o", "/dev/null"]);
        }
        full.push(a);
    }
    run(Command::new("curl").args(&full))
}

const KEYS: [&str; 5] = [
    "http.request.method",
    "http.route",
    "http.response.status_code",
    "error.type",
    "url.scheme",
];

/// Counts of `metric` on `port` per (method, route, status, error.type, url.scheme), without
/// the warm-up requests.
fn counts(sink: &Sink, metric: &str, port: u16) -> HashMap<Vec<String>, u64> {
    sink.counts(metric, port, &KEYS)
        .into_iter()
        .filter(|(k, _)| k[1] != "/warmup")
        .map(|(k, a)| (k, a.count))
        .collect()
}

/// The same counts with `url.scheme` dropped.
fn without_scheme(m: &HashMap<Vec<String>, u64>) -> HashMap<Vec<String>, u64> {
    m.iter().map(|(k, v)| (k[..4].to_vec(), *v)).collect()
}

/// The warm-up: a plain and a TLS request until both are seen on the server side.
fn start(extra: &str, plain: u16, tls: u16) -> Tapline {
    let poke = || {
        let _ = Command::new("curl")
            .args(["-k", "-s", "-o", "/dev/null", "-o", "/dev/null"])
            .arg(format!("http://127.0.0.1:{plain}/warmup"))
            .arg(format!("https://127.0.0.1:{tls}/warmup"))
            .status();
    };
    let ready = |s: &Sink| {
        let spans = s.spans();
        [("http", plain), ("https", tls)]
            .iter()
            .all(|(scheme, port)| {
                spans.iter().any(|(_, _, sp)| {
                    sp.kind == SpanKind::Server
                        && sp.attributes.get_str("url.path") == Some("/warmup")
                        && sp.attributes.get_str("url.scheme") == Some(scheme)
                        && sp.attributes.get("server.port") == Some(&Value::Int(*port as i64))
                })
            })
    };
    Tapline::start(extra, poke, ready)
}

fn python_workload(base: &str) {
    let urls: Vec<String> = (0..20).map(|i| format!("{base}/users/{i}")).collect();
    let refs: Vec<&str> = urls.iter().map(String::as_str).collect();
    assert_eq!(curl(&refs).lines().filter(|l| *l == "200").count(), 20);
    for _ in 0..4 {
        assert_eq!(curl(&[&format!("{base}/status/404")]).trim(), "404");
    }
    for _ in 0..3 {
        assert_eq!(curl(&[&format!("{base}/status/500")]).trim(), "500");
    }
    for _ in 0..5 {
        curl(&[
            "-X",
            "POST",
            "-d",
            "0123456789",
            &format!("{base}/api/orders/7"),
        ]);
    }
}

#[test]
fn python_https_server_and_curl_count_like_plain_text() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempdir("tls-py");
    let cert = make_cert(dir.path());
    let (plain, tls) = (free_port(), free_port());
    let _p = python_server(plain, None);
    let _t = python_server(tls, Some(&cert));
    let t = start("    routes: {patterns: [\"/users/{id}\"]}", plain, tls);
    python_workload(&format!("http://127.0.0.1:{plain}"));
    python_workload(&format!("https://127.0.0.1:{tls}"));
    let (sink, telemetry) = t.stop();

    let expected = |scheme: &str, client: bool| -> HashMap<Vec<String>, u64> {
        let e404 = if client { "404" } else { "" };
        [
            (k(&["GET", "/users/{id}", "200", "", scheme]), 20),
            (k(&["GET", "/status/*", "404", e404, scheme]), 4),
            (k(&["GET", "/status/*", "500", "500", scheme]), 3),
            (k(&["POST", "/api/orders/*", "200", "", scheme]), 5),
        ]
        .into_iter()
        .collect()
    };
    for (metric, client) in [
        ("http.server.request.duration", false),
        ("http.client.request.duration", true),
    ] {
        let p = counts(&sink, metric, plain);
        let s = counts(&sink, metric, tls);
        assert_eq!(p, expected("http", client), "{metric} plain text");
        assert_eq!(s, expected("https", client), "{metric} TLS");
        assert_eq!(without_scheme(&p), without_scheme(&s), "{metric}");
    }
    // request bodies of the TLS POSTs: from the plaintext, not the records
    let bodies = sink.counts("http.server.request.body.size", tls, &KEYS);
    let post = bodies[&k(&["POST", "/api/orders/*", "200", "", "https"])];
    assert_eq!((post.count, post.sum), (5, 50.0));
    let tls_spans = sink
        .spans()
        .into_iter()
        .filter(|(_, _, s)| {
            s.attributes.get("server.port") == Some(&Value::Int(tls as i64))
                && s.attributes.get_str("url.path") != Some("/warmup")
        })
        .count();
    assert_eq!(
        tls_spans,
        2 * 32,
        "one server and one client span per request"
    );
    assert_eq!(lost(&telemetry), 0);
}

/// nginx serving the same files on a plain and a TLS port.
fn nginx(dir: &Path, plain: u16, tls: u16, cert: &(String, String)) -> ChildGuard {
    need("nginx", "apt-get install nginx-light");
    let root = dir.join("www");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    std::fs::write(root.join("index.html"), "hello from nginx\n").unwrap();
    std::fs::write(root.join("kib.bin"), vec![b'k'; 100 << 10]).unwrap();
    let conf = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/logs/error.log;\nevents {{ worker_connections 1024; }}\nhttp {{\n access_log off;\n client_body_temp_path {d}/tmp;\n proxy_temp_path {d}/tmp;\n fastcgi_temp_path {d}/tmp;\n uwsgi_temp_path {d}/tmp;\n scgi_temp_path {d}/tmp;\n keepalive_requests 100000;\n server {{\n  listen 127.0.0.1:{plain};\n  listen 127.0.0.1:{tls} ssl;\n  ssl_certificate {c};\n  ssl_certificate_key {k};\n  root {r};\n }}\n}}\n",
        d = dir.display(),
        r = root.display(),
        c = cert.0,
        k = cert.1,
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let p = ChildGuard::adopt(
        "peer",
        Command::new("nginx")
            .args(["-p", &dir.display().to_string(), "-c"])
            .arg(dir.join("nginx.conf"))
            .spawn()
            .expect("nginx"),
    );
    wait_port(plain, Duration::from_secs(10));
    wait_port(tls, Duration::from_secs(10));
    p
}

#[test]
fn nginx_tls_and_curl_count_like_plain_text() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempdir("tls-nginx");
    let cert = make_cert(dir.path());
    let (plain, tls) = (free_port(), free_port());
    let _ng = nginx(dir.path(), plain, tls, &cert);
    let t = start("", plain, tls);
    const N: usize = 50;
    for (scheme, port) in [("http", plain), ("https", tls)] {
        let page = format!("{scheme}://127.0.0.1:{port}/index.html");
        let big = format!("{scheme}://127.0.0.1:{port}/kib.bin");
        let mut urls: Vec<&str> = vec![page.as_str(); N];
        urls.extend([big.as_str(); 5]);
        let out = curl(&urls);
        assert_eq!(out.lines().filter(|l| *l == "200").count(), N + 5);
        for _ in 0..3 {
            assert_eq!(
                curl(&[&format!("{scheme}://127.0.0.1:{port}/nope")]).trim(),
                "404"
            );
        }
    }
    let (sink, telemetry) = t.stop();
    for (metric, e404) in [
        ("http.server.request.duration", ""),
        ("http.client.request.duration", "404"),
    ] {
        for (scheme, port) in [("http", plain), ("https", tls)] {
            let c = counts(&sink, metric, port);
            let expected: HashMap<Vec<String>, u64> = [
                (k(&["GET", "/index.html", "200", "", scheme]), N as u64),
                (k(&["GET", "/kib.bin", "200", "", scheme]), 5),
                (k(&["GET", "/nope", "404", e404, scheme]), 3),
            ]
            .into_iter()
            .collect();
            assert_eq!(c, expected, "{metric} {scheme}");
        }
    }
    // response sizes from the plaintext: 5 x 100 KiB on both sides
    for metric in [
        "http.server.response.body.size",
        "http.client.response.body.size",
    ] {
        let sizes = sink.counts(metric, tls, &KEYS);
        let big = sizes[&k(&["GET", "/kib.bin", "200", "", "https"])];
        assert_eq!(
            (big.count, big.sum),
            (5, 5.0 * (100 << 10) as f64),
            "{metric}"
        );
    }
    assert_eq!(lost(&telemetry), 0);
}
