//! The flows programs run on prepared packets with `BPF_PROG_TEST_RUN` (root required, no
//! network needed): the fast parser against the general one, and the exactness of the flow
//! cache (slot collisions, hash map, ring buffer, lost counter) across epochs.

use std::collections::HashMap;

use tapline_ebpf::flows::{
    ipproto, FlowCapture, FlowKey, FlowRecord, FlowSource, FlowsKernelConfig, FAMILY_IPV4,
    FAMILY_IPV6, FAMILY_OTHER,
};
use tapline_test_support::netns::*;

const SRC_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];

/// Ethernet header to the all-zero MAC (the loopback device's: PACKET_HOST) + `rest`.
fn eth(ethertype: u16, rest: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 6];
    p.extend_from_slice(&SRC_MAC);
    p.extend_from_slice(&ethertype.to_be_bytes());
    p.extend_from_slice(rest);
    p
}

/// IPv4 header (with `options`, a multiple of 4 bytes) + `l4`.
fn ipv4(proto: u8, frag_off: u16, options: &[u8], l4: &[u8]) -> Vec<u8> {
    let ihl = 5 + options.len() / 4;
    let total = (ihl * 4 + l4.len()) as u16;
    let mut ip = vec![(0x40 | ihl) as u8, 0];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&[0, 0]);
    ip.extend_from_slice(&frag_off.to_be_bytes());
    ip.extend_from_slice(&[64, proto, 0, 0, 10, 80, 0, 1, 10, 80, 0, 2]);
    ip.extend_from_slice(options);
    ip.extend_from_slice(l4);
    ip
}

/// IPv6 header (`next` is the first next-header value) + `rest`.
fn ipv6(next: u8, rest: &[u8]) -> Vec<u8> {
    let mut ip = vec![0x60, 0, 0, 0];
    ip.extend_from_slice(&(rest.len() as u16).to_be_bytes());
    ip.extend_from_slice(&[next, 64]);
    ip.extend_from_slice(&[
        0xfd, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34, 0x56, 0x01,
    ]);
    ip.extend_from_slice(&[
        0xfd, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34, 0x56, 0x02,
    ]);
    ip.extend_from_slice(rest);
    ip
}

fn udp(sport: u16, dport: u16, payload: usize) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&sport.to_be_bytes());
    h.extend_from_slice(&dport.to_be_bytes());
    h.extend_from_slice(&((8 + payload) as u16).to_be_bytes());
    h.extend_from_slice(&[0, 0]);
    h.resize(8 + payload, 0xab);
    h
}

/// TCP header; `flags` bit 8 is NS (in the data-offset byte), bits 0..7 the flags byte.
fn tcp(sport: u16, dport: u16, flags: u16, payload: usize) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&sport.to_be_bytes());
    h.extend_from_slice(&dport.to_be_bytes());
    h.extend_from_slice(&[0; 8]);
    h.push(0x50 | (flags >> 8) as u8);
    h.push(flags as u8);
    h.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]);
    h.resize(20 + payload, 0xcd);
    h
}

fn load(source: FlowSource, cfg: FlowsKernelConfig) -> FlowCapture {
    FlowCapture::load(&FlowsKernelConfig { source, ..cfg }).expect("load")
}

/// Evicts and drains the ring buffer; one record per flow.
fn collect(c: &mut FlowCapture) -> HashMap<FlowKey, FlowRecord> {
    let mut recs = c.evict().expect("evict");
    c.drain_overflow(&mut recs);
    let mut m: HashMap<FlowKey, FlowRecord> = HashMap::new();
    for r in recs {
        m.entry(r.key).and_modify(|x| x.merge(&r)).or_insert(r);
    }
    m
}

/// Runs every program run of the calling thread on one CPU, so that the per-CPU cache behaves
/// predictably.
fn pin_to_first_cpu() {
    // SAFETY: a zeroed cpu_set_t is valid; CPU_SET writes inside it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        assert_eq!(
            libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set),
            0
        );
    }
}

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[test]
fn fast_parser_gives_the_same_keys_as_the_general_one() {
    require_root();
    // The tc program reads Ethernet + IPv4/IPv6 + TCP/UDP with parse_fast(); the socket filter
    // (no direct packet access; BPF_PROG_TEST_RUN hands it the packet from the IP header on, as
    // an L3 device would) always takes parse(). Both must give the same flows.
    let packets: Vec<(&str, Vec<u8>, u32)> = vec![
        (
            "ipv4 udp",
            eth(0x0800, &ipv4(17, 0, &[], &udp(40000, 5201, 64))),
            3,
        ),
        (
            "ipv4 tcp syn+ack+ns",
            eth(0x0800, &ipv4(6, 0, &[], &tcp(40001, 80, 0x112, 10))),
            2,
        ),
        (
            "ipv4 tcp fin, another flow",
            eth(0x0800, &ipv4(6, 0, &[], &tcp(40002, 80, 0x011, 0))),
            1,
        ),
        (
            "ipv4 with options",
            eth(0x0800, &ipv4(17, 0, &[1, 1, 1, 1], &udp(40003, 53, 30))),
            2,
        ),
        (
            "ipv4 first fragment",
            eth(0x0800, &ipv4(17, 0x2000, &[], &udp(40004, 53, 40))),
            1,
        ),
        (
            "ipv4 later fragment",
            eth(0x0800, &ipv4(17, 0x0010, &[], &udp(40004, 53, 40))),
            1,
        ),
        (
            "ipv4 udp, no payload (shorter than the fast parser reads)",
            eth(0x0800, &ipv4(17, 0, &[], &udp(40005, 7, 0))),
            4,
        ),
        (
            "ipv4 icmp echo",
            eth(
                0x0800,
                &ipv4(1, 0, &[], &[8, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0]),
            ),
            2,
        ),
        (
            "ipv4 other protocol",
            eth(0x0800, &ipv4(47, 0, &[], &[0; 24])),
            1,
        ),
        ("ipv6 udp", eth(0x86DD, &ipv6(17, &udp(40006, 443, 64))), 5),
        (
            "ipv6 tcp",
            eth(0x86DD, &ipv6(6, &tcp(40007, 443, 0x018, 20))),
            3,
        ),
        (
            "ipv6 hop-by-hop + udp",
            eth(
                0x86DD,
                &ipv6(
                    0,
                    &[&[17, 0, 1, 4, 0, 0, 0, 0][..], &udp(40008, 443, 16)].concat(),
                ),
            ),
            2,
        ),
        (
            "ipv6 icmpv6",
            eth(
                0x86DD,
                &ipv6(58, &[128, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]),
            ),
            1,
        ),
        ("arp", eth(0x0806, &[0; 28]), 2),
    ];
    let mut tc = load(FlowSource::Tc, FlowsKernelConfig::default());
    let mut sk = load(FlowSource::SocketFilter, FlowsKernelConfig::default());
    for (what, p, n) in &packets {
        tc.test_run(p, *n).unwrap_or_else(|e| panic!("{what}: {e}"));
        sk.test_run(p, *n).unwrap_or_else(|e| panic!("{what}: {e}"));
    }
    let (tc, sk) = (collect(&mut tc), collect(&mut sk));
    assert_eq!(tc.len(), packets.len(), "one flow per packet kind: {tc:#?}");
    let mut keys: Vec<_> = tc.keys().collect();
    keys.sort();
    let mut sk_keys: Vec<_> = sk.keys().collect();
    sk_keys.sort();
    assert_eq!(keys, sk_keys, "same flow keys");
    for (k, t) in &tc {
        let s = &sk[k];
        assert_eq!((t.packets, t.tcp_flags), (s.packets, s.tcp_flags), "{k:?}");
        // The socket filter's skb starts at the IP header.
        assert_eq!(t.bytes, s.bytes + 14 * s.packets, "{k:?}");
    }
    // A few keys spelled out.
    let find = |sport: u16| -> &FlowRecord {
        tc.values()
            .find(|r| r.key.src_port == sport)
            .unwrap_or_else(|| panic!("no flow from port {sport}"))
    };
    let u4 = find(40000);
    assert_eq!(
        (
            u4.key.family,
            u4.key.protocol,
            u4.key.dst_port,
            u4.packets,
            u4.bytes
        ),
        (FAMILY_IPV4, ipproto::UDP, 5201, 3, 3 * (14 + 20 + 8 + 64))
    );
    assert_eq!(u4.key.src_ip(), Some("10.80.0.1".parse().unwrap()));
    assert_eq!(u4.key.dst_ip(), Some("10.80.0.2".parse().unwrap()));
    assert_eq!(u4.key.ifindex, 1);
    assert_eq!(find(40001).tcp_flags, 0x112);
    let t6 = find(40007);
    assert_eq!(
        (
            t6.key.family,
            t6.key.protocol,
            t6.key.dst_port,
            t6.tcp_flags
        ),
        (FAMILY_IPV6, ipproto::TCP, 443, 0x018)
    );
    assert_eq!(t6.key.dst_ip(), Some("fd80::1234:5602".parse().unwrap()));
    let frag = tc
        .values()
        .find(|r| r.key.src_port == 0 && r.key.protocol == ipproto::UDP)
        .expect("later fragment: no ports");
    assert_eq!(frag.packets, 1);
    let arp = tc
        .values()
        .find(|r| r.key.family == FAMILY_OTHER)
        .expect("arp");
    assert_eq!((arp.key.ethertype(), arp.packets), (Some(0x0806), 2));
}

#[test]
fn vlan_tagged_frames_parse_as_their_ip_flow() {
    require_root();
    let inner = ipv4(17, 0, &[], &udp(40010, 9, 32));
    let mut tagged = vec![0x00, 0x07, 0x08, 0x00];
    tagged.extend_from_slice(&inner);
    let mut tc = load(FlowSource::Tc, FlowsKernelConfig::default());
    tc.test_run(&eth(0x8100, &tagged), 3).unwrap();
    let m = collect(&mut tc);
    assert_eq!(m.len(), 1, "{m:#?}");
    let r = m.values().next().unwrap();
    assert_eq!(
        (
            r.key.family,
            r.key.protocol,
            r.key.src_port,
            r.key.dst_port,
            r.packets
        ),
        (FAMILY_IPV4, ipproto::UDP, 40010, 9, 3)
    );
}

#[test]
fn cache_collisions_overflow_and_epochs_are_exact() {
    require_root();
    pin_to_first_cpu();
    // One slot per CPU and epoch, two hash entries, the smallest ring buffer.
    let cfg = FlowsKernelConfig {
        cache_slots: 1,
        max_flows: 2,
        ring_buffer_bytes: 4096,
        ..Default::default()
    };
    let mut c = load(FlowSource::Tc, cfg);
    let flow = |port: u16| eth(0x0800, &ipv4(17, 0, &[], &udp(port, 9000, 100)));
    let len = (14 + 20 + 8 + 100) as u64;
    let packets = |m: &HashMap<FlowKey, FlowRecord>, port: u16| -> u64 {
        m.values()
            .filter(|r| r.key.src_port == port)
            .map(|r| r.packets)
            .sum()
    };

    // Epoch 0: A takes the slot, B and C the hash map, D the ring buffer.
    let before = monotonic_ns();
    for (port, n) in [(1, 10), (2, 7), (3, 5), (4, 3)] {
        c.test_run(&flow(port), n).unwrap();
    }
    let after = monotonic_ns();
    let mut ring = Vec::new();
    assert_eq!(
        c.drain_overflow(&mut ring),
        3,
        "D's packets, one record each"
    );
    assert!(ring.iter().all(|r| r.key.src_port == 4 && r.packets == 1));
    let recs = c.evict().unwrap();
    assert_eq!(recs.len(), 3, "one record per flow: {recs:#?}");
    let m: HashMap<_, _> = recs.iter().map(|r| (r.key, *r)).collect();
    for (port, n) in [(1, 10), (2, 7), (3, 5)] {
        assert_eq!(packets(&m, port), n, "flow {port}");
        let r = m.values().find(|r| r.key.src_port == port).unwrap();
        assert_eq!(r.bytes, n * len);
        // The precise clock on the first packet: never before the run started.
        assert!(
            before <= r.first_ns && r.first_ns <= r.last_ns && r.last_ns <= after,
            "flow {port}: {before} <= {} <= {} <= {after}",
            r.first_ns,
            r.last_ns
        );
    }

    // Epoch 1 (the other half of the cache, the other hash map): only what came since.
    c.test_run(&flow(1), 4).unwrap();
    c.test_run(&flow(2), 1).unwrap();
    let m = collect(&mut c);
    assert_eq!((packets(&m, 1), packets(&m, 2), m.len()), (4, 1, 2));

    // Epoch 2: nothing; the slots tagged with epoch 0 are not reported again.
    assert!(collect(&mut c).is_empty());

    // Epoch 3, then 4 (the first half again, its slot stale): B takes the slot this time.
    assert!(collect(&mut c).is_empty());
    c.test_run(&flow(2), 2).unwrap();
    c.test_run(&flow(1), 6).unwrap();
    let m = collect(&mut c);
    assert_eq!((packets(&m, 2), packets(&m, 1), m.len()), (2, 6, 2));

    // A full ring buffer: every packet is in a record or in the lost counter.
    c.test_run(&flow(1), 1).unwrap();
    c.test_run(&flow(2), 1).unwrap();
    c.test_run(&flow(3), 1).unwrap();
    let lost_before = c.lost_events();
    c.test_run(&flow(5), 200).unwrap();
    let mut ring = Vec::new();
    let in_ring = c.drain_overflow(&mut ring) as u64;
    let lost = c.lost_events() - lost_before;
    assert!(lost > 0, "the ring buffer filled up ({in_ring} records)");
    assert_eq!(in_ring + lost, 200);
    let m = collect(&mut c);
    assert_eq!(
        (
            packets(&m, 1),
            packets(&m, 2),
            packets(&m, 3),
            packets(&m, 5)
        ),
        (1, 1, 1, 0)
    );
}

#[test]
fn cache_slot_sizes_are_checked() {
    for bad in [0, 3, 1000, 1 << 21] {
        let err = FlowCapture::load(&FlowsKernelConfig {
            cache_slots: bad,
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("cache_slots"), "{bad}: {err}");
    }
}
