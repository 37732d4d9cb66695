//! Network-flows capture: loads `objects/flows.o` (built from `src/bpf/flows.bpf.c`), attaches it
//! to interfaces (tc clsact through TCX links, or an `AF_PACKET` socket filter) and reads the
//! per-flow counters back.
//!
//! # Data path
//!
//! Every packet seen on an attached interface is parsed (Ethernet [+ one VLAN tag] → IPv4 / IPv6
//! [+ extension headers] → TCP / UDP / ICMP / ICMPv6 / other) and added to its flow, in the first
//! of these that has room: a per-CPU direct-mapped cache of [`FlowsKernelConfig::cache_slots`]
//! slots (a slot is kept by the first flow that hashes to it until the next eviction), a per-CPU
//! hash map of [`FlowsKernelConfig::max_flows`] entries, the overflow ring buffer (key + that one
//! packet's counters, read with [`FlowCapture::drain_overflow`]); when the ring buffer is full
//! too, the packet is counted in [`FlowCapture::lost_events`]. [`FlowCapture::evict`] returns
//! one record per flow (cache slots of every CPU and the hash map's per-CPU values merged). So
//! `evict() + drain_overflow()` together account for every packet that was not counted as lost
//! (records for the same flow may come from both: sum them).
//!
//! # Units
//!
//! `bytes` is the sum of `skb->len`, which includes the link-layer (Ethernet) header, exactly what
//! the interface counters (`/sys/class/net/<if>/statistics/{rx,tx}_bytes`) count. `packets` counts
//! skbs, like those counters: a GSO/GRO super-packet counts once. Timestamps are
//! `bpf_ktime_get_ns()` (`CLOCK_MONOTONIC`, nanoseconds since boot).
//!
//! # Sampling
//!
//! With [`FlowsKernelConfig::sampling`] = N > 1 the kernel keeps each packet with probability 1/N
//! and **multiplies its bytes and packets by N in the kernel**: the records always carry estimates
//! of the true totals and userspace must not scale them again.
//!
//! # Epochs: eviction without races
//!
//! The kernel updates per-CPU values in place, without locks. So that no packet is lost or
//! counted twice while userspace reads, the cache has two halves and there are two hash maps,
//! selected by the parity of an epoch number that only userspace writes. [`FlowCapture::evict`]
//! increments the epoch, then waits for an RCU grace period (updating a map-in-map waits for one
//! before it returns: after it, every program run that could have read the old epoch has
//! finished), then reads the closed epoch's half of the cache (the slots tagged with that epoch)
//! and drains its hash map, which no program writes any more. Packets arriving meanwhile go to
//! the other half and the other map, reported by the next eviction. The wait costs the calling
//! thread about one grace period (a few to a few tens of milliseconds) per eviction.

use std::{
    collections::{BTreeMap, HashMap},
    io,
    mem::size_of,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd},
    time::Duration,
};

use aya::{
    maps::{Array, HashMap as BpfHashMap, Map, MapData, PerCpuArray, RingBuf},
    programs::{
        tc::{SchedClassifierLinkId, TcAttachType},
        SchedClassifier, SocketFilter,
    },
    util::KernelVersion,
    Ebpf, EbpfLoader, Pod,
};

use crate::load::{
    is_permission_error, net_attach_error, program_load_error, EbpfError, RAW_SOCKET_CAPS_HINT,
};
use crate::packet::{bind_packet_socket, open_packet_socket};

/// The compiled flows object (committed, rebuilt with `crates/ebpf/build-objects.sh`).
pub static FLOWS_OBJECT: &[u8] = aya::include_bytes_aligned!("../objects/flows.o");

const OBJECT_NAME: &str = "flows.o";

/// Program names in the object (also the names `bpftool prog show` reports).
pub const PROG_TC_INGRESS: &str = "tapline_tc_in";
/// tc egress program name.
pub const PROG_TC_EGRESS: &str = "tapline_tc_out";
/// `AF_PACKET` socket filter program name.
pub const PROG_SOCKET: &str = "tapline_sock";

/// The hash maps of even and odd epochs.
const MAP_FLOWS: [&str; 2] = ["tapline_flows0", "tapline_flows1"];
const MAP_CACHE: &str = "tapline_cache";
const MAP_EPOCH: &str = "tapline_epoch";
const MAP_RING: &str = "tapline_ring";
const MAP_LOST: &str = "tapline_lost";
const MAP_SKDIRS: &str = "tapline_skdirs";

/// Default for [`FlowsKernelConfig::max_flows`].
pub const DEFAULT_MAX_FLOWS: u32 = 5000;
/// Default for [`FlowsKernelConfig::ring_buffer_bytes`].
pub const DEFAULT_RING_BUFFER_BYTES: u32 = 1 << 20;
/// Default for [`FlowsKernelConfig::cache_slots`].
pub const DEFAULT_CACHE_SLOTS: u32 = 1024;

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

/// Where the packets are observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FlowSource {
    /// tc clsact programs (TCX links on kernels >= 6.6, netlink filters before).
    #[default]
    Tc,
    /// A socket filter on one `AF_PACKET` socket per interface (sees both directions).
    SocketFilter,
}

/// Directions to attach to / to account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AttachDirection {
    /// Packets received by the interface.
    Ingress,
    /// Packets sent by the interface.
    Egress,
    /// Both.
    #[default]
    Both,
}

impl AttachDirection {
    fn mask(self) -> u32 {
        match self {
            Self::Ingress => 1,
            Self::Egress => 2,
            Self::Both => 3,
        }
    }
}

/// Direction of one flow record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Received by the interface.
    Ingress,
    /// Sent by the interface.
    Egress,
}

/// Which IP protocols (by number) the kernel accounts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ProtocolFilter {
    /// Every protocol.
    #[default]
    All,
    /// Only these protocol numbers.
    Only(Vec<u8>),
    /// Every protocol but these.
    Except(Vec<u8>),
}

impl ProtocolFilter {
    /// The 256-bit set the kernel checks (bit `p % 64` of word `p / 64` set = account `p`).
    pub fn bitmap(&self) -> [u64; 4] {
        let mut set = match self {
            Self::All | Self::Except(_) => [u64::MAX; 4],
            Self::Only(_) => [0; 4],
        };
        match self {
            Self::All => {}
            Self::Only(list) => list
                .iter()
                .for_each(|&p| set[usize::from(p / 64)] |= 1 << (p % 64)),
            Self::Except(list) => list
                .iter()
                .for_each(|&p| set[usize::from(p / 64)] &= !(1 << (p % 64))),
        }
        set
    }
}

/// Kernel-side settings, fixed at [`FlowCapture::load`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowsKernelConfig {
    /// Attach point kind.
    pub source: FlowSource,
    /// Entries of the per-CPU flows hash map (`cache_max_flows`). Must be > 0. Two maps of this
    /// size exist (one per epoch parity, see the module documentation).
    pub max_flows: u32,
    /// Slots of the per-CPU flow cache in front of the hash map, per CPU and epoch parity: a
    /// power of two. Each costs 88 bytes per CPU, twice (both parities).
    pub cache_slots: u32,
    /// Size of the overflow ring buffer in bytes; rounded up to a power of two >= the page size.
    pub ring_buffer_bytes: u32,
    /// Keep 1 packet in N (random); 0 and 1 keep all. Counts are scaled by N in the kernel.
    pub sampling: u32,
    /// Directions accounted (applies to every interface, on top of what `attach` asked for).
    pub directions: AttachDirection,
    /// IP protocols accounted.
    pub protocols: ProtocolFilter,
    /// Account frames that are not IPv4/IPv6 (family [`FAMILY_OTHER`], EtherType in `dst_port`).
    pub capture_non_ip: bool,
}

impl Default for FlowsKernelConfig {
    fn default() -> Self {
        Self {
            source: FlowSource::Tc,
            max_flows: DEFAULT_MAX_FLOWS,
            cache_slots: DEFAULT_CACHE_SLOTS,
            ring_buffer_bytes: DEFAULT_RING_BUFFER_BYTES,
            sampling: 1,
            directions: AttachDirection::Both,
            protocols: ProtocolFilter::All,
            capture_non_ip: true,
        }
    }
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

/// One flow's counters since the last eviction (or one overflowed packet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowRecord {
    /// The flow.
    pub key: FlowKey,
    /// Bytes (L2 frame lengths), already scaled by the sampling rate.
    pub bytes: u64,
    /// Packets (skbs), already scaled by the sampling rate.
    pub packets: u64,
    /// Monotonic ns of the first packet.
    pub first_ns: u64,
    /// Monotonic ns of the last packet.
    pub last_ns: u64,
    /// OR of the TCP flags (FIN=0x01 SYN=0x02 RST=0x04 PSH=0x08 ACK=0x10 URG=0x20 ECE=0x40
    /// CWR=0x80 NS=0x100).
    pub tcp_flags: u16,
}

impl FlowRecord {
    /// Merges the per-CPU values of one flow: sums bytes/packets, min first, max last, OR flags.
    /// CPUs that saw no packet are ignored. `None` if no CPU saw a packet.
    pub fn from_per_cpu(key: FlowKey, values: &[FlowStats]) -> Option<Self> {
        let mut rec: Option<Self> = None;
        for v in values.iter().filter(|v| v.packets != 0) {
            match &mut rec {
                None => {
                    rec = Some(Self {
                        key,
                        bytes: v.bytes,
                        packets: v.packets,
                        first_ns: v.first_ns,
                        last_ns: v.last_ns,
                        tcp_flags: v.tcp_flags,
                    })
                }
                Some(r) => r.merge_stats(v),
            }
        }
        rec
    }

    fn merge_stats(&mut self, v: &FlowStats) {
        self.bytes += v.bytes;
        self.packets += v.packets;
        self.first_ns = self.first_ns.min(v.first_ns);
        self.last_ns = self.last_ns.max(v.last_ns);
        self.tcp_flags |= v.tcp_flags;
    }

    /// Adds `other` (same flow) to this record.
    pub fn merge(&mut self, other: &FlowRecord) {
        self.bytes += other.bytes;
        self.packets += other.packets;
        self.first_ns = self.first_ns.min(other.first_ns);
        self.last_ns = self.last_ns.max(other.last_ns);
        self.tcp_flags |= other.tcp_flags;
    }
}

enum Attachment {
    Tc {
        ingress: Option<SchedClassifierLinkId>,
        egress: Option<SchedClassifierLinkId>,
    },
    Socket {
        // Closing the socket detaches the filter.
        _socket: OwnedFd,
        ifindex: u32,
    },
}

/// A loaded flows capture: owns the eBPF object, its maps, and every link/socket it attached.
/// Dropping it detaches everything (TCX links and packet sockets are closed).
pub struct FlowCapture {
    // Declared first: dropped (sockets closed) before the programs.
    attachments: BTreeMap<String, Attachment>,
    ebpf: Ebpf,
    /// The hash maps of even and odd epochs.
    flows: [Map; 2],
    cache: Map,
    epoch_map: Array<MapData, u32>,
    /// The current epoch (the kernel reads it from `epoch_map`).
    epoch: u32,
    cache_slots: u32,
    /// Updated to wait for an RCU grace period (see [`GracePeriod`]).
    grace: GracePeriod,
    ring: RingBuf<MapData>,
    lost: PerCpuArray<MapData, u64>,
    skdirs: Option<BpfHashMap<MapData, u32, u32>>,
    source: FlowSource,
    nr_cpus: usize,
    batch_keys: Vec<FlowKey>,
    batch_values: Vec<FlowStats>,
    slot_keys: Vec<u32>,
    slot_values: Vec<FlowSlot>,
    /// Key → index in the output of the cache records of the eviction in progress.
    merge: HashMap<FlowKey, usize>,
}

impl std::fmt::Debug for FlowCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowCapture")
            .field("source", &self.source)
            .field("attached", &self.attached())
            .finish_non_exhaustive()
    }
}

/// Entries per batched lookup-and-delete syscall.
const EVICT_BATCH: usize = 4096;

fn ring_size(bytes: u32) -> u32 {
    let page = page_size().max(4096);
    bytes
        .max(page)
        .checked_next_power_of_two()
        .unwrap_or(1 << 31)
}

fn page_size() -> u32 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u32::try_from(v).unwrap_or(4096)
}

fn missing(what: String) -> EbpfError {
    EbpfError::Missing {
        object: OBJECT_NAME,
        what,
    }
}

fn take_map(ebpf: &mut Ebpf, name: &'static str) -> Result<Map, EbpfError> {
    ebpf.take_map(name)
        .ok_or_else(|| missing(format!("no map named {name}")))
}

fn map_err(map: &'static str) -> impl Fn(aya::maps::MapError) -> EbpfError {
    move |e| EbpfError::Map {
        map,
        cause: e.to_string(),
    }
}

/// Resolves an interface name in the calling thread's network namespace.
pub fn ifindex(ifname: &str) -> Result<u32, EbpfError> {
    let c = std::ffi::CString::new(ifname).map_err(|e| EbpfError::Interface {
        interface: ifname.to_owned(),
        source: io::Error::new(io::ErrorKind::InvalidInput, e),
    })?;
    // SAFETY: `c` is a valid NUL-terminated string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        return Err(EbpfError::Interface {
            interface: ifname.to_owned(),
            source: io::Error::last_os_error(),
        });
    }
    Ok(idx)
}

impl FlowCapture {
    /// Loads the flows object with `cfg` (map sizes and read-only globals are set before load)
    /// and loads the programs of `cfg.source` into the kernel. Nothing is attached yet.
    pub fn load(cfg: &FlowsKernelConfig) -> Result<Self, EbpfError> {
        if cfg.max_flows == 0 {
            return Err(EbpfError::Config("max_flows must be > 0".into()));
        }
        if !cfg.cache_slots.is_power_of_two() || cfg.cache_slots > 1 << 20 {
            return Err(EbpfError::Config(format!(
                "cache_slots must be a power of two between 1 and {}, not {}",
                1 << 20,
                cfg.cache_slots
            )));
        }
        let sampling = cfg.sampling.max(1);
        let direction_mask = cfg.directions.mask();
        let capture_non_ip = u32::from(cfg.capture_non_ip);
        let protocol_set = cfg.protocols.bitmap();
        let ring_bytes = ring_size(cfg.ring_buffer_bytes);

        let mut ebpf = EbpfLoader::new()
            .map_max_entries(MAP_FLOWS[0], cfg.max_flows)
            .map_max_entries(MAP_FLOWS[1], cfg.max_flows)
            .map_max_entries(MAP_CACHE, 2 * cfg.cache_slots)
            .override_global("cache_slots", &cfg.cache_slots, true)
            .map_max_entries(MAP_RING, ring_bytes)
            .override_global("sampling", &sampling, true)
            .override_global("direction_mask", &direction_mask, true)
            .override_global("capture_non_ip", &capture_non_ip, true)
            .override_global("protocol_set", &protocol_set, true)
            .load(FLOWS_OBJECT)
            .map_err(|source| EbpfError::Object {
                object: OBJECT_NAME,
                source,
            })?;

        match cfg.source {
            FlowSource::Tc => {
                for name in [PROG_TC_INGRESS, PROG_TC_EGRESS] {
                    let prog: &mut SchedClassifier = ebpf
                        .program_mut(name)
                        .ok_or_else(|| missing(format!("no program named {name}")))?
                        .try_into()
                        .map_err(|e| missing(format!("program {name}: {e}")))?;
                    prog.load().map_err(|e| program_load_error(name, e))?;
                }
            }
            FlowSource::SocketFilter => {
                let prog: &mut SocketFilter = ebpf
                    .program_mut(PROG_SOCKET)
                    .ok_or_else(|| missing(format!("no program named {PROG_SOCKET}")))?
                    .try_into()
                    .map_err(|e| missing(format!("program {PROG_SOCKET}: {e}")))?;
                prog.load()
                    .map_err(|e| program_load_error(PROG_SOCKET, e))?;
            }
        }

        let mut take_flows = |name: &'static str| {
            let map = take_map(&mut ebpf, name)?;
            if !matches!(map, Map::PerCpuHashMap(_)) {
                return Err(missing(format!("{name} is not a per-CPU hash map")));
            }
            Ok(map)
        };
        let flows = [take_flows(MAP_FLOWS[0])?, take_flows(MAP_FLOWS[1])?];
        let cache = take_map(&mut ebpf, MAP_CACHE)?;
        if !matches!(cache, Map::PerCpuArray(_)) {
            return Err(missing(format!("{MAP_CACHE} is not a per-CPU array")));
        }
        let epoch_map =
            Array::try_from(take_map(&mut ebpf, MAP_EPOCH)?).map_err(map_err(MAP_EPOCH))?;
        let grace = GracePeriod::new().map_err(|e| EbpfError::Map {
            map: MAP_GRACE,
            cause: e.to_string(),
        })?;
        let ring = RingBuf::try_from(take_map(&mut ebpf, MAP_RING)?).map_err(map_err(MAP_RING))?;
        let lost =
            PerCpuArray::try_from(take_map(&mut ebpf, MAP_LOST)?).map_err(map_err(MAP_LOST))?;
        let skdirs = match cfg.source {
            FlowSource::SocketFilter => Some(
                BpfHashMap::try_from(take_map(&mut ebpf, MAP_SKDIRS)?)
                    .map_err(map_err(MAP_SKDIRS))?,
            ),
            FlowSource::Tc => None,
        };
        let nr_cpus = aya::util::nr_cpus().map_err(|(what, e)| EbpfError::Map {
            map: MAP_CACHE,
            cause: format!("{what}: {e}"),
        })?;
        Ok(Self {
            attachments: BTreeMap::new(),
            ebpf,
            flows,
            cache,
            epoch_map,
            // The kernel's epoch map starts at 0 and only this capture writes it.
            epoch: 0,
            cache_slots: cfg.cache_slots,
            grace,
            ring,
            lost,
            skdirs,
            source: cfg.source,
            nr_cpus,
            batch_keys: Vec::new(),
            batch_values: Vec::new(),
            slot_keys: Vec::new(),
            slot_values: Vec::new(),
            merge: HashMap::new(),
        })
    }

    /// The source this capture was loaded for.
    pub fn source(&self) -> FlowSource {
        self.source
    }

    /// Attaches to `ifname` (resolved in the calling thread's network namespace) for `dir`.
    /// Attaching again adds directions; directions already attached are kept.
    ///
    /// With [`FlowSource::Tc`] this creates one TCX link per direction (netlink clsact filters on
    /// kernels < 6.6). With [`FlowSource::SocketFilter`] it opens one `AF_PACKET` socket bound to
    /// the interface (`ETH_P_ALL`) with the filter attached; the filter returns 0, so the socket
    /// never queues anything. Permission errors name the missing capabilities.
    pub fn attach(&mut self, ifname: &str, dir: AttachDirection) -> Result<(), EbpfError> {
        let ifindex = ifindex(ifname)?;
        match self.source {
            FlowSource::Tc => self.attach_tc(ifname, dir),
            FlowSource::SocketFilter => self.attach_socket(ifname, ifindex, dir),
        }
    }

    fn attach_tc(&mut self, ifname: &str, dir: AttachDirection) -> Result<(), EbpfError> {
        let (mut ingress, mut egress) = match self.attachments.remove(ifname) {
            Some(Attachment::Tc { ingress, egress }) => (ingress, egress),
            _ => (None, None),
        };
        let legacy = KernelVersion::current().is_ok_and(|v| v < KernelVersion::new(6, 6, 0));
        let mut result = Ok(());
        for (want, slot, name, ty, label) in [
            (
                dir.mask() & 1 != 0,
                &mut ingress,
                PROG_TC_INGRESS,
                TcAttachType::Ingress,
                "ingress",
            ),
            (
                dir.mask() & 2 != 0,
                &mut egress,
                PROG_TC_EGRESS,
                TcAttachType::Egress,
                "egress",
            ),
        ] {
            if !want || slot.is_some() || result.is_err() {
                continue;
            }
            if legacy {
                // Netlink attach needs the clsact qdisc; "already there" is fine.
                let _ = aya::programs::tc::qdisc_add_clsact(ifname);
            }
            let target = format!("interface {ifname} ({label})");
            let prog: &mut SchedClassifier = match self.ebpf.program_mut(name) {
                Some(p) => p
                    .try_into()
                    .map_err(|e| missing(format!("program {name}: {e}")))?,
                None => return Err(missing(format!("no program named {name}"))),
            };
            match prog.attach(ifname, ty) {
                Ok(id) => *slot = Some(id),
                Err(e) => result = Err(net_attach_error(name, target, e)),
            }
        }
        if ingress.is_some() || egress.is_some() {
            self.attachments
                .insert(ifname.to_owned(), Attachment::Tc { ingress, egress });
        }
        result
    }

    fn attach_socket(
        &mut self,
        ifname: &str,
        ifindex: u32,
        dir: AttachDirection,
    ) -> Result<(), EbpfError> {
        let skdirs = self
            .skdirs
            .as_mut()
            .expect("socket-filter capture has skdirs");
        let old = skdirs.get(&ifindex, 0).unwrap_or(0);
        skdirs
            .insert(ifindex, old | dir.mask(), 0)
            .map_err(map_err(MAP_SKDIRS))?;
        if self.attachments.contains_key(ifname) {
            return Ok(());
        }
        let target = format!("interface {ifname} (AF_PACKET socket)");
        let socket = match open_packet_socket() {
            Ok(s) => s,
            Err(e) => {
                let _ = self.skdirs.as_mut().map(|m| m.remove(&ifindex));
                return Err(EbpfError::Attach {
                    program: PROG_SOCKET.to_owned(),
                    target,
                    hint: is_permission_error(&e).then_some(RAW_SOCKET_CAPS_HINT),
                    cause: format!("socket(AF_PACKET): {e}"),
                });
            }
        };
        let prog: &SocketFilter = self
            .ebpf
            .program(PROG_SOCKET)
            .ok_or_else(|| missing(format!("no program named {PROG_SOCKET}")))?
            .try_into()
            .map_err(|e| missing(format!("program {PROG_SOCKET}: {e}")))?;
        let attached = prog
            .attach(socket.as_fd())
            .map_err(|e| net_attach_error(PROG_SOCKET, target.clone(), e))
            .and_then(|()| {
                bind_packet_socket(&socket, ifindex).map_err(|e| EbpfError::Attach {
                    program: PROG_SOCKET.to_owned(),
                    target: target.clone(),
                    hint: is_permission_error(&e).then_some(RAW_SOCKET_CAPS_HINT),
                    cause: format!("bind(AF_PACKET, ETH_P_ALL): {e}"),
                })
            });
        if let Err(e) = attached {
            let _ = self.skdirs.as_mut().map(|m| m.remove(&ifindex));
            return Err(e);
        }
        self.attachments.insert(
            ifname.to_owned(),
            Attachment::Socket {
                _socket: socket,
                ifindex,
            },
        );
        Ok(())
    }

    /// Detaches everything attached to `ifname`. Never fails: an interface that disappeared
    /// already took its links with it; a name never attached is ignored.
    pub fn detach(&mut self, ifname: &str) {
        match self.attachments.remove(ifname) {
            Some(Attachment::Tc { ingress, egress }) => {
                for (id, name) in [(ingress, PROG_TC_INGRESS), (egress, PROG_TC_EGRESS)] {
                    let Some(id) = id else { continue };
                    if let Some(prog) = self.ebpf.program_mut(name) {
                        if let Ok(prog) = <&mut SchedClassifier>::try_from(prog) {
                            let _ = prog.detach(id);
                        }
                    }
                }
            }
            Some(Attachment::Socket { ifindex, .. }) => {
                if let Some(m) = self.skdirs.as_mut() {
                    let _ = m.remove(&ifindex);
                }
                // The socket is closed here, which detaches the filter.
            }
            None => {}
        }
    }

    /// Names of the interfaces something is attached to, sorted.
    pub fn attached(&self) -> Vec<String> {
        self.attachments.keys().cloned().collect()
    }

    fn map_fd(map: &Map) -> i32 {
        match map {
            Map::PerCpuHashMap(data) | Map::PerCpuArray(data) => data.fd().as_fd().as_raw_fd(),
            _ => unreachable!("checked at load"),
        }
    }

    /// Reads every flow counted since the last eviction and starts a new epoch: the closed
    /// epoch's cache slots (merged across CPUs) and hash-map entries (read and deleted with
    /// batched `BPF_MAP_LOOKUP_AND_DELETE_BATCH`, 4096 entries per syscall), one record per flow.
    /// Exact: no packet is lost or counted twice, whatever the kernel does meanwhile (see the
    /// module documentation); blocks for about one RCU grace period.
    pub fn evict(&mut self) -> Result<Vec<FlowRecord>, EbpfError> {
        let mut out = Vec::new();
        self.evict_into(&mut out)?;
        Ok(out)
    }

    /// Like [`evict`](Self::evict), appending to `out`; returns how many records were added.
    pub fn evict_into(&mut self, out: &mut Vec<FlowRecord>) -> Result<usize, EbpfError> {
        let start = out.len();
        let closed = self.epoch;
        let next = closed.wrapping_add(1);
        self.epoch_map.set(0, next, 0).map_err(map_err(MAP_EPOCH))?;
        self.epoch = next;
        // From here on no program run can still be using the closed epoch.
        self.grace.wait().map_err(|e| EbpfError::Map {
            map: MAP_GRACE,
            cause: e.to_string(),
        })?;
        self.merge.clear();
        self.read_cache(closed, out)?;
        self.drain_flows((closed & 1) as usize, out)?;
        self.merge.clear();
        Ok(out.len() - start)
    }

    /// Appends the flows of the cache slots tagged `epoch` (that half of the cache), one record
    /// per flow, and indexes them in `self.merge`.
    fn read_cache(&mut self, epoch: u32, out: &mut Vec<FlowRecord>) -> Result<(), EbpfError> {
        let slots = self.cache_slots as usize;
        let nr_cpus = self.nr_cpus;
        let first = (epoch & 1) * self.cache_slots;
        self.slot_keys.resize(slots, 0);
        self.slot_values
            .resize(slots * nr_cpus, FlowSlot::default());
        // The batch starts after `in_batch`: the key before the half (none for the first half).
        let before = first.wrapping_sub(1);
        let mut out_batch = 0u32;
        let (res, count) = map_batch(
            BPF_MAP_LOOKUP_BATCH,
            Self::map_fd(&self.cache),
            (first > 0).then_some(&before),
            &mut out_batch,
            self.slot_keys.as_mut_ptr().cast(),
            self.slot_values.as_mut_ptr().cast(),
            slots,
        );
        match res {
            Err(e) if e.raw_os_error() != Some(libc::ENOENT) => {
                return Err(EbpfError::Map {
                    map: MAP_CACHE,
                    cause: format!("BPF_MAP_LOOKUP_BATCH: {e}"),
                })
            }
            _ if count != slots => {
                return Err(EbpfError::Map {
                    map: MAP_CACHE,
                    cause: format!("BPF_MAP_LOOKUP_BATCH returned {count} of {slots} slots"),
                })
            }
            _ => {}
        }
        let live = self
            .slot_values
            .iter()
            .filter(|v| v.epoch == epoch && v.stats.packets != 0);
        for v in live {
            match self.merge.get(&v.key) {
                Some(&i) => out[i].merge_stats(&v.stats),
                None => {
                    self.merge.insert(v.key, out.len());
                    out.push(FlowRecord {
                        key: v.key,
                        bytes: v.stats.bytes,
                        packets: v.stats.packets,
                        first_ns: v.stats.first_ns,
                        last_ns: v.stats.last_ns,
                        tcp_flags: v.stats.tcp_flags,
                    });
                }
            }
        }
        Ok(())
    }

    /// Reads and deletes every entry of the hash map `flows[parity]`, merging the per-CPU values
    /// of each flow and, through `self.merge`, the cache records already in `out`.
    fn drain_flows(&mut self, parity: usize, out: &mut Vec<FlowRecord>) -> Result<(), EbpfError> {
        let mut batch = EVICT_BATCH;
        let mut in_batch: Option<u32> = None;
        let fd = Self::map_fd(&self.flows[parity]);
        let nr_cpus = self.nr_cpus;
        loop {
            self.batch_keys.resize(batch, FlowKey::default());
            self.batch_values
                .resize(batch * nr_cpus, FlowStats::default());
            let mut out_batch: u32 = 0;
            let (res, count) = map_batch(
                BPF_MAP_LOOKUP_AND_DELETE_BATCH,
                fd,
                in_batch.as_ref(),
                &mut out_batch,
                self.batch_keys.as_mut_ptr().cast(),
                self.batch_values.as_mut_ptr().cast(),
                batch,
            );
            for (i, key) in self.batch_keys[..count].iter().enumerate() {
                let vals = &self.batch_values[i * nr_cpus..(i + 1) * nr_cpus];
                if let Some(rec) = FlowRecord::from_per_cpu(*key, vals) {
                    match self.merge.get(key) {
                        Some(&j) => out[j].merge(&rec),
                        None => out.push(rec),
                    }
                }
            }
            match res {
                Ok(()) => in_batch = Some(out_batch),
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => break,
                // One bucket holds more entries than fit: retry it with a larger buffer.
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) && count == 0 => {
                    batch *= 2;
                    if batch > 1 << 22 {
                        return Err(EbpfError::Map {
                            map: MAP_FLOWS[parity],
                            cause: format!("BPF_MAP_LOOKUP_AND_DELETE_BATCH: {e}"),
                        });
                    }
                }
                Err(e) => {
                    return Err(EbpfError::Map {
                        map: MAP_FLOWS[parity],
                        cause: format!("BPF_MAP_LOOKUP_AND_DELETE_BATCH: {e}"),
                    })
                }
            }
        }
        // Keep the buffers for the next eviction, but not oversized ones.
        if batch > EVICT_BATCH {
            self.batch_keys = Vec::new();
            self.batch_values = Vec::new();
        }
        Ok(())
    }

    /// Appends every record waiting in the overflow ring buffer to `out` (non-blocking); returns
    /// how many were appended. Each record is one packet whose flow did not fit in the map.
    pub fn drain_overflow(&mut self, out: &mut Vec<FlowRecord>) -> usize {
        let mut n = 0;
        while let Some(item) = self.ring.next() {
            if item.len() < size_of::<FlowEvent>() {
                continue;
            }
            // SAFETY: at least size_of::<FlowEvent>() bytes, FlowEvent is Pod; unaligned read.
            let ev: FlowEvent = unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) };
            out.push(FlowRecord {
                key: ev.key,
                bytes: ev.stats.bytes,
                packets: ev.stats.packets,
                first_ns: ev.stats.first_ns,
                last_ns: ev.stats.last_ns,
                tcp_flags: ev.stats.tcp_flags,
            });
            n += 1;
        }
        n
    }

    /// The ring buffer's fd: becomes readable when overflow records are waiting. Suitable for
    /// epoll / `tokio::io::unix::AsyncFd` (wrap the raw fd in a type implementing `AsRawFd`, keep
    /// this `FlowCapture` alive meanwhile), then call [`drain_overflow`](Self::drain_overflow).
    pub fn overflow_fd(&self) -> BorrowedFd<'_> {
        self.ring.as_fd()
    }

    /// Blocks up to `timeout` until overflow records are waiting; `Ok(true)` if there are.
    pub fn wait_overflow(&self, timeout: Duration) -> io::Result<bool> {
        let mut pfd = libc::pollfd {
            fd: self.ring.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(r > 0)
    }

    /// Kernel ids of the loaded programs (`bpftool prog show id N`), for diagnostics.
    pub fn program_ids(&self) -> Vec<u32> {
        self.ebpf
            .programs()
            .filter_map(|(_, p)| p.info().ok().map(|i| i.id()))
            .collect()
    }

    /// Test/benchmark helper: inserts `n` synthetic flows (one CPU's value set) into the flows
    /// map with batched updates, as if the kernel had seen them. Not part of the stable API.
    #[doc(hidden)]
    pub fn fill_synthetic(&mut self, n: u32) -> Result<(), EbpfError> {
        let records: Vec<FlowRecord> = (0..n)
            .map(|i| FlowRecord {
                key: FlowKey {
                    src_addr: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1],
                    dst_addr: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 2],
                    src_port: i as u16,
                    dst_port: (i >> 16) as u16,
                    protocol: ipproto::UDP,
                    family: FAMILY_IPV4,
                    direction: 1,
                    _pad: 0,
                    ifindex: 1,
                },
                bytes: 100,
                packets: 1,
                first_ns: 1,
                last_ns: 2,
                tcp_flags: 0,
            })
            .collect();
        self.fill(&records)
    }

    /// Test/benchmark helper: writes `records` into the current epoch's hash map (as CPU 0's
    /// values) with batched updates, as if the kernel had counted them. Not part of the stable
    /// API.
    #[doc(hidden)]
    pub fn fill(&mut self, records: &[FlowRecord]) -> Result<(), EbpfError> {
        let parity = (self.epoch & 1) as usize;
        let fd = Self::map_fd(&self.flows[parity]);
        let nr_cpus = self.nr_cpus;
        for chunk in records.chunks(EVICT_BATCH) {
            let keys: Vec<FlowKey> = chunk.iter().map(|r| r.key).collect();
            let mut values = vec![FlowStats::default(); chunk.len() * nr_cpus];
            for (v, r) in values.iter_mut().step_by(nr_cpus).zip(chunk) {
                *v = FlowStats {
                    bytes: r.bytes,
                    packets: r.packets,
                    first_ns: r.first_ns,
                    last_ns: r.last_ns,
                    tcp_flags: r.tcp_flags,
                    _pad: [0; 6],
                };
            }
            let mut attr = BatchAttr {
                keys: keys.as_ptr() as u64,
                values: values.as_ptr() as u64,
                count: chunk.len() as u32,
                map_fd: fd as u32,
                ..Default::default()
            };
            // SAFETY: buffers hold `chunk.len()` keys and `chunk.len() * nr_cpus` values.
            unsafe { sys_bpf(BPF_MAP_UPDATE_BATCH, &mut attr) }.map_err(|e| EbpfError::Map {
                map: MAP_FLOWS[parity],
                cause: format!("BPF_MAP_UPDATE_BATCH: {e}"),
            })?;
        }
        Ok(())
    }

    /// Test helper: runs the ingress program `repeat` times on `packet` (an Ethernet frame) with
    /// `BPF_PROG_TEST_RUN`, which hands it the packet as received by the loopback interface of
    /// the calling thread's network namespace (ifindex 1). `tapline_tc_in` sees the frame from
    /// its Ethernet header; the socket filter sees it from its IP header (`skb->len` 14 bytes
    /// shorter), as on an L3 device, and this helper enables its ingress accounting of ifindex 1.
    /// Not part of the stable API.
    #[doc(hidden)]
    pub fn test_run(&mut self, packet: &[u8], repeat: u32) -> Result<(), EbpfError> {
        let name = match self.source {
            FlowSource::Tc => PROG_TC_INGRESS,
            FlowSource::SocketFilter => {
                if let Some(m) = self.skdirs.as_mut() {
                    let old = m.get(&1, 0).unwrap_or(0);
                    m.insert(1, old | 1, 0).map_err(map_err(MAP_SKDIRS))?;
                }
                PROG_SOCKET
            }
        };
        let prog = self
            .ebpf
            .program(name)
            .ok_or_else(|| missing(format!("no program named {name}")))?;
        let fd = prog
            .fd()
            .map_err(|e| missing(format!("program {name}: {e}")))?
            .as_fd()
            .as_raw_fd();
        let mut attr = TestRunAttr {
            prog_fd: fd as u32,
            data_size_in: packet.len() as u32,
            data_in: packet.as_ptr() as u64,
            repeat,
            ..Default::default()
        };
        // SAFETY: data_in points to data_size_in readable bytes; no output buffers.
        unsafe { sys_bpf(BPF_PROG_TEST_RUN, &mut attr) }.map_err(|e| EbpfError::Attach {
            program: name.to_owned(),
            target: "BPF_PROG_TEST_RUN".to_owned(),
            hint: None,
            cause: e.to_string(),
        })?;
        Ok(())
    }

    /// Packets that could be neither counted in the map nor sent to the ring buffer, since load.
    pub fn lost_events(&self) -> u64 {
        self.lost
            .get(&0, 0)
            .map(|v| v.iter().copied().fold(0u64, u64::wrapping_add))
            .unwrap_or(0)
    }
}

/// `union bpf_attr` as used by the `BPF_MAP_*_BATCH` commands.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
const BPF_MAP_LOOKUP_AND_DELETE_BATCH: libc::c_long = 25;
const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;

/// One `BPF_MAP_*_BATCH` lookup call; returns the syscall result and how many entries were
/// written to `keys` / `values`.
///
/// `bpf(cmd, attr, sizeof attr)`: the return value, or the errno as an error.
///
/// # Safety
/// `attr` must be the attribute block `cmd` expects, and every pointer in it valid for what
/// the kernel reads or writes there.
unsafe fn sys_bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: forwarded to the caller.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, size_of::<T>()) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// `keys` must have room for `count` keys and `values` for `count` values of every CPU (per-CPU
/// maps: `count * nr_cpus` values, each rounded up to 8 bytes).
fn map_batch(
    cmd: libc::c_long,
    map_fd: i32,
    in_batch: Option<&u32>,
    out_batch: &mut u32,
    keys: *mut u8,
    values: *mut u8,
    count: usize,
) -> (io::Result<()>, usize) {
    let mut attr = BatchAttr {
        in_batch: in_batch.map_or(0, |b| b as *const u32 as u64),
        out_batch: out_batch as *mut u32 as u64,
        map_fd: map_fd as u32,
        keys: keys as u64,
        values: values as u64,
        count: count as u32,
        ..Default::default()
    };
    // SAFETY: the callers size `keys` and `values` as documented above.
    let r = unsafe { sys_bpf(cmd, &mut attr) };
    (r.map(drop), (attr.count as usize).min(count))
}

/// Name of the map-in-map used to wait for a grace period, in error messages.
const MAP_GRACE: &str = "tapline_grace";

/// Waits for an RCU grace period from userspace: updating an element of a map-in-map
/// (`BPF_MAP_TYPE_ARRAY_OF_MAPS`) returns only once every eBPF program that may have read the
/// old element has finished (`maybe_wait_bpf_programs()` in the kernel, "so that userspace, when
/// we return to it, knows that all programs that could be running use the new map value"; since
/// Linux 4.20). A grace period covers any program run, whatever maps it reads: tc programs and
/// socket filters run inside RCU read-side critical sections.
struct GracePeriod {
    outer: OwnedFd,
    inner: OwnedFd,
}

impl GracePeriod {
    fn new() -> io::Result<Self> {
        const ARRAY: u32 = 2;
        const ARRAY_OF_MAPS: u32 = 12;
        let inner = create_map(ARRAY, 4, 4, 1, None, b"tapline_grace_i")?;
        let outer = create_map(
            ARRAY_OF_MAPS,
            4,
            4,
            1,
            Some(inner.as_raw_fd()),
            b"tapline_grace",
        )?;
        Ok(Self { outer, inner })
    }

    fn wait(&self) -> io::Result<()> {
        let key = 0u32;
        let value = self.inner.as_raw_fd() as u32;
        let mut attr = ElemAttr {
            map_fd: self.outer.as_raw_fd() as u32,
            _pad: 0,
            key: &key as *const u32 as u64,
            value: &value as *const u32 as u64,
            flags: 0,
        };
        // SAFETY: attr points to a valid key and value of the map's sizes (4 bytes each).
        unsafe { sys_bpf(BPF_MAP_UPDATE_ELEM, &mut attr) }.map(drop)
    }
}

/// The `BPF_MAP_CREATE` part of `union bpf_attr` (up to `map_name`).
#[repr(C)]
#[derive(Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
}

/// The `BPF_MAP_*_ELEM` part of `union bpf_attr`.
#[repr(C)]
struct ElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

fn create_map(
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    inner: Option<i32>,
    name: &[u8],
) -> io::Result<OwnedFd> {
    let mut attr = MapCreateAttr {
        map_type,
        key_size,
        value_size,
        max_entries,
        inner_map_fd: inner.map_or(0, |fd| fd as u32),
        ..Default::default()
    };
    let n = name.len().min(15);
    attr.map_name[..n].copy_from_slice(&name[..n]);
    // SAFETY: a valid BPF_MAP_CREATE attribute block.
    let fd = unsafe { sys_bpf(BPF_MAP_CREATE, &mut attr) }?;
    // SAFETY: the kernel returned a new file descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// The `BPF_PROG_TEST_RUN` part of `union bpf_attr` (up to `ctx_out`).
#[repr(C)]
#[derive(Default)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
}
