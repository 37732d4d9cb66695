//! HTTP/1.x framed in the kernel (`frame_http`, the default) against real servers and clients:
//! one [`AppEvent::Http`] per request and response and traced side, with the sizes a user
//! checks, and the shapes the kernel does not frame falling back to [`AppEvent::Data`].
//!
//! `cargo test --release -p tapline-ebpf --test app_http` as root. Every test traces only its
//! own processes (this test process, which is the raw-socket client, the servers and the curls
//! it starts), so that other traffic on the machine does not move `http_fallbacks()`. When a
//! test needs a server to read a write on its own, it waits for the bytes to leave the
//! client's send queue and the server's receive queue (/proc/net/tcp), not for a timer.

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
    PidFilterMode, Role, Syscall,
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
PARTIAL_LEN, PARTIAL_PROMISED = 100000, 1000000

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
                 '/upgrade': self.upgrade, '/hold': self.hold,
                 '/pieces': self.pieces, '/many-chunks': self.many_chunks,
                 '/te-gzip': self.te_gzip, '/partial': self.partial}.get(self.path)
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

    def pieces(self):
        # the head in four writes (status line, headers, blank line), then the body
        for part in [b'HTTP/1.1 200 OK\r\n', b'Content-Length: 5\r\n',
                     b'Content-Type: text/plain\r\n', b'\r\n', b'hello']:
            self.wfile.write(part)

    def many_chunks(self):
        # the head, then 12 chunks of 10 bytes and the last chunk in one write
        self.send_response(200)
        self.send_header('Transfer-Encoding', 'chunked')
        self.end_headers()
        self.wfile.write(b'a\r\n0123456789\r\n' * 12 + b'0\r\n\r\n')

    def te_gzip(self):
        # a transfer coding other than chunked alone (the bytes are not really gzip)
        self.wfile.write(b'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n'
                         b'5\r\nhello\r\n0\r\n\r\n')

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

    def do_CONNECT(self):
        # a tunnel: 200, then an echo until the client closes
        self.send_response(200, 'Connection Established')
        self.end_headers()
        self.close_connection = True
        while True:
            d = self.rfile.read1(65536)
            if not d:
                break
            self.wfile.write(d)

    def partial(self):
        # a head promising PARTIAL_PROMISED bytes, PARTIAL_LEN of them, then wait for the
        # client to go
        self.close_connection = True
        self.send_response(200)
        self.send_header('Content-Length', str(PARTIAL_PROMISED))
        self.end_headers()
        self.wfile.write(pattern(PARTIAL_LEN))
        try:
            while self.rfile.read1(65536):
                pass
        except OSError:
            pass

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
/// The body bytes `/partial` sends of the 1000000 its head promises (PARTIAL_LEN).
const PARTIAL_LEN: usize = 100000;

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
    collect_until(
        cap,
        &mut events,
        within,
        Duration::from_millis(500),
        |evs| done(&on_port(evs, port)),
    );
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

/// How `h` differs from `w` (empty: not at all).
fn mismatches(h: &HttpEvent, w: &Want) -> Vec<String> {
    let mut bad = Vec::new();
    let mut expect = |what: &str, got: String, want: String| {
        if got != want {
            bad.push(format!("{what}: got {got}, want {want}"));
        }
    };
    expect("role", format!("{:?}", h.role), format!("{:?}", w.role));
    expect("status", h.status.to_string(), w.status.to_string());
    expect("end", format!("{:?}", h.end), format!("{:?}", w.end));
    expect(
        "request_body",
        h.request_body.to_string(),
        w.request_body.to_string(),
    );
    expect(
        "response_body",
        h.response_body.to_string(),
        w.response_body.to_string(),
    );
    let line = format!("{}\r\n", w.line);
    expect(
        "head starts with the request line",
        h.head.starts_with(line.as_bytes()).to_string(),
        "true".into(),
    );
    let head_len = h.request_head_len as usize;
    if let Some(n) = w.head_len {
        expect("request_head_len", head_len.to_string(), n.to_string());
    }
    expect(
        "head bytes",
        h.head.len().to_string(),
        head_len.min(CAPTURE).to_string(),
    );
    if head_len <= CAPTURE {
        expect(
            "head ends with its blank line",
            h.head.ends_with(b"\r\n\r\n").to_string(),
            "true".into(),
        );
    }
    match w.response_head {
        Some(n) => expect(
            "response_head_len",
            h.response_head_len.to_string(),
            n.to_string(),
        ),
        None => expect(
            "a response head",
            (h.response_head_len > 0).to_string(),
            (w.status != 0).to_string(),
        ),
    }
    expect(
        "0 < start_ns <= end_ns",
        (h.start_ns > 0 && h.start_ns <= h.end_ns).to_string(),
        "true".into(),
    );
    expect(
        "a comm",
        (!h.comm_str().is_empty()).to_string(),
        "true".into(),
    );
    bad
}

fn check(h: &HttpEvent, w: &Want, all: &[AppEvent]) {
    let bad = mismatches(h, w);
    assert!(
        bad.is_empty(),
        "{}\nrecord {h:?}\nevents:\n{}",
        bad.join("\n"),
        describe(all)
    );
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

/// A client connection of this process: the stream, and bytes read but not consumed yet.
struct Conn {
    s: TcpStream,
    pending: Vec<u8>,
}

impl std::ops::Deref for Conn {
    type Target = TcpStream;
    fn deref(&self) -> &TcpStream {
        &self.s
    }
}

impl std::ops::DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut TcpStream {
        &mut self.s
    }
}

fn connect(port: u16) -> Conn {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_nodelay(true).unwrap();
    Conn {
        s,
        pending: Vec::new(),
    }
}

fn request(method: &str, path: &str, extra: &str) -> String {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: tapline-app-http-test\r\n\
         Accept: */*\r\n{extra}\r\n"
    )
}

/// Reads (up to `max` bytes a read) into `c.pending` until `done(pending)`; panics at EOF.
fn read_until_max(c: &mut Conn, max: usize, done: impl Fn(&[u8]) -> bool) {
    let mut chunk = vec![0u8; max];
    while !done(&c.pending) {
        let n = c.s.read(&mut chunk).expect("read");
        assert!(n > 0, "EOF after {} bytes", c.pending.len());
        c.pending.extend_from_slice(&chunk[..n]);
    }
}

/// Reads into `c.pending` until `done(pending)`, with a buffer larger than any response
/// here: each read takes all the bytes that have arrived.
fn read_until(c: &mut Conn, done: impl Fn(&[u8]) -> bool) {
    read_until_max(c, 4 << 20, done)
}

/// Everything up to the server's end of the stream (reads as large as [`read_until`]'s).
fn read_to_eof(c: &mut Conn) -> Vec<u8> {
    let mut chunk = vec![0u8; 4 << 20];
    loop {
        let n = c.s.read(&mut chunk).expect("read");
        if n == 0 {
            return std::mem::take(&mut c.pending);
        }
        c.pending.extend_from_slice(&chunk[..n]);
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

/// Reads one response head, then its body, whose length `body_len(head, body so far)` says
/// once it can; the bytes after the response stay in `c.pending`.
fn read_response_with(c: &mut Conn, body_len: impl Fn(&str, &[u8]) -> Option<usize>) -> Response {
    read_until(c, |b| head_end(b).is_some());
    let head_len = head_end(&c.pending).unwrap();
    let head = String::from_utf8_lossy(&c.pending[..head_len]).into_owned();
    read_until(c, |b| {
        body_len(&head, &b[head_len..]).is_some_and(|n| b.len() >= head_len + n)
    });
    let n = body_len(&head, &c.pending[head_len..]).unwrap();
    let rest = c.pending.split_off(head_len + n);
    let msg = std::mem::replace(&mut c.pending, rest);
    Response {
        status: head[9..12].parse().unwrap(),
        head_len,
        body: msg[head_len..].to_vec(),
    }
}

/// A response with a Content-Length (or none: no body).
fn read_response(c: &mut Conn) -> Response {
    read_response_with(c, |head, _| {
        Some(header(head, "content-length").map_or(0, |v| v.parse().unwrap()))
    })
}

/// The length of the chunked body at the start of `body` (its chunks, the last chunk and the
/// blank line), once it is all there.
fn chunked_len(body: &[u8]) -> Option<usize> {
    let mut at = 0;
    loop {
        let eol = at + body.get(at..)?.windows(2).position(|w| w == b"\r\n")?;
        let line = std::str::from_utf8(&body[at..eol]).unwrap();
        let size = usize::from_str_radix(line.split(';').next().unwrap(), 16).unwrap();
        at = eol + 2 + size + 2;
        if size == 0 {
            return (body.len() >= at).then_some(at);
        }
    }
}

/// A chunked response.
fn read_chunked(c: &mut Conn) -> Response {
    read_response_with(c, |_, body| chunked_len(body))
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

/// The /proc/net/tcp entry of the IPv4 TCP socket `local` -> `remote`: (state, tx_queue,
/// rx_queue).
fn tcp_entry(local: SocketAddr, remote: SocketAddr) -> Option<(u8, u64, u64)> {
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
            u8::from_str_radix(f[3], 16).ok()?,
            u64::from_str_radix(tx, 16).ok()?,
            u64::from_str_radix(rx, 16).ok()?,
        ))
    })
}

fn tcp_queues(local: SocketAddr, remote: SocketAddr) -> Option<(u64, u64)> {
    tcp_entry(local, remote).map(|(_, tx, rx)| (tx, rx))
}

/// TIME_WAIT in /proc/net/tcp.
const TCP_TIME_WAIT: u8 = 6;

/// Waits until both ends of the connection `client` -> `server` are closed (the client's in
/// TIME_WAIT or gone, the server's gone): every record made at the close is out.
fn wait_closed(client: SocketAddr, server: SocketAddr) {
    eventually(
        "both ends of the connection to close",
        Duration::from_secs(10),
        || {
            let c = tcp_entry(client, server);
            let s = tcp_entry(server, client);
            let done =
                s.is_none_or(|e| e.0 == TCP_TIME_WAIT) && c.is_none_or(|e| e.0 == TCP_TIME_WAIT);
            if done {
                Ok(())
            } else {
                Err(format!("client {c:?}, server {s:?}"))
            }
        },
    );
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
fn reset(s: Conn) {
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

/// Case 1: python http.server (Content-Length, keep-alive) and curl: N requests on one connection
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
    assert_eq!(
        server_side.len(),
        N,
        "server records:\n{}",
        describe(&events)
    );
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

/// Writes `bytes` and waits until the server has read them (a read of their own).
fn write_part(s: &mut Conn, bytes: &[u8]) {
    s.write_all(bytes).unwrap();
    wait_consumed(s);
}

/// Case 2: A request head written in two parts split at byte `k`, each part read by the server
/// on its own, for each `k` in `splits`, on two connections: one whose requests are both
/// split (the first bytes of the connection are a part), one whose first request is whole
/// (framed) and the second split. Every request gives exactly one record on each side, with
/// the whole head's length, and nothing falls back.
fn split_heads(splits: std::ops::RangeInclusive<usize>) {
    require_root();
    let _serial = serial();
    let tmp = tempdir("http-split");
    let dir = tmp.path().to_path_buf();
    const SIZE: usize = 300;
    write_file(&dir.join("small.txt"), SIZE);
    let port = free_port();
    let mut cap = capture();
    let _server = test_server(&mut cap, &dir, port);
    let fallbacks = cap.http_fallbacks();

    let req = request("GET", "/small.txt", "");
    assert!(req.len() > *splits.end());
    let mut conns = Vec::new();
    for k in splits.clone() {
        for (what, first_whole) in [("both split", false), ("second split", true)] {
            let mut s = connect(port);
            let mut response_heads = Vec::new();
            for i in 0..2 {
                if i == 0 && first_whole {
                    s.write_all(req.as_bytes()).unwrap();
                } else {
                    write_part(&mut s, &req.as_bytes()[..k]);
                    s.write_all(&req.as_bytes()[k..]).unwrap();
                }
                let r = read_response(&mut s);
                assert_eq!((r.status, r.body.len()), (200, SIZE), "split at {k}");
                response_heads.push(r.head_len);
            }
            conns.push((k, what, s.local_addr().unwrap(), response_heads));
        }
    }
    let n = conns.len();
    let events = collect(&mut cap, port, Duration::from_secs(10), |evs| {
        count_http(evs) >= 4 * n
    });
    let mut bad = Vec::new();
    for (k, what, client, response_heads) in &conns {
        let evs = on_port(&events, client.port());
        let mut problems = Vec::new();
        for role in [Role::Server, Role::Client] {
            let recs = side(&evs, client.port(), role);
            if recs.len() != 2 {
                problems.push(format!("{role:?}: {} records", recs.len()));
                continue;
            }
            for (h, &rh) in recs.iter().zip(response_heads) {
                let want = Want {
                    role,
                    line: "GET /small.txt HTTP/1.1",
                    head_len: Some(req.len()),
                    status: 200,
                    end: HttpEnd::Complete,
                    request_body: 0,
                    response_body: SIZE as u64,
                    response_head: Some(rh),
                };
                problems.extend(mismatches(h, &want));
            }
        }
        let other = evs.len() - count_http(&evs);
        if other > 0 {
            problems.push(format!("{other} records other than Http"));
        }
        if !problems.is_empty() {
            bad.push(format!(
                "split at byte {k} ({what}): {}\n{}",
                problems.join("; "),
                describe(&evs)
            ));
        }
    }
    let fell_back = cap.http_fallbacks() - fallbacks;
    assert!(
        bad.is_empty(),
        "{} of {n} connections mis-framed ({fell_back} fallbacks):\n{}",
        bad.len(),
        bad.join("\n")
    );
    assert_eq!(fell_back, 0);
}

#[test]
fn split_request_heads() {
    split_heads(12..=64);
}

/// A request head trickled in: its first 12 bytes, then one byte per write, each read on its
/// own (a head accumulated over 80 reads): one record per side.
#[test]
fn trickled_request_head() {
    require_root();
    let _serial = serial();
    let tmp = tempdir("http-trickle");
    let dir = tmp.path().to_path_buf();
    const SIZE: usize = 300;
    write_file(&dir.join("small.txt"), SIZE);
    let port = free_port();
    let mut cap = capture();
    let _server = test_server(&mut cap, &dir, port);
    let fallbacks = cap.http_fallbacks();

    let req = request("GET", "/small.txt", "");
    let mut s = connect(port);
    let client = s.local_addr().unwrap();
    write_part(&mut s, &req.as_bytes()[..12]);
    for i in 12..req.len() {
        write_part(&mut s, &req.as_bytes()[i..i + 1]);
    }
    let r = read_response(&mut s);
    assert_eq!((r.status, r.body.len()), (200, SIZE));

    let events = collect(&mut cap, port, Duration::from_secs(10), |evs| {
        count_http(evs) >= 2
    });
    only_http(&events);
    for role in [Role::Server, Role::Client] {
        let recs = side(&events, client.port(), role);
        assert_eq!(recs.len(), 1, "{role:?}:\n{}", describe(&events));
        let want = Want {
            role,
            line: "GET /small.txt HTTP/1.1",
            head_len: Some(req.len()),
            status: 200,
            end: HttpEnd::Complete,
            request_body: 0,
            response_body: SIZE as u64,
            response_head: Some(r.head_len),
        };
        check(recs[0], &want, &events);
        assert_eq!(recs[0].head, req.as_bytes());
    }
    assert_eq!(cap.http_fallbacks() - fallbacks, 0);
}

/// A request head split in its first 11 bytes: a first read shorter than a method token is
/// taken as the start of a request head, and the head is kept until it is whole.
#[test]
fn split_request_heads_in_first_12_bytes() {
    split_heads(1..=11);
}

/// A response head that does not come in one call: read by the client 16 bytes at a time
/// (`client_reads_16`), or written by the server in pieces (`/pieces`: status line, headers
/// and blank line in writes of their own). One record per side, as for a whole head.
fn response_head_in_pieces(client_reads_16: bool) {
    require_root();
    let _serial = serial();
    let tmp = tempdir("http-resp-split");
    let dir = tmp.path().to_path_buf();
    const SIZE: usize = 300;
    write_file(&dir.join("small.txt"), SIZE);
    let port = free_port();
    let mut cap = capture();
    let _server = test_server(&mut cap, &dir, port);
    let fallbacks = cap.http_fallbacks();

    let mut s = connect(port);
    let client = s.local_addr().unwrap();
    let (path, body) = if client_reads_16 {
        ("/small.txt", SIZE)
    } else {
        ("/pieces", 5)
    };
    let req = request("GET", path, "");
    s.write_all(req.as_bytes()).unwrap();
    let max = if client_reads_16 { 16 } else { 4 << 20 };
    read_until_max(&mut s, max, |b| {
        head_end(b).is_some_and(|h| b.len() >= h + body)
    });
    let head_len = head_end(&s.pending).unwrap();
    assert_eq!(s.pending.len(), head_len + body);
    drop(s);
    wait_closed(client, SocketAddr::from(([127, 0, 0, 1], port)));

    let events = collect(&mut cap, port, Duration::from_secs(5), |evs| {
        count_http(evs) >= 2
    });
    let fell_back = cap.http_fallbacks() - fallbacks;
    for role in [Role::Server, Role::Client] {
        let recs = side(&events, client.port(), role);
        assert_eq!(
            recs.len(),
            1,
            "{role:?} ({fell_back} fallbacks):\n{}",
            describe(&events)
        );
        let want = Want {
            role,
            line: &format!("GET {path} HTTP/1.1"),
            head_len: Some(req.len()),
            status: 200,
            end: HttpEnd::Complete,
            request_body: 0,
            response_body: body as u64,
            response_head: Some(head_len),
        };
        check(recs[0], &want, &events);
    }
    only_http(&events);
    assert_eq!(fell_back, 0);
}

#[test]
fn response_head_split_between_reads() {
    response_head_in_pieces(true);
}

#[test]
fn response_head_written_in_pieces() {
    response_head_in_pieces(false);
}

/// Case 3: Chunked bodies: responses whose chunk-size lines and chunk data come in separate
/// writes (data split across writes), and a chunked request body, on one keep-alive
/// connection: one record per exchange, the bodies the sums of the chunk sizes.
#[test]
fn chunked_bodies() {
    require_root();
    let _serial = serial();
    let tmp = tempdir("http-chunked");
    let port = free_port();
    let mut cap = capture();
    let _server = test_server(&mut cap, tmp.path(), port);
    let fallbacks = cap.http_fallbacks();
    let chunked_total: usize = CHUNKS.iter().sum();

    let mut s = connect(port);
    let client = s.local_addr().unwrap();
    let fd = s.as_raw_fd();
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() } as u32;
    let get = request("GET", "/chunked", "");
    let mut response_heads = Vec::new();
    s.write_all(get.as_bytes()).unwrap();
    let r = read_chunked(&mut s);
    assert_eq!((r.status, dechunk(&r.body)), (200, chunked_total));
    response_heads.push(r.head_len);

    // a chunked request body: every size line, data part and CRLF read on its own
    const REQ_CHUNKS: [usize; 3] = [3, 4000, 20000];
    let req_total: usize = REQ_CHUNKS.iter().sum();
    let post = request("POST", "/upload", "Transfer-Encoding: chunked\r\n");
    write_part(&mut s, post.as_bytes());
    for n in REQ_CHUNKS {
        write_part(&mut s, format!("{n:x}\r\n").as_bytes());
        let data = vec![b'x'; n];
        write_part(&mut s, &data[..n / 2]);
        write_part(&mut s, &data[n / 2..]);
        write_part(&mut s, b"\r\n");
    }
    s.write_all(b"0\r\n\r\n").unwrap();
    let r = read_response(&mut s);
    let answer = format!("received {req_total} bytes\n");
    assert_eq!((r.status, &r.body[..]), (200, answer.as_bytes()));
    response_heads.push(r.head_len);

    s.write_all(get.as_bytes()).unwrap();
    let r = read_chunked(&mut s);
    assert_eq!((r.status, dechunk(&r.body)), (200, chunked_total));
    response_heads.push(r.head_len);

    let events = collect(&mut cap, port, Duration::from_secs(10), |evs| {
        count_http(evs) >= 6
    });
    only_http(&events);
    for role in [Role::Server, Role::Client] {
        let recs = side(&events, client.port(), role);
        assert_eq!(recs.len(), 3, "{role:?}:\n{}", describe(&events));
        let wants = [
            ("GET /chunked HTTP/1.1", 0, chunked_total),
            ("POST /upload HTTP/1.1", req_total, answer.len()),
            ("GET /chunked HTTP/1.1", 0, chunked_total),
        ];
        for ((h, (line, req_body, resp_body)), &rh) in recs.iter().zip(wants).zip(&response_heads) {
            let want = Want {
                role,
                line,
                head_len: None,
                status: 200,
                end: HttpEnd::Complete,
                request_body: req_body as u64,
                response_body: resp_body as u64,
                response_head: Some(rh),
            };
            check(h, &want, &events);
            // the call that moved the response's last byte: python's send, this test's recv
            if role == Role::Client {
                assert_eq!((h.pid, h.tid, h.fd), (std::process::id(), tid, fd));
                assert_eq!(h.syscall, Syscall::Recvfrom, "{h:?}");
            } else {
                assert_eq!(h.syscall, Syscall::Sendto, "{h:?}");
            }
        }
    }
    assert_eq!(cap.http_fallbacks() - fallbacks, 0);
}

/// Case 4: A response without a length (`Connection: close`) ends with the connection:
/// `HttpEnd::Close` on both sides, the body all the bytes after the head.
#[test]
fn response_ended_by_close() {
    require_root();
    let _serial = serial();
    let tmp = tempdir("http-close");
    let port = free_port();
    let mut cap = capture();
    let _server = test_server(&mut cap, tmp.path(), port);
    let fallbacks = cap.http_fallbacks();

    let mut s = connect(port);
    let (client, server) = (s.local_addr().unwrap(), s.peer_addr().unwrap());
    s.write_all(request("GET", "/close", "").as_bytes())
        .unwrap();
    let buf = read_to_eof(&mut s);
    let head_len = head_end(&buf).unwrap();
    assert_eq!(buf.len() - head_len, CLOSE_LEN);
    drop(s);
    wait_closed(client, server);

    let events = collect(&mut cap, port, Duration::from_secs(10), |evs| {
        count_http(evs) >= 2
    });
    only_http(&events);
    for role in [Role::Server, Role::Client] {
        let recs = side(&events, client.port(), role);
        assert_eq!(recs.len(), 1, "{role:?}:\n{}", describe(&events));
        let want = Want {
            role,
            line: "GET /close HTTP/1.1",
            head_len: None,
            status: 200,
            end: HttpEnd::Close,
            request_body: 0,
            response_body: CLOSE_LEN as u64,
            response_head: Some(head_len),
        };
        check(recs[0], &want, &events);
    }
    assert_eq!(cap.http_fallbacks() - fallbacks, 0);
}

/// Case 5: `101 Switching Protocols` (and a 2xx to CONNECT), then another protocol (an echo) on
/// the connection: one record with the status on each side, then nothing more for the
/// connection, also at its close.
#[test]
fn upgrade_ends_framing() {
    require_root();
    let _serial = serial();
    let tmp = tempdir("http-upgrade");
    let port = free_port();
    let mut cap = capture();
    let _server = test_server(&mut cap, tmp.path(), port);
    let fallbacks = cap.http_fallbacks();

    // a 101 to an Upgrade, and a 2xx to CONNECT
    let variants = [
        (
            "GET /upgrade HTTP/1.1",
            request(
                "GET",
                "/upgrade",
                "Connection: Upgrade\r\nUpgrade: echo\r\n",
            ),
            101,
        ),
        (
            "CONNECT example.test:443 HTTP/1.1",
            request("CONNECT", "example.test:443", ""),
            200,
        ),
    ];
    let mut conns = Vec::new();
    for (_, req, status) in &variants {
        let mut s = connect(port);
        let (client, server) = (s.local_addr().unwrap(), s.peer_addr().unwrap());
        s.write_all(req.as_bytes()).unwrap();
        // the response head, nothing after it (the CONNECT answer has no length: read the
        // head alone)
        read_until(&mut s, |b| head_end(b).is_some());
        let head_len = head_end(&s.pending).unwrap();
        assert_eq!(s.pending.len(), head_len);
        let head = String::from_utf8_lossy(&s.pending).into_owned();
        assert!(head.starts_with(&format!("HTTP/1.1 {status} ")), "{head}");
        s.pending.clear();
        // bytes that look like HTTP: the kernel must not take them for it
        for i in 0..3 {
            let msg = format!("GET /not-http-{i} HTTP/1.1\r\n\r\nHTTP/1.1 200 OK\r\n\r\n");
            s.write_all(msg.as_bytes()).unwrap();
            let mut echo = vec![0u8; msg.len()];
            s.read_exact(&mut echo).unwrap();
            assert_eq!(echo, msg.as_bytes());
        }
        drop(s);
        wait_closed(client, server);
        conns.push((client, head_len));
    }

    let events = collect(&mut cap, port, Duration::from_secs(10), |evs| {
        count_http(evs) >= 4
    });
    only_http(&events);
    for ((line, req, status), (client, head_len)) in variants.iter().zip(&conns) {
        for role in [Role::Server, Role::Client] {
            let recs = side(&events, client.port(), role);
            assert_eq!(recs.len(), 1, "{line} {role:?}:\n{}", describe(&events));
            let want = Want {
                role,
                line,
                head_len: Some(req.len()),
                status: *status,
                end: HttpEnd::Complete,
                request_body: 0,
                response_body: 0,
                response_head: Some(*head_len),
            };
            check(recs[0], &want, &events);
        }
    }
    assert_eq!(cap.http_fallbacks() - fallbacks, 0);
}

/// Case 6: Responses without a body (HEAD, 304) and a POST with `Expect: 100-continue` (the
/// interim 100 is not an exchange of its own), each from curl: one record each per side.
#[test]
fn head_304_and_expect_continue() {
    require_root();
    let _serial = serial();
    let tmp = tempdir("http-nobody");
    let dir = tmp.path().to_path_buf();
    const SIZE: usize = 5000;
    write_file(&dir.join("file.bin"), SIZE);
    write_file(&dir.join("upload.bin"), SIZE);
    let port = free_port();
    let mut cap = capture();
    let _server = test_server(&mut cap, &dir, port);
    let fallbacks = cap.http_fallbacks();

    let url = format!("http://127.0.0.1:{port}/file.bin");
    let upload_url = format!("http://127.0.0.1:{port}/upload");
    let upload = format!("@{}", dir.join("upload.bin").display());
    let w = "%{http_code} %{size_header} %{size_download}";
    let runs: Vec<(&str, Vec<&str>)> = vec![
        (
            "HEAD /file.bin HTTP/1.1",
            vec!["-I", "-o", "/dev/null", "-w", w, &url],
        ),
        (
            "GET /file.bin HTTP/1.1",
            vec![
                "-H",
                "If-Modified-Since: Fri, 01 Jan 2100 00:00:00 GMT",
                "-o",
                "/dev/null",
                "-w",
                w,
                &url,
            ],
        ),
        (
            "POST /upload HTTP/1.1",
            vec![
                "-H",
                "Expect: 100-continue",
                "--data-binary",
                &upload,
                "-o",
                "/dev/null",
                "-w",
                w,
                &upload_url,
            ],
        ),
    ];
    let mut done = Vec::new();
    for (line, args) in &runs {
        let (pid, out) = traced_curl(&mut cap, args);
        let v: Vec<usize> = out.split_whitespace().map(|n| n.parse().unwrap()).collect();
        done.push((*line, pid, v));
    }
    let answer = format!("received {SIZE} bytes\n");
    assert_eq!(done[0].2[0], 200);
    assert_eq!(done[1].2[0], 304);
    assert_eq!((done[2].2[0], done[2].2[2]), (200, answer.len()));

    let events = collect(&mut cap, port, Duration::from_secs(10), |evs| {
        count_http(evs) >= 6
    });
    only_http(&events);
    // curl's size_header counts the interim 100's head too
    let continue_head = "HTTP/1.1 100 Continue\r\n\r\n".len();
    let wants = [
        (200, 0, 0, done[0].2[1]),
        (304, 0, 0, done[1].2[1]),
        (200, SIZE, answer.len(), done[2].2[1] - continue_head),
    ];
    for ((line, pid, _), (status, req_body, resp_body, resp_head)) in done.iter().zip(wants) {
        let c = http_records(&events)
            .into_iter()
            .filter(|h| h.pid == *pid)
            .collect::<Vec<_>>();
        assert_eq!(c.len(), 1, "{line}:\n{}", describe(&events));
        let client_port = c[0].local.port();
        for role in [Role::Server, Role::Client] {
            let recs = side(&events, client_port, role);
            assert_eq!(recs.len(), 1, "{line} {role:?}:\n{}", describe(&events));
            let want = Want {
                role,
                line,
                head_len: None,
                status,
                end: HttpEnd::Complete,
                request_body: req_body as u64,
                response_body: resp_body as u64,
                response_head: Some(resp_head),
            };
            check(recs[0], &want, &events);
        }
    }
    assert_eq!(cap.http_fallbacks() - fallbacks, 0);
}

/// Case 7: nginx sending 1 MiB by sendfile, two requests on one keep-alive connection: one record
/// per request and side, the body 1048576 bytes, the server's last call sendfile.
#[test]
fn nginx_sendfile_keep_alive() {
    require_root();
    let _serial = serial();
    let tmp = tempdir("http-nginx");
    let dir = tmp.path().to_path_buf();
    std::fs::create_dir_all(dir.join("www")).unwrap();
    const SIZE: usize = 1 << 20;
    write_file(&dir.join("www/big.bin"), SIZE);
    let port = free_port();
    let mut cap = capture();
    let server = nginx_server(&dir, port);
    let worker = eventually("nginx's worker", Duration::from_secs(10), || {
        children(server.id()).first().copied()
    });
    trace(&mut cap, worker);
    let fallbacks = cap.http_fallbacks();

    let url = format!("http://127.0.0.1:{port}/big.bin");
    let (curl_pid, out) = traced_curl(
        &mut cap,
        &[
            "-o",
            "/dev/null",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{size_header} %{size_download}\n",
            &url,
            &url,
        ],
    );
    let lines: Vec<Vec<usize>> = out
        .lines()
        .map(|l| l.split_whitespace().map(|n| n.parse().unwrap()).collect())
        .collect();
    assert_eq!(lines.len(), 2, "{out}");

    let events = collect(&mut cap, port, Duration::from_secs(10), |evs| {
        count_http(evs) >= 4
    });
    only_http(&events);
    let client: Vec<&HttpEvent> = http_records(&events)
        .into_iter()
        .filter(|h| h.pid == curl_pid)
        .collect();
    assert_eq!(client.len(), 2, "{}", describe(&events));
    let client_port = client[0].local.port();
    for role in [Role::Server, Role::Client] {
        let recs = side(&events, client_port, role);
        assert_eq!(recs.len(), 2, "{role:?}:\n{}", describe(&events));
        for (h, l) in recs.iter().zip(&lines) {
            assert_eq!((l[0], l[2]), (200, SIZE), "{out}");
            let want = Want {
                role,
                line: "GET /big.bin HTTP/1.1",
                head_len: None,
                status: 200,
                end: HttpEnd::Complete,
                request_body: 0,
                response_body: SIZE as u64,
                response_head: Some(l[1]),
            };
            check(h, &want, &events);
            if role == Role::Server {
                assert_eq!(h.pid, worker);
                assert_eq!(h.syscall, Syscall::Sendfile, "{h:?}");
            }
        }
    }
    assert_eq!(cap.http_fallbacks() - fallbacks, 0);
    assert_eq!(cap.lost_events(), 0);
}

/// Two requests in one buffer.
fn pipelined_pair() -> (String, String, String) {
    let a = request("GET", "/small.txt?a", "");
    let b = request("GET", "/small.txt?b", "");
    let pair = format!("{a}{b}");
    (a, b, pair)
}

/// Case 8: Pipelining: two requests in one write. On a framed connection (after a first framed
/// exchange) both sides fall back to per-call records (`http_fallbacks()` + 2, one per
/// traced side) and the data records carry both requests and both responses. A connection
/// whose very first write is pipelined is never framed (per call from the start, not a
/// fallback).
#[test]
fn pipelining_falls_back() {
    require_root();
    let _serial = serial();
    let tmp = tempdir("http-pipe");
    let dir = tmp.path().to_path_buf();
    const SIZE: usize = 300;
    write_file(&dir.join("small.txt"), SIZE);
    let port = free_port();
    let mut cap = capture();
    let _server = test_server(&mut cap, &dir, port);
    let fallbacks = cap.http_fallbacks();
    let (a, _, pair) = pipelined_pair();

    // framed first, then pipelined
    let mut s = connect(port);
    let framed = s.local_addr().unwrap();
    s.write_all(a.as_bytes()).unwrap();
    let first = read_response(&mut s);
    s.write_all(pair.as_bytes()).unwrap();
    let mut responses = 0;
    for _ in 0..2 {
        let r = read_response(&mut s);
        assert_eq!((r.status, r.body.len()), (200, SIZE));
        responses += r.head_len + r.body.len();
    }
    drop(s);
    wait_closed(framed, SocketAddr::from(([127, 0, 0, 1], port)));
    // pipelined from the first write
    let mut s = connect(port);
    let unframed = s.local_addr().unwrap();
    s.write_all(pair.as_bytes()).unwrap();
    let mut responses2 = 0;
    for _ in 0..2 {
        let r = read_response(&mut s);
        responses2 += r.head_len + r.body.len();
    }
    drop(s);
    wait_closed(unframed, SocketAddr::from(([127, 0, 0, 1], port)));

    let events = collect(&mut cap, port, Duration::from_secs(10), |evs| {
        let evs2 = on_port(evs, unframed.port());
        count_http(evs) >= 2
            && data_bytes(&evs2, Role::Client, Direction::Ingress).0 == responses2 as i64
            && data_bytes(&evs2, Role::Server, Direction::Egress).0 == responses2 as i64
    });
    let conn = on_port(&events, framed.port());
    for role in [Role::Server, Role::Client] {
        let recs = side(&conn, framed.port(), role);
        assert_eq!(recs.len(), 1, "{role:?}:\n{}", describe(&conn));
        let want = Want {
            role,
            line: "GET /small.txt?a HTTP/1.1",
            head_len: Some(a.len()),
            status: 200,
            end: HttpEnd::Complete,
            request_body: 0,
            response_body: SIZE as u64,
            response_head: Some(first.head_len),
        };
        check(recs[0], &want, &conn);
    }
    for (evs, total) in [
        (conn.clone(), responses),
        (on_port(&events, unframed.port()), responses2),
    ] {
        for (role, dir) in [
            (Role::Client, Direction::Egress),
            (Role::Server, Direction::Ingress),
        ] {
            let (bytes, captured) = data_bytes(&evs, role, dir);
            assert_eq!(bytes, pair.len() as i64, "{role:?}:\n{}", describe(&evs));
            assert_eq!(captured, pair.as_bytes(), "{role:?}:\n{}", describe(&evs));
        }
        for (role, dir) in [
            (Role::Server, Direction::Egress),
            (Role::Client, Direction::Ingress),
        ] {
            let (bytes, _) = data_bytes(&evs, role, dir);
            assert_eq!(bytes, total as i64, "{role:?}:\n{}", describe(&evs));
        }
    }
    assert_eq!(
        count_http(&on_port(&events, unframed.port())),
        0,
        "{}",
        describe(&events)
    );
    assert_eq!(cap.http_fallbacks() - fallbacks, 2);
}

/// Case 9: request heads up to 1024 bytes are framed (in one read or two; the record keeps
/// the first 256 = capture bytes); one of 1025 bytes on the framed connection makes both
/// sides fall back, the head coming as data records.
#[test]
fn long_head_falls_back() {
    require_root();
    let _serial = serial();
    let tmp = tempdir("http-long");
    let dir = tmp.path().to_path_buf();
    const SIZE: usize = 300;
    write_file(&dir.join("small.txt"), SIZE);
    let port = free_port();
    let mut cap = capture();
    let _server = test_server(&mut cap, &dir, port);
    let fallbacks = cap.http_fallbacks();

    // framed: heads of 92 (the usual), 600 (longer than the capture), 1024 (the most the
    // kernel frames) bytes, and 1024 bytes in two reads; then 1025 bytes: falls back
    let padded = |path: &str, len: usize| {
        let base = request("GET", path, "X-Pad: \r\n").len();
        let r = request(
            "GET",
            path,
            &format!("X-Pad: {}\r\n", "p".repeat(len - base)),
        );
        assert_eq!(r.len(), len);
        r
    };
    let framed = [
        (request("GET", "/small.txt", ""), None),
        (padded("/small.txt?600", 600), None),
        (padded("/small.txt?1024", 1024), None),
        (padded("/small.txt?1024-split", 1024), Some(500)),
    ];
    let mut s = connect(port);
    let client = s.local_addr().unwrap();
    let mut response_heads = Vec::new();
    for (req, split) in &framed {
        if let Some(k) = split {
            write_part(&mut s, &req.as_bytes()[..*k]);
            s.write_all(&req.as_bytes()[*k..]).unwrap();
        } else {
            s.write_all(req.as_bytes()).unwrap();
        }
        let r = read_response(&mut s);
        assert_eq!((r.status, r.body.len()), (200, SIZE));
        response_heads.push(r.head_len);
    }
    let big = padded("/small.txt?big", 1025);
    s.write_all(big.as_bytes()).unwrap();
    let r = read_response(&mut s);
    assert_eq!((r.status, r.body.len()), (200, SIZE));
    let second = r.head_len + r.body.len();
    drop(s);
    wait_closed(client, SocketAddr::from(([127, 0, 0, 1], port)));

    let events = collect(&mut cap, port, Duration::from_secs(10), |evs| {
        count_http(evs) >= 2 * framed.len()
            && data_bytes(evs, Role::Client, Direction::Ingress).0 == second as i64
    });
    for role in [Role::Server, Role::Client] {
        let recs = side(&events, client.port(), role);
        assert_eq!(recs.len(), framed.len(), "{role:?}:\n{}", describe(&events));
        for ((h, (req, _)), rh) in recs.iter().zip(&framed).zip(&response_heads) {
            let want = Want {
                role,
                line: req.lines().next().unwrap(),
                head_len: Some(req.len()),
                status: 200,
                end: HttpEnd::Complete,
                request_body: 0,
                response_body: SIZE as u64,
                response_head: Some(*rh),
            };
            check(h, &want, &events);
            assert_eq!(h.head, req.as_bytes()[..req.len().min(CAPTURE)]);
        }
    }
    for (role, dir) in [
        (Role::Client, Direction::Egress),
        (Role::Server, Direction::Ingress),
    ] {
        let ds = data_events(&events, role, dir);
        let bytes: i64 = ds.iter().map(|d| d.bytes).sum();
        assert_eq!(bytes, big.len() as i64, "{role:?}:\n{}", describe(&events));
        assert!(
            big.as_bytes().starts_with(&ds[0].data),
            "{role:?}:\n{}",
            describe(&events)
        );
    }
    for (role, dir) in [
        (Role::Server, Direction::Egress),
        (Role::Client, Direction::Ingress),
    ] {
        let (bytes, _) = data_bytes(&events, role, dir);
        assert_eq!(bytes, second as i64, "{role:?}:\n{}", describe(&events));
    }
    assert_eq!(cap.http_fallbacks() - fallbacks, 2);
}

/// Case 10: the client resets the connection: before the response (`NoResponse` on both
/// sides), and in the middle of a response body (`Incomplete`, the body so far: the server
/// wrote 100000 of the 1000000 bytes its head promised and waits for the client, which reads
/// them all and resets).
#[test]
fn client_reset() {
    require_root();
    let _serial = serial();
    let tmp = tempdir("http-reset");
    let port = free_port();
    let mut cap = capture();
    let _server = test_server(&mut cap, tmp.path(), port);
    let fallbacks = cap.http_fallbacks();

    // before the response: the server holds the request
    let mut s = connect(port);
    let held = s.local_addr().unwrap();
    let hold = request("GET", "/hold", "");
    write_part(&mut s, hold.as_bytes());
    reset(s);
    // in the middle of the body
    let mut s = connect(port);
    let cut = s.local_addr().unwrap();
    let partial = request("GET", "/partial", "");
    s.write_all(partial.as_bytes()).unwrap();
    read_until(&mut s, |b| {
        head_end(b).is_some_and(|h| b.len() >= h + PARTIAL_LEN)
    });
    let head_len = head_end(&s.pending).unwrap();
    assert_eq!(s.pending.len(), head_len + PARTIAL_LEN);
    reset(s);
    let server = SocketAddr::from(([127, 0, 0, 1], port));
    wait_closed(held, server);
    wait_closed(cut, server);

    let events = collect(&mut cap, port, Duration::from_secs(10), |evs| {
        count_http(evs) >= 4
    });
    only_http(&events);
    for role in [Role::Server, Role::Client] {
        let recs = side(&events, held.port(), role);
        assert_eq!(recs.len(), 1, "held {role:?}:\n{}", describe(&events));
        let want = Want {
            role,
            line: "GET /hold HTTP/1.1",
            head_len: Some(hold.len()),
            status: 0,
            end: HttpEnd::NoResponse,
            request_body: 0,
            response_body: 0,
            response_head: Some(0),
        };
        check(recs[0], &want, &events);
        let recs = side(&events, cut.port(), role);
        assert_eq!(recs.len(), 1, "cut {role:?}:\n{}", describe(&events));
        let want = Want {
            role,
            line: "GET /partial HTTP/1.1",
            head_len: Some(partial.len()),
            status: 200,
            end: HttpEnd::Incomplete,
            request_body: 0,
            response_body: PARTIAL_LEN as u64,
            response_head: Some(head_len),
        };
        check(recs[0], &want, &events);
    }
    assert_eq!(cap.http_fallbacks() - fallbacks, 0);
}

/// The client resets while the server is blocked in a send (a large file, the client stops
/// reading): the server's record is `Incomplete` and nothing else comes for the connection.
/// Run 8 times, for the race below.
#[test]
fn reset_while_the_server_is_blocked_in_send() {
    require_root();
    let _serial = serial();
    let tmp = tempdir("http-reset-send");
    let dir = tmp.path().to_path_buf();
    const SIZE: usize = 8 << 20;
    write_file(&dir.join("big.bin"), SIZE);
    let port = free_port();
    let mut cap = capture();
    let _server = test_server(&mut cap, &dir, port);
    let server = SocketAddr::from(([127, 0, 0, 1], port));

    let req = request("GET", "/big.bin", "");
    let mut conns = Vec::new();
    for _ in 0..8 {
        let mut s = connect(port);
        let client = s.local_addr().unwrap();
        s.write_all(req.as_bytes()).unwrap();
        read_until(&mut s, |b| {
            head_end(b).is_some_and(|h| b.len() >= h + 100_000)
        });
        let head_len = head_end(&s.pending).unwrap();
        conns.push((client, head_len, s.pending.len() - head_len));
        reset(s);
        wait_closed(client, server);
    }
    let events = collect(&mut cap, port, Duration::from_secs(10), |evs| {
        count_http(evs) >= 2 * conns.len()
    });
    for (client, head_len, got) in &conns {
        let evs = on_port(&events, client.port());
        only_http(&evs);
        let recs = side(&evs, client.port(), Role::Client);
        assert_eq!(recs.len(), 1, "{}", describe(&evs));
        let want = Want {
            role: Role::Client,
            line: "GET /big.bin HTTP/1.1",
            head_len: Some(req.len()),
            status: 200,
            end: HttpEnd::Incomplete,
            request_body: 0,
            response_body: *got as u64,
            response_head: Some(*head_len),
        };
        check(recs[0], &want, &evs);
        let recs = side(&evs, client.port(), Role::Server);
        assert_eq!(recs.len(), 1, "{}", describe(&evs));
        let sent = recs[0].response_body;
        let want = Want {
            role: Role::Server,
            response_body: sent,
            ..want
        };
        check(recs[0], &want, &evs);
        assert!(
            sent >= *got as u64 && sent < SIZE as u64,
            "the server sent {sent} body bytes, the client read {got}"
        );
    }
}

/// `len` bytes that do not compress (xorshift).
fn write_random_file(path: &Path, len: usize) {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let body: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(path, body).unwrap();
}

/// nginx compressing on the fly (gzip): the response is chunked, as nginx writes it (the
/// head, or a chunk's size line, and the chunk's data in one writev of several iovecs). One
/// record per request and side, the body the sum of the chunk sizes.
#[test]
fn nginx_gzip_chunked() {
    require_root();
    let _serial = serial();
    let tmp = tempdir("http-gzip");
    let dir = tmp.path().to_path_buf();
    std::fs::create_dir_all(dir.join("www")).unwrap();
    write_random_file(&dir.join("www/data.bin"), 200_000);
    let port = free_port();
    let mut cap = capture();
    let block = format!(
        "listen 127.0.0.1:{port}; root {}; gzip on; gzip_min_length 1; gzip_types *;",
        dir.join("www").display()
    );
    let server = nginx_with_server_block(&dir, port, &block);
    let worker = eventually("nginx's worker", Duration::from_secs(10), || {
        children(server.id()).first().copied()
    });
    trace(&mut cap, worker);
    let fallbacks = cap.http_fallbacks();

    let mut s = connect(port);
    let client = s.local_addr().unwrap();
    let req = request("GET", "/data.bin", "Accept-Encoding: gzip\r\n");
    let mut responses = Vec::new();
    for _ in 0..2 {
        s.write_all(req.as_bytes()).unwrap();
        let r = read_chunked(&mut s);
        assert_eq!(r.status, 200);
        responses.push((r.head_len, dechunk(&r.body)));
    }
    drop(s);
    wait_closed(client, SocketAddr::from(([127, 0, 0, 1], port)));

    let events = collect(&mut cap, port, Duration::from_secs(5), |evs| {
        count_http(evs) >= 4
    });
    let fell_back = cap.http_fallbacks() - fallbacks;
    for role in [Role::Server, Role::Client] {
        let recs = side(&events, client.port(), role);
        assert_eq!(
            recs.len(),
            2,
            "{role:?} ({fell_back} fallbacks):\n{}",
            describe(&events)
        );
        for (h, &(rh, body)) in recs.iter().zip(&responses) {
            let want = Want {
                role,
                line: "GET /data.bin HTTP/1.1",
                head_len: Some(req.len()),
                status: 200,
                end: HttpEnd::Complete,
                request_body: 0,
                response_body: body as u64,
                response_head: Some(rh),
            };
            check(h, &want, &events);
        }
    }
    only_http(&events);
    assert_eq!(fell_back, 0);
}

/// Responses the kernel does not frame, on connections framed so far: more than 8 chunk-size
/// lines in one call (the response in flight ends as an `Unframed` record, the call comes as
/// data), and a Transfer-Encoding other than `chunked` (the request in flight is handed over
/// as a data record of its head). Both sides fall back; nothing is lost.
#[test]
fn unframable_responses_fall_back() {
    require_root();
    let _serial = serial();
    let tmp = tempdir("http-unframable");
    let port = free_port();
    let mut cap = capture();
    let _server = test_server(&mut cap, tmp.path(), port);
    let server = SocketAddr::from(([127, 0, 0, 1], port));
    let fallbacks = cap.http_fallbacks();

    // more than 8 chunks in one write
    let many_body = "a\r\n0123456789\r\n".repeat(12) + "0\r\n\r\n";
    let mut s = connect(port);
    let many = s.local_addr().unwrap();
    let req_many = request("GET", "/many-chunks", "");
    s.write_all(req_many.as_bytes()).unwrap();
    let r = read_chunked(&mut s);
    assert_eq!((r.status, dechunk(&r.body)), (200, 120));
    assert_eq!(r.body, many_body.as_bytes());
    let many_head = r.head_len;
    drop(s);
    wait_closed(many, server);

    // Transfer-Encoding: gzip, chunked
    let te_response =
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    let mut s = connect(port);
    let te = s.local_addr().unwrap();
    let req_te = request("GET", "/te-gzip", "");
    s.write_all(req_te.as_bytes()).unwrap();
    read_until(&mut s, |b| b.len() >= te_response.len());
    assert_eq!(s.pending, te_response.as_bytes());
    drop(s);
    wait_closed(te, server);

    let events = collect(&mut cap, port, Duration::from_secs(10), |evs| {
        let te = on_port(evs, te.port());
        count_http(evs) >= 2
            && data_bytes(&te, Role::Client, Direction::Ingress).0 == te_response.len() as i64
            && data_bytes(&te, Role::Server, Direction::Egress).0 == te_response.len() as i64
    });
    let evs = on_port(&events, many.port());
    // the server wrote the head (framed), then the chunks (not framed: its own data record)
    let recs = side(&evs, many.port(), Role::Server);
    assert_eq!(recs.len(), 1, "{}", describe(&evs));
    let h = recs[0];
    let want = Want {
        role: Role::Server,
        line: "GET /many-chunks HTTP/1.1",
        head_len: Some(req_many.len()),
        status: 200,
        end: HttpEnd::Unframed,
        request_body: 0,
        // the body before the call the kernel could not frame: that call's bytes are in its
        // own data record, and in nothing else
        response_body: 0,
        response_head: Some(many_head),
    };
    check(h, &want, &evs);
    let (bytes, captured) = data_bytes(&evs, Role::Server, Direction::Egress);
    assert_eq!(bytes, many_body.len() as i64, "{}", describe(&evs));
    assert!(captured.starts_with(b"a\r\n0123456789\r\n"));
    // the client read the head and the chunks in two reads (an Unframed record, the chunks
    // in a data record) or in one (the request handed over as a data record, the read whole
    // in another): every byte of the response in exactly one record
    let recs = side(&evs, many.port(), Role::Client);
    let (bytes, _) = data_bytes(&evs, Role::Client, Direction::Ingress);
    match recs.len() {
        1 => {
            assert_eq!(
                (recs[0].status, recs[0].end, recs[0].response_body),
                (200, HttpEnd::Unframed, 0),
                "{}",
                describe(&evs)
            );
            assert_eq!(bytes as usize, many_body.len(), "{}", describe(&evs));
        }
        0 => {
            assert_eq!(
                bytes as usize,
                many_head + many_body.len(),
                "{}",
                describe(&evs)
            );
            let (sent, _) = data_bytes(&evs, Role::Client, Direction::Egress);
            assert_eq!(sent as usize, req_many.len(), "{}", describe(&evs));
        }
        _ => panic!("{}", describe(&evs)),
    }

    // a Transfer-Encoding the kernel does not frame: no Http record, the request head as a
    // data record (handed over), then the response as data
    let evs = on_port(&events, te.port());
    assert_eq!(count_http(&evs), 0, "{}", describe(&evs));
    for (role, dir) in [
        (Role::Client, Direction::Egress),
        (Role::Server, Direction::Ingress),
    ] {
        let (bytes, captured) = data_bytes(&evs, role, dir);
        assert_eq!(bytes, req_te.len() as i64, "{role:?}:\n{}", describe(&evs));
        assert_eq!(captured, req_te.as_bytes(), "{role:?}:\n{}", describe(&evs));
    }
    for (role, dir) in [
        (Role::Server, Direction::Egress),
        (Role::Client, Direction::Ingress),
    ] {
        let (bytes, captured) = data_bytes(&evs, role, dir);
        assert_eq!(
            bytes,
            te_response.len() as i64,
            "{role:?}:\n{}",
            describe(&evs)
        );
        assert_eq!(
            captured,
            te_response.as_bytes(),
            "{role:?}:\n{}",
            describe(&evs)
        );
    }
    assert_eq!(cap.http_fallbacks() - fallbacks, 4);
}
