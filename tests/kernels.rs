//! The `tapline` binary on the kernels users run. The checks in `checks` run here, on the
//! host's kernel, like every other test; `vm_6_1_full` runs the same checks (this very test
//! executable) again inside a VM booted with Debian 12's Linux 6.1 (QEMU TCG, the host's root
//! read-only over 9p: `tapline_test_support::vm`), where the app receiver takes its fexit
//! hooks. Root required.
//!
//! Each check starts `tapline run` with its own config, waits for `/readyz`, drives real
//! traffic, reads what the Prometheus exporter exposes, then SIGTERMs it and checks exit 0 and
//! that nothing it loaded or attached stays behind (programs, TCX links, tc filters).
//!
//! `vm_6_1_quick` (ignored; `cargo test --release --test kernels -- --ignored vm_6_1_quick`)
//! runs the flows and doctor checks alone in the VM.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tapline_test_support::netns::*;
use tapline_test_support::process::{assert_bpf_objects_released, bpf_objects};
use tapline_test_support::vm::{in_vm, Kernel};
use tapline_test_support::{eventually, free_port, need, wait_port, ChildGuard};

/// Generous: under TCG everything is ~20x slower than on hardware.
fn patience() -> Duration {
    if in_vm() {
        Duration::from_secs(120)
    } else {
        Duration::from_secs(30)
    }
}

// ---------- the tapline process ----------

struct Tapline {
    child: ChildGuard,
    dir: tempfile::TempDir,
    netns: Option<String>,
    prom: u16,
    /// Its self-telemetry port (`/metrics`, `/readyz`).
    telemetry: u16,
    /// (program ids, link ids) it held once ready.
    held: (Vec<u32>, Vec<u32>),
}

impl Tapline {
    /// Starts `tapline run` (in `netns` when given) with `config`, in which `PROM` and
    /// `TELEMETRY` stand for free ports; returns once `/readyz` answers 200 and `ready` holds
    /// for its stderr (the log).
    fn start(netns: Option<&str>, config: &str, ready: impl Fn(&str) -> bool) -> Tapline {
        Self::start_under(netns, &[], config, ready)
    }

    /// The same, run through `wrapper` (a command and its arguments that exec tapline, such
    /// as `setpriv ... --`).
    fn start_under(
        netns: Option<&str>,
        wrapper: &[&str],
        config: &str,
        ready: impl Fn(&str) -> bool,
    ) -> Tapline {
        let dir = tempfile::tempdir().unwrap();
        let (prom, telemetry) = (free_port(), free_port());
        let cfg = dir.path().join("tapline.yaml");
        std::fs::write(
            &cfg,
            config
                .replace("PROM", &prom.to_string())
                .replace("TELEMETRY", &telemetry.to_string()),
        )
        .unwrap();
        let mut argv: Vec<&str> = Vec::new();
        if let Some(ns) = netns {
            argv.extend(["ip", "netns", "exec", ns]);
        }
        argv.extend(wrapper);
        argv.push(env!("CARGO_BIN_EXE_tapline"));
        let mut cmd = Command::new(argv[0]);
        cmd.args(&argv[1..]);
        cmd.args(["run", "--config"]).arg(&cfg);
        cmd.env("TAPLINE_LOG", "info");
        let child = ChildGuard::spawn_logged("tapline", &mut cmd, &dir.path().join("log"));
        let mut t = Tapline {
            child,
            dir,
            netns: netns.map(str::to_owned),
            prom,
            telemetry,
            held: (Vec::new(), Vec::new()),
        };
        eventually("tapline to be ready", patience(), || {
            if let Some(status) = t.child.exited() {
                panic!(
                    "tapline exited before it was ready ({status}):\n{}",
                    t.log()
                );
            }
            let readyz = t.get(telemetry, "/readyz");
            match readyz {
                Ok((200, _)) if ready(&t.log()) => Ok(()),
                Ok((code, _)) => Err(format!("/readyz {code}; log:\n{}", t.log())),
                Err(e) => Err(format!("/readyz: {e}")),
            }
        });
        t.held = bpf_objects(t.child.id());
        t
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    /// GET on 127.0.0.1:`port` in tapline's namespace.
    fn get(&self, port: u16, path: &str) -> std::io::Result<(u16, String)> {
        let path = path.to_owned();
        let get =
            move || tapline_test_support::net::http_get(format!("127.0.0.1:{port}"), &path, &[]);
        match &self.netns {
            Some(ns) => in_netns(ns, get),
            None => get(),
        }
    }

    /// The sum of the samples of `metric` whose labels include every pair of `labels`, from
    /// the Prometheus exporter.
    fn sum(&self, metric: &str, labels: &[(&str, &str)]) -> Result<f64, String> {
        self.sum_at(self.prom, metric, labels)
    }

    /// The same from the `/metrics` served on `port` (the exporter's, or self-telemetry's).
    fn sum_at(&self, port: u16, metric: &str, labels: &[(&str, &str)]) -> Result<f64, String> {
        let (code, text) = self.get(port, "/metrics").map_err(|e| e.to_string())?;
        if code != 200 {
            return Err(format!("/metrics answered {code}"));
        }
        Ok(samples(&text, metric)
            .into_iter()
            .filter(|(l, _)| {
                labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, v)| v)
            .sum())
    }

    /// SIGTERM; checks exit 0 within the patience and that nothing tapline held remains.
    /// Returns its log.
    fn stop_cleanly(mut self) -> String {
        let pid = self.child.id();
        // What it holds now (the receivers load their programs after /readyz), and before.
        let (mut progs, mut links) = bpf_objects(pid);
        progs.extend(&self.held.0);
        links.extend(&self.held.1);
        // SAFETY: signalling our own child (`ip netns exec` and the wrapper exec tapline: same
        // pid).
        assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGTERM) }, 0);
        let status = eventually("tapline to exit after SIGTERM", patience(), || {
            self.child.exited()
        });
        let log = self.log();
        assert_eq!(status.code(), Some(0), "exit status; log:\n{log}");
        assert!(
            !progs.is_empty(),
            "tapline held no eBPF programs; log:\n{log}"
        );
        assert_bpf_objects_released(&progs, &links);
        log
    }
}

/// (labels, value) of every sample of `metric` in a Prometheus text exposition.
fn samples(text: &str, metric: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(metric) else {
            continue;
        };
        let (labels, value) = match rest.strip_prefix('{') {
            Some(r) => match r.rsplit_once('}') {
                Some((l, v)) => (l, v),
                None => continue,
            },
            None if rest.starts_with(' ') => ("", rest),
            None => continue,
        };
        let Some(value) = value.split_whitespace().next().and_then(|v| v.parse().ok()) else {
            continue;
        };
        let mut map = BTreeMap::new();
        for pair in labels.split("\",").filter(|p| !p.is_empty()) {
            if let Some((k, v)) = pair.split_once("=\"") {
                map.insert(
                    k.trim_start_matches(',').to_owned(),
                    v.trim_end_matches('"').to_owned(),
                );
            }
        }
        out.push((map, value));
    }
    out
}

/// The tc filters on `dev` in `ns`, both directions, as `tc` prints them.
fn tc_filters(ns: &str, dev: &str) -> String {
    ["ingress", "egress"]
        .iter()
        .map(|dir| sh_out(&["tc", "-n", ns, "filter", "show", "dev", dev, dir]))
        .collect::<Vec<_>>()
        .join("")
}

// ---------- peers ----------

const PY_SERVER: &str = r#"
import sys, ssl, http.server, socketserver
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"hello")
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
srv = S(("127.0.0.1", int(sys.argv[1])), H)
if len(sys.argv) > 2:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[2], sys.argv[3])
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
"#;

fn python_server(port: u16, tls: Option<(&Path, &Path)>) -> ChildGuard {
    need("python3", "apt-get install python3");
    let mut cmd = Command::new("python3");
    cmd.args(["-c", PY_SERVER, &port.to_string()]);
    if let Some((cert, key)) = tls {
        cmd.arg(cert).arg(key);
    }
    let p = ChildGuard::spawn("python server", &mut cmd);
    wait_port(port, patience());
    p
}

/// curl with every body to /dev/null (`-k`: self-signed); the status codes, one per line.
fn curl(urls: &[String]) -> String {
    need("curl", "apt-get install curl");
    let mut cmd = Command::new("curl");
    cmd.args(["-k", "-s", "-w", "%{http_code}\n"]);
    for u in urls {
        cmd.args(["-o", "/dev/null", u]);
    }
    tapline_test_support::process::run(&mut cmd, patience())
}

fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    need("openssl", "apt-get install openssl");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    tapline_test_support::process::run(
        Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args(["-subj", "/CN=localhost", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert),
        patience(),
    );
    (cert, key)
}

const SERVER_COUNT: &str = "http_server_request_duration_seconds_count";
const CLIENT_COUNT: &str = "http_client_request_duration_seconds_count";

/// The app receiver exporting to Prometheus; `/users/{id}` is a route.
const APP_CONFIG: &str = r#"
receivers:
  app:
    metrics_interval: 1s
    routes: { patterns: ["/users/{id}"] }
exporters:
  prometheus: { endpoint: "127.0.0.1:PROM" }
service:
  pipelines:
    metrics: { receivers: [app], exporters: [prometheus] }
  telemetry: { metrics: { endpoint: "127.0.0.1:TELEMETRY" } }
"#;

/// Requests `/warmup` on each base URL until the server side of each is counted: the capture
/// is attached and reading.
fn warm_up(t: &Tapline, bases: &[(&str, u16)]) {
    eventually("the warm-up requests to be counted", patience(), || {
        let urls: Vec<String> = bases.iter().map(|(b, _)| format!("{b}/warmup")).collect();
        curl(&urls);
        for (_, port) in bases {
            let port = port.to_string();
            let n = t.sum(
                SERVER_COUNT,
                &[("http_route", "/warmup"), ("server_port", port.as_str())],
            )?;
            if n < 1.0 {
                return Err(format!("no /warmup on port {port} yet"));
            }
        }
        Ok::<(), String>(())
    });
}

/// 20 requests on one keep-alive connection, then `/done` on its own: once `/done` is counted
/// on both sides, every request before it has been read from the capture too.
fn keep_alive_exact_count(t: &Tapline, base: &str, port: u16, scheme: &str) {
    let urls: Vec<String> = (0..20).map(|i| format!("{base}/users/{i}")).collect();
    assert_eq!(curl(&urls).lines().filter(|l| *l == "200").count(), 20);
    curl(&[format!("{base}/done")]);
    let port_s = port.to_string();
    let on = |route: &'static str| {
        vec![
            ("http_route", route),
            ("server_port", port_s.as_str()),
            ("url_scheme", scheme),
        ]
    };
    eventually("/done to be counted on both sides", patience(), || {
        let s = t.sum(SERVER_COUNT, &on("/done"))?;
        let c = t.sum(CLIENT_COUNT, &on("/done"))?;
        if s >= 1.0 && c >= 1.0 {
            Ok(())
        } else {
            Err(format!("server {s}, client {c}"))
        }
    });
    let server = t.sum(SERVER_COUNT, &on("/users/{id}")).unwrap();
    let client = t.sum(CLIENT_COUNT, &on("/users/{id}")).unwrap();
    let all = t.get(t.prom, "/metrics").map(|r| r.1).unwrap_or_default();
    assert_eq!(
        (server, client),
        (20.0, 20.0),
        "{scheme} server and client counts of /users/{{id}}; exposition:\n{all}"
    );
}

/// The same checks on every kernel: each runs here, and in the VM through `vm_6_1_*`.
mod checks {
    use super::*;

    /// flows on `va` only, evicting every 500 ms, exporting to Prometheus.
    const FLOWS_ON_VA: &str = r#"
receivers: { flows: { interfaces: [va], cache_active_timeout: 500ms } }
exporters: { prometheus: { endpoint: "127.0.0.1:PROM" } }
service:
  pipelines: { metrics: { receivers: [flows], exporters: [prometheus] } }
  telemetry: { metrics: { endpoint: "127.0.0.1:TELEMETRY" } }
"#;

    /// 1 MiB of TCP from A to B over `va`: tapline's byte and packet totals grow by exactly
    /// what `va`'s own counters count.
    fn assert_exact_flow_totals(t: &Tapline, pair: &NetPair) {
        let bytes = "tapline_network_flow_bytes_total";
        let packets = "tapline_network_flow_packets_total";
        let before = pair.counters("va");
        let (b0, p0) = (t.sum(bytes, &[]).unwrap(), t.sum(packets, &[]).unwrap());
        tcp_transfer(pair, B4.parse().unwrap(), 1 << 20);
        pair.wait_still("va", Duration::from_millis(100));
        let after = pair.counters("va");
        let delta: Vec<u64> = (0..5).map(|i| after[i] - before[i]).collect();
        assert_eq!(delta[4], 0, "veth dropped packets");
        let want = (delta[0] + delta[2], delta[1] + delta[3]);
        eventually("the flows to add up to va's counters", patience(), || {
            let got = (
                (t.sum(bytes, &[])? - b0) as u64,
                (t.sum(packets, &[])? - p0) as u64,
            );
            if got == want {
                Ok(())
            } else {
                Err(format!("(bytes, packets) {got:?}, va counted {want:?}"))
            }
        });
    }

    /// Known TCP traffic from namespace A to B over veth `va`, sent the moment `/readyz`
    /// answers 200: tapline in A counts exactly the bytes and packets `va`'s own counters
    /// count, so ready means capturing. It logs the tc attach mode it chose; on a kernel
    /// without TCX its netlink filters are there while it runs and gone after it.
    #[test]
    pub fn flows_exact_bytes_over_veth() {
        require_root();
        let pair = NetPair::new("knl", false);
        pair.wait_quiet("va");
        let t = Tapline::start(Some(&pair.a), FLOWS_ON_VA, |_| true);
        assert_exact_flow_totals(&t, &pair);
        let (code, readyz) = t.get(t.telemetry, "/readyz").unwrap();
        assert_eq!(code, 200, "{readyz}");
        assert!(
            readyz.contains("receiver flows: ready: attached to va\n")
                && readyz.contains("exporter prometheus: ready"),
            "{readyz}"
        );
        let log = t.log();
        let netlink = log.contains("tc_attach=\"netlink clsact filters\"")
            || log.contains("tc_attach=netlink");
        if netlink {
            let filters = tc_filters(&pair.a, "va");
            assert!(
                filters.contains("tapline_tc_in") && filters.contains("tapline_tc_out"),
                "netlink mode, but no tapline filters on va:\n{filters}\nlog:\n{log}"
            );
        }
        let log = t.stop_cleanly();
        let filters = tc_filters(&pair.a, "va");
        assert!(
            !filters.contains("tapline"),
            "filters left:\n{filters}\nlog:\n{log}"
        );
        assert_eq!(
            log.matches("tc capture attach mode chosen").count(),
            1,
            "the attach mode is logged once:\n{log}"
        );
    }

    /// Someone else takes the capture off `va` (`tc filter del` under netlink filters,
    /// `bpftool link detach` under TCX): tapline says so in its log, counts it in
    /// `tapline_flows_attachments_restored_total`, attaches again and counts `va` exactly.
    #[test]
    pub fn flows_capture_detached_by_someone_else_is_restored() {
        require_root();
        let pair = NetPair::new("kdt", false);
        pair.wait_quiet("va");
        let t = Tapline::start(Some(&pair.a), FLOWS_ON_VA, |_| true);
        if t.log().contains("netlink") {
            sh(&["tc", "-n", &pair.a, "filter", "del", "dev", "va", "ingress"]);
        } else {
            let link = t.held.1.first().expect("a TCX link");
            sh(&["bpftool", "link", "detach", "id", &link.to_string()]);
        }
        let restored = "tapline_flows_attachments_restored_total";
        eventually("the capture to be attached again", patience(), || {
            let n = t.sum_at(t.telemetry, restored, &[("receiver", "flows")])?;
            if n == 1.0 {
                Ok(())
            } else {
                Err(format!("{restored} = {n}"))
            }
        });
        assert!(
            t.log()
                .contains("something other than tapline detached the capture"),
            "{}",
            t.log()
        );
        assert_exact_flow_totals(&t, &pair);
        t.stop_cleanly();
    }

    /// The capabilities the DaemonSet grants (`deploy/kubernetes/03-daemonset.yaml`) and no
    /// other, as uid 0 in a container that drops everything else: both eBPF receivers attach
    /// and count exactly (flows: `va`'s bytes; app: 20 HTTP requests on each side), nothing
    /// is logged as a warning, and the running process holds exactly that set. TLS probes are
    /// off: their `perf_event_open` needs `CAP_SYS_ADMIN` (docs/deploy.md).
    #[test]
    pub fn the_daemonset_capabilities_are_enough() {
        require_root();
        need("setpriv", "apt-get install util-linux");
        let manifest: serde_yaml::Value = serde_yaml::from_str(
            &std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes/03-daemonset.yaml"),
            )
            .unwrap(),
        )
        .unwrap();
        let caps: Vec<String> = manifest["spec"]["template"]["spec"]["containers"][0]
            ["securityContext"]["capabilities"]["add"]
            .as_sequence()
            .expect("the DaemonSet's capability list")
            .iter()
            .map(|c| c.as_str().unwrap().to_lowercase())
            .collect();
        let bounding = format!(
            "--bounding-set=-all,{}",
            caps.iter()
                .map(|c| format!("+{c}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        let wrapper = [
            "setpriv",
            bounding.as_str(),
            "--inh-caps=-all",
            "--ambient-caps=-all",
            "--",
        ];
        let pair = NetPair::new("kcap", false);
        pair.wait_quiet("va");
        let port = free_port();
        let _srv = python_server(port, None);
        let config = r#"
receivers:
  flows: { interfaces: [va], cache_active_timeout: 500ms }
  app: { metrics_interval: 1s, routes: { patterns: ["/users/{id}"] }, tls: false }
exporters: { prometheus: { endpoint: "127.0.0.1:PROM" } }
service:
  pipelines: { metrics: { receivers: [flows, app], exporters: [prometheus] } }
  telemetry: { metrics: { endpoint: "127.0.0.1:TELEMETRY" } }
"#;
        // In A: the flows receiver sees va; the app receiver sees every process of the host.
        let t = Tapline::start_under(Some(&pair.a), &wrapper, config, |_| true);
        let status = std::fs::read_to_string(format!("/proc/{}/status", t.child.id())).unwrap();
        let effective = status
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
            .unwrap();
        let number = |name: &str| match name {
            "dac_read_search" => 2,
            "net_admin" => 12,
            "sys_ptrace" => 19,
            "perfmon" => 38,
            "bpf" => 39,
            other => panic!("capability {other} is not known to this test"),
        };
        let want = caps.iter().fold(0u64, |m, c| m | 1 << number(c));
        assert_eq!(effective, want, "tapline's effective capabilities");
        assert_exact_flow_totals(&t, &pair);
        // The server runs in the host's namespace; so does this curl.
        let base = format!("http://127.0.0.1:{port}");
        keep_alive_exact_count(&t, &base, port, "http");
        let log = t.stop_cleanly();
        let warnings: Vec<&str> = log.lines().filter(|l| l.contains("WARN")).collect();
        assert!(warnings.is_empty(), "{warnings:#?}");
    }

    /// tapline killed with SIGKILL cannot detach: on a kernel without TCX its netlink filters
    /// stay. The next start removes them (and says so), attaches its own, and leaves nothing
    /// at its exit. With TCX, nothing outlives the killed process in the first place.
    #[test]
    pub fn flows_filters_left_by_kill_9_are_removed_at_the_next_start() {
        require_root();
        let pair = NetPair::new("k9", false);
        let config = r#"
receivers: { flows: { interfaces: [va] } }
exporters: { prometheus: { endpoint: "127.0.0.1:PROM" } }
service:
  pipelines: { metrics: { receivers: [flows], exporters: [prometheus] } }
  telemetry: { metrics: { endpoint: "127.0.0.1:TELEMETRY" } }
"#;
        let attached = |log: &str| log.contains("tc capture attach mode chosen");
        let mut first = Tapline::start(Some(&pair.a), config, attached);
        let netlink = first.log().contains("netlink");
        first.child.kill();
        let left = tc_filters(&pair.a, "va");
        assert_eq!(
            left.matches(" name tapline_tc_").count(),
            if netlink { 2 } else { 0 },
            "filters after SIGKILL:\n{left}"
        );
        let second = Tapline::start(Some(&pair.a), config, attached);
        let now = tc_filters(&pair.a, "va");
        assert_eq!(
            now.matches(" name tapline_tc_").count(),
            if netlink { 2 } else { 0 },
            "only the running tapline's filters:\n{now}"
        );
        let log = second.stop_cleanly();
        assert_eq!(
            log.contains("removed tc filters a previous tapline left behind"),
            netlink,
            "{log}"
        );
        let after = tc_filters(&pair.a, "va");
        assert!(!after.contains("tapline"), "filters left:\n{after}");
    }

    /// `tapline doctor` names the tc attach mode the flows receiver then takes, and a socket
    /// hook choice for the app receiver.
    #[test]
    pub fn doctor_reports_the_choice_the_flows_receiver_makes() {
        require_root();
        let out = tapline_test_support::process::run(
            Command::new(env!("CARGO_BIN_EXE_tapline")).arg("doctor"),
            patience(),
        );
        let status = |receiver: &str, feature: &str| -> String {
            let line = out
                .lines()
                .find(|l| l.starts_with(receiver) && l.contains(feature))
                .unwrap_or_else(|| panic!("no {receiver} {feature} row:\n{out}"));
            let rest = &line[line.find(feature).unwrap() + feature.len()..];
            rest.trim_start()
                .split("  ")
                .next()
                .unwrap()
                .trim()
                .to_owned()
        };
        let tc = status("flows", "tc capture (source: tc)");
        let hooks = status("app", "socket send/receive hooks");
        assert!(
            ["tp_btf tracepoints", "fexit"].contains(&hooks.as_str()),
            "{hooks}:\n{out}"
        );
        let pair = NetPair::new("doc", false);
        let t = Tapline::start(
            Some(&pair.a),
            r#"
receivers: { flows: { interfaces: [va] } }
exporters: { prometheus: { endpoint: "127.0.0.1:PROM" } }
service:
  pipelines: { metrics: { receivers: [flows], exporters: [prometheus] } }
  telemetry: { metrics: { endpoint: "127.0.0.1:TELEMETRY" } }
"#,
            |log| log.contains("tc capture attach mode chosen"),
        );
        let log = t.stop_cleanly();
        let chosen = if tc == "tcx" {
            "tc_attach=\"tcx\"".to_owned()
        } else {
            format!("tc_attach=\"{tc}\"")
        };
        assert!(
            log.contains(&chosen) || log.contains(&format!("tc_attach={tc}")),
            "doctor said {tc}; the receiver logged:\n{log}\ndoctor:\n{out}"
        );
    }

    /// python `http.server`, curl with 20 requests on one keep-alive connection: exactly 20 on
    /// the server side and 20 on the client side. The log says which socket hooks it chose.
    #[test]
    pub fn http1_keep_alive_exact_count() {
        require_root();
        let port = free_port();
        let _srv = python_server(port, None);
        let t = Tapline::start(None, APP_CONFIG, |_| true);
        let base = format!("http://127.0.0.1:{port}");
        warm_up(&t, &[(&base, port)]);
        keep_alive_exact_count(&t, &base, port, "http");
        let log = t.stop_cleanly();
        assert_eq!(
            log.matches("socket capture hooks chosen").count(),
            1,
            "the capture is logged once:\n{log}"
        );
    }

    /// The same through libssl (python `ssl` server, curl client): plaintext from the uprobes.
    #[test]
    pub fn tls_keep_alive_exact_count() {
        require_root();
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed(dir.path());
        let port = free_port();
        let _srv = python_server(port, Some((&cert, &key)));
        let t = Tapline::start(None, APP_CONFIG, |_| true);
        let base = format!("https://127.0.0.1:{port}");
        warm_up(&t, &[(&base, port)]);
        keep_alive_exact_count(&t, &base, port, "https");
        t.stop_cleanly();
    }
}

/// The flows and doctor checks: `vm_6_1_quick` runs them alone (on demand).
const QUICK: &[&str] = &[
    "checks::flows_exact_bytes_over_veth",
    "checks::flows_capture_detached_by_someone_else_is_restored",
    "checks::flows_filters_left_by_kill_9_are_removed_at_the_next_start",
    "checks::doctor_reports_the_choice_the_flows_receiver_makes",
];

/// The app receiver's checks: on Linux 6.1 through its fexit hooks (docs/kernels.md).
const APP: &[&str] = &[
    "checks::http1_keep_alive_exact_count",
    "checks::tls_keep_alive_exact_count",
];

/// Both receivers under the DaemonSet's capabilities only (flows and app together).
const LEAST_PRIVILEGE: &[&str] = &["checks::the_daemonset_capabilities_are_enough"];

/// Boots `series` and runs `checks` of this test executable in it; panics with the console
/// when one fails.
fn run_in_vm(series: &str, checks: &[&str], timeout: Duration) {
    let Some(kernel) = Kernel::prepare_or_skip(series) else {
        return;
    };
    let exe = std::env::current_exe().unwrap();
    let script = format!(
        "cd /tmp && exec {} --exact {} --test-threads=1 --nocapture 2>&1\n",
        exe.display(),
        checks.join(" ")
    );
    let run = kernel.run(&script, timeout);
    eprintln!(
        "the {} checks ran on {} in {:?}",
        checks.len(),
        kernel.release,
        run.elapsed
    );
    run.assert_success();
    assert!(
        run.console
            .contains(&format!("test result: ok. {} passed", checks.len())),
        "not every check ran:\n{}",
        run.console
    );
}

#[test]
#[ignore = "on demand: vm_6_1_full runs these checks and the app receiver's"]
fn vm_6_1_quick() {
    require_root();
    run_in_vm("6.1", QUICK, Duration::from_secs(600));
}

/// The app receiver's checks on Ubuntu 22.04's 5.15, where `tcp_recvmsg` still has its
/// `nonblock` argument (the flows checks fail there: 5.15's verifier refuses the tc programs,
/// docs/kernels.md).
#[test]
#[ignore = "on demand: prepares Ubuntu's 5.15 kernel package (archive.ubuntu.com)"]
fn vm_5_15_app() {
    require_root();
    run_in_vm("5.15", APP, Duration::from_secs(900));
}

/// Every check on 6.1, the app receiver's included (about 2 minutes under TCG): every
/// `scripts/test.sh` runs it.
#[test]
fn vm_6_1_full() {
    require_root();
    let all: Vec<&str> = QUICK
        .iter()
        .chain(APP)
        .chain(LEAST_PRIVILEGE)
        .copied()
        .collect();
    run_in_vm("6.1", &all, Duration::from_secs(900));
}
