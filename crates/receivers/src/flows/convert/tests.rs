use super::*;
use crate::flows::config::DEFAULT_ATTRIBUTES;
use tapline_core::data::Value;

fn v4(last: u8) -> [u8; 16] {
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, last]
}

#[allow(clippy::too_many_arguments)]
fn rec(
    src: u8,
    sport: u16,
    dst: u8,
    dport: u16,
    proto: u8,
    ifindex: u32,
    egress: bool,
    bytes: u64,
    first_ns: u64,
    flags: u16,
) -> FlowRecord {
    FlowRecord {
        key: FlowKey {
            src_addr: v4(src),
            dst_addr: v4(dst),
            src_port: sport,
            dst_port: dport,
            protocol: proto,
            family: FAMILY_IPV4,
            direction: u8::from(egress),
            _pad: 0,
            ifindex,
        },
        bytes,
        packets: 1,
        first_ns,
        last_ns: first_ns + 10,
        tcp_flags: flags,
    }
}

fn converter(attrs: &[A], dedup: bool) -> Converter {
    let mut c = Converter::new(ConverterOptions {
        attributes: attrs.iter().copied().collect(),
        deduplicate: dedup,
        agent_ip: Str::from_static("192.0.2.1"),
        memory: 1000,
        resource: Resource::new(Attributes::new()),
    });
    c.set_interface(1, "veth1");
    c.set_interface(2, "br0");
    c
}

/// (attributes as text, bytes) of the bytes metric, sorted.
fn points(m: &Metrics) -> Vec<(String, i64)> {
    let mut out: Vec<(String, i64)> = m
        .metrics()
        .filter(|(_, m)| m.name == METRIC_BYTES)
        .flat_map(|(_, m)| match &m.data {
            MetricData::Sum { points, .. } => points.clone(),
            _ => unreachable!(),
        })
        .map(|p| {
            let attrs: Vec<String> = p
                .attributes
                .iter()
                .map(|(k, v)| format!("{k}={}", v.to_text()))
                .collect();
            let Number::Int(b) = p.value else { panic!() };
            (attrs.join(","), b)
        })
        .collect();
    out.sort();
    out
}

fn run(c: &mut Converter, mut recs: Vec<FlowRecord>) -> (Vec<(String, i64)>, EvictionStats) {
    let (m, stats) = c.convert(&mut recs, &mut Overflow::default(), 1_000);
    (m.map(|m| points(&m)).unwrap_or_default(), stats)
}

const FULL: &[A] = &[
    A::SrcAddress,
    A::SrcPort,
    A::DstPort,
    A::Direction,
    A::ClientPort,
    A::ServerPort,
];

#[test]
fn map_and_ring_records_of_one_flow_are_summed() {
    let mut c = converter(FULL, true);
    let mut map = vec![rec(1, 40000, 2, 80, 6, 1, true, 1000, 5, 0x10)];
    let mut ovf = Overflow::default();
    ovf.add([
        rec(1, 40000, 2, 80, 6, 1, true, 100, 20, 0x10),
        rec(1, 40000, 2, 80, 6, 1, true, 50, 30, 0x10),
        rec(1, 40001, 2, 80, 6, 1, true, 7, 30, 0x10),
    ]);
    let (m, stats) = c.convert(&mut map, &mut ovf, 0);
    assert_eq!(stats.overflow_records, 3);
    assert_eq!(stats.flows, 3);
    let p = points(&m.unwrap());
    assert_eq!(p.iter().map(|x| x.1).sum::<i64>(), 1157);
    assert!(p.iter().any(|x| x.1 == 1150), "{p:?}");
    assert!(ovf.is_empty());
}

#[test]
fn syn_decides_the_client_even_on_a_high_server_port() {
    let mut c = converter(FULL, true);
    // Client 10.0.0.1:80 connects to server 10.0.0.2:50000 (unusual, but the SYN says so).
    let (p, _) = run(
        &mut c,
        vec![
            rec(1, 80, 2, 50000, 6, 1, true, 100, 1, 0x02 | 0x10),
            rec(2, 50000, 1, 80, 6, 1, false, 60, 2, 0x02 | 0x10),
        ],
    );
    assert_eq!(
        p,
        vec![
            (
                "src.address=10.0.0.1,src.port=80,dst.port=50000,direction=request,client.port=80,server.port=50000".into(),
                100
            ),
            (
                "src.address=10.0.0.2,src.port=50000,dst.port=80,direction=response,client.port=80,server.port=50000".into(),
                60
            ),
        ]
    );
    // Later evictions remember it (no SYN any more).
    let (p, _) = run(&mut c, vec![rec(2, 50000, 1, 80, 6, 1, false, 5, 50, 0x10)]);
    assert!(p[0].0.contains("direction=response"), "{p:?}");
    // A pure SYN (no ACK yet) names the client too.
    let (p, _) = run(
        &mut c,
        vec![rec(3, 9000, 4, 40000, 6, 1, true, 5, 50, 0x02)],
    );
    assert!(
        p[0].0.contains("direction=request,client.port=9000"),
        "{p:?}"
    );
}

#[test]
fn without_a_start_the_lower_port_is_the_server() {
    let mut c = converter(FULL, true);
    let (p, _) = run(
        &mut c,
        vec![
            rec(1, 40000, 2, 9000, 17, 1, true, 10, 1, 0),
            rec(2, 9000, 1, 40000, 17, 1, false, 20, 1, 0),
            rec(5, 123, 6, 123, 17, 1, true, 30, 1, 0),
            rec(6, 123, 5, 123, 17, 1, false, 40, 1, 0),
        ],
    );
    let find = |b: i64| p.iter().find(|x| x.1 == b).unwrap().0.clone();
    assert!(find(10).contains("direction=request,client.port=40000,server.port=9000"));
    assert!(find(20).contains("direction=response,client.port=40000,server.port=9000"));
    // Equal ports: the lower address is the server.
    assert!(find(30).contains("direction=response"), "{p:?}");
    assert!(find(40).contains("direction=request"), "{p:?}");
}

#[test]
fn icmp_direction_comes_from_the_type() {
    let mut c = converter(&[A::Direction, A::Transport, A::SrcPort], true);
    let (p, _) = run(
        &mut c,
        vec![
            rec(1, 0, 2, 8 << 8, 1, 1, true, 98, 1, 0),
            rec(2, 0, 1, 0, 1, 1, false, 98, 2, 0),
        ],
    );
    assert_eq!(
        p,
        vec![
            ("transport=icmp,direction=request".into(), 98),
            ("transport=icmp,direction=response".into(), 98)
        ]
    );
}

#[test]
fn dedup_keeps_the_interface_that_saw_the_flow_first() {
    let attrs = &[A::Iface, A::IfaceDirection];
    let recs = || {
        vec![
            // The same packets: veth ingress first, then the bridge.
            rec(1, 40000, 2, 80, 6, 1, false, 500, 10, 0x10),
            rec(1, 40000, 2, 80, 6, 2, false, 500, 11, 0x10),
        ]
    };
    let mut c = converter(attrs, true);
    let (p, stats) = run(&mut c, recs());
    assert_eq!(p, vec![("iface=veth1,iface.direction=ingress".into(), 500)]);
    assert_eq!(stats.deduplicated, 1);
    // Next eviction: the bridge reports earlier this time, the remembered owner still wins.
    let mut later = recs();
    later[1].first_ns = 1;
    let (p, _) = run(&mut c, later);
    assert_eq!(p, vec![("iface=veth1,iface.direction=ingress".into(), 500)]);
    // Only the bridge reports the last packet, which the owner counted before the eviction.
    let (p, stats) = run(
        &mut c,
        vec![rec(1, 40000, 2, 80, 6, 2, false, 70, 20, 0x10)],
    );
    assert_eq!((p, stats.deduplicated), (vec![], 1));
    // The owner goes away: the bridge counts from now on.
    c.forget_interface(1);
    let (p, _) = run(
        &mut c,
        vec![rec(1, 40000, 2, 80, 6, 2, false, 70, 30, 0x10)],
    );
    assert_eq!(p, vec![("iface=br0,iface.direction=ingress".into(), 70)]);

    let mut c = converter(attrs, false);
    let (p, stats) = run(&mut c, recs());
    assert_eq!(p.len(), 2);
    assert_eq!(stats.deduplicated, 0);
}

#[test]
fn unselected_attributes_are_aggregated_away() {
    let mut c = converter(DEFAULT_ATTRIBUTES, true);
    let recs: Vec<FlowRecord> = (0..100)
        .map(|i| rec(1, 40000 + i, 2, 80, 6, 1, true, 10, 1, 0x10))
        .collect();
    let (p, stats) = run(&mut c, recs);
    assert_eq!(stats.flows, 100);
    assert_eq!(
        p,
        vec![(
            "src.address=10.0.0.1,dst.address=10.0.0.2,transport=tcp,network.type=ipv4,direction=request,server.port=80,iface=veth1,tapline.ip=192.0.2.1".into(),
            1000
        )]
    );
}

#[test]
fn times_are_unix_and_points_share_address_strings() {
    let mut c = converter(&[A::SrcAddress], true);
    let mut recs = vec![
        rec(1, 1, 2, 2, 17, 1, true, 1, 100, 0),
        rec(1, 3, 2, 4, 17, 1, true, 1, 100, 0),
    ];
    recs[1].key.dst_addr = v4(3);
    let (m, _) = c.convert(&mut recs, &mut Overflow::default(), 1_000_000);
    let m = m.unwrap();
    let (_, bytes) = m.metrics().next().unwrap();
    let MetricData::Sum {
        points,
        temporality,
        monotonic,
    } = &bytes.data
    else {
        panic!()
    };
    assert_eq!((*temporality, *monotonic), (Temporality::Delta, true));
    assert_eq!(points.len(), 1, "dst.address not selected: one point");
    assert_eq!(points[0].start_time_ns, 1_000_100);
    assert_eq!(points[0].time_ns, 1_000_110);
    assert_eq!(bytes.unit, "By");
    // Interned: a second eviction reuses the same allocation.
    let first = match points[0].attributes.get("src.address") {
        Some(Value::Str(Str::Shared(s))) => s.clone(),
        other => panic!("{other:?}"),
    };
    let (m2, _) = c.convert(
        &mut vec![rec(1, 1, 2, 2, 17, 1, true, 1, 100, 0)],
        &mut Overflow::default(),
        0,
    );
    let m2 = m2.unwrap();
    let (_, b2) = m2.metrics().next().unwrap();
    let MetricData::Sum { points: p2, .. } = &b2.data else {
        panic!()
    };
    match p2[0].attributes.get("src.address") {
        Some(Value::Str(Str::Shared(s))) => assert!(Arc::ptr_eq(s, &first)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn config_defaults_and_errors() {
    use crate::flows::config::FlowsConfig;
    use tapline_core::config::ComponentConfig;
    let cfg: FlowsConfig = ComponentConfig::new("receivers.flows", serde_json::json!({}))
        .parse()
        .unwrap();
    assert!(cfg.wants_interface("eth0") && !cfg.wants_interface("lo"));
    assert!(cfg.deduplicate);
    assert!(!cfg.attribute_set().contains(A::IfaceDirection));
    let err = ComponentConfig::new(
        "receivers.flows",
        serde_json::json!({"protocols": ["tcp", "smtp"]}),
    )
    .parse::<FlowsConfig>()
    .unwrap_err();
    let e = err.errors().next().unwrap();
    assert!(e.path.starts_with("receivers.flows.protocols"), "{e:?}");
    assert!(e.message.contains("smtp"), "{e:?}");
    let err = ComponentConfig::new("receivers.flows", serde_json::json!({"interface": []}))
        .parse::<FlowsConfig>()
        .unwrap_err();
    assert!(err.errors().next().unwrap().message.contains("interface"));
    let cfg: FlowsConfig = ComponentConfig::new(
        "receivers.flows",
        serde_json::json!({"sampling": 0, "protocols": [6], "exclude_protocols": ["udp"],
                           "interfaces": ["/^veth/", "lo"], "deduplicate": false}),
    )
    .parse()
    .unwrap();
    let d = cfg.validate("receivers.flows");
    let paths: Vec<&str> = d.errors().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "receivers.flows.sampling",
            "receivers.flows.exclude_protocols"
        ]
    );
    assert_eq!(d.warnings().count(), 1, "lo is included and excluded");
    assert!(cfg.wants_interface("veth0") && !cfg.wants_interface("eth0"));
    assert!(cfg.attribute_set().contains(A::IfaceDirection));
}
