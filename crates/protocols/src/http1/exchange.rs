//! HTTP/1.x exchanges the kernel framed: the first bytes of the request head and what the
//! kernel counted (status, body sizes, times, how the exchange ended) make one [`Operation`],
//! the same one [`super::Http1Parser`] makes from the calls' bytes.

use crate::*;

use super::captured_headers;
use super::head::{self, Parse, StartLine};

/// How a framed exchange ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// The response's last byte, or a response without a body.
    Complete,
    /// A response without a length, ended by the connection's end.
    Close,
    /// The connection ended before the response's last byte.
    Incomplete,
    /// The connection ended before a response began.
    NoResponse,
    /// The framing was lost during the response: its body so far.
    Unframed,
}

/// What the kernel counted for one exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exchange {
    pub start_ns: u64,
    pub end_ns: u64,
    /// Final response status (0: none).
    pub status: u16,
    pub request_body: u64,
    pub response_body: u64,
    pub end: End,
}

/// The operation of an exchange whose request head begins with `head` (the whole head, or
/// its first bytes). None when `head` does not begin with a request line.
pub fn operation(head: &[u8], x: &Exchange, capture_headers: bool) -> Option<Operation> {
    let h = match head::parse(head) {
        Parse::Complete(h, _) | Parse::Partial(h) => h,
        Parse::NeedMore | Parse::NotHttp => return None,
    };
    let StartLine::Request { method, target, .. } = h.start else {
        return None;
    };
    let mut op = Operation::new(Protocol::Http1, Str::Borrowed(method.as_str()), x.start_ns);
    op.end_ns = x.end_ns.max(x.start_ns);
    op.target = Some(Str::Owned(String::from_utf8_lossy(target).into_owned()));
    op.status = match x.status {
        0 => Status::Unknown,
        code => Status::Http(code),
    };
    op.error = match x.end {
        End::NoResponse => Some(Str::Borrowed(ERROR_NO_RESPONSE)),
        End::Incomplete => Some(Str::Borrowed(ERROR_INCOMPLETE)),
        End::Complete | End::Close | End::Unframed => None,
    };
    op.request_size = x.request_body;
    op.response_size = x.response_body;
    op.traceparent = h.traceparent;
    if capture_headers {
        op.request_headers = captured_headers(&h);
    }
    Some(op)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(end: End, status: u16) -> Exchange {
        Exchange {
            start_ns: 1_000,
            end_ns: 5_000,
            status,
            request_body: 3,
            response_body: 612,
            end,
        }
    }

    /// The operation a framed exchange makes is the one the parser makes from the same bytes.
    #[test]
    fn matches_the_parser() {
        let req = b"POST /items?id=1 HTTP/1.1\r\nHost: a\r\nX-Trace: t\r\nContent-Length: 3\r\n\r\n";
        let framed = operation(req, &exchange(End::Complete, 201), true).unwrap();

        let mut p = super::super::Http1Parser::new(true);
        p.set_requests_dir(Dir::ClientToServer);
        let mut out = Vec::new();
        let mut whole = req.to_vec();
        whole.extend_from_slice(b"abc");
        let resp = b"HTTP/1.1 201 Created\r\nContent-Length: 612\r\n\r\n";
        for (dir, data, total, t) in [
            (Dir::ClientToServer, &whole[..], whole.len(), 1_000),
            (Dir::ServerToClient, &resp[..], resp.len() + 612, 5_000),
        ] {
            let seg = Segment {
                dir,
                data,
                total_len: total as u64,
                start_ns: t,
                end_ns: t,
            };
            p.feed(&seg, &mut out);
        }
        assert_eq!(out, [framed]);
    }

    #[test]
    fn ends_map_to_errors() {
        let req = b"GET / HTTP/1.1\r\n\r\n";
        let op = operation(req, &exchange(End::NoResponse, 0), false).unwrap();
        assert_eq!(op.status, Status::Unknown);
        assert_eq!(op.error.as_deref(), Some(ERROR_NO_RESPONSE));
        let op = operation(req, &exchange(End::Incomplete, 200), false).unwrap();
        assert_eq!(op.error.as_deref(), Some(ERROR_INCOMPLETE));
        for end in [End::Complete, End::Close, End::Unframed] {
            assert_eq!(operation(req, &exchange(end, 200), false).unwrap().error, None);
        }
    }

    /// A head cut by the capture still names the method and target; bytes that are not a
    /// request give nothing.
    #[test]
    fn truncated_and_foreign_heads() {
        let op = operation(b"GET /a/b?c HTTP/1.1\r\nHost: x", &exchange(End::Complete, 200), false)
            .unwrap();
        assert_eq!(op.target.as_deref(), Some("/a/b?c"));
        assert_eq!(op.name.as_ref(), "GET");
        assert!(operation(b"HTTP/1.1 200 OK\r\n\r\n", &exchange(End::Complete, 200), false).is_none());
        assert!(operation(b"\x16\x03\x01", &exchange(End::Complete, 200), false).is_none());
        assert!(operation(b"", &exchange(End::Complete, 200), false).is_none());
    }
}
