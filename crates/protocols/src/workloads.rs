//! Realistic traffic shared by the benchmarks of the parsers and of the `app` receiver.

/// One request and its response on connection `conn`, as the bytes each side wrote.
pub struct Exchange {
    pub conn: u64,
    pub request: Vec<u8>,
    pub response: Vec<u8>,
}

/// HTTP/1.1 on `conns` keep-alive connections, `rounds` writes each way: GETs with
/// browser-like headers and a 1,500-byte JSON response (larger than a 256-byte capture), a POST
/// with a body, a pipelined pair answered 404 then 200, and a chunked 500. Round `r` is on
/// connection `r % conns`; every fourth round carries two exchanges.
///
/// The exchanges are made one at a time, as the iterator is advanced: a caller that copies
/// their captured prefixes and drops each exchange gets its copies allocated in order, next to
/// each other. Were every exchange built first, the copies would be scattered over the holes
/// the freed exchanges leave, and a benchmark walking them would measure memory stalls rather
/// than the code under test (the same instructions ran ~25 % slower).
pub fn http1_mix(rounds: usize, conns: u64) -> impl Iterator<Item = Exchange> {
    (0..rounds).map(move |r| {
        let (request, response) = match r % 4 {
            0 => {
                let req = format!("GET /users/{r}/orders?page=2 HTTP/1.1\r\nHost: shop.local\r\nUser-Agent: Mozilla/5.0\r\nAccept: */*\r\n\r\n");
                let body = 1500;
                let resp = format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {body}\r\n\r\n");
                let mut full = resp.into_bytes();
                full.resize(full.len() + body, b'{');
                (req.into_bytes(), full)
            }
            1 => (
                b"POST /api/items HTTP/1.1\r\nHost: shop.local\r\nContent-Type: application/json\r\nContent-Length: 26\r\n\r\n{\"name\":\"x\",\"price\":12.50}".to_vec(),
                b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}".to_vec(),
            ),
            2 => (
                b"GET /missing HTTP/1.1\r\nHost: shop.local\r\n\r\nGET /api/hello.world HTTP/1.1\r\nHost: shop.local\r\n\r\n".to_vec(),
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".to_vec(),
            ),
            _ => (
                b"GET /boom HTTP/1.1\r\nHost: shop.local\r\n\r\n".to_vec(),
                b"HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nerror\r\n0\r\n\r\n".to_vec(),
            ),
        };
        Exchange {
            conn: r as u64 % conns,
            request,
            response,
        }
    })
}
