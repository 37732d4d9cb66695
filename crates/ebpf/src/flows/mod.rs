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
//!
//! # Layout
//!
//! This file holds the public loader API: the configuration, [`FlowCapture`] and
//! [`FlowCapture::load`]. `abi.rs` mirrors the C structs of `src/bpf/flows.h`; `attach.rs`
//! attaches to and detaches from interfaces; `evict.rs` reads the counters back (epochs, cache,
//! hash maps); `overflow.rs` reads the ring buffer; `inject.rs` holds the hidden test helpers.
//! The raw `bpf(2)` calls are in [`crate::sys::bpf`].

mod abi;
mod attach;
mod evict;
mod inject;
mod overflow;

use std::collections::{BTreeMap, HashMap};

use aya::{
    maps::{Array, HashMap as BpfHashMap, Map, MapData, PerCpuArray, RingBuf},
    programs::{SchedClassifier, SocketFilter},
    Ebpf, EbpfLoader,
};

pub use abi::{
    ipproto, FlowEvent, FlowKey, FlowSlot, FlowStats, FAMILY_IPV4, FAMILY_IPV6, FAMILY_OTHER,
};
pub use attach::{ifindex, TcAttachMode};
pub use evict::FlowRecord;

use crate::load::{program_load_error, EbpfError};
use crate::sys::bpf::GracePeriod;
use attach::Attachment;

/// The compiled flows object (committed, rebuilt with `crates/ebpf/build-objects.sh`).
pub static FLOWS_OBJECT: &[u8] = aya::include_bytes_aligned!("../../objects/flows.o");

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
    /// How tc programs attach here: probed by the first attach.
    tc_mode: Option<TcAttachMode>,
    tcx_refusal: Option<String>,
    stale_filters_removed: Vec<String>,
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

fn ring_size(bytes: u32) -> u32 {
    let page = crate::sys::page_size().max(4096);
    bytes
        .max(page)
        .checked_next_power_of_two()
        .unwrap_or(1 << 31)
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

impl FlowsKernelConfig {
    /// Rejects the settings the kernel object cannot take.
    fn check(&self) -> Result<(), EbpfError> {
        if self.max_flows == 0 {
            return Err(EbpfError::Config("max_flows must be > 0".into()));
        }
        if !self.cache_slots.is_power_of_two() || self.cache_slots > 1 << 20 {
            return Err(EbpfError::Config(format!(
                "cache_slots must be a power of two between 1 and {}, not {}",
                1 << 20,
                self.cache_slots
            )));
        }
        Ok(())
    }
}

/// The object with its map sizes and read-only globals set from `cfg`, maps created, no program
/// loaded yet.
fn load_object(cfg: &FlowsKernelConfig) -> Result<Ebpf, EbpfError> {
    let sampling = cfg.sampling.max(1);
    let direction_mask = cfg.directions.mask();
    let capture_non_ip = u32::from(cfg.capture_non_ip);
    let protocol_set = cfg.protocols.bitmap();
    let ring_bytes = ring_size(cfg.ring_buffer_bytes);
    EbpfLoader::new()
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
        })
}

/// Loads (verifies) the programs `source` uses into the kernel.
fn load_programs(ebpf: &mut Ebpf, source: FlowSource) -> Result<(), EbpfError> {
    match source {
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
    Ok(())
}

/// The maps userspace reads and writes, taken out of the object with their types checked.
struct Maps {
    flows: [Map; 2],
    cache: Map,
    epoch: Array<MapData, u32>,
    ring: RingBuf<MapData>,
    lost: PerCpuArray<MapData, u64>,
    skdirs: Option<BpfHashMap<MapData, u32, u32>>,
}

impl Maps {
    fn take(ebpf: &mut Ebpf, source: FlowSource) -> Result<Self, EbpfError> {
        let mut take_flows = |name: &'static str| {
            let map = take_map(ebpf, name)?;
            if !matches!(map, Map::PerCpuHashMap(_)) {
                return Err(missing(format!("{name} is not a per-CPU hash map")));
            }
            Ok(map)
        };
        let flows = [take_flows(MAP_FLOWS[0])?, take_flows(MAP_FLOWS[1])?];
        let cache = take_map(ebpf, MAP_CACHE)?;
        if !matches!(cache, Map::PerCpuArray(_)) {
            return Err(missing(format!("{MAP_CACHE} is not a per-CPU array")));
        }
        let epoch = Array::try_from(take_map(ebpf, MAP_EPOCH)?).map_err(map_err(MAP_EPOCH))?;
        let ring = RingBuf::try_from(take_map(ebpf, MAP_RING)?).map_err(map_err(MAP_RING))?;
        let lost = PerCpuArray::try_from(take_map(ebpf, MAP_LOST)?).map_err(map_err(MAP_LOST))?;
        let skdirs = match source {
            FlowSource::SocketFilter => Some(
                BpfHashMap::try_from(take_map(ebpf, MAP_SKDIRS)?).map_err(map_err(MAP_SKDIRS))?,
            ),
            FlowSource::Tc => None,
        };
        Ok(Self {
            flows,
            cache,
            epoch,
            ring,
            lost,
            skdirs,
        })
    }
}

impl FlowCapture {
    /// Loads the flows object with `cfg` (map sizes and read-only globals are set before load)
    /// and loads the programs of `cfg.source` into the kernel. Nothing is attached yet.
    pub fn load(cfg: &FlowsKernelConfig) -> Result<Self, EbpfError> {
        cfg.check()?;
        let mut ebpf = load_object(cfg)?;
        load_programs(&mut ebpf, cfg.source)?;
        let maps = Maps::take(&mut ebpf, cfg.source)?;
        let grace = GracePeriod::new().map_err(|e| EbpfError::Map {
            map: GracePeriod::MAP_NAME,
            cause: e.to_string(),
        })?;
        let nr_cpus = aya::util::nr_cpus().map_err(|(what, e)| EbpfError::Map {
            map: MAP_CACHE,
            cause: format!("{what}: {e}"),
        })?;
        Ok(Self {
            attachments: BTreeMap::new(),
            ebpf,
            flows: maps.flows,
            cache: maps.cache,
            epoch_map: maps.epoch,
            // The kernel's epoch map starts at 0 and only this capture writes it.
            epoch: 0,
            cache_slots: cfg.cache_slots,
            grace,
            ring: maps.ring,
            lost: maps.lost,
            skdirs: maps.skdirs,
            source: cfg.source,
            tc_mode: None,
            tcx_refusal: None,
            stale_filters_removed: Vec::new(),
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

    /// Kernel ids of the loaded programs (`bpftool prog show id N`), for diagnostics.
    pub fn program_ids(&self) -> Vec<u32> {
        self.ebpf
            .programs()
            .filter_map(|(_, p)| p.info().ok().map(|i| i.id()))
            .collect()
    }
}
