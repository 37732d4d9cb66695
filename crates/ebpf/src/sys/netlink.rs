//! Network interfaces through a `NETLINK_ROUTE` socket, in the calling thread's network
//! namespace (like the attach calls): list them once ([`list_links`]) or watch them come and
//! go ([`LinkWatcher`]).

use std::io;
use std::mem::size_of;
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

/// A `NETLINK_ROUTE` socket bound to the multicast `groups` (0: none, for requests).
fn netlink_socket(groups: u32, nonblocking: bool) -> io::Result<OwnedFd> {
    let flags =
        libc::SOCK_RAW | libc::SOCK_CLOEXEC | if nonblocking { libc::SOCK_NONBLOCK } else { 0 };
    // SAFETY: socket(2) takes no pointers; a negative result is handled below.
    let fd = unsafe { libc::socket(libc::AF_NETLINK, flags, libc::NETLINK_ROUTE) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just created, is open, and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_nl is plain data; all-zero is a valid value.
    let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    sa.nl_family = libc::AF_NETLINK as u16;
    sa.nl_groups = groups;
    // SAFETY: the kernel reads a sockaddr_nl of the stated length from a live local.
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

/// `recv(2)` into `buf`: the number of bytes read.
fn recv(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: the kernel writes at most buf.len() bytes into buf, which is valid for them.
    let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
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
            match recv(&self.fd, &mut self.buf) {
                Ok(n) => {
                    parse_messages(&self.buf[..n], out);
                }
                Err(e) => {
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
            }
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
    // SAFETY: the kernel reads size_of::<Request>() bytes from req, a live plain-data local.
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
        let n = match recv(&fd, &mut buf) {
            Ok(n) => n,
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) => return Err(e),
        };
        if parse_messages(&buf[..n], &mut events) {
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

/// `struct ifinfomsg` (linux/rtnetlink.h).
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
        // SAFETY: buf holds at least NLMSG_HDRLEN bytes; nlmsghdr is plain data, valid for any
        // bytes; the read is unaligned.
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
    // SAFETY: body holds at least size_of::<IfInfoMsg>() bytes; IfInfoMsg is plain data, valid
    // for any bytes; the read is unaligned.
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

#[cfg(test)]
mod tests {
    use super::*;

    /// One `RTM_NEWLINK`/`RTM_DELLINK` message for `index` named `name`, as the kernel sends it.
    fn link_message(ty: u16, index: i32, name: &str) -> Vec<u8> {
        let mut attr = Vec::new();
        let attr_len = 4 + name.len() + 1;
        attr.extend_from_slice(&(attr_len as u16).to_ne_bytes());
        attr.extend_from_slice(&IFLA_IFNAME.to_ne_bytes());
        attr.extend_from_slice(name.as_bytes());
        attr.push(0);
        attr.resize(align4(attr.len()), 0);
        let mut ifi = vec![0u8; size_of::<IfInfoMsg>()];
        ifi[4..8].copy_from_slice(&index.to_ne_bytes());
        let len = NLMSG_HDRLEN + ifi.len() + attr.len();
        let mut msg = Vec::with_capacity(len);
        msg.extend_from_slice(&(len as u32).to_ne_bytes());
        msg.extend_from_slice(&ty.to_ne_bytes());
        msg.extend_from_slice(&0u16.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.extend_from_slice(&ifi);
        msg.extend_from_slice(&attr);
        msg
    }

    #[test]
    fn parses_new_and_removed_links_and_the_dump_end() {
        let mut buf = link_message(libc::RTM_NEWLINK, 7, "veth0");
        buf.extend(link_message(libc::RTM_DELLINK, 3, "eth1"));
        let mut out = Vec::new();
        assert!(!parse_messages(&buf, &mut out));
        assert_eq!(
            out,
            [
                LinkEvent::Present {
                    index: 7,
                    name: "veth0".into()
                },
                LinkEvent::Removed {
                    index: 3,
                    name: "eth1".into()
                },
            ]
        );
        let mut done = vec![0u8; NLMSG_HDRLEN];
        done[..4].copy_from_slice(&(NLMSG_HDRLEN as u32).to_ne_bytes());
        done[4..6].copy_from_slice(&(libc::NLMSG_DONE as u16).to_ne_bytes());
        assert!(parse_messages(&done, &mut out));
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn a_truncated_message_yields_nothing() {
        let buf = link_message(libc::RTM_NEWLINK, 7, "veth0");
        let mut out = Vec::new();
        assert!(!parse_messages(&buf[..buf.len() - 4], &mut out));
        assert!(out.is_empty());
    }

    #[test]
    fn lists_the_loopback_link() {
        let links = list_links().expect("RTM_GETLINK dump");
        assert!(links.iter().any(|(i, n)| *i == 1 && n == "lo"), "{links:?}");
    }
}
