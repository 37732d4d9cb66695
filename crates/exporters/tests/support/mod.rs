//! Shared by the exporter integration tests: a receiver that sends exactly what the test
//! hands it, graph plumbing, free ports, peer processes that die with the test.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tapline_core::config::{ComponentConfig, ConfigSource, Diagnostics, LoadOptions};
use tapline_core::data::{Signal, SignalKind};
use tapline_core::pipeline::RunningGraph;
use tapline_core::telemetry::Telemetry;
use tapline_core::{
    BuildContext, FactoryInfo, Receiver, ReceiverContext, ReceiverFactory, Registry,
};
use tokio::sync::mpsc;

/// `feed`: a receiver that forwards what the test sends on its channel, waiting for room.
pub struct FeedFactory {
    rx: Arc<Mutex<Option<mpsc::Receiver<Signal>>>>,
}

impl FeedFactory {
    pub fn new() -> (FeedFactory, mpsc::Sender<Signal>) {
        let (tx, rx) = mpsc::channel(16);
        (
            FeedFactory {
                rx: Arc::new(Mutex::new(Some(rx))),
            },
            tx,
        )
    }
}

impl FactoryInfo for FeedFactory {
    fn type_name(&self) -> &'static str {
        "feed"
    }
    fn description(&self) -> &'static str {
        "test feed"
    }
    fn signals(&self) -> &'static [SignalKind] {
        &[SignalKind::Metrics, SignalKind::Traces]
    }
    fn hidden(&self) -> bool {
        true
    }
}

impl ReceiverFactory for FeedFactory {
    fn build(
        &self,
        _config: &ComponentConfig,
        _ctx: &BuildContext,
    ) -> Result<Box<dyn Receiver>, Diagnostics> {
        // `validate`-style double builds get nothing the second time; tests build once.
        Ok(Box::new(Feed(self.rx.lock().unwrap().take())))
    }
}

struct Feed(Option<mpsc::Receiver<Signal>>);

#[async_trait]
impl Receiver for Feed {
    async fn run(self: Box<Self>, ctx: ReceiverContext) -> anyhow::Result<()> {
        let Some(mut rx) = self.0 else {
            ctx.shutdown.cancelled().await;
            return Ok(());
        };
        loop {
            tokio::select! {
                _ = ctx.shutdown.cancelled() => return Ok(()),
                batch = rx.recv() => match batch {
                    Some(b) => { let _ = ctx.output.send(b).await; }
                    None => { ctx.shutdown.cancelled().await; return Ok(()); }
                }
            }
        }
    }
}

/// Builds and starts a graph from YAML with the given registry.
pub async fn start_graph(
    yaml: &str,
    registry: &Registry,
    telemetry: &Telemetry,
) -> anyhow::Result<RunningGraph> {
    let opts = LoadOptions {
        sources: vec![ConfigSource::Embedded {
            name: "test.yaml".into(),
            text: yaml.into(),
        }],
        ..Default::default()
    };
    let config = tapline_core::config::load(&opts).map_err(|d| anyhow::anyhow!("config: {d:?}"))?;
    let graph = tapline_core::pipeline::build(&config, registry, telemetry)
        .map_err(|d| anyhow::anyhow!("build: {d:?}"))?;
    tapline_core::pipeline::start(graph).await
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A plain HTTP/1.0 GET; returns status and body.
pub fn http_get(addr: SocketAddr, path_and_query: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = format!("GET {path_and_query} HTTP/1.0\r\nHost: {addr}\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, body.to_string())
}

pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A peer process, killed (by its own pid) when the test ends, however it ends.
pub struct Peer {
    pub child: Child,
    pub name: String,
}

impl Peer {
    pub fn spawn(name: &str, cmd: &mut Command, log: &std::path::Path) -> Peer {
        let out = std::fs::File::create(log).unwrap();
        let child = cmd
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Peer {
            child,
            name: name.into(),
        }
    }
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Fails the test, naming the package to install, when a peer binary is missing.
pub fn require(path: &str, package: &str) -> String {
    if let Some(found) = which(path) {
        return found;
    }
    panic!(
        "{path} not found: install the {package} package (CI installs it; see the test's header)"
    );
}

pub fn which(name: &str) -> Option<String> {
    if name.contains('/') {
        return std::path::Path::new(name)
            .exists()
            .then(|| name.to_string());
    }
    std::env::var("PATH").ok()?.split(':').find_map(|dir| {
        let p = std::path::Path::new(dir).join(name);
        p.exists().then(|| p.display().to_string())
    })
}

/// Polls `f` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A self-signed certificate for `127.0.0.1`/`localhost`, written as PEM files.
pub fn self_signed(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let c = dir.join("cert.pem");
    let k = dir.join("key.pem");
    std::fs::write(&c, cert.cert.pem()).unwrap();
    std::fs::write(&k, cert.key_pair.serialize_pem()).unwrap();
    (c, k)
}

/// The `rotel-agent` binary that `pip install rotel` ships (on PATH, or inside the package).
pub fn rotel_agent() -> String {
    if let Some(p) = which("rotel-agent") {
        return p;
    }
    let out = Command::new("python3")
        .args([
            "-c",
            "import rotel, os; print(os.path.join(os.path.dirname(rotel.__file__), 'rotel-agent'))",
        ])
        .output();
    if let Ok(o) = out {
        let p = String::from_utf8_lossy(&o.stdout).trim().to_string();
        if o.status.success() && std::path::Path::new(&p).exists() {
            return p;
        }
    }
    panic!("rotel-agent not found: install it with `pip install rotel` (CI installs it)");
}

/// A rotel agent receiving OTLP on two ports and logging every item it gets.
pub struct Rotel {
    pub peer: Peer,
    pub grpc: u16,
    pub http: u16,
    pub log: std::path::PathBuf,
}

impl Rotel {
    pub async fn start(dir: &std::path::Path, grpc: u16, http: u16, log_name: &str) -> Rotel {
        let bin = rotel_agent();
        let log = dir.join(log_name);
        let peer = Peer::spawn(
            "rotel-agent",
            Command::new(bin).args([
                "start",
                "--otlp-grpc-endpoint",
                &format!("127.0.0.1:{grpc}"),
                "--otlp-http-endpoint",
                &format!("127.0.0.1:{http}"),
                "--exporter",
                "blackhole",
                "--debug-log",
                "metrics",
                "--debug-log",
                "traces",
                "--debug-log-verbosity",
                "detailed",
            ]),
            &log,
        );
        eventually("rotel to listen", Duration::from_secs(20), || {
            let a: SocketAddr = ([127, 0, 0, 1], grpc).into();
            let b: SocketAddr = ([127, 0, 0, 1], http).into();
            (TcpStream::connect(a).is_ok() && TcpStream::connect(b).is_ok()).then_some(())
        })
        .await;
        Rotel {
            peer,
            grpc,
            http,
            log,
        }
    }

    pub fn items(&self) -> Vec<RotelItem> {
        parse_rotel_log(&std::fs::read_to_string(&self.log).unwrap_or_default())
    }
}

/// One data point or span as rotel's detailed debug log shows it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RotelItem {
    /// `span`, `number` or `histogram`.
    pub kind: &'static str,
    /// `key: Str(value)` lines of the resource.
    pub resource: Vec<String>,
    pub scope: String,
    pub metric: String,
    /// Descriptor lines of the metric (`DataType: Sum`, `IsMonotonic: true`, ...).
    pub descriptor: Vec<String>,
    /// `key: Int(1)` lines of the point's or span's attributes.
    pub attributes: Vec<String>,
    /// `Field: value` lines of the point or span (`Value: 5`, `Name: GET /`, `Count: 3`).
    pub fields: Vec<(String, String)>,
}

impl RotelItem {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

pub fn parse_rotel_log(text: &str) -> Vec<RotelItem> {
    #[derive(PartialEq)]
    enum Mode {
        None,
        Resource,
        Descriptor,
        Attributes,
    }
    let mut out = Vec::new();
    let mut resource = Vec::new();
    let mut scope = String::new();
    let mut metric = String::new();
    let mut descriptor = Vec::new();
    let mut current: Option<RotelItem> = None;
    let mut mode = Mode::None;
    for raw in text.lines() {
        let line = raw.trim();
        let starts = |p: &str| line.starts_with(p);
        if starts("ResourceSpans #") || starts("ResourceMetrics #") {
            out.extend(current.take());
            resource.clear();
            mode = Mode::None;
        } else if line == "Resource attributes:" {
            mode = Mode::Resource;
        } else if let Some(s) = line.strip_prefix("InstrumentationScope ") {
            scope = s.trim().to_string();
            mode = Mode::None;
        } else if starts("Metric #") {
            out.extend(current.take());
            metric.clear();
            descriptor.clear();
            mode = Mode::None;
        } else if line == "Descriptor:" {
            mode = Mode::Descriptor;
        } else if starts("NumberDataPoints #")
            || starts("HistogramDataPoints #")
            || starts("Span #")
        {
            out.extend(current.take());
            current = Some(RotelItem {
                kind: if starts("Span #") {
                    "span"
                } else if starts("Number") {
                    "number"
                } else {
                    "histogram"
                },
                resource: resource.clone(),
                scope: scope.clone(),
                metric: metric.clone(),
                descriptor: descriptor.clone(),
                ..Default::default()
            });
            mode = Mode::None;
        } else if line == "Data point attributes:" || line == "Attributes:" {
            mode = Mode::Attributes;
        } else if let Some(kv) = line.strip_prefix("-> ") {
            match mode {
                Mode::Resource => resource.push(kv.to_string()),
                Mode::Descriptor => {
                    if let Some(n) = kv.strip_prefix("Name: ") {
                        metric = n.to_string();
                    }
                    descriptor.push(kv.to_string());
                }
                Mode::Attributes => {
                    if let Some(c) = current.as_mut() {
                        c.attributes.push(kv.to_string())
                    }
                }
                Mode::None => {}
            }
        } else if let Some((k, v)) = line.split_once(':') {
            if let Some(c) = current.as_mut() {
                c.fields.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
    }
    out.extend(current);
    out
}
