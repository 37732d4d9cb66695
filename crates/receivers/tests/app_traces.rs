//! Connected spans on one host, with nothing changed in the programs (root, real kernel):
//! curl calls a python frontend, which calls a python backend while serving each request.
//! Every request is one trace of four spans: curl's client span, the frontend's server span
//! (its child), the frontend's client call (the server span's child: the kernel knows which
//! request the calling thread serves) and the backend's server span (the call's child: same
//! connection, enclosed in time).
//!
//! `cargo test --release -p tapline-receivers --test app_traces` as root. Needs python3, curl.

mod app_util;

use std::collections::HashMap;
use std::process::Command;

use app_util::*;
use tapline_core::data::*;
use tapline_core::telemetry::Telemetry;
use tapline_test_support::{free_port, need, wait_port, ChildGuard};

/// `python3 -c SERVER <port> [<backend port>]`: a thread-per-request HTTP/1.1 server. With a
/// backend port, `GET /front/<n>` fetches `/back/<n>` from the backend (a new connection per
/// call, as urllib does) before it answers.
const SERVER: &str = r#"
import sys, http.server, socketserver, urllib.request
port = int(sys.argv[1]); backend = int(sys.argv[2]) if len(sys.argv) > 2 else 0
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        body = b"ok"
        if backend and self.path.startswith("/front/"):
            n = self.path.rsplit("/", 1)[1]
            body = urllib.request.urlopen(f"http://127.0.0.1:{backend}/back/{n}").read()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
S(("127.0.0.1", port), H).serve_forever()
"#;

fn server(port: u16, backend: Option<u16>) -> ChildGuard {
    need("python3", "apt-get install python3");
    let mut cmd = Command::new("python3");
    cmd.args(["-c", SERVER, &port.to_string()]);
    if let Some(b) = backend {
        cmd.arg(b.to_string());
    }
    let child = ChildGuard::spawn("python server", &mut cmd);
    wait_port(port, std::time::Duration::from_secs(10));
    child
}

fn curl(urls: &[String]) {
    need("curl", "apt-get install curl");
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-f"]);
    for u in urls {
        cmd.args(["-o", "/dev/null", u]);
    }
    run(&mut cmd);
}

/// A counter of the app receiver's self-telemetry.
fn linked(t: &Telemetry, name: &'static str) -> u64 {
    t.counter(name, "", &[("receiver", "app")]).get()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every span of `sink` with a `url.path` and `server.port`, by (path, kind, server port).
fn spans_by_path(sink: &Sink) -> HashMap<(String, SpanKind, i64), Vec<Span>> {
    let mut spans: HashMap<(String, SpanKind, i64), Vec<Span>> = HashMap::new();
    for (_, _, s) in sink.spans() {
        let path = s
            .attributes
            .get("url.path")
            .map(|v| v.to_text().to_string());
        let port = match s.attributes.get("server.port") {
            Some(Value::Int(p)) => Some(*p),
            _ => None,
        };
        if let (Some(path), Some(port)) = (path, port) {
            spans.entry((path, s.kind, port)).or_default().push(s);
        }
    }
    spans
}

/// For each of `n` requests, the four spans of curl → `front` → `back` (curl asks `front`
/// for `front_path(i)`, which asks `back` for `back_path(i)`) form one trace: curl's client
/// span is the root, and each of the others is the child of the one before it.
fn assert_chains(
    sink: &Sink,
    n: usize,
    (front, back): (u16, u16),
    front_path: impl Fn(usize) -> String,
    back_path: impl Fn(usize) -> String,
) {
    let spans = spans_by_path(sink);
    let one = |path: String, kind: SpanKind, port: u16| -> Span {
        let found = spans
            .get(&(path.clone(), kind, port as i64))
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            found.len(),
            1,
            "{kind:?} spans of {path} on {port}: {found:#?}"
        );
        found[0].clone()
    };
    let mut traces = std::collections::BTreeSet::new();
    for i in 0..n {
        let caller = one(front_path(i), SpanKind::Client, front);
        let front_server = one(front_path(i), SpanKind::Server, front);
        let call = one(back_path(i), SpanKind::Client, back);
        let back_server = one(back_path(i), SpanKind::Server, back);
        assert_eq!(
            caller.parent_span_id, [0; 8],
            "request {i}: curl's span is the root"
        );
        for (child, parent, what) in [
            (
                &front_server,
                &caller,
                "the front's server span under curl's",
            ),
            (
                &call,
                &front_server,
                "the front's call under its server span",
            ),
            (&back_server, &call, "the back's server span under the call"),
        ] {
            assert_eq!(
                (hex(&child.trace_id), hex(&child.parent_span_id)),
                (hex(&caller.trace_id), hex(&parent.span_id)),
                "request {i}: {what}"
            );
        }
        traces.insert(caller.trace_id);
    }
    assert_eq!(traces.len(), n, "one trace per request");
}

#[test]
fn a_request_through_two_services_is_one_trace() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (front, back) = (free_port(), free_port());
    let _back = server(back, None);
    let _front = server(front, Some(back));
    let t = Tapline::start(
        "",
        || curl(&[format!("http://127.0.0.1:{front}/warmup")]),
        |sink| has_span(sink, "url.path", "/warmup"),
    );
    t.clear_sink();
    let (linked0, unlinked0) = (
        linked(t.telemetry(), "tapline_app_spans_linked_total"),
        linked(t.telemetry(), "tapline_app_spans_unlinked_total"),
    );
    const N: usize = 10;
    // One curl, one keep-alive connection: N requests in a row.
    let urls: Vec<String> = (0..N)
        .map(|i| format!("http://127.0.0.1:{front}/front/{i}"))
        .collect();
    curl(&urls);
    let (sink, telemetry) = t.stop();
    assert_chains(
        &sink,
        N,
        (front, back),
        |i| format!("/front/{i}"),
        |i| format!("/back/{i}"),
    );
    assert_eq!(
        linked(&telemetry, "tapline_app_spans_linked_total") - linked0,
        3 * N as u64
    );
    assert_eq!(
        linked(&telemetry, "tapline_app_spans_unlinked_total"),
        unlinked0
    );
}

/// nginx as a reverse proxy (one event-loop worker) in front of the python backend: for
/// requests one after the other, the request nginx last read on its thread is the one it
/// forwards, so its upstream call joins that request's trace.
#[test]
fn nginx_proxying_requests_one_at_a_time_joins_their_traces() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    need("nginx", "apt-get install nginx-light");
    let (front, back) = (free_port(), free_port());
    let _back = server(back, None);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    std::fs::create_dir_all(dir.path().join("logs")).unwrap();
    std::fs::write(
        dir.path().join("nginx.conf"),
        format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
             error_log {d}/logs/error.log;\nevents {{ worker_connections 1024; }}\n\
             http {{\n access_log off;\n client_body_temp_path {d};\n proxy_temp_path {d};\n\
             fastcgi_temp_path {d};\n uwsgi_temp_path {d};\n scgi_temp_path {d};\n\
             server {{ listen 127.0.0.1:{front};\n  location / {{ proxy_pass http://127.0.0.1:{back}; }} }}\n}}\n"
        ),
    )
    .unwrap();
    let mut cmd = Command::new("nginx");
    cmd.args(["-p", &d.to_string(), "-c"])
        .arg(dir.path().join("nginx.conf"));
    let _nginx = ChildGuard::spawn("nginx", &mut cmd);
    wait_port(front, std::time::Duration::from_secs(10));
    let t = Tapline::start(
        "",
        || curl(&[format!("http://127.0.0.1:{front}/warmup")]),
        |sink| has_span(sink, "url.path", "/warmup"),
    );
    t.clear_sink();
    const N: usize = 10;
    let urls: Vec<String> = (0..N)
        .map(|i| format!("http://127.0.0.1:{front}/item/{i}"))
        .collect();
    curl(&urls);
    let (sink, _) = t.stop();
    let path = |i: usize| format!("/item/{i}");
    assert_chains(&sink, N, (front, back), path, path);
}
