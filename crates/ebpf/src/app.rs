//! Application (L7) capture: socket-layer hooks that report, for TCP sockets only, every
//! successful data syscall (with the first bytes of the payload) and the connection lifecycle
//! (accept, connect, close), each with the process name (`comm`, for processes gone before
//! their `/proc` entry can be read). Protocol parsers (HTTP, Redis, SQL...) are built on [`AppEvent`].
//! With [`AppCapture::rescan_ssl`] / [`AppCapture::attach_ssl`], TLS connections made through
//! libssl are reported in clear text instead (see [`tls`]).
//!
//! The eBPF side is `src/bpf/app.bpf.c` (layout in `src/bpf/app.h`), embedded as
//! `objects/app.o`. No kprobes, fentry or syscall tracepoints are used: programs at the BTF
//! tracepoints `sock_send_length` / `sock_recv_length` run after each socket send and receive,
//! with the `struct sock`, and read the syscall's fd and buffer from the registers it saved;
//! `inet_sock_set_state` gives the roles (which end completed the handshake) and the closes
//! (see [`APP_PROGRAMS`]). Nothing runs for other syscalls, and tracefs is not needed. Those
//! tracepoints came with Linux 6.3: on older kernels with BTF and fentry (6.1, 5.15) fexit
//! programs on `tcp_sendmsg` / `tcp_recvmsg` / `tcp_sendpage` take their place
//! ([`SocketHooks`], probed in the kernel's BTF at load). `sendfile`/`splice` bytes are seen
//! through `tcp_sendpage` before 6.3 and from 6.5, where they go through `sock_sendmsg`. Per-socket state is socket-local storage; each
//! thread's pid-filter decision (for long pid lists) and TLS call are kept in task-local
//! storage (`BPF_MAP_TYPE_TASK_STORAGE`); aya surfaces both maps as `Map::Unsupported`,
//! userspace does not read them.
//!
//! ```no_run
//! use tapline_ebpf::app::{AppCapture, AppCaptureConfig, AppEvent};
//! let mut cap = AppCapture::load(&AppCaptureConfig::default())?;
//! cap.attach()?;
//! let mut events = Vec::new();
//! loop {
//!     cap.wait(std::time::Duration::from_millis(100))?;
//!     cap.poll(&mut events);
//!     for ev in events.drain(..) {
//!         if let AppEvent::Data(d) = ev {
//!             println!("{} {:?} {} bytes", d.pid, d.direction, d.bytes);
//!         }
//!     }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod btf_params;
pub mod event;
pub mod raw;
pub mod tls;

use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

use aya::maps::{Array, HashMap, MapData, PerCpuArray, RingBuf};
use aya::programs::fexit::FExitLinkId;
use aya::programs::tp_btf::BtfTracePointLinkId;
use aya::programs::{BtfTracePoint, FExit, ProgramError, UProbe};
use aya::{Btf, Ebpf, EbpfError, EbpfLoader};
use aya_obj::btf::BtfKind;

pub use event::{AppEvent, ConnEvent, DataEvent, Direction, HttpEnd, HttpEvent, Role, Syscall};
pub use tls::{TlsLibrary, TlsScan, APP_SSL_PROGRAMS};

/// The compiled eBPF object (built by `build-objects.sh` from `src/bpf/app.bpf.c`).
pub static APP_OBJECT: &[u8] = aya::include_bytes_aligned!("../objects/app.o");

/// The programs and their BTF tracepoints (`tp_btf/<event>`): after every socket send and
/// receive (the data, with the syscall's arguments read from its saved registers), at
/// every TCP state change (roles, close), and at every thread's exit (an SSL_* call it
/// leaves unfinished stops counting as in flight).
pub const APP_PROGRAMS: &[(&str, &str)] = &[
    ("app_sock_send", "sock_send_length"),
    ("app_sock_recv", "sock_recv_length"),
    ("app_sock_state", "inet_sock_set_state"),
    ("app_task_exit", "sched_process_exit"),
];

/// The socket send and receive programs of [`APP_PROGRAMS`]: replaced by
/// [`APP_FEXIT_PROGRAMS`] on kernels without their tracepoints.
const SOCKET_TRACEPOINT_PROGRAMS: [&str; 2] = ["app_sock_send", "app_sock_recv"];

/// The same socket send and receive hooks for kernels without the `sock_send_length` /
/// `sock_recv_length` tracepoints (before Linux 6.3): fexit programs on TCP's send and
/// receive functions (program, function). Not `sock_sendmsg`: 6.1 inlines it into most of its
/// callers, so its fexit misses most sends. `tcp_sendpage` carries `sendfile`/`splice` to a
/// socket before Linux 6.5; a kernel without it has none of its fexit. `tcp_recvmsg` has two
/// programs, one per argument list ([`recvmsg_program`]): only one of them is loaded.
pub const APP_FEXIT_PROGRAMS: &[(&str, &str)] = &[
    ("app_fexit_sendmsg", "tcp_sendmsg"),
    ("app_fexit_recvmsg", "tcp_recvmsg"),
    ("app_fexit_recvmsg_nonblock", "tcp_recvmsg"),
    ("app_fexit_sendpage", "tcp_sendpage"),
];

/// The fexit program for this kernel's `tcp_recvmsg`, by its number of arguments in `btf`
/// (the kernel's BTF): `(sk, msg, len, flags, addr_len)`, or before Linux 5.19 `(sk, msg,
/// len, nonblock, flags, addr_len)`. The programs read `flags` and the return value at
/// their position in that list.
pub fn recvmsg_program(btf: &[u8]) -> Result<&'static str, String> {
    match btf_params::func_param_count(btf, "tcp_recvmsg") {
        Ok(Some(5)) => Ok("app_fexit_recvmsg"),
        Ok(Some(6)) => Ok("app_fexit_recvmsg_nonblock"),
        Ok(Some(n)) => Err(format!(
            "tcp_recvmsg takes {n} arguments here; the app receiver knows its 5- and \
             6-argument forms"
        )),
        Ok(None) => Err("the kernel's BTF describes no tcp_recvmsg".into()),
        Err(e) => Err(format!(
            "reading tcp_recvmsg's arguments in the kernel's BTF: {e}"
        )),
    }
}

/// Where the socket send and receive programs hook. Chosen by [`SocketHooks::probe`] from what
/// the kernel's BTF describes, never from its version number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketHooks {
    /// `tp_btf/sock_send_length` and `tp_btf/sock_recv_length` (Linux 6.3 and later): they
    /// fire only for socket I/O and need no ftrace.
    Tracepoints,
    /// fexit on `tcp_sendmsg`, `tcp_recvmsg` (and `tcp_sendpage`): TCP's own send and
    /// receive, on kernels with BTF and fentry/fexit but without the tracepoints.
    Fexit,
}

impl SocketHooks {
    pub fn as_str(self) -> &'static str {
        match self {
            SocketHooks::Tracepoints => "tp_btf/sock_send_length + tp_btf/sock_recv_length",
            SocketHooks::Fexit => "fexit/tcp_sendmsg + fexit/tcp_recvmsg + fexit/tcp_sendpage",
        }
    }

    /// The hooks this kernel's BTF (`/sys/kernel/btf/vmlinux`) allows, and why; an error
    /// says what is missing.
    pub fn probe(btf: &Btf) -> Result<(SocketHooks, String), String> {
        let has = |name: &str, kind| btf.id_by_type_name_kind(name, kind).is_ok();
        if has("btf_trace_sock_send_length", BtfKind::Typedef)
            && has("btf_trace_sock_recv_length", BtfKind::Typedef)
        {
            return Ok((
                SocketHooks::Tracepoints,
                "the kernel has the sock_send_length and sock_recv_length tracepoints".into(),
            ));
        }
        if has("tcp_sendmsg", BtfKind::Func) && has("tcp_recvmsg", BtfKind::Func) {
            let sendpage = if has("tcp_sendpage", BtfKind::Func) {
                "; sendfile and splice through tcp_sendpage"
            } else {
                ""
            };
            return Ok((
                SocketHooks::Fexit,
                format!(
                    "the kernel has no sock_send_length/sock_recv_length tracepoints (they came \
                     with Linux 6.3); its BTF describes tcp_sendmsg and tcp_recvmsg, hooked \
                     with fexit{sendpage}"
                ),
            ));
        }
        Err(
            "the kernel's BTF has neither the sock_send_length/sock_recv_length tracepoints \
             (Linux 6.3) nor the functions tcp_sendmsg and tcp_recvmsg for fexit"
                .into(),
        )
    }
}

/// A socket program's link.
enum ProgramLink {
    Tracepoint(BtfTracePointLinkId),
    Fexit(FExitLinkId),
}

/// Default payload prefix per data event.
pub const DEFAULT_CAPTURE_BYTES: u32 = 256;
/// Default ring buffer size (8 MiB).
pub const DEFAULT_RING_BUFFER_BYTES: u32 = 8 << 20;
/// Default wakeup watermark (256 KiB). Against 64 KiB it cuts the traced thread's cost per
/// socket call by ~15-25 % (the wakeup's self-IPI traps to the hypervisor on a VM); 512 KiB
/// and 1 MiB are no cheaper (docs/ebpf-design.md, "The ring buffer and its wakeup watermark").
/// Draining on a timer instead, with no kernel wakeups, wakes the consumer on whichever CPU
/// its timer was armed, often the traced program's.
pub const DEFAULT_WAKEUP_BYTES: u32 = 256 << 10;

/// Which processes are traced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PidFilterMode {
    /// Every process except those marked [`PidAction::Exclude`].
    #[default]
    AllExcept,
    /// Only the processes marked [`PidAction::Include`].
    Only,
}

/// What [`AppCapture::set_pid_filter`] does with one pid (a thread group id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PidAction {
    /// Trace this pid (needed in [`PidFilterMode::Only`]).
    Include,
    /// Do not trace this pid (effective in [`PidFilterMode::AllExcept`]; in `Only` mode a pid
    /// that is not included is not traced anyway).
    Exclude,
    /// Forget the pid: it follows the mode's default again.
    Clear,
}

/// Load-time configuration of the application capture.
#[derive(Debug, Clone)]
pub struct AppCaptureConfig {
    /// Payload prefix copied per data event; 0 disables payload capture. At most
    /// [`raw::APP_MAX_CAPTURE`] (4096). Default 256.
    pub capture_bytes: u32,
    /// Ring buffer size in bytes: a power of two, at least one page. Default 8 MiB.
    pub ring_buffer_bytes: u32,
    /// The kernel wakes a consumer blocked in [`AppCapture::wait`] / [`AppCapture::readable`]
    /// only once this many bytes wait in the ring buffer (clamped to half the ring buffer).
    /// Each CPU checks the fill level once per `wakeup_bytes / 8` of events it emitted, so
    /// the wakeup can come up to that much per CPU after the watermark was crossed.
    /// A wakeup costs the traced process that emits it an irq_work, a self-IPI (on a VM a
    /// trap to the hypervisor: 10-25 µs measured here) and a scheduler wakeup, so it must not
    /// come per event; consumers also wait with a timeout (their latency bound) and poll
    /// after it. 0 wakes on every event. Default 256 KiB.
    pub wakeup_bytes: u32,
    /// Initial filter mode. Default [`PidFilterMode::AllExcept`].
    pub filter_mode: PidFilterMode,
    /// Pids not to trace (in `AllExcept` mode).
    pub exclude_pids: Vec<u32>,
    /// Pids to trace (in `Only` mode).
    pub include_pids: Vec<u32>,
    /// Also exclude the current process (default true), so that tapline does not trace its
    /// own exporters.
    pub exclude_self: bool,
    /// Frame HTTP/1.x in the kernel (default true): one [`AppEvent::Http`] per request and
    /// response instead of one [`AppEvent::Data`] per call, bodies counted and never copied.
    /// Connections the kernel cannot frame (see `src/bpf/http_framing.h`) are reported per
    /// call, as every connection is with `false`.
    pub frame_http: bool,
}

impl Default for AppCaptureConfig {
    fn default() -> Self {
        Self {
            capture_bytes: DEFAULT_CAPTURE_BYTES,
            ring_buffer_bytes: DEFAULT_RING_BUFFER_BYTES,
            wakeup_bytes: DEFAULT_WAKEUP_BYTES,
            filter_mode: PidFilterMode::AllExcept,
            exclude_pids: Vec::new(),
            include_pids: Vec::new(),
            exclude_self: true,
            frame_http: true,
        }
    }
}

/// Errors of the application capture.
#[derive(Debug)]
pub enum AppCaptureError {
    /// The configuration is invalid.
    Config(String),
    /// The kernel refused for lack of privileges.
    Permission(String),
    /// A program failed to load; `log` is the shortened verifier log.
    Load {
        /// Program name.
        program: String,
        /// What failed.
        error: String,
        /// Last lines of the verifier log.
        log: String,
    },
    /// A program failed to attach to its tracepoint.
    Attach {
        /// Program name.
        program: String,
        /// `category/name` of the tracepoint.
        tracepoint: String,
        /// What failed.
        error: String,
    },
    /// A TLS probe failed to attach to a library (see [`AppCapture::attach_ssl`]).
    Uprobe {
        /// The library (path as given, or as seen by `pid`).
        library: std::path::PathBuf,
        /// The process the library was found in, if any.
        pid: Option<u32>,
        /// Program name (`-` if the library itself could not be opened).
        program: String,
        /// libssl symbol.
        symbol: String,
        /// What failed.
        error: String,
    },
    /// A map operation failed.
    Map {
        /// Map name.
        map: &'static str,
        /// What failed.
        error: String,
    },
}

impl fmt::Display for AppCaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppCaptureError::Config(m) => write!(f, "app capture config: {m}"),
            AppCaptureError::Permission(m) => write!(
                f,
                "app capture: permission denied ({m}): run as root or grant CAP_BPF and \
                 CAP_PERFMON"
            ),
            AppCaptureError::Load {
                program,
                error,
                log,
            } => {
                write!(
                    f,
                    "app capture: eBPF program `{program}` failed to load: {error}"
                )?;
                if !log.is_empty() {
                    write!(f, "\nverifier log (shortened):\n{log}")?;
                }
                Ok(())
            }
            AppCaptureError::Attach {
                program,
                tracepoint,
                error,
            } => write!(
                f,
                "app capture: eBPF program `{program}` failed to attach to tracepoint \
                 {tracepoint}: {error}"
            ),
            AppCaptureError::Uprobe {
                library,
                pid,
                program,
                symbol,
                error,
            } => {
                write!(f, "app capture: TLS probes on {}", library.display())?;
                if let Some(pid) = pid {
                    write!(f, " (mapped by pid {pid})")?;
                }
                if program != "-" {
                    write!(f, ": `{program}` on symbol {symbol}")?;
                }
                write!(f, ": {error}")
            }
            AppCaptureError::Map { map, error } => {
                write!(f, "app capture: map `{map}`: {error}")
            }
        }
    }
}

impl std::error::Error for AppCaptureError {}

fn filter_mode_value(mode: PidFilterMode) -> u32 {
    match mode {
        PidFilterMode::AllExcept => raw::APP_FILTER_ALL_EXCEPT,
        PidFilterMode::Only => raw::APP_FILTER_ONLY,
    }
}

fn is_perm(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EPERM)
}

/// Keeps the lines of a verifier log that explain a rejection: the last 20.
fn shorten_log(log: &str) -> String {
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    let skip = lines.len().saturating_sub(20);
    let mut out = String::new();
    if skip > 0 {
        out.push_str(&format!("[... {skip} lines ...]\n"));
    }
    out.push_str(&lines[skip..].join("\n"));
    out
}

/// The kernel's BTF has no `btf_trace_<event>`: a kernel older than the tracepoint.
fn missing_tracepoint(program: &str, event: &str) -> AppCaptureError {
    AppCaptureError::Load {
        program: program.to_string(),
        error: format!(
            "this kernel has no `{event}` tracepoint (in its BTF): the app receiver needs \
             Linux 6.3 or later"
        ),
        log: String::new(),
    }
}

/// The program `name` of app.o, as its kind `P`.
fn app_program<'a, P>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut P, AppCaptureError>
where
    &'a mut P: TryFrom<&'a mut aya::programs::Program, Error = ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or_else(|| AppCaptureError::Load {
            program: name.to_string(),
            error: "not found in app.o".into(),
            log: String::new(),
        })?
        .try_into()
        .map_err(|e| program_error(name, e))
}

fn program_error(program: &str, e: ProgramError) -> AppCaptureError {
    match e {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            let log = verifier_log.to_string();
            if is_perm(&io_error) && log.trim().is_empty() {
                return AppCaptureError::Permission(format!("loading `{program}`: {io_error}"));
            }
            AppCaptureError::Load {
                program: program.to_string(),
                error: io_error.to_string(),
                log: shorten_log(&log),
            }
        }
        ProgramError::SyscallError(s) if is_perm(&s.io_error) => {
            AppCaptureError::Permission(format!("`{program}`: {s}"))
        }
        other => AppCaptureError::Load {
            program: program.to_string(),
            error: other.to_string(),
            log: String::new(),
        },
    }
}

fn ebpf_error(e: EbpfError) -> AppCaptureError {
    let text = e.to_string();
    let perm = match &e {
        EbpfError::MapError(aya::maps::MapError::CreateError { io_error, .. }) => is_perm(io_error),
        _ => false,
    };
    if perm || text.contains("Operation not permitted") {
        AppCaptureError::Permission(format!("creating maps: {text}"))
    } else {
        AppCaptureError::Load {
            program: "(object app.o)".into(),
            error: format!("{e:?}"),
            log: String::new(),
        }
    }
}

fn map_err(map: &'static str) -> impl Fn(aya::maps::MapError) -> AppCaptureError {
    move |e| AppCaptureError::Map {
        map,
        error: e.to_string(),
    }
}

/// The loaded application capture: owns the eBPF object, its maps and every tracepoint link.
/// Dropping it detaches everything.
pub struct AppCapture {
    ring: RingBuf<MapData>,
    ebpf: Ebpf,
    links: Vec<(&'static str, ProgramLink)>,
    /// Where the socket send and receive programs hook on this kernel, and why.
    hooks: (SocketHooks, String),
    /// The programs [`AppCapture::attach`] attaches: (program, target) of the chosen hooks.
    attach_plan: Vec<(&'static str, &'static str, bool)>,
    /// What `app_config` holds (`pid_gen` 0: never written; the programs treat 0 as "never
    /// computed", so written values skip it).
    config: raw::RawAppConfig,
    /// The pids marked include or exclude (what `app_pids` holds).
    pid_marks: std::collections::BTreeMap<u32, PidAction>,
    async_fd: Option<tokio::io::unix::AsyncFd<OwnedFd>>,
    ssl: tls::SslState,
    /// Payload buffers handed back by [`AppCapture::recycle`], reused by `poll`.
    spare: Vec<Vec<u8>>,
}

/// Payload buffers [`AppCapture::recycle`] keeps (each at most `APP_MAX_CAPTURE` bytes).
const MAX_SPARE_BUFFERS: usize = 4096;

impl fmt::Debug for AppCapture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppCapture")
            .field("ring_fd", &self.ring.as_raw_fd())
            .field("attached", &self.links.len())
            .field("tls_libraries", &self.ssl_libraries().len())
            .finish()
    }
}

impl AppCapture {
    /// Loads and verifies every program and creates the maps; nothing is attached yet.
    pub fn load(cfg: &AppCaptureConfig) -> Result<Self, AppCaptureError> {
        if cfg.capture_bytes > raw::APP_MAX_CAPTURE {
            return Err(AppCaptureError::Config(format!(
                "capture_bytes {} is above the maximum {}",
                cfg.capture_bytes,
                raw::APP_MAX_CAPTURE
            )));
        }
        let page = crate::sys::page_size();
        let rb = cfg.ring_buffer_bytes;
        if !rb.is_power_of_two() || rb < page {
            return Err(AppCaptureError::Config(format!(
                "ring_buffer_bytes {rb} must be a power of two and at least {page}"
            )));
        }

        let mut ebpf = EbpfLoader::new()
            .map_max_entries("app_events", rb)
            // `app_tasks` is task-local storage, which aya creates but has no type for
            // (Map::Unsupported); userspace never reads it
            .allow_unsupported_maps()
            .load(APP_OBJECT)
            .map_err(ebpf_error)?;
        let btf = Btf::from_sys_fs().map_err(|e| AppCaptureError::Load {
            program: APP_PROGRAMS[0].0.into(),
            error: format!("kernel BTF (/sys/kernel/btf/vmlinux) is needed: {e}"),
            log: String::new(),
        })?;
        let hooks = SocketHooks::probe(&btf).map_err(|error| AppCaptureError::Load {
            program: APP_PROGRAMS[0].0.into(),
            error,
            log: String::new(),
        })?;
        // Only the chosen hooks are loaded: the kernel verifies fexit programs against their
        // function, which a kernel without fentry (or without the function) refuses.
        let mut attach_plan = Vec::new();
        for &(name, event) in APP_PROGRAMS {
            if hooks.0 == SocketHooks::Fexit && SOCKET_TRACEPOINT_PROGRAMS.contains(&name) {
                continue;
            }
            let prog: &mut BtfTracePoint = app_program(&mut ebpf, name)?;
            prog.load(event, &btf).map_err(|e| match e {
                ProgramError::Btf(aya::BtfError::UnknownBtfTypeName { .. }) => {
                    missing_tracepoint(name, event)
                }
                e => program_error(name, e),
            })?;
            attach_plan.push((name, event, false));
        }
        if hooks.0 == SocketHooks::Fexit {
            let recvmsg = std::fs::read(btf_params::KERNEL_BTF)
                .map_err(|e| format!("{}: {e}", btf_params::KERNEL_BTF))
                .and_then(|raw| recvmsg_program(&raw))
                .map_err(|error| AppCaptureError::Load {
                    program: "app_fexit_recvmsg".into(),
                    error,
                    log: String::new(),
                })?;
            for &(name, function) in APP_FEXIT_PROGRAMS {
                if btf.id_by_type_name_kind(function, BtfKind::Func).is_err()
                    || (function == "tcp_recvmsg" && name != recvmsg)
                {
                    continue;
                }
                let prog: &mut FExit = app_program(&mut ebpf, name)?;
                prog.load(function, &btf).map_err(|e| {
                    // Say which capture was chosen and why: the error is all the log has.
                    match program_error(name, e) {
                        AppCaptureError::Load {
                            program,
                            error,
                            log,
                        } => AppCaptureError::Load {
                            program,
                            error: format!(
                                "{error} (socket hooks chosen: {}, because {})",
                                hooks.0.as_str(),
                                hooks.1
                            ),
                            log,
                        },
                        other => other,
                    }
                })?;
                attach_plan.push((name, function, true));
            }
        }
        for (name, _, _) in APP_SSL_PROGRAMS {
            let prog: &mut UProbe = ebpf
                .program_mut(name)
                .ok_or_else(|| AppCaptureError::Load {
                    program: name.to_string(),
                    error: "not found in app.o".into(),
                    log: String::new(),
                })?
                .try_into()
                .map_err(|e| program_error(name, e))?;
            prog.load().map_err(|e| program_error(name, e))?;
        }

        let ring_map = ebpf
            .take_map("app_events")
            .ok_or_else(|| AppCaptureError::Map {
                map: "app_events",
                error: "not found in app.o".into(),
            })?;
        let ring = RingBuf::try_from(ring_map).map_err(map_err("app_events"))?;
        let mut cap = AppCapture {
            ring,
            ebpf,
            links: Vec::new(),
            hooks,
            attach_plan,
            config: raw::RawAppConfig {
                capture_bytes: cfg.capture_bytes,
                wakeup_bytes: cfg.wakeup_bytes.min(rb / 2),
                filter_mode: filter_mode_value(cfg.filter_mode),
                frame_http: cfg.frame_http.into(),
                ..Default::default()
            },
            pid_marks: Default::default(),
            async_fd: None,
            spare: Vec::new(),
            ssl: tls::SslState::default(),
        };
        cap.write_config()?;
        for &pid in &cfg.exclude_pids {
            cap.set_pid_filter(pid, PidAction::Exclude)?;
        }
        for &pid in &cfg.include_pids {
            cap.set_pid_filter(pid, PidAction::Include)?;
        }
        if cfg.exclude_self {
            cap.set_pid_filter(std::process::id(), PidAction::Exclude)?;
        }
        Ok(cap)
    }

    /// Writes `self.config` with a new `pid_gen` (threads look their cached pid-filter
    /// decision up again) and the filter's pids inline when they fit.
    fn write_config(&mut self) -> Result<(), AppCaptureError> {
        let wanted = if self.config.filter_mode == raw::APP_FILTER_ONLY {
            PidAction::Include
        } else {
            PidAction::Exclude
        };
        let listed: Vec<u32> = self
            .pid_marks
            .iter()
            .filter(|(_, a)| **a == wanted)
            .map(|(pid, _)| *pid)
            .collect();
        let mut c = self.config;
        c.pids = [0; raw::APP_INLINE_PIDS as usize];
        if listed.len() <= c.pids.len() {
            c.n_pids = listed.len() as u32;
            c.pids[..listed.len()].copy_from_slice(&listed);
        } else {
            c.n_pids = raw::APP_PIDS_IN_MAP;
        }
        c.pid_gen = c.pid_gen.wrapping_add(1).max(1);
        let map = self
            .ebpf
            .map_mut("app_config")
            .ok_or_else(|| AppCaptureError::Map {
                map: "app_config",
                error: "not found".into(),
            })?;
        let mut arr: Array<_, raw::RawAppConfig> =
            Array::try_from(map).map_err(map_err("app_config"))?;
        arr.set(0, c, 0).map_err(map_err("app_config"))?;
        self.config = c;
        Ok(())
    }

    /// Tells the socket programs whether libssl probes may be attached (they then look for
    /// an SSL_* call in flight on every data syscall). On before the first probe is attached.
    pub(crate) fn set_tls_probes(&mut self, on: bool) -> Result<(), AppCaptureError> {
        if (self.config.tls_probes != 0) == on {
            return Ok(());
        }
        self.config.tls_probes = on.into();
        self.write_config()
    }

    /// Attaches every program to its tracepoint (idempotent). On error, what was attached so
    /// far stays attached; [`AppCapture::detach`] removes it.
    pub fn attach(&mut self) -> Result<(), AppCaptureError> {
        if !self.links.is_empty() {
            return Ok(());
        }
        for &(name, target, fexit) in &self.attach_plan {
            let prog = self.ebpf.program_mut(name).expect("loaded in load()");
            let (attached, what) = if fexit {
                let prog: &mut FExit = prog.try_into().map_err(|e| program_error(name, e))?;
                (
                    prog.attach().map(ProgramLink::Fexit),
                    format!("fexit/{target}"),
                )
            } else {
                let prog: &mut BtfTracePoint =
                    prog.try_into().map_err(|e| program_error(name, e))?;
                (
                    prog.attach().map(ProgramLink::Tracepoint),
                    format!("tp_btf/{target}"),
                )
            };
            let link = attached.map_err(|e| {
                if let ProgramError::SyscallError(s) = &e {
                    if is_perm(&s.io_error) {
                        return AppCaptureError::Permission(format!(
                            "attaching `{name}` to {what}: {s}"
                        ));
                    }
                }
                AppCaptureError::Attach {
                    program: name.to_string(),
                    tracepoint: what.clone(),
                    error: e.to_string(),
                }
            })?;
            self.links.push((name, link));
        }
        Ok(())
    }

    /// Where the socket send and receive programs hook on this kernel, and why (probed at
    /// load).
    pub fn socket_hooks(&self) -> (SocketHooks, &str) {
        (self.hooks.0, &self.hooks.1)
    }

    /// Detaches every socket program; the maps (and events not yet polled) stay.
    pub fn detach(&mut self) -> Result<(), AppCaptureError> {
        while let Some((name, link)) = self.links.pop() {
            let prog = self.ebpf.program_mut(name).expect("loaded in load()");
            match link {
                ProgramLink::Tracepoint(link) => {
                    let prog: &mut BtfTracePoint =
                        prog.try_into().map_err(|e| program_error(name, e))?;
                    prog.detach(link).map_err(|e| program_error(name, e))?;
                }
                ProgramLink::Fexit(link) => {
                    let prog: &mut FExit = prog.try_into().map_err(|e| program_error(name, e))?;
                    prog.detach(link).map_err(|e| program_error(name, e))?;
                }
            }
        }
        Ok(())
    }

    /// Kernel ids of the socket programs, in [`APP_PROGRAMS`] order then
    /// [`APP_FEXIT_PROGRAMS`] (for `bpftool` and diagnostics; `None` where a program is not
    /// loaded on this kernel or the kernel does not say).
    pub fn program_ids(&self) -> Vec<Option<u32>> {
        APP_PROGRAMS
            .iter()
            .chain(APP_FEXIT_PROGRAMS)
            .map(|(name, _)| self.ebpf.program(name)?.info().ok().map(|i| i.id()))
            .collect()
    }

    /// True while the tracepoints are attached.
    pub fn is_attached(&self) -> bool {
        !self.links.is_empty()
    }

    /// Includes, excludes or forgets one pid (thread group id); takes effect immediately.
    pub fn set_pid_filter(&mut self, pid: u32, action: PidAction) -> Result<(), AppCaptureError> {
        self.update_pid_map(pid, action)?;
        match action {
            PidAction::Clear => self.pid_marks.remove(&pid),
            _ => self.pid_marks.insert(pid, action),
        };
        // after the map change: a thread that cached its decision before it looks up again
        self.write_config()
    }

    fn update_pid_map(&mut self, pid: u32, action: PidAction) -> Result<(), AppCaptureError> {
        let map = self
            .ebpf
            .map_mut("app_pids")
            .ok_or_else(|| AppCaptureError::Map {
                map: "app_pids",
                error: "not found".into(),
            })?;
        let mut pids: HashMap<_, u32, u8> = HashMap::try_from(map).map_err(map_err("app_pids"))?;
        match action {
            PidAction::Include => pids.insert(pid, raw::APP_PID_INCLUDE, 0),
            PidAction::Exclude => pids.insert(pid, raw::APP_PID_EXCLUDE, 0),
            // Clearing a pid that has no mark is not an error.
            PidAction::Clear => match pids.remove(&pid) {
                Err(aya::maps::MapError::KeyNotFound) => Ok(()),
                Err(aya::maps::MapError::SyscallError(e))
                    if e.io_error.raw_os_error() == Some(libc::ENOENT) =>
                {
                    Ok(())
                }
                other => other,
            },
        }
        .map_err(map_err("app_pids"))
    }

    /// Switches between "all except excluded" and "only included" (the pid marks are kept).
    pub fn set_filter_mode(&mut self, mode: PidFilterMode) -> Result<(), AppCaptureError> {
        self.config.filter_mode = filter_mode_value(mode);
        self.write_config()
    }

    /// Drains every event currently in the ring buffer into `out` (non-blocking). Returns how
    /// many were appended. Stops after 1 << 20 records so a flooded buffer cannot starve the
    /// caller.
    pub fn poll(&mut self, out: &mut Vec<AppEvent>) -> usize {
        let before = out.len();
        let mut n = 0usize;
        while n < (1 << 20) {
            let Some(item) = self.ring.next() else { break };
            if let Some(ev) = event::decode_reusing(&item, &mut self.spare) {
                out.push(ev);
            }
            n += 1;
        }
        out.len() - before
    }

    /// Hands a polled event back: its payload buffer serves a later event (saves an
    /// allocation and a free per data event).
    pub fn recycle(&mut self, ev: AppEvent) {
        if let AppEvent::Data(d) = ev {
            if self.spare.len() < MAX_SPARE_BUFFERS
                && d.data.capacity() <= raw::APP_MAX_CAPTURE as usize
            {
                self.spare.push(d.data);
            }
        }
    }

    /// Drains the ring buffer without decoding, handing each raw record (header + payload,
    /// see [`raw::RawAppEvent`]) to `f`. For consumers that only count or copy.
    pub fn poll_raw(&mut self, mut f: impl FnMut(&[u8])) -> usize {
        let mut n = 0usize;
        while n < (1 << 20) {
            let Some(item) = self.ring.next() else { break };
            f(&item);
            n += 1;
        }
        n
    }

    /// Blocks up to `timeout` until the kernel signals data (see
    /// [`AppCaptureConfig::wakeup_bytes`]: below the watermark this sleeps the whole
    /// `timeout`; call [`AppCapture::poll`] after it either way). Returns true if signalled.
    pub fn wait(&self, timeout: Duration) -> io::Result<bool> {
        match crate::sys::poll_readable(self.ring.as_fd(), timeout) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(false),
            other => other,
        }
    }

    /// Waits (async, tokio) until the kernel signals data (at the
    /// [`AppCaptureConfig::wakeup_bytes`] watermark); follow with [`AppCapture::poll`].
    /// Consumers usually want [`AppCapture::readable_or_timeout`] instead.
    /// Must be called inside a tokio runtime with IO enabled; the fd is registered on first
    /// use. Readiness is cleared before returning, so data arriving after the next `poll`
    /// wakes the following call.
    pub async fn readable(&mut self) -> io::Result<()> {
        if self.async_fd.is_none() {
            // a dup of the ring buffer fd (same file description, so epoll readiness is the
            // ring buffer's), owned by the AsyncFd
            let owned = self.ring.as_fd().try_clone_to_owned()?;
            // SAFETY: the AsyncFd owns `owned`, which stays open until the AsyncFd is dropped.
            let afd = unsafe {
                tokio::io::unix::AsyncFd::register_with_interest(
                    owned,
                    tokio::io::Interest::READABLE,
                )
            }
            .map_err(io::Error::from)?;
            self.async_fd = Some(afd);
        }
        let afd = self.async_fd.as_ref().expect("set above");
        let mut guard = afd.readable().await?;
        guard.clear_ready();
        Ok(())
    }

    /// Waits until the kernel signals data or `max_latency` passed, whichever is first; then
    /// call [`AppCapture::poll`]. Returns true if signalled.
    pub async fn readable_or_timeout(&mut self, max_latency: Duration) -> io::Result<bool> {
        match tokio::time::timeout(max_latency, self.readable()).await {
            Ok(r) => r.map(|()| true),
            Err(_) => Ok(false),
        }
    }

    fn stat(&self, idx: u32) -> u64 {
        let Some(map) = self.ebpf.map("app_stats") else {
            return 0;
        };
        let Ok(arr) = PerCpuArray::<_, u64>::try_from(map) else {
            return 0;
        };
        arr.get(&idx, 0)
            .map(|v| v.iter().copied().sum())
            .unwrap_or(0)
    }

    /// Events dropped because the ring buffer was full (summed over CPUs, since load).
    pub fn lost_events(&self) -> u64 {
        self.stat(raw::APP_STAT_LOST)
    }

    /// Events written into the ring buffer (summed over CPUs, since load).
    pub fn emitted_events(&self) -> u64 {
        self.stat(raw::APP_STAT_EMITTED)
    }

    /// HTTP/1.x connections the kernel stopped framing (a shape it does not frame), whose later
    /// calls came per call (summed over CPUs, since load).
    pub fn http_fallbacks(&self) -> u64 {
        self.stat(raw::APP_STAT_HTTP_FALLBACK)
    }

    /// Threads of any process inside a probed `SSL_*` call right now (while there are none,
    /// the socket programs skip the thread-local lookup that tells TLS records from data).
    pub fn ssl_calls_in_flight(&self) -> i64 {
        let Some(map) = self.ebpf.map("app_ssl_calls") else {
            return 0;
        };
        Array::<_, i64>::try_from(map)
            .and_then(|a| a.get(&0, 0))
            .unwrap_or(0)
    }

    /// The underlying eBPF object, e.g. to inspect maps.
    pub fn ebpf(&self) -> &Ebpf {
        &self.ebpf
    }
}

impl AsRawFd for AppCapture {
    /// The ring buffer's fd: becomes readable when events are waiting (epoll/poll).
    fn as_raw_fd(&self) -> RawFd {
        self.ring.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_tracepoint_names_the_event_and_the_kernel_needed() {
        let e = missing_tracepoint("app_sock_send", "sock_send_length").to_string();
        assert_eq!(
            e,
            "app capture: eBPF program `app_sock_send` failed to load: this kernel has no \
             `sock_send_length` tracepoint (in its BTF): the app receiver needs Linux 6.3 or later"
        );
    }
}
