//! The `flows` receiver and the interfaces coming and going under it, and deduplication of
//! packets seen on two interfaces (a bridge and its port). Real kernel, root required.
mod flows_util;

use std::net::UdpSocket;
use std::time::Duration;

use flows_util::*;

const A2: &str = "10.79.1.1";
const B2: &str = "10.79.1.2";

/// Sends `n` UDP datagrams of `len` bytes from A:`sport` to B2:9100 (B listens).
fn udp_burst(pair: &NetPair, sport: u16, n: usize, len: usize) {
    let server = in_netns(&pair.b, || UdpSocket::bind((B2, 9100)).unwrap());
    in_netns(&pair.a, || {
        let s = UdpSocket::bind((A2, sport)).unwrap();
        for _ in 0..n {
            s.send_to(&vec![9u8; len], (B2, 9100)).unwrap();
            // Paced like real traffic, so no datagram is dropped on the way.
            std::thread::sleep(Duration::from_micros(200));
        }
    });
    drop(server);
}

#[test]
fn interfaces_appearing_and_disappearing_are_followed() {
    require_root();
    let pair = NetPair::empty("hot", false);
    let yaml = single(&format!(
        "interfaces: [\"/^tlh/\"], cache_active_timeout: 500ms, attributes: {ALL_ATTRIBUTES}"
    ));
    let agent = Agent::start(&pair.a, &yaml);
    agent.wait_attached("flows", 0);

    // Appears after start: attached and counted.
    add_veth(&pair.a, &pair.b, "tlh0", "tlh1", None, (A2, B2), None);
    agent.wait_attached("flows", 1);
    udp_burst(&pair, 41000, 100, 200);
    // One eviction passes with the interface still there: its flows are exported.
    let f41000 = [("src.port", "41000"), ("transport", "udp")];
    eventually(
        "the flows of port 41000 to be exported",
        Duration::from_secs(10),
        || agent.exported().sum("collect", PACKETS, &f41000) == 100,
    );

    // Removed while attached (and while the kernel map may still hold its flows).
    udp_burst(&pair, 41001, 20, 200);
    sh(&["ip", "-n", &pair.a, "link", "del", "tlh0"]);
    agent.wait_attached("flows", 0);
    // Evictions go on after the removal (every 500 ms): a receiver failing on the removed
    // interface would stop within this window. Survival cannot be polled for.
    std::thread::sleep(Duration::from_millis(700));
    assert!(agent.is_running(), "the receiver survived the removal");

    // And again: a new interface of the same name is attached and counted.
    add_veth(&pair.a, &pair.b, "tlh0", "tlh1", None, (A2, B2), None);
    agent.wait_attached("flows", 1);
    udp_burst(&pair, 41002, 50, 200);
    // One not matching the pattern is left alone.
    add_veth(
        &pair.a,
        &pair.b,
        "other0",
        "other1",
        None,
        ("10.79.2.1", "10.79.2.2"),
        None,
    );
    // A receiver wrongly attaching `other0` would do it within this window; absence cannot be
    // polled for.
    std::thread::sleep(Duration::from_millis(300));
    agent.wait_attached("flows", 1);
    let got = agent.stop();

    let frame = 14 + 20 + 8 + 200;
    for (port, n) in [("41000", 100), ("41001", 20), ("41002", 50)] {
        let f = [("src.port", port), ("transport", "udp")];
        assert_eq!(got.sum("collect", PACKETS, &f), n, "port {port}");
        assert_eq!(got.sum("collect", BYTES, &f), n * frame, "port {port}");
        for p in got.select("collect", BYTES, &f) {
            assert_eq!(p.attr("iface"), Some("tlh0"), "{p:?}");
        }
    }
    assert!(
        got.points.iter().all(|p| p.attr("iface") == Some("tlh0")),
        "only tlh0 was attached"
    );
}

/// A: veth `va` enslaved to bridge `tlbr0`, which holds A's address. A packet between A and B
/// crosses both `va` and `tlbr0`.
fn bridged_pair() -> NetPair {
    let pair = NetPair::empty("dedup", false);
    sh(&[
        "ip", "-n", &pair.a, "link", "add", "tlbr0", "type", "bridge",
    ]);
    sh(&[
        "ip",
        "-n",
        &pair.a,
        "link",
        "set",
        "tlbr0",
        "type",
        "bridge",
        "stp_state",
        "0",
        "mcast_snooping",
        "0",
    ]);
    add_veth(&pair.a, &pair.b, "va", "vb", Some("tlbr0"), (A2, B2), None);
    pair
}

#[test]
fn a_packet_seen_on_a_bridge_and_its_port_counts_once_with_deduplicate() {
    require_root();
    let pair = bridged_pair();
    pair.wait_quiet("va");
    pair.wait_quiet("tlbr0");
    let yaml = format!(
        "receivers:
  flows/dedup: {{ interfaces: [va, tlbr0], attributes: {ALL_ATTRIBUTES} }}
  flows/all: {{ interfaces: [va, tlbr0], deduplicate: false, attributes: {ALL_ATTRIBUTES} }}
exporters: {{ collect/dedup: {{}}, collect/all: {{}} }}
service:
  pipelines:
    metrics/dedup: {{ receivers: [flows/dedup], exporters: [collect/dedup] }}
    metrics/all: {{ receivers: [flows/all], exporters: [collect/all] }}
"
    );
    let agent = Agent::start(&pair.a, &yaml);
    agent.wait_attached("flows/dedup", 2);
    agent.wait_attached("flows/all", 2);
    let (va0, br0) = (pair.counters("va"), pair.counters("tlbr0"));
    // A → B and B → A.
    udp_burst(&pair, 42000, 300, 400);
    let server = in_netns(&pair.a, || UdpSocket::bind((A2, 9200)).unwrap());
    in_netns(&pair.b, || {
        let s = UdpSocket::bind((B2, 42001)).unwrap();
        for _ in 0..200 {
            s.send_to(&[1u8; 100], (A2, 9200)).unwrap();
            // Paced like real traffic, so no datagram is dropped on the way.
            std::thread::sleep(Duration::from_micros(200));
        }
    });
    drop(server);
    pair.wait_still("va", Duration::from_millis(100));
    pair.wait_still("tlbr0", Duration::from_millis(100));
    let (va1, br1) = (pair.counters("va"), pair.counters("tlbr0"));
    let got = agent.stop();
    let d = |a: [u64; 5], b: [u64; 5]| -> [u64; 5] { std::array::from_fn(|i| b[i] - a[i]) };
    let (dva, dbr) = (d(va0, va1), d(br0, br1));
    assert_eq!(dva[4], 0, "veth dropped packets");

    let out = (300 * (14 + 20 + 8 + 400)) as i64;
    let back = (200 * (14 + 20 + 8 + 100)) as i64;
    let f_out = [("src.port", "42000")];
    let f_back = [("src.port", "42001")];
    // Deduplicated: once, by the interface that saw the packets first.
    assert_eq!(got.sum("collect/dedup", BYTES, &f_out), out);
    assert_eq!(got.sum("collect/dedup", BYTES, &f_back), back);
    assert_eq!(got.sum("collect/dedup", PACKETS, &f_out), 300);
    for p in got.select("collect/dedup", BYTES, &f_out) {
        assert_eq!(
            p.attr("iface"),
            Some("tlbr0"),
            "sent through the bridge first: {p:?}"
        );
    }
    for p in got.select("collect/dedup", BYTES, &f_back) {
        assert_eq!(
            p.attr("iface"),
            Some("va"),
            "received on the port first: {p:?}"
        );
    }
    let total_dedup = got.sum("collect/dedup", BYTES, &[]) as u64;
    assert_eq!(total_dedup, dva[0] + dva[2], "once: what va counted");
    assert!(got.counter("tapline_flows_deduplicated_total", "flows/dedup") > 0);

    // Not deduplicated: each interface counts.
    assert_eq!(got.sum("collect/all", BYTES, &f_out), 2 * out);
    assert_eq!(got.sum("collect/all", BYTES, &f_back), 2 * back);
    for (iface, delta) in [("va", dva), ("tlbr0", dbr)] {
        let count = |metric, dir| {
            got.sum(
                "collect/all",
                metric,
                &[("iface", iface), ("iface.direction", dir)],
            ) as u64
        };
        // A bridge counts what it passes up to the host without the Ethernet header
        // (br_pass_frame_up); tc ingress sees the whole frame, as the veth counters do.
        let rx_hdr = if iface == "tlbr0" { 14 * delta[1] } else { 0 };
        assert_eq!(
            (count(BYTES, "ingress"), count(PACKETS, "ingress")),
            (delta[0] + rx_hdr, delta[1]),
            "{iface} rx"
        );
        assert_eq!(
            (count(BYTES, "egress"), count(PACKETS, "egress")),
            (delta[2], delta[3]),
            "{iface} tx"
        );
    }
    assert_eq!(
        got.counter("tapline_flows_deduplicated_total", "flows/all"),
        0
    );
}
