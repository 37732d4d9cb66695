//! `#[repr(C)]` mirrors of the structs of `src/bpf/flows.h` (the flow key, one CPU's counters,
//! the ring-buffer record, one cache slot) and the key's constants. `tests/layout.rs` compiles
//! the header and checks every size and offset against these.

use std::mem::size_of;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use aya::Pod;

use super::Direction;

/// `FlowKey::family` value for frames that are not IP (ARP, LLDP, ...).
pub const FAMILY_OTHER: u8 = 0;
/// `FlowKey::family` value for IPv4 (addresses stored IPv4-mapped).
pub const FAMILY_IPV4: u8 = 4;
/// `FlowKey::family` value for IPv6.
pub const FAMILY_IPV6: u8 = 6;

/// IP protocol numbers of the common protocols.
pub mod ipproto {
    /// ICMP.
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
    /// SCTP.
    pub const SCTP: u8 = 132;
}

/// Mirror of `struct tapline_flow_key` (src/bpf/flows.h). Addresses in network byte order
/// (IPv4 as `::ffff:a.b.c.d`), ports in host byte order.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct FlowKey {
    /// Source address (16 bytes; IPv4-mapped for IPv4).
    pub src_addr: [u8; 16],
    /// Destination address.
    pub dst_addr: [u8; 16],
    /// Source port (0 for ICMP and port-less protocols).
    pub src_port: u16,
    /// Destination port; `(type << 8) | code` for ICMP/ICMPv6; EtherType for non-IP frames.
    pub dst_port: u16,
    /// IP protocol number (0 for non-IP frames).
    pub protocol: u8,
    /// [`FAMILY_OTHER`], [`FAMILY_IPV4`] or [`FAMILY_IPV6`].
    pub family: u8,
    /// 0 = ingress, 1 = egress.
    pub direction: u8,
    /// Always 0.
    pub _pad: u8,
    /// Interface index (in the network namespace of the interface).
    pub ifindex: u32,
}

// SAFETY: plain-old-data, `#[repr(C)]`, no implicit padding (see tests/layout.rs).
unsafe impl Pod for FlowKey {}

impl FlowKey {
    fn addr(&self, raw: &[u8; 16]) -> Option<IpAddr> {
        match self.family {
            FAMILY_IPV4 => Some(IpAddr::V4(Ipv4Addr::new(
                raw[12], raw[13], raw[14], raw[15],
            ))),
            FAMILY_IPV6 => Some(IpAddr::V6(Ipv6Addr::from(*raw))),
            _ => None,
        }
    }
    /// Source address; `None` for non-IP frames.
    pub fn src_ip(&self) -> Option<IpAddr> {
        self.addr(&self.src_addr)
    }
    /// Destination address; `None` for non-IP frames.
    pub fn dst_ip(&self) -> Option<IpAddr> {
        self.addr(&self.dst_addr)
    }
    /// Source port (host order).
    pub fn src_port(&self) -> u16 {
        self.src_port
    }
    /// Destination port (host order).
    pub fn dst_port(&self) -> u16 {
        self.dst_port
    }
    /// IP protocol number.
    pub fn protocol(&self) -> u8 {
        self.protocol
    }
    /// Whether this is an IP flow.
    pub fn is_ip(&self) -> bool {
        matches!(self.family, FAMILY_IPV4 | FAMILY_IPV6)
    }
    /// `(type, code)` of ICMP / ICMPv6 flows.
    pub fn icmp_type_code(&self) -> Option<(u8, u8)> {
        (self.is_ip() && matches!(self.protocol, ipproto::ICMP | ipproto::ICMPV6))
            .then_some(((self.dst_port >> 8) as u8, self.dst_port as u8))
    }
    /// EtherType of non-IP frames.
    pub fn ethertype(&self) -> Option<u16> {
        (self.family == FAMILY_OTHER).then_some(self.dst_port)
    }
    /// Interface index.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }
    /// Direction relative to the interface.
    pub fn direction(&self) -> Direction {
        if self.direction == 1 {
            Direction::Egress
        } else {
            Direction::Ingress
        }
    }
}

/// Mirror of `struct tapline_flow_stats` (one CPU's counters of one flow).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlowStats {
    /// Sum of `skb->len`.
    pub bytes: u64,
    /// skbs.
    pub packets: u64,
    /// Monotonic ns of the first packet (0 = this CPU saw none).
    pub first_ns: u64,
    /// Monotonic ns of the last packet.
    pub last_ns: u64,
    /// OR of the TCP flags (bit 8 = NS).
    pub tcp_flags: u16,
    /// Always 0.
    pub _pad: [u8; 6],
}

// SAFETY: plain-old-data, `#[repr(C)]`, explicit padding.
unsafe impl Pod for FlowStats {}

/// Mirror of `struct tapline_flow_event` (ring-buffer record).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlowEvent {
    /// Flow.
    pub key: FlowKey,
    /// Always 0.
    pub _pad: u32,
    /// The one packet's counters.
    pub stats: FlowStats,
}

// SAFETY: plain-old-data, `#[repr(C)]`, explicit padding.
unsafe impl Pod for FlowEvent {}

/// Mirror of `struct tapline_flow_slot` (one CPU's copy of one flow-cache slot).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlowSlot {
    /// The flow holding the slot.
    pub key: FlowKey,
    /// Epoch the slot was taken in; the slot is free in any other epoch.
    pub epoch: u32,
    /// This CPU's counters of the flow in that epoch (`packets == 0`: free).
    pub stats: FlowStats,
}

// SAFETY: plain-old-data, `#[repr(C)]`, explicit padding.
unsafe impl Pod for FlowSlot {}

impl FlowEvent {
    /// The record at the start of one ring-buffer item; `None` when the item is too short.
    pub(crate) fn read(item: &[u8]) -> Option<Self> {
        if item.len() < size_of::<FlowEvent>() {
            return None;
        }
        // SAFETY: at least size_of::<FlowEvent>() bytes; FlowEvent is plain data, valid for any
        // bytes; the read is unaligned.
        Some(unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) })
    }
}
