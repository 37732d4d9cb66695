//! What the agent asks about the host it runs on: interface indexes, its own address, the
//! boot-time offset of the kernel's timestamps, its name.

use std::ffi::CString;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Resolves an interface name in the calling thread's network namespace (`if_nametoindex`).
pub fn ifindex(ifname: &str) -> io::Result<u32> {
    let c = CString::new(ifname).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call, which only reads it.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(idx)
}

/// The host's first non-loopback address: the first IPv4 address of a non-loopback interface
/// in the kernel's listing order, else the first IPv6 address that is neither loopback nor
/// link-local, else `None`.
pub fn first_host_address() -> Option<IpAddr> {
    let mut ifap: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head to the valid pointer it is given; the list is freed
    // below, after the last use of any node.
    if unsafe { libc::getifaddrs(&mut ifap) } != 0 {
        return None;
    }
    let mut v4 = None;
    let mut v6 = None;
    let mut cur = ifap;
    while !cur.is_null() {
        // SAFETY: a non-null node of the list getifaddrs returned, not freed yet.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_flags & libc::IFF_LOOPBACK as u32 != 0 {
            continue;
        }
        // SAFETY: a non-null ifa_addr points to a sockaddr, which starts with its family.
        let family = unsafe { (*ifa.ifa_addr).sa_family } as i32;
        match family {
            libc::AF_INET if v4.is_none() => {
                // SAFETY: a sockaddr of family AF_INET is a sockaddr_in.
                let sa = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                let ip = Ipv4Addr::from(u32::from_be(sa.sin_addr.s_addr));
                if !ip.is_loopback() {
                    v4 = Some(IpAddr::V4(ip));
                }
            }
            libc::AF_INET6 if v6.is_none() => {
                // SAFETY: a sockaddr of family AF_INET6 is a sockaddr_in6.
                let sa = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                let ip = Ipv6Addr::from(sa.sin6_addr.s6_addr);
                if !ip.is_loopback() && (ip.segments()[0] & 0xffc0) != 0xfe80 {
                    v6 = Some(IpAddr::V6(ip));
                }
            }
            _ => {}
        }
    }
    // SAFETY: ifap came from getifaddrs and is freed once; no reference into it survives.
    unsafe { libc::freeifaddrs(ifap) };
    v4.or(v6)
}

/// Nanoseconds since the epoch of `clock`.
fn clock_ns(clock: libc::clockid_t) -> u64 {
    // SAFETY: timespec is plain data; all-zero is a valid value.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: clock_gettime writes one timespec to a valid pointer; the clocks used here exist
    // on every Linux.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Nanoseconds to add to a `CLOCK_MONOTONIC` time (what `bpf_ktime_get_ns` returns) to get
/// Unix time. Read it at every use, so wall-clock steps are followed.
pub fn boot_offset_ns() -> u64 {
    let mono = clock_ns(libc::CLOCK_MONOTONIC);
    let real = clock_ns(libc::CLOCK_REALTIME);
    real.saturating_sub(mono)
}

/// This host's name (empty when it cannot be read).
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return String::new();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_loopback_and_names_a_missing_interface() {
        assert_eq!(ifindex("lo").unwrap(), 1);
        let e = ifindex("no-such-if0").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENODEV), "{e}");
        let e = ifindex("bad\0name").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
    }

    #[test]
    fn boot_offset_is_plausible() {
        let off = boot_offset_ns();
        // After 2020 and before now.
        assert!(off > 1_577_836_800_000_000_000, "{off}");
    }
}
