//! `AF_PACKET` sockets, shared by the capture programs that run as socket filters (the flows
//! capture's `tapline_sock`, the DNS sniffer): open, bind to an interface, read one frame, read
//! the drop counter.

use std::{
    io,
    mem::size_of,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

/// Opens a raw, non-blocking packet socket that receives nothing yet.
pub(crate) fn open_packet_socket() -> io::Result<OwnedFd> {
    // Protocol 0: receives nothing until bound with ETH_P_ALL, after the filter is attached.
    // SAFETY: socket(2) takes no pointers; a negative result is handled below.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by socket(), is open, and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Binds `socket` to every protocol (`ETH_P_ALL`) of interface `ifindex` (0: every interface
/// of the calling thread's network namespace).
pub(crate) fn bind_packet_socket(socket: &OwnedFd, ifindex: u32) -> io::Result<()> {
    // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
    sll.sll_ifindex = i32::try_from(ifindex).map_err(io::Error::other)?;
    // SAFETY: the kernel reads a sockaddr_ll of the stated length from a live local.
    let r = unsafe {
        libc::bind(
            socket.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// One frame read from a packet socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Received {
    /// The frame's full length (more than the buffer when it was cut).
    pub len: usize,
    /// The frame's EtherType as the kernel saw it (`skb->protocol`), host order.
    pub protocol: u16,
}

/// Reads one frame (non-blocking socket: `WouldBlock` when none is waiting).
pub(crate) fn recv_frame(socket: &impl AsRawFd, buf: &mut [u8]) -> io::Result<Received> {
    // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    let mut sll_len = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: the kernel writes at most buf.len() bytes into buf and at most sll_len bytes
    // into sll, both valid for those lengths. MSG_TRUNC: return the frame's real length.
    let r = unsafe {
        libc::recvfrom(
            socket.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_TRUNC,
            (&mut sll as *mut libc::sockaddr_ll).cast(),
            &mut sll_len,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Received {
        len: r as usize,
        protocol: u16::from_be(sll.sll_protocol),
    })
}

/// Frames the kernel dropped because the socket's receive queue was full, since the last call
/// (`PACKET_STATISTICS` resets on read).
pub(crate) fn take_drops(socket: &impl AsRawFd) -> io::Result<u64> {
    let mut stats = libc::tpacket_stats {
        tp_packets: 0,
        tp_drops: 0,
    };
    let mut len = size_of::<libc::tpacket_stats>() as libc::socklen_t;
    // SAFETY: the kernel writes at most len bytes into stats, which is that large.
    let r = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            (&mut stats as *mut libc::tpacket_stats).cast(),
            &mut len,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(u64::from(stats.tp_drops))
}
