//! Length-prefixed messages cut out of one direction's segments.
//!
//! A message may start in one segment and end several segments later; only its captured
//! prefix is kept (up to a fixed cap), and its size always comes from its length field, so a
//! large message costs a few counters however much of it was captured. When a message header
//! falls beyond a segment's captured prefix the direction is lost until a later segment starts.

use super::Segment;

/// What the header seen so far says about the message's length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame {
    /// At least this many header bytes are needed.
    Need(usize),
    /// The whole message (header included) is this long.
    Len(u64),
    /// Not a valid header.
    Bad,
}

/// A complete message: its captured prefix and its true length.
#[derive(Clone, Copy, Debug)]
pub struct Msg<'a> {
    /// The message's first bytes (header included), as many as were captured and kept.
    pub data: &'a [u8],
    /// The message's length from its header.
    pub len: u64,
    /// `data` holds the whole message.
    pub complete: bool,
    /// Start of the segment with its first byte, end of the segment with its last.
    pub start_ns: u64,
    pub end_ns: u64,
}

/// Why [`Framer::feed`] stopped early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeedError<E> {
    /// The length function rejected a header.
    Bad,
    /// The message callback failed.
    Callback(E),
}

/// One direction's framing state.
#[derive(Debug)]
pub struct Framer {
    /// Captured prefix of the open message.
    buf: Vec<u8>,
    /// Length of the open message, once its header is complete.
    len: Option<u64>,
    /// Bytes of the open message seen so far (captured or not).
    seen: u64,
    /// `buf` holds every byte seen so far (no gap in the capture).
    contiguous: bool,
    start_ns: u64,
    cap: usize,
    lost: bool,
    /// Times the framing was lost.
    pub resyncs: u64,
    /// Bytes passed over while lost (from the point of loss to the end of that segment).
    pub unframed: u64,
}

impl Framer {
    /// `cap`: how many bytes of a message spanning segments are kept.
    pub fn new(cap: usize) -> Self {
        Framer {
            buf: Vec::new(),
            len: None,
            seen: 0,
            contiguous: true,
            start_ns: 0,
            cap,
            lost: false,
            resyncs: 0,
            unframed: 0,
        }
    }

    /// At a message boundary (nothing of a message buffered).
    pub fn at_boundary(&self) -> bool {
        self.seen == 0 && !self.lost
    }

    pub fn is_lost(&self) -> bool {
        self.lost
    }

    /// Gives up on the current position: the next segment is read from its start.
    pub fn lose(&mut self) {
        if !self.lost {
            self.resyncs += 1;
        }
        self.reset();
        self.lost = true;
    }

    fn reset(&mut self) {
        self.buf.clear();
        if self.buf.capacity() > 4 * self.cap.max(64) {
            self.buf = Vec::new();
        }
        self.len = None;
        self.seen = 0;
        self.contiguous = true;
    }

    /// Cuts `seg` (from byte `from` on) into messages. `frame` reads a header; `on_msg` gets
    /// each complete message. A lost direction restarts at this segment's first byte.
    pub fn feed<E>(
        &mut self,
        seg: &Segment<'_>,
        from: u64,
        mut frame: impl FnMut(&[u8]) -> Frame,
        mut on_msg: impl FnMut(Msg<'_>) -> Result<(), E>,
    ) -> Result<(), FeedError<E>> {
        let vis = seg.visible();
        let total = seg.total_len;
        let mut pos = from.min(total);
        if self.lost {
            if pos != 0 {
                return Ok(());
            }
            self.reset();
            self.lost = false;
        }
        while pos < total {
            if self.seen == 0 {
                self.start_ns = seg.start_ns;
                // fast path: a whole captured message, no copy
                let p = pos as usize;
                if p < vis.len() {
                    if let Frame::Len(len) = frame(&vis[p..]) {
                        if len == 0 {
                            self.unframed += total - pos;
                            self.lose();
                            return Err(FeedError::Bad);
                        }
                        if (p as u64).saturating_add(len) <= vis.len() as u64 {
                            let end = p + len as usize;
                            let msg = Msg {
                                data: &vis[p..end],
                                len,
                                complete: true,
                                start_ns: seg.start_ns,
                                end_ns: seg.end_ns,
                            };
                            pos = end as u64;
                            on_msg(msg).map_err(FeedError::Callback)?;
                            continue;
                        }
                    }
                }
            }
            // header
            while self.len.is_none() {
                match frame(&self.buf) {
                    Frame::Len(len) if len >= self.seen && len > 0 => self.len = Some(len),
                    Frame::Need(n) if n > self.buf.len() => {
                        let p = pos as usize;
                        if pos >= total {
                            return Ok(()); // the header continues in the next segment
                        }
                        if p >= vis.len() {
                            self.lose();
                            self.unframed += total - pos;
                            return Ok(());
                        }
                        let take = (n - self.buf.len()).min(vis.len() - p);
                        self.buf.extend_from_slice(&vis[p..p + take]);
                        self.seen += take as u64;
                        pos += take as u64;
                    }
                    _ => {
                        self.unframed += total - pos + self.seen.min(pos);
                        self.lose();
                        return Err(FeedError::Bad);
                    }
                }
            }
            let len = self.len.unwrap_or(0);
            let want = len - self.seen;
            let n = want.min(total - pos);
            if self.contiguous {
                let p = pos as usize;
                let avail = vis.len().saturating_sub(p).min(n as usize);
                let room = self.cap.saturating_sub(self.buf.len());
                let keep = avail.min(room);
                self.buf
                    .extend_from_slice(&vis[p.min(vis.len())..p.min(vis.len()) + keep]);
                if (avail as u64) < n {
                    self.contiguous = false;
                }
            }
            self.seen += n;
            pos += n;
            if self.seen == len {
                let complete = self.contiguous && self.buf.len() as u64 == len;
                let msg = Msg {
                    data: &self.buf,
                    len,
                    complete,
                    start_ns: self.start_ns,
                    end_ns: seg.end_ns,
                };
                let r = on_msg(msg);
                self.reset();
                r.map_err(FeedError::Callback)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::Dir;
    use super::*;

    // [u16 len][payload]
    fn frame(h: &[u8]) -> Frame {
        if h.len() < 2 {
            Frame::Need(2)
        } else {
            Frame::Len(2 + u16::from_be_bytes([h[0], h[1]]) as u64)
        }
    }

    fn seg(data: &[u8], total: u64, t: u64) -> Segment<'_> {
        Segment {
            dir: Dir::ClientToServer,
            data,
            total_len: total,
            start_ns: t,
            end_ns: t + 1,
        }
    }

    fn collect(f: &mut Framer, s: &Segment<'_>) -> Vec<(Vec<u8>, u64, bool, u64, u64)> {
        let mut v = Vec::new();
        f.feed::<()>(s, 0, frame, |m| {
            v.push((m.data.to_vec(), m.len, m.complete, m.start_ns, m.end_ns));
            Ok(())
        })
        .unwrap();
        v
    }

    #[test]
    fn several_per_segment_and_split_across_segments() {
        let mut f = Framer::new(64);
        let v = collect(&mut f, &seg(b"\0\x01a\0\x02bc\0", 8, 10));
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].0, b"\0\x02bc");
        // header split: the second byte of the length arrives next
        let v = collect(&mut f, &seg(b"\x03xyz", 4, 20));
        assert_eq!(v, vec![(b"\0\x03xyz".to_vec(), 5, true, 10, 21)]);
        assert!(f.at_boundary());
    }

    #[test]
    fn skips_uncaptured_bodies_by_length() {
        let mut f = Framer::new(8);
        // 1000-byte message, 4 bytes captured; then 600 more bytes none captured, then 102 more
        // (the last 100 and the next message, visible)
        let v = collect(&mut f, &seg(b"\x03\xe6ab", 300, 1));
        assert!(v.is_empty());
        let v = collect(&mut f, &seg(b"", 600, 2));
        assert!(v.is_empty());
        let mut third = vec![b'z'; 100];
        third.extend_from_slice(b"\0\0");
        let v = collect(&mut f, &seg(&third, 102, 3));
        assert_eq!(v.len(), 2);
        assert_eq!((v[0].1, v[0].2, v[0].0.len()), (1000, false, 4));
        assert_eq!(v[1].1, 2);
    }

    #[test]
    fn invisible_header_loses_until_next_segment() {
        let mut f = Framer::new(8);
        // first message visible, second header not captured
        let v = collect(&mut f, &seg(b"\0\x01a", 10, 1));
        assert_eq!(v.len(), 1);
        assert!(f.is_lost());
        let v = collect(&mut f, &seg(b"\0\x01b", 3, 2));
        assert_eq!(v.len(), 1);
        assert_eq!(f.resyncs, 1);
    }
}
