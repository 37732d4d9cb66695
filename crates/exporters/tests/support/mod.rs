//! Shared by the exporter integration tests: the peers they export to (rotel, an OTLP
//! receiver that logs what it gets) and a self-signed certificate. The graph harness, the
//! `feed` receiver, ports and polling come from tapline-test-support.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use tapline_test_support::process::find_program;
use tapline_test_support::{eventually_async, ChildGuard};

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
    if let Some(p) = find_program("rotel-agent") {
        return p.display().to_string();
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
    pub peer: ChildGuard,
    pub grpc: u16,
    pub http: u16,
    pub log: std::path::PathBuf,
}

impl Rotel {
    pub async fn start(dir: &std::path::Path, grpc: u16, http: u16, log_name: &str) -> Rotel {
        let bin = rotel_agent();
        let log = dir.join(log_name);
        let peer = ChildGuard::spawn_logged(
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
        eventually_async("rotel to listen", Duration::from_secs(20), || {
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
            // A new block: nothing of the previous one (a metric's name, its descriptor)
            // belongs to what follows, whichever signal rotel happens to log first.
            resource.clear();
            metric.clear();
            descriptor.clear();
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
