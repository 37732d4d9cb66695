//! Every OS call of the eBPF side outside aya, behind safe functions: raw `bpf(2)` commands
//! ([`bpf`]), `AF_PACKET` sockets ([`packet`]), `NETLINK_ROUTE` interface listing and watching
//! ([`netlink`]), and what the agent asks about its host ([`host`]). Each `unsafe` block here
//! says why it is sound; the loaders and the receivers call these functions instead of libc.

pub(crate) mod bpf;
pub mod host;
pub mod netlink;
pub(crate) mod packet;

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

/// The size of a memory page (4096 when it cannot be read).
pub(crate) fn page_size() -> u32 {
    // SAFETY: sysconf takes no pointers and has no preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u32::try_from(v).unwrap_or(4096)
}

/// Blocks up to `timeout` (whole milliseconds, saturating) until `fd` is readable; `Ok(true)`
/// if it is. An interrupted wait is an `Interrupted` error.
pub(crate) fn poll_readable(fd: BorrowedFd<'_>, timeout: Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: one valid pollfd, which the kernel reads and writes during the call only.
    let r = unsafe { libc::poll(&mut pfd, 1, ms) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(r > 0)
}
