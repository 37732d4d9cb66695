//! Test networks: two fresh network namespaces joined by a veth pair (`va` in A, `vb` in B)
//! with private addresses, static neighbours and no IPv6 chatter unless asked, removed on drop
//! (also when the test fails); running code inside a namespace; raw ICMP; and asking the
//! kernel whether a BPF object is gone.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Fails loudly (CI runs as root): these tests need a real kernel and root.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "these tests load eBPF programs or create network namespaces: run them as root (CI \
         does); they are not skipped"
    );
}

/// Runs a command (`args[0]` with the rest as arguments); panics with its stderr on failure.
pub fn sh(args: &[&str]) {
    sh_out(args);
}

/// [`sh`], returning stdout.
pub fn sh_out(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("running {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

static SEQ: AtomicU32 = AtomicU32::new(0);

pub const A4: &str = "10.79.0.1";
pub const B4: &str = "10.79.0.2";
pub const A6: &str = "fd79::1";
pub const B6: &str = "fd79::2";

/// Two namespaces `a` and `b` joined by veth `va` (in a) <-> `vb` (in b).
pub struct NetPair {
    pub a: String,
    pub b: String,
}

fn quiet_netns(ns: &str, ipv6: bool) {
    sh(&["ip", "netns", "add", ns]);
    let v6 = if ipv6 { "0" } else { "1" };
    for key in ["all", "default"] {
        sh(&[
            "ip",
            "netns",
            "exec",
            ns,
            "sysctl",
            "-qw",
            &format!("net.ipv6.conf.{key}.disable_ipv6={v6}"),
            &format!("net.ipv6.conf.{key}.accept_dad=0"),
            &format!("net.ipv6.conf.{key}.dad_transmits=0"),
            &format!("net.ipv6.conf.{key}.router_solicitations=0"),
        ]);
    }
    sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
}

/// The MAC address of `dev` in namespace `ns`.
pub fn mac(ns: &str, dev: &str) -> String {
    let out = sh_out(&["ip", "-n", ns, "-o", "link", "show", dev]);
    let i = out.find("link/ether ").expect("link has a MAC") + 11;
    out[i..i + 17].to_owned()
}

/// Gives `dev` in `ns` the address `me` (with its prefix length) and a permanent neighbour
/// entry for `peer` at `peer_mac`: no ARP or neighbour discovery on the test link. IPv6
/// addresses skip duplicate address detection, so they are usable at once.
fn address_and_neighbour(ns: &str, dev: &str, me: &str, peer: &str, peer_mac: &str, family: &str) {
    let mut addr = vec!["ip", "-n", ns, "addr", "add", me, "dev", dev];
    if family == "-6" {
        addr.push("nodad");
    }
    sh(&addr);
    sh(&[
        "ip",
        "-n",
        ns,
        family,
        "neigh",
        "replace",
        peer,
        "lladdr",
        peer_mac,
        "dev",
        dev,
        "nud",
        "permanent",
    ]);
}

/// Creates veth `dev_a` (in `a`) <-> `dev_b` (in `b`), addresses `a4`/`b4` (+ `a6`/`b6`),
/// static neighbours, up. With `bridge_a` (an existing bridge in `a`), `dev_a` becomes its port
/// and A's addresses go on the bridge.
#[allow(clippy::too_many_arguments)]
pub fn add_veth(
    a: &str,
    b: &str,
    dev_a: &str,
    dev_b: &str,
    bridge_a: Option<&str>,
    (a4, b4): (&str, &str),
    v6: Option<(&str, &str)>,
) {
    sh(&[
        "ip", "-n", a, "link", "add", dev_a, "type", "veth", "peer", "name", dev_b, "netns", b,
    ]);
    if let Some(bridge) = bridge_a {
        // Before reading MACs: a bridge takes its address from its ports.
        sh(&["ip", "-n", a, "link", "set", dev_a, "master", bridge]);
    }
    let addr_dev_a = bridge_a.unwrap_or(dev_a);
    let (mac_a, mac_b) = (mac(a, addr_dev_a), mac(b, dev_b));
    for (ns, dev, me4, peer4, peer_mac, six) in [
        (a, addr_dev_a, a4, b4, &mac_b, v6),
        (b, dev_b, b4, a4, &mac_a, v6.map(|(x, y)| (y, x))),
    ] {
        address_and_neighbour(ns, dev, &format!("{me4}/24"), peer4, peer_mac, "-4");
        if let Some((me6, peer6)) = six {
            address_and_neighbour(ns, dev, &format!("{me6}/64"), peer6, peer_mac, "-6");
        }
    }
    sh(&["ip", "-n", a, "link", "set", dev_a, "up"]);
    sh(&["ip", "-n", b, "link", "set", dev_b, "up"]);
    if addr_dev_a != dev_a {
        sh(&["ip", "-n", a, "link", "set", addr_dev_a, "up"]);
    }
}

impl NetPair {
    /// Just the two namespaces.
    pub fn empty(tag: &str, ipv6: bool) -> Self {
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let pair = NetPair {
            a: format!("tlr-{tag}-{pid}-{n}-a"),
            b: format!("tlr-{tag}-{pid}-{n}-b"),
        };
        // Drop cleans up even if the second namespace fails.
        quiet_netns(&pair.a, ipv6);
        quiet_netns(&pair.b, ipv6);
        pair
    }

    pub fn new(tag: &str, ipv6: bool) -> Self {
        let pair = Self::empty(tag, ipv6);
        add_veth(
            &pair.a,
            &pair.b,
            "va",
            "vb",
            None,
            (A4, B4),
            ipv6.then_some((A6, B6)),
        );
        pair
    }

    /// (rx_bytes, rx_packets, tx_bytes, tx_packets, tx_dropped) of `dev` in A.
    pub fn counters(&self, dev: &str) -> [u64; 5] {
        let d = format!("/sys/class/net/{dev}/statistics");
        let out = sh_out(&[
            "ip",
            "netns",
            "exec",
            &self.a,
            "cat",
            &format!("{d}/rx_bytes"),
            &format!("{d}/rx_packets"),
            &format!("{d}/tx_bytes"),
            &format!("{d}/tx_packets"),
            &format!("{d}/tx_dropped"),
        ]);
        let v: Vec<u64> = out.split_whitespace().map(|s| s.parse().unwrap()).collect();
        [v[0], v[1], v[2], v[3], v[4]]
    }

    /// Waits (bounded, 8 s) until no packet crossed `dev` for 1.2 s: link-up chatter is over
    /// (IPv6 repeats its unsolicited MLD reports up to 1 s apart).
    pub fn wait_quiet(&self, dev: &str) {
        self.wait_still(dev, Duration::from_millis(1200));
    }

    /// Waits (bounded, 8 s) until the counters of `dev` in A stay unchanged for `window`: the
    /// traffic a test sent (and the kernel's own replies to it, final ACKs) has crossed.
    pub fn wait_still(&self, dev: &str, window: Duration) {
        let deadline = Instant::now() + Duration::from_secs(8);
        let poll = (window / 5).min(Duration::from_millis(100));
        let mut last = self.counters(dev);
        let mut since = Instant::now();
        while Instant::now() < deadline {
            std::thread::sleep(poll);
            let now = self.counters(dev);
            if now != last {
                last = now;
                since = Instant::now();
            } else if since.elapsed() >= window {
                return;
            }
        }
    }
}

impl Drop for NetPair {
    fn drop(&mut self) {
        delete_netns(&self.a);
        delete_netns(&self.b);
    }
}

fn delete_netns(ns: &str) {
    let _ = Command::new("ip").args(["netns", "del", ns]).status();
}

/// One fresh network namespace with only loopback, up; deleted on drop.
pub struct Namespace {
    pub name: String,
}

impl Namespace {
    pub fn new(tag: &str, ipv6: bool) -> Namespace {
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let ns = Namespace {
            name: format!("tlr-{tag}-{}-{n}", std::process::id()),
        };
        quiet_netns(&ns.name, ipv6);
        ns
    }

    /// Runs the future `f` makes on a runtime whose threads all live in this namespace.
    pub fn block_on<T, F>(&self, f: impl FnOnce() -> F + Send + 'static) -> T
    where
        T: Send + 'static,
        F: std::future::Future<Output = T>,
    {
        block_on_in_netns(&self.name, f)
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        delete_netns(&self.name);
    }
}

/// Runs the future `f` makes on a tokio runtime (two workers) built in a thread inside `ns`,
/// so that every thread of the runtime lives in that namespace; a panic in it is the caller's.
pub fn block_on_in_netns<T, F>(ns: &str, f: impl FnOnce() -> F + Send + 'static) -> T
where
    T: Send + 'static,
    F: std::future::Future<Output = T>,
{
    spawn_in_netns(ns, move || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime")
            .block_on(f())
    })
    .join()
    .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// Runs `f` with the calling thread inside network namespace `ns`, then moves it back.
pub fn in_netns<T>(ns: &str, f: impl FnOnce() -> T) -> T {
    let orig = File::open("/proc/thread-self/ns/net").expect("open own netns");
    let target = File::open(format!("/var/run/netns/{ns}")).expect("open netns");
    // SAFETY: valid namespace fds.
    assert_eq!(
        unsafe { libc::setns(target.as_raw_fd(), libc::CLONE_NEWNET) },
        0,
        "setns {ns}"
    );
    struct Back(File);
    impl Drop for Back {
        fn drop(&mut self) {
            // SAFETY: valid namespace fd.
            unsafe { libc::setns(self.0.as_raw_fd(), libc::CLONE_NEWNET) };
        }
    }
    let _back = Back(orig);
    f()
}

/// The index of interface `dev` in namespace `ns`.
pub fn ifindex(ns: &str, dev: &str) -> u32 {
    let name = std::ffi::CString::new(dev).expect("an interface name has no NUL");
    // SAFETY: a valid C string.
    let index = in_netns(ns, || unsafe { libc::if_nametoindex(name.as_ptr()) });
    assert_ne!(index, 0, "no interface {dev} in namespace {ns}");
    index
}

/// Spawns a thread inside `ns` running `f`.
pub fn spawn_in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let ns = ns.to_owned();
    std::thread::spawn(move || in_netns(&ns, f))
}

/// Internet checksum.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for c in data.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from(c[0]) << 8
        };
        sum += u32::from(w);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Sends `count` ICMP echo requests of `payload` bytes to `dst` from the calling thread's
/// namespace through a raw socket, 10 ms apart (paced like a real ping, so that a test
/// counting packets sees each one as it is sent).
pub fn ping4(dst: std::net::Ipv4Addr, count: u16, payload: usize) {
    // SAFETY: plain syscalls on a socket we own.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP);
        assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
        let mut addr: libc::sockaddr_in = std::mem::zeroed();
        addr.sin_family = libc::AF_INET as u16;
        addr.sin_addr.s_addr = u32::from_ne_bytes(dst.octets());
        for seq in 0..count {
            let mut pkt = vec![8u8, 0, 0, 0, 0x12, 0x34, (seq >> 8) as u8, seq as u8];
            pkt.resize(8 + payload, 0xab);
            let c = checksum(&pkt);
            pkt[2..4].copy_from_slice(&c.to_be_bytes());
            let r = libc::sendto(
                fd,
                pkt.as_ptr().cast(),
                pkt.len(),
                0,
                (&addr as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as u32,
            );
            assert_eq!(
                r as usize,
                pkt.len(),
                "sendto: {}",
                std::io::Error::last_os_error()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        libc::close(fd);
    }
}

/// Whether the kernel still has the BPF object `kind` (`prog`, `link`) with this id after up to
/// 5 s: it frees a program or link after its last reference goes, through deferred work that a
/// loaded machine delays, so a single look right after closing can still see it.
pub fn bpf_object_remains(kind: &str, id: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let listed = Command::new("bpftool")
            .args([kind, "show", "id", &id.to_string()])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !listed || Instant::now() >= deadline {
            return listed;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends `bytes` (a multiple of 64 KiB) over one TCP connection from namespace A to
/// `server`:5001 in namespace B, checks that B read every byte, and returns the client's port.
pub fn tcp_transfer(pair: &NetPair, server: std::net::IpAddr, bytes: usize) -> u16 {
    let listener = in_netns(&pair.b, || {
        std::net::TcpListener::bind(std::net::SocketAddr::new(server, 5001)).unwrap()
    });
    let srv = std::thread::spawn(move || {
        use std::io::Read;
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut buf = vec![0u8; 65536];
        let mut n = 0;
        loop {
            match s.read(&mut buf).unwrap() {
                0 => break,
                k => n += k,
            }
        }
        n
    });
    let port = in_netns(&pair.a, || {
        use std::io::Write;
        let mut c = std::net::TcpStream::connect_timeout(
            &std::net::SocketAddr::new(server, 5001),
            Duration::from_secs(5),
        )
        .unwrap();
        let chunk = vec![0x5au8; 65536];
        for _ in 0..bytes / chunk.len() {
            c.write_all(&chunk).unwrap();
        }
        let port = c.local_addr().unwrap().port();
        c.shutdown(std::net::Shutdown::Both).unwrap();
        port
    });
    assert_eq!(srv.join().unwrap(), bytes);
    port
}
