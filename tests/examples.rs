//! Every configuration in configs/examples passes `tapline validate`, and each one that needs no
//! cluster runs for a few seconds against real traffic (a python3 http.server on loopback,
//! curl as its client) with its ports remapped by `--set`, and delivers real data: scraped
//! from its Prometheus endpoint, or printed by an in-test OTLP sink (a second tapline with the
//! `otlp` receiver and the detailed `debug` exporter).
//!
//! Runs as root (the eBPF receivers); needs `python3` and `curl`. The Kubernetes processors
//! are in every example with `enable: auto`, which is off outside a cluster.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tapline_test_support::eventually;
use tapline_test_support::net::{free_port, http_get};
use tapline_test_support::process::Processes;

const EXAMPLES: [&str; 5] = [
    "cardinality.yaml",
    "gateway.yaml",
    "network-k8s.yaml",
    "red-otlp.yaml",
    "shared-receiver.yaml",
];

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/examples")
}

/// A `tapline` command with an environment that cannot change the configuration: no
/// `TAPLINE_*` overrides, no cluster, no OTLP variables from the caller.
fn tapline() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tapline"));
    for (k, _) in std::env::vars() {
        if k.starts_with("TAPLINE_") || k.starts_with("OTEL_") {
            c.env_remove(k);
        }
    }
    c.env_remove("KUBERNETES_SERVICE_HOST");
    c.env_remove("NODE_NAME");
    c.stdin(Stdio::null());
    c
}

fn assert_root() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test loads eBPF programs: run it as root (scripts/test.sh does)"
    );
}

#[test]
fn every_example_validates() {
    let mut found: Vec<String> = std::fs::read_dir(examples_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") || n.ends_with(".yml"))
        .collect();
    found.sort();
    assert_eq!(found, EXAMPLES, "a new example needs a test here");
    for name in &found {
        let out = tapline()
            .args(["validate", "--config"])
            .arg(examples_dir().join(name))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{name}:\n{stderr}");
        assert!(
            !stderr.contains("error") && !stderr.contains("warning"),
            "{name}: validate printed problems:\n{stderr}"
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("configuration is valid"));
    }
}

// ---- Running the examples ----

/// The test's processes, logging into its temporary directory; stopped when the test ends,
/// also on failure.
struct Procs {
    processes: Processes,
    dir: tempfile::TempDir,
}

impl std::ops::Deref for Procs {
    type Target = Processes;
    fn deref(&self) -> &Processes {
        &self.processes
    }
}

impl std::ops::DerefMut for Procs {
    fn deref_mut(&mut self) -> &mut Processes {
        &mut self.processes
    }
}

impl Procs {
    fn new() -> Procs {
        let dir = tempfile::tempdir().unwrap();
        Procs {
            processes: Processes::new(dir.path()),
            dir,
        }
    }

    /// Starts the python web server on 127.0.0.1:`port` and waits until it answers.
    fn web_server(&mut self, port: u16) {
        let www = self.dir.path().join("www");
        std::fs::create_dir_all(&www).unwrap();
        std::fs::write(www.join("index.html"), "hello from the examples test\n").unwrap();
        self.spawn(
            "web",
            Command::new("python3")
                .args([
                    "-m",
                    "http.server",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                ])
                .arg("--directory")
                .arg(&www)
                .env("OTEL_SERVICE_NAME", "examples-web"),
        );
        self.wait_http(port, "/index.html", "python3 http.server");
    }

    /// Waits until `GET path` on 127.0.0.1:`port` answers 200.
    fn wait_http(&mut self, port: u16, path: &str, what: &str) {
        eventually(
            &format!("{what} to answer 200 on {path}"),
            Duration::from_secs(30),
            || {
                self.check_alive();
                match http_get(format!("127.0.0.1:{port}"), path, &[]) {
                    Ok((200, _)) => Ok(()),
                    other => Err(format!("{other:?}\n{}", self.all_logs())),
                }
            },
        );
    }

    /// Sends requests with curl (200s and 404s) until `done` says so or the deadline passes;
    /// returns what `done` found.
    fn traffic_until<T>(&mut self, web_port: u16, mut done: impl FnMut(&Procs) -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            for path in ["/index.html", "/missing/12345"] {
                let status = Command::new("curl")
                    .args(["-s", "-o", "/dev/null", "--max-time", "5"])
                    .arg(format!("http://127.0.0.1:{web_port}{path}"))
                    .status()
                    .expect("curl is needed (apt package curl)");
                assert!(status.success(), "curl {path}: {status}");
            }
            if let Some(v) = done(self) {
                return v;
            }
            self.check_alive();
            assert!(
                Instant::now() < deadline,
                "the expected data never arrived:\n{}",
                self.all_logs()
            );
            // Traffic in rounds, as a client would send it: pacing, not waiting for a result.
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// The scraped series of `metric` (exact name) as (labels, value).
fn series(scrape: &str, metric: &str) -> Vec<(Vec<(String, String)>, f64)> {
    scrape
        .lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")) || l.starts_with(&format!("{metric} ")))
        .map(|l| {
            let (head, value) = l.rsplit_once(' ').unwrap();
            let labels = head
                .split_once('{')
                .map(|(_, rest)| rest.trim_end_matches('}'))
                .unwrap_or("");
            let labels = labels
                .split("\",")
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once("=\"").unwrap();
                    (k.to_string(), v.trim_end_matches('"').to_string())
                })
                .collect();
            (labels, value.parse().unwrap())
        })
        .collect()
}

fn label<'a>(labels: &'a [(String, String)], key: &str) -> Option<&'a str> {
    labels
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn scrape(port: u16) -> String {
    match http_get(format!("127.0.0.1:{port}"), "/metrics", &[]) {
        Ok((200, body)) => body,
        _ => String::new(),
    }
}

/// `run --config <example>` with flows on loopback only, short periods, and the Prometheus
/// and telemetry endpoints on free ports.
fn run_example(example: &str, prometheus: u16, telemetry: u16) -> Command {
    let mut c = tapline();
    c.args(["run", "--config"])
        .arg(examples_dir().join(example))
        .args(["--set", "receivers.flows.interfaces=[lo]"])
        .args(["--set", "receivers.flows.exclude_interfaces=[]"])
        .args(["--set", "receivers.flows.cache_active_timeout=1s"])
        .args([
            "--set",
            &format!("exporters.prometheus.endpoint=127.0.0.1:{prometheus}"),
        ])
        .args([
            "--set",
            &format!("service.telemetry.metrics.endpoint=127.0.0.1:{telemetry}"),
        ]);
    c
}

#[test]
fn network_k8s_serves_loopback_flows_by_cidr() {
    assert_root();
    let (web, prom, tel) = (free_port(), free_port(), free_port());
    let mut p = Procs::new();
    p.web_server(web);
    p.spawn("tapline", &mut run_example("network-k8s.yaml", prom, tel));
    p.wait_http(tel, "/readyz", "tapline");
    let found = p.traffic_until(web, |_| {
        series(&scrape(prom), "tapline_network_flow_bytes_total")
            .into_iter()
            .find(|(l, v)| {
                label(l, "transport") == Some("tcp")
                    && label(l, "src_cidr") == Some("loopback")
                    && *v > 0.0
            })
    });
    // select: {} keeps the default set: no addresses, no ports, no interface.
    for gone in [
        "src_address",
        "dst_address",
        "server_port",
        "iface",
        "tapline_ip",
    ] {
        assert!(label(&found.0, gone).is_none(), "{gone} left in {found:?}");
    }
    assert!(label(&found.0, "direction").is_some(), "{found:?}");
    // Outside a cluster `enable: auto` turns the k8s processor off: nothing is named by it.
    assert!(
        found.0.iter().all(|(k, _)| !k.starts_with("k8s_")),
        "{found:?}"
    );
}

#[test]
fn cardinality_select_keeps_only_the_listed_attributes() {
    assert_root();
    let (web, prom, tel) = (free_port(), free_port(), free_port());
    let mut p = Procs::new();
    p.web_server(web);
    p.spawn(
        "tapline",
        run_example("cardinality.yaml", prom, tel)
            .args(["--set", "receivers.app.metrics_interval=1s"])
            .args(["--set", "receivers.app.discovery.poll_interval=1s"]),
    );
    p.wait_http(tel, "/readyz", "tapline");
    let text = p.traffic_until(web, |_| {
        let s = scrape(prom);
        let server = series(&s, "http_server_request_duration_seconds_count")
            .iter()
            .any(|(l, v)| label(l, "service_name") == Some("examples-web") && *v > 0.0);
        let flows = !series(&s, "tapline_network_flow_bytes_total").is_empty()
            && !series(&s, "tapline_network_flow_packets_total").is_empty();
        (server && flows).then_some(s)
    });
    let allowed = |metric: &str, keys: &[&str]| {
        for (labels, _) in series(&text, metric) {
            for (k, _) in &labels {
                assert!(
                    keys.contains(&k.as_str())
                        || k.starts_with("k8s_src_owner_")
                        || k.starts_with("k8s_dst_owner_"),
                    "{metric}: label {k} is not selected: {labels:?}"
                );
            }
        }
    };
    allowed(
        "tapline_network_flow_bytes_total",
        &["src_cidr", "dst_cidr", "transport", "direction"],
    );
    allowed("tapline_network_flow_packets_total", &["transport"]);
    let service = ["service_name", "service_namespace"];
    let mut server_keys = vec![
        "http_request_method",
        "http_route",
        "http_response_status_code",
        "error_type",
    ];
    server_keys.extend(service);
    allowed("http_server_request_duration_seconds_count", &server_keys);
    let mut body_keys = vec!["http_request_method", "http_response_status_code"];
    body_keys.extend(service);
    allowed("http_server_response_body_size_bytes_count", &body_keys);
    // The route of /missing/12345 is templated by the heuristic.
    assert!(
        series(&text, "http_server_request_duration_seconds_count")
            .iter()
            .any(|(l, _)| label(l, "http_route") == Some("/missing/*")
                && label(l, "http_response_status_code") == Some("404")),
        "{text}"
    );
    // The configured buckets are the ones served.
    let les: Vec<String> = series(&text, "http_server_request_duration_seconds_bucket")
        .iter()
        .filter(|(l, _)| label(l, "service_name") == Some("examples-web"))
        .filter_map(|(l, _)| label(l, "le").map(str::to_string))
        .collect();
    for le in ["0.005", "0.025", "0.1", "0.5", "2.5", "10.0", "+Inf"] {
        assert!(les.iter().any(|x| x == le), "bucket {le} missing: {les:?}");
    }
    assert!(
        !les.iter().any(|x| x == "0.25"),
        "a default bucket is served: {les:?}"
    );
    // Per-process resource attributes are gone from target_info.
    assert!(!text.contains("process_pid="), "{text}");
}

#[test]
fn shared_receiver_feeds_both_pipelines() {
    assert_root();
    let (web, prom, peers, tel) = (free_port(), free_port(), free_port(), free_port());
    let mut p = Procs::new();
    p.web_server(web);
    p.spawn(
        "tapline",
        run_example("shared-receiver.yaml", prom, tel).args([
            "--set",
            &format!("exporters.prometheus/peers.endpoint=127.0.0.1:{peers}"),
        ]),
    );
    p.wait_http(tel, "/readyz", "tapline");
    let (owners, by_peer) = p.traffic_until(web, |_| {
        let owners = series(&scrape(prom), "tapline_network_flow_bytes_total");
        let by_peer = series(&scrape(peers), "tapline_network_flow_bytes_total");
        let web_port = web.to_string();
        let seen = owners
            .iter()
            .any(|(l, _)| label(l, "src_cidr") == Some("loopback"))
            && by_peer
                .iter()
                .any(|(l, _)| label(l, "server_port") == Some(web_port.as_str()));
        seen.then_some((owners, by_peer))
    });
    // One receiver, two views: aggregated without addresses, per peer with them.
    assert!(
        owners
            .iter()
            .all(|(l, _)| label(l, "src_address").is_none()),
        "{owners:?}"
    );
    assert!(
        by_peer
            .iter()
            .all(|(l, _)| label(l, "src_address").is_some() && label(l, "dst_address").is_some()),
        "{by_peer:?}"
    );
    assert!(
        by_peer.iter().all(|(l, _)| label(l, "src_cidr").is_none()),
        "{by_peer:?}"
    );
    // The flows receiver was started once.
    let attached = p
        .log("tapline")
        .matches("attached receiver=receivers.flows")
        .count();
    assert_eq!(attached, 1, "{}", p.log("tapline"));
}

/// red-otlp (agent, HTTP/protobuf) → gateway (OTLP in, k8s + attributes, OTLP/gRPC out) →
/// an OTLP sink printing every item.
#[test]
fn red_otlp_through_the_gateway_reaches_an_otlp_sink() {
    assert_root();
    let (web, sink_grpc, gw_grpc, gw_http) = (free_port(), free_port(), free_port(), free_port());
    let (agent_tel, gw_tel, sink_tel) = (free_port(), free_port(), free_port());
    let mut p = Procs::new();
    p.web_server(web);

    let sink_cfg = p.dir.path().join("sink.yaml");
    std::fs::write(
        &sink_cfg,
        format!(
            "receivers:\n  otlp:\n    protocols:\n      grpc: {{ endpoint: \"127.0.0.1:{sink_grpc}\" }}\n\
             exporters:\n  debug: {{ verbosity: detailed }}\n\
             service:\n  pipelines:\n    metrics: {{ receivers: [otlp], exporters: [debug] }}\n    \
             traces: {{ receivers: [otlp], exporters: [debug] }}\n  \
             telemetry: {{ metrics: {{ endpoint: \"127.0.0.1:{sink_tel}\" }} }}\n"
        ),
    )
    .unwrap();
    p.spawn("sink", tapline().args(["run", "--config"]).arg(&sink_cfg));
    p.wait_http(sink_tel, "/readyz", "the OTLP sink");

    p.spawn(
        "gateway",
        tapline()
            .args(["run", "--config"])
            .arg(examples_dir().join("gateway.yaml"))
            .args([
                "--set",
                &format!("receivers.otlp.protocols.grpc.endpoint=127.0.0.1:{gw_grpc}"),
            ])
            .args([
                "--set",
                &format!("receivers.otlp.protocols.http.endpoint=127.0.0.1:{gw_http}"),
            ])
            .args([
                "--set",
                &format!("exporters.otlp.endpoint=http://127.0.0.1:{sink_grpc}"),
            ])
            .args([
                "--set",
                &format!("service.telemetry.metrics.endpoint=127.0.0.1:{gw_tel}"),
            ])
            .env("HOSTNAME", "gw-under-test"),
    );
    p.wait_http(gw_tel, "/readyz", "the gateway");

    // The agent takes the standard OTLP variables, as the example's comment says.
    p.spawn(
        "agent",
        tapline()
            .args(["run", "--config"])
            .arg(examples_dir().join("red-otlp.yaml"))
            .args(["--set", "receivers.app.metrics_interval=1s"])
            .args(["--set", "receivers.app.discovery.poll_interval=1s"])
            .args([
                "--set",
                &format!("service.telemetry.metrics.endpoint=127.0.0.1:{agent_tel}"),
            ])
            .env(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("http://127.0.0.1:{gw_http}"),
            )
            .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
            .env("APP_PORTS", web.to_string())
            .env("DEPLOY_ENV", "examples-test"),
    );
    p.wait_http(agent_tel, "/readyz", "the agent");

    let route_span = "span \"GET /missing/*\"";
    let out = p.traffic_until(web, |p| {
        let out = p.log("sink");
        let span = out.lines().any(|l| {
            l.contains(route_span)
                && l.contains("tapline.gateway=gw-under-test")
                && l.contains("deployment.environment=examples-test")
                && l.contains("http.response.status_code=404")
        });
        let metric = out.contains("metric http.server.request.duration (s)");
        (span && metric).then_some(out)
    });
    // Data points went through the gateway's attributes processor too; the agent's select
    // removed the pid from the resource.
    let point_lines: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.contains("metric http.server.request.duration (s)"))
        .skip(1)
        .take_while(|l| l.starts_with("    {"))
        .collect();
    assert!(!point_lines.is_empty(), "{out}");
    assert!(
        point_lines
            .iter()
            .all(|l| l.contains("tapline.gateway=gw-under-test")),
        "{out}"
    );
    let resource = out
        .lines()
        .find(|l| l.contains("metric http.server.request.duration (s)"))
        .unwrap();
    assert!(resource.contains("service.name=examples-web"), "{resource}");
    assert!(!resource.contains("process.pid="), "{resource}");
}
