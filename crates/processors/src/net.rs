//! What the decoration processors share: the attribute keys of flow data, address parsing and
//! a walk over every attribute set that carries a flow's two ends.

use std::net::IpAddr;

use tapline_core::data::{Attributes, Signal};

/// A fast, non-cryptographic hash for maps keyed by addresses and attribute keys: the keys
/// come from our own receivers and caches, not from an adversary choosing collisions.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

pub fn fast_map<K, V>() -> FastMap<K, V> {
    FastMap::with_hasher(foldhash::fast::RandomState::default())
}

/// The two ends of a flow, and the attribute keys each processor writes for that end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    Src,
    Dst,
}

impl End {
    pub const BOTH: [End; 2] = [End::Src, End::Dst];
    pub fn address_key(self) -> &'static str {
        match self {
            End::Src => "src.address",
            End::Dst => "dst.address",
        }
    }
    pub fn name_key(self) -> &'static str {
        match self {
            End::Src => "src.name",
            End::Dst => "dst.name",
        }
    }
    pub fn zone_key(self) -> &'static str {
        match self {
            End::Src => "src.zone",
            End::Dst => "dst.zone",
        }
    }
    pub fn cidr_key(self) -> &'static str {
        match self {
            End::Src => "src.cidr",
            End::Dst => "dst.cidr",
        }
    }
}

/// Parses an address as the receivers write it. IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`,
/// what a dual-stack socket reports) become the IPv4 address, so they match IPv4 caches and
/// CIDRs.
pub fn parse_ip(s: &str) -> Option<IpAddr> {
    let ip: IpAddr = s.parse().ok()?;
    Some(canonical(ip))
}

pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// The address of one end of a flow, when the attribute set has one.
pub fn end_ip(attrs: &Attributes, end: End) -> Option<IpAddr> {
    attrs.get_str(end.address_key()).and_then(parse_ip)
}

/// Calls `f` on every metric data point's and every span's attributes: the places a flow's
/// `src.address`/`dst.address` can be.
pub fn for_each_point_attributes(batch: &mut Signal, mut f: impl FnMut(&mut Attributes)) {
    match batch {
        Signal::Metrics(m) => m
            .metrics_mut()
            .for_each(|metric| metric.data.for_each_attributes(&mut f)),
        Signal::Traces(t) => t.spans_mut().for_each(|s| f(&mut s.attributes)),
    }
}

/// Sets `key` only where it is not present: decoration never overwrites what the source or an
/// earlier processor wrote.
pub fn insert_missing(
    attrs: &mut Attributes,
    key: &'static str,
    value: impl Into<tapline_core::data::Value>,
) {
    if attrs.get(key).is_none() {
        attrs.push(key, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_ipv4_becomes_ipv4() {
        assert_eq!(
            parse_ip("::ffff:10.1.2.3"),
            Some("10.1.2.3".parse().unwrap())
        );
        assert_eq!(parse_ip("fd00::1"), Some("fd00::1".parse().unwrap()));
        assert_eq!(parse_ip("not-an-ip"), None);
    }
}
