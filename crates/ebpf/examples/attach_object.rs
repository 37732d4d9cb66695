//! Measurement helper (`scripts/app_floor.sh`): loads any eBPF object and attaches its
//! tracepoint programs for `seconds`, to measure what the hooks themselves cost.
//!
//! `tp_attach <object.o> <seconds>`
//!
//! Program names say where they attach: a classic tracepoint program named
//! `<name>` attaches to `syscalls/<name>` (e.g. `sys_enter_read`); a `tp_btf` program named
//! `btf_<event>` to the BTF tracepoint `<event>` (e.g. `btf_sys_enter`); a raw tracepoint
//! program named `raw_<event>` to the raw tracepoint `<event>`. Prints `tp_attach: attached`
//! on stderr once everything is attached (the overhead scripts wait for it).

use std::time::Duration;

use aya::programs::{BtfTracePoint, Program, RawTracePoint, TracePoint};
use aya::{Btf, Ebpf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: tp_attach <object.o> <seconds>")?;
    let secs: f64 = args
        .next()
        .ok_or("usage: tp_attach <object.o> <seconds>")?
        .parse()?;
    let bytes = std::fs::read(&path)?;
    let mut ebpf = Ebpf::load(&bytes)?;
    let btf = Btf::from_sys_fs()?;
    let mut links = 0usize;
    for (name, prog) in ebpf.programs_mut() {
        match prog {
            Program::TracePoint(p) => {
                let p: &mut TracePoint = p;
                p.load()?;
                p.attach("syscalls", name)?;
            }
            Program::BtfTracePoint(p) => {
                let p: &mut BtfTracePoint = p;
                let event = name
                    .strip_prefix("btf_")
                    .ok_or("tp_btf program not named btf_*")?;
                p.load(event, &btf)?;
                p.attach()?;
            }
            Program::RawTracePoint(p) => {
                let p: &mut RawTracePoint = p;
                let event = name
                    .strip_prefix("raw_")
                    .ok_or("raw tracepoint not named raw_*")?;
                p.load()?;
                p.attach(event)?;
            }
            _ => return Err(format!("{name}: unsupported program type").into()),
        }
        links += 1;
    }
    eprintln!("tp_attach: attached {links} programs");
    std::thread::sleep(Duration::from_secs_f64(secs));
    Ok(())
}
