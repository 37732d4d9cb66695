//! TLS plaintext capture (libssl uprobes) against real servers and clients (root, real kernel):
//! python `ssl` and nginx HTTPS servers, curl and python clients, all on the system libssl.
//!
//! `cargo test -p tapline-ebpf --test app_tls` as root. Needs python3, curl, openssl (CLI, for
//! the self-signed certificate) and nginx (nginx-light).

mod app_support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use app_support::*;
use tapline_ebpf::app::{
    AppCapture, AppCaptureConfig, AppCaptureError, AppEvent, ConnEvent, DataEvent, Direction, Role,
    Syscall,
};
use tapline_test_support::netns::require_root;
use tapline_test_support::{free_port, tempdir, wait_port, ChildGuard};

/// These tests check the per-call capture: HTTP/1.x framing in the kernel is off (its tests
/// are in tests/app_http.rs).
fn per_call() -> AppCaptureConfig {
    AppCaptureConfig {
        frame_http: false,
        ..Default::default()
    }
}

/// A self-signed certificate + key for 127.0.0.1 in `dir` (`cert.pem`, `key.pem`).
fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("the openssl CLI is needed (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl req failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

/// python3 ThreadingHTTPServer (HTTP/1.1, keep-alive) over TLS, serving `dir`. `env` is added
/// to the child's environment.
fn python_https_server(
    dir: &Path,
    port: u16,
    cert: &Path,
    key: &Path,
    env: &[(&str, &str)],
) -> ChildGuard {
    let code = format!(
        "import functools, ssl, http.server as h\n\
         h.SimpleHTTPRequestHandler.protocol_version = 'HTTP/1.1'\n\
         h.SimpleHTTPRequestHandler.log_message = lambda *a: None\n\
         handler = functools.partial(h.SimpleHTTPRequestHandler, directory={dir:?})\n\
         srv = h.ThreadingHTTPServer(('127.0.0.1', {port}), handler)\n\
         ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n\
         ctx.load_cert_chain({cert:?}, {key:?})\n\
         srv.socket = ctx.wrap_socket(srv.socket, server_side=True)\n\
         srv.serve_forever()\n",
        dir = dir.display().to_string(),
        cert = cert.display().to_string(),
        key = key.display().to_string(),
    );
    let child = Command::new("python3")
        .arg("-c")
        .arg(code)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn python3");
    let child = ChildGuard::adopt("server", child);
    wait_port(port, Duration::from_secs(10));
    child
}

/// nginx (1 worker) serving `dir/www` over TLS on 127.0.0.1:`port`.
fn nginx_https_server(dir: &Path, port: u16, cert: &Path, key: &Path) -> ChildGuard {
    let block = format!(
        "listen 127.0.0.1:{port} ssl; ssl_certificate {}; ssl_certificate_key {}; root {};",
        cert.display(),
        key.display(),
        dir.join("www").display()
    );
    nginx_with_server_block(dir, port, &block)
}

/// A python `ssl` client: `requests` keep-alive GETs of `path` on one connection; prints the
/// total response bytes (status line + headers + body, as sent on the wire in plaintext).
fn python_https_client(port: u16, path: &str, requests: usize) -> (u32, i64) {
    let code = format!(
        "import socket, ssl\n\
         ctx = ssl.create_default_context()\n\
         ctx.check_hostname = False\n\
         ctx.verify_mode = ssl.CERT_NONE\n\
         s = ctx.wrap_socket(socket.create_connection(('127.0.0.1', {port})))\n\
         total = 0\n\
         for i in range({requests}):\n\
         \x20   s.sendall(b'GET {path} HTTP/1.1\\r\\nHost: t\\r\\nUser-Agent: py\\r\\n\\r\\n')\n\
         \x20   buf = b''\n\
         \x20   while b'\\r\\n\\r\\n' not in buf:\n\
         \x20       buf += s.recv(65536)\n\
         \x20   head, body = buf.split(b'\\r\\n\\r\\n', 1)\n\
         \x20   n = int([l.split(b':')[1] for l in head.split(b'\\r\\n') if l.lower().startswith(b'content-length')][0])\n\
         \x20   while len(body) < n:\n\
         \x20       body += s.recv(65536)\n\
         \x20   total += len(head) + 4 + len(body)\n\
         s.close()\n\
         print(total)\n"
    );
    let child = Command::new("python3")
        .arg("-c")
        .arg(code)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python3");
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let total = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    (pid, total)
}

/// Parses curl's `-w '%{size_header} %{size_download}\n'` lines into the total response bytes.
fn response_bytes(stdout: &[u8]) -> i64 {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| {
            l.split_whitespace()
                .map(|n| n.parse::<i64>().unwrap())
                .sum::<i64>()
        })
        .sum()
}

fn conn_event(events: &[AppEvent], f: impl Fn(&AppEvent) -> Option<&ConnEvent>) -> Vec<ConnEvent> {
    events.iter().filter_map(f).cloned().collect()
}

fn tls(events: &[AppEvent]) -> impl Iterator<Item = &DataEvent> {
    data(events).filter(|d| d.is_tls())
}

fn tls_bytes(events: &[AppEvent], pid: u32, conn_id: u64, dir: Direction) -> i64 {
    tls(events)
        .filter(|d| d.pid == pid && d.conn_id == conn_id && d.direction == dir)
        .map(|d| d.bytes)
        .sum()
}

/// Loads + attaches the capture and the TLS probes on every libssl mapped right now.
fn tls_capture() -> AppCapture {
    let mut cap = AppCapture::load(&per_call()).unwrap();
    cap.attach().unwrap();
    let scan = cap.rescan_ssl();
    assert!(scan.errors.is_empty(), "{:?}", scan.errors);
    assert!(scan.processes > 0);
    cap
}

/// Checks one TLS connection from `client_pid` to the server on `port`: plaintext requests
/// starting with `request_line` (`requests` of them) on both ends, with the sockets' conn ids
/// and 4-tuples, exact plaintext sizes, and no socket data events at all on the connection.
/// Returns the server pid.
#[allow(clippy::too_many_arguments)]
fn check_tls_exchange(
    cap: &AppCapture,
    events: &[AppEvent],
    port: u16,
    client_pid: u32,
    client_sys: Syscall,
    server_sys: Syscall,
    request_line: &str,
    requests: usize,
    response: i64,
) -> u32 {
    let connect = conn_event(events, |e| match e {
        AppEvent::Connect(c) if c.pid == client_pid && c.remote.port() == port => Some(c),
        _ => None,
    });
    let connect = connect
        .first()
        .unwrap_or_else(|| panic!("no connect event of client {client_pid}"));
    let client_port = connect.local.port();
    let accept = conn_event(events, |e| match e {
        AppEvent::Accept(c) if c.local.port() == port && c.remote.port() == client_port => Some(c),
        _ => None,
    });
    let accept = accept
        .first()
        .unwrap_or_else(|| panic!("no accept event for client port {client_port}"));
    let spid = accept.pid;
    let events = &on_port(events, client_port)[..];

    // requests in plaintext, client side (egress) and server side (ingress)
    let client_reqs: Vec<&DataEvent> = tls(events)
        .filter(|d| d.pid == client_pid && d.direction == Direction::Egress)
        .filter(|d| d.data.starts_with(request_line.as_bytes()))
        .collect();
    assert_eq!(client_reqs.len(), requests, "client-side TLS requests");
    for d in &client_reqs {
        assert_eq!(d.conn_id, connect.conn_id, "client conn id = the socket's");
        assert_eq!((d.local, d.remote), (connect.local, connect.remote));
        assert_eq!(d.syscall, client_sys);
        assert_eq!(d.role, Role::Client);
        assert!(d.fd >= 0 && !d.tls_socket_unknown());
        assert!(d.start_ns > 0 && d.start_ns <= d.end_ns);
    }
    let server_reqs: Vec<&DataEvent> = tls(events)
        .filter(|d| d.pid == spid && d.direction == Direction::Ingress)
        .filter(|d| d.data.starts_with(request_line.as_bytes()))
        .collect();
    assert_eq!(server_reqs.len(), requests, "server-side TLS requests");
    for d in &server_reqs {
        assert_eq!(d.conn_id, accept.conn_id, "server conn id = the socket's");
        assert_eq!(d.local, SocketAddr::from(([127, 0, 0, 1], port)));
        assert_eq!(d.remote.port(), client_port);
        assert_eq!(d.syscall, server_sys);
        assert_eq!(d.role, Role::Server);
    }
    // responses in plaintext
    assert!(
        tls(events).any(|d| d.pid == spid
            && d.direction == Direction::Egress
            && d.data.starts_with(b"HTTP/1.1 200 OK")),
        "server-side TLS response"
    );
    assert!(
        tls(events).any(|d| d.pid == client_pid
            && d.direction == Direction::Ingress
            && d.data.starts_with(b"HTTP/1.1 200 OK")),
        "client-side TLS response"
    );

    // exact plaintext sizes, both ends agree
    let sent = tls_bytes(events, client_pid, connect.conn_id, Direction::Egress);
    let received = tls_bytes(events, spid, accept.conn_id, Direction::Ingress);
    assert_eq!(sent, received, "request bytes client vs server");
    assert_eq!(
        tls_bytes(events, spid, accept.conn_id, Direction::Egress),
        response,
        "response bytes, server side"
    );
    assert_eq!(
        tls_bytes(events, client_pid, connect.conn_id, Direction::Ingress),
        response,
        "response bytes, client side"
    );
    for d in tls(events) {
        assert_eq!(d.data.len() as i64, d.bytes.min(256), "{d:?}");
    }

    // the encrypted socket bytes are not delivered as data at all
    let raw: Vec<&DataEvent> = data(events)
        .filter(|d| !d.is_tls())
        .filter(|d| d.conn_id == connect.conn_id || d.conn_id == accept.conn_id)
        .collect();
    assert!(
        raw.is_empty(),
        "socket data events on a TLS connection: {raw:?}"
    );
    assert!(cap.tls_skipped_syscalls() > 0);
    assert_eq!(cap.lost_events(), 0);
    spid
}

fn collect_responses(cap: &mut AppCapture, runs: &[(u32, i64)]) -> Vec<AppEvent> {
    let mut events = Vec::new();
    let complete = collect_until(
        cap,
        &mut events,
        Duration::from_secs(15),
        Duration::from_millis(500),
        |evs| {
            runs.iter().all(|&(pid, total)| {
                tls(evs)
                    .filter(|d| d.pid == pid && d.direction == Direction::Ingress)
                    .map(|d| d.bytes)
                    .sum::<i64>()
                    >= total
            })
        },
    );
    if !complete {
        let pids: Vec<u32> = runs.iter().map(|r| r.0).collect();
        let mine: Vec<String> = events
            .iter()
            .filter(|e| pids.contains(&e.pid()))
            .map(|e| match e {
                AppEvent::Data(d) => format!(
                    "data pid={} {:?} {:?} bytes={} conn={:#x} {:?}",
                    d.pid,
                    d.syscall,
                    d.direction,
                    d.bytes,
                    d.conn_id,
                    String::from_utf8_lossy(&d.data[..d.data.len().min(20)])
                ),
                other => format!("{other:?}"),
            })
            .collect();
        panic!(
            "not every TLS response was seen ({} events; runs {runs:?}; lost {}); events of \
             the clients:\n{}",
            events.len(),
            cap.lost_events(),
            mine.join("\n")
        );
    }
    events
}

#[test]
fn python_https_server_with_curl_and_python_clients() {
    require_root();
    let _serial = serial();
    let tmp = tempdir("tls-py");
    let dir = tmp.path().to_path_buf();
    let (cert, key) = self_signed(&dir);
    write_file(&dir.join("small.txt"), 1000);
    write_file(&dir.join("big.bin"), 200_000);
    let port = free_port();
    let server = python_https_server(&dir, port, &cert, &key, &[]);
    let mut cap = tls_capture();
    assert!(
        cap.ssl_libraries()
            .iter()
            .any(|l| l.symbols.contains(&"SSL_read_ex") && l.symbols.contains(&"SSL_write")),
        "{:?}",
        cap.ssl_libraries()
    );

    // curl (started after the attach): 3 keep-alive requests on one connection, then a big one
    let w = "%{size_header} %{size_download}\n";
    let small = format!("https://127.0.0.1:{port}/small.txt");
    let (curl1, out) = curl(&[
        "-k",
        "-o",
        "/dev/null",
        "-o",
        "/dev/null",
        "-o",
        "/dev/null",
        "-w",
        w,
        &small,
        &small,
        &small,
    ]);
    let resp1 = response_bytes(&out.stdout);
    let big = format!("https://127.0.0.1:{port}/big.bin");
    let (curl2, out) = curl(&["-k", "-o", "/dev/null", "-w", w, &big]);
    let resp2 = response_bytes(&out.stdout);
    assert!(resp2 > 200_000);
    // python ssl client: 2 requests on one connection
    let (py, resp3) = python_https_client(port, "/small.txt", 2);

    let events = collect_responses(&mut cap, &[(curl1, resp1), (curl2, resp2), (py, resp3)]);
    let events = on_port(&events, port);
    let spid = server.id();
    for (client, sys, line, n, resp) in [
        (
            curl1,
            Syscall::SslWrite,
            "GET /small.txt HTTP/1.1",
            3,
            resp1,
        ),
        (curl2, Syscall::SslWrite, "GET /big.bin HTTP/1.1", 1, resp2),
        (py, Syscall::SslWriteEx, "GET /small.txt HTTP/1.1", 2, resp3),
    ] {
        let s = check_tls_exchange(
            &cap,
            &events,
            port,
            client,
            sys,
            Syscall::SslReadEx,
            line,
            n,
            resp,
        );
        assert_eq!(s, spid, "served by the python server");
    }
}

#[test]
fn nginx_https_with_curl() {
    require_root();
    let _serial = serial();
    let tmp = tempdir("tls-nginx");
    let dir = tmp.path().to_path_buf();
    let (cert, key) = self_signed(&dir);
    std::fs::create_dir_all(dir.join("www")).unwrap();
    write_file(&dir.join("www/page.html"), 5000);
    write_file(&dir.join("www/big.bin"), 300_000);
    let port = free_port();
    // nginx first: the capture must find its libssl through /proc
    let server = nginx_https_server(&dir, port, &cert, &key);
    let mut cap = tls_capture();

    let w = "%{size_header} %{size_download}\n";
    let mut runs = Vec::new();
    for path in ["page.html", "big.bin"] {
        let url = format!("https://127.0.0.1:{port}/{path}");
        let (pid, out) = curl(&["-k", "-o", "/dev/null", "-w", w, &url]);
        runs.push((
            pid,
            format!("GET /{path} HTTP/1.1"),
            response_bytes(&out.stdout),
        ));
    }
    let totals: Vec<(u32, i64)> = runs.iter().map(|(p, _, t)| (*p, *t)).collect();
    let events = collect_responses(&mut cap, &totals);
    let events = on_port(&events, port);
    for (pid, line, total) in &runs {
        let worker = check_tls_exchange(
            &cap,
            &events,
            port,
            *pid,
            Syscall::SslWrite,
            Syscall::SslRead,
            line,
            1,
            *total,
        );
        assert_ne!(worker, server.id(), "the worker, not the master, serves");
        let comm = std::fs::read_to_string(format!("/proc/{worker}/comm")).unwrap();
        assert_eq!(comm.trim(), "nginx");
    }
}

/// A process using a libssl file that was not mapped by anyone at attach time is covered after
/// `rescan_ssl`; before it, its TLS traffic is (encrypted) socket data and no plaintext.
#[test]
fn rescan_covers_a_library_loaded_later() {
    require_root();
    let _serial = serial();
    let tmp = tempdir("tls-rescan");
    let dir = tmp.path().to_path_buf();
    let (cert, key) = self_signed(&dir);
    write_file(&dir.join("small.txt"), 700);
    let mut cap = tls_capture();

    // the system libssl is attached even if no process mapped it at attach time
    let system = Path::new("/usr/lib/x86_64-linux-gnu/libssl.so.3");
    assert!(
        cap.ssl_libraries()
            .iter()
            .any(|l| l.path == system && l.pid.is_none()),
        "{:?}",
        cap.ssl_libraries()
    );
    // a private copy of it: another file (inode), unknown to the capture
    let libdir = dir.join("lib");
    std::fs::create_dir_all(&libdir).unwrap();
    let copy = libdir.join("libssl.so.3");
    let src = system;
    std::fs::copy(src, &copy).unwrap();
    let port = free_port();
    let _server = python_https_server(
        &dir,
        port,
        &cert,
        &key,
        &[("LD_LIBRARY_PATH", libdir.to_str().unwrap())],
    );
    let spid = _server.id();
    let maps = std::fs::read_to_string(format!("/proc/{spid}/maps")).unwrap();
    assert!(
        maps.contains(copy.to_str().unwrap()),
        "the server did not load the copy"
    );

    let url = format!("https://127.0.0.1:{port}/small.txt");
    let w = "%{size_header} %{size_download}\n";
    let (c1, out) = curl(&["-k", "-o", "/dev/null", "-w", w, &url]);
    let r1 = response_bytes(&out.stdout);
    let events = on_port(&collect_responses(&mut cap, &[(c1, r1)]), port);
    // curl (system libssl) is covered, the server (the copy) is not yet
    assert!(tls(&events).any(|d| d.pid == c1));
    assert!(
        !tls(&events).any(|d| d.pid == spid),
        "server covered before the rescan"
    );
    assert!(
        data(&events).any(|d| d.pid == spid && !d.is_tls()),
        "the server's encrypted socket data is reported while its libssl is not probed"
    );

    let scan = cap.rescan_ssl();
    assert!(scan.errors.is_empty(), "{:?}", scan.errors);
    let lib = scan
        .attached
        .iter()
        .find(|l| l.path == copy)
        .unwrap_or_else(|| panic!("the copy was not attached by the rescan: {scan:?}"));
    assert_eq!(lib.pid, Some(spid));
    // a second rescan attaches nothing new
    assert!(cap.rescan_ssl().attached.iter().all(|l| l.path != copy));

    let (c2, out) = curl(&["-k", "-o", "/dev/null", "-w", w, &url]);
    let r2 = response_bytes(&out.stdout);
    let events = on_port(&collect_responses(&mut cap, &[(c2, r2)]), port);
    let s = check_tls_exchange(
        &cap,
        &events,
        port,
        c2,
        Syscall::SslWrite,
        Syscall::SslReadEx,
        "GET /small.txt HTTP/1.1",
        1,
        r2,
    );
    assert_eq!(s, spid);
}

/// Plain HTTP is unaffected by the TLS probes: its data is reported as socket data, no TLS
/// events appear.
#[test]
fn no_tls_events_without_libssl() {
    require_root();
    let _serial = serial();
    let tmp = tempdir("tls-plain");
    let dir = tmp.path().to_path_buf();
    write_file(&dir.join("a.txt"), 800);
    let port = free_port();
    let _server = python_server(&dir, port);
    let mut cap = tls_capture();
    assert!(!cap.ssl_libraries().is_empty());
    let url = format!("http://127.0.0.1:{port}/a.txt");
    let (pid, out) = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{size_header} %{size_download}\n",
        &url,
    ]);
    let total = response_bytes(&out.stdout);
    let mut events = Vec::new();
    let complete = collect_until(
        &mut cap,
        &mut events,
        Duration::from_secs(15),
        Duration::from_millis(500),
        |evs| {
            data(evs)
                .filter(|d| d.pid == pid && d.direction == Direction::Ingress)
                .map(|d| d.bytes)
                .sum::<i64>()
                == total
        },
    );
    assert!(complete, "plain HTTP response not seen");
    let events = on_port(&events, port);
    assert_eq!(
        tls(&events).count(),
        0,
        "TLS events on a plain HTTP connection"
    );
    assert!(data(&events)
        .any(|d| d.pid == pid && d.data.starts_with(b"GET /a.txt HTTP/1.1") && !d.is_tls()));
}

/// Waits up to 10 s for the host-wide count of threads inside an `SSL_*` call to be `want`.
fn wait_ssl_calls(cap: &AppCapture, want: i64) -> i64 {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let n = cap.ssl_calls_in_flight();
        if n == want || std::time::Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The count of threads inside an `SSL_*` call (while it is 0 the socket programs skip the
/// thread-local lookup) follows a server thread that blocks in `SSL_read` on a kept-alive
/// connection, and drops again when that thread is killed inside the call.
#[test]
fn ssl_calls_in_flight_follow_blocked_and_killed_threads() {
    require_root();
    let _serial = serial();
    let tmp = tempdir("tls-inflight");
    let dir = tmp.path().to_path_buf();
    write_file(&dir.join("a.txt"), 300);
    let (cert, key) = self_signed(&dir);
    let port = free_port();
    let mut server = python_https_server(&dir, port, &cert, &key, &[]);
    let cap = tls_capture();
    let base = cap.ssl_calls_in_flight();
    assert!(base >= 0);
    // one request, then the connection stays open: the server's handler thread waits for
    // the next request inside SSL_read
    let code = format!(
        "import socket, ssl, time\n\
         ctx = ssl.create_default_context()\n\
         ctx.check_hostname = False\n\
         ctx.verify_mode = ssl.CERT_NONE\n\
         s = ctx.wrap_socket(socket.create_connection(('127.0.0.1', {port})))\n\
         s.sendall(b'GET /a.txt HTTP/1.1\\r\\nHost: t\\r\\n\\r\\n')\n\
         buf = b''\n\
         while len(buf) < 300 or b'\\r\\n\\r\\n' not in buf:\n\
         \x20   buf += s.recv(65536)\n\
         print('done', flush=True)\n\
         time.sleep(60)\n"
    );
    let mut client = Command::new("python3")
        .arg("-c")
        .arg(code)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn python3");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(client.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let _client = ChildGuard::adopt("client", client);
    assert_eq!(line.trim(), "done", "the TLS request did not complete");
    assert_eq!(
        wait_ssl_calls(&cap, base + 1),
        base + 1,
        "the server thread blocked in SSL_read"
    );
    server.kill();
    assert_eq!(
        wait_ssl_calls(&cap, base),
        base,
        "after the server was killed inside SSL_read"
    );
}

/// Attach errors name the library, the pid and the symbol; a file is attached once whatever
/// the path.
#[test]
fn attach_errors_and_dedup() {
    require_root();
    let _serial = serial();
    let mut cap = AppCapture::load(&per_call()).unwrap();

    let missing = Path::new("/nonexistent/libssl.so.3");
    let e = cap.attach_ssl(None, missing).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/libssl.so.3"), "{e}");
    let me = std::process::id();
    let e = cap.attach_ssl(Some(me), missing).unwrap_err();
    assert!(
        e.to_string().contains(&format!("pid {me}")) && e.to_string().contains("libssl"),
        "{e}"
    );
    // a binary without libssl symbols
    let e = cap.attach_ssl(None, Path::new("/bin/true")).unwrap_err();
    let AppCaptureError::Uprobe { symbol, .. } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(symbol, "SSL_read");
    assert!(e.to_string().contains("/bin/true"), "{e}");
    assert!(cap.ssl_libraries().is_empty());

    let a = Path::new("/usr/lib/x86_64-linux-gnu/libssl.so.3");
    let b = Path::new("/lib/x86_64-linux-gnu/libssl.so.3");
    assert!(cap.attach_ssl(None, a).unwrap());
    assert!(!cap.attach_ssl(None, b).unwrap(), "same file, other path");
    assert!(!cap.attach_ssl(Some(me), a).unwrap());
    assert_eq!(cap.ssl_libraries().len(), 1);
    assert_eq!(cap.ssl_libraries()[0].symbols.len(), 5);
    cap.detach_ssl().unwrap();
    assert!(cap.ssl_libraries().is_empty());
    assert!(cap.attach_ssl(None, b).unwrap());
}

/// A TLS connection established (handshake done) before the capture: the socket is learnt from
/// the first syscall inside an `SSL_*` call after the attach.
#[test]
fn tls_connection_older_than_the_capture() {
    use std::io::{BufRead, BufReader, Write};
    require_root();
    let _serial = serial();
    let tmp = tempdir("tls-old");
    let dir = tmp.path().to_path_buf();
    let (cert, key) = self_signed(&dir);
    write_file(&dir.join("o.txt"), 300);
    let port = free_port();
    let _server = python_https_server(&dir, port, &cert, &key, &[]);
    let spid = _server.id();
    // handshake now, print the local port, then one request per stdin line
    let code = format!(
        "import socket, ssl, sys\n\
         ctx = ssl.create_default_context()\n\
         ctx.check_hostname = False\n\
         ctx.verify_mode = ssl.CERT_NONE\n\
         s = ctx.wrap_socket(socket.create_connection(('127.0.0.1', {port})))\n\
         s.settimeout(10)\n\
         print(s.getsockname()[1], flush=True)\n\
         for line in sys.stdin:\n\
         \x20   s.sendall(b'GET /o.txt HTTP/1.1\\r\\nHost: t\\r\\n\\r\\n')\n\
         \x20   buf = b''\n\
         \x20   while b'\\r\\n\\r\\n' not in buf:\n\
         \x20       buf += s.recv(65536)\n\
         \x20   head, body = buf.split(b'\\r\\n\\r\\n', 1)\n\
         \x20   n = int([l.split(b':')[1] for l in head.split(b'\\r\\n') if l.lower().startswith(b'content-length')][0])\n\
         \x20   while len(body) < n:\n\
         \x20       body += s.recv(65536)\n\
         \x20   print(len(head) + 4 + len(body), flush=True)\n"
    );
    let child = Command::new("python3")
        .arg("-c")
        .arg(code)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut client = ChildGuard::adopt("server", child);
    let cpid = client.id();
    let mut stdin = client.child().stdin.take().unwrap();
    let mut lines = BufReader::new(client.child().stdout.take().unwrap()).lines();
    let client_port: u16 = lines.next().unwrap().unwrap().trim().parse().unwrap();

    let mut cap = tls_capture();
    let mut sizes = Vec::new();
    for _ in 0..2 {
        stdin.write_all(b"go\n").unwrap();
        sizes.push(
            lines
                .next()
                .unwrap()
                .unwrap()
                .trim()
                .parse::<i64>()
                .unwrap(),
        );
    }
    let total: i64 = sizes.iter().sum();
    let events = on_port(&collect_responses(&mut cap, &[(cpid, total)]), client_port);

    let reqs: Vec<&DataEvent> = tls(&events)
        .filter(|d| d.pid == cpid && d.direction == Direction::Egress)
        .collect();
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    for d in &reqs {
        assert!(d.data.starts_with(b"GET /o.txt HTTP/1.1"));
        assert!(d.fd >= 0 && !d.tls_socket_unknown(), "{d:?}");
        assert_eq!(d.local, SocketAddr::from(([127, 0, 0, 1], client_port)));
        assert_eq!(d.remote, SocketAddr::from(([127, 0, 0, 1], port)));
        assert_eq!(d.role, Role::Unknown, "connected before the capture");
        assert_eq!(d.conn_id, reqs[0].conn_id);
    }
    assert_eq!(
        tls_bytes(&events, cpid, reqs[0].conn_id, Direction::Ingress),
        total
    );
    // the server thread was already blocked in SSL_read_ex for the first request (its entry
    // was not seen): the second request at least is reported, on the server's socket
    let server_reqs: Vec<&DataEvent> = tls(&events)
        .filter(|d| d.pid == spid && d.direction == Direction::Ingress)
        .collect();
    assert!(!server_reqs.is_empty());
    for d in server_reqs {
        assert!(d.data.starts_with(b"GET /o.txt HTTP/1.1"));
        assert_eq!(d.remote.port(), client_port);
        assert!(d.fd >= 0);
    }
    // the server's SSL_read_ex in progress at attach time read the rest of the record through
    // a syscall that is not known to be inside libssl: that ciphertext is reported as socket
    // data, but only until the socket is recognised (first TLS event of the process on it)
    for d in data(&events).filter(|d| !d.is_tls()) {
        assert_eq!(
            d.pid, spid,
            "client socket data on the TLS connection: {d:?}"
        );
        assert!(
            !tls(&events)
                .any(|t| t.pid == d.pid && t.conn_id == d.conn_id && t.end_ns < d.start_ns),
            "socket data after the socket was recognised as TLS: {d:?}"
        );
    }
    drop(stdin);
}

/// The pid filter applies to the TLS events: in `Only` mode with the server's pid, curl's
/// plaintext is not reported, the server's is.
#[test]
fn pid_filter_applies_to_tls() {
    require_root();
    let _serial = serial();
    let tmp = tempdir("tls-filter");
    let dir = tmp.path().to_path_buf();
    let (cert, key) = self_signed(&dir);
    write_file(&dir.join("f.txt"), 100);
    let port = free_port();
    let server = python_https_server(&dir, port, &cert, &key, &[]);
    let spid = server.id();
    let cfg = AppCaptureConfig {
        frame_http: false,
        filter_mode: tapline_ebpf::app::PidFilterMode::Only,
        include_pids: vec![spid],
        ..Default::default()
    };
    let mut cap = AppCapture::load(&cfg).unwrap();
    cap.attach().unwrap();
    assert!(cap.rescan_ssl().errors.is_empty());
    let url = format!("https://127.0.0.1:{port}/f.txt");
    let (cpid, _) = curl(&["-k", "-o", "/dev/null", &url]);
    let mut events = Vec::new();
    let seen = collect_until(
        &mut cap,
        &mut events,
        Duration::from_secs(15),
        Duration::from_millis(300),
        |evs| tls(evs).any(|d| d.pid == spid && d.direction == Direction::Egress),
    );
    assert!(seen, "server TLS response not seen");
    let events = on_port(&events, port);
    assert!(tls(&events).any(|d| d.pid == spid && d.data.starts_with(b"GET /f.txt HTTP/1.1")));
    assert!(
        !events.iter().any(|e| e.pid() == cpid),
        "curl is filtered out"
    );
}

/// Per-process probes fire only in their process; attaching the same file for all processes
/// replaces them (no duplicate events).
#[test]
fn per_process_probes() {
    require_root();
    let _serial = serial();
    let tmp = tempdir("tls-scoped");
    let dir = tmp.path().to_path_buf();
    let (cert, key) = self_signed(&dir);
    write_file(&dir.join("p.txt"), 400);
    let port = free_port();
    let server = python_https_server(&dir, port, &cert, &key, &[]);
    let spid = server.id();
    let mut cap = AppCapture::load(&per_call()).unwrap();
    cap.attach().unwrap();
    let scan = cap.rescan_ssl_for_pids(&[spid]);
    assert!(scan.errors.is_empty(), "{:?}", scan.errors);
    assert_eq!(scan.processes, 1);
    assert_eq!(scan.attached.len(), 1, "{scan:?}");
    assert_eq!(scan.attached[0].only_pid, Some(spid));
    assert!(cap.rescan_ssl_for_pids(&[spid]).attached.is_empty());

    let url = format!("https://127.0.0.1:{port}/p.txt");
    let w = "%{size_header} %{size_download}\n";
    let (c1, _) = curl(&["-k", "-o", "/dev/null", "-w", w, &url]);
    let mut events = Vec::new();
    let seen = collect_until(
        &mut cap,
        &mut events,
        Duration::from_secs(15),
        Duration::from_millis(500),
        |evs| tls(evs).any(|d| d.pid == spid && d.direction == Direction::Egress),
    );
    assert!(seen, "server TLS events not seen");
    let events = on_port(&events, port);
    assert!(!tls(&events).any(|d| d.pid == c1), "curl is not probed");
    assert!(
        data(&events).any(|d| d.pid == c1 && !d.is_tls()),
        "curl's ciphertext is socket data"
    );
    assert_eq!(
        tls(&events)
            .filter(|d| d.pid == spid && d.data.starts_with(b"GET /p.txt HTTP/1.1"))
            .count(),
        1
    );

    // the whole file: replaces the per-process probes
    let lib = cap.ssl_libraries()[0].clone();
    assert!(cap.attach_ssl(Some(spid), &lib.path).unwrap());
    assert_eq!(cap.ssl_libraries().len(), 1);
    assert_eq!(cap.ssl_libraries()[0].only_pid, None);
    assert!(!cap.attach_ssl_for_pid(spid, &lib.path).unwrap());
    let (c2, out) = curl(&["-k", "-o", "/dev/null", "-w", w, &url]);
    let r2 = response_bytes(&out.stdout);
    let events = on_port(&collect_responses(&mut cap, &[(c2, r2)]), port);
    check_tls_exchange(
        &cap,
        &events,
        port,
        c2,
        Syscall::SslWrite,
        Syscall::SslReadEx,
        "GET /p.txt HTTP/1.1",
        1,
        r2,
    );
    // per-process rescans leave whole-file probes alone
    cap.rescan_ssl_for_pids(&[]);
    assert_eq!(cap.ssl_libraries().len(), 1);
}
