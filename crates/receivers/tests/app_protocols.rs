//! The `app` receiver on real database and RPC traffic on the real kernel (root), counted
//! exactly: redis-server with redis-benchmark (plain and pipelined) and redis-cli, a private
//! PostgreSQL cluster with psql and pgbench (simple and extended protocol), a private MariaDB
//! with the mariadb client, python grpcio (unary OK, unary error status, server
//! streaming), and kafka-python against `kafka_broker.py` (a minimal broker written for the
//! tests, not a real Kafka broker). Database and messaging operations are reported from the
//! client side only.
//!
//! `capture_bytes`: a request or reply that starts beyond the captured prefix of a read or
//! write is invisible. The pipelined Redis run (16 commands of ~45 bytes per write) and gRPC
//! (several HTTP/2 frames per write) use `capture_bytes: 4096`; PostgreSQL and MariaDB run
//! with the default 256.
//!
//! `cargo test -p tapline-receivers --test app_protocols` as root. Needs:
//! `apt-get install redis-server postgresql mariadb-server mariadb-client` and
//! `pip install grpcio grpcio-tools kafka-python`.

mod app_util;
mod peers;

use std::collections::HashMap;
use std::io::BufRead;
use std::process::{Command, Stdio};

use app_util::*;
use peers::{
    kafka_broker, mariadb, mariadb_client, pgbench, postgres, python_with_kafka, redis, script,
};
use tapline_core::data::{SpanKind, Value};
use tapline_test_support::{free_port, need, tempdir, ChildGuard};

const DB_KEYS: [&str; 4] = [
    "db.system.name",
    "db.operation.name",
    "db.collection.name",
    "error.type",
];

fn db_counts(sink: &Sink, port: u16) -> HashMap<Vec<String>, u64> {
    sink.counts("db.client.operation.duration", port, &DB_KEYS)
        .into_iter()
        .map(|(k, a)| (k, a.count))
        .collect()
}

/// Starts tapline; `poke` makes traffic until a client span of `system` shows up.
fn start_db(extra: &str, system: &'static str, poke: impl Fn()) -> Tapline {
    Tapline::start(extra, poke, move |s| {
        s.spans().iter().any(|(_, _, sp)| {
            sp.kind == SpanKind::Client && sp.attributes.get_str("db.system.name") == Some(system)
        })
    })
}

// ---------- Redis ----------

fn redis_cli(port: u16, args: &[&str]) -> String {
    let bin = need("redis-cli", "apt-get install redis-server");
    run(Command::new(bin).args(["-p", &port.to_string()]).args(args))
}

#[test]
fn redis_benchmark_plain_and_pipelined_count_exactly() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const N: usize = 2000;
    let (redis_plain, redis_piped) = (redis(), redis());
    let (plain, piped) = (redis_plain.port, redis_piped.port);
    let t = start_db("    capture_bytes: 4096", "redis", || {
        let _ = redis_cli(plain, &["PING"]);
    });
    let bench = need("redis-benchmark", "apt-get install redis-server");
    for (port, p) in [(plain, "1"), (piped, "16")] {
        run(Command::new(&bench)
            .args(["-p", &port.to_string(), "-n", &N.to_string()])
            .args(["-t", "get,set", "-P", p, "-c", "10", "-q"]));
    }
    redis_cli(plain, &["SET", "s", "x"]);
    redis_cli(plain, &["LPUSH", "s", "y"]); // WRONGTYPE
    let (sink, telemetry) = t.stop();
    for port in [plain, piped] {
        let c = db_counts(&sink, port);
        assert_eq!(
            c.get(&k(&["redis", "GET", "", ""])),
            Some(&(N as u64)),
            "{port}: {c:?}"
        );
        let sets = if port == plain { N + 1 } else { N };
        assert_eq!(
            c.get(&k(&["redis", "SET", "", ""])),
            Some(&(sets as u64)),
            "{c:?}"
        );
    }
    let c = db_counts(&sink, plain);
    assert_eq!(
        c.get(&k(&["redis", "LPUSH", "", "WRONGTYPE"])),
        Some(&1),
        "{c:?}"
    );
    // the server's side of the same operations is not reported: nothing on the server's
    // own process (every point above has the server's port as server.port)
    let spans = sink.spans();
    let lpush: Vec<_> = spans
        .iter()
        .filter(|(_, _, s)| s.name == "LPUSH")
        .map(|(_, _, s)| s)
        .collect();
    assert_eq!(lpush.len(), 1);
    assert_eq!(lpush[0].kind, SpanKind::Client);
    assert_eq!(
        lpush[0].attributes.get("server.port"),
        Some(&Value::Int(plain as i64))
    );
    assert_eq!(lost(&telemetry), 0);
}

// ---------- PostgreSQL ----------

fn psql(port: u16, sql: &str) -> std::process::Output {
    let bin = need("psql", "apt-get install postgresql");
    Command::new(bin)
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
        .args(["-X", "-q", "-c", sql, "postgres"])
        .env("PGSSLMODE", "disable")
        .output()
        .expect("psql")
}

#[test]
fn postgres_psql_and_pgbench_simple_and_extended_count_exactly() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const N: usize = 500;
    let pg = postgres();
    pgbench(pg.port, &["-i", "-q", "-s", "1"]);
    assert!(psql(pg.port, "CREATE TABLE items (id int, name text)")
        .status
        .success());
    let port = pg.port;
    for mode in ["simple", "extended"] {
        let t = start_db("", "postgresql", || {
            let _ = psql(port, "SELECT 1");
        });
        if mode == "simple" {
            for i in 0..5 {
                let o = psql(port, &format!("INSERT INTO items VALUES ({i}, 'secret')"));
                assert!(o.status.success());
            }
            assert!(psql(port, "SELECT name FROM items WHERE id = 3")
                .status
                .success());
            let err = psql(port, "SELECT * FROM missing_table");
            assert!(!err.status.success());
        }
        pgbench(
            port,
            &["-n", "-S", "-t", &N.to_string(), "-c", "1", "-M", mode],
        );
        let (sink, telemetry) = t.stop();
        let c = db_counts(&sink, port);
        let pg = |op: &str, table: &str, err: &str| c.get(&k(&["postgresql", op, table, err]));
        assert_eq!(
            pg("SELECT", "pgbench_accounts", ""),
            Some(&(N as u64)),
            "{mode}: {c:?}"
        );
        if mode == "simple" {
            assert_eq!(pg("INSERT", "items", ""), Some(&5), "{c:?}");
            assert_eq!(pg("SELECT", "items", ""), Some(&1), "{c:?}");
            assert_eq!(pg("SELECT", "missing_table", "42P01"), Some(&1), "{c:?}");
            let points = sink.attribute_keys("db.client.operation.duration");
            assert!(points.contains(&"db.response.status_code".to_string()));
            assert!(
                !points.contains(&"db.query.text".to_string()),
                "opt-in only"
            );
            let spans = sink.spans();
            assert!(spans.iter().any(|(_, _, s)| s.name == "INSERT items"
                && s.kind == SpanKind::Client
                && s.attributes.get("db.query.text").is_none()));
        }
        assert_eq!(lost(&telemetry), 0);
    }
}

#[test]
fn postgres_query_text_is_opt_in_and_sanitized() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let pg = postgres();
    assert!(psql(pg.port, "CREATE TABLE items (id int, name text)")
        .status
        .success());
    let port = pg.port;
    let t = start_db(
        "    attributes: {db_query_text: true}",
        "postgresql",
        || {
            let _ = psql(port, "SELECT 1");
        },
    );
    assert!(psql(port, "INSERT INTO items VALUES (42, 'secret')")
        .status
        .success());
    let (sink, _) = t.stop();
    let texts: Vec<String> = sink
        .counts("db.client.operation.duration", port, &["db.query.text"])
        .into_keys()
        .map(|k| k[0].clone())
        .collect();
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("INSERT INTO items VALUES (?, ?)")),
        "{texts:?}"
    );
    assert!(
        texts
            .iter()
            .all(|t| !t.contains("secret") && !t.contains("42")),
        "{texts:?}"
    );
}

// ---------- MariaDB ----------

#[test]
fn mariadb_client_queries_count_exactly() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const N: usize = 200;
    let maria = mariadb();
    let port = maria.port;
    let client = |sql: &str| mariadb_client(port, sql);
    client("CREATE DATABASE shop; CREATE TABLE shop.items (id INT PRIMARY KEY, name TEXT)");
    let t = start_db("", "mysql", || {
        client("SELECT 1");
    });
    let mut script = String::new();
    for i in 0..N {
        script.push_str(&format!("INSERT INTO shop.items VALUES ({i}, 'n{i}');\n"));
        script.push_str(&format!("SELECT name FROM shop.items WHERE id = {i};\n"));
    }
    script.push_str("SELECT * FROM shop.missing;\n");
    let out = client(&script);
    assert!(out.contains("1146"), "{out}");
    let (sink, telemetry) = t.stop();
    let c = db_counts(&sink, port);
    let my = |op: &str, table: &str, err: &str| c.get(&k(&["mysql", op, table, err]));
    assert_eq!(my("INSERT", "shop.items", ""), Some(&(N as u64)), "{c:?}");
    assert_eq!(my("SELECT", "shop.items", ""), Some(&(N as u64)), "{c:?}");
    assert_eq!(my("SELECT", "shop.missing", "1146"), Some(&1), "{c:?}");
    assert_eq!(lost(&telemetry), 0);
}

// ---------- gRPC ----------

const GRPC_SERVER: &str = r#"
import sys, grpc
from concurrent import futures
def echo(req, ctx): return req
def fail(req, ctx): ctx.abort(grpc.StatusCode.NOT_FOUND, "no such thing")
def items(req, ctx):
    for i in range(5): yield b"item %d" % i
h = grpc.method_handlers_generic_handler("shop.v1.Catalog", {
    "Warm": grpc.unary_unary_rpc_method_handler(echo),
    "Echo": grpc.unary_unary_rpc_method_handler(echo),
    "Fail": grpc.unary_unary_rpc_method_handler(fail),
    "List": grpc.unary_stream_rpc_method_handler(items),
})
s = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
s.add_generic_rpc_handlers((h,))
s.add_insecure_port("127.0.0.1:" + sys.argv[1])
s.start()
print("ready", flush=True)
s.wait_for_termination()
"#;

/// Warm-up calls (each on a fresh channel) until "go" on stdin, then the counted calls on
/// one channel opened after the receiver demonstrably runs (a connection older than the
/// capture has no preface to detect HTTP/2 from).
const GRPC_CLIENT: &str = r#"
import sys, grpc, time
target, n = sys.argv[1], int(sys.argv[2])
for line in sys.stdin:
    if line.strip() == "go": break
    with grpc.insecure_channel(target) as w:
        w.unary_unary("/shop.v1.Catalog/Warm")(b"w", timeout=10)
    print("warm", flush=True)
ch = grpc.insecure_channel(target)
echo = ch.unary_unary("/shop.v1.Catalog/Echo")
fail = ch.unary_unary("/shop.v1.Catalog/Fail")
lst = ch.unary_stream("/shop.v1.Catalog/List")
for i in range(n):
    assert echo(b"hello %d" % i, timeout=10) == b"hello %d" % i
for i in range(n // 10):
    try:
        fail(b"x", timeout=10); raise SystemExit("Fail succeeded")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.NOT_FOUND
for i in range(3):
    assert len(list(lst(b"", timeout=10))) == 5
ch.close()
print("done", flush=True)
"#;

#[test]
fn grpcio_unary_error_and_streaming_calls_count_exactly() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const N: usize = 200;
    let python = need("python3", "apt-get install python3");
    let ok = Command::new(&python)
        .args(["-c", "import grpc"])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "python grpc module missing: pip install grpcio grpcio-tools"
    );
    let port = free_port();
    let mut server = Command::new(&python)
        .args(["-c", GRPC_SERVER, &port.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("grpc server");
    let mut line = String::new();
    std::io::BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _server = ChildGuard::adopt("peer", server);
    assert_eq!(line.trim(), "ready");
    let mut client = Command::new(&python)
        .args([
            "-c",
            GRPC_CLIENT,
            &format!("127.0.0.1:{port}"),
            &N.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("grpc client");
    let stdin = std::sync::Mutex::new(client.stdin.take().unwrap());
    let mut out = std::io::BufReader::new(client.stdout.take().unwrap());
    let client = ChildGuard::adopt("peer", client);
    let t = Tapline::start(
        "    capture_bytes: 4096",
        || {
            use std::io::Write;
            writeln!(stdin.lock().unwrap(), "warm").unwrap();
            let mut l = String::new();
            out.read_line(&mut l).unwrap();
        },
        |s| {
            [SpanKind::Server, SpanKind::Client].iter().all(|kind| {
                s.spans().iter().any(|(_, _, sp)| {
                    sp.kind == *kind
                        && sp.attributes.get_str("rpc.method") == Some("shop.v1.Catalog/Warm")
                })
            })
        },
    );
    {
        use std::io::Write;
        writeln!(stdin.lock().unwrap(), "go").unwrap();
    }
    let mut l = String::new();
    out.read_line(&mut l).unwrap();
    assert_eq!(l.trim(), "done");
    drop(client);
    let (sink, telemetry) = t.stop();
    // Exact per side, per method and status: grpc gathers a side's HTTP/2 frames into
    // sendmsg calls of many iovecs; the capture copies `capture_bytes` across up to 16 of
    // them, so the HPACK state of what each side WRITES (the client's own :path, the server's
    // own grpc-status) is complete too.
    const KEYS: [&str; 4] = [
        "rpc.system.name",
        "rpc.method",
        "rpc.response.status_code",
        "error.type",
    ];
    let per_call = |metric: &str| -> HashMap<Vec<String>, u64> {
        sink.counts(metric, port, &KEYS)
            .into_iter()
            .filter(|(k, _)| k[1] != "shop.v1.Catalog/Warm")
            .map(|(k, a)| (k, a.count))
            .collect()
    };
    let expected = |fail_error: &str| -> HashMap<Vec<String>, u64> {
        [
            (k(&["grpc", "shop.v1.Catalog/Echo", "OK", ""]), N as u64),
            (
                k(&["grpc", "shop.v1.Catalog/Fail", "NOT_FOUND", fail_error]),
                (N / 10) as u64,
            ),
            (k(&["grpc", "shop.v1.Catalog/List", "OK", ""]), 3),
        ]
        .into_iter()
        .collect()
    };
    // NOT_FOUND is an error for the client, not for the server (semantic conventions)
    assert_eq!(
        per_call("rpc.server.call.duration"),
        expected(""),
        "rpc.server.call.duration per method and status"
    );
    assert_eq!(
        per_call("rpc.client.call.duration"),
        expected("NOT_FOUND"),
        "rpc.client.call.duration per method and status"
    );
    // gRPC is not also reported as plain HTTP/2
    assert!(sink
        .counts("http.server.request.duration", port, &[])
        .is_empty());
    let spans = sink.spans();
    let echo_server = spans
        .iter()
        .filter(|(_, _, s)| s.name == "shop.v1.Catalog/Echo" && s.kind == SpanKind::Server)
        .count();
    assert_eq!(echo_server, N);
    assert_eq!(lost(&telemetry), 0);
}

// ---------- Kafka ----------

/// kafka-python against `kafka_broker.py`, the minimal broker written for the tests (NOT a
/// real Kafka broker; see protocols_kafka_client.rs), on the real kernel: every Produce and
/// Fetch the broker logged for the counted topics is one `messaging.client.operation.duration`
/// point with the same operation, topic and error.
#[test]
fn kafka_python_produce_and_consume_count_exactly() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const TOPICS: [(&str, u64); 2] = [("orders", 7), ("payments.v1", 4)];
    const DENIED: &str = "audit-log";
    let python = python_with_kafka();
    let dir = tempdir("kafka");
    let log = dir.path().join("requests.jsonl");
    let port = free_port();
    let _broker = kafka_broker(port, port, "flexible", DENIED, &log);
    let client = |topics: &[(&str, u64)], denied: bool| {
        let mut c = Command::new(&python);
        c.arg(script("kafka_client.py"))
            .args(["--bootstrap", &format!("127.0.0.1:{port}")]);
        for (t, n) in topics {
            c.args(["--topic", &format!("{t}={n}")]);
        }
        if denied {
            c.args(["--denied", DENIED]);
        }
        run(&mut c)
    };
    let mut pokes = 0;
    let t = Tapline::start(
        "",
        || {
            pokes += 1;
            client(&[(&format!("warmup{pokes}"), 1)], false);
        },
        |s| {
            s.spans().iter().any(|(_, _, sp)| {
                sp.kind == SpanKind::Client
                    && sp
                        .attributes
                        .get_str("messaging.destination.name")
                        .is_some_and(|t| t.starts_with("warmup"))
            })
        },
    );
    let out = client(&TOPICS, true);
    assert!(out.contains("TopicAuthorizationFailedError"), "{out}");
    let (sink, telemetry) = t.stop();

    // what the broker answered for the counted topics (warm-up runs use another topic)
    let mut want: HashMap<Vec<String>, u64> = HashMap::new();
    for line in std::fs::read_to_string(&log).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(
            v.get("broker_error").is_none(),
            "test broker failed: {line}"
        );
        let Some(topic) = v["topic"].as_str() else {
            continue;
        };
        if !(TOPICS.iter().any(|(t, _)| *t == topic) || topic == DENIED) {
            continue;
        }
        let op = match v["api"].as_i64() {
            Some(0) => "send",
            Some(1) => "receive",
            Some(3) => "Metadata",
            other => panic!("topic on api {other:?}: {line}"),
        };
        let error = match v["error"].as_i64() {
            Some(0) => "",
            Some(29) => "TOPIC_AUTHORIZATION_FAILED",
            other => panic!("error {other:?}: {line}"),
        };
        *want.entry(k(&["kafka", op, topic, error])).or_default() += 1;
    }
    for (topic, n) in TOPICS {
        assert_eq!(
            want.get(&k(&["kafka", "send", topic, ""])),
            Some(&n),
            "{want:?}"
        );
    }
    assert_eq!(
        want.get(&k(&["kafka", "send", DENIED, "TOPIC_AUTHORIZATION_FAILED"])),
        Some(&1)
    );
    const KEYS: [&str; 4] = [
        "messaging.system",
        "messaging.operation.name",
        "messaging.destination.name",
        "error.type",
    ];
    let mut got: HashMap<Vec<String>, u64> = HashMap::new();
    for (mut key, a) in sink.counts("messaging.client.operation.duration", port, &KEYS) {
        if key[2].starts_with("warmup") || key[2].is_empty() {
            continue;
        }
        // kafka-python keeps a fetch in flight when a consumer closes: the broker answers it
        // (and logs it), the client never reads the answer, so tapline reports it as
        // `no_response` when the connection closes; at most one per consumer
        if key[1] == "receive" && key[3] == "no_response" {
            assert_eq!(a.count, 1, "{key:?}");
            key[3].clear();
        }
        *got.entry(key).or_default() += a.count;
    }
    assert_eq!(got, want, "app receiver vs the broker's log");
    // client side only: the broker's own reads and writes are not a second report
    let spans = sink.spans();
    let sends: Vec<_> = spans
        .iter()
        .filter(|(_, _, s)| s.name == "send orders")
        .map(|(_, _, s)| s)
        .collect();
    assert_eq!(sends.len(), 7);
    assert!(sends.iter().all(|s| s.kind == SpanKind::Client
        && s.attributes.get("server.port") == Some(&Value::Int(port as i64))
        && s.attributes.get_str("messaging.operation.type") == Some("send")));
    assert_eq!(lost(&telemetry), 0);
}
