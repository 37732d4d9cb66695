//! Loading helpers shared by the capture programs: one error type whose messages name the
//! program, map or interface involved, a shortened verifier log, and capability hints.

use std::{fmt, io};

use aya::programs::ProgramError;

/// How many lines of a verifier log [`shorten_verifier_log`] keeps (the error is at the end).
pub const VERIFIER_LOG_TAIL_LINES: usize = 25;

/// Errors from loading eBPF objects and attaching their programs.
#[derive(Debug, thiserror::Error)]
pub enum EbpfError {
    /// The embedded object could not be parsed or its maps could not be created.
    #[error("loading eBPF object {object}: {source}{hint}", hint = Hint(capability_hint_aya(source)))]
    Object {
        /// Name of the object (e.g. `flows.o`).
        object: &'static str,
        /// What aya reported.
        #[source]
        source: aya::EbpfError,
    },
    /// The kernel refused to load a program.
    #[error("loading eBPF program {program}: {cause}{hint}\nverifier log (shortened):\n{verifier_log}", hint = Hint(*hint))]
    ProgramLoad {
        /// Program (function) name.
        program: String,
        /// The syscall error or other cause.
        cause: String,
        /// The last [`VERIFIER_LOG_TAIL_LINES`] lines of the verifier log.
        verifier_log: String,
        /// Missing capabilities, when the cause is a permission error.
        hint: Option<&'static str>,
    },
    /// Attaching a program failed.
    #[error("attaching eBPF program {program} to {target}: {cause}{hint}", hint = Hint(*hint))]
    Attach {
        /// Program (function) name.
        program: String,
        /// What it was attached to (e.g. `interface eth0 (ingress)`).
        target: String,
        /// The underlying error.
        cause: String,
        /// Missing capabilities, when the cause is a permission error.
        hint: Option<&'static str>,
    },
    /// An interface name could not be resolved.
    #[error("network interface {interface}: {source}")]
    Interface {
        /// The interface name.
        interface: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A map operation failed.
    #[error("eBPF map {map}: {cause}")]
    Map {
        /// Map name.
        map: &'static str,
        /// The underlying error.
        cause: String,
    },
    /// A program or map is missing from the object, or has an unexpected type.
    #[error("eBPF object {object}: {what}")]
    Missing {
        /// Name of the object.
        object: &'static str,
        /// What is wrong.
        what: String,
    },
    /// The configuration is invalid.
    #[error("invalid eBPF capture configuration: {0}")]
    Config(String),
}

struct Hint(Option<&'static str>);

impl fmt::Display for Hint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(h) => write!(f, " ({h})"),
            None => Ok(()),
        }
    }
}

/// Whether an I/O error is a permission error (EPERM / EACCES).
pub fn is_permission_error(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES))
}

/// The capabilities to name when loading/creating eBPF objects is refused.
pub const LOAD_CAPS_HINT: &str =
    "permission denied: run as root or grant CAP_BPF and CAP_PERFMON (CAP_NET_ADMIN for networking programs)";
/// The capabilities to name when attaching a networking program is refused.
pub const NET_ATTACH_CAPS_HINT: &str =
    "permission denied: attaching to an interface needs CAP_NET_ADMIN (and CAP_BPF), or root";
/// The capabilities to name when opening a raw packet socket is refused.
pub const RAW_SOCKET_CAPS_HINT: &str =
    "permission denied: an AF_PACKET socket needs CAP_NET_RAW, attaching to it CAP_BPF, or root";

fn io_error_of_program_error(e: &ProgramError) -> Option<&io::Error> {
    match e {
        ProgramError::LoadError { io_error, .. } => Some(io_error),
        ProgramError::SyscallError(s) => Some(&s.io_error),
        ProgramError::TcError(aya::programs::tc::TcError::IoError(e)) => Some(e),
        _ => None,
    }
}

fn capability_hint_aya(e: &aya::EbpfError) -> Option<&'static str> {
    let io = match e {
        aya::EbpfError::MapError(aya::maps::MapError::CreateError { io_error, .. }) => io_error,
        aya::EbpfError::ProgramError(p) => io_error_of_program_error(p)?,
        _ => return None,
    };
    is_permission_error(io).then_some(LOAD_CAPS_HINT)
}

/// Keeps the last [`VERIFIER_LOG_TAIL_LINES`] lines of a verifier log (where the reason is),
/// noting how many lines were left out.
pub fn shorten_verifier_log(log: &str) -> String {
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.len() <= VERIFIER_LOG_TAIL_LINES {
        return lines.join("\n");
    }
    let skipped = lines.len() - VERIFIER_LOG_TAIL_LINES;
    format!(
        "[... {skipped} earlier lines left out ...]\n{}",
        lines[skipped..].join("\n")
    )
}

/// Turns a failed `load()` of `program` into [`EbpfError::ProgramLoad`].
pub fn program_load_error(program: &str, e: ProgramError) -> EbpfError {
    let hint = io_error_of_program_error(&e)
        .filter(|io| is_permission_error(io))
        .map(|_| LOAD_CAPS_HINT);
    match e {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => EbpfError::ProgramLoad {
            program: program.to_owned(),
            cause: format!("BPF_PROG_LOAD: {io_error}"),
            verifier_log: shorten_verifier_log(&verifier_log.to_string()),
            hint,
        },
        other => EbpfError::ProgramLoad {
            program: program.to_owned(),
            cause: other.to_string(),
            verifier_log: String::new(),
            hint,
        },
    }
}

/// Turns a failed attach of a networking `program` to `target` into [`EbpfError::Attach`].
pub fn net_attach_error(program: &str, target: String, e: ProgramError) -> EbpfError {
    let hint = io_error_of_program_error(&e)
        .filter(|io| is_permission_error(io))
        .map(|_| NET_ATTACH_CAPS_HINT);
    EbpfError::Attach {
        program: program.to_owned(),
        target,
        cause: e.to_string(),
        hint,
    }
}
