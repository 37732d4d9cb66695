//! The `flows` receiver end to end on a real kernel (root required): a pipeline graph runs in
//! namespace A, attached to veth `va`; known traffic crosses to namespace B; what the graph
//! exported is compared with what the interface counted.
mod flows_util;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use flows_util::*;

const TCP_BYTES: usize = 4 << 20;

/// Starts an agent on `va`, waits for link-up chatter to end, runs `traffic`, stops the agent;
/// returns what it exported and the deltas of `va`'s counters.
fn run(
    pair: &NetPair,
    yaml: &str,
    receivers: &[&str],
    traffic: impl FnOnce(),
) -> (Collected, [u64; 5]) {
    pair.wait_quiet("va");
    let agent = Agent::start(&pair.a, yaml);
    for r in receivers {
        agent.wait_attached(r, 1);
    }
    let before = pair.counters("va");
    traffic();
    pair.wait_still("va", Duration::from_millis(100));
    let after = pair.counters("va");
    let got = agent.stop();
    (got, std::array::from_fn(|i| after[i] - before[i]))
}

/// Everything `va` counted, per direction, is in the exported points of `exporter`.
fn assert_totals(got: &Collected, exporter: &str, a: &str, delta: [u64; 5]) {
    assert_eq!(delta[4], 0, "veth dropped packets: test traffic too fast");
    // By interface direction when emitted: IPv6 link-local chatter (MLD reports from fe80::,
    // to ff02::16) crosses va too and is counted by both sides.
    let by_ifdir = got
        .select(exporter, BYTES, &[])
        .any(|p| p.attr("iface.direction").is_some());
    type Match<'a> = &'a [(&'a str, &'a str)];
    let (out, inn): (Match, Match) = if by_ifdir {
        (
            &[("iface.direction", "egress")],
            &[("iface.direction", "ingress")],
        )
    } else {
        (&[("src.address", a)], &[("dst.address", a)])
    };
    let tx = (
        got.sum(exporter, BYTES, out) as u64,
        got.sum(exporter, PACKETS, out) as u64,
    );
    let rx = (
        got.sum(exporter, BYTES, inn) as u64,
        got.sum(exporter, PACKETS, inn) as u64,
    );
    assert_eq!(
        tx,
        (delta[2], delta[3]),
        "egress bytes/packets vs tx counters"
    );
    assert_eq!(
        rx,
        (delta[0], delta[1]),
        "ingress bytes/packets vs rx counters"
    );
    let all = got.sum(exporter, BYTES, &[]) as u64;
    assert_eq!(all, delta[0] + delta[2], "nothing but va's traffic");
}

fn tcp(ipv6: bool) {
    require_root();
    let pair = NetPair::new(if ipv6 { "tcp6" } else { "tcp4" }, ipv6);
    let (a, b) = if ipv6 { (A6, B6) } else { (A4, B4) };
    let yaml = single(&format!(
        "interfaces: [va], cache_active_timeout: 1s, attributes: {ALL_ATTRIBUTES}"
    ));
    let mut port = 0;
    let (got, delta) = run(&pair, &yaml, &["flows"], || {
        port = tcp_transfer(&pair, b.parse().unwrap(), TCP_BYTES);
    });
    assert_totals(&got, "collect", a, delta);
    let port_s = port.to_string();
    let out = [
        ("src.address", a),
        ("dst.address", b),
        ("src.port", port_s.as_str()),
        ("dst.port", "5001"),
    ];
    let (bytes, packets) = (
        got.sum("collect", BYTES, &out) as u64,
        got.sum("collect", PACKETS, &out) as u64,
    );
    // Nothing else crosses va but, with IPv6, link-local chatter (MLD reports), which is
    // ICMPv6: (bytes, packets) of the non-TCP points per interface direction.
    let chatter = |dir: &str| -> (u64, u64) {
        let mut c = (0, 0);
        for (metric, slot) in [(BYTES, 0), (PACKETS, 1)] {
            for p in got.select("collect", metric, &[("iface.direction", dir)]) {
                if p.attr("transport") != Some("tcp") {
                    assert_eq!(p.attr("transport"), Some("icmpv6"), "{p:?}");
                    if slot == 0 {
                        c.0 += p.value as u64;
                    } else {
                        c.1 += p.value as u64;
                    }
                }
            }
        }
        c
    };
    let (c_out, c_in) = (chatter("egress"), chatter("ingress"));
    assert!(bytes >= TCP_BYTES as u64);
    assert!(
        within_1pct(bytes, delta[2] - c_out.0),
        "{bytes} vs tx {}",
        delta[2]
    );
    assert_eq!(packets, delta[3] - c_out.1, "packets of the 5-tuple");
    let net = if ipv6 { "ipv6" } else { "ipv4" };
    for p in got.select("collect", BYTES, &out) {
        assert_eq!(p.attr("direction"), Some("request"), "{p:?}");
        assert_eq!(p.attr("client.port"), Some(port_s.as_str()), "{p:?}");
        assert_eq!(p.attr("server.port"), Some("5001"), "{p:?}");
        assert_eq!(p.attr("transport"), Some("tcp"), "{p:?}");
        assert_eq!(p.attr("network.type"), Some(net), "{p:?}");
        assert_eq!(p.attr("iface"), Some("va"), "{p:?}");
        assert_eq!(p.attr("iface.direction"), Some("egress"), "{p:?}");
        assert!(
            p.attr("tapline.ip").is_some_and(|ip| !ip.is_empty()),
            "{p:?}"
        );
    }
    let back = [("src.address", b), ("dst.port", port_s.as_str())];
    assert!(within_1pct(
        got.sum("collect", BYTES, &back) as u64,
        delta[0] - c_in.0
    ));
    assert_eq!(got.sum("collect", PACKETS, &back) as u64, delta[1] - c_in.1);
    for p in got.select("collect", BYTES, &back) {
        assert_eq!(p.attr("direction"), Some("response"), "{p:?}");
        assert_eq!(p.attr("client.port"), Some(port_s.as_str()), "{p:?}");
        assert_eq!(p.attr("server.port"), Some("5001"), "{p:?}");
    }
    assert_eq!(got.counter("tapline_ebpf_events_lost_total", "flows"), 0);
}

#[test]
fn tcp_ipv4_bytes_packets_and_roles() {
    tcp(false);
}

#[test]
fn tcp_ipv6_bytes_packets_and_roles() {
    tcp(true);
}

#[test]
fn udp_exact_volume_and_roles() {
    require_root();
    let pair = NetPair::new("udp", false);
    let yaml = single(&format!("interfaces: [va], attributes: {ALL_ATTRIBUTES}"));
    let (got, delta) = run(&pair, &yaml, &["flows"], || {
        let server = in_netns(&pair.b, || UdpSocket::bind((B4, 9000)).unwrap());
        in_netns(&pair.a, || {
            let s = UdpSocket::bind((A4, 40000)).unwrap();
            for i in 0..1000 {
                s.send_to(&[7u8; 500], (B4, 9000)).unwrap();
                if i % 100 == 99 {
                    // Paced so the capture keeps up, as real traffic would be.
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        });
        drop(server);
    });
    assert_totals(&got, "collect", A4, delta);
    let f = [
        ("src.port", "40000"),
        ("dst.port", "9000"),
        ("transport", "udp"),
    ];
    assert_eq!(got.sum("collect", PACKETS, &f), 1000);
    assert_eq!(got.sum("collect", BYTES, &f), 1000 * (14 + 20 + 8 + 500));
    for p in got.select("collect", BYTES, &f) {
        assert_eq!(p.attr("direction"), Some("request"));
        assert_eq!(p.attr("client.port"), Some("40000"));
        assert_eq!(p.attr("server.port"), Some("9000"));
    }
}

#[test]
fn icmp_echo_requests_and_replies() {
    require_root();
    let pair = NetPair::new("icmp", false);
    let yaml = single("interfaces: [va]");
    let (got, delta) = run(&pair, &yaml, &["flows"], || {
        in_netns(&pair.a, || ping4(B4.parse().unwrap(), 5, 56));
    });
    assert_totals(&got, "collect", A4, delta);
    let req = [("src.address", A4), ("transport", "icmp")];
    assert_eq!(got.sum("collect", PACKETS, &req), 5);
    assert_eq!(got.sum("collect", BYTES, &req), 5 * (14 + 20 + 8 + 56));
    for p in got.select("collect", BYTES, &req) {
        assert_eq!(p.attr("direction"), Some("request"), "{p:?}");
        assert_eq!(p.attr("server.port"), None, "no ports for ICMP: {p:?}");
        assert_eq!(
            p.attr("iface.direction"),
            None,
            "not a default attribute: {p:?}"
        );
    }
    let rep = [
        ("src.address", B4),
        ("transport", "icmp"),
        ("direction", "response"),
    ];
    assert_eq!(got.sum("collect", PACKETS, &rep), 5);
}

#[test]
fn twenty_thousand_flows_through_a_5000_flow_cache() {
    require_root();
    let pair = NetPair::new("ovf", false);
    let yaml = single(&format!(
        "interfaces: [va], cache_max_flows: 5000, cache_active_timeout: 30s, attributes: {ALL_ATTRIBUTES}"
    ));
    const PORTS: u16 = 20_000;
    let (got, delta) = run(&pair, &yaml, &["flows"], || {
        let server = in_netns(&pair.b, || UdpSocket::bind((B4, 9000)).unwrap());
        in_netns(&pair.a, || {
            let deadline = Instant::now() + Duration::from_secs(60);
            for i in 0..PORTS {
                let s = UdpSocket::bind((A4, 20000 + i)).unwrap();
                s.send_to(&[1u8; 32], (B4, 9000)).unwrap();
                if i % 200 == 199 {
                    // Paced so the capture keeps up, as real traffic would be.
                    std::thread::sleep(Duration::from_millis(2));
                    assert!(Instant::now() < deadline, "sending took too long");
                }
            }
        });
        drop(server);
    });
    assert_totals(&got, "collect", A4, delta);
    let ports: std::collections::BTreeSet<&str> = got
        .select(
            "collect",
            PACKETS,
            &[("src.address", A4), ("transport", "udp")],
        )
        .filter_map(|p| p.attr("src.port"))
        .collect();
    assert_eq!(ports.len(), PORTS as usize, "one series per source port");
    assert_eq!(
        got.sum(
            "collect",
            PACKETS,
            &[("src.address", A4), ("transport", "udp")]
        ),
        i64::from(PORTS)
    );
    let overflow = got.counter("tapline_flows_overflow_records_total", "flows");
    assert!(overflow > 0, "the overflow path was not taken");
    // every overflow record came through the ring buffer, counted as it was drained
    assert_eq!(got.counter("tapline_ebpf_records_total", "flows"), overflow);
    assert_eq!(got.counter("tapline_ebpf_events_lost_total", "flows"), 0);
}

#[test]
fn socket_filter_gives_the_same_totals_as_tc() {
    require_root();
    let pair = NetPair::new("sock", false);
    let attrs = ALL_ATTRIBUTES;
    let yaml = format!(
        "receivers:
  flows/tc: {{ interfaces: [va], attributes: {attrs} }}
  flows/sock: {{ source: socket_filter, interfaces: [va], attributes: {attrs} }}
exporters: {{ collect/tc: {{}}, collect/sock: {{}} }}
service:
  pipelines:
    metrics/tc: {{ receivers: [flows/tc], exporters: [collect/tc] }}
    metrics/sock: {{ receivers: [flows/sock], exporters: [collect/sock] }}
"
    );
    let (got, delta) = run(&pair, &yaml, &["flows/tc", "flows/sock"], || {
        tcp_transfer(&pair, B4.parse().unwrap(), TCP_BYTES);
        let server = in_netns(&pair.b, || UdpSocket::bind((B4, 9001)).unwrap());
        in_netns(&pair.a, || {
            let s = UdpSocket::bind((A4, 40001)).unwrap();
            for _ in 0..200 {
                s.send_to(&[3u8; 100], (B4, 9001)).unwrap();
            }
        });
        drop(server);
    });
    assert_totals(&got, "collect/tc", A4, delta);
    assert_totals(&got, "collect/sock", A4, delta);
    let per_flow = |exporter: &str| {
        let mut m = std::collections::BTreeMap::new();
        for p in got.select(exporter, BYTES, &[]) {
            let mut k = p.attrs.clone();
            k.remove("iface");
            *m.entry(k).or_insert(0) += p.value;
        }
        m
    };
    assert_eq!(per_flow("collect/tc"), per_flow("collect/sock"));
}
