//! The Grafana dashboards in `deploy/grafana/`:
//!
//! - `dashboards_are_well_formed` (no privileges): unique panel ids, grid positions, every
//!   target on the `${datasource}` variable, every `$variable` defined, every metric and label
//!   one that tapline exports (the telemetry schema in `crates/semconv`).
//! - `dashboard_queries_return_data_from_a_real_prometheus` (root, eBPF): tapline runs with the
//!   flows and app receivers, the zones/cidr/select processors and the prometheus exporter;
//!   a python `http.server` on 127.0.0.2 answers a long-lived python client (200s, 404s and
//!   501s), which also talks RESP to a `redis-server` (`apt-get install redis-server`: SET,
//!   GET and a WRONGTYPE error, for the database panels); a real Prometheus (`apt-get install prometheus`) scrapes tapline every second; then
//!   every panel's query, with the variables set to "All", must parse and return data.
//!   Queries over metrics that no receiver produces yet (`PENDING`) must parse and return
//!   nothing, and a tripwire fails once a receiver starts producing them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use tapline_test_support::eventually;
use tapline_test_support::net::{free_port, http_get, url_encode};
use tapline_test_support::process::Processes;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const DASHBOARDS: [&str; 2] = ["network.json", "application.json"];
/// What `$__rate_interval` and `$__range` stand for in the live test (1 s scrapes).
const RATE_INTERVAL: &str = "10s";
const RANGE: &str = "2m";

/// Metrics the dashboards show that no tapline receiver produces yet, with the OpenTelemetry
/// name that the tripwire looks for in the receivers' sources. (Database metrics left this
/// list when the app receiver began parsing Redis, PostgreSQL and MySQL: the live test makes
/// Redis traffic.)
const PENDING: &[(&str, &str, &str)] = &[];

struct Query {
    dashboard: String,
    panel: String,
    ref_id: String,
    expr: String,
    legend: String,
}

fn load(name: &str) -> Value {
    let path = Path::new(ROOT).join("deploy/grafana").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn all_panels(panels: &Value, out: &mut Vec<Value>) {
    for p in panels.as_array().into_iter().flatten() {
        out.push(p.clone());
        all_panels(&p["panels"], out);
    }
}

fn queries(name: &str, d: &Value) -> Vec<Query> {
    let mut panels = Vec::new();
    all_panels(&d["panels"], &mut panels);
    let mut out = Vec::new();
    for p in &panels {
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push(Query {
                dashboard: name.to_string(),
                panel: p["title"].as_str().unwrap_or_default().to_string(),
                ref_id: t["refId"].as_str().unwrap_or_default().to_string(),
                expr: t["expr"].as_str().unwrap_or_default().to_string(),
                legend: t["legendFormat"].as_str().unwrap_or_default().to_string(),
            });
        }
    }
    out
}

/// Variable name → the value standing for "All".
fn variables(d: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for v in d["templating"]["list"].as_array().into_iter().flatten() {
        let name = v["name"].as_str().unwrap().to_string();
        if v["type"] == "datasource" {
            continue;
        }
        assert_eq!(
            v["includeAll"], true,
            "variable {name}: needs an All option"
        );
        let all = v["allValue"]
            .as_str()
            .unwrap_or_else(|| panic!("variable {name}: needs allValue"));
        out.insert(name, all.to_string());
    }
    out
}

/// `expr` with Grafana's variables replaced; panics on an undefined variable.
fn substitute(expr: &str, vars: &BTreeMap<String, String>, ctx: &str) -> String {
    let mut s = expr
        .replace("$__rate_interval", RATE_INTERVAL)
        .replace("$__range", RANGE);
    for (name, all) in vars {
        s = s
            .replace(&format!("${{{name}}}"), all)
            .replace(&format!("${name}"), all);
    }
    assert!(!s.contains('$'), "{ctx}: undefined variable in {expr}");
    s
}

/// The default attributes of tapline's metrics (the telemetry schema, `tapline-semconv`) as
/// Prometheus labels, plus the resource attributes that become labels and `le`.
fn known_labels() -> BTreeSet<String> {
    let resource = [
        tapline_semconv::attr::SERVICE_NAME,
        tapline_semconv::attr::SERVICE_NAMESPACE,
    ];
    tapline_semconv::metric::ALL
        .iter()
        .flat_map(|m| m.default_attributes.iter())
        .chain(resource.iter())
        .map(|key| tapline_semconv::prometheus::label_name(key))
        .chain(std::iter::once("le".to_string()))
        .collect()
}

/// The Prometheus names of tapline's metrics, from the telemetry schema.
fn known_metrics() -> BTreeSet<String> {
    tapline_semconv::metric::ALL
        .iter()
        .map(|m| m.prometheus_name())
        .collect()
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Label names a query uses: in `by (...)` / `without (...)` and in `{...}` matchers.
fn labels_in(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for kw in ["by (", "without ("] {
        for piece in expr.split(kw).skip(1) {
            let list = piece.split(')').next().unwrap();
            out.extend(list.split(',').map(|l| l.trim().to_string()));
        }
    }
    for piece in expr.split('{').skip(1) {
        let inner = piece.split('}').next().unwrap();
        for m in inner.split(',') {
            let name: String = m.trim().chars().take_while(|c| is_ident(*c)).collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

/// Metric names a query uses: identifiers followed by `{` or `[`.
fn metrics_in(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if is_ident(chars[i]) && (i == 0 || !is_ident(chars[i - 1])) {
            let start = i;
            while i < chars.len() && is_ident(chars[i]) {
                i += 1;
            }
            if matches!(chars.get(i), Some('{') | Some('[')) {
                out.insert(chars[start..i].iter().collect());
            }
        } else {
            i += 1;
        }
    }
    out
}

/// The documented family a series name belongs to (`x_bucket` → `x`).
fn family(metric: &str, known: &BTreeSet<String>) -> Option<String> {
    if known.contains(metric) {
        return Some(metric.to_string());
    }
    ["_bucket", "_count", "_sum"]
        .iter()
        .filter_map(|s| metric.strip_suffix(s))
        .find(|m| known.contains(*m))
        .map(String::from)
}

#[test]
fn dashboards_are_well_formed() {
    let labels = known_labels();
    let metrics = known_metrics();
    assert!(
        metrics.contains("tapline_network_flow_bytes_total"),
        "{metrics:?}"
    );
    let mut seen_metrics = BTreeSet::new();
    for name in DASHBOARDS {
        let d = load(name);
        assert!(
            d["uid"].as_str().is_some_and(|u| !u.is_empty()),
            "{name}: uid"
        );
        assert!(
            d["title"].as_str().is_some_and(|u| !u.is_empty()),
            "{name}: title"
        );
        assert!(
            d["schemaVersion"].as_i64().is_some(),
            "{name}: schemaVersion"
        );
        let vars = variables(&d);
        assert!(
            d["templating"]["list"]
                .as_array()
                .unwrap()
                .iter()
                .any(|v| v["name"] == "datasource" && v["query"] == "prometheus"),
            "{name}: a Prometheus datasource variable"
        );
        let mut panels = Vec::new();
        all_panels(&d["panels"], &mut panels);
        let mut ids = BTreeSet::new();
        for p in &panels {
            let title = p["title"].as_str().unwrap_or_default();
            assert!(
                ids.insert(p["id"].as_i64().unwrap()),
                "{name}: duplicate id ({title})"
            );
            let g = &p["gridPos"];
            let (x, w) = (g["x"].as_i64().unwrap(), g["w"].as_i64().unwrap());
            assert!(
                x >= 0 && w > 0 && x + w <= 24 && g["h"].as_i64().unwrap() > 0,
                "{name}: {title} gridPos"
            );
            if p["type"] == "row" {
                continue;
            }
            assert_eq!(p["datasource"]["uid"], "${datasource}", "{name}: {title}");
            let targets = p["targets"].as_array().unwrap();
            assert!(!targets.is_empty(), "{name}: {title} has no query");
            let refs: BTreeSet<&str> = targets
                .iter()
                .map(|t| t["refId"].as_str().unwrap())
                .collect();
            assert_eq!(refs.len(), targets.len(), "{name}: {title} duplicate refId");
            for t in targets {
                assert_eq!(t["datasource"]["uid"], "${datasource}", "{name}: {title}");
            }
        }
        for q in queries(name, &d) {
            let ctx = format!("{}: {} ({})", q.dashboard, q.panel, q.ref_id);
            assert!(!q.expr.is_empty(), "{ctx}: empty query");
            substitute(&q.expr, &vars, &ctx);
            for l in labels_in(&q.expr) {
                assert!(
                    labels.contains(&l),
                    "{ctx}: label {l} is not one tapline exports"
                );
            }
            for part in q.legend.split("{{").skip(1) {
                let l = part.split("}}").next().unwrap().trim();
                assert!(
                    labels.contains(l),
                    "{ctx}: legend label {l} is not one tapline exports"
                );
            }
            let used = metrics_in(&q.expr);
            assert!(!used.is_empty(), "{ctx}: no metric in {}", q.expr);
            for m in used {
                let f = family(&m, &metrics)
                    .unwrap_or_else(|| panic!("{ctx}: {m} is not a metric tapline exports"));
                seen_metrics.insert(f);
            }
        }
    }
    for must in [
        "tapline_network_flow_bytes_total",
        "tapline_network_inter_zone_bytes_total",
        "http_server_request_duration_seconds",
        "db_client_operation_duration_seconds",
    ] {
        assert!(seen_metrics.contains(must), "no panel shows {must}");
    }
    // Tripwire: a pending metric that a receiver now produces needs real traffic in the
    // live test instead of the "returns nothing" check.
    let receivers = Path::new(ROOT).join("crates/receivers/src");
    for (prom, otel, why) in PENDING {
        if let Some(file) = grep_dir(&receivers, otel) {
            panic!(
                "{} now produces {otel}: make dashboard_queries_return_data_from_a_real_prometheus \
                 generate it and drop {prom} from PENDING ({why})",
                file.display()
            );
        }
    }
}

fn grep_dir(dir: &Path, needle: &str) -> Option<PathBuf> {
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        if p.is_dir() {
            if let Some(f) = grep_dir(&p, needle) {
                return Some(f);
            }
        } else if p.extension().is_some_and(|x| x == "rs")
            && std::fs::read_to_string(&p).is_ok_and(|t| t.contains(needle))
        {
            return Some(p);
        }
    }
    None
}

// ---- The live test ----

/// Waits until `GET path` on `addr` answers 200, failing early when a process has exited.
fn wait_ok(addr: &str, path: &str, what: &str, procs: &mut Processes) {
    eventually(
        &format!("{what} to answer 200 on {path}"),
        Duration::from_secs(30),
        || {
            procs.check_alive();
            matches!(http_get(addr, path, &[]), Ok((200, _)))
        },
    );
}

enum Outcome {
    Data(usize),
    Empty,
    Error(String),
}

fn run_query(prometheus: &str, expr: &str) -> Outcome {
    let path = format!("/api/v1/query?query={}", url_encode(expr));
    match http_get(prometheus, &path, &[]) {
        Err(e) => Outcome::Error(e.to_string()),
        Ok((_, body)) => {
            let v: Value = match serde_json::from_str(&body) {
                Ok(v) => v,
                Err(e) => return Outcome::Error(format!("{e}: {body}")),
            };
            if v["status"] != "success" {
                return Outcome::Error(format!("{} {}", v["errorType"], v["error"]));
            }
            match v["data"]["result"].as_array().map(Vec::len) {
                Some(0) | None => Outcome::Empty,
                Some(n) => Outcome::Data(n),
            }
        }
    }
}

const CLIENT: &str = r#"
import http.client, socket, sys, time
host, port, seconds, redis_port = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
def resp(*args):
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
end = time.time() + seconds
i = 0
while time.time() < end:
    try:
        r = socket.create_connection(("127.0.0.1", redis_port), timeout=5)
        for cmd in (resp(b"SET", b"k", b"v"), resp(b"GET", b"k"), resp(b"LPUSH", b"k", b"x")):
            r.sendall(cmd)
            r.recv(4096)
        r.close()
    except OSError as e:
        print("redis client:", e, flush=True)
    for method, path in (("GET", "/index.html"), ("GET", "/missing/%d" % i), ("DELETE", "/items/%d" % i)):
        try:
            c = http.client.HTTPConnection(host, port, timeout=5)
            c.request(method, path)
            c.getresponse().read()
            c.close()
        except OSError as e:
            print("client:", e, flush=True)
    i += 1
    time.sleep(0.05)
"#;

#[test]
fn dashboard_queries_return_data_from_a_real_prometheus() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test loads eBPF programs: run it as root (scripts/test.sh does)"
    );
    let prometheus_bin = Path::new("/usr/bin/prometheus");
    assert!(
        prometheus_bin.exists(),
        "needs Prometheus: apt-get install prometheus"
    );

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (server_port, metrics_port, telemetry_port, prom_port, redis_port) = (
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    );
    let redis_bin = Path::new("/usr/bin/redis-server");
    assert!(
        redis_bin.exists(),
        "needs Redis: apt-get install redis-server"
    );
    std::fs::create_dir(d.join("www")).unwrap();
    std::fs::write(d.join("www/index.html"), "hello from the dashboards test\n").unwrap();

    // 127.0.0.1 (client) and 127.0.0.2 (server) are in different zones, so the loopback
    // traffic crosses zones; the cidr processor names 127.0.0.0/8 as an external network.
    let config = format!(
        r#"
receivers:
  flows:
    interfaces: [lo]
    exclude_interfaces: []
    cache_active_timeout: 1s
  app:
    metrics_interval: 1s
    discovery:
      instrument: [{{open_ports: "{server_port}"}}, {{exe_path: "*python3*"}}]
      poll_interval: 1s
processors:
  k8s: {{}}
  zones:
    cidrs:
      zone-a: [127.0.0.1/32]
      zone-b: [127.0.0.2/32]
  cidr:
    definitions:
      - {{cidr: 127.0.0.0/8, name: loopback}}
  select:
    "*":
      exclude: [process.pid, process.executable.path, container.id, k8s.pod.uid]
exporters:
  prometheus:
    endpoint: 127.0.0.1:{metrics_port}
service:
  pipelines:
    metrics/network:
      receivers: [flows]
      processors: [k8s, zones, cidr, select]
      exporters: [prometheus]
    metrics/app:
      receivers: [app]
      processors: [k8s, select]
      exporters: [prometheus]
  telemetry:
    metrics: {{endpoint: "127.0.0.1:{telemetry_port}"}}
"#
    );
    std::fs::write(d.join("tapline.yaml"), config).unwrap();
    std::fs::write(
        d.join("prometheus.yml"),
        format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
             scrape_configs:\n  - job_name: tapline\n    static_configs:\n      \
             - targets: ['127.0.0.1:{metrics_port}']\n"
        ),
    )
    .unwrap();

    let started = Instant::now();
    let mut procs = Processes::new(d);
    procs.spawn(
        "server",
        Command::new("python3")
            .args([
                "-m",
                "http.server",
                &server_port.to_string(),
                "--bind",
                "127.0.0.2",
            ])
            .arg("--directory")
            .arg(d.join("www")),
    );
    procs.spawn(
        "redis",
        Command::new(redis_bin)
            .args(["--port", &redis_port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"]),
    );
    procs.spawn(
        "tapline",
        Command::new(env!("CARGO_BIN_EXE_tapline"))
            .args(["run", "--config"])
            .arg(d.join("tapline.yaml"))
            .env_remove("KUBERNETES_SERVICE_HOST"),
    );
    procs.spawn(
        "prometheus",
        Command::new(prometheus_bin)
            .arg(format!(
                "--config.file={}",
                d.join("prometheus.yml").display()
            ))
            .arg(format!("--storage.tsdb.path={}", d.join("tsdb").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}")),
    );
    let telemetry = format!("127.0.0.1:{telemetry_port}");
    let prometheus = format!("127.0.0.1:{prom_port}");
    wait_ok(&telemetry, "/readyz", "tapline", &mut procs);
    wait_ok(&prometheus, "/-/ready", "prometheus", &mut procs);
    wait_ok(
        &format!("127.0.0.2:{server_port}"),
        "/index.html",
        "http.server",
        &mut procs,
    );
    // A long-lived client, so that discovery (1 s) instruments it: client metrics.
    procs.spawn(
        "client",
        Command::new("python3")
            .args(["-c", CLIENT, "127.0.0.2", &server_port.to_string(), "150"])
            .arg(redis_port.to_string()),
    );

    let mut all = Vec::new();
    for name in DASHBOARDS {
        let dash = load(name);
        let vars = variables(&dash);
        for q in queries(name, &dash) {
            let ctx = format!("{}: {} ({})", q.dashboard, q.panel, q.ref_id);
            let expr = substitute(&q.expr, &vars, &ctx);
            let pending = PENDING.iter().find(|(m, _, _)| expr.contains(m));
            all.push((ctx, expr, pending));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        procs.check_alive();
        let mut missing = Vec::new();
        for (ctx, expr, pending) in &all {
            match (run_query(&prometheus, expr), pending) {
                (Outcome::Error(e), _) => panic!("{ctx}: Prometheus refused `{expr}`: {e}"),
                (Outcome::Data(n), Some((m, _, why))) => {
                    panic!("{ctx}: {m} has {n} series now; it is listed as pending ({why})")
                }
                (Outcome::Empty, None) => missing.push(format!("{ctx}: {expr}")),
                (Outcome::Data(_), None) | (Outcome::Empty, Some(_)) => {}
            }
        }
        if missing.is_empty() {
            eprintln!(
                "all {} dashboard queries answered after {:?}",
                all.len(),
                started.elapsed()
            );
            break;
        }
        if Instant::now() > deadline {
            let metrics = http_get(format!("127.0.0.1:{metrics_port}"), "/metrics", &[])
                .map(|r| r.1)
                .unwrap_or_default();
            let names: BTreeSet<&str> = metrics
                .lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| l.split(['{', ' ']).next())
                .collect();
            panic!(
                "queries without data after {:?}:\n{}\n\ntapline serves: {names:?}\ntapline log:\n{}",
                started.elapsed(),
                missing.join("\n"),
                std::fs::read_to_string(d.join("tapline.log")).unwrap_or_default()
            );
        }
        // The poll interval: each round asks Prometheus (scraping every second) once per panel.
        std::thread::sleep(Duration::from_secs(2));
    }
    drop(procs);
}
