//! Each address resolved once for the whole decoration chain: `k8s` needs the endpoint of an
//! address and `zones` its zone, from the same cache, for the same strings, batch after batch.
//!
//! The flows receiver interns addresses (one `Arc<str>` per address, reused across batches),
//! so what an address string resolves to is remembered per thread by the string's identity
//! (address and length). Each entry holds a clone of its string, so no other string can take
//! its address while the entry exists: equal identity means the same string. The memo belongs
//! to one content of one cache ([`Generation`]) and starts over when that changes.

use std::cell::RefCell;
use std::net::IpAddr;
use std::sync::Arc;

use tapline_core::data::Str;

use super::store::{Endpoint, Generation, State};
use crate::net::{fast_map, parsed, FastMap};

/// What an address is in the Kubernetes cache.
#[derive(Debug)]
pub struct Resolved {
    /// The parsed address (`None`: not an IP address).
    pub ip: Option<IpAddr>,
    /// [`State::lookup_ip`].
    pub endpoint: Option<Arc<Endpoint>>,
    /// [`State::zone_of_ip`].
    pub zone: Option<Str>,
}

#[derive(Default)]
struct Memo {
    generation: Option<Generation>,
    /// String identity → index in `entries`.
    index: FastMap<(usize, usize), u32>,
    /// (the string, kept alive so its identity stays its own; what it resolves to).
    entries: Vec<(Str, Resolved)>,
}

/// Entries per thread before the memo starts over (~6 MiB at most).
const MEMO_MAX: usize = 65_536;

thread_local! {
    static MEMO: RefCell<Memo> = RefCell::new(Memo {
        generation: None,
        index: fast_map(),
        entries: Vec::new(),
    });
}

/// Resolves addresses against one locked view of the cache, for one batch. Takes this
/// thread's memo for its lifetime and gives it back when dropped.
pub struct Resolver<'s> {
    state: &'s State,
    memo: Memo,
}

impl<'s> Resolver<'s> {
    pub fn new(state: &'s State) -> Self {
        let mut memo = MEMO
            .try_with(|m| std::mem::take(&mut *m.borrow_mut()))
            .unwrap_or_default();
        let generation = Some(state.generation());
        // A batch adds at most two entries per point: the bound is checked once per batch.
        if memo.generation != generation || memo.entries.len() >= MEMO_MAX {
            memo.index.clear();
            memo.entries.clear();
            memo.generation = generation;
        }
        Resolver { state, memo }
    }

    pub fn state(&self) -> &'s State {
        self.state
    }

    /// Where `addr`'s resolution is, for [`Resolver::get`].
    #[inline]
    pub fn resolve(&mut self, addr: &Str) -> u32 {
        let key = (addr.as_ptr() as usize, addr.len());
        let Memo { index, entries, .. } = &mut self.memo;
        let state = self.state;
        *index.entry(key).or_insert_with(|| {
            let ip = parsed(addr);
            let resolved = Resolved {
                ip,
                endpoint: ip.and_then(|ip| state.lookup_ip(&ip)).cloned(),
                zone: ip.and_then(|ip| state.zone_of_ip(&ip)).cloned(),
            };
            entries.push((addr.clone(), resolved));
            (entries.len() - 1) as u32
        })
    }

    /// What [`Resolver::resolve`] returned `at` for.
    #[inline]
    pub fn get(&self, at: u32) -> &Resolved {
        &self.memo.entries[at as usize].1
    }
}

impl Drop for Resolver<'_> {
    fn drop(&mut self) {
        let memo = std::mem::take(&mut self.memo);
        let _ = MEMO.try_with(|m| *m.borrow_mut() = memo);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::K8sCache;
    use tapline_test_support::fixtures::k8s as fx;

    #[test]
    fn a_cache_change_is_seen_by_the_next_resolver() {
        let cache = K8sCache::new();
        let node = |name: &str, ip: &str, zone: &str| {
            serde_json::from_value(fx::node(name, ip, Some(zone))).unwrap()
        };
        cache.update(|s| s.apply_node(&node("n1", "192.168.0.1", "zone-a")));
        let addr = Str::from("192.168.0.1".to_string());
        {
            let state = cache.read();
            let mut r = Resolver::new(&state);
            let at = r.resolve(&addr);
            assert_eq!(r.get(at).zone.as_deref(), Some("zone-a"));
            assert_eq!(r.get(at).endpoint.as_ref().unwrap().name, "n1");
        }
        cache.update(|s| s.apply_node(&node("n1", "192.168.0.1", "zone-b")));
        let state = cache.read();
        let mut r = Resolver::new(&state);
        let at = r.resolve(&addr);
        assert_eq!(r.get(at).zone.as_deref(), Some("zone-b"));
        // Another cache on the same thread is not answered from this one's memo.
        drop(r);
        let other = K8sCache::new();
        let other_state = other.read();
        let mut r = Resolver::new(&other_state);
        let at = r.resolve(&addr);
        assert!(r.get(at).endpoint.is_none() && r.get(at).zone.is_none());
    }
}
