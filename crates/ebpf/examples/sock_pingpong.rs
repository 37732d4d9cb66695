//! One thread plays both ends of an HTTP/1.1 exchange over loopback TCP, in the shape nginx +
//! wrk give the capture (5 socket calls per request: the client's `write`, the server's `read`,
//! `writev` of the response head and `sendfile` of the body, the client's `read`), pinned to one
//! CPU, and prints the CPU time per request. Used by `scripts/bench app-event-cost`, which runs it
//! with and without the capture: on one CPU with nothing else to do, the difference is the
//! capture's cost per traced call (programs and their indirect costs), without the noise of a
//! two-process benchmark.
//!
//! `sock_pingpong <requests> [cpu=0] [go_file]` prints
//! `requests=<n> cpu_ns_per_request=<f> wall_ns_per_request=<f> calls_per_request=5`.
//! With `go_file`, it connects and warms up, then waits for that file to exist before it
//! measures: two copies started together (one traced, one not) share the CPU and whatever
//! else the machine does during the same seconds.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Instant;

const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: pp\r\n\r\n";
const BODY_BYTES: usize = 612;

fn thread_cpu_ns() -> u128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer for the duration of the call
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u128 * 1_000_000_000 + ts.tv_nsec as u128
}

fn pin(cpu: usize) -> std::io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; the pointer is valid for the call
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

fn check(ret: isize, what: &str) -> std::io::Result<usize> {
    if ret < 0 {
        let e = std::io::Error::last_os_error();
        return Err(std::io::Error::new(e.kind(), format!("{what}: {e}")));
    }
    Ok(ret as usize)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let requests: u64 = args
        .next()
        .ok_or("usage: sock_pingpong <requests> [cpu]")?
        .parse()?;
    let cpu: usize = args.next().map(|c| c.parse()).transpose()?.unwrap_or(0);
    let go_file = args.next().map(std::path::PathBuf::from);
    pin(cpu)?;

    let listener = TcpListener::bind("127.0.0.1:0")?;
    let mut client = TcpStream::connect(listener.local_addr()?)?;
    let (mut server, _) = listener.accept()?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;

    let body_path = std::env::temp_dir().join(format!("sock_pingpong.{}", std::process::id()));
    std::fs::write(&body_path, vec![b'a'; BODY_BYTES])?;
    let body = std::fs::File::open(&body_path)?;
    std::fs::remove_file(&body_path)?;
    let head = format!(
        "HTTP/1.1 200 OK\r\nServer: pp\r\nDate: Fri, 27 Nov 2026 06:00:00 GMT\r\n\
         Content-Type: text/html\r\nContent-Length: {BODY_BYTES}\r\n\
         Last-Modified: Fri, 27 Nov 2026 05:00:00 GMT\r\nConnection: keep-alive\r\n\
         ETag: \"6928b3d0-264\"\r\nAccept-Ranges: bytes\r\n\r\n"
    );
    let response_bytes = head.len() + BODY_BYTES;
    let iov = libc::iovec {
        iov_base: head.as_ptr() as *mut libc::c_void,
        iov_len: head.len(),
    };
    let mut buf = vec![0u8; 16 * 1024];

    let exchange = |client: &mut TcpStream,
                    server: &mut TcpStream,
                    buf: &mut [u8]|
     -> std::io::Result<()> {
        client.write_all(REQUEST)?;
        let mut got = 0;
        while got < REQUEST.len() {
            got += server.read(&mut buf[got..])?;
        }
        // SAFETY: one valid iovec over `head`, which outlives the call
        check(
            unsafe { libc::writev(server.as_raw_fd(), &iov, 1) },
            "writev",
        )?;
        let mut off: libc::off_t = 0;
        // SAFETY: valid fds and offset pointer
        let sent = check(
            unsafe { libc::sendfile(server.as_raw_fd(), body.as_raw_fd(), &mut off, BODY_BYTES) },
            "sendfile",
        )?;
        if sent != BODY_BYTES {
            return Err(std::io::Error::other(format!("sendfile sent {sent}")));
        }
        let mut got = 0;
        while got < response_bytes {
            got += client.read(&mut buf[got..])?;
        }
        Ok(())
    };

    // warm up caches and the socket's buffers
    for _ in 0..requests.min(10_000) {
        exchange(&mut client, &mut server, &mut buf)?;
    }
    if let Some(go) = &go_file {
        while !go.exists() {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
    let (cpu0, wall0) = (thread_cpu_ns(), Instant::now());
    for _ in 0..requests {
        exchange(&mut client, &mut server, &mut buf)?;
    }
    let (cpu, wall) = (thread_cpu_ns() - cpu0, wall0.elapsed().as_nanos());
    println!(
        "requests={requests} cpu_ns_per_request={:.1} wall_ns_per_request={:.1} calls_per_request=5",
        cpu as f64 / requests as f64,
        wall as f64 / requests as f64
    );
    Ok(())
}
