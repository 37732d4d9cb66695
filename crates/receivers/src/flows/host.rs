//! What the receiver asks the host: network interfaces (listed and watched through a
//! `NETLINK_ROUTE` socket, in the calling thread's network namespace, like the attach calls),
//! the agent's own address, the boot-time offset of the kernel's timestamps.

use std::io;
use std::mem::size_of;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// A link change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkEvent {
    /// A link exists (new, or changed: renamed, up/down).
    Present { index: u32, name: String },
    /// A link was removed.
    Removed { index: u32, name: String },
    /// Events were lost (the socket buffer overran): list the links again.
    Resync,
}

/// A `NETLINK_ROUTE` socket subscribed to `RTMGRP_LINK`, non-blocking.
pub struct LinkWatcher {
    fd: OwnedFd,
    buf: Vec<u8>,
}

impl AsRawFd for LinkWatcher {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

fn netlink_socket(groups: u32, nonblocking: bool) -> io::Result<OwnedFd> {
    let flags =
        libc::SOCK_RAW | libc::SOCK_CLOEXEC | if nonblocking { libc::SOCK_NONBLOCK } else { 0 };
    // SAFETY: plain syscall.
    let fd = unsafe { libc::socket(libc::AF_NETLINK, flags, libc::NETLINK_ROUTE) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just created and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_nl is plain data; all-zero is valid.
    let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    sa.nl_family = libc::AF_NETLINK as u16;
    sa.nl_groups = groups;
    // SAFETY: valid sockaddr_nl of the stated length.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_nl).cast(),
            size_of::<libc::sockaddr_nl>() as u32,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

impl LinkWatcher {
    /// Subscribes to link changes. Subscribe before listing, so no change falls in between.
    pub fn open() -> io::Result<Self> {
        Ok(LinkWatcher {
            fd: netlink_socket(libc::RTMGRP_LINK as u32, true)?,
            buf: vec![0; 64 * 1024],
        })
    }

    /// Reads every waiting event (until the socket would block).
    pub fn read_events(&mut self, out: &mut Vec<LinkEvent>) -> io::Result<()> {
        loop {
            // SAFETY: buf is valid for buf.len() bytes.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    self.buf.as_mut_ptr().cast(),
                    self.buf.len(),
                    0,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                return match e.raw_os_error() {
                    Some(libc::EAGAIN) => Ok(()),
                    Some(libc::EINTR) => continue,
                    Some(libc::ENOBUFS) => {
                        out.push(LinkEvent::Resync);
                        continue;
                    }
                    _ => Err(e),
                };
            }
            parse_messages(&self.buf[..n as usize], out);
        }
    }
}

/// Every link of the calling thread's network namespace: (index, name).
pub fn list_links() -> io::Result<Vec<(u32, String)>> {
    let fd = netlink_socket(0, false)?;
    #[repr(C)]
    struct Request {
        hdr: libc::nlmsghdr,
        ifi: IfInfoMsg,
    }
    let req = Request {
        hdr: libc::nlmsghdr {
            nlmsg_len: size_of::<Request>() as u32,
            nlmsg_type: libc::RTM_GETLINK,
            nlmsg_flags: (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16,
            nlmsg_seq: 1,
            nlmsg_pid: 0,
        },
        ifi: IfInfoMsg::default(),
    };
    // SAFETY: req is plain data of the stated size.
    let r = unsafe {
        libc::send(
            fd.as_raw_fd(),
            (&req as *const Request).cast(),
            size_of::<Request>(),
            0,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = vec![0u8; 64 * 1024];
    let mut events = Vec::new();
    // A dump ends with NLMSG_DONE; bounded in case the kernel misbehaves.
    for _ in 0..100_000 {
        // SAFETY: buf is valid for buf.len() bytes.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        if parse_messages(&buf[..n as usize], &mut events) {
            return Ok(events
                .into_iter()
                .filter_map(|e| match e {
                    LinkEvent::Present { index, name } => Some((index, name)),
                    _ => None,
                })
                .collect());
        }
    }
    Err(io::Error::other("RTM_GETLINK dump did not end"))
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct IfInfoMsg {
    family: u8,
    _pad: u8,
    ty: u16,
    index: i32,
    flags: u32,
    change: u32,
}

const NLMSG_HDRLEN: usize = size_of::<libc::nlmsghdr>();
const IFLA_IFNAME: u16 = 3;

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Parses netlink messages into link events; `true` when the dump's end (NLMSG_DONE or an
/// error) was seen.
fn parse_messages(mut buf: &[u8], out: &mut Vec<LinkEvent>) -> bool {
    let mut done = false;
    while buf.len() >= NLMSG_HDRLEN {
        // SAFETY: at least NLMSG_HDRLEN bytes; nlmsghdr is plain data; unaligned read.
        let hdr: libc::nlmsghdr = unsafe { std::ptr::read_unaligned(buf.as_ptr().cast()) };
        let len = hdr.nlmsg_len as usize;
        if len < NLMSG_HDRLEN || len > buf.len() {
            break;
        }
        let body = &buf[NLMSG_HDRLEN..len];
        match hdr.nlmsg_type {
            t if t == libc::NLMSG_DONE as u16 || t == libc::NLMSG_ERROR as u16 => done = true,
            t if t == libc::RTM_NEWLINK || t == libc::RTM_DELLINK => {
                if let Some((index, name)) = parse_link(body) {
                    out.push(if t == libc::RTM_NEWLINK {
                        LinkEvent::Present { index, name }
                    } else {
                        LinkEvent::Removed { index, name }
                    });
                }
            }
            _ => {}
        }
        buf = &buf[align4(len).min(buf.len())..];
    }
    done
}

fn parse_link(body: &[u8]) -> Option<(u32, String)> {
    if body.len() < size_of::<IfInfoMsg>() {
        return None;
    }
    // SAFETY: enough bytes; plain data; unaligned read.
    let ifi: IfInfoMsg = unsafe { std::ptr::read_unaligned(body.as_ptr().cast()) };
    let mut attrs = &body[align4(size_of::<IfInfoMsg>()).min(body.len())..];
    while attrs.len() >= 4 {
        let len = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
        let ty = u16::from_ne_bytes([attrs[2], attrs[3]]) & 0x3fff;
        if len < 4 || len > attrs.len() {
            break;
        }
        if ty == IFLA_IFNAME {
            let raw = &attrs[4..len];
            let end = raw.iter().position(|b| *b == 0).unwrap_or(raw.len());
            let name = String::from_utf8_lossy(&raw[..end]).into_owned();
            return u32::try_from(ifi.index).ok().map(|i| (i, name));
        }
        attrs = &attrs[align4(len).min(attrs.len())..];
    }
    None
}

/// The host's first non-loopback address: the first IPv4 address of a non-loopback interface
/// in the kernel's listing order, else the first IPv6 address that is neither loopback nor
/// link-local, else `None`.
pub fn first_host_address() -> Option<IpAddr> {
    let mut ifap: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills ifap; freed below.
    if unsafe { libc::getifaddrs(&mut ifap) } != 0 {
        return None;
    }
    let mut v4 = None;
    let mut v6 = None;
    let mut cur = ifap;
    while !cur.is_null() {
        // SAFETY: a node of the list getifaddrs returned.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_flags & libc::IFF_LOOPBACK as u32 != 0 {
            continue;
        }
        // SAFETY: ifa_addr points to a sockaddr of the family it states.
        let family = unsafe { (*ifa.ifa_addr).sa_family } as i32;
        match family {
            libc::AF_INET if v4.is_none() => {
                // SAFETY: AF_INET → sockaddr_in.
                let sa = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                let ip = std::net::Ipv4Addr::from(u32::from_be(sa.sin_addr.s_addr));
                if !ip.is_loopback() {
                    v4 = Some(IpAddr::V4(ip));
                }
            }
            libc::AF_INET6 if v6.is_none() => {
                // SAFETY: AF_INET6 → sockaddr_in6.
                let sa = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                let ip = std::net::Ipv6Addr::from(sa.sin6_addr.s6_addr);
                if !ip.is_loopback() && (ip.segments()[0] & 0xffc0) != 0xfe80 {
                    v6 = Some(IpAddr::V6(ip));
                }
            }
            _ => {}
        }
    }
    // SAFETY: ifap came from getifaddrs.
    unsafe { libc::freeifaddrs(ifap) };
    v4.or(v6)
}

/// Nanoseconds to add to a `CLOCK_MONOTONIC` time (what `bpf_ktime_get_ns` returns) to get
/// Unix time. Read at every eviction, so wall-clock steps are followed.
pub fn boot_offset_ns() -> u64 {
    fn now(clock: libc::clockid_t) -> u64 {
        // SAFETY: timespec is plain data, clock_gettime fills it.
        let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
        // SAFETY: valid pointer.
        unsafe { libc::clock_gettime(clock, &mut ts) };
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    }
    let mono = now(libc::CLOCK_MONOTONIC);
    let real = now(libc::CLOCK_REALTIME);
    real.saturating_sub(mono)
}

/// This host's name, for the resource.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is valid for its length.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return String::new();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_the_loopback_link() {
        let links = list_links().expect("RTM_GETLINK dump");
        assert!(links.iter().any(|(i, n)| *i == 1 && n == "lo"), "{links:?}");
    }

    #[test]
    fn boot_offset_is_plausible() {
        let off = boot_offset_ns();
        // After 2020 and before now.
        assert!(off > 1_577_836_800_000_000_000, "{off}");
    }
}
