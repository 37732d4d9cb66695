//! Prints the application capture's events for a while.
//!
//! `cargo run -p tapline-ebpf --example app_dump -- [seconds] [pid...]` (as root). With pids,
//! only those are traced; otherwise every process except this one.

use std::time::{Duration, Instant};

use tapline_ebpf::app::{AppCapture, AppCaptureConfig, AppEvent, PidFilterMode};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let secs: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(10);
    let pids: Vec<u32> = args.map(|s| s.parse()).collect::<Result<_, _>>()?;
    let cfg = AppCaptureConfig {
        filter_mode: if pids.is_empty() {
            PidFilterMode::AllExcept
        } else {
            PidFilterMode::Only
        },
        include_pids: pids,
        ..Default::default()
    };
    let mut cap = AppCapture::load(&cfg)?;
    cap.attach()?;
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut events = Vec::new();
    while Instant::now() < deadline {
        cap.wait(Duration::from_millis(200))?;
        cap.poll(&mut events);
        for ev in events.drain(..) {
            match ev {
                AppEvent::Data(d) => println!(
                    "data pid={} tid={} fd={} conn={:#x} {:?} {:?} {} -> {} {:?} ret={} {}us {:?}",
                    d.pid,
                    d.tid,
                    d.fd,
                    d.conn_id,
                    d.syscall,
                    d.direction,
                    d.local,
                    d.remote,
                    d.role,
                    d.bytes,
                    (d.end_ns - d.start_ns) / 1000,
                    String::from_utf8_lossy(&d.data[..d.data.len().min(80)]),
                ),
                other => println!("{other:?}"),
            }
        }
    }
    println!(
        "emitted={} lost={} http_unframed={}",
        cap.emitted_events(),
        cap.lost_events(),
        cap.http_fallbacks()
    );
    Ok(())
}
