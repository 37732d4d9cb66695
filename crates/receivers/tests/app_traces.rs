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

    // (url.path, kind) → the spans.
    let mut spans: HashMap<(String, SpanKind), Vec<Span>> = HashMap::new();
    for (_, _, s) in sink.spans() {
        let Some(path) = s
            .attributes
            .get("url.path")
            .map(|v| v.to_text().to_string())
        else {
            continue;
        };
        if path.starts_with("/front/") || path.starts_with("/back/") {
            spans.entry((path, s.kind)).or_default().push(s);
        }
    }
    let one = |path: String, kind: SpanKind| -> Span {
        let found = spans
            .get(&(path.clone(), kind))
            .cloned()
            .unwrap_or_default();
        assert_eq!(found.len(), 1, "{kind:?} spans of {path}: {found:#?}");
        found[0].clone()
    };
    let mut traces = std::collections::BTreeSet::new();
    for i in 0..N {
        let caller = one(format!("/front/{i}"), SpanKind::Client);
        let front_server = one(format!("/front/{i}"), SpanKind::Server);
        let call = one(format!("/back/{i}"), SpanKind::Client);
        let back_server = one(format!("/back/{i}"), SpanKind::Server);
        assert_eq!(
            caller.parent_span_id, [0; 8],
            "request {i}: curl's span is the root"
        );
        for (child, parent, what) in [
            (
                &front_server,
                &caller,
                "the frontend's server span under curl's",
            ),
            (
                &call,
                &front_server,
                "the frontend's call under its server span",
            ),
            (
                &back_server,
                &call,
                "the backend's server span under the call",
            ),
        ] {
            assert_eq!(
                (hex(&child.trace_id), hex(&child.parent_span_id)),
                (hex(&caller.trace_id), hex(&parent.span_id)),
                "request {i}: {what}"
            );
        }
        traces.insert(caller.trace_id);
    }
    assert_eq!(traces.len(), N, "one trace per request");
    assert_eq!(
        linked(&telemetry, "tapline_app_spans_linked_total") - linked0,
        3 * N as u64
    );
    assert_eq!(
        linked(&telemetry, "tapline_app_spans_unlinked_total"),
        unlinked0
    );
}
