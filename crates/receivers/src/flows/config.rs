//! The `flows` receiver's typed configuration and its validation (nothing here touches the
//! kernel: `tapline validate` parses and checks it only).

use std::net::IpAddr;
use std::time::Duration;

use serde::Deserialize;
use tapline_core::config::types::{duration, ByteSize, NamePattern};
use tapline_core::config::Diagnostics;
use tapline_ebpf::flows::{ipproto, AttachDirection, FlowSource, ProtocolFilter};
use tapline_semconv::attr;

/// `receivers.flows`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowsConfig {
    /// `tc` (clsact programs through TCX links) or `socket_filter` (one `AF_PACKET` socket per
    /// interface).
    #[serde(default)]
    pub source: SourceConfig,
    /// Interfaces to attach to: exact names or `/regex/`. Empty: every interface.
    #[serde(default)]
    pub interfaces: Vec<NamePattern>,
    /// Interfaces never attached to, even when `interfaces` matches them.
    #[serde(default = "default_exclude_interfaces")]
    pub exclude_interfaces: Vec<NamePattern>,
    #[serde(default)]
    pub direction: DirectionConfig,
    /// Keep one packet in N (counts are scaled back up by N in the kernel).
    #[serde(default = "default_sampling")]
    pub sampling: u32,
    /// Only these IP protocols (`tcp`, `udp`, `icmp`, `icmpv6`, `sctp`, `udplite` or a number).
    #[serde(default)]
    pub protocols: Vec<Protocol>,
    /// Every IP protocol but these.
    #[serde(default)]
    pub exclude_protocols: Vec<Protocol>,
    /// How often flows are read from the kernel and exported.
    #[serde(default = "default_active_timeout", with = "duration")]
    pub cache_active_timeout: Duration,
    /// Flows the kernel map holds between two evictions; packets of further flows go through
    /// the overflow ring buffer.
    #[serde(default = "default_max_flows")]
    pub cache_max_flows: u32,
    /// Size of the overflow ring buffer.
    #[serde(default = "default_overflow_buffer")]
    pub overflow_buffer_size: ByteSize,
    /// Count a packet seen on several interfaces of this host (veth and bridge) once.
    #[serde(default = "default_true")]
    pub deduplicate: bool,
    /// The `tapline.ip` attribute; default: the host's first non-loopback address.
    #[serde(default)]
    pub agent_ip: Option<IpAddr>,
    /// Which data point attributes to emit; default [`DEFAULT_ATTRIBUTES`] (+ `iface.direction`
    /// when `deduplicate: false`).
    #[serde(default)]
    pub attributes: Option<Vec<FlowAttribute>>,
}

fn default_exclude_interfaces() -> Vec<NamePattern> {
    vec![NamePattern::Exact("lo".into())]
}
fn default_sampling() -> u32 {
    1
}
fn default_active_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_max_flows() -> u32 {
    5000
}
fn default_overflow_buffer() -> ByteSize {
    ByteSize(1 << 20)
}
fn default_true() -> bool {
    true
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SourceConfig {
    #[default]
    Tc,
    SocketFilter,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DirectionConfig {
    Ingress,
    Egress,
    #[default]
    Both,
}

/// An IP protocol, by name or number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Protocol(pub u8);

impl<'de> Deserialize<'de> for Protocol {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => u8::try_from(n).map(Protocol).map_err(|_| {
                serde::de::Error::custom(format!("IP protocol number {n} is not in 0..=255"))
            }),
            Raw::S(s) => match s.to_ascii_lowercase().as_str() {
                "tcp" => Ok(Protocol(ipproto::TCP)),
                "udp" => Ok(Protocol(ipproto::UDP)),
                "icmp" => Ok(Protocol(ipproto::ICMP)),
                "icmpv6" => Ok(Protocol(ipproto::ICMPV6)),
                "sctp" => Ok(Protocol(ipproto::SCTP)),
                "udplite" => Ok(Protocol(136)),
                other => other.parse::<u8>().map(Protocol).map_err(|_| {
                    serde::de::Error::custom(format!(
                        "unknown protocol {s:?}: use tcp, udp, icmp, icmpv6, sctp, udplite or an \
                         IP protocol number"
                    ))
                }),
            },
        }
    }
}

/// The data point attributes the receiver can emit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
pub enum FlowAttribute {
    #[serde(rename = "src.address")]
    SrcAddress,
    #[serde(rename = "dst.address")]
    DstAddress,
    #[serde(rename = "src.port")]
    SrcPort,
    #[serde(rename = "dst.port")]
    DstPort,
    #[serde(rename = "transport")]
    Transport,
    #[serde(rename = "network.type")]
    NetworkType,
    #[serde(rename = "direction")]
    Direction,
    #[serde(rename = "client.port")]
    ClientPort,
    #[serde(rename = "server.port")]
    ServerPort,
    #[serde(rename = "iface")]
    Iface,
    #[serde(rename = "iface.direction")]
    IfaceDirection,
    #[serde(rename = "tapline.ip")]
    TaplineIp,
}

impl Default for FlowsConfig {
    fn default() -> Self {
        tapline_core::config::all_defaults()
    }
}

impl FlowAttribute {
    pub const ALL: [FlowAttribute; 12] = [
        FlowAttribute::SrcAddress,
        FlowAttribute::DstAddress,
        FlowAttribute::SrcPort,
        FlowAttribute::DstPort,
        FlowAttribute::Transport,
        FlowAttribute::NetworkType,
        FlowAttribute::Direction,
        FlowAttribute::ClientPort,
        FlowAttribute::ServerPort,
        FlowAttribute::Iface,
        FlowAttribute::IfaceDirection,
        FlowAttribute::TaplineIp,
    ];

    /// The attribute key, as emitted.
    pub const fn key(self) -> &'static str {
        match self {
            FlowAttribute::SrcAddress => attr::SRC_ADDRESS,
            FlowAttribute::DstAddress => attr::DST_ADDRESS,
            FlowAttribute::SrcPort => attr::SRC_PORT,
            FlowAttribute::DstPort => attr::DST_PORT,
            FlowAttribute::Transport => attr::TRANSPORT,
            FlowAttribute::NetworkType => attr::NETWORK_TYPE,
            FlowAttribute::Direction => attr::DIRECTION,
            FlowAttribute::ClientPort => attr::CLIENT_PORT,
            FlowAttribute::ServerPort => attr::SERVER_PORT,
            FlowAttribute::Iface => attr::IFACE,
            FlowAttribute::IfaceDirection => attr::IFACE_DIRECTION,
            FlowAttribute::TaplineIp => attr::TAPLINE_IP,
        }
    }

    const fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// The attributes emitted when `attributes` is not set (see docs/flows.md for why).
/// `iface.direction` is added when `deduplicate: false`.
pub const DEFAULT_ATTRIBUTES: &[FlowAttribute] = &[
    FlowAttribute::SrcAddress,
    FlowAttribute::DstAddress,
    FlowAttribute::ServerPort,
    FlowAttribute::Transport,
    FlowAttribute::NetworkType,
    FlowAttribute::Direction,
    FlowAttribute::Iface,
    FlowAttribute::TaplineIp,
];

/// A set of [`FlowAttribute`]s.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AttributeSet(u16);

impl AttributeSet {
    pub fn all() -> Self {
        Self::from_iter(FlowAttribute::ALL)
    }
    pub fn contains(self, a: FlowAttribute) -> bool {
        self.0 & a.bit() != 0
    }
    pub fn insert(&mut self, a: FlowAttribute) {
        self.0 |= a.bit();
    }
}

impl FromIterator<FlowAttribute> for AttributeSet {
    fn from_iter<I: IntoIterator<Item = FlowAttribute>>(iter: I) -> Self {
        let mut s = AttributeSet::default();
        iter.into_iter().for_each(|a| s.insert(a));
        s
    }
}

impl FlowsConfig {
    /// Checks what serde cannot; every problem is reported with its config path under `path`.
    pub fn validate(&self, path: &str) -> Diagnostics {
        let mut d = Diagnostics::default();
        if self.sampling == 0 {
            d.error(
                format!("{path}.sampling"),
                "must be at least 1 (1 keeps every packet)",
            );
        }
        if self.cache_max_flows == 0 {
            d.error(format!("{path}.cache_max_flows"), "must be at least 1");
        }
        if self.cache_active_timeout < Duration::from_millis(100) {
            d.error(
                format!("{path}.cache_active_timeout"),
                "must be at least 100ms",
            );
        }
        if !self.protocols.is_empty() && !self.exclude_protocols.is_empty() {
            d.error(
                format!("{path}.exclude_protocols"),
                "set either protocols or exclude_protocols, not both",
            );
        }
        if self.overflow_buffer_size.0 > 1 << 30 {
            d.error(
                format!("{path}.overflow_buffer_size"),
                "must be at most 1GiB",
            );
        }
        if matches!(&self.attributes, Some(a) if a.is_empty()) {
            d.error(
                format!("{path}.attributes"),
                "must name at least one attribute (leave it out for the default set)",
            );
        }
        for (i, p) in self.interfaces.iter().enumerate() {
            if let NamePattern::Exact(name) = p {
                if self.exclude_interfaces.iter().any(|x| x.is_match(name)) {
                    d.warning(
                        format!("{path}.interfaces[{i}]"),
                        format!("{name:?} is also matched by exclude_interfaces, which wins: it will not be attached"),
                    );
                }
            }
        }
        d
    }

    /// Whether the receiver attaches to an interface of this name.
    pub fn wants_interface(&self, name: &str) -> bool {
        (self.interfaces.is_empty() || self.interfaces.iter().any(|p| p.is_match(name)))
            && !self.exclude_interfaces.iter().any(|p| p.is_match(name))
    }

    pub fn attribute_set(&self) -> AttributeSet {
        match &self.attributes {
            Some(list) => list.iter().copied().collect(),
            None => {
                let mut s: AttributeSet = DEFAULT_ATTRIBUTES.iter().copied().collect();
                if !self.deduplicate {
                    s.insert(FlowAttribute::IfaceDirection);
                }
                s
            }
        }
    }

    pub fn kernel_config(&self) -> tapline_ebpf::flows::FlowsKernelConfig {
        let protocols = if !self.protocols.is_empty() {
            ProtocolFilter::Only(self.protocols.iter().map(|p| p.0).collect())
        } else if !self.exclude_protocols.is_empty() {
            ProtocolFilter::Except(self.exclude_protocols.iter().map(|p| p.0).collect())
        } else {
            ProtocolFilter::All
        };
        tapline_ebpf::flows::FlowsKernelConfig {
            source: match self.source {
                SourceConfig::Tc => FlowSource::Tc,
                SourceConfig::SocketFilter => FlowSource::SocketFilter,
            },
            max_flows: self.cache_max_flows,
            cache_slots: tapline_ebpf::flows::DEFAULT_CACHE_SLOTS,
            ring_buffer_bytes: u32::try_from(self.overflow_buffer_size.0).unwrap_or(1 << 30),
            sampling: self.sampling,
            directions: self.attach_direction(),
            protocols,
            // Non-IP frames (ARP, LLDP, STP) are not flows: the kernel does not account them.
            capture_non_ip: false,
        }
    }

    pub fn attach_direction(&self) -> AttachDirection {
        match self.direction {
            DirectionConfig::Ingress => AttachDirection::Ingress,
            DirectionConfig::Egress => AttachDirection::Egress,
            DirectionConfig::Both => AttachDirection::Both,
        }
    }
}
