//! The `bpf(2)` commands aya does not offer: batched map reads, deletes and updates, running a
//! program on a test packet, the map-in-map update that waits for an RCU grace period, and the
//! ids of the programs attached to an interface's TCX hook (aya's query opens each program by
//! id, which takes `CAP_SYS_ADMIN`).
//!
//! Each command fills the part of `union bpf_attr` it reads; the kernel zero-checks everything
//! after the size it is given, so the attribute structs below stop at their last used field.

use std::{
    io,
    mem::size_of,
    os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd},
};

use aya::Pod;

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
const BPF_MAP_LOOKUP_AND_DELETE_BATCH: libc::c_long = 25;
const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;

/// `bpf(cmd, attr, sizeof attr)`: the return value, or the errno as an error.
///
/// # Safety
/// `attr` must be the attribute block `cmd` expects, and every pointer in it valid for what
/// the kernel reads or writes there.
unsafe fn sys_bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: the kernel reads `size_of::<T>()` bytes of `attr`, which is that large; what the
    // pointers inside it must satisfy is forwarded to the caller.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, size_of::<T>()) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// `union bpf_attr` as used by the `BPF_MAP_*_BATCH` commands.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// Which batched lookup to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BatchLookup {
    /// `BPF_MAP_LOOKUP_BATCH`: read only.
    Read,
    /// `BPF_MAP_LOOKUP_AND_DELETE_BATCH`: read, and delete what was read.
    ReadAndDelete,
}

impl BatchLookup {
    fn command(self) -> libc::c_long {
        match self {
            Self::Read => BPF_MAP_LOOKUP_BATCH,
            Self::ReadAndDelete => BPF_MAP_LOOKUP_AND_DELETE_BATCH,
        }
    }
}

/// One batched lookup of up to `keys.len()` entries of `map`, starting after the batch token
/// `in_batch` (`None`: from the start). Returns the syscall's result (`Ok` with the token to
/// continue from) and how many entries were written to the start of `keys` / `values`. The
/// kernel reports the end of the map as `ENOENT`, possibly with entries written.
///
/// # Safety
/// `map`'s keys must be `K` and its values `V`, with `values.len() / keys.len()` values per
/// key (the number of possible CPUs for per-CPU maps, whose values the kernel rounds up to 8
/// bytes: `V` must be a multiple of 8 bytes there, 1 otherwise). The kernel writes that many
/// bytes without knowing the slices' lengths.
pub(crate) unsafe fn lookup_batch<K: Pod, V: Pod>(
    lookup: BatchLookup,
    map: BorrowedFd<'_>,
    in_batch: Option<u32>,
    keys: &mut [K],
    values: &mut [V],
) -> (io::Result<u32>, usize) {
    let count = keys.len();
    assert!(
        count > 0 && values.len().is_multiple_of(count),
        "values are a whole number per key"
    );
    let mut out_batch = 0u32;
    let mut attr = BatchAttr {
        in_batch: in_batch.as_ref().map_or(0, |b| b as *const u32 as u64),
        out_batch: &mut out_batch as *mut u32 as u64,
        map_fd: map.as_raw_fd() as u32,
        keys: keys.as_mut_ptr() as u64,
        values: values.as_mut_ptr() as u64,
        count: count as u32,
        ..Default::default()
    };
    // SAFETY: `in_batch` and `out_batch` are valid u32s for the call; `keys` and `values` have
    // room for `count` entries of `map` as the caller guarantees.
    let r = unsafe { sys_bpf(lookup.command(), &mut attr) };
    (r.map(|_| out_batch), (attr.count as usize).min(count))
}

/// `BPF_MAP_UPDATE_BATCH`: writes `keys[i]` with the `values.len() / keys.len()` values that
/// follow `values[i * n]`.
///
/// # Safety
/// As for [`lookup_batch`]: `map`'s keys are `K`, its values `V`, with `values.len() /
/// keys.len()` values per key; the kernel reads that many bytes.
pub(crate) unsafe fn update_batch<K: Pod, V: Pod>(
    map: BorrowedFd<'_>,
    keys: &[K],
    values: &[V],
) -> io::Result<()> {
    let count = keys.len();
    assert!(
        count > 0 && values.len().is_multiple_of(count),
        "values are a whole number per key"
    );
    let mut attr = BatchAttr {
        keys: keys.as_ptr() as u64,
        values: values.as_ptr() as u64,
        count: count as u32,
        map_fd: map.as_raw_fd() as u32,
        ..Default::default()
    };
    // SAFETY: the buffers hold `count` keys and their values, as the caller guarantees.
    unsafe { sys_bpf(BPF_MAP_UPDATE_BATCH, &mut attr) }.map(drop)
}

/// The `BPF_PROG_TEST_RUN` part of `union bpf_attr` (up to `ctx_out`).
#[repr(C)]
#[derive(Default)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
}

/// `BPF_PROG_TEST_RUN`: runs `program` `repeat` times on `packet`, discarding its output.
/// `union bpf_attr` as `BPF_PROG_QUERY` reads and writes it (up to `revision`, which the
/// kernel writes for TCX hooks).
#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_ifindex: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    count: u32,
    _pad: u32,
    prog_attach_flags: u64,
    link_ids: u64,
    link_attach_flags: u64,
    revision: u64,
}

/// Which TCX hook of an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcxHook {
    Ingress,
    Egress,
}

/// The ids of the programs attached to `ifindex`'s TCX `hook`, in order. Needs
/// `CAP_NET_ADMIN` only.
pub fn tcx_program_ids(ifindex: u32, hook: TcxHook) -> io::Result<Vec<u32>> {
    // BPF_TCX_INGRESS / BPF_TCX_EGRESS.
    let attach_type = match hook {
        TcxHook::Ingress => 46,
        TcxHook::Egress => 47,
    };
    let mut ids = vec![0u32; 64];
    loop {
        let mut attr = QueryAttr {
            target_ifindex: ifindex,
            attach_type,
            prog_ids: ids.as_mut_ptr() as u64,
            count: ids.len() as u32,
            ..Default::default()
        };
        // SAFETY: BPF_PROG_QUERY reads and writes a QueryAttr; the kernel writes at most
        // `count` u32 ids to `prog_ids`, which holds that many.
        match unsafe { sys_bpf(BPF_PROG_QUERY, &mut attr) } {
            Ok(_) => {
                ids.truncate(attr.count as usize);
                return Ok(ids);
            }
            // More programs than room: the kernel says how many there are.
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) && ids.len() < 65_536 => {
                ids = vec![0; (attr.count as usize).max(ids.len() * 2)];
            }
            Err(e) => return Err(e),
        }
    }
}

pub(crate) fn prog_test_run(program: BorrowedFd<'_>, packet: &[u8], repeat: u32) -> io::Result<()> {
    let mut attr = TestRunAttr {
        prog_fd: program.as_raw_fd() as u32,
        data_size_in: packet.len() as u32,
        data_in: packet.as_ptr() as u64,
        repeat,
        ..Default::default()
    };
    // SAFETY: data_in points to data_size_in readable bytes; no output buffer or context is
    // given, so the kernel writes nothing through a pointer.
    unsafe { sys_bpf(BPF_PROG_TEST_RUN, &mut attr) }.map(drop)
}

/// The `BPF_MAP_CREATE` part of `union bpf_attr` (up to `map_name`).
#[repr(C)]
#[derive(Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
}

/// The `BPF_MAP_*_ELEM` part of `union bpf_attr`.
#[repr(C)]
struct ElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// `BPF_MAP_CREATE` of a map with 4-byte keys and values (`inner`: the template map of a
/// map-in-map). `name` is cut to the kernel's 15 bytes.
fn create_map(
    map_type: u32,
    max_entries: u32,
    inner: Option<BorrowedFd<'_>>,
    name: &[u8],
) -> io::Result<OwnedFd> {
    let mut attr = MapCreateAttr {
        map_type,
        key_size: 4,
        value_size: 4,
        max_entries,
        inner_map_fd: inner.map_or(0, |fd| fd.as_raw_fd() as u32),
        ..Default::default()
    };
    let n = name.len().min(15);
    attr.map_name[..n].copy_from_slice(&name[..n]);
    // SAFETY: a complete BPF_MAP_CREATE attribute block, with no pointers in it.
    let fd = unsafe { sys_bpf(BPF_MAP_CREATE, &mut attr) }?;
    // SAFETY: the kernel returned a new file descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Waits for an RCU grace period from userspace: updating an element of a map-in-map
/// (`BPF_MAP_TYPE_ARRAY_OF_MAPS`) returns only once every eBPF program that may have read the
/// old element has finished (`maybe_wait_bpf_programs()` in the kernel, "so that userspace, when
/// we return to it, knows that all programs that could be running use the new map value"; since
/// Linux 4.20). A grace period covers any program run, whatever maps it reads: tc programs and
/// socket filters run inside RCU read-side critical sections.
pub(crate) struct GracePeriod {
    outer: OwnedFd,
    inner: OwnedFd,
}

impl GracePeriod {
    /// Name of the map-in-map, in error messages.
    pub(crate) const MAP_NAME: &'static str = "tapline_grace";

    /// Creates the two small maps it updates.
    pub(crate) fn new() -> io::Result<Self> {
        const ARRAY: u32 = 2;
        const ARRAY_OF_MAPS: u32 = 12;
        let inner = create_map(ARRAY, 1, None, b"tapline_grace_i")?;
        let outer = create_map(
            ARRAY_OF_MAPS,
            1,
            Some(inner.as_fd()),
            Self::MAP_NAME.as_bytes(),
        )?;
        Ok(Self { outer, inner })
    }

    /// Returns after one grace period.
    pub(crate) fn wait(&self) -> io::Result<()> {
        let key = 0u32;
        let value = self.inner.as_raw_fd() as u32;
        let mut attr = ElemAttr {
            map_fd: self.outer.as_raw_fd() as u32,
            _pad: 0,
            key: &key as *const u32 as u64,
            value: &value as *const u32 as u64,
            flags: 0,
        };
        // SAFETY: attr points to a valid key and value of the map's sizes (4 bytes each), which
        // the kernel only reads.
        unsafe { sys_bpf(BPF_MAP_UPDATE_ELEM, &mut attr) }.map(drop)
    }
}
