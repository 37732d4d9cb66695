//! Dropping a FlowCapture leaves nothing behind: no program, no TCX link, no tc filter, no
//! packet socket (root required).

use tapline_ebpf::flows::{AttachDirection, FlowCapture, FlowSource, FlowsKernelConfig};
use tapline_test_support::netns::*;

#[test]
fn drop_detaches_and_unloads_everything() {
    require_root();
    let pair = NetPair::new("drop", false);
    let ids = in_netns(&pair.a, || {
        let mut tc = FlowCapture::load(&FlowsKernelConfig::default()).unwrap();
        let mut sk = FlowCapture::load(&FlowsKernelConfig {
            source: FlowSource::SocketFilter,
            ..Default::default()
        })
        .unwrap();
        tc.attach("va", AttachDirection::Both).unwrap();
        sk.attach("va", AttachDirection::Both).unwrap();
        let mut ids = tc.program_ids();
        ids.extend(sk.program_ids());
        assert_eq!(ids.len(), 3, "tc in + tc out + socket filter");
        let links = sh_out(&["bpftool", "link", "show"]);
        for id in &ids[..2] {
            assert!(
                links.contains(&format!("prog {id}")),
                "TCX link of prog {id} in:\n{links}"
            );
        }
        let progs = sh_out(&["bpftool", "prog", "show"]);
        assert!(progs.contains("tapline_tc_in") && progs.contains("tapline_sock"));
        let packet = sh_out(&["ip", "netns", "exec", &pair.a, "cat", "/proc/net/packet"]);
        assert_eq!(packet.lines().count(), 2, "one packet socket:\n{packet}");
        ids
    });
    // Both captures were dropped at the end of the closure.
    for id in &ids {
        assert!(!bpf_object_remains("prog", *id), "prog {id} still loaded");
    }
    let links = sh_out(&["bpftool", "link", "show"]);
    for id in &ids {
        assert!(
            !links.contains(&format!("prog {id}\n")) && !links.contains(&format!("prog {id} ")),
            "a link of prog {id} remains:\n{links}"
        );
    }
    for dir in ["ingress", "egress"] {
        let f = sh_out(&[
            "ip", "netns", "exec", &pair.a, "tc", "filter", "show", "dev", "va", dir,
        ]);
        assert!(f.trim().is_empty(), "tc {dir} filters remain: {f}");
    }
    let packet = sh_out(&["ip", "netns", "exec", &pair.a, "cat", "/proc/net/packet"]);
    assert_eq!(
        packet.lines().count(),
        1,
        "packet socket still open:\n{packet}"
    );
}

#[test]
#[ignore = "benchmark: cargo test --release -p tapline-ebpf --test flows_cleanup -- --ignored --nocapture"]
fn evict_one_million_entries() {
    require_root();
    const N: u32 = 1_000_000;
    let mut cap = FlowCapture::load(&FlowsKernelConfig {
        max_flows: N,
        ..Default::default()
    })
    .unwrap();
    let t = std::time::Instant::now();
    cap.fill_synthetic(N).unwrap();
    let fill = t.elapsed();
    let t = std::time::Instant::now();
    let recs = cap.evict().unwrap();
    let evict = t.elapsed();
    assert_eq!(recs.len(), N as usize);
    assert_eq!(
        recs.iter().map(|r| r.bytes).sum::<u64>(),
        100 * u64::from(N)
    );
    assert!(cap.evict().unwrap().is_empty());
    println!(
        "evict_one_million_entries: fill {fill:?}, evict {evict:?} ({} CPUs)",
        aya::util::nr_cpus().unwrap()
    );
}
