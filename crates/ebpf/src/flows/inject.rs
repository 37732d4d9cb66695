//! Test and benchmark helpers that feed the maps and the programs as the kernel would: synthetic
//! flows written straight into the hash map, a packet run through a program. Hidden from the
//! documentation; not part of the stable API.

use std::os::fd::AsFd;

use super::{
    evict::EVICT_BATCH, ipproto, map_err, missing, FlowCapture, FlowKey, FlowRecord, FlowSource,
    FlowStats, FAMILY_IPV4, MAP_FLOWS, MAP_SKDIRS, PROG_SOCKET, PROG_TC_INGRESS,
};
use crate::load::EbpfError;
use crate::sys::bpf::{prog_test_run, update_batch};

impl FlowCapture {
    /// Test/benchmark helper: inserts `n` synthetic flows (one CPU's value set) into the flows
    /// map with batched updates, as if the kernel had seen them. Not part of the stable API.
    #[doc(hidden)]
    pub fn fill_synthetic(&mut self, n: u32) -> Result<(), EbpfError> {
        let records: Vec<FlowRecord> = (0..n)
            .map(|i| FlowRecord {
                key: FlowKey {
                    src_addr: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1],
                    dst_addr: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 2],
                    src_port: i as u16,
                    dst_port: (i >> 16) as u16,
                    protocol: ipproto::UDP,
                    family: FAMILY_IPV4,
                    direction: 1,
                    _pad: 0,
                    ifindex: 1,
                },
                bytes: 100,
                packets: 1,
                first_ns: 1,
                last_ns: 2,
                tcp_flags: 0,
            })
            .collect();
        self.fill(&records)
    }

    /// Test/benchmark helper: writes `records` into the current epoch's hash map (as CPU 0's
    /// values) with batched updates, as if the kernel had counted them. Not part of the stable
    /// API.
    #[doc(hidden)]
    pub fn fill(&mut self, records: &[FlowRecord]) -> Result<(), EbpfError> {
        let parity = (self.epoch & 1) as usize;
        let fd = Self::map_fd(&self.flows[parity]);
        let nr_cpus = self.nr_cpus;
        for chunk in records.chunks(EVICT_BATCH) {
            let keys: Vec<FlowKey> = chunk.iter().map(|r| r.key).collect();
            let mut values = vec![FlowStats::default(); chunk.len() * nr_cpus];
            for (v, r) in values.iter_mut().step_by(nr_cpus).zip(chunk) {
                *v = FlowStats {
                    bytes: r.bytes,
                    packets: r.packets,
                    first_ns: r.first_ns,
                    last_ns: r.last_ns,
                    tcp_flags: r.tcp_flags,
                    _pad: [0; 6],
                };
            }
            // SAFETY: the flows maps' keys are FlowKeys and their values one FlowStats per CPU,
            // `nr_cpus` per key: `keys` holds `chunk.len()` keys, `values` `nr_cpus` times more.
            unsafe { update_batch(fd, &keys, &values) }.map_err(|e| EbpfError::Map {
                map: MAP_FLOWS[parity],
                cause: format!("BPF_MAP_UPDATE_BATCH: {e}"),
            })?;
        }
        Ok(())
    }

    /// Test helper: runs the ingress program `repeat` times on `packet` (an Ethernet frame) with
    /// `BPF_PROG_TEST_RUN`, which hands it the packet as received by the loopback interface of
    /// the calling thread's network namespace (ifindex 1). `tapline_tc_in` sees the frame from
    /// its Ethernet header; the socket filter sees it from its IP header (`skb->len` 14 bytes
    /// shorter), as on an L3 device, and this helper enables its ingress accounting of ifindex 1.
    /// Not part of the stable API.
    #[doc(hidden)]
    pub fn test_run(&mut self, packet: &[u8], repeat: u32) -> Result<(), EbpfError> {
        let name = match self.source {
            FlowSource::Tc => PROG_TC_INGRESS,
            FlowSource::SocketFilter => {
                if let Some(m) = self.skdirs.as_mut() {
                    let old = m.get(&1, 0).unwrap_or(0);
                    m.insert(1, old | 1, 0).map_err(map_err(MAP_SKDIRS))?;
                }
                PROG_SOCKET
            }
        };
        let prog = self
            .ebpf
            .program(name)
            .ok_or_else(|| missing(format!("no program named {name}")))?;
        let fd = prog
            .fd()
            .map_err(|e| missing(format!("program {name}: {e}")))?;
        prog_test_run(fd.as_fd(), packet, repeat).map_err(|e| EbpfError::Attach {
            program: name.to_owned(),
            target: "BPF_PROG_TEST_RUN".to_owned(),
            hint: None,
            cause: e.to_string(),
        })?;
        Ok(())
    }
}
