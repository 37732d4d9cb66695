//! `rdns` against a real DNS server: dnsmasq on loopback with PTR and host records.
//! Needs the `dnsmasq` package (`apt-get install dnsmasq`).

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tapline_core::data::Signal;
use tapline_core::pipeline::BatchFn;
use tapline_processors::rdns::{NameCache, RdnsConfig, RdnsProcessor};
use tapline_test_support::fixtures::{first_point_attrs, flow_batch, points};
use tapline_test_support::{eventually_async, need, ChildGuard};

struct Dnsmasq {
    _child: ChildGuard,
    port: u16,
    log: Arc<Mutex<Vec<String>>>,
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A query for `name` (PTR), answered or not within 200 ms.
fn answers(port: u16) -> bool {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut q = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in ["1", "0", "0", "127", "in-addr", "arpa"] {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 12, 0, 1]);
    s.send_to(&q, ("127.0.0.1", port)).unwrap();
    let mut buf = [0u8; 512];
    s.recv_from(&mut buf).is_ok()
}

fn start_dnsmasq() -> Dnsmasq {
    let bin = need("dnsmasq", "apt-get install dnsmasq");
    for _attempt in 0..5 {
        let port = free_udp_port();
        let mut child = Command::new(&bin)
            .args([
                "--no-daemon",
                "--port",
                &port.to_string(),
                "--listen-address",
                "127.0.0.1",
                "--bind-interfaces",
                "--no-resolv",
                "--no-hosts",
                "--bogus-priv",
                "--log-queries",
                "--log-facility=-",
                "--ptr-record=5.0.0.10.in-addr.arpa,web.example",
                "--host-record=db.example,10.0.0.6",
                "--ptr-record=1.0.0.127.in-addr.arpa,localhost",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if answers(port) {
                return Dnsmasq {
                    _child: ChildGuard::adopt("dnsmasq", child),
                    port,
                    log,
                };
            }
            if child.try_wait().unwrap().is_some() {
                break; // port taken between our probe and its bind: try another
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("dnsmasq did not start answering on loopback");
}

impl Dnsmasq {
    fn queries_for(&self, name: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("query[PTR]") && l.contains(name))
            .count()
    }
}

fn processor(nameserver: String, max_in_flight: usize, timeout: &str) -> RdnsProcessor {
    let cfg: RdnsConfig = serde_yaml::from_str(&format!(
        "nameservers: [\"{nameserver}\"]\nmax_in_flight: {max_in_flight}\ntimeout: {timeout}\nnegative_ttl: 1m\nttl: 5m\n"
    ))
    .unwrap();
    RdnsProcessor::new(cfg, Arc::new(NameCache::new(1000))).unwrap()
}

fn names(p: &RdnsProcessor, src: &str, dst: &str) -> (String, String) {
    let mut batch: Signal = flow_batch(&[(src, dst, 1)]);
    p.apply(&mut batch);
    let a = first_point_attrs(&batch);
    (
        a.get_str("src.name").unwrap().to_string(),
        a.get_str("dst.name").unwrap().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_arrive_without_holding_batches() {
    let dns = start_dnsmasq();
    let p = processor(format!("127.0.0.1:{}", dns.port), 16, "2s");
    // The first batch passes at once, named by address.
    assert_eq!(
        names(&p, "10.0.0.5", "10.0.0.6"),
        ("10.0.0.5".into(), "10.0.0.6".into())
    );
    eventually_async("PTR answers", Duration::from_secs(5), || {
        names(&p, "10.0.0.5", "10.0.0.6") == ("web.example".into(), "db.example".into())
    })
    .await;
    // Once cached, no more queries.
    let before = dns.queries_for("5.0.0.10.in-addr.arpa");
    for _ in 0..20 {
        assert_eq!(names(&p, "10.0.0.5", "10.0.0.6").0, "web.example");
    }
    assert_eq!(dns.queries_for("5.0.0.10.in-addr.arpa"), before);
    assert_eq!(before, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nxdomain_is_cached_negatively() {
    let dns = start_dnsmasq();
    let p = processor(format!("127.0.0.1:{}", dns.port), 16, "2s");
    assert_eq!(names(&p, "10.0.0.7", "10.0.0.5").0, "10.0.0.7");
    eventually_async("both lookups done", Duration::from_secs(5), || {
        p.in_flight() == 0 && dns.queries_for("7.0.0.10.in-addr.arpa") == 1
    })
    .await;
    eventually_async("the named one", Duration::from_secs(5), || {
        names(&p, "10.0.0.7", "10.0.0.5").1 == "web.example"
    })
    .await;
    for _ in 0..20 {
        assert_eq!(
            names(&p, "10.0.0.7", "10.0.0.5"),
            ("10.0.0.7".into(), "web.example".into())
        );
    }
    // A repeated query would reach dnsmasq's log within this window; absence cannot be
    // polled for, so the window is the check.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(dns.queries_for("7.0.0.10.in-addr.arpa"), 1);
    assert_eq!(p.in_flight(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_server_does_not_stall_the_pipeline() {
    // A socket that receives queries and never answers.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let p = processor(silent.local_addr().unwrap().to_string(), 4, "300ms");
    let flows: Vec<(String, String)> = (0..200)
        .map(|i| {
            (
                format!("10.1.{}.{}", i / 250, i % 250 + 1),
                "10.2.0.1".to_string(),
            )
        })
        .collect();
    let refs: Vec<(&str, &str, i64)> = flows
        .iter()
        .map(|(s, d)| (s.as_str(), d.as_str(), 1))
        .collect();
    let started = Instant::now();
    let mut batch = flow_batch(&refs);
    p.apply(&mut batch);
    let took = started.elapsed();
    assert!(took < Duration::from_millis(100), "batch took {took:?}");
    assert_eq!(p.in_flight(), 4, "lookups are bounded");
    for (a, (src, _)) in points(&batch).iter().zip(&flows) {
        assert_eq!(a.get_str("src.name"), Some(src.as_str()));
    }
    // The stuck lookups time out and are remembered as unnamed; batches stay fast meanwhile.
    eventually_async("timeouts", Duration::from_secs(5), || p.in_flight() == 0).await;
    let started = Instant::now();
    for _ in 0..10 {
        let mut batch = flow_batch(&refs);
        p.apply(&mut batch);
    }
    assert!(
        started.elapsed() < Duration::from_millis(200),
        "{:?}",
        started.elapsed()
    );
    let ip: IpAddr = "10.1.0.1".parse().unwrap();
    assert_eq!(p.cache().get(&ip), None);
}
