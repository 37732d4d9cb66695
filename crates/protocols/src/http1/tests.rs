use super::head::Method;
use super::*;

const CAPTURE: usize = 256;

/// The observed process's read (`In`) and write (`Out`) side. The harness labels them as a
/// caller that does not know which end the process is: reads as client-to-server, passing a
/// read's exit time as its start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dir {
    In,
    Out,
}

impl Dir {
    fn label(self) -> crate::Dir {
        match self {
            Dir::In => crate::Dir::ClientToServer,
            Dir::Out => crate::Dir::ServerToClient,
        }
    }
}

/// What the assertions read: an operation, with the end the parser settled on and its HTTP
/// fields as the wire had them.
#[derive(Debug)]
struct Observation {
    side: Side,
    method: Method,
    target: Box<str>,
    status: u16,
    start_ns: u64,
    end_ns: u64,
    request_body: u64,
    response_body: u64,
    error: Option<&'static str>,
    traceparent: Option<TraceParent>,
    headers: Vec<(Box<str>, Box<str>)>,
}

/// Drives one connection like the capture would: each call is one syscall.
struct Harness {
    conn: Http1Parser,
    out: Vec<Observation>,
    t: u64,
    /// Exit time of the latest syscall.
    last_ns: u64,
}

impl Harness {
    fn new() -> Self {
        Harness {
            conn: Http1Parser::new(false),
            out: Vec::new(),
            t: 1_000,
            last_ns: 0,
        }
    }
    /// Tells the parser which end the process is (its accept or connect was seen).
    fn set_side(&mut self, side: Side) {
        self.conn.set_requests_dir(match side {
            Side::Server => Dir::In.label(),
            Side::Client => Dir::Out.label(),
        });
    }
    fn observe(&mut self, ops: Vec<Operation>) {
        let side = match self.conn.requests_dir() {
            Some(crate::Dir::ServerToClient) => Side::Client,
            _ => Side::Server,
        };
        self.out.extend(ops.into_iter().map(|op| Observation {
            side,
            method: Method::from_token(op.name.as_bytes()).unwrap(),
            target: op.target.unwrap().into_owned().into(),
            status: match op.status {
                Status::Http(code) => code,
                _ => 0,
            },
            start_ns: op.start_ns,
            end_ns: op.end_ns,
            request_body: op.request_size,
            response_body: op.response_size,
            error: op.error.map(|e| match e {
                Str::Borrowed(e) => e,
                Str::Owned(e) => panic!("HTTP/1.x errors are constants, not {e:?}"),
            }),
            traceparent: op.traceparent,
            headers: op.request_headers,
        }));
    }
    /// A syscall moving `bytes` bytes whose first ones are `data` (captured up to CAPTURE).
    fn io(&mut self, dir: Dir, data: &[u8], bytes: usize) {
        let start = self.t;
        self.t += 10;
        let seg = Segment {
            dir: dir.label(),
            data: &data[..data.len().min(CAPTURE).min(bytes)],
            total_len: bytes as u64,
            start_ns: if dir == Dir::In { self.t } else { start },
            end_ns: self.t,
        };
        self.last_ns = self.t;
        self.t += 10;
        let mut ops = Vec::new();
        self.conn.feed(&seg, &mut ops);
        self.observe(ops);
    }
    fn full(&mut self, dir: Dir, data: &[u8]) {
        self.io(dir, data, data.len());
    }
    fn close(mut self) -> Vec<Observation> {
        let mut ops = Vec::new();
        self.conn.close(self.last_ns, &mut ops);
        self.observe(ops);
        self.out
    }
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: t\r\n\r\n").into_bytes()
}

fn ok(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn target(o: &Observation) -> &str {
    &o.target
}

#[test]
fn one_exchange_server_side() {
    let mut h = Harness::new();
    h.full(Dir::In, &get("/a?x=1"));
    h.full(Dir::Out, &ok("hello"));
    assert_eq!(h.out.len(), 1);
    let o = &h.out[0];
    assert_eq!(o.side, Side::Server);
    assert_eq!(
        (o.method, o.status, target(o)),
        (Method::Get, 200, "/a?x=1")
    );
    // server: from the read's return to the last write's return
    assert_eq!((o.start_ns, o.end_ns), (1_010, 1_030));
    assert_eq!((o.request_body, o.response_body), (0, 5));
    assert!(h.close().len() == 1);
}

#[test]
fn client_side_times_and_body() {
    let mut h = Harness::new();
    h.set_side(Side::Client);
    h.full(
        Dir::Out,
        b"POST /p HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody",
    );
    h.full(
        Dir::In,
        b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
    );
    let o = &h.out[0];
    assert_eq!(o.side, Side::Client);
    assert_eq!((o.start_ns, o.end_ns), (1_000, 1_030));
    assert_eq!((o.status, o.request_body, o.response_body), (201, 4, 0));
}

#[test]
fn keep_alive_thousand() {
    let mut h = Harness::new();
    for i in 0..1000 {
        h.full(Dir::In, &get(&format!("/k/{i}")));
        h.full(Dir::Out, &ok("x"));
    }
    let out = h.close();
    assert_eq!(out.len(), 1000);
    assert!(out
        .iter()
        .enumerate()
        .all(|(i, o)| target(o) == format!("/k/{i}")));
}

#[test]
fn pipelining_in_one_read_and_odd_splits() {
    let mut h = Harness::new();
    let mut reqs = Vec::new();
    for i in 0..5 {
        reqs.extend_from_slice(&get(&format!("/p/{i}")));
    }
    h.full(Dir::In, &reqs);
    let mut resps = Vec::new();
    for i in 0..5 {
        resps.extend_from_slice(&ok(&"z".repeat(i * 10)));
    }
    // written in 7-byte pieces: heads split across syscalls
    for chunk in resps.chunks(7) {
        h.full(Dir::Out, chunk);
    }
    let out = h.close();
    assert_eq!(out.len(), 5);
    for (i, o) in out.iter().enumerate() {
        assert_eq!(target(o), format!("/p/{i}"));
        assert_eq!(o.response_body, i as u64 * 10);
        assert!(o.error.is_none());
    }
}

#[test]
fn large_body_beyond_capture_and_sendfile() {
    let mut h = Harness::new();
    let mib = 1 << 20;
    h.full(Dir::In, &get("/big"));
    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {mib}\r\n\r\n");
    let mut first = head.clone().into_bytes();
    first.resize(first.len() + 1000, b'a');
    // one write: head + the first 1000 body bytes (only 256 captured)
    h.io(Dir::Out, &first, first.len());
    // the rest through sendfile (nothing captured), in 3 calls
    let rest = mib - 1000;
    h.io(Dir::Out, b"", rest / 3);
    h.io(Dir::Out, b"", rest / 3);
    assert!(h.out.is_empty());
    h.io(Dir::Out, b"", rest - 2 * (rest / 3));
    assert_eq!(h.out.len(), 1);
    assert_eq!(h.out[0].response_body, mib as u64);
    // the next request still parses
    h.full(Dir::In, &get("/after"));
    h.full(Dir::Out, &ok(""));
    assert_eq!(target(&h.out[1]), "/after");
}

#[test]
fn chunked_response_with_unseen_data() {
    let mut h = Harness::new();
    h.full(Dir::In, &get("/c"));
    let mut r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    r.extend_from_slice(b"1000\r\n");
    r.resize(r.len() + 0x1000, b'q');
    r.extend_from_slice(b"\r\n");
    h.full(Dir::Out, &r); // chunk data mostly beyond the capture
    h.full(Dir::Out, b"3\r\nabc\r\n0\r\n\r\n");
    assert_eq!(h.out.len(), 1);
    assert_eq!(h.out[0].response_body, 0x1003);
}

#[test]
fn client_gone_mid_response_is_one_error() {
    let mut h = Harness::new();
    h.full(Dir::In, &get("/big"));
    let head = b"HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n";
    h.io(Dir::Out, head, head.len() + 65536);
    // the next write fails (EPIPE, no event); the server closes
    let out = h.close();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].error, Some(ERROR_INCOMPLETE));
    assert_eq!(out[0].status, 200);
    assert_eq!(out[0].response_body, 65536);
}

#[test]
fn request_without_response_at_close() {
    let mut h = Harness::new();
    h.full(Dir::In, &get("/x"));
    let out = h.close();
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].status, out[0].error), (0, Some(ERROR_NO_RESPONSE)));
}

#[test]
fn connection_older_than_capture_resyncs() {
    let mut h = Harness::new();
    // we join in the middle of a request body and of its response body
    h.full(Dir::In, b"tail of an old request body");
    h.full(Dir::Out, b"...rest of an old response");
    h.full(Dir::In, &get("/new"));
    h.full(Dir::Out, &ok("fine"));
    let out = h.close();
    assert_eq!(out.len(), 1);
    assert_eq!(target(&out[0]), "/new");
    assert_eq!(out[0].side, Side::Server);
}

#[test]
fn old_connection_response_first() {
    let mut h = Harness::new();
    // a response to a request tapline never saw: consumed, not reported
    h.full(Dir::Out, &ok("old"));
    h.full(Dir::In, &get("/n"));
    h.full(Dir::Out, &ok("new"));
    let out = h.close();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].response_body, 3);
}

#[test]
fn split_request_head() {
    let mut h = Harness::new();
    let r = get("/split");
    for b in r.chunks(1) {
        h.full(Dir::In, b);
    }
    h.full(Dir::Out, &ok("1"));
    assert_eq!(h.out.len(), 1);
    assert_eq!(target(&h.out[0]), "/split");
    // start = the read that completed... the first byte's read
    assert_eq!(h.out[0].start_ns, 1_010);
}

#[test]
fn head_longer_than_capture() {
    let mut h = Harness::new();
    h.full(Dir::In, &get("/1"));
    let mut big = b"HTTP/1.1 200 OK\r\nX-Pad: ".to_vec();
    big.resize(600, b'p');
    big.extend_from_slice(b"\r\nContent-Length: 3\r\n\r\nabc");
    h.full(Dir::Out, &big); // only 256 bytes seen: the end of the head is not
    assert!(h.out.is_empty());
    // the next request proves the response was over
    h.full(Dir::In, &get("/2"));
    assert_eq!(h.out.len(), 1);
    assert_eq!(h.out[0].end_ns, 1_030);
    h.full(Dir::Out, &ok("x"));
    let out = h.close();
    assert_eq!(out.len(), 2);
    assert_eq!(target(&out[1]), "/2");
}

#[test]
fn unframed_response_expires_when_quiet() {
    let mut h = Harness::new();
    h.full(Dir::In, &get("/1"));
    let mut big = b"HTTP/1.1 200 OK\r\nX-Pad: ".to_vec();
    big.resize(600, b'p');
    h.full(Dir::Out, &big);
    let mut out = Vec::new();
    h.conn.expire_unframed(1_000, &mut out);
    assert!(out.is_empty());
    h.conn.expire_unframed(u64::MAX, &mut out);
    assert_eq!(out.len(), 1);
    h.conn.close(h.last_ns, &mut out);
    assert_eq!(out.len(), 1);
}

#[test]
fn head_and_no_body_statuses_and_interim() {
    let mut h = Harness::new();
    h.full(Dir::In, b"HEAD /h HTTP/1.1\r\n\r\n");
    h.full(Dir::Out, b"HTTP/1.1 200 OK\r\nContent-Length: 999\r\n\r\n");
    h.full(
        Dir::In,
        b"PUT /u HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n",
    );
    h.full(Dir::Out, b"HTTP/1.1 100 Continue\r\n\r\n");
    h.full(Dir::In, b"ab");
    h.full(Dir::Out, b"HTTP/1.1 204 No Content\r\n\r\n");
    h.full(Dir::In, &get("/m"));
    h.full(
        Dir::Out,
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
    );
    let out = h.close();
    let got: Vec<(Method, u16, u64)> = out
        .iter()
        .map(|o| (o.method, o.status, o.request_body))
        .collect();
    assert_eq!(
        got,
        vec![
            (Method::Head, 200, 0),
            (Method::Put, 204, 2),
            (Method::Get, 304, 0)
        ]
    );
}

#[test]
fn http10_until_close() {
    let mut h = Harness::new();
    h.full(Dir::In, b"GET / HTTP/1.0\r\n\r\n");
    h.full(Dir::Out, b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\n");
    h.full(Dir::Out, b"streamed body");
    assert!(h.out.is_empty());
    let out = h.close();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].response_body, 13);
    assert!(out[0].error.is_none());
}

#[test]
fn upgrade_stops_parsing() {
    let mut h = Harness::new();
    h.full(
        Dir::In,
        b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    );
    h.full(Dir::Out, b"HTTP/1.1 101 Switching Protocols\r\n\r\n");
    h.full(Dir::In, b"GET /not-http HTTP/1.1\r\n\r\n");
    let out = h.close();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].status, 101);
}

#[test]
fn traceparent_and_headers() {
    let mut h = Harness::new();
    h.conn.capture_headers = true;
    h.full(
        Dir::In,
        b"GET / HTTP/1.1\r\nX-A: b\r\ntraceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n\r\n",
    );
    h.full(Dir::Out, &ok(""));
    let o = &h.out[0];
    assert_eq!(o.traceparent.unwrap().trace_id[0], 0x4b);
    assert_eq!(&*o.headers[0].0, "x-a");
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    fn messages() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            Just(get("/a")),
            Just(ok("hello")),
            Just(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
                    .to_vec()
            ),
            Just(b"POST /p HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc".to_vec()),
            Just(b"HTTP/1.0 200 OK\r\n\r\n".to_vec()),
            proptest::collection::vec(any::<u8>(), 0..300),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Any bytes, cut anywhere, both directions, with unseen tails: no panic, bounded
        /// memory, and never more observations than request heads.
        #[test]
        fn never_panics(
            msgs in proptest::collection::vec((messages(), any::<bool>(), 0usize..400, 0usize..100_000), 0..40),
            capture_headers in any::<bool>(),
        ) {
            let mut conn = Http1Parser::new(capture_headers);
            let mut out = Vec::new();
            let mut t = 0;
            let mut requests = 0usize;
            for (m, dir_in, cut, extra) in &msgs {
                requests += m.windows(9).filter(|w| w.ends_with(b" HTTP/1.")).count();
                let cut = (*cut).min(m.len());
                for part in [&m[..cut], &m[cut..]] {
                    t += 5;
                    let seg = Segment {
                        dir: if *dir_in { Dir::In } else { Dir::Out }.label(),
                        data: &part[..part.len().min(CAPTURE)],
                        total_len: (part.len() + if part.len() > CAPTURE { *extra } else { 0 }) as u64,
                        start_ns: t,
                        end_ns: t + 1,
                    };
                    conn.feed(&seg, &mut out);
                }
                prop_assert!(conn.heap_bytes() < 2 * MAX_HEAD + MAX_PENDING * 1024);
            }
            conn.close(t + 1, &mut out);
            prop_assert!(out.len() <= requests, "{} observations for {} request lines", out.len(), requests);
            for o in &out {
                prop_assert!(o.end_ns >= o.start_ns);
            }
        }

        #[test]
        fn parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let _ = head::parse(&bytes);
            let _ = head::looks_like_start(&bytes);
            let mut c = Chunked::default();
            let n = c.feed(&bytes);
            prop_assert!(n <= bytes.len());
            let _ = c.skip(bytes.len() as u64);
        }
    }
}
