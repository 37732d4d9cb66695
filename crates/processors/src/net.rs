//! What the decoration processors share: the attribute keys of flow data, address parsing and
//! a walk over every attribute set that carries a flow's two ends.

use std::net::IpAddr;

use tapline_core::data::{Attributes, Signal, Str, Value};
use tapline_semconv::attr;

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
            End::Src => attr::SRC_ADDRESS,
            End::Dst => attr::DST_ADDRESS,
        }
    }
    pub fn name_key(self) -> &'static str {
        match self {
            End::Src => attr::SRC_NAME,
            End::Dst => attr::DST_NAME,
        }
    }
    pub fn zone_key(self) -> &'static str {
        match self {
            End::Src => attr::SRC_ZONE,
            End::Dst => attr::DST_ZONE,
        }
    }
    pub fn cidr_key(self) -> &'static str {
        match self {
            End::Src => attr::SRC_CIDR,
            End::Dst => attr::DST_CIDR,
        }
    }
}

/// Parses an address as the receivers write it. IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`,
/// what a dual-stack socket reports) become the IPv4 address, so they match IPv4 caches and
/// CIDRs.
pub fn parse_ip(s: &str) -> Option<IpAddr> {
    if let Some(v4) = parse_ipv4_fast(s.as_bytes()) {
        return Some(IpAddr::V4(v4));
    }
    let ip: IpAddr = s.parse().ok()?;
    Some(canonical(ip))
}

/// Addresses parsed on this thread, by the identity of their string: the flows receiver
/// interns addresses (one `Arc<str>` per address, reused batch after batch), and each
/// decoration stage needs the parsed form of the same strings. Each entry holds a clone of
/// its string, so no other string can take its address while the entry exists: equal
/// (address, length) means the same string.
struct ParsedCache {
    map: FastMap<(usize, usize), (Str, Option<IpAddr>)>,
}

/// Entries per thread before the cache starts over (~4 MiB at most).
const PARSED_CACHE_MAX: usize = 65_536;

thread_local! {
    static PARSED: std::cell::RefCell<ParsedCache> = std::cell::RefCell::new(ParsedCache {
        map: fast_map(),
    });
}

/// [`parse_ip`] of an attribute value. A dotted quad is parsed on the spot (reading its few
/// bytes costs less than probing a map that a batch's attribute lists keep pushing out of the
/// cache); other forms are remembered by the string's identity.
pub fn parsed(s: &Str) -> Option<IpAddr> {
    if let Some(v4) = parse_ipv4_fast(s.as_bytes()) {
        return Some(IpAddr::V4(v4));
    }
    let key = (s.as_ptr() as usize, s.len());
    PARSED.with(|c| {
        let mut c = c.borrow_mut();
        if let Some((_, ip)) = c.map.get(&key) {
            return *ip;
        }
        let ip = parse_ip(s);
        if c.map.len() >= PARSED_CACHE_MAX {
            c.map.clear();
        }
        c.map.insert(key, (s.clone(), ip));
        ip
    })
}

/// The dotted-quad form every receiver writes (`10.244.3.17`), without the general parser's
/// cost. Accepts exactly what `Ipv4Addr::from_str` accepts among plain dotted quads (one to
/// three digits, no leading zero, at most 255); anything else returns `None` and goes to the
/// general parser, so the result never differs from it.
fn parse_ipv4_fast(b: &[u8]) -> Option<std::net::Ipv4Addr> {
    if b.len() < 7 || b.len() > 15 {
        return None;
    }
    let mut octets = [0u8; 4];
    let mut n = 0; // octets finished
    let mut v: u32 = 0;
    let mut digits = 0;
    let mut first = 0u8;
    for &c in b {
        let d = c.wrapping_sub(b'0');
        if d <= 9 {
            if digits == 0 {
                first = c;
            }
            v = v * 10 + d as u32;
            digits += 1;
            if digits > 3 {
                return None;
            }
        } else if c == b'.' && n < 3 {
            if digits == 0 || v > 255 || (digits > 1 && first == b'0') {
                return None;
            }
            octets[n] = v as u8;
            n += 1;
            v = 0;
            digits = 0;
        } else {
            return None;
        }
    }
    if n != 3 || digits == 0 || v > 255 || (digits > 1 && first == b'0') {
        return None;
    }
    octets[3] = v as u8;
    Some(std::net::Ipv4Addr::from(octets))
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

/// Remembers, per attribute layout, something computed from the layout alone (where given
/// keys are, which attributes a selection keeps), for one pass over one batch.
///
/// A layout is a sequence of keys. It is recognised in one of two ways:
/// - By the list's stamp ([`Attributes::layout`]): a number made once (from one counter for
///   the whole process) for one exact sequence of keys, put on a list only when its keys are
///   known to be that sequence, and reset by any change to the list. One number compared
///   instead of every key, which matters because a decorated list spans dozens of cache
///   lines. A processor that appends keys to a stamped list stamps the result
///   ([`Layouts::appended`]), so the next processor in a chain finds it stamped.
/// - Otherwise by the keys' addresses and lengths: points of one metric nearly always carry
///   the same keys in the same order, as the same `&'static str` or shared `Arc<str>`. Every
///   key compared is alive for the whole pass (keys are not freed while a processor walks its
///   batch, and no new key is allocated), so equal addresses mean equal strings. The list is
///   then stamped with the layout's number.
///
/// Keep one `Layouts` per pass, never across batches.
pub struct Layouts<T> {
    /// The most recently used first.
    entries: Vec<Entry<T>>,
    /// The layout of the list last passed to [`Layouts::get`].
    current: u64,
    /// (layout, what was appended) → the resulting layout.
    successors: Vec<((u64, u32), u64)>,
}

struct Entry<T> {
    id: u64,
    /// The key identities, when the layout was recognised by its keys (not by a stamp).
    keys: Option<Vec<(usize, usize)>>,
    value: T,
}

/// Distinct layouts remembered per pass; a batch has a handful (points decorated or not).
const MAX_LAYOUTS: usize = 16;

/// Where layout numbers come from; 0 means "not stamped".
static NEXT_LAYOUT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn new_layout_id() -> u64 {
    NEXT_LAYOUT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl<T> Default for Layouts<T> {
    fn default() -> Self {
        Layouts {
            entries: Vec::new(),
            current: 0,
            successors: Vec::new(),
        }
    }
}

/// A key's identity: its address and length.
#[inline(always)]
fn key_id(k: &Str) -> (usize, usize) {
    let s = k.as_str();
    (s.as_ptr() as usize, s.len())
}

#[inline(always)]
fn same_layout(keys: &[(usize, usize)], a: &[(Str, Value)]) -> bool {
    if keys.len() != a.len() {
        return false;
    }
    // Compared from the end: layouts of one batch differ mostly in what was appended.
    let mut i = a.len();
    while i > 0 {
        i -= 1;
        if key_id(&a[i].0) != keys[i] {
            return false;
        }
    }
    true
}

impl<T> Layouts<T> {
    /// What `compute` made of `a`'s layout, computing it the first time the layout is seen.
    #[inline]
    pub fn get(&mut self, a: &Attributes, compute: impl FnOnce(&Attributes) -> T) -> &T {
        let stamp = a.layout();
        // Consecutive points nearly always share a layout: the most recent one is tried first,
        // without the search below.
        if let Some(e) = self.entries.first() {
            let hit = if stamp != 0 {
                e.id == stamp
            } else {
                matches!(&e.keys, Some(k) if same_layout(k, a.as_slice()))
            };
            if hit {
                if stamp == 0 {
                    a.stamp_layout(e.id);
                }
                self.current = e.id;
                return &self.entries[0].value;
            }
        }
        self.get_slow(a, stamp, compute)
    }

    #[inline(never)]
    fn get_slow(
        &mut self,
        a: &Attributes,
        stamp: u64,
        compute: impl FnOnce(&Attributes) -> T,
    ) -> &T {
        let found = self.entries.iter().skip(1).position(|e| {
            if stamp != 0 {
                e.id == stamp
            } else {
                matches!(&e.keys, Some(k) if same_layout(k, a.as_slice()))
            }
        });
        match found {
            Some(i) => self.entries[..=i + 1].rotate_right(1),
            None => {
                let (id, keys) = if stamp != 0 {
                    (stamp, None)
                } else {
                    let keys = a.as_slice().iter().map(|(k, _)| key_id(k)).collect();
                    (new_layout_id(), Some(keys))
                };
                if self.entries.len() >= MAX_LAYOUTS {
                    self.entries.pop();
                }
                let value = compute(a);
                self.entries.insert(0, Entry { id, keys, value });
            }
        }
        let id = self.entries[0].id;
        if stamp == 0 {
            a.stamp_layout(id);
        }
        self.current = id;
        &self.entries[0].value
    }

    /// Stamps `a`, which had the layout last passed to [`Layouts::get`] and has since had
    /// keys appended, with the layout of the result. `what` must tell apart every sequence
    /// of keys the caller can append (e.g. one bit per end it wrote a fixed key for).
    pub fn appended(&mut self, a: &Attributes, what: u32) {
        let from = self.current;
        let id = match self.successors.iter().find(|(k, _)| *k == (from, what)) {
            Some(&(_, id)) => id,
            None => {
                let id = new_layout_id();
                if self.successors.len() >= 4 * MAX_LAYOUTS {
                    self.successors.clear();
                }
                self.successors.push(((from, what), id));
                id
            }
        };
        a.stamp_layout(id);
    }
}

/// Where the keys a decorating processor reads are, in one layout: the address of each end,
/// and whether the key it writes for each end is already there.
#[derive(Clone, Copy, Debug)]
pub struct EndSlots {
    /// Index of `src.address` / `dst.address` (a string value), per end.
    pub address: [Option<usize>; 2],
    /// Whether the processor's own key for each end is present.
    pub written: [bool; 2],
    /// Whether `src.name` / `dst.name` is present.
    pub named: [bool; 2],
}

impl EndSlots {
    /// Finds the address keys and `written_key(end)` in `a`.
    pub fn find(a: &Attributes, written_key: impl Fn(End) -> &'static str) -> EndSlots {
        let mut slots = EndSlots {
            address: [None; 2],
            written: [false; 2],
            named: [false; 2],
        };
        for (i, end) in End::BOTH.into_iter().enumerate() {
            let (addr, own, name) = (end.address_key(), written_key(end), end.name_key());
            for (j, (k, _)) in a.as_slice().iter().enumerate() {
                if slots.address[i].is_none() && k.as_str() == addr {
                    slots.address[i] = Some(j);
                }
                if k.as_str() == own {
                    slots.written[i] = true;
                }
                if k.as_str() == name {
                    slots.named[i] = true;
                }
            }
        }
        slots
    }

    /// The parsed address of end `i` (0 = src) in `a`, which must have this layout.
    pub fn ip(&self, a: &Attributes, i: usize) -> Option<IpAddr> {
        self.address(a, i).and_then(parsed)
    }

    /// The address string of end `i` (0 = src) in `a`, which must have this layout.
    pub fn address<'a>(&self, a: &'a Attributes, i: usize) -> Option<&'a Str> {
        match &a.as_slice()[self.address[i]?].1 {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
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

/// Appends what a processor found for each end (`None`: nothing for that end), with one
/// uniqueness check and at most one copy of a shared list.
/// Returns which ends got a pair (bit 0: src, bit 1: dst), for [`Layouts::appended`].
#[inline]
pub fn push_ends(attrs: &mut Attributes, found: [Option<(&'static str, Str)>; 2]) -> u32 {
    let what = found[0].is_some() as u32 | (found[1].is_some() as u32) << 1;
    if what == 0 {
        return 0;
    }
    let n = what.count_ones() as usize;
    attrs.to_mut(n).extend(
        found
            .into_iter()
            .flatten()
            .map(|(k, v)| (Str::Static(k), Value::Str(v))),
    );
    what
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
    fn fast_ipv4_parse_agrees_with_std() {
        for s in [
            "10.244.3.17",
            "0.0.0.0",
            "255.255.255.255",
            "256.1.1.1",
            "01.2.3.4",
            "1.2.3",
            "1.2.3.4.",
            "1.2.3.4.5",
            "1..3.4",
            "1.2.3.0400",
            "1.2.3.-4",
            "+1.2.3.4",
            "1.2.3.4 ",
            "001.2.3.4",
            "::ffff:1.2.3.4",
            "",
        ] {
            assert_eq!(
                parse_ipv4_fast(s.as_bytes()),
                s.parse::<std::net::Ipv4Addr>().ok(),
                "{s:?}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn parse_ip_agrees_with_std(s in "[0-9.:a-f]{0,18}") {
            let want = s.parse::<IpAddr>().ok().map(canonical);
            proptest::prop_assert_eq!(parse_ip(&s), want);
            if let Some(v4) = parse_ipv4_fast(s.as_bytes()) {
                proptest::prop_assert_eq!(Some(v4), s.parse().ok());
            }
        }
        #[test]
        fn parse_ip_agrees_with_std_on_dotted_quads(a in 0u32..400, b in 0u32..300, c in 0u32..300, d in 0u32..1000, pad in 0usize..3) {
            let s = format!("{a}.{b}.{}{c}.{d}", "0".repeat(pad));
            proptest::prop_assert_eq!(parse_ipv4_fast(s.as_bytes()), s.parse().ok());
        }
    }

    #[test]
    fn parsed_addresses_follow_the_string_not_its_address() {
        for i in 0..1000u32 {
            // Fresh allocations, often at an address a dropped one had.
            let text = format!("10.0.{}.{}", i / 250, i % 250);
            let s = Str::from(text.clone());
            assert_eq!(parsed(&s), text.parse().ok());
            assert_eq!(parsed(&s), text.parse().ok());
        }
        assert_eq!(parsed(&Str::from("nope".to_string())), None);
        assert_eq!(
            parsed(&Str::from_static("::ffff:10.1.2.3")),
            Some("10.1.2.3".parse().unwrap())
        );
    }

    #[test]
    fn layouts_tell_layouts_apart() {
        let mut a = Attributes::new();
        a.push("src.address", "10.0.0.1");
        a.push("dst.address", "10.0.0.2");
        let mut b = a.clone();
        b.push("src.name", "x");
        let mut layouts: Layouts<EndSlots> = Layouts::default();
        let mut computed = 0;
        for attrs in [&a, &b, &a, &b, &a] {
            let slots = *layouts.get(attrs, |x| {
                computed += 1;
                EndSlots::find(x, End::name_key)
            });
            assert_eq!(slots.address, [Some(0), Some(1)]);
            assert_eq!(slots.written, [attrs.len() == 3, false]);
            assert_eq!(
                slots.address(attrs, 1).map(|s| s.as_str()),
                Some("10.0.0.2")
            );
        }
        assert_eq!(computed, 2);
    }

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
