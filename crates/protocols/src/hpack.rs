//! HPACK (RFC 7541) decoding: integers, strings, the Huffman code, the static table and a
//! bounded dynamic table.
//!
//! A connection seen from its start has a complete dynamic table. Otherwise (joined mid-way,
//! or a header block was not fully captured), entries inserted before are unknown: the table
//! keeps only the entries inserted since, which are still addressed correctly (they are the
//! newest), and any reference past them decodes as [`Field`] with an unknown part. A dynamic
//! table size update to 0 empties the table, after which it is complete again.

use std::collections::VecDeque;

/// Largest dynamic table kept, whatever the peers negotiate.
pub const MAX_TABLE_SIZE: usize = 64 * 1024;
/// Longest header name/value decoded; longer ones are cut (and count as seen).
const MAX_STRING: usize = 8 * 1024;

/// RFC 7541 Appendix A.
const STATIC: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

/// Code length of each symbol (0-255, 256 = EOS) in RFC 7541 Appendix B. The code is
/// canonical: codes of one length are consecutive in symbol order, so the lengths define it.
const HUFFMAN_LENGTHS: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28,
    28, 28, 28, 28, 28, 28, 28, 28, 6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5,
    5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, 15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6,
    6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22, 22, 23, 22,
    23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22,
    21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20,
    22, 22, 22, 23, 22, 22, 23, 26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19,
    21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22,
    22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, 30,
];

/// The canonical decoding tables: symbols sorted by (length, symbol); for each length, the
/// first code and the index of its first symbol.
struct Canonical {
    symbols: [u16; 257],
    first_code: [u32; 31],
    first_index: [u16; 31],
    count: [u16; 31],
}

const fn canonical() -> Canonical {
    let mut c = Canonical {
        symbols: [0; 257],
        first_code: [0; 31],
        first_index: [0; 31],
        count: [0; 31],
    };
    let mut n = 0usize;
    let mut code: u32 = 0;
    let mut len = 1usize;
    while len <= 30 {
        c.first_code[len] = code;
        c.first_index[len] = n as u16;
        let mut sym = 0usize;
        while sym < 257 {
            if HUFFMAN_LENGTHS[sym] as usize == len {
                c.symbols[n] = sym as u16;
                n += 1;
                c.count[len] += 1;
                code += 1;
            }
            sym += 1;
        }
        code <<= 1;
        len += 1;
    }
    assert!(n == 257, "every symbol has a length");
    c
}

static CANONICAL: Canonical = canonical();

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HpackError {
    /// The block ended inside a field (it was not captured completely).
    Truncated,
    /// Invalid encoding (bad index, bad Huffman padding, integer overflow).
    Invalid,
}

/// Decodes a Huffman-coded string into `out` (at most `max` bytes are kept).
pub fn huffman_decode(input: &[u8], out: &mut Vec<u8>, max: usize) -> Result<(), HpackError> {
    let t = &CANONICAL;
    let mut code: u32 = 0;
    let mut len = 0usize;
    for &byte in input {
        for bit in (0..8).rev() {
            code = (code << 1) | ((byte >> bit) & 1) as u32;
            len += 1;
            let offset = code.wrapping_sub(t.first_code[len]);
            if offset < t.count[len] as u32 {
                let sym = t.symbols[t.first_index[len] as usize + offset as usize];
                if sym == 256 {
                    return Err(HpackError::Invalid); // EOS inside a string
                }
                if out.len() < max {
                    out.push(sym as u8);
                }
                code = 0;
                len = 0;
            } else if len >= 30 {
                return Err(HpackError::Invalid);
            }
        }
    }
    // padding: fewer than 8 bits, all ones (a prefix of EOS)
    if len > 7 || code != (1u32 << len) - 1 {
        return Err(HpackError::Invalid);
    }
    Ok(())
}

/// An integer with an `n`-bit prefix at `b[*i]`.
fn integer(b: &[u8], i: &mut usize, n: u8) -> Result<u64, HpackError> {
    let first = *b.get(*i).ok_or(HpackError::Truncated)?;
    *i += 1;
    let max = (1u64 << n) - 1;
    let mut v = first as u64 & max;
    if v < max {
        return Ok(v);
    }
    let mut shift = 0;
    loop {
        let byte = *b.get(*i).ok_or(HpackError::Truncated)?;
        *i += 1;
        if shift > 28 {
            return Err(HpackError::Invalid);
        }
        v += ((byte & 0x7f) as u64) << shift;
        shift += 7;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
}

/// One decoded header field; `None` parts refer to table entries that are not known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field<'a> {
    pub name: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
}

/// A table entry's name and value (None: not known).
type NameValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

#[derive(Debug)]
struct Entry {
    name: Box<[u8]>,
    value: Box<[u8]>,
}

impl Entry {
    fn size(&self) -> usize {
        self.name.len() + self.value.len() + 32
    }
}

/// One direction's decoding context.
#[derive(Debug)]
pub struct Decoder {
    /// Newest first.
    table: VecDeque<Entry>,
    size: usize,
    max_size: usize,
    /// Every entry of the peer's table is known.
    complete: bool,
    name_buf: Vec<u8>,
    value_buf: Vec<u8>,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

enum Str<'a> {
    Raw(&'a [u8]),
    Decoded,
}

impl Decoder {
    pub fn new() -> Self {
        Decoder {
            table: VecDeque::new(),
            size: 0,
            max_size: 4096,
            complete: true,
            name_buf: Vec::new(),
            value_buf: Vec::new(),
        }
    }

    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// Entries inserted before now are unknown (the connection was joined mid-way, or a header
    /// block was missed).
    pub fn forget(&mut self) {
        self.table.clear();
        self.size = 0;
        self.complete = false;
    }

    fn evict_to(&mut self, limit: usize) {
        while self.size > limit {
            match self.table.pop_back() {
                Some(e) => self.size -= e.size(),
                None => {
                    self.size = 0;
                    break;
                }
            }
        }
    }

    fn insert(&mut self, name: &[u8], value: &[u8]) {
        let e = Entry {
            name: name.into(),
            value: value.into(),
        };
        let s = e.size();
        if s > self.max_size {
            self.table.clear();
            self.size = 0;
            self.complete = true; // the whole table was evicted: it is known again (empty)
            return;
        }
        self.evict_to(self.max_size - s);
        self.size += s;
        self.table.push_front(e);
    }

    fn lookup(&self, index: u64) -> Result<NameValue<'_>, HpackError> {
        match index {
            0 => Err(HpackError::Invalid),
            1..=61 => {
                let (n, v) = STATIC[index as usize - 1];
                Ok((Some(n.as_bytes()), Some(v.as_bytes())))
            }
            _ => match self.table.get((index - 62) as usize) {
                Some(e) => Ok((Some(&e.name), Some(&e.value))),
                None if !self.complete => Ok((None, None)),
                None => Err(HpackError::Invalid),
            },
        }
    }

    /// A string literal at `b[*i]`: raw bytes or Huffman-decoded into `buf`.
    fn string<'b>(b: &'b [u8], i: &mut usize, buf: &mut Vec<u8>) -> Result<Str<'b>, HpackError> {
        let huffman = b.get(*i).ok_or(HpackError::Truncated)? & 0x80 != 0;
        let len = integer(b, i, 7)?;
        let end = i
            .checked_add(usize::try_from(len).map_err(|_| HpackError::Invalid)?)
            .ok_or(HpackError::Invalid)?;
        let raw = b.get(*i..end).ok_or(HpackError::Truncated)?;
        *i = end;
        if huffman {
            buf.clear();
            huffman_decode(raw, buf, MAX_STRING)?;
            Ok(Str::Decoded)
        } else {
            Ok(Str::Raw(&raw[..raw.len().min(MAX_STRING)]))
        }
    }

    /// Decodes a header block (or the captured prefix of one: `complete = false`), calling
    /// `on_field` for each field. After an incomplete block the table is [`Decoder::forget`]n.
    pub fn decode(
        &mut self,
        block: &[u8],
        complete: bool,
        mut on_field: impl FnMut(Field<'_>),
    ) -> Result<(), HpackError> {
        let r = self.decode_inner(block, &mut on_field);
        match r {
            Err(HpackError::Truncated) if !complete => {
                self.forget();
                Ok(())
            }
            Ok(()) if !complete => {
                self.forget();
                Ok(())
            }
            Err(e) => {
                self.forget();
                Err(e)
            }
            Ok(()) => Ok(()),
        }
    }

    fn decode_inner(
        &mut self,
        b: &[u8],
        on_field: &mut dyn FnMut(Field<'_>),
    ) -> Result<(), HpackError> {
        let mut i = 0;
        let mut name_buf = std::mem::take(&mut self.name_buf);
        let mut value_buf = std::mem::take(&mut self.value_buf);
        let r = (|| {
            while i < b.len() {
                let c = b[i];
                if c & 0x80 != 0 {
                    let idx = integer(b, &mut i, 7)?;
                    let (n, v) = self.lookup(idx)?;
                    on_field(Field { name: n, value: v });
                } else if c & 0xe0 == 0x20 {
                    let size = integer(b, &mut i, 5)? as usize;
                    if size > MAX_TABLE_SIZE {
                        return Err(HpackError::Invalid);
                    }
                    self.max_size = size;
                    self.evict_to(size);
                    if size == 0 {
                        self.complete = true;
                    }
                } else {
                    let indexing = c & 0xc0 == 0x40;
                    let prefix = if indexing { 6 } else { 4 };
                    let idx = integer(b, &mut i, prefix)?;
                    let name_known: Option<&[u8]>;
                    let name_src;
                    if idx == 0 {
                        name_src = Self::string(b, &mut i, &mut name_buf)?;
                        name_known = None;
                    } else {
                        name_src = Str::Raw(&[]);
                        let (n, _) = self.lookup(idx)?;
                        name_buf.clear();
                        if let Some(n) = n {
                            name_buf.extend_from_slice(n);
                        }
                        name_known = n.map(|_| &[][..]);
                    }
                    let value_src = Self::string(b, &mut i, &mut value_buf)?;
                    let name: Option<&[u8]> = match (&name_src, idx) {
                        (Str::Raw(r), 0) => Some(r),
                        (Str::Decoded, 0) => Some(&name_buf),
                        _ => name_known.map(|_| &name_buf[..]),
                    };
                    let value: &[u8] = match &value_src {
                        Str::Raw(r) => r,
                        Str::Decoded => &value_buf,
                    };
                    on_field(Field {
                        name,
                        value: Some(value),
                    });
                    if indexing {
                        match name {
                            Some(n) => {
                                let (n, v) = (n.to_vec(), value.to_vec());
                                self.insert(&n, &v);
                            }
                            None => self.forget(), // an entry of unknown size
                        }
                    }
                }
            }
            Ok(())
        })();
        self.name_buf = name_buf;
        self.value_buf = value_buf;
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn fields(d: &mut Decoder, block: &[u8]) -> Vec<(String, String)> {
        let mut v = Vec::new();
        d.decode(block, true, |f| {
            let s = |x: Option<&[u8]>| {
                x.map(|x| String::from_utf8_lossy(x).into_owned())
                    .unwrap_or_else(|| "?".into())
            };
            v.push((s(f.name), s(f.value)));
        })
        .unwrap();
        v
    }

    #[test]
    fn huffman_code_is_the_rfc_code() {
        // RFC 7541 C.4.1
        let mut out = Vec::new();
        huffman_decode(&hex("f1e3 c2e5 f23a 6ba0 ab90 f4ff"), &mut out, 100).unwrap();
        assert_eq!(out, b"www.example.com");
        out.clear();
        huffman_decode(&hex("a8eb 1064 9cbf"), &mut out, 100).unwrap();
        assert_eq!(out, b"no-cache");
        // EOS is a 30-bit all-ones code; padding longer than 7 bits is invalid
        assert_eq!(
            huffman_decode(&[0xff, 0xff, 0xff, 0xff], &mut out, 100),
            Err(HpackError::Invalid)
        );
        // the Kraft sum of a complete prefix code is exactly 1
        let kraft: f64 = HUFFMAN_LENGTHS
            .iter()
            .map(|&l| 2f64.powi(-(l as i32)))
            .sum();
        assert!((kraft - 1.0).abs() < 1e-12);
    }

    #[test]
    fn rfc_c3_requests_without_huffman() {
        let mut d = Decoder::new();
        let f = fields(
            &mut d,
            &hex("8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d"),
        );
        assert_eq!(f[3], (":authority".into(), "www.example.com".into()));
        assert_eq!(d.size, 57);
        let f = fields(&mut d, &hex("8286 84be 5808 6e6f 2d63 6163 6865"));
        assert_eq!(f[3], (":authority".into(), "www.example.com".into()));
        assert_eq!(f[4], ("cache-control".into(), "no-cache".into()));
        let f = fields(
            &mut d,
            &hex("8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65"),
        );
        assert_eq!(f[4], ("custom-key".into(), "custom-value".into()));
        assert_eq!(f[2], (":path".into(), "/index.html".into()));
        assert_eq!(d.size, 164);
    }

    #[test]
    fn rfc_c6_responses_with_huffman_and_eviction() {
        let mut d = Decoder::new();
        d.max_size = 256;
        let f = fields(&mut d, &hex("4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3"));
        assert_eq!(f[0], (":status".into(), "302".into()));
        assert_eq!(f[3], ("location".into(), "https://www.example.com".into()));
        assert_eq!(d.size, 222);
        let f = fields(&mut d, &hex("4883 640e ffc1 c0bf"));
        assert_eq!(f[0], (":status".into(), "307".into()));
        assert_eq!(f[1], ("cache-control".into(), "private".into()));
        assert_eq!(d.size, 222);
        assert_eq!(d.table.len(), 4);
    }

    #[test]
    fn joined_mid_way_marks_unknown_entries() {
        let mut d = Decoder::new();
        d.forget();
        // indexed 62 (unknown), then a literal with indexing, then 62 = that literal
        let block = [0xbe, 0x40, 0x01, b'x', 0x01, b'y', 0xbe];
        let f = fields(&mut d, &block);
        assert_eq!(f[0], ("?".into(), "?".into()));
        assert_eq!(f[2], ("x".into(), "y".into()));
        // a truncated block: what was decoded counts, the table is forgotten after
        let mut v = 0;
        d.decode(&[0x82, 0x40, 0x01], false, |_| v += 1).unwrap();
        assert_eq!(v, 1);
        assert!(d.table.is_empty() && !d.is_complete());
        // a size update to 0 makes the table known again
        d.decode(&[0x20], true, |_| {}).unwrap();
        assert!(d.is_complete());
    }
}
