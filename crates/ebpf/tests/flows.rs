//! Real-kernel tests of the flows capture (root required; each test builds its own pair of
//! network namespaces and sends traffic only between them).

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, UdpSocket},
    time::{Duration, Instant},
};

use tapline_ebpf::flows::{
    ipproto, AttachDirection, Direction, FlowCapture, FlowKey, FlowRecord, FlowSource,
    FlowsKernelConfig, ProtocolFilter,
};
use tapline_test_support::netns::*;

const TCP_BYTES: usize = 4 << 20;

/// How long `va` must stay still for the traffic of a test (and its final ACKs) to have crossed.
const SETTLED: Duration = Duration::from_millis(100);

struct Run {
    records: Vec<FlowRecord>,
    overflowed: usize,
    /// rx_bytes, rx_packets, tx_bytes, tx_packets, tx_dropped deltas of `va`.
    delta: [u64; 5],
}

/// Loads one capture per config, attaches them all to `va` in namespace A, runs `traffic`,
/// and returns, per capture, what it saw on `va` together with the interface counters' deltas.
fn capture(
    pair: &NetPair,
    cfgs: &[FlowsKernelConfig],
    traffic: impl FnOnce(&mut [FlowCapture], &mut [usize]),
) -> Vec<Run> {
    let mut caps: Vec<FlowCapture> = in_netns(&pair.a, || {
        cfgs.iter()
            .map(|cfg| {
                let mut c = FlowCapture::load(cfg).expect("load");
                c.attach("va", AttachDirection::Both).expect("attach");
                assert_eq!(c.attached(), vec!["va".to_owned()]);
                c
            })
            .collect()
    });
    let ifindex = ifindex(&pair.a, "va");
    pair.wait_quiet("va");
    let mut overflowed = vec![0usize; caps.len()];
    // Start from empty maps: drop what link-up chatter left.
    for c in caps.iter_mut() {
        c.evict().unwrap();
        let mut v = Vec::new();
        c.drain_overflow(&mut v);
    }
    let before = pair.counters("va");
    traffic(&mut caps, &mut overflowed);
    pair.wait_still("va", SETTLED);
    let after = pair.counters("va");
    let mut runs = Vec::new();
    for (i, c) in caps.iter_mut().enumerate() {
        let mut records = c.evict().expect("evict");
        let n = c.drain_overflow(&mut records);
        assert_eq!(c.lost_events(), 0, "ring buffer lost events");
        records.retain(|r| r.key.ifindex == ifindex);
        runs.push(Run {
            records,
            overflowed: overflowed[i] + n,
            delta: std::array::from_fn(|k| after[k] - before[k]),
        });
    }
    runs
}

fn totals(records: &[FlowRecord], dir: Direction) -> (u64, u64) {
    records
        .iter()
        .filter(|r| r.key.direction() == dir)
        .fold((0, 0), |(b, p), r| (b + r.bytes, p + r.packets))
}

/// Every byte and packet the interface counted is in the records, and nothing more.
fn assert_totals_match(run: &Run) {
    assert_eq!(
        run.delta[4], 0,
        "veth dropped packets: test traffic too fast"
    );
    let (ib, ip) = totals(&run.records, Direction::Ingress);
    let (eb, ep) = totals(&run.records, Direction::Egress);
    assert_eq!(
        (ib, ip),
        (run.delta[0], run.delta[1]),
        "ingress bytes/packets vs rx counters"
    );
    assert_eq!(
        (eb, ep),
        (run.delta[2], run.delta[3]),
        "egress bytes/packets vs tx counters"
    );
}

/// Merges records of the same flow (a flow may come from the map and the ring buffer).
fn by_flow(records: &[FlowRecord]) -> HashMap<FlowKey, FlowRecord> {
    let mut m: HashMap<FlowKey, FlowRecord> = HashMap::new();
    for r in records {
        m.entry(r.key).and_modify(|x| x.merge(r)).or_insert(*r);
    }
    m
}

fn find(records: &[FlowRecord], pred: impl Fn(&FlowKey) -> bool) -> FlowRecord {
    let m = by_flow(records);
    let found: Vec<_> = m.values().filter(|r| pred(&r.key)).collect();
    assert_eq!(found.len(), 1, "expected one matching flow in {m:#?}");
    *found[0]
}

fn within_1pct(a: u64, b: u64) -> bool {
    a.abs_diff(b) * 100 <= b
}

fn tcp_volume(ipv6: bool, tag: &str) {
    require_root();
    let pair = NetPair::new(tag, ipv6);
    let (a, b): (IpAddr, IpAddr) = if ipv6 {
        (A6.parse().unwrap(), B6.parse().unwrap())
    } else {
        (A4.parse().unwrap(), B4.parse().unwrap())
    };
    let mut port = 0;
    let run = capture(&pair, &[FlowsKernelConfig::default()], |_, _| {
        port = tcp_transfer(&pair, b, TCP_BYTES);
    })
    .remove(0);
    assert_totals_match(&run);
    let out = find(&run.records, |k| {
        k.direction() == Direction::Egress && k.src_ip() == Some(a) && k.src_port == port
    });
    assert_eq!(out.key.dst_ip(), Some(b));
    assert_eq!(out.key.dst_port, 5001);
    assert_eq!(out.key.protocol, ipproto::TCP);
    // IPv6 neighbour discovery / MLD may cross the link too: the totals above include it
    // exactly; this flow is everything else, and nothing else may be TCP.
    let chatter = |dir: Direction| -> (u64, u64) {
        run.records
            .iter()
            .filter(|r| r.key.direction() == dir && r.key.protocol != ipproto::TCP)
            .map(|r| {
                assert_eq!(
                    r.key.protocol,
                    ipproto::ICMPV6,
                    "only ICMPv6 chatter besides the test flow"
                );
                (r.bytes, r.packets)
            })
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
    };
    assert!(out.bytes >= TCP_BYTES as u64);
    assert!(
        within_1pct(out.bytes, run.delta[2] - chatter(Direction::Egress).0),
        "{} vs tx {}",
        out.bytes,
        run.delta[2]
    );
    assert_eq!(
        out.packets,
        run.delta[3] - chatter(Direction::Egress).1,
        "egress packets (nothing else but ICMPv6 chatter crosses the link)"
    );
    assert_eq!(
        out.tcp_flags & 0x13,
        0x13,
        "SYN, ACK and FIN seen: {:#x}",
        out.tcp_flags
    );
    let back = find(&run.records, |k| {
        k.direction() == Direction::Ingress && k.dst_ip() == Some(a) && k.dst_port == port
    });
    let (in_bytes, in_packets) = chatter(Direction::Ingress);
    assert!(within_1pct(back.bytes, run.delta[0] - in_bytes));
    assert_eq!(back.packets, run.delta[1] - in_packets);
    assert!(out.first_ns <= out.last_ns && out.first_ns > 0);
}

#[test]
fn tcp_ipv4_volume_matches_interface_counters() {
    tcp_volume(false, "tcp4");
}

#[test]
fn tcp_ipv6_volume_matches_interface_counters() {
    tcp_volume(true, "tcp6");
}

#[test]
fn udp_ipv4_volume_matches_interface_counters() {
    require_root();
    let pair = NetPair::new("udp4", false);
    let run = capture(&pair, &[FlowsKernelConfig::default()], |_, _| {
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
    })
    .remove(0);
    assert_totals_match(&run);
    let f = find(&run.records, |k| {
        k.direction() == Direction::Egress && k.protocol == ipproto::UDP
    });
    assert_eq!((f.key.src_port, f.key.dst_port), (40000, 9000));
    assert_eq!(f.packets, 1000);
    assert_eq!(f.bytes, 1000 * (14 + 20 + 8 + 500));
    assert_eq!((f.bytes, f.packets), (run.delta[2], run.delta[3]));
}

#[test]
fn icmp_echo_flows() {
    require_root();
    let pair = NetPair::new("icmp", false);
    let run = capture(&pair, &[FlowsKernelConfig::default()], |_, _| {
        in_netns(&pair.a, || ping4(B4.parse::<Ipv4Addr>().unwrap(), 5, 56));
    })
    .remove(0);
    assert_totals_match(&run);
    let req = find(&run.records, |k| {
        k.direction() == Direction::Egress && k.protocol == ipproto::ICMP
    });
    assert_eq!(req.key.icmp_type_code(), Some((8, 0)));
    assert_eq!((req.packets, req.bytes), (5, 5 * (14 + 20 + 8 + 56)));
    let rep = find(&run.records, |k| {
        k.direction() == Direction::Ingress && k.protocol == ipproto::ICMP
    });
    assert_eq!(rep.key.icmp_type_code(), Some((0, 0)));
    assert_eq!(rep.packets, 5);
}

#[test]
fn more_flows_than_the_map_go_through_the_ring_buffer() {
    require_root();
    let pair = NetPair::new("ovf", false);
    let cfg = FlowsKernelConfig {
        max_flows: 5000,
        ring_buffer_bytes: 4 << 20,
        ..Default::default()
    };
    const PORTS: u16 = 20_000;
    let mut sent = 0;
    let run = capture(&pair, &[cfg], |caps, overflowed| {
        in_netns(&pair.a, || {
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut pending = Vec::new();
            for i in 0..PORTS {
                let s = UdpSocket::bind((A4, 20000 + i)).unwrap();
                s.send_to(&[1u8; 32], (B4, 9000)).unwrap();
                sent += 1;
                if i % 200 == 199 {
                    // Paced so the capture keeps up, as real traffic would be.
                    std::thread::sleep(Duration::from_millis(2));
                    overflowed[0] += caps[0].drain_overflow(&mut pending);
                    assert!(Instant::now() < deadline, "sending took too long");
                }
            }
            pair.wait_still("va", SETTLED);
            overflowed[0] += caps[0].drain_overflow(&mut pending);
            // Keep them: they are part of the result.
            EXTRA.with(|o| o.borrow_mut().extend(pending));
        });
    })
    .remove(0);
    let run = with_extra(run, &pair);
    assert_eq!(sent, PORTS);
    assert!(run.overflowed > 0, "the ring-buffer path was not taken");
    assert_totals_match(&run);
    let flows = by_flow(&run.records);
    let udp_out = flows
        .keys()
        .filter(|k| k.direction() == Direction::Egress && k.protocol == ipproto::UDP)
        .count();
    assert_eq!(udp_out, PORTS as usize, "one flow per source port");
}

#[test]
fn evictions_during_traffic_lose_and_repeat_nothing() {
    require_root();
    let pair = NetPair::new("evloop", false);
    // Few cache slots, so that flows also share slots and go through the hash maps.
    let cfg = FlowsKernelConfig {
        cache_slots: 4,
        ..Default::default()
    };
    let mut evictions = 0;
    let run = capture(&pair, &[cfg], |caps, _| {
        let sender = spawn_in_netns(&pair.a, || {
            let socks: Vec<UdpSocket> = (0..16)
                .map(|i| UdpSocket::bind((A4, 41000 + i)).unwrap())
                .collect();
            for i in 0..20_000usize {
                socks[i % socks.len()]
                    .send_to(&[5u8; 64], (B4, 9003))
                    .unwrap();
                if i % 100 == 99 {
                    // Paced so the capture keeps up, as real traffic would be.
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        });
        let mut records = Vec::new();
        while !sender.is_finished() {
            caps[0].evict_into(&mut records).unwrap();
            evictions += 1;
        }
        sender.join().unwrap();
        EXTRA.with(|e| e.borrow_mut().extend(records));
    })
    .remove(0);
    let run = with_extra(run, &pair);
    assert!(
        evictions >= 3,
        "only {evictions} evictions during the traffic"
    );
    eprintln!("{evictions} evictions during the traffic");
    assert_totals_match(&run);
    let flows = by_flow(&run.records);
    for i in 0..16 {
        let f = flows
            .values()
            .find(|r| r.key.direction() == Direction::Egress && r.key.src_port == 41000 + i)
            .unwrap_or_else(|| panic!("flow from port {}", 41000 + i));
        assert_eq!(f.packets, 20_000 / 16, "port {}", 41000 + i);
    }
}

/// Adds the records a test's capture closure read itself (stashed in `EXTRA`) for `va` to `run`.
fn with_extra(run: Run, pair: &NetPair) -> Run {
    let mut records = run.records;
    EXTRA.with(|e| {
        records.extend(
            e.borrow_mut()
                .drain(..)
                .filter(|r| r.key.ifindex == ifindex(&pair.a, "va")),
        )
    });
    Run { records, ..run }
}

thread_local! {
    /// Records read inside a capture closure (overflow drains, evictions during traffic).
    static EXTRA: std::cell::RefCell<Vec<FlowRecord>> = const { std::cell::RefCell::new(Vec::new()) };
}

#[test]
fn socket_filter_gives_the_same_totals_as_tc() {
    require_root();
    let pair = NetPair::new("sock", false);
    let sock_cfg = FlowsKernelConfig {
        source: FlowSource::SocketFilter,
        ..Default::default()
    };
    let runs = capture(&pair, &[FlowsKernelConfig::default(), sock_cfg], |_, _| {
        tcp_transfer(&pair, B4.parse().unwrap(), TCP_BYTES);
        in_netns(&pair.a, || {
            let s = UdpSocket::bind((A4, 40001)).unwrap();
            for _ in 0..200 {
                s.send_to(&[3u8; 100], (B4, 9001)).unwrap();
            }
        });
    });
    for run in &runs {
        assert_totals_match(run);
    }
    let strip = |m: HashMap<FlowKey, FlowRecord>| -> HashMap<FlowKey, (u64, u64, u16)> {
        m.into_iter()
            .map(|(k, r)| (k, (r.bytes, r.packets, r.tcp_flags)))
            .collect()
    };
    assert_eq!(
        strip(by_flow(&runs[0].records)),
        strip(by_flow(&runs[1].records))
    );
}

#[test]
fn filters_sampling_protocols_directions() {
    require_root();
    let pair = NetPair::new("filt", false);
    let sampled = FlowsKernelConfig {
        sampling: 10,
        ..Default::default()
    };
    let tcp_only = FlowsKernelConfig {
        protocols: ProtocolFilter::Only(vec![ipproto::TCP]),
        capture_non_ip: false,
        ..Default::default()
    };
    let egress_only = FlowsKernelConfig {
        directions: AttachDirection::Egress,
        ..Default::default()
    };
    let runs = capture(&pair, &[sampled, tcp_only, egress_only], |_, _| {
        in_netns(&pair.a, || {
            let s = UdpSocket::bind((A4, 40002)).unwrap();
            for i in 0..5000 {
                s.send_to(&[3u8; 100], (B4, 9002)).unwrap();
                if i % 100 == 99 {
                    // Paced so the capture keeps up, as real traffic would be.
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        });
    });
    let (_, p) = totals(&runs[0].records, Direction::Egress);
    assert!(
        runs[0].records.iter().all(|r| r.packets % 10 == 0),
        "scaled by 10 in the kernel"
    );
    assert!((4000..=6000).contains(&p), "sampled estimate {p} of 5000");
    assert!(runs[1]
        .records
        .iter()
        .all(|r| r.key.protocol == ipproto::TCP));
    assert!(runs[2]
        .records
        .iter()
        .all(|r| r.key.direction() == Direction::Egress));
    assert_eq!(
        totals(&runs[2].records, Direction::Egress).1,
        runs[2].delta[3]
    );
}

#[test]
fn interface_removed_while_attached() {
    require_root();
    let pair = NetPair::new("gone", false);
    in_netns(&pair.a, || {
        let mut tc = FlowCapture::load(&FlowsKernelConfig::default()).unwrap();
        let mut sk = FlowCapture::load(&FlowsKernelConfig {
            source: FlowSource::SocketFilter,
            ..Default::default()
        })
        .unwrap();
        tc.attach("va", AttachDirection::Both).unwrap();
        sk.attach("va", AttachDirection::Ingress).unwrap();
        sh(&["ip", "-n", &pair.a, "link", "del", "va"]);
        tc.detach("va");
        sk.detach("va");
        tc.detach("never-attached");
        assert!(tc.attached().is_empty() && sk.attached().is_empty());
        tc.evict().unwrap();
        sk.evict().unwrap();
        let err = tc
            .attach("va", AttachDirection::Both)
            .unwrap_err()
            .to_string();
        assert!(err.contains("va"), "error names the interface: {err}");
    });
}
