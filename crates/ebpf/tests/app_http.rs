//! HTTP/1.x framed in the kernel (`frame_http`, the default) against real servers and clients:
//! one [`AppEvent::Http`] per request and response and traced side, with the sizes a user
//! checks, and the shapes the kernel does not frame falling back to [`AppEvent::Data`].
//!
//! `cargo test --release -p tapline-ebpf --test app_http` as root. Every test traces only its
//! own processes (this test process, which is the raw-socket client, the servers and the curls
//! it starts), so that other traffic on the machine does not move `http_fallbacks()`.

mod app_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use app_support::*;
use tapline_ebpf::app::{
    AppCapture, AppCaptureConfig, AppEvent, DataEvent, Direction, HttpEnd, HttpEvent, PidAction,
    PidFilterMode, Role,
};
use tapline_test_support::netns::require_root;
use tapline_test_support::{eventually, free_port, tempdir, wait_port, ChildGuard};

/// Payload prefix of the capture (the default): the most of a request head a record carries.
const CAPTURE: usize = 256;

/// The capture with HTTP/1.x framing (the default), tracing only this process; servers and
/// clients are added with [`trace`].
fn capture() -> AppCapture {
    let cfg = AppCaptureConfig {
        filter_mode: PidFilterMode::Only,
        include_pids: vec![std::process::id()],
        exclude_self: false,
        ..Default::default()
    };
    assert!(cfg.frame_http, "framing is the default");
    assert_eq!(cfg.capture_bytes as usize, CAPTURE);
    let mut cap = AppCapture::load(&cfg).unwrap();
    cap.attach().unwrap();
    cap
}

fn trace(cap: &mut AppCapture, pid: u32) {
    cap.set_pid_filter(pid, PidAction::Include).unwrap();
}

/// The test server: python3 `http.server` speaking HTTP/1.1 (keep-alive, Nagle off) serving
/// the files of argv[2], with a few routes of its own.
const SERVER_PY: &str = r#"
import http.server as h, sys
port, root = int(sys.argv[1]), sys.argv[2]
CHUNKS = [1, 100, 5000, 70000, 17]
CLOSE_LEN = 30000

def pattern(n):
    return bytes(97 + i % 26 for i in range(n))

class Handler(h.SimpleHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    disable_nagle_algorithm = True

    def __init__(self, *a, **k):
        super().__init__(*a, directory=root, **k)

    def log_message(self, *a):
        pass

    def do_GET(self):
        route = {'/chunked': self.chunked, '/close': self.close_delimited,
                 '/upgrade': self.upgrade, '/hold': self.hold}.get(self.path)
        if route:
            route()
        else:
            super().do_GET()

    def chunked(self):
        # every chunk-size line in a write of its own, the data of a chunk in up to 3 writes
        self.send_response(200)
        self.send_header('Transfer-Encoding', 'chunked')
        self.end_headers()
        w = self.wfile.write
        for n in CHUNKS:
            w(b'%x\r\n' % n)
            data = pattern(n)
            cuts = sorted({0, n // 3, 2 * n // 3, n})
            for a, b in zip(cuts, cuts[1:]):
                w(data[a:b])
            w(b'\r\n')
        w(b'0\r\n\r\n')

    def close_delimited(self):
        # no length: the body ends with the connection
        self.close_connection = True
        self.wfile.write(b'HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n')
        body = pattern(CLOSE_LEN)
        for i in range(0, CLOSE_LEN, 7000):
            self.wfile.write(body[i:i + 7000])

    def upgrade(self):
        # 101, then an echo protocol until the client closes
        self.send_response(101)
        self.send_header('Upgrade', 'echo')
        self.send_header('Connection', 'Upgrade')
        self.end_headers()
        self.close_connection = True
        while True:
            d = self.rfile.read1(65536)
            if not d:
                break
            self.wfile.write(d)

    def hold(self):
        # no response: wait for the client to go
        self.close_connection = True
        try:
            self.rfile.read(1)
        except OSError:
            pass

    def do_POST(self):
        n = 0
        if self.headers.get('Transfer-Encoding', '').lower() == 'chunked':
            while True:
                size = int(self.rfile.readline().split(b';')[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                n += len(self.rfile.read(size))
                self.rfile.readline()
        else:
            n = len(self.rfile.read(int(self.headers.get('Content-Length', '0'))))
        body = b'received %d bytes\n' % n
        self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

class Server(h.ThreadingHTTPServer):
    def handle_error(self, request, address):
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, address)

Server(('127.0.0.1', port), Handler).serve_forever()
"#;

/// Chunk sizes of `/chunked` (CHUNKS in SERVER_PY).
const CHUNKS: [usize; 5] = [1, 100, 5000, 70000, 17];
/// Body length of `/close` (CLOSE_LEN in SERVER_PY).
const CLOSE_LEN: usize = 30000;

/// SERVER_PY on `port` serving `dir`, traced.
fn test_server(cap: &mut AppCapture, dir: &Path, port: u16) -> ChildGuard {
    let child = Command::new("python3")
        .arg("-c")
        .arg(SERVER_PY)
        .arg(port.to_string())
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn python3");
    let child = ChildGuard::adopt("server", child);
    trace(cap, child.id());
    wait_port(port, Duration::from_secs(10));
    child
}

/// curl with `args`, traced from its first instruction (it waits for the filter before it
/// execs). Returns (pid, stdout).
fn traced_curl(cap: &mut AppCapture, args: &[&str]) -> (u32, String) {
    let mut child = Command::new("sh")
        .args(["-c", "read _ && exec curl -s --max-time 20 \"$@\"", "sh"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sh");
    let pid = child.id();
    trace(cap, pid);
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let out = child.wait_with_output().expect("curl");
    assert!(
        out.status.success(),
        "curl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (pid, String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The child processes of `pid` (nginx's worker).
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect()
}

/// Polls the capture until `done` holds for the events on `port` (at most `within`), then
/// 500 ms more (a record that should not be there has time to show); the events on `port`.
fn collect(
    cap: &mut AppCapture,
    port: u16,
    within: Duration,
    done: impl Fn(&[AppEvent]) -> bool,
) -> Vec<AppEvent> {
    let mut events = Vec::new();
    collect_until(cap, &mut events, within, Duration::from_millis(500), |evs| {
        done(&on_port(evs, port))
    });
    on_port(&events, port)
}

fn http_records(events: &[AppEvent]) -> Vec<&HttpEvent> {
    events
        .iter()
        .filter_map(|e| match e {
            AppEvent::Http(h) => Some(h),
            _ => None,
        })
        .collect()
}

/// The Http records of one side (`role`) of the connection from local port `client_port`.
fn side(events: &[AppEvent], client_port: u16, role: Role) -> Vec<&HttpEvent> {
    http_records(events)
        .into_iter()
        .filter(|h| h.role == role)
        .filter(|h| match role {
            Role::Client => h.local.port() == client_port,
            _ => h.remote.port() == client_port,
        })
        .collect()
}

fn count_http(events: &[AppEvent]) -> usize {
    http_records(events).len()
}

/// One line per event, for failure messages.
fn describe(events: &[AppEvent]) -> String {
    let text = |b: &[u8]| String::from_utf8_lossy(&b[..b.len().min(48)]).into_owned();
    events
        .iter()
        .map(|e| match e {
            AppEvent::Http(h) => format!(
                "Http {:?} pid {} {}->{} status {} {:?} req {}+{} resp {}+{} {:?} head {:?}",
                h.role,
                h.pid,
                h.local,
                h.remote,
                h.status,
                h.end,
                h.request_head_len,
                h.request_body,
                h.response_head_len,
                h.response_body,
                h.syscall,
                text(&h.head)
            ),
            AppEvent::Data(d) => format!(
                "Data {:?} {:?} pid {} {}->{} {:?} {} bytes {:?}",
                d.role,
                d.direction,
                d.pid,
                d.local,
                d.remote,
                d.syscall,
                d.bytes,
                text(&d.data)
            ),
            other => format!("{other:?}"),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// What one record must say.
struct Want<'a> {
    role: Role,
    /// The request line (without its CRLF).
    line: &'a str,
    /// The request head's length, when the test knows it.
    head_len: Option<usize>,
    status: u16,
    end: HttpEnd,
    request_body: u64,
    response_body: u64,
    /// The final response head's length, when the test knows it.
    response_head: Option<usize>,
}

fn check(h: &HttpEvent, w: &Want, all: &[AppEvent]) {
    let ctx = || format!("record {h:?}\nevents:\n{}", describe(all));
    assert_eq!(h.role, w.role, "{}", ctx());
    assert_eq!(h.status, w.status, "status; {}", ctx());
    assert_eq!(h.end, w.end, "end; {}", ctx());
    assert_eq!(h.request_body, w.request_body, "request body; {}", ctx());
    assert_eq!(h.response_body, w.response_body, "response body; {}", ctx());
    let line = format!("{}\r\n", w.line);
    assert!(h.head.starts_with(line.as_bytes()), "request line; {}", ctx());
    let head_len = h.request_head_len as usize;
    if let Some(n) = w.head_len {
        assert_eq!(head_len, n, "request head length; {}", ctx());
    }
    assert_eq!(h.head.len(), head_len.min(CAPTURE), "head bytes; {}", ctx());
    if head_len <= CAPTURE {
        assert!(h.head.ends_with(b"\r\n\r\n"), "the whole head; {}", ctx());
    }
    if let Some(n) = w.response_head {
        assert_eq!(h.response_head_len as usize, n, "response head; {}", ctx());
    }
    if w.status != 0 {
        assert!(h.response_head_len > 0, "response head; {}", ctx());
    } else {
        assert_eq!(h.response_head_len, 0, "no response head; {}", ctx());
    }
    assert!(h.start_ns > 0 && h.start_ns <= h.end_ns, "times; {}", ctx());
    let comm = h.comm_str();
    assert!(!comm.is_empty(), "comm; {}", ctx());
}

/// Asserts that the connection's events are its Http records only (no Data, no
/// Accept/Connect/Close).
fn only_http(events: &[AppEvent]) {
    let other: Vec<AppEvent> = events
        .iter()
        .filter(|e| !matches!(e, AppEvent::Http(_)))
        .cloned()
        .collect();
    assert!(
        other.is_empty(),
        "a framed connection has Http records only:\n{}",
        describe(events)
    );
}

// ---- the raw-socket client (this process) ----

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

fn request(method: &str, path: &str, extra: &str) -> String {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: tapline-app-http-test\r\n\
         Accept: */*\r\n{extra}\r\n"
    )
}

/// Reads into `buf` until `done(buf)` (or panics at EOF).
fn read_until(s: &mut TcpStream, buf: &mut Vec<u8>, done: impl Fn(&[u8]) -> bool) {
    let mut chunk = vec![0u8; 256 << 10];
    while !done(buf) {
        let n = s.read(&mut chunk).expect("read");
        assert!(n > 0, "EOF after {} bytes", buf.len());
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// A response read by the client.
#[derive(Debug)]
struct Response {
    status: u16,
    head_len: usize,
    /// The bytes after the head.
    body: Vec<u8>,
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

/// Reads one response head, then its body as `body_done(head, body)` says.
fn read_response_with(
    s: &mut TcpStream,
    body_done: impl Fn(&str, &[u8]) -> bool,
) -> Response {
    let mut buf = Vec::new();
    read_until(s, &mut buf, |b| head_end(b).is_some());
    let head_len = head_end(&buf).unwrap();
    let head = String::from_utf8_lossy(&buf[..head_len]).into_owned();
    read_until(s, &mut buf, |b| body_done(&head, &b[head_len..]));
    let status = head[9..12].parse().unwrap();
    Response {
        status,
        head_len,
        body: buf[head_len..].to_vec(),
    }
}

/// A response with a Content-Length (or none: no body).
fn read_response(s: &mut TcpStream) -> Response {
    let r = read_response_with(s, |head, body| {
        let len: usize = header(head, "content-length").map_or(0, |v| v.parse().unwrap());
        body.len() >= len
    });
    r
}

/// A chunked response: up to the last chunk and the blank line (the bodies here are letters).
fn read_chunked(s: &mut TcpStream) -> Response {
    read_response_with(s, |_, body| body.ends_with(b"\r\n0\r\n\r\n"))
}

/// The data size of a chunked body.
fn dechunk(mut body: &[u8]) -> usize {
    let mut total = 0;
    loop {
        let eol = body.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(std::str::from_utf8(&body[..eol]).unwrap(), 16).unwrap();
        if size == 0 {
            return total;
        }
        total += size;
        body = &body[eol + 2 + size + 2..];
    }
}

/// tx_queue and rx_queue of the IPv4 TCP socket `local` -> `remote` (/proc/net/tcp).
fn tcp_queues(local: SocketAddr, remote: SocketAddr) -> Option<(u64, u64)> {
    let key = |a: SocketAddr| match a {
        SocketAddr::V4(a) => format!(
            "{:08X}:{:04X}",
            u32::from_ne_bytes(a.ip().octets()),
            a.port()
        ),
        SocketAddr::V6(_) => unreachable!("IPv4 only"),
    };
    let (l, r) = (key(local), key(remote));
    let text = std::fs::read_to_string("/proc/net/tcp").ok()?;
    text.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 5 || f[1] != l || f[2] != r {
            return None;
        }
        let (tx, rx) = f[4].split_once(':')?;
        Some((
            u64::from_str_radix(tx, 16).ok()?,
            u64::from_str_radix(rx, 16).ok()?,
        ))
    })
}

/// Waits until the server has read every byte `s` sent: the next write comes to it in a read
/// of its own.
fn wait_consumed(s: &TcpStream) {
    let (l, r) = (s.local_addr().unwrap(), s.peer_addr().unwrap());
    eventually(
        "the server to read what the client sent",
        Duration::from_secs(5),
        || {
            let (tx, _) = tcp_queues(l, r)?;
            let (_, rx) = tcp_queues(r, l)?;
            (tx == 0 && rx == 0).then_some(())
        },
    );
}

/// Closes `s` with a reset (SO_LINGER 0).
fn reset(s: TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket fd and a `linger` of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
    drop(s);
}

fn data_events(events: &[AppEvent], role: Role, dir: Direction) -> Vec<&DataEvent> {
    data(events)
        .filter(|d| d.role == role && d.direction == dir)
        .collect()
}

/// The bytes of `role`'s data records in `dir`: (sum of the calls' sizes, the captured bytes
/// concatenated).
fn data_bytes(events: &[AppEvent], role: Role, dir: Direction) -> (i64, Vec<u8>) {
    let ds = data_events(events, role, dir);
    (
        ds.iter().map(|d| d.bytes).sum(),
        ds.iter().flat_map(|d| d.data.iter().copied()).collect(),
    )
}

// ---- the cases ----

/// 1. python http.server (Content-Length, keep-alive) and curl: N requests on one connection
/// give exactly N records on each side.
#[test]
fn keep_alive_python_and_curl() {
    require_root();
    let _serial = serial();
    let tmp = tempdir("http-ka");
    let dir = tmp.path().to_path_buf();
    const SIZE: usize = 10_000;
    const N: usize = 3;
    write_file(&dir.join("file.bin"), SIZE);
    let port = free_port();
    let mut cap = capture();
    let server = python_server(&dir, port);
    let spid = server.id();
    trace(&mut cap, spid);
    let fallbacks = cap.http_fallbacks();

    let url = format!("http://127.0.0.1:{port}/file.bin");
    let mut args = Vec::new();
    for _ in 0..N {
        args.extend(["-o", "/dev/null"]);
    }
    args.extend(["-w", "%{http_code} %{size_header} %{size_download}\n"]);
    for _ in 0..N {
        args.push(&url);
    }
    let (curl_pid, out) = traced_curl(&mut cap, &args);
    let lines: Vec<Vec<usize>> = out
        .lines()
        .map(|l| l.split_whitespace().map(|n| n.parse().unwrap()).collect())
        .collect();
    assert_eq!(lines.len(), N, "{out}");
    for l in &lines {
        assert_eq!((l[0], l[2]), (200, SIZE), "{out}");
    }

    let events = collect(&mut cap, port, Duration::from_secs(10), |evs| {
        count_http(evs) >= 2 * N
    });
    only_http(&events);
    let client = http_records(&events)
        .into_iter()
        .filter(|h| h.role == Role::Client)
        .collect::<Vec<_>>();
    assert_eq!(client.len(), N, "client records:\n{}", describe(&events));
    let client_port = client[0].local.port();
    let server_side = side(&events, client_port, Role::Server);
    assert_eq!(server_side.len(), N, "server records:\n{}", describe(&events));
    for (i, (c, s)) in client.iter().zip(&server_side).enumerate() {
        let want = |role| Want {
            role,
            line: "GET /file.bin HTTP/1.1",
            head_len: None,
            status: 200,
            end: HttpEnd::Complete,
            request_body: 0,
            response_body: SIZE as u64,
            response_head: Some(lines[i][1]),
        };
        check(c, &want(Role::Client), &events);
        check(s, &want(Role::Server), &events);
        assert_eq!(c.pid, curl_pid);
        assert_eq!(s.pid, spid);
        assert_eq!(c.comm_str(), "curl");
        assert_eq!(s.comm_str(), "python3");
        assert_eq!(c.local.port(), client_port, "one connection");
        assert_eq!(c.request_head_len, s.request_head_len);
        assert_eq!(c.head, s.head);
    }
    assert!(client.windows(2).all(|w| w[0].end_ns <= w[1].start_ns));
    assert_eq!(cap.http_fallbacks() - fallbacks, 0);
    assert_eq!(cap.lost_events(), 0);
}
