//! Which request a server thread is serving: an HTTP/1.x request a thread writes as a client
//! while it serves a request (between reading that request's head and writing its response's
//! end) is that exchange's child in the kernel's records.

mod app_support;

use std::process::{Command, Stdio};
use std::time::Duration;

use app_support::*;
use tapline_ebpf::app::{AppCapture, AppCaptureConfig, AppEvent, HttpEvent, Role};
use tapline_test_support::netns::require_root;
use tapline_test_support::{free_port, tempdir, wait_port, ChildGuard};

/// A thread-per-request python server on `port` whose handler for `/call` first fetches
/// `/leaf.txt` from `backend` (a new connection per fetch), then answers 200 with the body it
/// got; `/local` answers without calling out.
fn calling_server(port: u16, backend: u16) -> ChildGuard {
    let code = format!(
        "import http.server as h, urllib.request as u\n\
         class H(h.BaseHTTPRequestHandler):\n\
         \x20   protocol_version = 'HTTP/1.1'\n\
         \x20   def log_message(self, *a): pass\n\
         \x20   def do_GET(self):\n\
         \x20       body = b'local'\n\
         \x20       if self.path == '/call':\n\
         \x20           body = u.urlopen('http://127.0.0.1:{backend}/leaf.txt').read()\n\
         \x20       self.send_response(200)\n\
         \x20       self.send_header('Content-Length', str(len(body)))\n\
         \x20       self.end_headers()\n\
         \x20       self.wfile.write(body)\n\
         h.ThreadingHTTPServer(('127.0.0.1', {port}), H).serve_forever()\n"
    );
    let child = Command::new("python3")
        .arg("-c")
        .arg(code)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn python3");
    let child = ChildGuard::adopt("calling server", child);
    wait_port(port, Duration::from_secs(10));
    child
}

fn http_events(events: &[AppEvent], pid: u32) -> Vec<HttpEvent> {
    events
        .iter()
        .filter_map(|e| match e {
            AppEvent::Http(h) if h.pid == pid => Some(h.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_call_made_while_serving_is_the_served_exchange_child() {
    require_root();
    let _serial = serial();
    let tmp = tempdir("ctx");
    write_file(&tmp.path().join("leaf.txt"), 100);
    let (front, back) = (free_port(), free_port());

    let mut cap = AppCapture::load(&AppCaptureConfig::default()).unwrap();
    cap.attach().unwrap();
    let _backend = python_server(tmp.path(), back);
    let server = calling_server(front, back);
    let pid = server.id();

    // one request that calls out, then one that does not, on one keep-alive connection
    let call = format!("http://127.0.0.1:{front}/call");
    let local = format!("http://127.0.0.1:{front}/local");
    curl(&["-o", "/dev/null", &call, "-o", "/dev/null", &local]);

    let mut events = Vec::new();
    let done = collect_until(
        &mut cap,
        &mut events,
        Duration::from_secs(15),
        Duration::from_millis(300),
        |ev| http_events(ev, pid).len() >= 3,
    );
    let ours = http_events(&events, pid);
    assert!(done, "records of the calling server: {ours:#?}");
    let served: Vec<&HttpEvent> = ours.iter().filter(|h| h.role == Role::Server).collect();
    let made: Vec<&HttpEvent> = ours.iter().filter(|h| h.role == Role::Client).collect();
    assert_eq!((served.len(), made.len()), (2, 1), "{ours:#?}");
    let (call_ex, local_ex) = (served[0], served[1]);
    assert!(call_ex.head.starts_with(b"GET /call "), "{call_ex:?}");
    assert!(local_ex.head.starts_with(b"GET /local "), "{local_ex:?}");

    // the call out: a child of the /call exchange, inside it in time
    let out = made[0];
    assert!(out.head.starts_with(b"GET /leaf.txt "), "{out:?}");
    assert_eq!(out.remote.port(), back);
    assert_eq!((out.status, out.response_body), (200, 100));
    assert_eq!(out.parent, Some((call_ex.conn_id, call_ex.start_ns)));
    assert!(call_ex.start_ns <= out.start_ns && out.end_ns <= call_ex.end_ns);
    // server exchanges have no parent, and the thread serves nothing once /call ended
    assert_eq!((call_ex.parent, local_ex.parent), (None, None));
    assert_eq!(call_ex.response_body, 100);
}
