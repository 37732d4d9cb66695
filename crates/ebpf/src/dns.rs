//! DNS answer sniffer: loads `objects/dns.o` (built from `src/bpf/dns.bpf.c`) and attaches its
//! socket filter to `AF_PACKET` sockets, so that exactly the UDP datagrams from port 53 (DNS
//! answers) seen on the chosen interfaces are queued to userspace, and nothing else. It sends
//! nothing: the `rdns` processor's `mode: sniff` learns names from what clients already asked.
//!
//! [`DnsSniffer::recv`] reads one frame; [`udp_datagram`] finds the UDP payload in it
//! (bounds-checked, never panics: input comes off the wire). The eBPF object is released once
//! the filters are attached (each socket holds its program), so dropping the sniffer closes
//! the sockets and nothing stays attached or loaded.

use std::{
    future::poll_fn,
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    os::fd::{AsFd, OwnedFd},
    task::Poll,
};

use aya::{programs::SocketFilter, Ebpf};
use tokio::io::{unix::AsyncFd, Interest};

use crate::flows::ifindex;
use crate::load::{
    is_permission_error, net_attach_error, program_load_error, EbpfError, RAW_SOCKET_CAPS_HINT,
};
use crate::sys::packet::{bind_packet_socket, open_packet_socket, recv_frame, take_drops};

/// The compiled sniffer object (committed, rebuilt with `crates/ebpf/build-objects.sh`).
pub static DNS_OBJECT: &[u8] = aya::include_bytes_aligned!("../objects/dns.o");

const OBJECT_NAME: &str = "dns.o";

/// Socket filter program name (also what `bpftool prog show` reports).
pub const PROG_DNS: &str = "tapline_dns";

/// The port whose answers the filter keeps.
pub const DNS_PORT: u16 = 53;

/// A buffer of this many bytes holds any frame the filter passes (a whole UDP datagram plus
/// link and IP headers).
pub const MAX_FRAME: usize = 65_536 + 128;

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88A8;
const ETH_HLEN: usize = 14;
const IPPROTO_UDP: u8 = 17;
/// Extension headers skipped, as in the eBPF program.
const MAX_IPV6_EXT_HEADERS: usize = 6;

/// One frame read by [`DnsSniffer::recv`]: `len` bytes at the start of the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// Bytes written to the buffer.
    pub len: usize,
    /// EtherType the kernel gave the frame (`skb->protocol`), needed by [`udp_datagram`].
    pub protocol: u16,
}

/// Packet sockets with the `tapline_dns` filter attached. Dropping it closes them (which
/// detaches the filter and frees the program).
pub struct DnsSniffer {
    sockets: Vec<AsyncFd<OwnedFd>>,
    /// Where [`recv`](Self::recv) starts looking, so one busy interface cannot starve another.
    next: usize,
    truncated: u64,
    program_id: Option<u32>,
}

impl std::fmt::Debug for DnsSniffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsSniffer")
            .field("sockets", &self.sockets.len())
            .field("program_id", &self.program_id)
            .finish_non_exhaustive()
    }
}

impl DnsSniffer {
    /// Opens one packet socket per interface in `interfaces` (names resolved in the calling
    /// thread's network namespace), or one socket for every interface of that namespace when
    /// `None`, and attaches the filter to each. Must be called inside a Tokio runtime (the
    /// sockets are registered with its reactor). Permission errors name the missing
    /// capabilities (`CAP_NET_RAW` for the socket, `CAP_BPF` for the program).
    pub fn open(interfaces: Option<&[String]>) -> Result<Self, EbpfError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(EbpfError::Config(
                "the DNS sniffer must be opened inside a Tokio runtime".into(),
            ));
        }
        let targets: Vec<(String, u32)> = match interfaces {
            None => vec![("every interface".to_owned(), 0)],
            Some([]) => return Err(EbpfError::Config("no interface to sniff DNS on".into())),
            Some(names) => names
                .iter()
                .map(|n| Ok((format!("interface {n}"), ifindex(n)?)))
                .collect::<Result<_, EbpfError>>()?,
        };
        // Sockets first: without CAP_NET_RAW nothing else matters, and the error says so.
        let mut sockets = Vec::with_capacity(targets.len());
        for (target, _) in &targets {
            let socket = open_packet_socket().map_err(|e| EbpfError::Attach {
                program: PROG_DNS.to_owned(),
                target: format!("{target} (AF_PACKET socket)"),
                hint: is_permission_error(&e).then_some(RAW_SOCKET_CAPS_HINT),
                cause: format!("socket(AF_PACKET): {e}"),
            })?;
            sockets.push(socket);
        }
        let mut ebpf = Ebpf::load(DNS_OBJECT).map_err(|source| EbpfError::Object {
            object: OBJECT_NAME,
            source,
        })?;
        let missing = |what: String| EbpfError::Missing {
            object: OBJECT_NAME,
            what,
        };
        let prog: &mut SocketFilter = ebpf
            .program_mut(PROG_DNS)
            .ok_or_else(|| missing(format!("no program named {PROG_DNS}")))?
            .try_into()
            .map_err(|e| missing(format!("program {PROG_DNS}: {e}")))?;
        prog.load().map_err(|e| program_load_error(PROG_DNS, e))?;
        let program_id = prog.info().ok().map(|i| i.id());
        let mut registered = Vec::with_capacity(sockets.len());
        for (socket, (target, index)) in sockets.into_iter().zip(&targets) {
            let target = format!("{target} (AF_PACKET socket)");
            // Attached before binding: no frame is queued unfiltered.
            prog.attach(socket.as_fd())
                .map_err(|e| net_attach_error(PROG_DNS, target.clone(), e))?;
            bind_packet_socket(&socket, *index).map_err(|e| EbpfError::Attach {
                program: PROG_DNS.to_owned(),
                target: target.clone(),
                hint: is_permission_error(&e).then_some(RAW_SOCKET_CAPS_HINT),
                cause: format!("bind(AF_PACKET, ETH_P_ALL): {e}"),
            })?;
            // SAFETY: the OwnedFd is moved into the AsyncFd and stays open while it lives.
            let socket = unsafe { AsyncFd::register_with_interest(socket, Interest::READABLE) }
                .map_err(|e| EbpfError::Attach {
                    program: PROG_DNS.to_owned(),
                    target,
                    hint: None,
                    cause: format!("registering with the runtime: {e}"),
                })?;
            registered.push(socket);
        }
        // `ebpf` drops here: the attached sockets keep the program alive, and only them.
        Ok(DnsSniffer {
            sockets: registered,
            next: 0,
            truncated: 0,
            program_id,
        })
    }

    /// Waits for the next frame and copies it to the start of `buf` (size it [`MAX_FRAME`]).
    /// Frames longer than `buf` are skipped and counted in [`truncated`](Self::truncated).
    /// Cancel-safe: a frame is only taken off a socket when it is returned.
    pub async fn recv(&mut self, buf: &mut [u8]) -> io::Result<Frame> {
        let n = self.sockets.len();
        poll_fn(|cx| {
            for k in 0..n {
                let i = (self.next + k) % n;
                // Bounded: a flood of oversized frames yields to the runtime now and then.
                for _ in 0..64 {
                    let mut guard = match self.sockets[i].poll_read_ready(cx) {
                        Poll::Ready(Ok(g)) => g,
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Pending => break,
                    };
                    match guard.try_io(|fd| recv_frame(fd, buf)) {
                        Ok(Ok(r)) if r.len > buf.len() => self.truncated += 1,
                        Ok(Ok(r)) => {
                            self.next = (i + 1) % n;
                            return Poll::Ready(Ok(Frame {
                                len: r.len,
                                protocol: r.protocol,
                            }));
                        }
                        Ok(Err(e)) => return Poll::Ready(Err(e)),
                        // Readiness cleared: poll again to register for the next frame.
                        Err(_would_block) => {}
                    }
                }
            }
            Poll::Pending
        })
        .await
    }

    /// Frames skipped because they did not fit the buffer given to [`recv`](Self::recv).
    pub fn truncated(&self) -> u64 {
        self.truncated
    }

    /// Answers the kernel dropped because the sockets' receive queues were full, since the
    /// last call.
    pub fn take_drops(&self) -> u64 {
        self.sockets.iter().filter_map(|s| take_drops(s).ok()).sum()
    }

    /// Kernel id of the loaded program (`bpftool prog show id N`), for diagnostics.
    pub fn program_id(&self) -> Option<u32> {
        self.program_id
    }
}

/// A UDP datagram found in a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datagram<'a> {
    /// Source address and port.
    pub src: SocketAddr,
    /// Destination address and port.
    pub dst: SocketAddr,
    /// The UDP payload (cut short when the frame was).
    pub payload: &'a [u8],
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([
        *b.get(at)?,
        *b.get(at.checked_add(1)?)?,
    ]))
}

/// Finds the UDP datagram in `frame`, read the way the eBPF program reads it: Ethernet
/// (optionally one VLAN tag) when the EtherType matches `protocol` (from [`Frame::protocol`]),
/// else an IP packet from the first byte (L3 devices). `None` for anything else, for
/// non-first fragments and for malformed headers. Never panics.
pub fn udp_datagram(frame: &[u8], protocol: u16) -> Option<Datagram<'_>> {
    let version = match protocol {
        ETH_P_IP => 4,
        ETH_P_IPV6 => 6,
        _ => return None,
    };
    let mut l3 = match be16(frame, 12) {
        Some(ETH_P_8021Q | ETH_P_8021AD) if be16(frame, 16) == Some(protocol) => ETH_HLEN + 4,
        Some(t) if t == protocol => ETH_HLEN,
        _ => 0,
    };
    if frame.get(l3).map(|b| b >> 4) != Some(version) {
        l3 = 0;
        if frame.first().map(|b| b >> 4) != Some(version) {
            return None;
        }
    }
    let ip = frame.get(l3..)?;
    let (src, dst, udp) = if version == 4 {
        let h = ip.get(..20)?;
        let ihl = usize::from(h[0] & 0x0f) * 4;
        let fragment_offset = be16(h, 6)? & 0x1fff;
        if ihl < 20 || h[9] != IPPROTO_UDP || fragment_offset != 0 {
            return None;
        }
        // Ethernet pads short frames: the IP total length says where the packet ends.
        let total = usize::from(be16(h, 2)?);
        let ip = ip.get(..total).unwrap_or(ip);
        let src = Ipv4Addr::new(h[12], h[13], h[14], h[15]);
        let dst = Ipv4Addr::new(h[16], h[17], h[18], h[19]);
        (IpAddr::V4(src), IpAddr::V4(dst), ip.get(ihl..)?)
    } else {
        let h = ip.get(..40)?;
        let payload_len = usize::from(be16(h, 4)?);
        let ip = ip.get(..40 + payload_len).unwrap_or(ip);
        let src: [u8; 16] = h[8..24].try_into().ok()?;
        let dst: [u8; 16] = h[24..40].try_into().ok()?;
        let mut next = h[6];
        let mut off = 40usize;
        for _ in 0..MAX_IPV6_EXT_HEADERS {
            match next {
                // Hop-by-hop, routing, destination options.
                0 | 43 | 60 => {
                    let ext = ip.get(off..off + 2)?;
                    next = ext[0];
                    off += (usize::from(ext[1]) + 1) * 8;
                }
                // Fragment: only the first carries the UDP header.
                44 => {
                    let ext = ip.get(off..off + 4)?;
                    if be16(ext, 2)? & 0xfff8 != 0 {
                        return None;
                    }
                    next = ext[0];
                    off += 8;
                }
                _ => break,
            }
        }
        if next != IPPROTO_UDP {
            return None;
        }
        (
            IpAddr::V6(Ipv6Addr::from(src)),
            IpAddr::V6(Ipv6Addr::from(dst)),
            ip.get(off..)?,
        )
    };
    let h = udp.get(..8)?;
    let udp_len = usize::from(be16(h, 4)?);
    if udp_len < 8 {
        return None;
    }
    let payload = udp.get(8..udp_len).unwrap_or(&udp[8..]);
    Some(Datagram {
        src: SocketAddr::new(src, be16(h, 0)?),
        dst: SocketAddr::new(dst, be16(h, 2)?),
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let mut u = Vec::new();
        u.extend_from_slice(&sport.to_be_bytes());
        u.extend_from_slice(&dport.to_be_bytes());
        u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        u.extend_from_slice(&[0, 0]);
        u.extend_from_slice(payload);
        u
    }

    fn ipv4(l4: &[u8], frag: u16) -> Vec<u8> {
        let mut p = vec![0x45, 0];
        p.extend_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
        p.extend_from_slice(&[0, 1]);
        p.extend_from_slice(&frag.to_be_bytes());
        p.extend_from_slice(&[64, IPPROTO_UDP, 0, 0, 10, 0, 0, 53, 10, 0, 0, 9]);
        p.extend_from_slice(l4);
        p
    }

    fn ipv6(exts: &[u8], first_next: u8, l4: &[u8]) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0];
        p.extend_from_slice(&((exts.len() + l4.len()) as u16).to_be_bytes());
        p.extend_from_slice(&[first_next, 64]);
        p.extend_from_slice(&"fd00::53".parse::<Ipv6Addr>().unwrap().octets());
        p.extend_from_slice(&"fd00::9".parse::<Ipv6Addr>().unwrap().octets());
        p.extend_from_slice(exts);
        p.extend_from_slice(l4);
        p
    }

    fn ether(ethertype: u16, vlan: bool, l3: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        if vlan {
            f.extend_from_slice(&ETH_P_8021Q.to_be_bytes());
            f.extend_from_slice(&[0, 7]);
        }
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(l3);
        f
    }

    #[test]
    fn ipv4_over_ethernet_vlan_and_l3() {
        let dg = udp(53, 40000, b"answer");
        let ip = ipv4(&dg, 0);
        for frame in [
            ether(ETH_P_IP, false, &ip),
            ether(ETH_P_IP, true, &ip),
            ip.clone(),
        ] {
            let d = udp_datagram(&frame, ETH_P_IP).unwrap();
            assert_eq!(d.src, "10.0.0.53:53".parse().unwrap());
            assert_eq!(d.dst, "10.0.0.9:40000".parse().unwrap());
            assert_eq!(d.payload, b"answer");
        }
        // Ethernet padding after the packet is not payload.
        let mut padded = ether(ETH_P_IP, false, &ip);
        padded.resize(80, 0xee);
        assert_eq!(udp_datagram(&padded, ETH_P_IP).unwrap().payload, b"answer");
        // Non-first fragments carry no UDP header; the first one does.
        let frag = ether(ETH_P_IP, false, &ipv4(&dg, 0x0010));
        assert_eq!(udp_datagram(&frag, ETH_P_IP), None);
        let first = ether(ETH_P_IP, false, &ipv4(&dg, 0x2000));
        assert!(udp_datagram(&first, ETH_P_IP).is_some());
        // The kernel's protocol must agree.
        assert_eq!(udp_datagram(&ether(ETH_P_IP, false, &ip), 0x0806), None);
    }

    #[test]
    fn ipv6_with_extension_headers() {
        let dg = udp(53, 40001, b"v6 answer");
        // Hop-by-hop (8 bytes) then a first fragment, then UDP.
        let mut exts = vec![44, 0, 1, 4, 0, 0, 0, 0];
        exts.extend_from_slice(&[IPPROTO_UDP, 0, 0, 1, 0, 0, 0, 9]);
        let frame = ether(ETH_P_IPV6, false, &ipv6(&exts, 0, &dg));
        let d = udp_datagram(&frame, ETH_P_IPV6).unwrap();
        assert_eq!(d.src, "[fd00::53]:53".parse().unwrap());
        assert_eq!(d.payload, b"v6 answer");
        let mut later = exts.clone();
        later[10] = 0x01; // fragment offset 32
        let frame = ether(ETH_P_IPV6, false, &ipv6(&later, 0, &dg));
        assert_eq!(udp_datagram(&frame, ETH_P_IPV6), None);
    }

    #[test]
    fn garbage_and_truncations_are_none_not_panics() {
        let frame = ether(ETH_P_IPV6, true, &ipv6(&[], IPPROTO_UDP, &udp(53, 1, b"x")));
        for n in 0..frame.len() {
            let _ = udp_datagram(&frame[..n], ETH_P_IPV6);
            let _ = udp_datagram(&frame[..n], ETH_P_IP);
        }
        assert!(udp_datagram(&frame, ETH_P_IPV6).is_some());
        // A UDP length below the header's own size.
        let mut bad = udp(53, 1, b"x");
        bad[4..6].copy_from_slice(&4u16.to_be_bytes());
        assert_eq!(udp_datagram(&ipv4(&bad, 0), ETH_P_IP), None);
    }
}
