//! A bounded map with approximately-least-recently-used eviction, O(1) per operation and no
//! per-entry links: two generations; a hit in the old generation moves the entry to the new
//! one, and when the new one is full the old one is dropped whole. An entry survives as long
//! as it is used at least once per `capacity / 2` insertions.

use std::collections::HashMap;
use std::hash::Hash;

pub type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

pub fn fast_map<K, V>(capacity: usize) -> FastMap<K, V> {
    FastMap::with_capacity_and_hasher(capacity, foldhash::fast::RandomState::default())
}

pub struct BoundedMap<K, V> {
    young: FastMap<K, V>,
    old: FastMap<K, V>,
    half: usize,
}

impl<K: Hash + Eq, V: Clone> BoundedMap<K, V> {
    /// Holds at most `capacity` entries (at least 2).
    pub fn new(capacity: usize) -> Self {
        let half = (capacity / 2).max(1);
        BoundedMap {
            young: fast_map(0),
            old: fast_map(0),
            half,
        }
    }

    pub fn get(&mut self, key: &K) -> Option<V>
    where
        K: Clone,
    {
        if let Some(v) = self.young.get(key) {
            return Some(v.clone());
        }
        if self.old.is_empty() {
            return None;
        }
        let v = self.old.remove(key)?;
        self.insert(key.clone(), v.clone());
        Some(v)
    }

    pub fn insert(&mut self, key: K, value: V) {
        if self.young.len() >= self.half && !self.young.contains_key(&key) {
            self.old = std::mem::replace(&mut self.young, fast_map(0));
        }
        self.young.insert(key, value);
    }

    /// Drops every entry whose value matches.
    pub fn retain(&mut self, mut keep: impl FnMut(&V) -> bool) {
        self.young.retain(|_, v| keep(v));
        self.old.retain(|_, v| keep(v));
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_keeps_recently_used() {
        let mut m = BoundedMap::new(10);
        for i in 0..1000u32 {
            m.insert(i, i);
            // Key 0 is used all the time: it must survive.
            assert_eq!(m.get(&0), Some(0), "at {i}");
            assert!(m.len() <= 11, "{} entries", m.len());
        }
        assert_eq!(m.get(&1), None, "an unused old key is gone");
        assert_eq!(m.get(&999), Some(999));
        m.retain(|v| *v != 999);
        assert_eq!(m.get(&999), None);
    }
}
