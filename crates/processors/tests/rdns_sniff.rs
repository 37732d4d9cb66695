//! `rdns` in `mode: sniff` on a real kernel against a real DNS server (root required, and the
//! `dnsmasq` package): dnsmasq answers on port 53 inside a network namespace this test creates,
//! a client there asks for a few names, and the processor learns exactly those names from the
//! answers it sees, without sending a query of its own.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tapline_core::data::Signal;
use tapline_core::pipeline::BatchFn;
use tapline_core::telemetry::Telemetry;
use tapline_processors::rdns::sniff::{self, SniffCounters, SniffSettings};
use tapline_processors::rdns::{NameCache, RdnsConfig, RdnsProcessor};
use tapline_test_support::fixtures::{first_point_attrs, flow_batch};
use tapline_test_support::netns::{bpf_object_remains, require_root, sh_out, Namespace};
use tapline_test_support::temp::TempDir;
use tapline_test_support::{eventually, eventually_async, need, tempdir, ChildGuard};
use tokio_util::sync::CancellationToken;

/// dnsmasq on port 53 of the namespace's loopback (IPv4 and IPv6), logging every query to a
/// file; killed on drop.
struct Dnsmasq {
    _child: ChildGuard,
    log: PathBuf,
    _dir: TempDir,
}

impl Dnsmasq {
    fn start(ns: &Namespace) -> Dnsmasq {
        let bin = need("dnsmasq", "apt-get install dnsmasq");
        let dir = tempdir("dnsmasq");
        let log = dir.path().join("dnsmasq.log");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &ns.name])
            .arg(bin)
            .args([
                "--conf-file=/dev/null",
                "--keep-in-foreground",
                "--user=root",
                "--pid-file=",
                "--port=53",
                "--listen-address=127.0.0.1,::1",
                "--bind-interfaces",
                "--no-resolv",
                "--no-hosts",
                "--local=/example/",
                "--log-queries",
                &format!("--log-facility={}", log.display()),
                "--host-record=web.example,10.0.0.5,fd00::5",
                "--host-record=db.example,10.0.0.6",
                "--host-record=other.example,10.0.0.7",
                "--host-record=cdn.example,10.0.0.8",
                "--cname=www.example,cdn.example",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        Dnsmasq {
            _child: ChildGuard::spawn("dnsmasq", &mut cmd),
            log,
            _dir: dir,
        }
    }

    /// The `query[TYPE] name from client` lines logged so far.
    fn queries(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(" query["))
            .map(|l| l.split_once(" query[").map_or(l, |(_, q)| q).to_owned())
            .collect()
    }
}

const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;

fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&[0, 1]);
    q
}

/// Asks `server` once; returns (rcode, answer count), or `None` without an answer in 500 ms.
async fn ask(server: SocketAddr, id: u16, name: &str, qtype: u16) -> Option<(u8, u16)> {
    let bind: SocketAddr = if server.is_ipv4() {
        "127.0.0.1:0".parse().unwrap()
    } else {
        "[::1]:0".parse().unwrap()
    };
    let s = tokio::net::UdpSocket::bind(bind).await.unwrap();
    s.send_to(&query(id, name, qtype), server).await.unwrap();
    let mut buf = [0u8; 1500];
    let (n, _) = tokio::time::timeout(Duration::from_millis(500), s.recv_from(&mut buf))
        .await
        .ok()?
        .ok()?;
    (n >= 12 && buf[..2] == id.to_be_bytes())
        .then(|| (buf[3] & 0x0f, u16::from_be_bytes([buf[6], buf[7]])))
}

fn settings(telemetry: &Telemetry) -> SniffSettings {
    SniffSettings {
        id: "rdns".into(),
        interfaces: None,
        max_ttl: Duration::from_secs(300),
        counters: SniffCounters::new(telemetry, "rdns"),
    }
}

fn counter(t: &Telemetry, name: &str) -> i64 {
    t.value(name, &[("processor", "rdns")]).unwrap_or(0)
}

fn names(p: &RdnsProcessor, src: &str, dst: &str) -> (String, String) {
    let mut batch: Signal = flow_batch(&[(src, dst, 1)]);
    p.apply(&mut batch);
    let a = first_point_attrs(&batch);
    (
        a.get_str("src.name").unwrap().to_owned(),
        a.get_str("dst.name").unwrap().to_owned(),
    )
}

fn sniffing_processor() -> (RdnsProcessor, Arc<NameCache>) {
    let cfg: RdnsConfig = serde_yaml::from_str("mode: sniff\nttl: 5m\n").unwrap();
    let cache = Arc::new(NameCache::new(1000));
    (RdnsProcessor::new(cfg, cache.clone()).unwrap(), cache)
}

#[test]
fn sniff_learns_exactly_the_answered_names_and_asks_nothing() {
    require_root();
    let ns = Namespace::new("sniff", true);
    let dns = Dnsmasq::start(&ns);
    let v4: SocketAddr = "127.0.0.1:53".parse().unwrap();
    let v6: SocketAddr = "[::1]:53".parse().unwrap();
    let ns_name = ns.name.clone();
    let (probes_sent, program_id) = ns.block_on(move || async move {
        // dnsmasq is ready when it answers (this probe happens before the sniffer opens).
        let mut probes = 0;
        let deadline = Instant::now() + Duration::from_secs(10);
        while ask(v4, 1, "probe.example", TYPE_A).await.is_none() {
            probes += 1;
            assert!(Instant::now() < deadline, "dnsmasq did not start answering");
        }
        let telemetry = Telemetry::new();
        let (p, cache) = sniffing_processor();
        let s = settings(&telemetry);
        let sniffer = sniff::open(&s).expect("open the sniffer");
        let program_id = sniffer.program_id().unwrap();
        let cancel = CancellationToken::new();
        let task = tokio::spawn(sniff::serve(sniffer, cache.clone(), s, cancel.clone()));

        for (id, server, name, qtype, want) in [
            (10, v4, "web.example", TYPE_A, (0, 1)),
            (11, v6, "web.example", TYPE_AAAA, (0, 1)),
            (12, v4, "db.example", TYPE_A, (0, 1)),
            (13, v4, "www.example", TYPE_A, (0, 2)), // CNAME cdn.example + A
            (14, v6, "missing.example", TYPE_A, (3, 0)), // NXDOMAIN
        ] {
            assert_eq!(ask(server, id, name, qtype).await, Some(want), "{name}");
        }
        eventually_async("the five answers", Duration::from_secs(5), || {
            counter(&telemetry, "tapline_rdns_sniffed_answers_total") == 5
        })
        .await;
        assert_eq!(counter(&telemetry, "tapline_rdns_sniffed_names_total"), 4);
        assert_eq!(cache.len(), 4, "exactly the answered addresses");
        assert_eq!(
            names(&p, "10.0.0.5", "10.0.0.6"),
            ("web.example".into(), "db.example".into())
        );
        assert_eq!(
            names(&p, "fd00::5", "10.0.0.8"),
            ("web.example".into(), "www.example".into()),
            "AAAA over IPv6, and the CNAME's address named as asked"
        );
        // other.example exists but nobody asked: its address passes as itself.
        assert_eq!(
            names(&p, "10.0.0.7", "10.0.0.9"),
            ("10.0.0.7".into(), "10.0.0.9".into())
        );
        assert_eq!(p.in_flight(), 0);
        assert_eq!(counter(&telemetry, "tapline_rdns_sniff_dropped_total"), 0);

        // Shutdown closes the socket.
        cancel.cancel();
        tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .expect("the sniffer stops when cancelled")
            .unwrap();
        let packet = sh_out(&["ip", "netns", "exec", &ns_name, "cat", "/proc/net/packet"]);
        assert_eq!(
            packet.lines().count(),
            1,
            "a packet socket remains:\n{packet}"
        );
        (probes + 1, program_id)
    });
    assert!(
        !bpf_object_remains("prog", program_id),
        "the sniffer's program {program_id} is still loaded"
    );

    // Besides the readiness probes, dnsmasq saw the client's five queries and nothing else:
    // tapline asked nothing (no PTR, no repeat).
    let is_probe = |q: &String| q == "A] probe.example from 127.0.0.1";
    eventually(
        "dnsmasq to log the client's five queries",
        Duration::from_secs(5),
        || dns.queries().iter().filter(|q| !is_probe(q)).count() >= 5,
    );
    // A query tapline should not have sent would be logged after the client's: give dnsmasq
    // the time to write it. Absence cannot be polled for; this window is the check.
    std::thread::sleep(Duration::from_millis(200));
    let queries = dns.queries();
    let probes = queries.iter().filter(|q| is_probe(q)).count();
    assert!((1..=probes_sent).contains(&probes), "{queries:?}");
    assert_eq!(
        queries[probes..],
        [
            "A] web.example from 127.0.0.1",
            "AAAA] web.example from ::1",
            "A] db.example from 127.0.0.1",
            "A] www.example from 127.0.0.1",
            "A] missing.example from ::1",
        ]
    );
}

/// A hand-made answer: `name` A `addr`, TTL 60.
fn answer(name: &str, addr: [u8; 4]) -> Vec<u8> {
    let mut m = query(0x4242, name, TYPE_A);
    m[2] = 0x81;
    m[3] = 0x80;
    m[7] = 1;
    m.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
    m.extend_from_slice(&addr);
    m
}

#[test]
fn sniff_ignores_what_is_not_a_dns_answer() {
    require_root();
    let ns = Namespace::new("junk", true);
    ns.block_on(|| async {
        let telemetry = Telemetry::new();
        let (p, cache) = sniffing_processor();
        let s = settings(&telemetry);
        let sniffer = sniff::open(&s).expect("open the sniffer");
        let cancel = CancellationToken::new();
        let task = tokio::spawn(sniff::serve(sniffer, cache.clone(), s, cancel.clone()));

        let server = std::net::UdpSocket::bind("127.0.0.1:53").unwrap();
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = client.local_addr().unwrap();
        let good = answer("late.example", [10, 0, 0, 10]);
        let mut as_query = good.clone();
        as_query[2] = 0x01; // QR = 0
        let junk: Vec<Vec<u8>> = vec![
            b"\xde\xad\xbe\xef garbage from port 53".to_vec(),
            Vec::new(),
            good[..good.len() - 3].to_vec(),
            as_query,
            (0..=255u8).collect(),
        ];
        for j in &junk {
            server.send_to(j, to).unwrap();
        }
        // Sent from another port: the filter never passes it.
        let other = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        other
            .send_to(&answer("spoof.example", [10, 0, 0, 11]), to)
            .unwrap();
        server.send_to(&good, to).unwrap();
        eventually_async("the good answer", Duration::from_secs(5), || {
            cache.get(&IpAddr::from([10, 0, 0, 10])).is_some()
        })
        .await;
        assert_eq!(
            counter(&telemetry, "tapline_rdns_sniffed_answers_total"),
            junk.len() as i64 + 1
        );
        assert_eq!(counter(&telemetry, "tapline_rdns_sniffed_names_total"), 1);
        assert_eq!(cache.len(), 1);
        assert_eq!(names(&p, "10.0.0.10", "10.0.0.11").0, "late.example");
        assert_eq!(names(&p, "10.0.0.10", "10.0.0.11").1, "10.0.0.11");
        assert!(!task.is_finished(), "junk does not stop the sniffer");
        cancel.cancel();
        tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .unwrap()
            .unwrap();
    });
}
