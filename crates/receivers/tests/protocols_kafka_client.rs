//! The Kafka parser on the traffic of a real client library, kafka-python (producer with
//! `send().get()`, consumers with `assign()` and no group), through a recording proxy, against
//! `kafka_broker.py`: a minimal broker written for these tests from the protocol
//! specification. It is NOT a real Kafka broker (none is installable here): it answers
//! ApiVersions, Metadata, Produce, Fetch, ListOffsets and InitProducerId, and logs every
//! request it answered, which is the count the parser's operations are compared against.
//!
//! Each test advertises a different set of versions, so the client negotiates Produce
//! v9/Fetch v12/Metadata v12 (flexible), Produce v8/Fetch v11/Metadata v8 (the last classic
//! ones) or Produce v3/Fetch v5/Metadata v4 (Kafka 0.11's).
//!
//! `cargo test -p tapline-receivers --test protocols_kafka_client`. Needs
//! `pip install kafka-python` (scripts/install-test-deps.sh).

mod peers;
mod protocols_util;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use peers::{kafka_broker, python_with_kafka, script};
use protocols_util::*;
use tapline_protocols::{Dir, Protocol, Status};
use tapline_test_support::process::run;
use tapline_test_support::{free_port, tempdir};

const PRODUCED: [(&str, usize); 2] = [("orders", 7), ("payments.v1", 4)];
const DENIED: &str = "audit-log";

/// One request as the broker logged it.
#[derive(Debug)]
struct Logged {
    api: i16,
    version: i16,
    topic: Option<String>,
    error: i16,
}

struct Run {
    reads: Vec<Read_>,
    broker_port: u16,
    log: Vec<Logged>,
    wall: Duration,
}

/// Broker (with `profile`) behind a recording proxy, the client script through the proxy.
fn run_client(profile: &str) -> Run {
    let python = python_with_kafka();
    let dir = tempdir("kafka");
    let log_path = dir.path().join("requests.jsonl");
    let broker_port = free_port();
    let proxy = Proxy::start(format!("127.0.0.1:{broker_port}").parse().unwrap());
    let broker = kafka_broker(broker_port, proxy.port, profile, DENIED, &log_path);
    let mut client = Command::new(&python);
    client
        .arg(script("kafka_client.py"))
        .args(["--bootstrap", &proxy.addr(), "--denied", DENIED]);
    for (topic, n) in PRODUCED {
        client.args(["--topic", &format!("{topic}={n}")]);
    }
    let started = Instant::now();
    let out = run(&mut client, Duration::from_secs(120));
    let wall = started.elapsed();
    let summary: serde_json::Value = serde_json::from_str(out.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("client summary: {e}\n{out}"));
    for (topic, n) in PRODUCED {
        assert_eq!(summary["consumed"][topic], n, "read back: {out}");
    }
    assert_eq!(summary["denied_error"], "TopicAuthorizationFailedError");
    let reads = proxy.finish();
    drop(broker);
    let text = std::fs::read_to_string(&log_path).expect("broker log");
    let log = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert!(v.get("broker_error").is_none(), "test broker failed: {l}");
            Logged {
                api: v["api"].as_i64().unwrap() as i16,
                version: v["version"].as_i64().unwrap() as i16,
                topic: v["topic"].as_str().map(String::from),
                error: v["error"].as_i64().unwrap() as i16,
            }
        })
        .collect();
    Run {
        reads,
        broker_port,
        log,
        wall,
    }
}

/// The broker's log as the parser should report it: (operation name, topic, error.type).
fn expected(log: &[Logged]) -> BTreeMap<(String, Option<String>, Option<String>), usize> {
    let mut m = BTreeMap::new();
    for r in log {
        let name = match r.api {
            0 => "send",
            1 => "receive",
            2 => "ListOffsets",
            3 => "Metadata",
            18 => "ApiVersions",
            22 => "InitProducerId",
            k => panic!("the test broker answered api {k}"),
        };
        // only Produce, Fetch and Metadata bodies are read, for their topic and error code
        let read = matches!(r.api, 0 | 1 | 3);
        let error = match (read, r.error) {
            (false, _) | (true, 0) => None,
            (true, 29) => Some("TOPIC_AUTHORIZATION_FAILED".to_string()),
            (true, c) => panic!("the test broker replied error {c}"),
        };
        let topic = if read { r.topic.clone() } else { None };
        *m.entry((name.to_string(), topic, error)).or_insert(0) += 1;
    }
    m
}

/// The versions the client used, per api key.
fn versions(log: &[Logged]) -> BTreeMap<i16, Vec<i16>> {
    let mut m: BTreeMap<i16, Vec<i16>> = BTreeMap::new();
    for r in log {
        let v = m.entry(r.api).or_default();
        if !v.contains(&r.version) {
            v.push(r.version);
        }
    }
    m
}

fn check(profile: &str, produce: i16, fetch: i16, metadata: i16) {
    let run = run_client(profile);
    let used = versions(&run.log);
    assert_eq!(used[&0], [produce], "Produce versions: {used:?}");
    assert_eq!(used[&1], [fetch], "Fetch versions: {used:?}");
    assert_eq!(used[&3], [metadata], "Metadata versions: {used:?}");
    let want = expected(&run.log);
    // what the broker saw, independently of the parser
    for (topic, n) in PRODUCED {
        let key = ("send".to_string(), Some(topic.to_string()), None);
        assert_eq!(want.get(&key), Some(&n), "{want:#?}");
        let key = ("receive".to_string(), Some(topic.to_string()), None);
        assert!(want.get(&key).is_some_and(|&c| c >= 1), "{want:#?}");
    }
    let denied = (
        "send".to_string(),
        Some(DENIED.to_string()),
        Some("TOPIC_AUTHORIZATION_FAILED".to_string()),
    );
    assert_eq!(want.get(&denied), Some(&1), "{want:#?}");

    let client_bytes: u64 = run
        .reads
        .iter()
        .filter(|r| r.dir == Dir::ClientToServer)
        .map(|r| r.data.len() as u64)
        .sum();
    let server_bytes: u64 = run
        .reads
        .iter()
        .filter(|r| r.dir == Dir::ServerToClient)
        .map(|r| r.data.len() as u64)
        .sum();
    // the default capture (256 bytes) and the largest the app receiver allows
    for capture in [256, 4096] {
        let (ops, protocols) = replay_sessions(&run.reads, run.broker_port, capture, false);
        assert!(
            protocols.values().all(|p| *p == Some(Protocol::Kafka)),
            "{protocols:?}"
        );
        assert_eq!(tally(&ops), want, "capture {capture}: parser vs broker");
        for o in &ops {
            assert_eq!(o.status == Status::Error, o.error.is_some(), "{o:?}");
            let took = o.end_ns.saturating_sub(o.start_ns);
            assert!(
                took > 0 && took <= run.wall.as_nanos() as u64,
                "duration {took} ns outside (0, {:?}]: {o:?}",
                run.wall
            );
        }
        // every byte on the wire belongs to exactly one reported request or response
        let req: u64 = ops.iter().map(|o| o.request_size).sum();
        let resp: u64 = ops.iter().map(|o| o.response_size).sum();
        assert_eq!(
            (req, resp),
            (client_bytes, server_bytes),
            "capture {capture}"
        );
    }
}

#[test]
fn kafka_python_flexible_versions_count_exactly() {
    check("flexible", 9, 12, 12);
}

#[test]
fn kafka_python_classic_versions_count_exactly() {
    check("classic", 8, 11, 8);
}

#[test]
fn kafka_python_kafka_0_11_versions_count_exactly() {
    check("oldest", 3, 5, 4);
}
