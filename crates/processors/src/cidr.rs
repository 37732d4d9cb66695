//! `cidr`: names each end of a flow by the narrowest configured network that contains it.
//!
//! ```yaml
//! processors:
//!   cidr:
//!     definitions:
//!       - 10.0.0.0/8
//!       - { cidr: 10.96.0.0/12, name: services }
//!       - 0.0.0.0/0            # catch-all: everything else is "0.0.0.0/0"
//! ```
//!
//! Writes `src.cidr` / `dst.cidr`: the definition's `name` when it has one, else the CIDR as
//! written. IPv4-mapped IPv6 addresses are looked up as IPv4.
//!
//! Lookup is one hash probe per distinct prefix length configured, longest first, so the cost
//! does not grow with the number of definitions.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Deserialize;
use tapline_core::data::{Signal, SignalKind, Str};
use tapline_core::pipeline::BatchFn;

use crate::net::{self, fast_map, End, EndSlots, FastMap, Layouts};

pub const SIGNALS: &[SignalKind] = &[SignalKind::Metrics, SignalKind::Traces];

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CidrConfig {
    pub definitions: Vec<Definition>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum Definition {
    Plain(String),
    Named(NamedDefinition),
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedDefinition {
    pub cidr: String,
    pub name: Option<String>,
}

/// Longest-prefix match over a fixed set of networks.
#[derive(Debug)]
pub struct CidrTable {
    /// (prefix length, network address bits → label), longest prefix first.
    v4: Vec<(u8, FastMap<u32, Str>)>,
    v6: Vec<(u8, FastMap<u128, Str>)>,
}

fn mask4(bits: u32, len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        bits & (u32::MAX << (32 - len))
    }
}

fn mask6(bits: u128, len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        bits & (u128::MAX << (128 - len))
    }
}

impl CidrTable {
    /// Builds the table from already validated networks and their labels.
    pub fn new(defs: &[(IpNet, Str)]) -> CidrTable {
        let mut v4: Vec<(u8, FastMap<u32, Str>)> = Vec::new();
        let mut v6: Vec<(u8, FastMap<u128, Str>)> = Vec::new();
        for (net, label) in defs {
            match net {
                IpNet::V4(n) => {
                    let len = n.prefix_len();
                    let slot = match v4.iter().position(|(l, _)| *l == len) {
                        Some(i) => i,
                        None => {
                            v4.push((len, fast_map()));
                            v4.len() - 1
                        }
                    };
                    v4[slot]
                        .1
                        .insert(mask4(u32::from(n.network()), len), label.clone());
                }
                IpNet::V6(n) => {
                    let len = n.prefix_len();
                    let slot = match v6.iter().position(|(l, _)| *l == len) {
                        Some(i) => i,
                        None => {
                            v6.push((len, fast_map()));
                            v6.len() - 1
                        }
                    };
                    v6[slot]
                        .1
                        .insert(mask6(u128::from(n.network()), len), label.clone());
                }
            }
        }
        v4.sort_by_key(|e| std::cmp::Reverse(e.0));
        v6.sort_by_key(|e| std::cmp::Reverse(e.0));
        CidrTable { v4, v6 }
    }

    /// The label of the narrowest network containing `ip`.
    pub fn lookup(&self, ip: IpAddr) -> Option<&Str> {
        match ip {
            IpAddr::V4(a) => {
                let bits = u32::from(a);
                self.v4
                    .iter()
                    .find_map(|(len, m)| m.get(&mask4(bits, *len)))
            }
            IpAddr::V6(a) => {
                let bits = u128::from(a);
                self.v6
                    .iter()
                    .find_map(|(len, m)| m.get(&mask6(bits, *len)))
            }
        }
    }
}

pub struct CidrProcessor {
    table: CidrTable,
}

impl CidrProcessor {
    pub fn new(cfg: CidrConfig) -> Result<Self, String> {
        if cfg.definitions.is_empty() {
            return Err("definitions: list at least one CIDR (e.g. 10.0.0.0/8)".into());
        }
        let mut defs = Vec::with_capacity(cfg.definitions.len());
        let mut seen = std::collections::HashSet::new();
        for (i, d) in cfg.definitions.into_iter().enumerate() {
            let (text, name) = match d {
                Definition::Plain(s) => (s, None),
                Definition::Named(n) => (n.cidr, n.name),
            };
            let net: IpNet = text.trim().parse().map_err(|_| {
                format!(
                    "definitions[{i}]: {text:?} is not a CIDR (write e.g. 10.0.0.0/8 or fd00::/8)"
                )
            })?;
            if net.trunc() != net {
                return Err(format!(
                    "definitions[{i}]: {text:?} has host bits set; did you mean {}?",
                    net.trunc()
                ));
            }
            if !seen.insert(net) {
                return Err(format!("definitions[{i}]: {text:?} is listed twice"));
            }
            let label = Str::from(name.unwrap_or(text));
            defs.push((net, label));
        }
        Ok(CidrProcessor {
            table: CidrTable::new(&defs),
        })
    }
}

impl BatchFn for CidrProcessor {
    fn apply(&self, batch: &mut Signal) {
        let mut layouts: Layouts<EndSlots> = Layouts::default();
        net::for_each_point_attributes(batch, |attrs| {
            let slots = *layouts.get(attrs, |a| EndSlots::find(a, End::cidr_key));
            let found = [0, 1].map(|i| {
                if slots.written[i] {
                    return None;
                }
                let label = slots.ip(attrs, i).and_then(|ip| self.table.lookup(ip))?;
                Some((End::BOTH[i].cidr_key(), label.clone()))
            });
            let what = net::push_ends(attrs, found);
            if what != 0 {
                layouts.appended(attrs, what);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapline_core::data::Attributes;

    fn processor(yaml: &str) -> Result<CidrProcessor, String> {
        let cfg: CidrConfig = serde_yaml::from_str(yaml).unwrap();
        CidrProcessor::new(cfg)
    }

    fn label(p: &CidrProcessor, ip: &str) -> Option<String> {
        p.table
            .lookup(net::parse_ip(ip).unwrap())
            .map(|s| s.to_string())
    }

    #[test]
    fn narrowest_network_wins() {
        let p = processor(
            r#"
definitions:
  - 0.0.0.0/0
  - 10.0.0.0/8
  - { cidr: 10.96.0.0/12, name: services }
  - 10.96.0.10/32
  - ::/0
  - fd00::/8
  - { cidr: "fd00:1::/32", name: pods6 }
"#,
        )
        .unwrap();
        assert_eq!(label(&p, "10.1.2.3").as_deref(), Some("10.0.0.0/8"));
        assert_eq!(label(&p, "10.96.0.1").as_deref(), Some("services"));
        assert_eq!(label(&p, "10.96.0.10").as_deref(), Some("10.96.0.10/32"));
        assert_eq!(label(&p, "10.112.0.1").as_deref(), Some("10.0.0.0/8"));
        assert_eq!(label(&p, "192.168.1.1").as_deref(), Some("0.0.0.0/0"));
        assert_eq!(label(&p, "::ffff:10.96.3.4").as_deref(), Some("services"));
        assert_eq!(label(&p, "fd00:1::5").as_deref(), Some("pods6"));
        assert_eq!(label(&p, "fd00:2::5").as_deref(), Some("fd00::/8"));
        assert_eq!(label(&p, "2001:db8::1").as_deref(), Some("::/0"));
    }

    #[test]
    fn no_catch_all_leaves_unknown_addresses_alone() {
        let p = processor("definitions: [10.0.0.0/8]").unwrap();
        let mut batch = tapline_test_support::fixtures::flow_batch(&[("10.0.0.1", "8.8.8.8", 10)]);
        p.apply(&mut batch);
        let attrs: &Attributes = tapline_test_support::fixtures::first_point_attrs(&batch);
        assert_eq!(attrs.get_str("src.cidr"), Some("10.0.0.0/8"));
        assert_eq!(attrs.get("dst.cidr"), None);
    }

    #[test]
    fn bad_definitions_are_named() {
        let e = processor("definitions: [10.0.0.0/8, banana]")
            .err()
            .unwrap();
        assert!(e.contains("definitions[1]") && e.contains("banana"), "{e}");
        let e = processor("definitions: [10.0.0.1/8]").err().unwrap();
        assert!(e.contains("did you mean 10.0.0.0/8"), "{e}");
        let e = processor("definitions: [10.0.0.0/8, 10.0.0.0/8]")
            .err()
            .unwrap();
        assert!(e.contains("listed twice"), "{e}");
        assert!(processor("definitions: []").is_err());
    }

    #[test]
    fn existing_cidr_attribute_is_kept() {
        let p = processor("definitions: [0.0.0.0/0]").unwrap();
        let mut batch = tapline_test_support::fixtures::flow_batch(&[("10.0.0.1", "10.0.0.2", 1)]);
        if let Signal::Metrics(m) = &mut batch {
            m.metrics_mut()
                .for_each(|x| x.data.for_each_attributes(|a| a.push("src.cidr", "mine")));
        }
        p.apply(&mut batch);
        let attrs = tapline_test_support::fixtures::first_point_attrs(&batch);
        assert_eq!(attrs.get_str("src.cidr"), Some("mine"));
        assert_eq!(attrs.get_str("dst.cidr"), Some("0.0.0.0/0"));
    }
}
