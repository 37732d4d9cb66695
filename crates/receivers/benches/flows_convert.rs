//! Merge + dedup + conversion of 1 million flow records into metric data points, on one core.
//! The kernel side (reading 1M entries from the map) is measured in crates/ebpf/PERFORMANCE.md.
//!
//! `cargo bench -p tapline-receivers --bench flows_convert`

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use tapline_core::data::{Attributes, Resource, Str};
use tapline_ebpf::flows::{FlowKey, FlowRecord, FAMILY_IPV4};
use tapline_receivers::flows::{
    AttributeSet, Converter, ConverterOptions, FlowAttribute, Overflow, DEFAULT_ATTRIBUTES,
};

const N: u32 = 1_000_000;

/// 1M records: 50k hosts talking to 20 servers, TCP and UDP; 10% of the flows also seen on a
/// second interface (a bridge: dedup work); 5% of the records come from the ring buffer and
/// overlap a map record (merge work).
fn records() -> (Vec<FlowRecord>, Vec<FlowRecord>) {
    let mut map = Vec::with_capacity(N as usize);
    let mut ring = Vec::new();
    let mut i = 0u32;
    while map.len() < N as usize {
        let host = i % 50_000;
        let mut src = [0u8; 16];
        src[10] = 0xff;
        src[11] = 0xff;
        src[12] = 10;
        src[13] = (host >> 16) as u8;
        src[14] = (host >> 8) as u8;
        src[15] = host as u8;
        let mut dst = src;
        dst[12] = 172;
        dst[13] = 16;
        dst[14] = 0;
        dst[15] = (i % 20) as u8;
        let r = FlowRecord {
            key: FlowKey {
                src_addr: src,
                dst_addr: dst,
                src_port: 32768 + (i / 50_000) as u16,
                dst_port: 8000 + (i % 20) as u16,
                protocol: if i.is_multiple_of(3) { 17 } else { 6 },
                family: FAMILY_IPV4,
                direction: 1,
                _pad: 0,
                ifindex: 3,
            },
            bytes: 1500,
            packets: 1,
            first_ns: 1_000 + u64::from(i),
            last_ns: 2_000 + u64::from(i),
            tcp_flags: if i.is_multiple_of(7) { 0x12 } else { 0x10 },
        };
        map.push(r);
        if i.is_multiple_of(10) && map.len() < N as usize {
            let mut b = r;
            b.key.ifindex = 4;
            b.first_ns += 1;
            map.push(b);
        }
        if i.is_multiple_of(20) {
            ring.push(r);
        }
        i += 1;
    }
    (map, ring)
}

fn converter(attributes: AttributeSet) -> Converter {
    let mut c = Converter::new(ConverterOptions {
        attributes,
        deduplicate: true,
        agent_ip: Str::from_static("192.0.2.1"),
        memory: 4 * 1_000_000,
        resource: Resource::new(Attributes::new()),
    });
    c.set_interface(3, "veth0");
    c.set_interface(4, "br0");
    c
}

/// CPU time of the calling thread: on a shared machine wall time includes waiting for a core.
fn thread_cpu() -> std::time::Duration {
    // SAFETY: timespec is plain data; clock_gettime fills it.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn bench(c: &mut Criterion) {
    let (map, ring) = records();
    // One-core CPU time per conversion (median of 3), printed beside criterion's wall times.
    for (name, attrs) in [
        (
            "all_attributes",
            AttributeSet::from_iter(FlowAttribute::ALL),
        ),
        (
            "default_attributes",
            DEFAULT_ATTRIBUTES.iter().copied().collect(),
        ),
    ] {
        let mut cpu: Vec<_> = (0..3)
            .map(|_| {
                let mut o = Overflow::default();
                o.add(ring.iter().copied());
                let (mut conv, mut recs) = (converter(attrs), map.clone());
                let t = thread_cpu();
                let (m, stats) = conv.convert(&mut recs, &mut o, 0);
                let spent = thread_cpu() - t;
                eprintln!(
                    "{name}: {} records -> {} points",
                    map.len() + ring.len(),
                    stats.points
                );
                drop(m);
                spent
            })
            .collect();
        cpu.sort();
        eprintln!(
            "{name}: CPU time per 1M-record conversion (median of 3): {:?}",
            cpu[1]
        );
    }

    let mut g = c.benchmark_group("flows_convert_1M");
    g.sample_size(10);
    for (name, attrs) in [
        (
            "all_attributes",
            AttributeSet::from_iter(FlowAttribute::ALL),
        ),
        (
            "default_attributes",
            DEFAULT_ATTRIBUTES.iter().copied().collect(),
        ),
    ] {
        g.bench_function(name, |b| {
            b.iter_batched(
                || {
                    let mut o = Overflow::default();
                    o.add(ring.iter().copied());
                    (converter(attrs), map.clone(), o)
                },
                |(mut conv, mut recs, mut o)| {
                    let (m, stats) = conv.convert(&mut recs, &mut o, 0);
                    assert!(stats.points > 0);
                    (m, conv)
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
