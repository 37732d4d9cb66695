//! The DNS sniffer's socket filter on a real kernel (root required): only UDP from port 53
//! reaches userspace, each datagram once (also on loopback, which delivers twice), over IPv4
//! and IPv6, on the interfaces asked for; dropping the sniffer leaves nothing behind.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use tapline_ebpf::dns::{udp_datagram, DnsSniffer, MAX_FRAME};
use tapline_test_support::netns::*;

/// Every datagram the sniffer passes until it stays quiet for 300 ms (at most 5 s), as
/// (source, destination, payload).
async fn collect(sniffer: &mut DnsSniffer) -> Vec<(SocketAddr, SocketAddr, Vec<u8>)> {
    let mut buf = vec![0u8; MAX_FRAME];
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let wait = tokio::time::timeout(Duration::from_millis(300), sniffer.recv(&mut buf));
        let Ok(frame) = wait.await else { break };
        let frame = frame.expect("recv");
        let bytes = &buf[..frame.len];
        let d = udp_datagram(bytes, frame.protocol)
            .unwrap_or_else(|| panic!("the filter passed a frame that is not UDP: {bytes:?}"));
        out.push((d.src, d.dst, d.payload.to_vec()));
    }
    out
}

#[test]
fn only_udp_from_port_53_reaches_userspace_once() {
    require_root();
    let pair = NetPair::new("dns", true);
    let got = block_on_in_netns(&pair.a, || async {
        let mut sniffer = DnsSniffer::open(None).expect("open sniffer");
        for host in ["127.0.0.1", "[::1]"] {
            let dns = UdpSocket::bind(format!("{host}:53")).unwrap();
            let other = UdpSocket::bind(format!("{host}:0")).unwrap();
            let client = UdpSocket::bind(format!("{host}:0")).unwrap();
            let to = client.local_addr().unwrap();
            // A query (to port 53) and other UDP must not pass; the answer (from 53) must.
            client.send_to(b"query", dns.local_addr().unwrap()).unwrap();
            other.send_to(b"not dns", to).unwrap();
            dns.send_to(b"answer", to).unwrap();
        }
        // Out of the veth (egress): an answer sent by a server on this host.
        let dns = UdpSocket::bind(format!("{A4}:53")).unwrap();
        dns.send_to(b"to b", format!("{B4}:5000")).unwrap();
        // TCP from port 53 is not UDP.
        let tcp = std::net::TcpListener::bind("127.0.0.1:53").unwrap();
        let _c = std::net::TcpStream::connect("127.0.0.1:53").unwrap();
        let _s = tcp.accept().unwrap();
        collect(&mut sniffer).await
    });
    let summary: Vec<(String, String, String)> = got
        .iter()
        .map(|(s, d, p)| {
            (
                s.to_string(),
                d.ip().to_string(),
                String::from_utf8_lossy(p).into_owned(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("127.0.0.1:53".into(), "127.0.0.1".into(), "answer".into()),
            ("[::1]:53".into(), "::1".into(), "answer".into()),
            (format!("{A4}:53"), B4.into(), "to b".into()),
        ],
        "exactly the answers, once each"
    );
}

#[test]
fn interfaces_limit_what_is_seen_and_drop_leaves_nothing() {
    require_root();
    let pair = NetPair::new("dnsif", false);
    let (a, b) = (pair.a.clone(), pair.b.clone());
    let id = block_on_in_netns(&pair.b, move || async move {
        let mut sniffer = DnsSniffer::open(Some(&["vb".to_owned()])).expect("open sniffer");
        let id = sniffer.program_id().expect("program id");
        let progs = sh_out(&["bpftool", "prog", "show", "id", &id.to_string()]);
        assert!(progs.contains("tapline_dns"), "{progs}");
        let packet = sh_out(&["ip", "netns", "exec", &b, "cat", "/proc/net/packet"]);
        assert_eq!(packet.lines().count(), 2, "one packet socket:\n{packet}");
        // On loopback, not on vb: not seen.
        let dns = UdpSocket::bind("127.0.0.1:53").unwrap();
        dns.send_to(b"lo", "127.0.0.1:5000").unwrap();
        // Sent by a server in this namespace out of vb: seen; and one arriving on vb.
        let dns_b = UdpSocket::bind(format!("{B4}:53")).unwrap();
        dns_b.send_to(b"out of vb", format!("{A4}:5000")).unwrap();
        spawn_in_netns(&a, || {
            let s = UdpSocket::bind(format!("{A4}:53")).unwrap();
            s.send_to(b"into vb", format!("{B4}:5000")).unwrap();
        })
        .join()
        .unwrap();
        let got = collect(&mut sniffer).await;
        let payloads: Vec<&[u8]> = got.iter().map(|g| g.2.as_slice()).collect();
        assert_eq!(payloads, vec![&b"out of vb"[..], b"into vb"], "{got:?}");
        assert_eq!(sniffer.truncated(), 0);
        assert_eq!(sniffer.take_drops(), 0);
        id
    });
    // The sniffer was dropped in the thread: its socket is closed, its program unloaded.
    assert!(!bpf_object_remains("prog", id), "prog {id} still loaded");
    let packet = sh_out(&["ip", "netns", "exec", &pair.b, "cat", "/proc/net/packet"]);
    assert_eq!(
        packet.lines().count(),
        1,
        "a packet socket remains:\n{packet}"
    );
}

#[test]
fn unknown_interface_and_missing_capabilities_are_named() {
    require_root();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _enter = rt.enter();
    let e = DnsSniffer::open(Some(&["nosuch0".to_owned()])).unwrap_err();
    assert!(e.to_string().contains("nosuch0"), "{e}");
    // Capabilities are per thread: this one gives up its effective set and tries again.
    let e = std::thread::spawn(|| {
        drop_effective_capabilities();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _enter = rt.enter();
        DnsSniffer::open(None).unwrap_err().to_string()
    })
    .join()
    .unwrap();
    assert!(
        e.contains("CAP_NET_RAW") && e.contains("CAP_BPF") && e.contains("AF_PACKET"),
        "{e}"
    );
}

fn drop_effective_capabilities() {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut header = Header {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: valid header and two data structs, as version 3 expects.
    unsafe {
        assert_eq!(
            libc::syscall(
                libc::SYS_capget,
                &mut header as *mut Header,
                data.as_mut_ptr()
            ),
            0
        );
        for d in &mut data {
            d.effective = 0;
        }
        assert_eq!(
            libc::syscall(libc::SYS_capset, &mut header as *mut Header, data.as_ptr()),
            0,
            "capset: {}",
            std::io::Error::last_os_error()
        );
    }
}
