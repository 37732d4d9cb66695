//! HTTP/1.x message heads: the start line and the few headers that matter for framing and
//! tracing. Pure: works on whatever bytes the capture saw (possibly a prefix of the real
//! head), never panics, never allocates.

/// The request methods tapline recognises. Anything else is not treated as HTTP: a strict
/// list is what keeps body bytes from being mistaken for a request start while resyncing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Connect,
    Options,
    Trace,
    Patch,
}

const METHODS: [(&[u8], Method); 9] = [
    (b"GET", Method::Get),
    (b"HEAD", Method::Head),
    (b"POST", Method::Post),
    (b"PUT", Method::Put),
    (b"DELETE", Method::Delete),
    (b"CONNECT", Method::Connect),
    (b"OPTIONS", Method::Options),
    (b"TRACE", Method::Trace),
    (b"PATCH", Method::Patch),
];

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Connect => "CONNECT",
            Method::Options => "OPTIONS",
            Method::Trace => "TRACE",
            Method::Patch => "PATCH",
        }
    }
    /// The method named by `t` (case-sensitive, as on the wire).
    pub fn from_token(t: &[u8]) -> Option<Method> {
        METHODS.iter().find(|(n, _)| *n == t).map(|(_, m)| *m)
    }
}

/// `HTTP/1.0` or `HTTP/1.1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartLine<'a> {
    Request {
        method: Method,
        target: &'a [u8],
        version: Version,
    },
    Response {
        version: Version,
        status: u16,
    },
}

/// A W3C trace context (`traceparent: 00-<trace id>-<parent id>-<flags>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: [u8; 16],
    pub parent_id: [u8; 8],
    pub flags: u8,
}

impl TraceParent {
    /// Parses the header value; `None` for anything malformed or an all-zero id (the spec
    /// says such a header must be ignored).
    pub fn parse(v: &[u8]) -> Option<TraceParent> {
        let v = trim(v);
        if v.len() < 55 || v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
            return None;
        }
        let version = hex_byte(&v[0..2])?;
        if version == 0xff || (version == 0 && v.len() != 55) {
            return None;
        }
        let mut trace_id = [0u8; 16];
        for (i, b) in trace_id.iter_mut().enumerate() {
            *b = hex_byte(&v[3 + 2 * i..5 + 2 * i])?;
        }
        let mut parent_id = [0u8; 8];
        for (i, b) in parent_id.iter_mut().enumerate() {
            *b = hex_byte(&v[36 + 2 * i..38 + 2 * i])?;
        }
        let flags = hex_byte(&v[53..55])?;
        if trace_id == [0; 16] || parent_id == [0; 8] {
            return None;
        }
        Some(TraceParent {
            trace_id,
            parent_id,
            flags,
        })
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn hex_byte(s: &[u8]) -> Option<u8> {
    Some(hex_digit(*s.first()?)? << 4 | hex_digit(*s.get(1)?)?)
}

/// What the parser learnt from a head (or from the part of it that was captured).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head<'a> {
    pub start: StartLine<'a>,
    pub content_length: Option<u64>,
    /// `Transfer-Encoding` ends in `chunked`.
    pub chunked: bool,
    /// `Connection: close` (or HTTP/1.0 without `keep-alive`).
    pub close: bool,
    pub traceparent: Option<TraceParent>,
    /// The header lines (each ending in CRLF or LF), for callers that capture headers.
    pub header_block: &'a [u8],
}

impl Head<'_> {
    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }
    /// Iterates `(name, value)` over the header lines seen.
    pub fn headers(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.header_block.split(|&c| c == b'\n').filter_map(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let colon = line.iter().position(|&c| c == b':')?;
            Some((&line[..colon], trim(&line[colon + 1..])))
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parse<'a> {
    /// The whole head; the `usize` is its length including the blank line.
    Complete(Head<'a>, usize),
    /// A valid start line and the headers seen so far; the end of the head was not in the
    /// buffer.
    Partial(Head<'a>),
    /// Too short to tell, but could be the beginning of a start line.
    NeedMore,
    /// Does not start with an HTTP/1.x start line.
    NotHttp,
}

/// Longest start line accepted (request targets beyond this are treated as not HTTP when
/// the line's end is visible, and as partial otherwise).
pub const MAX_START_LINE: usize = 8192;

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

fn parse_version(v: &[u8]) -> Option<Version> {
    match v {
        b"HTTP/1.1" => Some(Version::Http11),
        b"HTTP/1.0" => Some(Version::Http10),
        _ => None,
    }
}

/// Whether `buf` (shorter than a full start line) could still become one.
fn could_start(buf: &[u8]) -> bool {
    if buf.is_empty() {
        return true;
    }
    if b"HTTP/1.".starts_with(buf) || buf.starts_with(b"HTTP/1.") {
        return true;
    }
    METHODS.iter().any(|(m, _)| {
        let n = buf.len().min(m.len());
        buf[..n] == m[..n] && (buf.len() <= m.len() || buf[m.len()] == b' ')
    })
}

/// Quick check used while resyncing: does `buf` begin like a request or response start?
pub fn looks_like_start(buf: &[u8]) -> bool {
    !matches!(parse_start(buf), Err(true))
}

/// `Ok((start line, length incl. line end))`; `Err(false)` = need more; `Err(true)` = not HTTP.
fn parse_start(buf: &[u8]) -> Result<(StartLine<'_>, usize), bool> {
    let line_end = memchr::memchr(b'\n', &buf[..buf.len().min(MAX_START_LINE)]);
    let Some(nl) = line_end else {
        // No line end yet: only a plausible prefix keeps us waiting.
        return if buf.len() < MAX_START_LINE && prefix_plausible(buf) {
            Err(false)
        } else {
            Err(true)
        };
    };
    let line = &buf[..nl];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.starts_with(b"HTTP/") {
        // HTTP/1.1 200 OK
        let version = parse_version(line.get(..8).ok_or(true)?).ok_or(true)?;
        let rest = line.get(8..).ok_or(true)?;
        if rest.first() != Some(&b' ') {
            return Err(true);
        }
        let code = rest.get(1..4).ok_or(true)?;
        if !code.iter().all(u8::is_ascii_digit) || rest.get(4).is_some_and(|&c| c != b' ') {
            return Err(true);
        }
        let status =
            (code[0] - b'0') as u16 * 100 + (code[1] - b'0') as u16 * 10 + (code[2] - b'0') as u16;
        if !(100..=599).contains(&status) {
            return Err(true);
        }
        return Ok((StartLine::Response { version, status }, nl + 1));
    }
    let sp1 = line.iter().position(|&c| c == b' ').ok_or(true)?;
    let method = Method::from_token(&line[..sp1]).ok_or(true)?;
    let rest = &line[sp1 + 1..];
    let sp2 = rest.iter().rposition(|&c| c == b' ').ok_or(true)?;
    let target = &rest[..sp2];
    let version = parse_version(&rest[sp2 + 1..]).ok_or(true)?;
    if target.is_empty() || target.iter().any(|&c| c <= b' ' || c == 0x7f) {
        return Err(true);
    }
    Ok((
        StartLine::Request {
            method,
            target,
            version,
        },
        nl + 1,
    ))
}

/// A start line without its end: method + space + a target of printable bytes, or a
/// status line prefix.
fn prefix_plausible(buf: &[u8]) -> bool {
    // a start line's bytes are printable; a CR may end the buffer just before the LF
    let body = buf.strip_suffix(b"\r").unwrap_or(buf);
    let printable = |s: &[u8]| s.iter().all(|&c| (b' '..0x7f).contains(&c) || c == b'\t');
    if buf.starts_with(b"HTTP/") {
        // HTTP/1.1 200 Reason
        let shape = b"HTTP/1.# ### ";
        return body.iter().zip(shape.iter()).all(|(&c, &s)| match s {
            b'#' => c.is_ascii_digit(),
            _ => c == s,
        }) && printable(body);
    }
    could_start(buf) && printable(body)
}

fn eq_ignore_case(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.eq_ignore_ascii_case(y))
}

fn contains_token(v: &[u8], token: &[u8]) -> bool {
    v.split(|&c| c == b',')
        .any(|t| eq_ignore_case(trim(t), token))
}

fn parse_u64(v: &[u8]) -> Option<u64> {
    let v = trim(v);
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0u64, |n, &d| n * 10 + (d - b'0') as u64))
}

/// Parses a head at the start of `buf`.
pub fn parse(buf: &[u8]) -> Parse<'_> {
    let (start, mut pos) = match parse_start(buf) {
        Ok(s) => s,
        Err(false) => return Parse::NeedMore,
        Err(true) => return Parse::NotHttp,
    };
    let version = match start {
        StartLine::Request { version, .. } | StartLine::Response { version, .. } => version,
    };
    let mut head = Head {
        start,
        content_length: None,
        chunked: false,
        close: version == Version::Http10,
        traceparent: None,
        header_block: &[],
    };
    let headers_start = pos;
    loop {
        let rest = &buf[pos..];
        let Some(nl) = memchr::memchr(b'\n', rest) else {
            head.header_block = &buf[headers_start..pos];
            return Parse::Partial(head);
        };
        let line = &rest[..nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            head.header_block = &buf[headers_start..pos];
            return Parse::Complete(head, pos + nl + 1);
        }
        if let Some(colon) = memchr::memchr(b':', line) {
            let name = &line[..colon];
            let value = &line[colon + 1..];
            if eq_ignore_case(name, b"content-length") {
                head.content_length = parse_u64(value);
            } else if eq_ignore_case(name, b"transfer-encoding") {
                let v = trim(value);
                let last = v.rsplit(|&c| c == b',').next().map(trim).unwrap_or(v);
                head.chunked = eq_ignore_case(last, b"chunked");
            } else if eq_ignore_case(name, b"connection") {
                if contains_token(value, b"close") {
                    head.close = true;
                } else if contains_token(value, b"keep-alive") {
                    head.close = false;
                }
            } else if eq_ignore_case(name, b"traceparent") {
                head.traceparent = TraceParent::parse(value);
            }
        }
        pos += nl + 1;
    }
}

/// Strips the query string (and fragment) from a request target; absolute-form targets
/// (`http://host/path`) give their path.
pub fn target_path(target: &[u8]) -> &[u8] {
    let mut t = target;
    if let Some(after) = t
        .strip_prefix(b"http://")
        .or_else(|| t.strip_prefix(b"https://"))
    {
        t = match after.iter().position(|&c| c == b'/') {
            Some(i) => &after[i..],
            None => b"/",
        };
    }
    let end = t
        .iter()
        .position(|&c| c == b'?' || c == b'#')
        .unwrap_or(t.len());
    &t[..end]
}

/// The query string of a target, without the `?`.
pub fn target_query(target: &[u8]) -> Option<&[u8]> {
    let q = target.iter().position(|&c| c == b'?')?;
    let rest = &target[q + 1..];
    let end = rest.iter().position(|&c| c == b'#').unwrap_or(rest.len());
    Some(&rest[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_head() {
        let b = b"POST /users/1?x=2 HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\nhello";
        let Parse::Complete(h, n) = parse(b) else {
            panic!("{:?}", parse(b))
        };
        assert_eq!(&b[n..], b"hello");
        assert_eq!(h.content_length, Some(12));
        assert!(!h.close && !h.chunked);
        let StartLine::Request { method, target, .. } = h.start else {
            panic!()
        };
        assert_eq!(method, Method::Post);
        assert_eq!(target_path(target), b"/users/1");
        assert_eq!(target_query(target), Some(&b"x=2"[..]));
        assert_eq!(h.headers().count(), 2);
    }

    #[test]
    fn response_head_and_framing_headers() {
        let b =
            b"HTTP/1.0 404 Not Found\nTransfer-Encoding: gzip, Chunked\nConnection: Keep-Alive\n\n";
        let Parse::Complete(h, n) = parse(b) else {
            panic!()
        };
        assert_eq!(n, b.len());
        assert_eq!(
            h.start,
            StartLine::Response {
                version: Version::Http10,
                status: 404
            }
        );
        assert!(h.chunked && !h.close);
    }

    #[test]
    fn partial_and_prefixes() {
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Len"),
            Parse::Partial(_)
        ));
        assert_eq!(parse(b"GE"), Parse::NeedMore);
        assert_eq!(parse(b"GET /abc"), Parse::NeedMore);
        assert_eq!(parse(b"HTTP/1.1 2"), Parse::NeedMore);
        assert_eq!(parse(b"HTTP/1.1 200 OK\r"), Parse::NeedMore);
        assert_eq!(parse(b"GET /a HTTP/1.1\r"), Parse::NeedMore);
        assert_eq!(parse(b"HTTP/1.1 2x"), Parse::NotHttp);
        assert_eq!(parse(b""), Parse::NeedMore);
        assert_eq!(parse(b"GOT / HTTP/1.1\r\n"), Parse::NotHttp);
        assert_eq!(parse(b"\x00\x01garbage"), Parse::NotHttp);
        assert_eq!(parse(b"GET / HTTP/2.0\r\n\r\n"), Parse::NotHttp);
        assert_eq!(parse(b"HTTP/1.1 999 x\r\n\r\n"), Parse::NotHttp);
        assert_eq!(parse(b"GETX"), Parse::NotHttp);
    }

    #[test]
    fn traceparent() {
        let v = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let t = TraceParent::parse(v).unwrap();
        assert_eq!(t.trace_id[0], 0x4b);
        assert_eq!(t.parent_id[7], 0xb7);
        assert_eq!(t.flags, 1);
        assert!(
            TraceParent::parse(b"00-00000000000000000000000000000000-00f067aa0ba902b7-01")
                .is_none()
        );
        assert!(
            TraceParent::parse(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7").is_none()
        );
        let b = b"GET / HTTP/1.1\r\ntraceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n\r\n";
        let Parse::Complete(h, _) = parse(b) else {
            panic!()
        };
        assert_eq!(h.traceparent, Some(t));
    }

    #[test]
    fn absolute_target() {
        assert_eq!(target_path(b"http://h:80/a/b?q"), b"/a/b");
        assert_eq!(target_path(b"http://h"), b"/");
        assert_eq!(target_path(b"*"), b"*");
    }
}
