//! Consumer used by `scripts/bench app-overhead`: attaches the application capture, drains and
//! decodes every event for `seconds`, then prints one summary line:
//! `events=<n> events_per_s=<r> data_events=<n> payload_bytes=<n> lost=<n> emitted=<n>
//! tls_events=<n> tls_skipped=<n>`.
//!
//! `app_bench <seconds> [--only <pid>...] [--capture-bytes N] [--ring-bytes N] [--wakeup-bytes N] [--tls] [--per-call]`
//! (`--tls`: also attach the libssl probes to every libssl mapped by a process, or with
//! `--only` to the libssl of the selected processes, scoped to them; see
//! `scripts/bench tls-overhead`; `--per-call`: no HTTP/1.x framing in the kernel, one record
//! per socket call)

use std::time::{Duration, Instant};

use tapline_ebpf::app::{AppCapture, AppCaptureConfig, AppEvent, PidFilterMode};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let secs: f64 = args
        .next()
        .ok_or("usage: app_bench <seconds> ...")?
        .parse()?;
    let mut cfg = AppCaptureConfig::default();
    let mut with_tls = false;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--only" => {
                cfg.filter_mode = PidFilterMode::Only;
                cfg.include_pids
                    .push(args.next().ok_or("--only <pid>")?.parse()?);
            }
            "--capture-bytes" => cfg.capture_bytes = args.next().ok_or("value")?.parse()?,
            "--ring-bytes" => cfg.ring_buffer_bytes = args.next().ok_or("value")?.parse()?,
            "--wakeup-bytes" => cfg.wakeup_bytes = args.next().ok_or("value")?.parse()?,
            "--tls" => with_tls = true,
            "--per-call" => cfg.frame_http = false,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let mut cap = AppCapture::load(&cfg)?;
    cap.attach()?;
    if with_tls {
        // with --only, probes scoped to the selected processes (others take no uprobe traps)
        let scan = if cfg.filter_mode == PidFilterMode::Only {
            cap.rescan_ssl_for_pids(&cfg.include_pids)
        } else {
            cap.rescan_ssl()
        };
        if let Some(e) = scan.errors.first() {
            return Err(e.to_string().into());
        }
        for lib in cap.ssl_libraries() {
            eprintln!(
                "app_bench: TLS probes on {} (pid {:?})",
                lib.path.display(),
                lib.pid
            );
        }
    }
    eprintln!("app_bench: attached");
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let mut events = Vec::with_capacity(1 << 16);
    let (mut total, mut data, mut payload, mut tls) = (0u64, 0u64, 0u64, 0u64);
    while Instant::now() < deadline {
        cap.wait(Duration::from_millis(100))?;
        cap.poll(&mut events);
        for ev in events.drain(..) {
            total += 1;
            if let AppEvent::Data(d) = ev {
                data += 1;
                payload += d.data.len() as u64;
                tls += u64::from(d.is_tls());
            }
        }
    }
    cap.detach()?;
    cap.poll(&mut events);
    total += events.len() as u64;
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "events={total} events_per_s={:.0} data_events={data} payload_bytes={payload} lost={} \
         emitted={} tls_events={tls} tls_skipped={}",
        total as f64 / elapsed,
        cap.lost_events(),
        cap.emitted_events(),
        cap.tls_skipped_syscalls()
    );
    Ok(())
}
