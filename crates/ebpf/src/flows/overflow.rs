//! The overflow path: packets of flows that did not fit in the hash map arrive one record each
//! through the ring buffer; packets that did not fit there either are only counted.

use std::{
    io,
    os::fd::{AsFd, BorrowedFd},
    time::Duration,
};

use super::{FlowCapture, FlowEvent, FlowRecord};

impl FlowCapture {
    /// Appends every record waiting in the overflow ring buffer to `out` (non-blocking); returns
    /// how many were appended. Each record is one packet whose flow did not fit in the map.
    pub fn drain_overflow(&mut self, out: &mut Vec<FlowRecord>) -> usize {
        let mut n = 0;
        while let Some(item) = self.ring.next() {
            let Some(ev) = FlowEvent::read(&item) else {
                continue;
            };
            out.push(FlowRecord::from_stats(ev.key, &ev.stats));
            n += 1;
        }
        n
    }

    /// The ring buffer's fd: becomes readable when overflow records are waiting. Suitable for
    /// epoll / `tokio::io::unix::AsyncFd` (wrap the raw fd in a type implementing `AsRawFd`, keep
    /// this `FlowCapture` alive meanwhile), then call [`drain_overflow`](Self::drain_overflow).
    pub fn overflow_fd(&self) -> BorrowedFd<'_> {
        self.ring.as_fd()
    }

    /// Blocks up to `timeout` until overflow records are waiting; `Ok(true)` if there are.
    pub fn wait_overflow(&self, timeout: Duration) -> io::Result<bool> {
        crate::sys::poll_readable(self.ring.as_fd(), timeout)
    }

    /// Packets that could be neither counted in the map nor sent to the ring buffer, since load.
    pub fn lost_events(&self) -> u64 {
        self.lost
            .get(&0, 0)
            .map(|v| v.iter().copied().fold(0u64, u64::wrapping_add))
            .unwrap_or(0)
    }
}
