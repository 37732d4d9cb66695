//! TLS plaintext capture: uprobes on libssl (`SSL_read`, `SSL_write`, `SSL_read_ex`,
//! `SSL_write_ex`, plus `SSL_do_handshake` to recognise the socket under the handshake).
//!
//! The programs live in `app.o` beside the socket programs (they share the ring buffer and
//! the per-socket cache): a TLS call yields one [`AppEvent::Data`](super::AppEvent::Data) of
//! the usual layout whose [`DataEvent::is_tls`](super::DataEvent::is_tls) is true, with the
//! plaintext as payload and the `conn_id` / 4-tuple / fd of the TCP socket underneath. The
//! syscalls that carry that socket's TLS records are not reported (see
//! [`AppCapture::tls_skipped_syscalls`]).
//!
//! Limits:
//! - Only libssl-style APIs over a socket the thread itself reads/writes inside the `SSL_*`
//!   call (the default socket BIO, and custom BIOs like curl's that do the I/O synchronously)
//!   reveal the socket. With memory BIOs (the application moves the records itself) the events
//!   carry the `SSL*` as `conn_id` ([`DataEvent::tls_socket_unknown`]) and the ciphertext
//!   syscalls are reported as socket data.
//! - Calls already in progress when the probes are attached (e.g. a thread blocked in
//!   `SSL_read`) are not seen: their plaintext is lost and the record bytes their syscalls read
//!   after the attach are reported as socket data, until the socket is recognised by the next
//!   probed call. Consumers should drop parser state of a connection built from non-TLS data
//!   when its first TLS event arrives.
//! - Statically linked OpenSSL/BoringSSL (not named `libssl.so*`) is not discovered by
//!   [`AppCapture::rescan_ssl`]; [`AppCapture::attach_ssl`] takes any binary exporting the
//!   symbols. Go's crypto/tls, rustls, GnuTLS, NSS are other libraries (not covered).
//! - Each probed call costs an uprobe and an uretprobe trap (see docs/ebpf-design.md, "TLS and the SSL-call counter").
//!
//! [`DataEvent::tls_socket_unknown`]: super::DataEvent::tls_socket_unknown
//!
//! Uprobes are attached per file (inode), so one attach of a library covers every process that
//! maps it, now or later. Processes mapping a library not attached yet (another libssl build,
//! a library in a container's filesystem) are found by [`AppCapture::rescan_ssl`], which reads
//! `/proc/<pid>/maps` of every process; call it periodically (e.g. every few seconds) to cover
//! processes started after tapline.
//!
//! ```no_run
//! use tapline_ebpf::app::{AppCapture, AppCaptureConfig};
//! let mut cap = AppCapture::load(&AppCaptureConfig::default())?;
//! cap.attach()?;
//! let scan = cap.rescan_ssl();
//! for lib in &scan.attached {
//!     eprintln!("TLS probes on {} (first seen in pid {:?})", lib.path.display(), lib.pid);
//! }
//! for e in &scan.errors {
//!     eprintln!("{e}");
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::HashSet;
use std::fs;
use std::num::NonZeroU32;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use aya::programs::uprobe::{UProbeLinkId, UProbeScope};
use aya::programs::{ProgramError, UProbe};

use super::{program_error, raw, AppCapture, AppCaptureError};

/// `(program, libssl symbol, required)`: return probes first, so that every entry that stashes
/// a call already has its return probe. Optional symbols may be missing (OpenSSL < 1.1.1 has no
/// `_ex` variants).
pub const APP_SSL_PROGRAMS: &[(&str, &str, bool)] = &[
    ("app_ssl_exit_SSL_read", "SSL_read", true),
    ("app_ssl_exit_SSL_write", "SSL_write", true),
    ("app_ssl_exit_SSL_read_ex", "SSL_read_ex", false),
    ("app_ssl_exit_SSL_write_ex", "SSL_write_ex", false),
    ("app_ssl_exit_SSL_do_handshake", "SSL_do_handshake", false),
    ("app_ssl_enter_SSL_read", "SSL_read", true),
    ("app_ssl_enter_SSL_write", "SSL_write", true),
    ("app_ssl_enter_SSL_read_ex", "SSL_read_ex", false),
    ("app_ssl_enter_SSL_write_ex", "SSL_write_ex", false),
    ("app_ssl_enter_SSL_do_handshake", "SSL_do_handshake", false),
];

/// One library file the TLS probes are attached to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsLibrary {
    /// The path as given to [`AppCapture::attach_ssl`], or as it appears in the maps of
    /// `pid` (in that process's mount namespace).
    pub path: PathBuf,
    /// The process the path was found in / resolved through (`None`: tapline's own view).
    pub pid: Option<u32>,
    /// Device and inode of the file: the identity uprobes attach to.
    pub dev: u64,
    /// See [`TlsLibrary::dev`].
    pub ino: u64,
    /// The symbols that were probed (`SSL_read`, `SSL_write`, and the optional ones present).
    pub symbols: Vec<&'static str>,
    /// `Some(pid)`: the probes fire only in that process ([`AppCapture::attach_ssl_for_pid`]);
    /// `None`: in every process mapping the file.
    pub only_pid: Option<u32>,
}

/// Outcome of [`AppCapture::rescan_ssl`].
#[derive(Debug, Default)]
pub struct TlsScan {
    /// Libraries attached by this scan (already attached ones are not repeated).
    pub attached: Vec<TlsLibrary>,
    /// Libraries that could not be attached (each error names the library path and pid).
    /// A failing file is not retried by later scans.
    pub errors: Vec<AppCaptureError>,
    /// Processes whose maps were read.
    pub processes: usize,
}

type Links = Vec<(&'static str, UProbeLinkId)>;

#[derive(Default)]
pub(super) struct SslState {
    libraries: Vec<TlsLibrary>,
    /// (program name, link) of every probe of `libraries[i]`, in attach order.
    links: Vec<Links>,
    /// (dev, ino, only_pid) of attachments that failed.
    failed: HashSet<(u64, u64, Option<u32>)>,
}

/// A libssl mapping found in `/proc/<pid>/maps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SslMapping {
    /// The process.
    pub pid: u32,
    /// The path in the process's mount namespace, as the maps show it.
    pub path: PathBuf,
    /// A path to the same file that tapline can open: `/proc/<pid>/root/<path>`, or
    /// `/proc/<pid>/map_files/<range>` when the file was deleted (e.g. upgraded) since.
    pub open_path: PathBuf,
}

/// True for file names of OpenSSL's libssl (`libssl.so`, `libssl.so.3`, `libssl.so.1.1`...).
pub fn is_libssl_name(name: &str) -> bool {
    name.starts_with("libssl.so")
}

/// The libssl files mapped by `pid`, parsed from the text of its `/proc/<pid>/maps`.
pub fn ssl_mappings_in(pid: u32, maps: &str) -> Vec<SslMapping> {
    let mut out: Vec<SslMapping> = Vec::new();
    for line in maps.lines() {
        // address perms offset dev inode pathname (the pathname may contain spaces)
        let mut rest = line;
        let mut fields = [""; 5];
        let mut ok = true;
        for f in fields.iter_mut() {
            let t = rest.trim_start();
            let end = t.find(' ').unwrap_or(t.len());
            if end == 0 {
                ok = false;
                break;
            }
            *f = &t[..end];
            rest = &t[end..];
        }
        let path = rest.trim_start();
        if !ok || !path.starts_with('/') {
            continue;
        }
        let (path, deleted) = match path.strip_suffix(" (deleted)") {
            Some(p) => (p, true),
            None => (path, false),
        };
        let name = path.rsplit('/').next().unwrap_or("");
        if !is_libssl_name(name) || out.iter().any(|m| m.path.as_os_str() == path) {
            continue;
        }
        let open_path = if deleted {
            PathBuf::from(format!("/proc/{pid}/map_files/{}", fields[0]))
        } else {
            PathBuf::from(format!("/proc/{pid}/root{path}"))
        };
        out.push(SslMapping {
            pid,
            path: PathBuf::from(path),
            open_path,
        });
    }
    out
}

/// The libssl files in the system library directories (`/usr/lib/<arch>-linux-gnu`, `/lib64`,
/// `/usr/lib`...), whether or not a process maps them yet, as canonical paths (symlinks
/// resolved, so `libssl.so` -> `libssl.so.3`); callers still dedupe by inode.
pub fn system_ssl_libraries() -> Vec<PathBuf> {
    let multiarch = format!("{}-linux-gnu", std::env::consts::ARCH);
    let dirs = [
        format!("/usr/lib/{multiarch}"),
        format!("/lib/{multiarch}"),
        "/usr/lib64".to_string(),
        "/lib64".to_string(),
        "/usr/lib".to_string(),
        "/lib".to_string(),
        "/usr/local/lib".to_string(),
    ];
    let mut out = Vec::new();
    for d in dirs {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        let mut names: Vec<PathBuf> = rd
            .flatten()
            .filter(|e| e.file_name().to_str().is_some_and(is_libssl_name))
            .filter_map(|e| fs::canonicalize(e.path()).ok())
            .filter(|p| p.is_file())
            .collect();
        names.sort();
        for n in names {
            if !out.contains(&n) {
                out.push(n);
            }
        }
    }
    out
}

/// Every libssl mapping of every process (processes that exit meanwhile are skipped), and the
/// number of processes whose maps were read.
pub fn find_ssl_mappings() -> (Vec<SslMapping>, usize) {
    let mut out = Vec::new();
    let mut processes = 0;
    let Ok(dir) = fs::read_dir("/proc") else {
        return (out, 0);
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(maps) = fs::read_to_string(format!("/proc/{pid}/maps")) else {
            continue;
        };
        processes += 1;
        out.extend(ssl_mappings_in(pid, &maps));
    }
    (out, processes)
}

fn uprobe_error(
    path: &Path,
    pid: Option<u32>,
    program: &str,
    symbol: &str,
    error: String,
) -> AppCaptureError {
    AppCaptureError::Uprobe {
        library: path.to_path_buf(),
        pid,
        program: program.to_string(),
        symbol: symbol.to_string(),
        error,
    }
}

fn is_missing_symbol(e: &ProgramError) -> bool {
    matches!(
        e,
        ProgramError::UProbeError(aya::programs::uprobe::UProbeError::SymbolError { .. })
    )
}

/// The full chain of an error's sources, `a: b: c`.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

impl AppCapture {
    /// Attaches the TLS probes to the libssl (or any binary exporting `SSL_read`/`SSL_write`,
    /// e.g. a statically linked one) at `lib_path`. With `pid`, `lib_path` is read in that
    /// process's filesystem view (`/proc/<pid>/root/...`, as its `/proc/<pid>/maps` shows it);
    /// without, in tapline's. Either way the probes fire in EVERY process that maps the same
    /// file (uprobes attach to the file), subject to the pid filter. Attaching a file that is
    /// already attached (by any path) does nothing and returns `Ok(false)`; per-process
    /// attachments of the same file ([`AppCapture::attach_ssl_for_pid`]) are replaced.
    ///
    /// Data syscalls issued inside the probed calls are no longer reported from then on for
    /// those sockets (they carry TLS records); the plaintext comes as TLS events instead.
    /// Errors name the library, the pid and the symbol. On error nothing of this library stays
    /// attached.
    pub fn attach_ssl(
        &mut self,
        pid: Option<u32>,
        lib_path: &Path,
    ) -> Result<bool, AppCaptureError> {
        let open_path = match pid {
            Some(p) if lib_path.is_absolute() => {
                PathBuf::from(format!("/proc/{p}/root{}", lib_path.display()))
            }
            Some(p) => {
                return Err(uprobe_error(
                    lib_path,
                    Some(p),
                    "-",
                    "-",
                    "the path of a library in another process must be absolute".into(),
                ))
            }
            None => lib_path.to_path_buf(),
        };
        self.attach_ssl_file(pid, lib_path, &open_path, None)
    }

    /// Like [`AppCapture::attach_ssl`], but the probes fire only in process `pid` (`lib_path`
    /// as that process sees it): the kernel then puts the breakpoints only into that process's
    /// memory, so other processes using the library pay nothing (with
    /// [`PidFilterMode::Only`](super::PidFilterMode::Only) the pid filter alone still lets every
    /// process using the library take the uprobe traps). `Ok(false)` if the file is already
    /// attached for all processes or for `pid`.
    pub fn attach_ssl_for_pid(
        &mut self,
        pid: u32,
        lib_path: &Path,
    ) -> Result<bool, AppCaptureError> {
        if !lib_path.is_absolute() {
            return Err(uprobe_error(
                lib_path,
                Some(pid),
                "-",
                "-",
                "the path of a library in another process must be absolute".into(),
            ));
        }
        let open_path = PathBuf::from(format!("/proc/{pid}/root{}", lib_path.display()));
        self.attach_ssl_file(Some(pid), lib_path, &open_path, Some(pid))
    }

    fn detach_library(&mut self, idx: usize) {
        let mut links = self.ssl.links.remove(idx);
        self.ssl.libraries.remove(idx);
        // enters first (reverse of attach), so no call is left half-recorded
        while let Some((name, link)) = links.pop() {
            if let Some(Ok(p)) = self.ebpf.program_mut(name).map(<&mut UProbe>::try_from) {
                let _ = p.detach(link);
            }
        }
    }

    fn attach_ssl_file(
        &mut self,
        pid: Option<u32>,
        path: &Path,
        open_path: &Path,
        only_pid: Option<u32>,
    ) -> Result<bool, AppCaptureError> {
        let meta = fs::metadata(open_path).map_err(|e| {
            uprobe_error(path, pid, "-", "-", format!("{}: {e}", open_path.display()))
        })?;
        let key = (meta.dev(), meta.ino());
        let same_file = |l: &TlsLibrary| (l.dev, l.ino) == key;
        if self
            .ssl
            .libraries
            .iter()
            .any(|l| same_file(l) && (l.only_pid.is_none() || l.only_pid == only_pid))
        {
            return Ok(false);
        }
        let scope = match only_pid {
            None => {
                // a file attached for all processes replaces its per-process attachments (both
                // would run the programs twice per call)
                while let Some(i) = self.ssl.libraries.iter().position(same_file) {
                    self.detach_library(i);
                }
                UProbeScope::AllProcesses
            }
            Some(p) => match NonZeroU32::new(p) {
                Some(p) => UProbeScope::OneProcess(p),
                None => {
                    return Err(uprobe_error(path, pid, "-", "-", "pid 0".into()));
                }
            },
        };
        // before the first probe can fire: the syscall programs then look for SSL_* calls
        self.set_tls_probes(true)?;
        let mut links: Links = Vec::new();
        let mut missing: Vec<&'static str> = Vec::new();
        let mut result = Ok(());
        for &(name, symbol, required) in APP_SSL_PROGRAMS {
            if missing.contains(&symbol) {
                continue;
            }
            let prog: &mut UProbe = match self
                .ebpf
                .program_mut(name)
                .expect("loaded in load()")
                .try_into()
            {
                Ok(p) => p,
                Err(e) => {
                    result = Err(program_error(name, e));
                    break;
                }
            };
            match prog.attach(symbol, open_path, scope) {
                Ok(link) => links.push((name, link)),
                Err(e) if !required && is_missing_symbol(&e) => missing.push(symbol),
                Err(e) => {
                    let mut msg = error_chain(&e);
                    if is_missing_symbol(&e) {
                        msg.push_str(" (not a libssl / OpenSSL-linked binary?)");
                    }
                    result = Err(uprobe_error(path, pid, name, symbol, msg));
                    break;
                }
            }
        }
        if let Err(e) = result {
            self.ssl.failed.insert((key.0, key.1, only_pid));
            // detach what this library got, enters first
            while let Some((name, link)) = links.pop() {
                if let Ok(p) = <&mut UProbe>::try_from(self.ebpf.program_mut(name).expect("loaded"))
                {
                    let _ = p.detach(link);
                }
            }
            if self.ssl.links.is_empty() {
                self.set_tls_probes(false)?;
            }
            return Err(e);
        }
        let mut symbols: Vec<&'static str> = Vec::new();
        for &(_, symbol, _) in APP_SSL_PROGRAMS {
            if !missing.contains(&symbol) && !symbols.contains(&symbol) {
                symbols.push(symbol);
            }
        }
        self.ssl.links.push(links);
        self.ssl.libraries.push(TlsLibrary {
            path: path.to_path_buf(),
            pid,
            dev: key.0,
            ino: key.1,
            symbols,
            only_pid,
        });
        Ok(true)
    }

    /// Attaches the TLS probes to the libssl files of the system library directories (see
    /// [`system_ssl_libraries`]) and to every libssl mapped by any process (`/proc/*/maps`),
    /// skipping the files already attached. Call it again periodically to cover processes
    /// started later that use another libssl file (a process using an already attached file is
    /// covered at once, without a rescan). Files that failed once are not retried.
    pub fn rescan_ssl(&mut self) -> TlsScan {
        let mut scan = TlsScan::default();
        for path in system_ssl_libraries() {
            let Ok(meta) = fs::metadata(&path) else {
                continue;
            };
            let key = (meta.dev(), meta.ino());
            if self.ssl.failed.contains(&(key.0, key.1, None))
                || self
                    .ssl
                    .libraries
                    .iter()
                    .any(|l| (l.dev, l.ino) == key && l.only_pid.is_none())
            {
                continue;
            }
            match self.attach_ssl_file(None, &path, &path, None) {
                Ok(true) => scan
                    .attached
                    .push(self.ssl.libraries.last().expect("just attached").clone()),
                Ok(false) => {}
                Err(e) => scan.errors.push(e),
            }
        }
        let (mappings, processes) = find_ssl_mappings();
        scan.processes = processes;
        for m in mappings {
            let Ok(meta) = fs::metadata(&m.open_path) else {
                continue; // the process exited
            };
            let key = (meta.dev(), meta.ino());
            if self.ssl.failed.contains(&(key.0, key.1, None))
                || self
                    .ssl
                    .libraries
                    .iter()
                    .any(|l| (l.dev, l.ino) == key && l.only_pid.is_none())
            {
                continue;
            }
            match self.attach_ssl_file(Some(m.pid), &m.path, &m.open_path, None) {
                Ok(true) => scan
                    .attached
                    .push(self.ssl.libraries.last().expect("just attached").clone()),
                Ok(false) => {}
                Err(e) => scan.errors.push(e),
            }
        }
        scan
    }

    /// Per-process variant of [`AppCapture::rescan_ssl`], for captures that trace only some
    /// processes: attaches the TLS probes to the libssl files mapped by each of `pids`, scoped
    /// to that process ([`AppCapture::attach_ssl_for_pid`]), and detaches the per-process
    /// probes of processes not in `pids` (exited or no longer selected). Files attached for
    /// all processes are left alone.
    pub fn rescan_ssl_for_pids(&mut self, pids: &[u32]) -> TlsScan {
        let mut scan = TlsScan::default();
        while let Some(i) = self
            .ssl
            .libraries
            .iter()
            .position(|l| l.only_pid.is_some_and(|p| !pids.contains(&p)))
        {
            self.detach_library(i);
        }
        for &pid in pids {
            let Ok(maps) = fs::read_to_string(format!("/proc/{pid}/maps")) else {
                continue; // exited
            };
            scan.processes += 1;
            for m in ssl_mappings_in(pid, &maps) {
                let Ok(meta) = fs::metadata(&m.open_path) else {
                    continue;
                };
                if self
                    .ssl
                    .failed
                    .contains(&(meta.dev(), meta.ino(), Some(pid)))
                {
                    continue;
                }
                match self.attach_ssl_file(Some(pid), &m.path, &m.open_path, Some(pid)) {
                    Ok(true) => scan
                        .attached
                        .push(self.ssl.libraries.last().expect("just attached").clone()),
                    Ok(false) => {}
                    Err(e) => scan.errors.push(e),
                }
            }
        }
        scan
    }

    /// The library files the TLS probes are attached to.
    pub fn ssl_libraries(&self) -> &[TlsLibrary] {
        &self.ssl.libraries
    }

    /// Detaches every TLS probe (the socket programs stay). Sockets already recognised as
    /// TLS keep their syscalls unreported until closed.
    pub fn detach_ssl(&mut self) -> Result<(), AppCaptureError> {
        while let Some(mut links) = self.ssl.links.pop() {
            self.ssl.libraries.pop();
            // enters first (reverse of attach), so no call is left half-recorded
            while let Some((name, link)) = links.pop() {
                let prog: &mut UProbe = self
                    .ebpf
                    .program_mut(name)
                    .expect("loaded in load()")
                    .try_into()
                    .map_err(|e| program_error(name, e))?;
                prog.detach(link).map_err(|e| program_error(name, e))?;
            }
        }
        self.ssl.failed.clear();
        self.set_tls_probes(false)
    }

    /// Data syscalls not reported because they carried TLS records of a socket seen under
    /// libssl (summed over CPUs, since load).
    pub fn tls_skipped_syscalls(&self) -> u64 {
        self.stat(raw::APP_STAT_TLS_SKIPPED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_maps() {
        let maps = "\
55d0c0a00000-55d0c0a28000 r--p 00000000 fd:01 1234 /usr/bin/curl
7f1e2a000000-7f1e2a020000 r--p 00000000 fd:01 777 /usr/lib/x86_64-linux-gnu/libssl.so.3
7f1e2a020000-7f1e2a080000 r-xp 00020000 fd:01 777 /usr/lib/x86_64-linux-gnu/libssl.so.3
7f1e2b000000-7f1e2b020000 r-xp 00000000 fd:01 778 /opt/my app/lib/libssl.so.1.1 (deleted)
7f1e2c000000-7f1e2c020000 r-xp 00000000 fd:01 779 /usr/lib/x86_64-linux-gnu/libcrypto.so.3
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0 [stack]
7ffd00030000-7ffd00031000 rw-p 00000000 00:00 0
";
        let m = ssl_mappings_in(42, maps);
        assert_eq!(m.len(), 2, "{m:?}");
        assert_eq!(
            m[0].path,
            PathBuf::from("/usr/lib/x86_64-linux-gnu/libssl.so.3")
        );
        assert_eq!(
            m[0].open_path,
            PathBuf::from("/proc/42/root/usr/lib/x86_64-linux-gnu/libssl.so.3")
        );
        assert_eq!(m[1].path, PathBuf::from("/opt/my app/lib/libssl.so.1.1"));
        assert_eq!(
            m[1].open_path,
            PathBuf::from("/proc/42/map_files/7f1e2b000000-7f1e2b020000")
        );
        assert!(!is_libssl_name("libcrypto.so.3"));
    }
}
