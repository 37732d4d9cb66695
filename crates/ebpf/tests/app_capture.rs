//! Application capture against real servers and clients (root, real kernel).
//!
//! `cargo test -p tapline-ebpf --test app_capture` as root.

mod app_support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use app_support::*;
use tapline_ebpf::app::{
    AppCapture, AppCaptureConfig, AppEvent, ConnEvent, DataEvent, Direction, PidAction,
    PidFilterMode, Role, Syscall, DEFAULT_CAPTURE_BYTES,
};
use tapline_test_support::netns::{bpf_object_remains, require_root};
use tapline_test_support::{free_port, tempdir};

/// These tests check the per-call capture: HTTP/1.x framing in the kernel is off (its tests
/// are in tests/app_http.rs).
fn per_call() -> AppCaptureConfig {
    AppCaptureConfig {
        frame_http: false,
        ..Default::default()
    }
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

fn conn_events(
    events: &[AppEvent],
    pick: fn(&AppEvent) -> Option<&ConnEvent>,
) -> impl Iterator<Item = &ConnEvent> {
    events.iter().filter_map(pick)
}

fn accept(e: &AppEvent) -> Option<&ConnEvent> {
    match e {
        AppEvent::Accept(c) => Some(c),
        _ => None,
    }
}

fn connect(e: &AppEvent) -> Option<&ConnEvent> {
    match e {
        AppEvent::Connect(c) => Some(c),
        _ => None,
    }
}

fn close(e: &AppEvent) -> Option<&ConnEvent> {
    match e {
        AppEvent::Close(c) => Some(c),
        _ => None,
    }
}

/// A connected TCP pair on loopback: (client, server).
fn loopback_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    (client, server)
}

/// Collects events until both ends of the connection from `client_port` reported their close
/// (at most 5 s), then returns that connection's events.
fn collect_until_closed(cap: &mut AppCapture, client_port: u16) -> Vec<AppEvent> {
    let mut events = Vec::new();
    collect_until(
        cap,
        &mut events,
        Duration::from_secs(5),
        Duration::from_millis(300),
        |evs| {
            on_port(evs, client_port)
                .iter()
                .filter(|e| matches!(e, AppEvent::Close(_)))
                .count()
                >= 2
        },
    );
    on_port(&events, client_port)
}

/// The capture attached, tracing only this test process, with `capture_bytes` of payload.
fn capture_this_process(capture_bytes: u32) -> AppCapture {
    let cfg = AppCaptureConfig {
        frame_http: false,
        capture_bytes,
        filter_mode: PidFilterMode::Only,
        include_pids: vec![std::process::id()],
        exclude_self: false,
        ..Default::default()
    };
    let mut cap = AppCapture::load(&cfg).unwrap();
    cap.attach().unwrap();
    cap
}

/// Checks one curl run (one TCP connection) against a server on `port`. Returns the server
/// side's conn id.
fn check_exchange(
    events: &[AppEvent],
    port: u16,
    curl_pid: u32,
    server_pid: Option<u32>,
    request_line: &str,
    requests: usize,
    expected_response: i64,
) -> (u32, u64) {
    let conn = conn_events(events, connect)
        .find(|c| c.pid == curl_pid && c.remote.port() == port)
        .unwrap_or_else(|| panic!("no connect event from curl {curl_pid}"));
    assert_eq!(conn.role, Role::Client);
    assert!(
        conn.ret == 0 || conn.ret == -libc::EINPROGRESS as i64,
        "{conn:?}"
    );
    let client_port = conn.local.port();
    let acc = conn_events(events, accept)
        .find(|c| c.remote.port() == client_port && c.local.port() == port)
        .unwrap_or_else(|| panic!("no accept event for client port {client_port}"));
    assert_eq!(acc.role, Role::Server);
    if let Some(spid) = server_pid {
        assert_eq!(acc.pid, spid, "accept in the server process");
    }
    let spid = acc.pid;
    // conn ids are `struct sock *` values, reused once a socket is freed: look only at this
    // connection's events (both ends have the client's port)
    let events = &on_port(events, client_port)[..];

    // the request, client side (egress) and server side (ingress)
    let client_reqs = data(events)
        .filter(|d| d.pid == curl_pid && d.conn_id == conn.conn_id)
        .filter(|d| d.direction == Direction::Egress && d.data.starts_with(request_line.as_bytes()))
        .inspect(|d| assert_eq!(d.role, Role::Client))
        .count();
    assert_eq!(
        client_reqs, requests,
        "client-side requests `{request_line}`"
    );
    let server_reqs = data(events)
        .filter(|d| d.pid == spid && d.conn_id == acc.conn_id)
        .filter(|d| {
            d.direction == Direction::Ingress && d.data.starts_with(request_line.as_bytes())
        })
        .inspect(|d| {
            assert_eq!(d.role, Role::Server);
            assert_eq!(d.local.port(), port);
            assert_eq!(d.remote.port(), client_port);
            assert!(d.start_ns <= d.end_ns && d.start_ns > 0);
        })
        .count();
    assert_eq!(
        server_reqs, requests,
        "server-side requests `{request_line}`"
    );

    // sizes: from syscall return values, both ends agree with curl
    let sent = bytes_of(events, curl_pid, conn.conn_id, Direction::Egress);
    let received = bytes_of(events, spid, acc.conn_id, Direction::Ingress);
    assert_eq!(sent, received, "request bytes client vs server");
    let resp_server = bytes_of(events, spid, acc.conn_id, Direction::Egress);
    let resp_client = bytes_of(events, curl_pid, conn.conn_id, Direction::Ingress);
    assert_eq!(
        resp_server, expected_response,
        "response bytes, server side"
    );
    assert_eq!(
        resp_client, expected_response,
        "response bytes, client side"
    );

    // payload prefix is what the syscall moved, bounded by capture_bytes
    for d in data(events).filter(|d| d.conn_id == conn.conn_id || d.conn_id == acc.conn_id) {
        assert!(d.bytes > 0);
        assert!(d.data.len() as i64 <= d.bytes);
        if !d.payload_invisible {
            assert_eq!(d.data.len() as i64, d.bytes.min(256), "{d:?}");
        }
    }

    assert!(
        conn_events(events, close).any(|c| c.pid == curl_pid && c.conn_id == conn.conn_id),
        "client close event"
    );
    assert!(
        conn_events(events, close).any(|c| c.pid == spid && c.conn_id == acc.conn_id),
        "server close event"
    );
    (spid, acc.conn_id)
}

#[test]
fn python_http_server_and_curl() {
    require_root();
    let _serial = serial();
    let tmp = tempdir("py");
    let dir = tmp.path().to_path_buf();
    write_file(&dir.join("small.txt"), 1000);
    write_file(&dir.join("big.bin"), 1 << 20);
    let port = free_port();

    let mut cap = AppCapture::load(&per_call()).unwrap();
    cap.attach().unwrap();
    let server = python_server(&dir, port);
    let server_pid = server.id();

    let w = "%{size_header} %{size_download}\n";
    let small = format!("http://127.0.0.1:{port}/small.txt");
    let big = format!("http://127.0.0.1:{port}/big.bin");
    let mut runs = Vec::new();
    // one connection per request
    for _ in 0..3 {
        let (pid, out) = curl(&[
            "-H",
            "Connection: close",
            "-o",
            "/dev/null",
            "-w",
            w,
            &small,
        ]);
        runs.push((
            pid,
            "GET /small.txt HTTP/1.1",
            1,
            response_bytes(&out.stdout),
        ));
    }
    // keep-alive: three requests on one connection
    let (pid, out) = curl(&[
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
    runs.push((
        pid,
        "GET /small.txt HTTP/1.1",
        3,
        response_bytes(&out.stdout),
    ));
    // 1 MiB body
    let (pid, out) = curl(&["-o", "/dev/null", "-w", w, &big]);
    let big_total = response_bytes(&out.stdout);
    assert!(big_total > 1 << 20);
    runs.push((pid, "GET /big.bin HTTP/1.1", 1, big_total));

    let mut events = Vec::new();
    let complete = collect_until(
        &mut cap,
        &mut events,
        Duration::from_secs(15),
        Duration::from_millis(500),
        |evs| {
            runs.iter().all(|&(pid, _, _, total)| {
                data(evs)
                    .filter(|d| d.pid == pid && d.direction == Direction::Ingress)
                    .map(|d| d.bytes)
                    .sum::<i64>()
                    == total
            })
        },
    );
    let events = on_port(&events, port);
    assert!(
        complete,
        "not every response was seen; {} events",
        events.len()
    );
    for &(pid, line, n, total) in &runs {
        check_exchange(&events, port, pid, Some(server_pid), line, n, total);
    }
    // every event names its process, also for the curls that are gone by now
    for e in &events {
        let want = if runs.iter().any(|r| r.0 == e.pid()) {
            "curl"
        } else if e.pid() == server_pid {
            "python3"
        } else {
            continue;
        };
        assert_eq!(e.comm_str(), want, "{e:?}");
    }
    assert_eq!(cap.lost_events(), 0);
    drop(server);
}

#[test]
fn nginx_writev_and_sendfile() {
    require_root();
    let _serial = serial();
    let tmp = tempdir("nginx");
    let dir = tmp.path().to_path_buf();
    std::fs::create_dir_all(dir.join("www")).unwrap();
    write_file(&dir.join("www/page.html"), 5000);
    write_file(&dir.join("www/big.bin"), 1 << 20);
    let port = free_port();

    let mut cap = AppCapture::load(&per_call()).unwrap();
    cap.attach().unwrap();
    let server = nginx_server(&dir, port);

    let w = "%{size_header} %{size_download}\n";
    let mut runs = Vec::new();
    for path in ["page.html", "big.bin"] {
        let url = format!("http://127.0.0.1:{port}/{path}");
        let (pid, out) = curl(&["-o", "/dev/null", "-w", w, &url]);
        runs.push((
            pid,
            format!("GET /{path} HTTP/1.1"),
            response_bytes(&out.stdout),
        ));
    }

    let mut events = Vec::new();
    let complete = collect_until(
        &mut cap,
        &mut events,
        Duration::from_secs(15),
        Duration::from_millis(500),
        |evs| {
            runs.iter().all(|(pid, _, total)| {
                data(evs)
                    .filter(|d| d.pid == *pid && d.direction == Direction::Ingress)
                    .map(|d| d.bytes)
                    .sum::<i64>()
                    == *total
            })
        },
    );
    let events = on_port(&events, port);
    assert!(
        complete,
        "not every response was seen; {} events",
        events.len()
    );
    for (pid, line, total) in &runs {
        let (worker, conn) = check_exchange(&events, port, *pid, None, line, 1, *total);
        assert_ne!(worker, server.id(), "the worker, not the master, serves");
        let comm = std::fs::read_to_string(format!("/proc/{worker}/comm")).unwrap();
        assert_eq!(comm.trim(), "nginx");
        // headers through writev (captured), body through sendfile (counted, not captured)
        let egress: Vec<_> = data(&events)
            .filter(|d| d.pid == worker && d.conn_id == conn && d.direction == Direction::Egress)
            .collect();
        assert!(
            egress
                .iter()
                .any(|d| d.syscall == Syscall::Writev && d.data.starts_with(b"HTTP/1.1 200 OK")),
            "{egress:?}"
        );
        assert!(
            egress.iter().any(|d| d.syscall == Syscall::Sendfile
                && d.payload_invisible
                && d.data.is_empty()),
            "{egress:?}"
        );
    }
    assert_eq!(cap.lost_events(), 0);
}

#[test]
fn connection_older_than_the_capture() {
    require_root();
    let _serial = serial();
    let (mut client, mut server) = loopback_pair();

    let mut cap = capture_this_process(DEFAULT_CAPTURE_BYTES);
    client.write_all(b"PING old connection").unwrap();
    let mut buf = [0u8; 19];
    server.read_exact(&mut buf).unwrap();
    server.write_all(b"PONG").unwrap();
    let mut buf4 = [0u8; 4];
    client.read_exact(&mut buf4).unwrap();

    let mut events = Vec::new();
    collect_until(
        &mut cap,
        &mut events,
        Duration::from_secs(5),
        Duration::from_millis(100),
        |evs| data(evs).count() >= 4,
    );
    let cport = client.local_addr().unwrap().port();
    let events = on_port(&events, cport);
    let find = |dir: Direction, payload: &[u8], local| {
        data(&events)
            .find(|d| d.direction == dir && d.data == payload && d.local == local)
            .unwrap_or_else(|| panic!("no {dir:?} {payload:?} at {local}: {events:#?}"))
            .clone()
    };
    let me = std::process::id();
    let w = find(
        Direction::Egress,
        b"PING old connection",
        client.local_addr().unwrap(),
    );
    let r = find(
        Direction::Ingress,
        b"PING old connection",
        server.local_addr().unwrap(),
    );
    let w2 = find(Direction::Egress, b"PONG", server.local_addr().unwrap());
    let r2 = find(Direction::Ingress, b"PONG", client.local_addr().unwrap());
    for d in [&w, &r, &w2, &r2] {
        assert_eq!(d.role, Role::Unknown);
        assert_eq!(d.pid, me);
    }
    assert_eq!(w.bytes, 19);
    assert_eq!(r.bytes, 19);
    assert_eq!(w2.bytes, 4);
    assert_eq!(w.remote, server.local_addr().unwrap());
    assert_eq!(w.conn_id, r2.conn_id);
    assert_eq!(r.conn_id, w2.conn_id);
    assert_ne!(w.conn_id, r.conn_id);
    assert_eq!(cap.lost_events(), 0);
}

#[test]
fn pid_filter_include_and_exclude() {
    require_root();
    let _serial = serial();
    let tmp = tempdir("pidf");
    let dir = tmp.path().to_path_buf();
    write_file(&dir.join("f.txt"), 100);
    let port = free_port();
    let mut cap = AppCapture::load(&per_call()).unwrap();
    cap.attach().unwrap();
    let server = python_server(&dir, port);
    let spid = server.id();
    let url = format!("http://127.0.0.1:{port}/f.txt");

    let round = |cap: &mut AppCapture| -> (u32, Vec<AppEvent>) {
        let (cpid, _) = curl(&["-o", "/dev/null", &url]);
        let mut events = Vec::new();
        collect_until(
            cap,
            &mut events,
            Duration::from_secs(3),
            Duration::from_millis(300),
            |evs| {
                conn_events(evs, close).any(|c| c.pid == cpid)
                    && data(evs).any(|d| d.pid == cpid && d.direction == Direction::Ingress)
            },
        );
        (cpid, on_port(&events, port))
    };
    let server_events = |evs: &[AppEvent]| evs.iter().filter(|e| e.pid() == spid).count();
    let client_events = |evs: &[AppEvent], cpid| evs.iter().filter(|e| e.pid() == cpid).count();

    // default: everyone
    let (cpid, evs) = round(&mut cap);
    assert!(server_events(&evs) > 0 && client_events(&evs, cpid) > 0);

    // exclude the server
    cap.set_pid_filter(spid, PidAction::Exclude).unwrap();
    let (cpid, evs) = round(&mut cap);
    assert_eq!(server_events(&evs), 0, "excluded server still traced");
    assert!(client_events(&evs, cpid) > 0);

    // forget it again
    cap.set_pid_filter(spid, PidAction::Clear).unwrap();
    let (cpid, evs) = round(&mut cap);
    assert!(server_events(&evs) > 0 && client_events(&evs, cpid) > 0);

    // only the server
    cap.set_pid_filter(spid, PidAction::Include).unwrap();
    cap.set_filter_mode(PidFilterMode::Only).unwrap();
    let (cpid, evs) = round(&mut cap);
    assert!(server_events(&evs) > 0);
    assert_eq!(client_events(&evs, cpid), 0, "non-included curl traced");
    // roles survive filtering: the server's data is still marked as server side
    assert!(data(&evs).all(|d| d.role == Role::Server));

    // more marked pids than app_config holds inline: the app_pids map decides (cached per
    // thread), in both modes
    let others: Vec<u32> = (1..=5).map(|i| u32::MAX - i).collect();
    for &p in &others {
        cap.set_pid_filter(p, PidAction::Include).unwrap();
    }
    let (cpid, evs) = round(&mut cap);
    assert!(
        server_events(&evs) > 0,
        "included server not traced (map path)"
    );
    assert_eq!(
        client_events(&evs, cpid),
        0,
        "non-included curl traced (map path)"
    );
    for &p in others.iter().chain([&spid]) {
        cap.set_pid_filter(p, PidAction::Exclude).unwrap();
    }
    cap.set_filter_mode(PidFilterMode::AllExcept).unwrap();
    let (cpid, evs) = round(&mut cap);
    assert_eq!(server_events(&evs), 0, "excluded server traced (map path)");
    assert!(client_events(&evs, cpid) > 0);
    assert_eq!(cap.lost_events(), 0);
}

#[test]
fn no_events_for_non_tcp_fds() {
    require_root();
    let _serial = serial();
    let tmp = tempdir("nontcp");
    let dir = tmp.path().to_path_buf();
    let mut cap = capture_this_process(DEFAULT_CAPTURE_BYTES);
    let mut events = Vec::new();

    // regular file, pipe, UDP, unix stream socket
    let mut f = std::fs::File::create(dir.join("file")).unwrap();
    f.write_all(b"not a socket").unwrap();
    drop(f);
    let _ = std::fs::read(dir.join("file")).unwrap();
    let mut fds = [0i32; 2];
    // SAFETY: fds has room for two fds.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: valid fds and buffers.
    unsafe {
        assert_eq!(libc::write(fds[1], b"pipe".as_ptr().cast(), 4), 4);
        let mut b = [0u8; 4];
        assert_eq!(libc::read(fds[0], b.as_mut_ptr().cast(), 4), 4);
        libc::close(fds[0]);
        libc::close(fds[1]);
    }
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.send_to(b"udp", udp.local_addr().unwrap()).unwrap();
    let mut b = [0u8; 8];
    udp.recv_from(&mut b).unwrap();
    let (mut ua, mut ub) = std::os::unix::net::UnixStream::pair().unwrap();
    ua.write_all(b"unix").unwrap();
    ub.read_exact(&mut b[..4]).unwrap();
    drop((ua, ub, udp));
    collect_until(
        &mut cap,
        &mut events,
        Duration::from_millis(300),
        Duration::ZERO,
        |_| false,
    );
    assert!(events.is_empty(), "events for non-TCP fds: {events:#?}");

    // positive control over IPv6 TCP: the same capture does see TCP
    let listener = TcpListener::bind("[::1]:0").unwrap();
    let mut c = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (mut s, _) = listener.accept().unwrap();
    c.write_all(b"tcp6").unwrap();
    s.read_exact(&mut b[..4]).unwrap();
    collect_until(
        &mut cap,
        &mut events,
        Duration::from_secs(3),
        Duration::from_millis(100),
        |evs| data(evs).count() >= 2,
    );
    let tcp: Vec<_> = data(&events).collect();
    assert!(tcp.iter().any(|d| d.data == b"tcp6"
        && d.direction == Direction::Egress
        && d.role == Role::Client
        && d.local == c.local_addr().unwrap()
        && d.remote == listener.local_addr().unwrap()));
    assert!(tcp
        .iter()
        .any(|d| d.data == b"tcp6" && d.direction == Direction::Ingress && d.role == Role::Server));
    assert!(events
        .iter()
        .any(|e| matches!(e, AppEvent::Accept(a) if a.local == listener.local_addr().unwrap())));
    assert_eq!(cap.lost_events(), 0);
}

#[test]
fn capture_bytes_bounds_the_prefix() {
    require_root();
    let _serial = serial();
    let mut cap = capture_this_process(4096);
    let (mut c, mut s) = loopback_pair();
    let payload: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    c.write_all(&payload).unwrap();
    let mut got = vec![0u8; payload.len()];
    s.read_exact(&mut got).unwrap();
    let mut events = Vec::new();
    collect_until(
        &mut cap,
        &mut events,
        Duration::from_secs(3),
        Duration::from_millis(100),
        |evs| data(evs).any(|d| d.direction == Direction::Egress),
    );
    let w = data(&events)
        .find(|d| d.direction == Direction::Egress && d.local == c.local_addr().unwrap())
        .expect("egress event");
    assert_eq!(w.bytes, 10_000);
    assert_eq!(w.data.len(), 4096);
    assert_eq!(&w.data[..], &payload[..4096]);
    assert!(w.is_truncated());

    assert!(AppCapture::load(&AppCaptureConfig {
        frame_http: false,
        capture_bytes: 4097,
        ..Default::default()
    })
    .is_err());
}

/// Payloads of up to 256 captured bytes are written straight into ring buffer records of 64,
/// 128 or 256 payload bytes (plain buffers and one-iovec calls); larger ones and more iovecs
/// go through the scratch copy. Each write must carry exactly the first
/// min(bytes, capture_bytes) bytes either way, at each size's edges.
#[test]
fn in_place_and_scratch_records_carry_the_same_prefix() {
    require_root();
    let _serial = serial();
    use std::os::fd::AsRawFd;
    for capture in [256u32, 300] {
        let mut cap = capture_this_process(capture);
        let (mut c, mut s) = loopback_pair();
        let sizes = [1usize, 64, 65, 128, 129, 255, 256, 257, 300, 1000];
        let mut sent = Vec::new();
        for (i, &n) in sizes.iter().enumerate() {
            let payload: Vec<u8> = (0..n).map(|j| ((i * 31 + j) % 251) as u8).collect();
            c.write_all(&payload).unwrap();
            let mut got = vec![0u8; n];
            s.read_exact(&mut got).unwrap();
            sent.push((Syscall::Sendto, payload)); // std writes with send(2)
        }
        // writev with one iovec (in place when the prefix fits) and with two (scratch)
        for parts in [&[280usize][..], &[120, 160][..]] {
            let total: usize = parts.iter().sum();
            let mut out: Vec<u8> = (0..total).map(|j| (j % 241) as u8).collect();
            let payload = out.clone();
            let iov = iovecs(&mut out, parts);
            // SAFETY: iov points into `out`, which outlives the call.
            let n = unsafe { libc::writev(c.as_raw_fd(), iov.as_ptr(), iov.len() as i32) };
            assert_eq!(n, total as isize);
            let mut got = vec![0u8; total];
            s.read_exact(&mut got).unwrap();
            sent.push((Syscall::Writev, payload));
        }
        let mut events = Vec::new();
        let local = c.local_addr().unwrap();
        let ours = |d: &&DataEvent| d.direction == Direction::Egress && d.local == local;
        collect_until(
            &mut cap,
            &mut events,
            Duration::from_secs(3),
            Duration::from_millis(50),
            |evs| data(evs).filter(ours).count() >= sent.len(),
        );
        let writes: Vec<&DataEvent> = data(&events).filter(ours).collect();
        assert_eq!(writes.len(), sent.len(), "capture_bytes {capture}");
        // both paths name the process once: its main thread's comm, not this test thread's
        let leader = std::fs::read_to_string(format!("/proc/{}/comm", std::process::id())).unwrap();
        for (w, (sys, payload)) in writes.iter().zip(&sent) {
            let want = payload.len().min(capture as usize);
            assert_eq!(w.comm_str(), leader.trim(), "{} bytes", payload.len());
            assert_eq!(w.syscall, *sys);
            assert_eq!(w.bytes, payload.len() as i64);
            assert_eq!(
                w.data,
                payload[..want],
                "capture_bytes {capture}, {} bytes",
                payload.len()
            );
            assert_eq!(w.is_truncated(), payload.len() > want);
        }
        // the reads, in place too
        let reads = data(&events)
            .filter(|d| d.direction == Direction::Ingress && d.remote == local)
            .count();
        assert_eq!(reads, sent.len(), "capture_bytes {capture}");
        assert_eq!(cap.lost_events(), 0);
    }
}

/// `iovecs` of `sizes` bytes over `buf`.
fn iovecs(buf: &mut [u8], sizes: &[usize]) -> Vec<libc::iovec> {
    let mut off = 0;
    sizes
        .iter()
        .map(|&n| {
            let v = libc::iovec {
                iov_base: buf[off..].as_mut_ptr().cast(),
                iov_len: n,
            };
            off += n;
            v
        })
        .collect()
}

#[test]
fn vectored_calls_copy_across_sixty_four_iovecs() {
    require_root();
    let _serial = serial();
    let mut cap = capture_this_process(4096);
    let (c, s) = loopback_pair();
    use std::os::fd::AsRawFd;

    // writev: 70 iovecs of 30 bytes, one empty -> the first 64 iovecs (63 of them
    // non-empty) are copied
    let mut sizes = vec![30usize; 70];
    sizes[3] = 0;
    let total: usize = sizes.iter().sum();
    let mut out: Vec<u8> = (0..total as u32).map(|i| (i % 251) as u8).collect();
    let want_writev = out[..63 * 30].to_vec();
    let iov = iovecs(&mut out, &sizes);
    // SAFETY: iov points into `out`, which outlives the call.
    let n = unsafe { libc::writev(c.as_raw_fd(), iov.as_ptr(), iov.len() as i32) };
    assert_eq!(n, total as isize);
    // one readv of the same bytes into 70 iovecs of 30 (the bytes are all queued already)
    let mut inb = vec![0u8; 70 * 30];
    let iov = iovecs(&mut inb, &[30; 70]);
    // SAFETY: iov points into `inb`, which outlives the call.
    let n = unsafe { libc::readv(s.as_raw_fd(), iov.as_ptr(), iov.len() as i32) };
    assert_eq!(n, total as isize);

    // sendmsg: 70 iovecs of 100 bytes -> capture_bytes, across the first 41
    let mut out2: Vec<u8> = (0..7000u32).map(|i| (i % 241) as u8).collect();
    let want_sendmsg = out2[..4096].to_vec();
    let iov = iovecs(&mut out2, &[100; 70]);
    // SAFETY: a zeroed msghdr is valid; iov points into `out2`, which outlives the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = iov.len();
    // SAFETY: see above.
    let n = unsafe { libc::sendmsg(c.as_raw_fd(), &msg, 0) };
    assert_eq!(n, 7000);
    let mut rest = vec![0u8; 7000];
    (&s).read_exact(&mut rest).unwrap();

    let mut events = Vec::new();
    collect_until(
        &mut cap,
        &mut events,
        Duration::from_secs(3),
        Duration::from_millis(100),
        |evs| data(evs).any(|d| d.syscall == Syscall::Sendmsg),
    );
    let local = c.local_addr().unwrap();
    let find = |sys: Syscall| {
        data(&events)
            .find(|d| d.syscall == sys && (d.local == local || d.remote == local))
            .unwrap_or_else(|| panic!("no {sys:?} event"))
    };
    let w = find(Syscall::Writev);
    assert_eq!(w.bytes, total as i64);
    assert_eq!(
        w.data, want_writev,
        "writev: 63 non-empty of the first 64 iovecs"
    );
    let r = find(Syscall::Readv);
    assert_eq!(r.bytes, total as i64);
    assert_eq!(r.data[..], inb[..64 * 30], "readv: the first 64 iovecs");
    let m = find(Syscall::Sendmsg);
    assert_eq!(m.bytes, 7000);
    assert_eq!(
        m.data, want_sendmsg,
        "sendmsg: capture_bytes across 41 iovecs"
    );
    assert!(m.is_truncated());
    assert_eq!(cap.lost_events(), 0);
}

/// Ids of the links whose program is `prog` (`<id>: <type>  prog <prog id> ...`).
fn link_ids_of(prog: u32) -> Vec<u32> {
    let out = std::process::Command::new("bpftool")
        .args(["link", "show"])
        .output()
        .expect("bpftool");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(&format!(" prog {prog} ")) || l.ends_with(&format!(" prog {prog}")))
        .filter_map(|l| l.split_once(':')?.0.trim().parse().ok())
        .collect()
}

#[test]
fn detach_and_drop_leave_no_program_or_link() {
    require_root();
    let _serial = serial();
    let mut cap = AppCapture::load(&per_call()).unwrap();
    cap.attach().unwrap();
    let progs: Vec<u32> = cap.program_ids().into_iter().flatten().collect();
    assert_eq!(
        progs.len(),
        4,
        "ids of app_sock_send, app_sock_recv, app_sock_state and app_task_exit: {progs:?}"
    );
    // each tp_btf program is attached through one BPF link (a raw tracepoint link)
    let links_of_all = || -> Vec<u32> {
        progs
            .iter()
            .flat_map(|p| {
                let links = link_ids_of(*p);
                assert_eq!(links.len(), 1, "links of program {p}: {links:?}");
                links
            })
            .collect()
    };
    let links = links_of_all();
    cap.detach().unwrap();
    assert!(!cap.is_attached());
    for id in &links {
        assert!(
            !bpf_object_remains("link", *id),
            "link {id} left after detach"
        );
    }
    // attach again, then drop without detaching: everything goes with the capture
    cap.attach().unwrap();
    let again = links_of_all();
    drop(cap);
    for id in &progs {
        assert!(
            !bpf_object_remains("prog", *id),
            "program {id} still loaded"
        );
    }
    for id in &again {
        assert!(
            !bpf_object_remains("link", *id),
            "link {id} left after drop"
        );
    }
}

/// The socket-layer hooks, in this process: connect/accept announced once each before their
/// first data, `splice` from a pipe counted (no payload), `MSG_PEEK` not counted, a half-close
/// (`shutdown(SHUT_WR)`) is not a close (data still arrives after it), and each socket's
/// close is reported exactly once, after its last data.
#[test]
fn splice_peek_half_close_and_one_close_per_socket() {
    use std::os::fd::AsRawFd;
    require_root();
    let _serial = serial();
    let mut cap = capture_this_process(DEFAULT_CAPTURE_BYTES);
    let (mut client, mut server) = loopback_pair();
    let client_port = client.local_addr().unwrap().port();

    let request = b"GET /spliced HTTP/1.1\r\nHost: x\r\n\r\n";
    client.write_all(request).unwrap();
    let mut buf = [0u8; 4096];
    // peek first: the bytes stay queued and are reported once, by the read that takes them
    // SAFETY: valid fd and buffer.
    let peeked = unsafe {
        libc::recv(
            server.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_PEEK,
        )
    };
    assert_eq!(peeked, request.len() as isize);
    server.read_exact(&mut buf[..request.len()]).unwrap();

    // response head by write, body by splice from a pipe (never in user memory)
    let head = b"HTTP/1.1 200 OK\r\nContent-Length: 3000\r\n\r\n";
    server.write_all(head).unwrap();
    let body = vec![b'b'; 3000];
    let mut pipe = [0i32; 2];
    // SAFETY: room for two fds.
    assert_eq!(unsafe { libc::pipe(pipe.as_mut_ptr()) }, 0);
    // SAFETY: valid fds and buffer; splice moves at most what the pipe holds.
    unsafe {
        assert_eq!(libc::write(pipe[1], body.as_ptr().cast(), body.len()), 3000);
        let mut left = 3000isize;
        while left > 0 {
            let n = libc::splice(
                pipe[0],
                std::ptr::null_mut(),
                server.as_raw_fd(),
                std::ptr::null_mut(),
                left as usize,
                0,
            );
            assert!(n > 0, "splice: {}", std::io::Error::last_os_error());
            left -= n;
        }
        libc::close(pipe[0]);
        libc::close(pipe[1]);
    }
    let mut got = vec![0u8; head.len() + 3000];
    client.read_exact(&mut got).unwrap();

    // half-close by the client: the server sees EOF and still answers
    client.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(server.read(&mut buf).unwrap(), 0);
    server.write_all(b"after half-close").unwrap();
    let mut late = [0u8; 16];
    client.read_exact(&mut late).unwrap();
    assert_eq!(&late, b"after half-close");
    drop(client);
    drop(server);

    let events = collect_until_closed(&mut cap, client_port);
    let me = std::process::id();
    let connect: Vec<_> = conn_events(&events, connect).collect();
    let accept: Vec<_> = conn_events(&events, accept).collect();
    assert_eq!((connect.len(), accept.len()), (1, 1), "{events:#?}");
    let (cid, sid) = (connect[0].conn_id, accept[0].conn_id);
    assert_eq!((connect[0].pid, accept[0].pid), (me, me));
    assert_eq!(connect[0].role, Role::Client);
    assert_eq!(accept[0].role, Role::Server);
    assert_eq!(accept[0].remote.port(), client_port);

    // per socket: announcement first, close last and once
    for (id, what) in [(cid, "client"), (sid, "server")] {
        let seq: Vec<&AppEvent> = events.iter().filter(|e| e.conn_id() == id).collect();
        assert!(
            matches!(
                seq.first(),
                Some(AppEvent::Connect(_) | AppEvent::Accept(_))
            ),
            "{what}: {seq:#?}"
        );
        let close: Vec<_> = conn_events(&events, close)
            .filter(|c| c.conn_id == id)
            .collect();
        assert_eq!(close.len(), 1, "{what} closes: {close:#?}");
        assert_eq!(close[0].pid, me);
        assert!(
            matches!(seq.last(), Some(AppEvent::Close(_))),
            "{what}: {seq:#?}"
        );
    }

    // exact byte counts per direction and socket
    assert_eq!(
        bytes_of(&events, me, cid, Direction::Egress),
        request.len() as i64
    );
    assert_eq!(
        bytes_of(&events, me, sid, Direction::Ingress),
        request.len() as i64
    );
    let response = (head.len() + 3000 + 16) as i64;
    assert_eq!(bytes_of(&events, me, sid, Direction::Egress), response);
    assert_eq!(bytes_of(&events, me, cid, Direction::Ingress), response);
    let ingress_reqs = data(&events)
        .filter(|d| d.conn_id == sid && d.direction == Direction::Ingress)
        .count();
    assert_eq!(ingress_reqs, 1, "the peeked request is reported once");
    let spliced: Vec<_> = data(&events)
        .filter(|d| d.conn_id == sid && d.syscall == Syscall::Splice)
        .collect();
    assert!(!spliced.is_empty());
    for d in &spliced {
        assert!(d.payload_invisible && d.data.is_empty(), "{d:?}");
        assert_eq!(d.direction, Direction::Egress);
    }
    assert_eq!(spliced.iter().map(|d| d.bytes).sum::<i64>(), 3000);
    assert!(data(&events).any(|d| d.conn_id == cid
        && d.direction == Direction::Ingress
        && d.data.ends_with(b"after half-close")));
    assert_eq!(cap.lost_events(), 0);
}

/// One socket written through two fd numbers (dup), then through one of them after the other
/// number was reused for a file: every write is reported once, under the fd it used, with its
/// exact bytes (the per-socket fd cache of the capture follows the fd a call names).
#[test]
fn dup_and_reused_fd_numbers_report_each_write_under_its_fd() {
    use std::os::fd::AsRawFd;
    require_root();
    let _serial = serial();
    let mut cap = capture_this_process(DEFAULT_CAPTURE_BYTES);
    let (client, mut server) = loopback_pair();
    let client_port = client.local_addr().unwrap().port();
    let a = client.as_raw_fd();
    // SAFETY: `a` is open; the duplicate is closed below.
    let b = unsafe { libc::dup(a) };
    assert!(b >= 0);
    let write = |fd: i32, what: &[u8]| {
        // SAFETY: valid fd and buffer.
        let n = unsafe { libc::write(fd, what.as_ptr().cast(), what.len()) };
        assert_eq!(n, what.len() as isize, "write on fd {fd}");
    };
    write(a, b"one");
    write(b, b"two!");
    write(a, b"three");
    // number `a` now names a file: writes to it are no socket I/O
    let reused = {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .unwrap();
        drop(client); // frees number `a` (the socket lives on through `b`)
                      // SAFETY: dup2 onto the now free number `a`.
        assert_eq!(unsafe { libc::dup2(file.as_raw_fd(), a) }, a);
        a
    };
    write(reused, b"to the file");
    write(b, b"four");
    let mut got = [0u8; 16];
    server.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"onetwo!threefour");
    // SAFETY: both were opened above.
    unsafe {
        libc::close(reused);
        libc::close(b);
    }
    drop(server);

    let events = collect_until_closed(&mut cap, client_port);
    let cid = conn_events(&events, connect)
        .next()
        .expect("connect")
        .conn_id;
    let writes: Vec<(i32, i64, Vec<u8>)> = data(&events)
        .filter(|d| d.conn_id == cid && d.direction == Direction::Egress)
        .map(|d| (d.fd, d.bytes, d.data.clone()))
        .collect();
    assert_eq!(
        writes,
        vec![
            (a, 3, b"one".to_vec()),
            (b, 4, b"two!".to_vec()),
            (a, 5, b"three".to_vec()),
            (b, 4, b"four".to_vec()),
        ]
    );
    assert_eq!(cap.lost_events(), 0);
}

/// A kernel older than the socket tracepoints (before 6.3) lacks `btf_trace_sock_send_length`:
/// aya reports that as an unknown BTF type, which `AppCapture::load` turns into "needs Linux
/// 6.3 or later" (unit test in `app.rs`). Checked here against this kernel's BTF with a
/// tracepoint name no kernel has.
#[test]
fn a_tracepoint_missing_from_the_kernel_is_an_unknown_btf_type() {
    use aya::programs::{BtfTracePoint, ProgramError};
    require_root();
    let mut ebpf = aya::EbpfLoader::new()
        .allow_unsupported_maps()
        .load(tapline_ebpf::app::APP_OBJECT)
        .unwrap();
    let btf = aya::Btf::from_sys_fs().unwrap();
    let prog: &mut BtfTracePoint = ebpf
        .program_mut("app_sock_send")
        .unwrap()
        .try_into()
        .unwrap();
    let err = prog
        .load("sock_send_length_of_no_kernel", &btf)
        .unwrap_err();
    assert!(
        matches!(
            err,
            ProgramError::Btf(aya::BtfError::UnknownBtfTypeName { ref type_name })
                if type_name == "btf_trace_sock_send_length_of_no_kernel"
        ),
        "{err:?}"
    );
}
