//! Shared by this crate's real-kernel tests (flows, DNS sniffer): the test networks of
//! `tests/support/netns.rs`, which tapline-receivers and the root package include too.
#![allow(dead_code)]

#[path = "../support/netns.rs"]
mod netns;

pub use netns::*;

/// Index of `va` (in namespace A), as the flows records carry it.
pub fn ifindex_a(pair: &NetPair) -> u32 {
    in_netns(&pair.a, || tapline_ebpf::flows::ifindex("va").unwrap())
}
