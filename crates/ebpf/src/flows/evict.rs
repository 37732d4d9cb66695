//! Eviction: reading every flow counted since the last eviction and starting a new epoch (see
//! "Epochs" in the module documentation), and the record it returns per flow.

use std::os::fd::{AsFd, BorrowedFd};

use aya::maps::Map;

use super::{map_err, FlowCapture, FlowKey, FlowSlot, FlowStats, MAP_CACHE, MAP_EPOCH, MAP_FLOWS};
use crate::load::EbpfError;
use crate::sys::bpf::{lookup_batch, BatchLookup, GracePeriod};

/// Entries per batched lookup-and-delete syscall.
pub(super) const EVICT_BATCH: usize = 4096;

/// One flow's counters since the last eviction (or one overflowed packet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowRecord {
    /// The flow.
    pub key: FlowKey,
    /// Bytes (L2 frame lengths), already scaled by the sampling rate.
    pub bytes: u64,
    /// Packets (skbs), already scaled by the sampling rate.
    pub packets: u64,
    /// Monotonic ns of the first packet.
    pub first_ns: u64,
    /// Monotonic ns of the last packet.
    pub last_ns: u64,
    /// OR of the TCP flags (FIN=0x01 SYN=0x02 RST=0x04 PSH=0x08 ACK=0x10 URG=0x20 ECE=0x40
    /// CWR=0x80 NS=0x100).
    pub tcp_flags: u16,
}

impl FlowRecord {
    /// Merges the per-CPU values of one flow: sums bytes/packets, min first, max last, OR flags.
    /// CPUs that saw no packet are ignored. `None` if no CPU saw a packet.
    pub fn from_per_cpu(key: FlowKey, values: &[FlowStats]) -> Option<Self> {
        let mut rec: Option<Self> = None;
        for v in values.iter().filter(|v| v.packets != 0) {
            match &mut rec {
                None => rec = Some(Self::from_stats(key, v)),
                Some(r) => r.merge_stats(v),
            }
        }
        rec
    }

    /// One CPU's counters of `key` as a record.
    pub(crate) fn from_stats(key: FlowKey, v: &FlowStats) -> Self {
        Self {
            key,
            bytes: v.bytes,
            packets: v.packets,
            first_ns: v.first_ns,
            last_ns: v.last_ns,
            tcp_flags: v.tcp_flags,
        }
    }

    fn merge_stats(&mut self, v: &FlowStats) {
        self.bytes += v.bytes;
        self.packets += v.packets;
        self.first_ns = self.first_ns.min(v.first_ns);
        self.last_ns = self.last_ns.max(v.last_ns);
        self.tcp_flags |= v.tcp_flags;
    }

    /// Adds `other` (same flow) to this record.
    pub fn merge(&mut self, other: &FlowRecord) {
        self.bytes += other.bytes;
        self.packets += other.packets;
        self.first_ns = self.first_ns.min(other.first_ns);
        self.last_ns = self.last_ns.max(other.last_ns);
        self.tcp_flags |= other.tcp_flags;
    }
}

impl FlowCapture {
    /// The fd of a per-CPU map (the only kinds `load` keeps as an untyped [`Map`]).
    pub(super) fn map_fd(map: &Map) -> BorrowedFd<'_> {
        match map {
            Map::PerCpuHashMap(data) | Map::PerCpuArray(data) => data.fd().as_fd(),
            _ => unreachable!("checked at load"),
        }
    }

    /// Reads every flow counted since the last eviction and starts a new epoch: the closed
    /// epoch's cache slots (merged across CPUs) and hash-map entries (read and deleted with
    /// batched `BPF_MAP_LOOKUP_AND_DELETE_BATCH`, 4096 entries per syscall), one record per flow.
    /// Exact: no packet is lost or counted twice, whatever the kernel does meanwhile (see the
    /// module documentation); blocks for about one RCU grace period.
    pub fn evict(&mut self) -> Result<Vec<FlowRecord>, EbpfError> {
        let mut out = Vec::new();
        self.evict_into(&mut out)?;
        Ok(out)
    }

    /// Like [`evict`](Self::evict), appending to `out`; returns how many records were added.
    pub fn evict_into(&mut self, out: &mut Vec<FlowRecord>) -> Result<usize, EbpfError> {
        let start = out.len();
        let closed = self.epoch;
        let next = closed.wrapping_add(1);
        self.epoch_map.set(0, next, 0).map_err(map_err(MAP_EPOCH))?;
        self.epoch = next;
        // From here on no program run can still be using the closed epoch.
        self.grace.wait().map_err(|e| EbpfError::Map {
            map: GracePeriod::MAP_NAME,
            cause: e.to_string(),
        })?;
        self.merge.clear();
        self.read_cache(closed, out)?;
        self.drain_flows((closed & 1) as usize, out)?;
        self.merge.clear();
        Ok(out.len() - start)
    }

    /// Appends the flows of the cache slots tagged `epoch` (that half of the cache), one record
    /// per flow, and indexes them in `self.merge`.
    fn read_cache(&mut self, epoch: u32, out: &mut Vec<FlowRecord>) -> Result<(), EbpfError> {
        let slots = self.cache_slots as usize;
        let nr_cpus = self.nr_cpus;
        let first = (epoch & 1) * self.cache_slots;
        self.slot_keys.resize(slots, 0);
        self.slot_values
            .resize(slots * nr_cpus, FlowSlot::default());
        // The batch starts after `in_batch`: the key before the half (none for the first half).
        let before = first.wrapping_sub(1);
        // SAFETY: the cache's keys are u32 slot numbers and its values one FlowSlot per CPU
        // (88 bytes, a multiple of 8), `nr_cpus` per key, as the buffers are sized above.
        let (res, count) = unsafe {
            lookup_batch(
                BatchLookup::Read,
                Self::map_fd(&self.cache),
                (first > 0).then_some(before),
                &mut self.slot_keys,
                &mut self.slot_values,
            )
        };
        match res {
            Err(e) if e.raw_os_error() != Some(libc::ENOENT) => {
                return Err(EbpfError::Map {
                    map: MAP_CACHE,
                    cause: format!("BPF_MAP_LOOKUP_BATCH: {e}"),
                })
            }
            _ if count != slots => {
                return Err(EbpfError::Map {
                    map: MAP_CACHE,
                    cause: format!("BPF_MAP_LOOKUP_BATCH returned {count} of {slots} slots"),
                })
            }
            _ => {}
        }
        let live = self
            .slot_values
            .iter()
            .filter(|v| v.epoch == epoch && v.stats.packets != 0);
        for v in live {
            match self.merge.get(&v.key) {
                Some(&i) => out[i].merge_stats(&v.stats),
                None => {
                    self.merge.insert(v.key, out.len());
                    out.push(FlowRecord::from_stats(v.key, &v.stats));
                }
            }
        }
        Ok(())
    }

    /// Reads and deletes every entry of the hash map `flows[parity]`, merging the per-CPU values
    /// of each flow and, through `self.merge`, the cache records already in `out`.
    fn drain_flows(&mut self, parity: usize, out: &mut Vec<FlowRecord>) -> Result<(), EbpfError> {
        let mut batch = EVICT_BATCH;
        let mut in_batch: Option<u32> = None;
        let nr_cpus = self.nr_cpus;
        loop {
            let fd = Self::map_fd(&self.flows[parity]);
            self.batch_keys.resize(batch, FlowKey::default());
            self.batch_values
                .resize(batch * nr_cpus, FlowStats::default());
            // SAFETY: the flows maps' keys are FlowKeys and their values one FlowStats per CPU
            // (40 bytes, a multiple of 8), `nr_cpus` per key, as the buffers are sized above.
            let (res, count) = unsafe {
                lookup_batch(
                    BatchLookup::ReadAndDelete,
                    fd,
                    in_batch,
                    &mut self.batch_keys,
                    &mut self.batch_values,
                )
            };
            for (i, key) in self.batch_keys[..count].iter().enumerate() {
                let vals = &self.batch_values[i * nr_cpus..(i + 1) * nr_cpus];
                if let Some(rec) = FlowRecord::from_per_cpu(*key, vals) {
                    match self.merge.get(key) {
                        Some(&j) => out[j].merge(&rec),
                        None => out.push(rec),
                    }
                }
            }
            match res {
                Ok(out_batch) => in_batch = Some(out_batch),
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => break,
                // One bucket holds more entries than fit: retry it with a larger buffer.
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) && count == 0 => {
                    batch *= 2;
                    if batch > 1 << 22 {
                        return Err(EbpfError::Map {
                            map: MAP_FLOWS[parity],
                            cause: format!("BPF_MAP_LOOKUP_AND_DELETE_BATCH: {e}"),
                        });
                    }
                }
                Err(e) => {
                    return Err(EbpfError::Map {
                        map: MAP_FLOWS[parity],
                        cause: format!("BPF_MAP_LOOKUP_AND_DELETE_BATCH: {e}"),
                    })
                }
            }
        }
        // Keep the buffers for the next eviction, but not oversized ones.
        if batch > EVICT_BATCH {
            self.batch_keys = Vec::new();
            self.batch_values = Vec::new();
        }
        Ok(())
    }
}
