//! Network interfaces through a `NETLINK_ROUTE` socket, in the calling thread's network
//! namespace (like the attach calls): list them once ([`list_links`]) or watch them come and
//! go ([`LinkWatcher`]); and which programs the `cls_bpf` filters on an interface run
//! ([`clsact_filter_program_ids`]), to notice a filter someone else removed.

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

/// Sends the dump request `req` (a `nlmsghdr` and its payload, with `NLM_F_DUMP`) and hands
/// every reply message (type, payload) to `each` until the dump ends.
fn dump(req: &[u8], mut each: impl FnMut(u16, &[u8])) -> io::Result<()> {
    let fd = netlink_socket(0, false)?;
    // SAFETY: the kernel reads req.len() bytes from req, a live slice.
    let r = unsafe { libc::send(fd.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = vec![0u8; 64 * 1024];
    // A dump ends with NLMSG_DONE; bounded in case the kernel misbehaves.
    for _ in 0..100_000 {
        let n = match recv(&fd, &mut buf) {
            Ok(n) => n,
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) => return Err(e),
        };
        for (ty, body) in messages(&buf[..n]) {
            match ty {
                t if t == libc::NLMSG_DONE as u16 => return Ok(()),
                t if t == libc::NLMSG_ERROR as u16 => {
                    let errno = body
                        .get(..4)
                        .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                        .unwrap_or(0);
                    return if errno == 0 {
                        Ok(())
                    } else {
                        Err(io::Error::from_raw_os_error(-errno))
                    };
                }
                t => each(t, body),
            }
        }
    }
    Err(io::Error::other("netlink dump did not end"))
}

/// A dump request: header then `payload` (a plain-data struct).
fn dump_request<P: Copy>(ty: u16, payload: P) -> Vec<u8> {
    let len = NLMSG_HDRLEN + size_of::<P>();
    let hdr = libc::nlmsghdr {
        nlmsg_len: len as u32,
        nlmsg_type: ty,
        nlmsg_flags: (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16,
        nlmsg_seq: 1,
        nlmsg_pid: 0,
    };
    let mut req = vec![0u8; len];
    // SAFETY: req holds NLMSG_HDRLEN + size_of::<P>() bytes; both are plain data written
    // unaligned.
    unsafe {
        std::ptr::write_unaligned(req.as_mut_ptr().cast(), hdr);
        std::ptr::write_unaligned(req.as_mut_ptr().add(NLMSG_HDRLEN).cast(), payload);
    }
    req
}

/// Every link of the calling thread's network namespace: (index, name).
pub fn list_links() -> io::Result<Vec<(u32, String)>> {
    let mut links = Vec::new();
    dump(
        &dump_request(libc::RTM_GETLINK, IfInfoMsg::default()),
        |ty, body| {
            if ty == libc::RTM_NEWLINK {
                links.extend(parse_link(body));
            }
        },
    )?;
    Ok(links)
}

/// `struct tcmsg` (linux/rtnetlink.h).
#[repr(C)]
#[derive(Default, Clone, Copy)]
struct TcMsg {
    family: u8,
    _pad1: u8,
    _pad2: u16,
    ifindex: i32,
    handle: u32,
    parent: u32,
    info: u32,
}

/// The direction of a `clsact` qdisc a filter hangs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClsactDirection {
    Ingress,
    Egress,
}

const TCA_OPTIONS: u16 = 2;
const TCA_BPF_ID: u16 = 11;

/// The ids of the eBPF programs of the `cls_bpf` filters on the `clsact` qdisc of interface
/// `ifindex`, in direction `dir`.
pub fn clsact_filter_program_ids(ifindex: u32, dir: ClsactDirection) -> io::Result<Vec<u32>> {
    // TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS / TC_H_MIN_EGRESS).
    let parent = match dir {
        ClsactDirection::Ingress => 0xFFFF_FFF2,
        ClsactDirection::Egress => 0xFFFF_FFF3,
    };
    let msg = TcMsg {
        family: libc::AF_UNSPEC as u8,
        ifindex: ifindex as i32,
        parent,
        ..Default::default()
    };
    let mut ids = Vec::new();
    dump(&dump_request(libc::RTM_GETTFILTER, msg), |ty, body| {
        if ty == libc::RTM_NEWTFILTER {
            ids.extend(filter_program_id(body));
        }
    })?;
    Ok(ids)
}

/// The program id of one `RTM_NEWTFILTER` message's `cls_bpf` options.
fn filter_program_id(body: &[u8]) -> Option<u32> {
    let attrs = body.get(align4(size_of::<TcMsg>())..)?;
    let options = attributes(attrs).find(|(ty, _)| *ty == TCA_OPTIONS)?.1;
    let id = attributes(options).find(|(ty, _)| *ty == TCA_BPF_ID)?.1;
    Some(u32::from_ne_bytes(id.get(..4)?.try_into().ok()?))
}

/// The (type, payload) of each netlink attribute in `buf`, nested flag cleared.
fn attributes(mut buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if buf.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([buf[0], buf[1]]) as usize;
        let ty = u16::from_ne_bytes([buf[2], buf[3]]) & 0x3fff;
        if len < 4 || len > buf.len() {
            return None;
        }
        let payload = &buf[4..len];
        buf = &buf[align4(len).min(buf.len())..];
        Some((ty, payload))
    })
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
fn parse_messages(buf: &[u8], out: &mut Vec<LinkEvent>) -> bool {
    let mut done = false;
    for (ty, body) in messages(buf) {
        match ty {
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
    }
    done
}

/// The (type, payload) of each whole netlink message in `buf`; stops at a malformed length.
fn messages(mut buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if buf.len() < NLMSG_HDRLEN {
            return None;
        }
        // SAFETY: buf holds at least NLMSG_HDRLEN bytes; nlmsghdr is plain data, valid for any
        // bytes; the read is unaligned.
        let hdr: libc::nlmsghdr = unsafe { std::ptr::read_unaligned(buf.as_ptr().cast()) };
        let len = hdr.nlmsg_len as usize;
        if len < NLMSG_HDRLEN || len > buf.len() {
            return None;
        }
        let body = &buf[NLMSG_HDRLEN..len];
        buf = &buf[align4(len).min(buf.len())..];
        Some((hdr.nlmsg_type, body))
    })
}

fn parse_link(body: &[u8]) -> Option<(u32, String)> {
    if body.len() < size_of::<IfInfoMsg>() {
        return None;
    }
    // SAFETY: body holds at least size_of::<IfInfoMsg>() bytes; IfInfoMsg is plain data, valid
    // for any bytes; the read is unaligned.
    let ifi: IfInfoMsg = unsafe { std::ptr::read_unaligned(body.as_ptr().cast()) };
    let attrs = &body[align4(size_of::<IfInfoMsg>()).min(body.len())..];
    let raw = attributes(attrs).find(|(ty, _)| *ty == IFLA_IFNAME)?.1;
    let end = raw.iter().position(|b| *b == 0).unwrap_or(raw.len());
    let name = String::from_utf8_lossy(&raw[..end]).into_owned();
    u32::try_from(ifi.index).ok().map(|i| (i, name))
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

    /// The body of an `RTM_NEWTFILTER` for a `cls_bpf` filter: tcmsg, TCA_KIND "bpf",
    /// TCA_OPTIONS { TCA_BPF_NAME, TCA_BPF_ID }.
    fn filter_message(prog_id: Option<u32>) -> Vec<u8> {
        fn attr(ty: u16, payload: &[u8]) -> Vec<u8> {
            let mut a = Vec::new();
            a.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
            a.extend_from_slice(&ty.to_ne_bytes());
            a.extend_from_slice(payload);
            a.resize(align4(a.len()), 0);
            a
        }
        let mut options = attr(7, b"tapline_tc_in\0");
        if let Some(id) = prog_id {
            options.extend(attr(TCA_BPF_ID, &id.to_ne_bytes()));
        }
        let mut body = vec![0u8; size_of::<TcMsg>()];
        body.extend(attr(1, b"bpf\0"));
        body.extend(attr(TCA_OPTIONS | 0x8000, &options));
        body
    }

    #[test]
    fn reads_the_program_id_of_a_bpf_filter() {
        assert_eq!(filter_program_id(&filter_message(Some(4242))), Some(4242));
        assert_eq!(filter_program_id(&filter_message(None)), None);
        // Truncated anywhere: nothing, and no panic.
        let whole = filter_message(Some(7));
        for n in 0..whole.len() {
            assert_eq!(filter_program_id(&whole[..n]), None, "cut at {n}");
        }
    }

    #[test]
    fn lists_the_loopback_link() {
        let links = list_links().expect("RTM_GETLINK dump");
        assert!(links.iter().any(|(i, n)| *i == 1 && n == "lo"), "{links:?}");
    }
}
