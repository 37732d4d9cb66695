//! Attribute keys and values that cost no heap allocation for the common case.
//!
//! Receivers build millions of attributes per second with a fixed, small set of keys
//! (`src.address`, `http.request.method`, ...). [`Str`] holds such a key as a `&'static str`,
//! and only dynamic strings (an IP address, a route) pay for one shared allocation, which
//! clones by reference count.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// An immutable string: either static or reference-counted. Clone never allocates.
#[derive(Clone)]
pub enum Str {
    Static(&'static str),
    Shared(Arc<str>),
}

impl Str {
    pub const fn from_static(s: &'static str) -> Self {
        Str::Static(s)
    }
    #[inline]
    pub fn as_str(&self) -> &str {
        match self {
            Str::Static(s) => s,
            Str::Shared(s) => s,
        }
    }
}

impl Deref for Str {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}
impl AsRef<str> for Str {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}
impl Borrow<str> for Str {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}
impl PartialEq for Str {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (self.as_str(), other.as_str());
        // The same string (an interned key or a shared value) needs no byte comparison.
        (a.as_ptr() == b.as_ptr() && a.len() == b.len()) || a == b
    }
}
impl Eq for Str {}
impl PartialEq<str> for Str {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}
impl PartialEq<&str> for Str {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}
impl PartialOrd for Str {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Str {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}
impl Hash for Str {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}
impl fmt::Debug for Str {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}
impl fmt::Display for Str {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
impl From<&'static str> for Str {
    fn from(s: &'static str) -> Self {
        Str::Static(s)
    }
}
impl From<String> for Str {
    fn from(s: String) -> Self {
        Str::Shared(s.into())
    }
}
impl From<Arc<str>> for Str {
    fn from(s: Arc<str>) -> Self {
        Str::Shared(s)
    }
}
impl Default for Str {
    fn default() -> Self {
        Str::Static("")
    }
}

/// An attribute value, as in OpenTelemetry (arrays and maps are not produced by tapline's
/// sources; OTLP input that carries them is kept as their JSON text).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(Str),
    Int(i64),
    Double(f64),
    Bool(bool),
}

impl Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    /// Text form, as Prometheus labels and the debug exporter show it.
    pub fn to_text(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Value::Str(s) => std::borrow::Cow::Borrowed(s.as_str()),
            Value::Int(i) => i.to_string().into(),
            Value::Double(d) => d.to_string().into(),
            Value::Bool(b) => b.to_string().into(),
        }
    }
}

// Values compare bit-exactly so that they can key hash maps (merging identical data points).
impl Eq for Value {}
impl Hash for Value {
    fn hash<H: Hasher>(&self, state: &mut H) {
        std::mem::discriminant(self).hash(state);
        match self {
            Value::Str(s) => s.hash(state),
            Value::Int(i) => i.hash(state),
            Value::Double(d) => d.to_bits().hash(state),
            Value::Bool(b) => b.hash(state),
        }
    }
}

impl From<&'static str> for Value {
    fn from(s: &'static str) -> Self {
        Value::Str(Str::Static(s))
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s.into())
    }
}
impl From<Str> for Value {
    fn from(s: Str) -> Self {
        Value::Str(s)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<u16> for Value {
    fn from(v: u16) -> Self {
        Value::Int(v as i64)
    }
}
impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Value::Int(v as i64)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Double(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}

/// An ordered list of key/value pairs. One allocation per list, none per key.
///
/// The list is shared copy-on-write: cloning a point's attributes (the bytes and packets
/// points of one flow, a batch copied for a second pipeline) costs a reference count, and the
/// first change to a shared list copies it.
#[derive(Clone, Default)]
pub struct Attributes(Arc<List>);

/// The shared part of [`Attributes`]: the pairs, and a stamp naming their sequence of keys.
#[derive(Default)]
struct List {
    pairs: Vec<(Str, Value)>,
    /// 0, or a number that a processor gave this exact sequence of keys (see
    /// [`Attributes::layout`]). Every change through `&mut` resets it; a shared list's keys
    /// cannot change, so a stamp set through `&` stays true.
    layout: AtomicU64,
}

impl List {
    fn new(pairs: Vec<(Str, Value)>) -> List {
        List {
            pairs,
            layout: AtomicU64::new(0),
        }
    }
}

impl Clone for List {
    fn clone(&self) -> List {
        List {
            pairs: self.pairs.clone(),
            layout: AtomicU64::new(self.layout.load(Ordering::Relaxed)),
        }
    }
}

impl Deref for List {
    type Target = Vec<(Str, Value)>;
    fn deref(&self) -> &Vec<(Str, Value)> {
        &self.pairs
    }
}

impl PartialEq for Attributes {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.pairs == other.0.pairs
    }
}
impl Eq for Attributes {}
impl Hash for Attributes {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.pairs.hash(state)
    }
}
impl fmt::Debug for Attributes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Attributes").field(&self.0.pairs).finish()
    }
}

impl Attributes {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn with_capacity(n: usize) -> Self {
        Attributes(Arc::new(List::new(Vec::with_capacity(n))))
    }
    #[inline]
    fn pairs_mut(&mut self) -> &mut Vec<(Str, Value)> {
        let list = Arc::make_mut(&mut self.0);
        *list.layout.get_mut() = 0;
        &mut list.pairs
    }
    /// The pairs, for several changes at once (like `Cow::to_mut`): a shared list is first
    /// copied into a new one with room for `additional` more pairs, so a series of pushes
    /// costs one uniqueness check and at most one allocation, instead of a copy at the exact
    /// length followed by a reallocation.
    #[inline]
    pub fn to_mut(&mut self, additional: usize) -> &mut Vec<(Str, Value)> {
        if Arc::get_mut(&mut self.0).is_none() {
            let mut copy = Vec::with_capacity(self.0.len() + additional);
            copy.extend_from_slice(&self.0);
            self.0 = Arc::new(List::new(copy));
        }
        let list = Arc::get_mut(&mut self.0).expect("unique: copied above if it was shared");
        *list.layout.get_mut() = 0;
        list.pairs.reserve(additional);
        &mut list.pairs
    }
    /// The stamp naming this list's sequence of keys, or 0. Processors that remember what they
    /// computed per layout (where given keys are) stamp the lists they have checked, so that
    /// the next one recognises a layout by this number instead of comparing every key.
    /// Any change to the list resets it.
    #[inline]
    pub fn layout(&self) -> u64 {
        self.0.layout.load(Ordering::Relaxed)
    }
    /// Stamps the list (and every `Attributes` sharing it) with `id`. The caller guarantees
    /// that `id` names exactly this sequence of keys: an id is made once, for one sequence,
    /// and never reused.
    #[inline]
    pub fn stamp_layout(&self, id: u64) {
        self.0.layout.store(id, Ordering::Relaxed)
    }
    /// Sets `key` to `value`, replacing an existing value.
    pub fn set(&mut self, key: impl Into<Str>, value: impl Into<Value>) {
        let key = key.into();
        let value = value.into();
        let pairs = self.pairs_mut();
        match pairs.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => pairs.push((key, value)),
        }
    }
    /// Appends without checking for an existing key: for builders that know keys are unique.
    #[inline]
    pub fn push(&mut self, key: impl Into<Str>, value: impl Into<Value>) {
        self.pairs_mut().push((key.into(), value.into()));
    }
    #[inline]
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0
            .iter()
            .find(|(k, _)| k.as_str() == key)
            .map(|(_, v)| v)
    }
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let pos = self.0.iter().position(|(k, _)| k.as_str() == key)?;
        Some(self.pairs_mut().remove(pos).1)
    }
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &Value) -> bool) {
        // A shared list is copied only when something actually goes.
        if self.0.iter().all(|(k, v)| keep(k, v)) {
            return;
        }
        self.pairs_mut().retain(|(k, v)| keep(k, v))
    }
    pub fn iter(&self) -> impl Iterator<Item = (&Str, &Value)> {
        self.0.iter().map(|(k, v)| (k, v))
    }
    #[inline]
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Whether another `Attributes` shares this list (the next change copies it). A hint:
    /// another thread may drop its clone at any moment.
    #[inline]
    pub fn is_shared(&self) -> bool {
        Arc::strong_count(&self.0) > 1
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Sorts by key, so that two attribute sets with the same pairs compare equal.
    pub fn sort(&mut self) {
        if !self.0.is_sorted_by(|a, b| a.0 <= b.0) {
            self.pairs_mut().sort_by(|a, b| a.0.cmp(&b.0));
        }
    }
    /// The pairs, in order.
    #[inline]
    pub fn as_slice(&self) -> &[(Str, Value)] {
        &self.0.pairs
    }
    /// Swaps the pairs at positions `a` and `b` (panics when out of range): with
    /// [`Attributes::truncate`], reorders and narrows a list in place, without allocating.
    #[inline]
    pub fn swap(&mut self, a: usize, b: usize) {
        if a != b {
            self.pairs_mut().swap(a, b)
        }
    }
    /// Keeps the first `len` pairs and drops the rest.
    #[inline]
    pub fn truncate(&mut self, len: usize) {
        if len < self.0.len() {
            self.pairs_mut().truncate(len)
        }
    }
    /// Makes room for `additional` more pairs, so the next pushes do not reallocate.
    pub fn reserve(&mut self, additional: usize) {
        self.to_mut(additional);
    }
}

/// Wraps pairs built up front (one allocation for the list, no copy-on-write check per push).
impl From<Vec<(Str, Value)>> for Attributes {
    fn from(pairs: Vec<(Str, Value)>) -> Self {
        Attributes(Arc::new(List::new(pairs)))
    }
}

impl<K: Into<Str>, V: Into<Value>> FromIterator<(K, V)> for Attributes {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Attributes(Arc::new(List::new(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )))
    }
}

impl<'a> IntoIterator for &'a Attributes {
    type Item = &'a (Str, Value);
    type IntoIter = std::slice::Iter<'a, (Str, Value)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_pairs_equals_pushed() {
        let pairs = vec![
            (Str::from_static("a"), Value::from(1i64)),
            (Str::from_static("b"), Value::from("x")),
        ];
        let from: Attributes = pairs.into();
        let mut pushed = Attributes::new();
        pushed.push("a", 1i64);
        pushed.push("b", "x");
        assert_eq!(from, pushed);
        assert_eq!(from.get("b"), Some(&Value::from("x")));
        assert_eq!(from.len(), 2);
    }

    #[test]
    fn clones_share_until_changed() {
        let mut a: Attributes = [("k", "v"), ("n", "1")].into_iter().collect();
        let b = a.clone();
        assert!(Arc::ptr_eq(&a.0, &b.0));
        a.retain(|_, _| true);
        a.truncate(5);
        a.swap(1, 1);
        assert!(Arc::ptr_eq(&a.0, &b.0), "no-op changes do not copy");
        a.set("k", "w");
        assert!(!Arc::ptr_eq(&a.0, &b.0));
        assert_eq!(b.get_str("k"), Some("v"));
        assert_eq!(a.get_str("k"), Some("w"));
        let mut c = b.clone();
        assert_eq!(c.remove("missing"), None);
        assert!(Arc::ptr_eq(&c.0, &b.0));
        assert_eq!(c.remove("n"), Some(Value::from("1")));
        assert_eq!(b.len(), 2);
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn to_mut_copies_a_shared_list_once_with_room() {
        let mut a: Attributes = [("k", "v"), ("n", "1")].into_iter().collect();
        let b = a.clone();
        let pairs = a.to_mut(5);
        assert!(pairs.capacity() >= 7);
        let cap = pairs.capacity();
        pairs.push(("x".into(), Value::Int(3)));
        assert!(!Arc::ptr_eq(&a.0, &b.0));
        assert_eq!(b.len(), 2, "the shared list is untouched");
        assert_eq!(a.get("x"), Some(&Value::Int(3)));
        let before = Arc::as_ptr(&a.0);
        let pairs = a.to_mut(4);
        assert_eq!(
            pairs.capacity(),
            cap,
            "a unique list with room is neither copied nor grown"
        );
        assert_eq!(Arc::as_ptr(&a.0), before);
        assert_eq!(a.as_slice()[..2], b.as_slice()[..]);
    }

    #[test]
    fn a_layout_stamp_lasts_until_the_list_changes() {
        let mut a: Attributes = [("k", "v"), ("n", "1")].into_iter().collect();
        assert_eq!(a.layout(), 0);
        a.stamp_layout(7);
        let b = a.clone();
        assert_eq!(b.layout(), 7, "shared with the list");
        a.retain(|_, _| true);
        a.truncate(9);
        assert_eq!(a.layout(), 7, "no-op changes keep it");
        a.push("x", "y");
        assert_eq!(
            (a.layout(), b.layout()),
            (0, 7),
            "a copy that changed loses it"
        );
        let mut c = b.clone();
        c.to_mut(0);
        assert_eq!((c.layout(), b.layout()), (0, 7));
        let mut d = b.clone();
        drop(c);
        d.stamp_layout(8);
        d.swap(0, 1);
        assert_eq!(d.layout(), 0);
        let mut e: Attributes = [("k", "v")].into_iter().collect();
        e.stamp_layout(3);
        e.set("k", "w");
        assert_eq!(e.layout(), 0);
        e.stamp_layout(3);
        e.remove("k");
        assert_eq!(e.layout(), 0);
        assert_eq!(a, a.clone());
        assert_ne!(a, b);
    }

    #[test]
    fn strings_compare_by_content_whatever_their_address() {
        let shared = Str::from("src.address".to_string());
        assert_eq!(shared, Str::from_static("src.address"));
        assert_eq!(shared, shared.clone());
        assert_ne!(shared, Str::from_static("src.addres"));
        assert_ne!(Str::from_static("src.address"), Str::from_static("src"));
    }
}
