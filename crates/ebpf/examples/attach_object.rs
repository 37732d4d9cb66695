//! Measurement helper (`scripts/bench app-floor`, `scripts/bench flows-overhead`): loads any eBPF object
//! and attaches its tracepoint and classifier programs for `seconds`, to measure what the
//! hooks themselves cost.
//!
//! `attach_object <object.o> <seconds> [IFNAME...]`
//!
//! Program names say where they attach: a classic tracepoint program named
//! `<name>` attaches to `syscalls/<name>` (e.g. `sys_enter_read`); a `tp_btf` program named
//! `btf_<event>` to the BTF tracepoint `<event>` (e.g. `btf_sys_enter`); a raw tracepoint
//! program named `raw_<event>` to the raw tracepoint `<event>`; an fexit program named
//! `fexit_<function>` to the kernel function `<function>`; a classifier to both
//! directions of every IFNAME, through TCX links as the flows capture attaches. Prints
//! `attach_object: attached` on stderr once everything is attached (the scripts wait for it).

use std::time::Duration;

use aya::programs::tc::TcAttachType;
use aya::programs::{BtfTracePoint, FExit, Program, RawTracePoint, SchedClassifier, TracePoint};
use aya::{Btf, Ebpf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    const USAGE: &str = "usage: attach_object <object.o> <seconds> [IFNAME...]";
    let path = args.next().ok_or(USAGE)?;
    let secs: f64 = args.next().ok_or(USAGE)?.parse()?;
    let ifaces: Vec<String> = args.collect();
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
            Program::FExit(p) => {
                let p: &mut FExit = p;
                let function = name
                    .strip_prefix("fexit_")
                    .ok_or("fexit program not named fexit_*")?;
                p.load(function, &btf)?;
                p.attach()?;
            }
            Program::SchedClassifier(p) => {
                let p: &mut SchedClassifier = p;
                p.load()?;
                for i in &ifaces {
                    for dir in [TcAttachType::Ingress, TcAttachType::Egress] {
                        p.attach(i, dir)
                            .map_err(|e| format!("{name} on {i} ({dir:?}): {e}"))?;
                    }
                }
            }
            _ => return Err(format!("{name}: unsupported program type").into()),
        }
        links += 1;
    }
    eprintln!("attach_object: attached {links} programs");
    std::thread::sleep(Duration::from_secs_f64(secs));
    Ok(())
}
