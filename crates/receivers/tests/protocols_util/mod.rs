//! Shared by the `protocols_*` tests: a recording TCP proxy between a real client and a real
//! server, and the replay of what it recorded through the parsers, as the kernel capture would
//! deliver it (each read is one segment: its size, and only its first `capture` bytes).
//! The peers the proxy stands in front of are in `peers`.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tapline_protocols::{Dir, Operation, Protocol, ProtocolParser, Segment, Session};

/// One read on one proxied connection.
#[derive(Clone, Debug)]
pub struct Read_ {
    pub seq: u64,
    pub conn: u64,
    pub dir: Dir,
    pub data: Vec<u8>,
    pub start_ns: u64,
    pub end_ns: u64,
}

#[derive(Default)]
struct Shared {
    reads: Mutex<Vec<Read_>>,
    seq: AtomicU64,
    conns: AtomicU64,
    stop: AtomicBool,
}

/// Forwards 127.0.0.1:`port()` to `upstream`, recording every read of both directions.
pub struct Proxy {
    pub port: u16,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
    workers: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

fn now_ns(epoch: Instant) -> u64 {
    epoch.elapsed().as_nanos() as u64
}

impl Proxy {
    pub fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let shared = Arc::new(Shared::default());
        let workers: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (s, w) = (shared.clone(), workers.clone());
        let epoch = Instant::now();
        let accept = std::thread::spawn(move || {
            while !s.stop.load(Ordering::Relaxed) {
                let client = match listener.accept() {
                    Ok((c, _)) => c,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(2));
                        continue;
                    }
                };
                client.set_nonblocking(false).unwrap();
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let conn = s.conns.fetch_add(1, Ordering::Relaxed);
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let pairs = [
                    (
                        client.try_clone().unwrap(),
                        server.try_clone().unwrap(),
                        Dir::ClientToServer,
                    ),
                    (server, client, Dir::ServerToClient),
                ];
                for (mut from, mut to, dir) in pairs {
                    let s = s.clone();
                    w.lock().unwrap().push(std::thread::spawn(move || {
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            let start_ns = now_ns(epoch);
                            let n = match from.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            let end_ns = now_ns(epoch);
                            {
                                // recorded before forwarding: a reply can only be read after
                                let mut reads = s.reads.lock().unwrap();
                                let seq = s.seq.fetch_add(1, Ordering::SeqCst);
                                reads.push(Read_ {
                                    seq,
                                    conn,
                                    dir,
                                    data: buf[..n].to_vec(),
                                    start_ns,
                                    end_ns,
                                });
                            }
                            if to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(Shutdown::Write);
                    }));
                }
            }
        });
        Proxy {
            port,
            shared,
            accept: Some(accept),
            workers,
        }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Stops accepting, waits for open connections to finish, returns all reads in order.
    pub fn finish(mut self) -> Vec<Read_> {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(a) = self.accept.take() {
            let _ = a.join();
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let done = self.workers.lock().unwrap().iter().all(|h| h.is_finished());
            if done || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut reads = std::mem::take(&mut *self.shared.reads.lock().unwrap());
        reads.sort_by_key(|r| r.seq);
        reads
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
    }
}

/// Replays the reads through one [`Session`] per connection (detection included), each read
/// captured to its first `capture` bytes. Returns operations and the protocol each connection
/// was detected as.
pub fn replay_sessions(
    reads: &[Read_],
    server_port: u16,
    capture: usize,
    query_text: bool,
) -> (Vec<Operation>, HashMap<u64, Option<Protocol>>) {
    let mut sessions: BTreeMap<u64, Session> = BTreeMap::new();
    let mut out = Vec::new();
    let config = tapline_protocols::ParserConfig { query_text };
    let mut last = 0;
    for r in reads {
        let s = sessions
            .entry(r.conn)
            .or_insert_with(|| Session::new(server_port, config));
        let seg = Segment {
            dir: r.dir,
            data: &r.data[..r.data.len().min(capture)],
            total_len: r.data.len() as u64,
            start_ns: r.start_ns,
            end_ns: r.end_ns,
        };
        s.feed(&seg, &mut out);
        last = r.end_ns;
    }
    let mut protocols = HashMap::new();
    for (conn, mut s) in sessions {
        s.close(last, &mut out);
        protocols.insert(conn, s.protocol());
    }
    (out, protocols)
}

/// Replays the reads through a parser per connection made by `make`.
pub fn replay_parser(
    reads: &[Read_],
    capture: usize,
    make: impl Fn() -> Box<dyn ProtocolParser>,
) -> Vec<Operation> {
    let mut parsers: BTreeMap<u64, Box<dyn ProtocolParser>> = BTreeMap::new();
    let mut out = Vec::new();
    for r in reads {
        let p = parsers.entry(r.conn).or_insert_with(&make);
        let seg = Segment {
            dir: r.dir,
            data: &r.data[..r.data.len().min(capture)],
            total_len: r.data.len() as u64,
            start_ns: r.start_ns,
            end_ns: r.end_ns,
        };
        let _ = p.feed(&seg, &mut out);
    }
    for (_, mut p) in parsers {
        p.close(u64::MAX / 2, &mut out);
    }
    out
}

/// Count of operations per (name, target, error).
pub fn tally(ops: &[Operation]) -> BTreeMap<(String, Option<String>, Option<String>), usize> {
    let mut m = BTreeMap::new();
    for o in ops {
        *m.entry((
            o.name.to_string(),
            o.target.as_ref().map(|t| t.to_string()),
            o.error.as_ref().map(|e| e.to_string()),
        ))
        .or_insert(0) += 1;
    }
    m
}

pub fn count(ops: &[Operation], name: &str, target: Option<&str>) -> usize {
    ops.iter()
        .filter(|o| o.name == name && o.target.as_deref() == target)
        .count()
}
