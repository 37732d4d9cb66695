//! Length tracking of a `Transfer-Encoding: chunked` body across captured events.
//!
//! The tracker is fed the bytes the capture saw and told how many it did not see. Chunk data
//! can be skipped blind (its length is known); a chunk-size line that falls into unseen bytes
//! cannot, and the tracker then reports itself lost.

/// Longest chunk-size line (hex digits + extensions) accepted.
const MAX_SIZE_LINE: u32 = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Reading hex digits of a chunk size.
    Size {
        value: u64,
        digits: u8,
    },
    /// After the size: extensions until LF.
    SizeExt {
        value: u64,
    },
    /// Chunk data bytes still to come.
    Data(u64),
    /// The CRLF after chunk data.
    DataEnd,
    /// Start of a trailer line (or the final blank line).
    TrailerStart,
    /// Inside a trailer line.
    Trailer,
    Done,
    /// Malformed input or a size line that was not captured.
    Lost,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunked {
    state: State,
    /// Sum of the chunk sizes: the body's decoded length.
    pub body_bytes: u64,
    line_len: u32,
}

impl Default for Chunked {
    fn default() -> Self {
        Chunked {
            state: State::Size {
                value: 0,
                digits: 0,
            },
            body_bytes: 0,
            line_len: 0,
        }
    }
}

impl Chunked {
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }
    pub fn is_lost(&self) -> bool {
        self.state == State::Lost
    }

    /// Consumes visible bytes; returns how many belong to the body (up to and including the
    /// final blank line). Stops at the end of the body or when lost.
    pub fn feed(&mut self, buf: &[u8]) -> usize {
        let mut i = 0;
        while i < buf.len() {
            let c = buf[i];
            match self.state {
                State::Done | State::Lost => return i,
                State::Data(n) => {
                    let take = n.min((buf.len() - i) as u64);
                    i += take as usize;
                    self.state = if take == n {
                        State::DataEnd
                    } else {
                        State::Data(n - take)
                    };
                    self.line_len = 0;
                    continue;
                }
                State::Size { value, digits } => {
                    if let Some(d) = hex(c) {
                        if digits >= 15 {
                            self.state = State::Lost;
                            return i;
                        }
                        self.state = State::Size {
                            value: value << 4 | d as u64,
                            digits: digits + 1,
                        };
                    } else if digits == 0 {
                        self.state = State::Lost;
                        return i;
                    } else if c == b'\n' {
                        self.end_size_line(value);
                    } else {
                        self.state = State::SizeExt { value };
                    }
                }
                State::SizeExt { value } => {
                    if c == b'\n' {
                        self.end_size_line(value);
                    }
                }
                State::DataEnd => {
                    if c == b'\n' {
                        self.state = State::Size {
                            value: 0,
                            digits: 0,
                        };
                        self.line_len = 0;
                    } else if c != b'\r' {
                        self.state = State::Lost;
                        return i;
                    }
                }
                State::TrailerStart => {
                    if c == b'\n' {
                        self.state = State::Done;
                        return i + 1;
                    } else if c != b'\r' {
                        self.state = State::Trailer;
                    }
                }
                State::Trailer => {
                    if c == b'\n' {
                        self.state = State::TrailerStart;
                        self.line_len = 0;
                    }
                }
            }
            i += 1;
            self.line_len += 1;
            if self.line_len > MAX_SIZE_LINE {
                self.state = State::Lost;
                return i;
            }
        }
        i
    }

    fn end_size_line(&mut self, value: u64) {
        self.line_len = 0;
        if value == 0 {
            self.state = State::TrailerStart;
        } else {
            self.body_bytes = self.body_bytes.saturating_add(value);
            self.state = State::Data(value);
        }
    }

    /// Accounts for `n` bytes the capture did not see. Returns how many were skipped: all of
    /// them while inside chunk data; fewer (and the tracker is lost) when unseen bytes run
    /// past the data into a size line.
    pub fn skip(&mut self, n: u64) -> u64 {
        match self.state {
            State::Data(rem) if rem >= n => {
                self.state = if rem == n {
                    State::DataEnd
                } else {
                    State::Data(rem - n)
                };
                n
            }
            State::Data(_) | State::DataEnd => {
                let rem = match self.state {
                    State::Data(r) => r,
                    _ => 0,
                };
                // the data, then its CRLF (assumed well-formed); a size line after it is
                // unseen and cannot be skipped
                let after = n - rem;
                if after <= 2 {
                    self.state = if after == 2 {
                        State::Size {
                            value: 0,
                            digits: 0,
                        }
                    } else {
                        State::DataEnd
                    };
                    self.line_len = 0;
                    n
                } else {
                    self.state = State::Lost;
                    rem + 2
                }
            }
            State::Done => 0,
            _ => {
                self.state = State::Lost;
                0
            }
        }
    }
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-T: 1\r\n\r\nNEXT";

    #[test]
    fn whole_body() {
        let mut c = Chunked::default();
        let n = c.feed(BODY);
        assert!(c.is_done());
        assert_eq!(&BODY[n..], b"NEXT");
        assert_eq!(c.body_bytes, 11);
    }

    #[test]
    fn every_split() {
        for split in 0..BODY.len() - 4 {
            let mut c = Chunked::default();
            let a = c.feed(&BODY[..split]);
            assert_eq!(a, split);
            let b = c.feed(&BODY[split..]);
            assert!(c.is_done(), "split {split}");
            assert_eq!(a + b, BODY.len() - 4);
        }
    }

    #[test]
    fn blind_data() {
        let mut c = Chunked::default();
        assert_eq!(c.feed(b"100000\r\nab"), 10);
        assert_eq!(c.skip(0x100000 - 2), 0x100000 - 2);
        c.feed(b"\r\n0\r\n\r\n");
        assert!(c.is_done());
        assert_eq!(c.body_bytes, 0x100000);
        let mut c = Chunked::default();
        c.feed(b"2\r\nab");
        assert_eq!(c.skip(2), 2);
        assert!(!c.is_lost());
        assert_eq!(c.feed(b"0\r\n\r\n"), 5);
        assert!(c.is_done());
        let mut c = Chunked::default();
        c.feed(b"2\r\nab");
        assert_eq!(c.skip(10), 2);
        assert!(c.is_lost());
    }

    #[test]
    fn malformed() {
        let mut c = Chunked::default();
        c.feed(b"zz\r\n");
        assert!(c.is_lost());
        let mut c = Chunked::default();
        c.feed(b"fffffffffffffffff\r\n");
        assert!(c.is_lost());
    }
}
