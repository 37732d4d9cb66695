//! From kernel flow records to metric data points: merge (a flow can come from both the map and
//! the overflow ring buffer), deduplicate (one packet seen on several interfaces), decide who
//! is the client, aggregate by the selected attributes, build the two delta sums.
//!
//! Pure and synchronous: the receiver calls it once per eviction; the benchmark calls it
//! directly (`benches/flows_convert.rs`).

use std::hash::{BuildHasher, Hash, Hasher};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use tapline_core::data::{
    Attributes, Metric, MetricData, Metrics, Number, NumberPoint, Resource, ResourceMetrics, Str,
    Temporality,
};
use tapline_ebpf::flows::{ipproto, FlowKey, FlowRecord, FAMILY_IPV4, FAMILY_IPV6};

use super::config::{AttributeSet, FlowAttribute as A};
use crate::lru::{fast_map, BoundedMap, FastMap};

use tapline_semconv::metric::{NETWORK_FLOW_BYTES, NETWORK_FLOW_PACKETS};

pub const METRIC_BYTES: &str = NETWORK_FLOW_BYTES.name;
pub const METRIC_PACKETS: &str = NETWORK_FLOW_PACKETS.name;
pub const SCOPE: &str = tapline_semconv::SCOPE_FLOWS;

const TCP_SYN: u16 = 0x02;
const TCP_ACK: u16 = 0x10;
const UDPLITE: u8 = 136;

/// What the converter needs to know besides the records.
#[derive(Clone, Debug)]
pub struct ConverterOptions {
    pub attributes: AttributeSet,
    pub deduplicate: bool,
    /// Value of `tapline.ip`.
    pub agent_ip: Str,
    /// Entries of each of the two memories kept across evictions (first interface per flow,
    /// client/server of known TCP connections).
    pub memory: usize,
    pub resource: Arc<Resource>,
}

/// Records of the overflow ring buffer, merged per flow as they arrive (one record per packet
/// would otherwise pile up between two evictions).
#[derive(Default)]
pub struct Overflow {
    flows: FastMap<FlowKey, FlowRecord>,
    /// Ring-buffer records taken in since the last eviction.
    pub records: usize,
}

impl Overflow {
    pub fn add(&mut self, records: impl IntoIterator<Item = FlowRecord>) {
        for r in records {
            self.records += 1;
            self.flows
                .entry(r.key)
                .and_modify(|x| x.merge(&r))
                .or_insert(r);
        }
    }
    /// Distinct flows waiting.
    pub fn len(&self) -> usize {
        self.flows.len()
    }
    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }
}

/// What one eviction did, for the debug log and the tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvictionStats {
    /// Records read from the kernel map.
    pub map_records: usize,
    /// Records read from the overflow ring buffer (one per packet).
    pub overflow_records: usize,
    /// IP records converted: the map's plus the ring buffer's distinct flows (a flow whose
    /// packets were split between both counts twice).
    pub flows: usize,
    /// Flows dropped because another interface reported the same packets first.
    pub deduplicated: usize,
    /// Non-IP records skipped.
    pub skipped: usize,
    /// Data points per metric.
    pub points: usize,
}

/// Hashes 16-byte addresses as whole words and the small fields packed into one: fewer
/// hasher rounds than the derived field-by-field hashing, on a path run per record.
fn hash_words<H: Hasher>(h: &mut H, a: &[u8; 16], b: &[u8; 16], rest: u64) {
    h.write_u128(u128::from_ne_bytes(*a));
    h.write_u128(u128::from_ne_bytes(*b));
    h.write_u64(rest);
}

/// The 5-tuple of a flow without interface and direction: what deduplication keys on.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Tuple {
    src: [u8; 16],
    dst: [u8; 16],
    sport: u16,
    dport: u16,
    proto: u8,
    family: u8,
}

impl Hash for Tuple {
    fn hash<H: Hasher>(&self, h: &mut H) {
        let rest = u64::from(self.sport)
            | u64::from(self.dport) << 16
            | u64::from(self.proto) << 32
            | u64::from(self.family) << 40;
        hash_words(h, &self.src, &self.dst, rest);
    }
}

impl Tuple {
    fn of(k: &FlowKey) -> Self {
        Tuple {
            src: k.src_addr,
            dst: k.dst_addr,
            sport: k.src_port,
            dport: k.dst_port,
            proto: k.protocol,
            family: k.family,
        }
    }
}

/// The interface (and its direction) that reported a flow first.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Owner {
    ifindex: u32,
    direction: u8,
}

/// Both ends of a connection, in a fixed order (`lo` < `hi`), so both directions map to it.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Conversation {
    lo: ([u8; 16], u16),
    hi: ([u8; 16], u16),
    proto: u8,
}

impl Hash for Conversation {
    fn hash<H: Hasher>(&self, h: &mut H) {
        let rest = u64::from(self.lo.1) | u64::from(self.hi.1) << 16 | u64::from(self.proto) << 32;
        hash_words(h, &self.lo.0, &self.hi.0, rest);
    }
}

impl Conversation {
    /// The conversation and whether the record's source is its `lo` end.
    fn of(k: &FlowKey) -> (Self, bool) {
        let s = (k.src_addr, k.src_port);
        let d = (k.dst_addr, k.dst_port);
        let src_is_lo = s <= d;
        let (lo, hi) = if src_is_lo { (s, d) } else { (d, s) };
        (
            Conversation {
                lo,
                hi,
                proto: k.protocol,
            },
            src_is_lo,
        )
    }
}

/// The aggregation key: the selected attributes' raw values, the others zeroed.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
struct Projected {
    src: [u8; 16],
    dst: [u8; 16],
    sport: u16,
    dport: u16,
    client_port: u16,
    server_port: u16,
    ifindex: u32,
    proto: u8,
    family: u8,
    /// 0 none, 1 request, 2 response.
    direction: u8,
    /// 0 none, 1 ingress, 2 egress.
    if_direction: u8,
    has_ports: bool,
}

impl Hash for Projected {
    fn hash<H: Hasher>(&self, h: &mut H) {
        let rest = u64::from(self.sport)
            | u64::from(self.dport) << 16
            | u64::from(self.client_port) << 32
            | u64::from(self.server_port) << 48;
        hash_words(h, &self.src, &self.dst, rest);
        h.write_u64(
            u64::from(self.ifindex)
                | u64::from(self.proto) << 32
                | u64::from(self.family) << 40
                | u64::from(self.direction) << 48
                | u64::from(self.if_direction) << 56
                | u64::from(self.has_ports) << 60,
        );
    }
}

#[derive(Clone, Copy)]
struct Acc {
    bytes: u64,
    packets: u64,
    first_ns: u64,
    last_ns: u64,
}

/// Who opened the connection, as far as one record can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The record's source is the client: `direction=request`.
    SrcIsClient,
    /// The record's source is the server: `direction=response`.
    SrcIsServer,
}

fn has_ports(proto: u8) -> bool {
    matches!(proto, ipproto::TCP | ipproto::UDP | ipproto::SCTP | UDPLITE)
}

/// When the start of a connection was not seen: the lower port is the server's (ephemeral
/// client ports are high: Linux picks them from 32768–60999, IANA from 49152–65535); with equal
/// ports, the end with the lower address is the server, so both directions agree.
pub fn guess_role(src: ([u8; 16], u16), dst: ([u8; 16], u16)) -> Role {
    let server_is_dst = match src.1.cmp(&dst.1) {
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Less => false,
        std::cmp::Ordering::Equal => dst.0 < src.0,
    };
    if server_is_dst {
        Role::SrcIsClient
    } else {
        Role::SrcIsServer
    }
}

/// ICMP messages that ask for something are requests; answers and errors are responses.
fn icmp_is_request(proto: u8, icmp_type: u8) -> bool {
    match proto {
        ipproto::ICMP => matches!(icmp_type, 8 | 10 | 13 | 15 | 17),
        _ => matches!(icmp_type, 128 | 130 | 133 | 135 | 139),
    }
}

pub struct Converter {
    opts: ConverterOptions,
    /// Owners of the tuples that several interfaces reported, by `tuple_hasher` hash.
    owners: BoundedMap<u64, (Tuple, Owner)>,
    tuple_hasher: foldhash::fast::RandomState,
    /// Known TCP connections: whether the client is the conversation's `lo` end.
    connections: BoundedMap<Conversation, bool>,
    interfaces: FastMap<u32, Str>,
    addresses: FastMap<([u8; 16], u8), Str>,
    transports: Vec<Str>,
    // Scratch space kept between evictions.
    keep: Vec<bool>,
    order: Vec<(u64, u32)>,
    syns: FastMap<Conversation, SynSeen>,
    aggregate: FastMap<Projected, Acc>,
}

/// What the TCP flags of one eviction say about a conversation's start.
#[derive(Clone, Copy)]
struct SynSeen {
    /// A SYN without ACK came from this end (`true` = `lo`): that end is the client.
    pure_syn_from_lo: Option<bool>,
    /// The earliest record carrying SYN (first packet time, from `lo`): the client's SYN
    /// precedes the server's SYN-ACK.
    earliest: (u64, bool),
}

const ADDRESS_CACHE_MAX: usize = 65_536;

/// Takes the ring buffer's flows in beside the map's and drops the non-IP records; returns how
/// many were dropped. A flow whose packets were split between both has two records; they have
/// the same owner and are summed when aggregating, so no per-record lookup is spent merging
/// them here.
fn take_in(evicted: &mut Vec<FlowRecord>, overflow: &mut Overflow) -> usize {
    evicted.extend(overflow.flows.drain().map(|(_, r)| r));
    let before = evicted.len();
    evicted.retain(|r| r.key.is_ip());
    before - evicted.len()
}

impl Converter {
    pub fn new(opts: ConverterOptions) -> Self {
        let memory = opts.memory.max(2);
        let transports = (0..=255u8)
            .map(|p| match p {
                ipproto::TCP => Str::from_static("tcp"),
                ipproto::UDP => Str::from_static("udp"),
                ipproto::ICMP => Str::from_static("icmp"),
                ipproto::ICMPV6 => Str::from_static("icmpv6"),
                ipproto::SCTP => Str::from_static("sctp"),
                UDPLITE => Str::from_static("udplite"),
                n => Str::from(n.to_string()),
            })
            .collect();
        Converter {
            opts,
            owners: BoundedMap::new(memory),
            tuple_hasher: Default::default(),
            connections: BoundedMap::new(memory),
            interfaces: fast_map(16),
            addresses: fast_map(1024),
            transports,
            keep: Vec::new(),
            order: Vec::new(),
            syns: fast_map(0),
            aggregate: fast_map(0),
        }
    }

    pub fn options(&self) -> &ConverterOptions {
        &self.opts
    }

    /// Names an interface for the `iface` attribute.
    pub fn set_interface(&mut self, ifindex: u32, name: &str) {
        if self
            .interfaces
            .get(&ifindex)
            .is_none_or(|n| n.as_str() != name)
        {
            self.interfaces.insert(ifindex, Str::from(name.to_owned()));
        }
    }

    /// Forgets an interface that went away, and which flows it reported first (so another
    /// interface seeing those flows is counted from now on).
    pub fn forget_interface(&mut self, ifindex: u32) {
        self.interfaces.remove(&ifindex);
        self.owners.retain(|(_, o)| o.ifindex != ifindex);
    }

    /// Turns one eviction into data points. `evicted` are the map's records (one per flow and
    /// interface direction); `overflow` what the ring buffer delivered since the last eviction
    /// (emptied here). `boot_offset_ns` converts kernel monotonic times to Unix times.
    ///
    /// The steps: take the ring buffer's flows in beside the map's (`take_in`), choose one
    /// interface per flow (`deduplicate`), learn who opened the TCP connections that started
    /// (`learn_connections`), sum by the selected attributes (`aggregate`), build the two delta
    /// sums (`metrics`).
    pub fn convert(
        &mut self,
        evicted: &mut Vec<FlowRecord>,
        overflow: &mut Overflow,
        boot_offset_ns: u64,
    ) -> (Option<Metrics>, EvictionStats) {
        let mut stats = EvictionStats {
            map_records: evicted.len(),
            overflow_records: std::mem::take(&mut overflow.records),
            ..Default::default()
        };
        stats.skipped = take_in(evicted, overflow);
        stats.flows = evicted.len();
        let records: &[FlowRecord] = evicted;
        stats.deduplicated = self.deduplicate(records);
        let need_role = self.needs_role();
        if need_role {
            self.learn_connections(records);
        }
        self.aggregate(records, need_role);
        stats.points = self.aggregate.len();
        (self.metrics(boot_offset_ns), stats)
    }

    /// Whether an attribute that depends on who is the client is selected.
    fn needs_role(&self) -> bool {
        let attrs = self.opts.attributes;
        attrs.contains(A::Direction)
            || attrs.contains(A::ClientPort)
            || attrs.contains(A::ServerPort)
    }

    /// Marks in `self.keep` the records to count (returns how many are dropped): when several
    /// interfaces report one tuple, the one that saw it first owns it, and `owners` remembers
    /// the choice (the flow keeps its `iface`, and a packet counted by the owner before an
    /// eviction is not counted again by another interface after it). Records are grouped by
    /// sorting (tuple hash, index) pairs instead of through a map keyed by tuple: with a million
    /// records, random accesses to a map that large cost several times the sort. Only tuples
    /// seen on several interfaces are kept in `owners`, so that map stays small.
    fn deduplicate(&mut self, records: &[FlowRecord]) -> usize {
        self.keep.clear();
        self.keep.resize(records.len(), true);
        if !self.opts.deduplicate {
            return 0;
        }
        let hasher = &self.tuple_hasher;
        self.order.clear();
        self.order.extend(
            records
                .iter()
                .enumerate()
                .map(|(i, r)| (hasher.hash_one(Tuple::of(&r.key)), i as u32)),
        );
        self.order.sort_unstable();
        let mut start = 0;
        while start < self.order.len() {
            let hash = self.order[start].0;
            let end = start
                + self.order[start..]
                    .iter()
                    .take_while(|(h, _)| *h == hash)
                    .count();
            self.settle_owner(records, start..end);
            start = end;
        }
        self.keep.iter().filter(|k| !**k).count()
    }

    /// Remembers, for each TCP connection whose start this eviction saw, which end is the client
    /// (TCP flags are OR-ed over the window).
    fn learn_connections(&mut self, records: &[FlowRecord]) {
        self.syns.clear();
        for (i, r) in records.iter().enumerate() {
            if !self.keep[i] || r.key.protocol != ipproto::TCP || r.tcp_flags & TCP_SYN == 0 {
                continue;
            }
            let (conv, src_is_lo) = Conversation::of(&r.key);
            let pure = r.tcp_flags & TCP_ACK == 0;
            self.syns
                .entry(conv)
                .and_modify(|s| {
                    if pure {
                        s.pure_syn_from_lo = Some(src_is_lo);
                    }
                    if r.first_ns < s.earliest.0 {
                        s.earliest = (r.first_ns, src_is_lo);
                    }
                })
                .or_insert(SynSeen {
                    pure_syn_from_lo: pure.then_some(src_is_lo),
                    earliest: (r.first_ns, src_is_lo),
                });
        }
        for (conv, s) in self.syns.drain() {
            let client_is_lo = s.pure_syn_from_lo.unwrap_or(s.earliest.1);
            self.connections.insert(conv, client_is_lo);
        }
    }

    /// Sums the kept records into `self.aggregate`, keyed by the selected attributes.
    fn aggregate(&mut self, records: &[FlowRecord], need_role: bool) {
        self.aggregate.clear();
        self.aggregate.reserve(records.len().min(1 << 16));
        for (i, r) in records.iter().enumerate() {
            if !self.keep[i] {
                continue;
            }
            let p = self.project(&r.key, need_role);
            self.aggregate
                .entry(p)
                .and_modify(|a| {
                    a.bytes += r.bytes;
                    a.packets += r.packets;
                    a.first_ns = a.first_ns.min(r.first_ns);
                    a.last_ns = a.last_ns.max(r.last_ns);
                })
                .or_insert(Acc {
                    bytes: r.bytes,
                    packets: r.packets,
                    first_ns: r.first_ns,
                    last_ns: r.last_ns,
                });
        }
    }

    /// The aggregation key of one record: its selected attributes' raw values.
    fn project(&mut self, k: &FlowKey, need_role: bool) -> Projected {
        let attrs = self.opts.attributes;
        let ports = has_ports(k.protocol);
        let mut p = Projected::default();
        if need_role {
            if ports {
                let role = self.role_of(k);
                let (client, server) = match role {
                    Role::SrcIsClient => (k.src_port, k.dst_port),
                    Role::SrcIsServer => (k.dst_port, k.src_port),
                };
                if attrs.contains(A::Direction) {
                    p.direction = if role == Role::SrcIsClient { 1 } else { 2 };
                }
                if attrs.contains(A::ClientPort) {
                    p.client_port = client;
                }
                if attrs.contains(A::ServerPort) {
                    p.server_port = server;
                }
            } else if matches!(k.protocol, ipproto::ICMP | ipproto::ICMPV6)
                && attrs.contains(A::Direction)
            {
                p.direction = if icmp_is_request(k.protocol, (k.dst_port >> 8) as u8) {
                    1
                } else {
                    2
                };
            }
        }
        p.has_ports = ports;
        if attrs.contains(A::SrcAddress) {
            p.src = k.src_addr;
        }
        if attrs.contains(A::DstAddress) {
            p.dst = k.dst_addr;
        }
        if ports && attrs.contains(A::SrcPort) {
            p.sport = k.src_port;
        }
        if ports && attrs.contains(A::DstPort) {
            p.dport = k.dst_port;
        }
        if attrs.contains(A::Transport) {
            p.proto = k.protocol;
        }
        // Addresses are only comparable within a family.
        if attrs.contains(A::NetworkType)
            || attrs.contains(A::SrcAddress)
            || attrs.contains(A::DstAddress)
        {
            p.family = k.family;
        }
        if attrs.contains(A::Iface) {
            p.ifindex = k.ifindex;
        }
        if attrs.contains(A::IfaceDirection) {
            p.if_direction = k.direction + 1;
        }
        p
    }

    /// Who opened the connection of a record with ports: known for TCP connections whose start
    /// was seen, guessed from the ports otherwise.
    fn role_of(&mut self, k: &FlowKey) -> Role {
        if k.protocol == ipproto::TCP {
            let (conv, src_is_lo) = Conversation::of(k);
            match self.connections.get(&conv) {
                Some(client_is_lo) if client_is_lo == src_is_lo => Role::SrcIsClient,
                Some(_) => Role::SrcIsServer,
                None => guess_role((k.src_addr, k.src_port), (k.dst_addr, k.dst_port)),
            }
        } else {
            guess_role((k.src_addr, k.src_port), (k.dst_addr, k.dst_port))
        }
    }

    /// The two delta sums of `self.aggregate` (emptied); `None` when it is empty.
    fn metrics(&mut self, boot_offset_ns: u64) -> Option<Metrics> {
        if self.aggregate.is_empty() {
            return None;
        }
        let mut bytes = Vec::with_capacity(self.aggregate.len());
        let mut packets = Vec::with_capacity(self.aggregate.len());
        let aggregate = std::mem::take(&mut self.aggregate);
        for (p, a) in aggregate.iter() {
            let attributes = self.attributes_of(p);
            let start = a.first_ns.saturating_add(boot_offset_ns);
            let end = a.last_ns.max(a.first_ns + 1).saturating_add(boot_offset_ns);
            packets.push(NumberPoint {
                attributes: attributes.clone(),
                start_time_ns: start,
                time_ns: end,
                value: Number::Int(a.packets as i64),
            });
            bytes.push(NumberPoint {
                attributes,
                start_time_ns: start,
                time_ns: end,
                value: Number::Int(a.bytes as i64),
            });
        }
        self.aggregate = aggregate;
        self.aggregate.clear();
        Some(Metrics {
            resource_metrics: vec![ResourceMetrics {
                resource: self.opts.resource.clone(),
                scope: Str::from_static(SCOPE),
                metrics: vec![
                    Metric {
                        name: Str::from_static(METRIC_BYTES),
                        description: Str::from_static(NETWORK_FLOW_BYTES.description),
                        unit: Str::from_static(NETWORK_FLOW_BYTES.unit),
                        data: MetricData::Sum {
                            temporality: Temporality::Delta,
                            monotonic: true,
                            points: bytes,
                        },
                    },
                    Metric {
                        name: Str::from_static(METRIC_PACKETS),
                        description: Str::from_static(NETWORK_FLOW_PACKETS.description),
                        unit: Str::from_static(NETWORK_FLOW_PACKETS.unit),
                        data: MetricData::Sum {
                            temporality: Temporality::Delta,
                            monotonic: true,
                            points: packets,
                        },
                    },
                ],
            }],
        })
    }

    /// Decides which records of `self.order[range]` (one tuple hash) are kept (`self.keep`).
    fn settle_owner(&mut self, records: &[FlowRecord], range: std::ops::Range<usize>) {
        let hash = self.order[range.start].0;
        let owner = |i: u32| {
            let k = &records[i as usize].key;
            Owner {
                ifindex: k.ifindex,
                direction: k.direction,
            }
        };
        let tuple = |i: u32| Tuple::of(&records[i as usize].key);
        let group = &self.order[range];
        let first = group[0].1;
        // The common case, one record and no remembered owner, touches no record.
        let remembered = self.owners.get(&hash);
        if group.len() == 1 && remembered.is_none() {
            return;
        }
        let t = tuple(first);
        if group.iter().any(|&(_, i)| tuple(i) != t) {
            // Distinct tuples with one hash (about 1 in 2^40 pairs): no deduplication for
            // these records rather than a wrong one.
            return;
        }
        let remembered = remembered.filter(|(rt, _)| *rt == t).map(|(_, o)| o);
        let several = group.iter().any(|&(_, i)| owner(i) != owner(first));
        let chosen = match remembered {
            Some(o) if group.iter().any(|&(_, i)| owner(i) == o) => o,
            // The owner did not report the tuple this time, but counted its packets before.
            Some(o) if !several => o,
            _ if !several => return,
            _ => {
                let earliest = group
                    .iter()
                    .map(|&(_, i)| i)
                    .min_by_key(|&i| {
                        let k = &records[i as usize].key;
                        (records[i as usize].first_ns, k.ifindex, k.direction)
                    })
                    .unwrap_or(first);
                self.owners.insert(hash, (t, owner(earliest)));
                owner(earliest)
            }
        };
        for &(_, i) in group {
            self.keep[i as usize] = owner(i) == chosen;
        }
    }

    fn address(&mut self, raw: [u8; 16], family: u8) -> Str {
        if let Some(s) = self.addresses.get(&(raw, family)) {
            return s.clone();
        }
        if self.addresses.len() >= ADDRESS_CACHE_MAX {
            self.addresses.clear();
        }
        let text = match family {
            FAMILY_IPV4 => Ipv4Addr::new(raw[12], raw[13], raw[14], raw[15]).to_string(),
            _ => Ipv6Addr::from(raw).to_string(),
        };
        let s = Str::from(text);
        self.addresses.insert((raw, family), s.clone());
        s
    }

    fn interface(&mut self, ifindex: u32) -> Str {
        self.interfaces
            .entry(ifindex)
            .or_insert_with(|| Str::from(format!("if{ifindex}")))
            .clone()
    }

    fn attributes_of(&mut self, p: &Projected) -> Attributes {
        let attrs = self.opts.attributes;
        let mut out = Attributes::with_capacity(12);
        if attrs.contains(A::SrcAddress) {
            out.push(A::SrcAddress.key(), self.address(p.src, p.family));
        }
        if attrs.contains(A::DstAddress) {
            out.push(A::DstAddress.key(), self.address(p.dst, p.family));
        }
        if p.has_ports {
            if attrs.contains(A::SrcPort) {
                out.push(A::SrcPort.key(), p.sport);
            }
            if attrs.contains(A::DstPort) {
                out.push(A::DstPort.key(), p.dport);
            }
        }
        if attrs.contains(A::Transport) {
            out.push(
                A::Transport.key(),
                self.transports[p.proto as usize].clone(),
            );
        }
        if attrs.contains(A::NetworkType) {
            let t = if p.family == FAMILY_IPV6 {
                "ipv6"
            } else {
                "ipv4"
            };
            out.push(A::NetworkType.key(), t);
        }
        if p.direction != 0 {
            out.push(
                A::Direction.key(),
                if p.direction == 1 {
                    "request"
                } else {
                    "response"
                },
            );
        }
        if p.has_ports {
            if attrs.contains(A::ClientPort) {
                out.push(A::ClientPort.key(), p.client_port);
            }
            if attrs.contains(A::ServerPort) {
                out.push(A::ServerPort.key(), p.server_port);
            }
        }
        if attrs.contains(A::Iface) {
            out.push(A::Iface.key(), self.interface(p.ifindex));
        }
        if p.if_direction != 0 {
            out.push(
                A::IfaceDirection.key(),
                if p.if_direction == 1 {
                    "ingress"
                } else {
                    "egress"
                },
            );
        }
        if attrs.contains(A::TaplineIp) {
            out.push(A::TaplineIp.key(), self.opts.agent_ip.clone());
        }
        out
    }
}

#[cfg(test)]
mod tests;
