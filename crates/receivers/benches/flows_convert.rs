//! Conversion of 1 million flow records into metric data points (dedup, roles, aggregation),
//! on one core; and, as root, the whole eviction: reading and deleting the 1M entries of the
//! kernel map, then converting them.
//!
//! `cargo bench -p tapline-receivers --bench flows_convert`
//!
//! "first" converts with a fresh converter (the first eviction after start: every map it
//! keeps is new, so its memory is faulted in on the way); "steady" with a converter that has
//! already converted the same flows once, as the agent does every `cache_active_timeout`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use tapline_core::data::{Attributes, Resource, Str};
use tapline_ebpf::flows::{FlowCapture, FlowKey, FlowRecord, FlowsKernelConfig, FAMILY_IPV4};
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

fn overflow(ring: &[FlowRecord]) -> Overflow {
    let mut o = Overflow::default();
    o.add(ring.iter().copied());
    o
}

/// A converter that has converted these flows once already.
fn steady_converter(
    attributes: AttributeSet,
    map: &[FlowRecord],
    ring: &[FlowRecord],
) -> Converter {
    let mut c = converter(attributes);
    c.convert(&mut map.to_vec(), &mut overflow(ring), 0);
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

/// Median of 3 runs of `timed` (CPU time), each after an untimed `setup`.
fn median_cpu<S>(mut setup: impl FnMut() -> S, mut timed: impl FnMut(S)) -> std::time::Duration {
    let mut cpu: Vec<_> = (0..3)
        .map(|_| {
            let s = setup();
            let t = thread_cpu();
            timed(s);
            thread_cpu() - t
        })
        .collect();
    cpu.sort();
    cpu[1]
}

fn attribute_sets() -> [(&'static str, AttributeSet); 2] {
    [
        (
            "default_attributes",
            DEFAULT_ATTRIBUTES.iter().copied().collect(),
        ),
        (
            "all_attributes",
            AttributeSet::from_iter(FlowAttribute::ALL),
        ),
    ]
}

/// The kernel map, filled with `map` before every eviction; `None` when not root.
fn kernel_map(map: &[FlowRecord]) -> Option<FlowCapture> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("evict_and_convert: skipped (needs root to load the eBPF map)");
        return None;
    }
    let cap = FlowCapture::load(&FlowsKernelConfig {
        max_flows: map.len() as u32,
        ..Default::default()
    })
    .expect("load the flows programs");
    Some(cap)
}

fn bench(c: &mut Criterion) {
    let (map, ring) = records();
    let records = map.len() + ring.len();
    // One-core CPU times (median of 3), printed beside criterion's wall times.
    for (name, attrs) in attribute_sets() {
        let mut points = 0;
        let first = median_cpu(
            || (converter(attrs), map.clone(), overflow(&ring)),
            |(mut conv, mut recs, mut o)| points = conv.convert(&mut recs, &mut o, 0).1.points,
        );
        let mut conv = steady_converter(attrs, &map, &ring);
        let steady = median_cpu(
            || (map.clone(), overflow(&ring)),
            |(mut recs, mut o)| {
                conv.convert(&mut recs, &mut o, 0);
            },
        );
        eprintln!(
            "convert {name}: {records} records -> {points} points; CPU time first {first:?}, steady {steady:?}"
        );
    }
    let mut kernel = kernel_map(&map);
    if let Some(cap) = kernel.as_mut() {
        let attrs = attribute_sets()[0].1;
        let mut conv = steady_converter(attrs, &map, &ring);
        let mut evicted = Vec::with_capacity(map.len() + ring.len());
        let (mut evict, mut total) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            cap.fill(&map).expect("fill the map");
            let mut o = overflow(&ring);
            evicted.clear();
            let t = thread_cpu();
            cap.evict_into(&mut evicted).expect("evict");
            let e = thread_cpu() - t;
            let (_, stats) = conv.convert(&mut evicted, &mut o, 0);
            total.push(thread_cpu() - t);
            evict.push(e);
            assert_eq!(stats.map_records, map.len());
        }
        evict.sort();
        total.sort();
        eprintln!(
            "evict_and_convert default_attributes (steady): {} map entries; CPU time evict {:?}, evict + convert {:?}",
            map.len(),
            evict[1],
            total[1]
        );
    }

    let mut g = c.benchmark_group("flows_convert_1M");
    g.sample_size(10);
    for (name, attrs) in attribute_sets() {
        g.bench_function(format!("{name}/first"), |b| {
            b.iter_batched(
                || (converter(attrs), map.clone(), overflow(&ring)),
                |(mut conv, mut recs, mut o)| {
                    let (m, stats) = conv.convert(&mut recs, &mut o, 0);
                    assert!(stats.points > 0);
                    (m, conv)
                },
                BatchSize::PerIteration,
            )
        });
        let mut conv = steady_converter(attrs, &map, &ring);
        g.bench_function(format!("{name}/steady"), |b| {
            b.iter_batched(
                || (map.clone(), overflow(&ring)),
                |(mut recs, mut o)| conv.convert(&mut recs, &mut o, 0).0,
                BatchSize::PerIteration,
            )
        });
    }
    if let Some(cap) = kernel.as_mut() {
        let mut conv = steady_converter(attribute_sets()[0].1, &map, &ring);
        // Setup and routine both need the map.
        let cap = std::cell::RefCell::new(cap);
        g.bench_function("evict_and_convert/default_attributes/steady", |b| {
            b.iter_batched(
                || {
                    cap.borrow_mut().fill(&map).expect("fill the map");
                    (Vec::with_capacity(map.len()), overflow(&ring))
                },
                |(mut evicted, mut o)| {
                    cap.borrow_mut().evict_into(&mut evicted).expect("evict");
                    conv.convert(&mut evicted, &mut o, 0).0
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
