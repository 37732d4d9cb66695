//! The Kafka parser on byte-exact request/response frames written here from the protocol
//! specification (no Kafka broker is installable on this machine): Produce v3/v7/v9, Fetch
//! v4/v11/v12/v13, Metadata v1/v9/v12; flexible versions with compact strings, compact arrays
//! and tagged fields; acks=0; pipelining; a 1 MB produce of which 256 bytes are captured.
//!
//! A real client library is tested too, in protocols_kafka_client.rs (and on the real kernel
//! in app_protocols.rs): kafka-python against `kafka_broker.py`, a minimal broker written for
//! the tests. That broker is NOT a real Kafka broker; the client's requests are real.
//!
//! `cargo test -p tapline-receivers --test protocols_kafka`.

use tapline_protocols::kafka::KafkaParser;
use tapline_protocols::{
    Dir, Operation, ParserConfig, Protocol, ProtocolParser, Segment, Session, Status,
};

/// Encodes fields the way the Kafka protocol guide describes them.
#[derive(Default)]
struct W {
    b: Vec<u8>,
    flex: bool,
}

impl W {
    fn new(flex: bool) -> Self {
        W {
            b: Vec::new(),
            flex,
        }
    }
    fn i8(&mut self, v: i8) -> &mut Self {
        self.b.push(v as u8);
        self
    }
    fn i16(&mut self, v: i16) -> &mut Self {
        self.b.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn i32(&mut self, v: i32) -> &mut Self {
        self.b.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn i64(&mut self, v: i64) -> &mut Self {
        self.b.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn uvarint(&mut self, mut v: u64) -> &mut Self {
        while v >= 0x80 {
            self.b.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.b.push(v as u8);
        self
    }
    fn string(&mut self, s: &str) -> &mut Self {
        if self.flex {
            self.uvarint(s.len() as u64 + 1);
        } else {
            self.i16(s.len() as i16);
        }
        self.b.extend_from_slice(s.as_bytes());
        self
    }
    fn null_string(&mut self) -> &mut Self {
        if self.flex {
            self.uvarint(0)
        } else {
            self.i16(-1)
        }
    }
    fn array(&mut self, n: usize) -> &mut Self {
        if self.flex {
            self.uvarint(n as u64 + 1)
        } else {
            self.i32(n as i32)
        }
    }
    fn bytes(&mut self, data: &[u8]) -> &mut Self {
        if self.flex {
            self.uvarint(data.len() as u64 + 1);
        } else {
            self.i32(data.len() as i32);
        }
        self.b.extend_from_slice(data);
        self
    }
    fn uuid(&mut self, id: [u8; 16]) -> &mut Self {
        self.b.extend_from_slice(&id);
        self
    }
    /// Tagged fields: none, or one (tag 0) to check that they are skipped.
    fn tags(&mut self) -> &mut Self {
        if self.flex {
            self.uvarint(1).uvarint(0).uvarint(3);
            self.b.extend_from_slice(b"tag");
        }
        self
    }
}

/// `[size][header v1/v2][body]`
fn request(api_key: i16, version: i16, corr: i32, flex: bool, body: &W) -> Vec<u8> {
    let mut h = W::new(false);
    h.i16(api_key)
        .i16(version)
        .i32(corr)
        .string("console-producer");
    if flex {
        h.b.push(0); // header v2 tagged fields (client_id above stays a classic string)
    }
    h.b.extend_from_slice(&body.b);
    let mut f = (h.b.len() as i32).to_be_bytes().to_vec();
    f.extend_from_slice(&h.b);
    f
}

/// `[size][correlation id][tags if header v1][body]`
fn response(corr: i32, flex: bool, body: &W) -> Vec<u8> {
    let mut h = W::new(false);
    h.i32(corr);
    if flex {
        h.b.push(0);
    }
    h.b.extend_from_slice(&body.b);
    let mut f = (h.b.len() as i32).to_be_bytes().to_vec();
    f.extend_from_slice(&h.b);
    f
}

const TOPIC_ID: [u8; 16] = *b"\x8d\x1b\x04\x1c\x11\x2f\x4e\x30\x9b\x38\x7c\x5e\x2a\x77\x10\x01";

fn produce_request(v: i16, corr: i32, acks: i16, records: &[u8]) -> Vec<u8> {
    let flex = v >= 9;
    let mut w = W::new(flex);
    if v >= 3 {
        w.null_string(); // transactional_id
    }
    w.i16(acks)
        .i32(30_000)
        .array(1)
        .string("orders")
        .array(1)
        .i32(0)
        .bytes(records)
        .tags()
        .tags()
        .tags();
    request(0, v, corr, flex, &w)
}

fn produce_response(v: i16, corr: i32, error: i16) -> Vec<u8> {
    let flex = v >= 9;
    let mut w = W::new(flex);
    w.array(1)
        .string("orders")
        .array(1)
        .i32(0)
        .i16(error)
        .i64(42);
    if v >= 2 {
        w.i64(-1); // log_append_time
    }
    if v >= 5 {
        w.i64(0); // log_start_offset
    }
    if v >= 8 {
        w.array(0).null_string(); // record_errors, error_message
    }
    w.tags().tags().i32(0).tags();
    response(corr, flex, &w)
}

fn fetch_request(v: i16, corr: i32) -> Vec<u8> {
    let flex = v >= 12;
    let mut w = W::new(flex);
    w.i32(-1).i32(500).i32(1).i32(52_428_800).i8(0);
    if v >= 7 {
        w.i32(0).i32(-1); // session id, epoch
    }
    w.array(1);
    if v >= 13 {
        w.uuid(TOPIC_ID);
    } else {
        w.string("orders");
    }
    w.array(1).i32(0);
    if v >= 9 {
        w.i32(-1); // current_leader_epoch
    }
    w.i64(100);
    if v >= 5 {
        w.i64(-1); // log_start_offset
    }
    w.i32(1_048_576).tags().tags();
    if v >= 7 {
        w.array(0); // forgotten topics
    }
    if v >= 11 {
        w.string(""); // rack_id
    }
    w.tags();
    request(1, v, corr, flex, &w)
}

fn fetch_response(v: i16, corr: i32, error: i16, records: usize) -> Vec<u8> {
    let flex = v >= 12;
    let mut w = W::new(flex);
    w.i32(0);
    if v >= 7 {
        w.i16(0).i32(0);
    }
    w.array(1);
    if v >= 13 {
        w.uuid(TOPIC_ID);
    } else {
        w.string("orders");
    }
    w.array(1).i32(0).i16(error).i64(1000);
    if v >= 4 {
        w.i64(1000).array(0); // last_stable_offset, aborted transactions
    }
    if v >= 5 {
        w.i64(0); // log_start_offset
    }
    if v >= 11 {
        w.i32(-1); // preferred_read_replica
    }
    w.bytes(&vec![0x5a; records]).tags().tags().tags();
    response(corr, flex, &w)
}

fn metadata_request(v: i16, corr: i32) -> Vec<u8> {
    let flex = v >= 9;
    let mut w = W::new(flex);
    w.array(1);
    if v >= 10 {
        w.uuid([0; 16]);
    }
    w.string("orders").tags();
    if v >= 4 {
        w.i8(1);
    }
    if v >= 8 {
        if v <= 10 {
            w.i8(0);
        }
        w.i8(0);
    }
    w.tags();
    request(3, v, corr, flex, &w)
}

fn metadata_response(v: i16, corr: i32) -> Vec<u8> {
    let flex = v >= 9;
    let mut w = W::new(flex);
    if v >= 3 {
        w.i32(0);
    }
    w.array(2);
    for (id, host) in [(1, "broker-1.kafka.svc"), (2, "broker-2.kafka.svc")] {
        w.i32(id).string(host).i32(9092);
        if v >= 1 {
            w.null_string();
        }
        w.tags();
    }
    if v >= 2 {
        w.string("cluster-A");
    }
    if v >= 1 {
        w.i32(1);
    }
    w.array(1).i16(0).string("orders");
    if v >= 10 {
        w.uuid(TOPIC_ID);
    }
    if v >= 1 {
        w.i8(0);
    }
    w.array(2);
    for p in 0..2 {
        w.i16(0).i32(p).i32(1);
        if v >= 7 {
            w.i32(5);
        }
        w.array(2).i32(1).i32(2).array(2).i32(1).i32(2);
        if v >= 5 {
            w.array(0);
        }
        w.tags();
    }
    if v >= 8 {
        w.i32(-2147483648);
    }
    w.tags();
    if (8..=10).contains(&v) {
        w.i32(-2147483648);
    }
    w.tags();
    response(corr, flex, &w)
}

fn seg(dir: Dir, data: &[u8], t: u64) -> Segment<'_> {
    Segment {
        dir,
        data,
        total_len: data.len() as u64,
        start_ns: t,
        end_ns: t + 7,
    }
}

fn exchange(p: &mut KafkaParser, req: &[u8], resp: &[u8], t: u64) -> Vec<Operation> {
    let mut out = Vec::new();
    p.feed(&seg(Dir::ClientToServer, req, t), &mut out).unwrap();
    p.feed(&seg(Dir::ServerToClient, resp, t + 100), &mut out)
        .unwrap();
    out
}

#[test]
fn produce_fetch_metadata_across_versions() {
    let mut p = KafkaParser::new();
    let mut corr = 1;
    for v in [3, 7, 9] {
        let req = produce_request(v, corr, 1, &[7; 64]);
        let resp = produce_response(v, corr, 0);
        let ops = exchange(&mut p, &req, &resp, corr as u64 * 1000);
        assert_eq!(ops.len(), 1, "produce v{v}");
        let o = &ops[0];
        assert_eq!(
            (o.protocol, o.name.as_ref(), o.target.as_deref(), o.status),
            (Protocol::Kafka, "send", Some("orders"), Status::Ok),
            "produce v{v}"
        );
        assert_eq!(
            (o.request_size, o.response_size),
            (req.len() as u64, resp.len() as u64)
        );
        assert_eq!(
            (o.start_ns, o.end_ns),
            (corr as u64 * 1000, corr as u64 * 1000 + 107)
        );
        corr += 1;
    }
    for v in [4, 11, 12] {
        let ops = exchange(
            &mut p,
            &fetch_request(v, corr),
            &fetch_response(v, corr, 0, 300),
            0,
        );
        assert_eq!(ops.len(), 1, "fetch v{v}");
        assert_eq!(
            (
                ops[0].name.as_ref(),
                ops[0].target.as_deref(),
                ops[0].status
            ),
            ("receive", Some("orders"), Status::Ok),
            "fetch v{v}"
        );
        corr += 1;
    }
    for v in [1, 9, 12] {
        let ops = exchange(
            &mut p,
            &metadata_request(v, corr),
            &metadata_response(v, corr),
            0,
        );
        assert_eq!(ops.len(), 1, "metadata v{v}");
        assert_eq!(
            (
                ops[0].name.as_ref(),
                ops[0].target.as_deref(),
                ops[0].status
            ),
            ("Metadata", Some("orders"), Status::Ok),
            "metadata v{v}"
        );
        corr += 1;
    }
    // Fetch v13 names the topic by id: resolved through the metadata v12 response above
    let ops = exchange(
        &mut p,
        &fetch_request(13, corr),
        &fetch_response(13, corr, 0, 10),
        0,
    );
    assert_eq!(
        (ops[0].name.as_ref(), ops[0].target.as_deref()),
        ("receive", Some("orders"))
    );
}

#[test]
fn errors_acks_zero_pipelining_and_large_produces() {
    let mut p = KafkaParser::new();
    let mut out = Vec::new();
    // acks=0: no response will come, the operation ends when written
    p.feed(
        &seg(Dir::ClientToServer, &produce_request(7, 1, 0, &[1; 10]), 10),
        &mut out,
    )
    .unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].name.as_ref(), out[0].response_size), ("send", 0));
    out.clear();

    // three requests in one write, answered in one read; one with an error
    let mut reqs = produce_request(9, 2, -1, &[2; 20]);
    reqs.extend(fetch_request(12, 3));
    reqs.extend(metadata_request(9, 4));
    let mut resps = produce_response(9, 2, 0);
    resps.extend(fetch_response(12, 3, 3, 50));
    resps.extend(metadata_response(9, 4));
    p.feed(&seg(Dir::ClientToServer, &reqs, 20), &mut out)
        .unwrap();
    p.feed(&seg(Dir::ServerToClient, &resps, 30), &mut out)
        .unwrap();
    let got: Vec<_> = out
        .iter()
        .map(|o| (o.name.to_string(), o.error.as_deref().map(str::to_string)))
        .collect();
    assert_eq!(
        got,
        [
            ("send".into(), None),
            ("receive".into(), Some("UNKNOWN_TOPIC_OR_PARTITION".into())),
            ("Metadata".into(), None)
        ]
    );
    out.clear();

    // a 1 MB produce: 256 bytes captured of the first write, the rest in invisible writes; the
    // next request, in its own write, is still found by the length
    let big = produce_request(9, 5, -1, &vec![9; 1 << 20]);
    p.feed(
        &Segment {
            dir: Dir::ClientToServer,
            data: &big[..256],
            total_len: 65536,
            start_ns: 40,
            end_ns: 41,
        },
        &mut out,
    )
    .unwrap();
    let rest = big.len() as u64 - 65536;
    p.feed(
        &Segment {
            dir: Dir::ClientToServer,
            data: &[],
            total_len: rest,
            start_ns: 42,
            end_ns: 43,
        },
        &mut out,
    )
    .unwrap();
    p.feed(
        &seg(Dir::ClientToServer, &fetch_request(11, 6), 44),
        &mut out,
    )
    .unwrap();
    let mut resps = produce_response(9, 5, 0);
    resps.extend(fetch_response(11, 6, 0, 5));
    p.feed(&seg(Dir::ServerToClient, &resps, 50), &mut out)
        .unwrap();
    assert_eq!(out.len(), 2);
    assert_eq!(
        (
            out[0].target.as_deref(),
            out[0].request_size,
            out[0].start_ns
        ),
        (Some("orders"), big.len() as u64, 40)
    );
    assert_eq!(out[1].name, "receive");
    assert_eq!(p.stats().resyncs, 0);
}

#[test]
fn detected_from_the_first_request() {
    let mut s = Session::new(0, ParserConfig::default());
    let mut out = Vec::new();
    s.feed(
        &seg(Dir::ClientToServer, &metadata_request(12, 9), 1),
        &mut out,
    );
    s.feed(
        &seg(Dir::ServerToClient, &metadata_response(12, 9), 2),
        &mut out,
    );
    assert_eq!(s.protocol(), Some(Protocol::Kafka));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].target.as_deref(), Some("orders"));
}
