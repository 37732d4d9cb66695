//! Attaches the flows capture to interfaces of the current network namespace and prints the
//! evicted flows every interval. Used by `scripts/bench flows-overhead`; run it as root, e.g.
//!
//! ```text
//! ip netns exec NS cargo run --release -p tapline-ebpf --example flows_attach -- \
//!     [--socket] [--seconds N] [--interval-ms N] [--quiet] IFNAME...
//! ```
//! Stops after `--seconds` (default 3600) or when stdin reaches EOF / is closed.
use std::{
    io::Read,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use tapline_ebpf::flows::{AttachDirection, FlowCapture, FlowSource, FlowsKernelConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut cfg = FlowsKernelConfig::default();
    let (mut seconds, mut interval_ms, mut quiet) = (3600u64, 1000u64, false);
    let mut ifaces = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--socket" => cfg.source = FlowSource::SocketFilter,
            "--seconds" => seconds = args.next().ok_or("--seconds N")?.parse()?,
            "--interval-ms" => interval_ms = args.next().ok_or("--interval-ms N")?.parse()?,
            "--max-flows" => cfg.max_flows = args.next().ok_or("--max-flows N")?.parse()?,
            "--quiet" => quiet = true,
            _ => ifaces.push(a),
        }
    }
    let mut cap = FlowCapture::load(&cfg)?;
    for i in &ifaces {
        cap.attach(i, AttachDirection::Both)?;
    }
    println!("attached to {:?}", cap.attached());
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        while matches!(std::io::stdin().read(&mut buf), Ok(n) if n > 0) {}
        s.store(true, Ordering::Relaxed);
    });
    let end = Instant::now() + Duration::from_secs(seconds);
    let (mut bytes, mut packets) = (0u64, 0u64);
    while Instant::now() < end && !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(interval_ms));
        let mut recs = cap.evict()?;
        cap.drain_overflow(&mut recs);
        for r in &recs {
            bytes += r.bytes;
            packets += r.packets;
            if !quiet {
                println!(
                    "{:?} if={} {:?}:{} -> {:?}:{} proto={} bytes={} packets={} flags={:#x}",
                    r.key.direction(),
                    r.key.ifindex,
                    r.key.src_ip(),
                    r.key.src_port,
                    r.key.dst_ip(),
                    r.key.dst_port,
                    r.key.protocol,
                    r.bytes,
                    r.packets,
                    r.tcp_flags
                );
            }
        }
    }
    println!(
        "total bytes={bytes} packets={packets} lost={}",
        cap.lost_events()
    );
    Ok(())
}
