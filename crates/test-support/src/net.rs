//! Ports and the smallest HTTP client a test needs to ask a peer something.

use std::fmt::Display;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::poll::eventually;

/// A TCP port on 127.0.0.1 that nothing listens on right now (the kernel's pick).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding 127.0.0.1:0 to find a free port")
        .port()
}

/// Waits until something accepts TCP connections on 127.0.0.1:`port`.
pub fn wait_port(port: u16, within: Duration) {
    eventually(
        &format!("something to listen on 127.0.0.1:{port}"),
        within,
        || TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)),
    );
}

/// A plain HTTP/1.0 GET of `path` (with its query) from `addr`, with extra `headers`;
/// returns the status and the body.
pub fn http_get(
    addr: impl ToSocketAddrs + Display,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<(u16, String)> {
    let target = addr.to_socket_addrs()?.next().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{addr}: no address"),
        )
    })?;
    let mut s = TcpStream::connect_timeout(&target, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    s.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_string()))
}

/// `s` percent-encoded for a URL query (every byte but the unreserved ones).
pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encode_keeps_unreserved_bytes_only() {
        assert_eq!(
            url_encode("sum(rate(x[1m])) by (a.b)"),
            "sum%28rate%28x%5B1m%5D%29%29%20by%20%28a.b%29"
        );
    }

    #[test]
    fn a_free_port_can_be_bound() {
        let port = free_port();
        TcpListener::bind(("127.0.0.1", port)).unwrap();
    }
}
