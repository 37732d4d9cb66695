//! The `tapline` binary end to end: exact output counts, validation exit codes, SIGTERM drain.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use tapline_test_support::{eventually, ChildGuard};

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tapline"))
}

fn config(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

/// Runs `tapline run` with its output in files, sends `signal` once its stdout shows
/// `ready`, and waits (bounded) for the exit.
fn run_then_signal(
    cfg: &std::path::Path,
    ready: (&str, impl Fn(&str) -> bool),
    signal: i32,
) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut tapline = ChildGuard::spawn(
        "tapline",
        Command::new(bin())
            .args(["run", "--config"])
            .arg(cfg)
            .env_remove("TAPLINE_LOG")
            .stdout(std::fs::File::create(&out_path).unwrap())
            .stderr(std::fs::File::create(&err_path).unwrap()),
    );
    let read = |p: &std::path::Path| std::fs::read(p).unwrap_or_default();
    let (what, condition) = ready;
    eventually(what, Duration::from_secs(20), || {
        condition(&String::from_utf8_lossy(&read(&out_path)))
    });
    // SAFETY: signalling our own child.
    unsafe { libc::kill(tapline.id() as i32, signal) };
    let status = eventually(
        "tapline to exit within 20s of the signal",
        Duration::from_secs(20),
        || tapline.exited(),
    );
    Output {
        status,
        stdout: read(&out_path),
        stderr: read(&err_path),
    }
}

/// The count of stdout lines starting with `prefix`.
fn lines_starting(stdout: &str, prefix: &str) -> usize {
    stdout.lines().filter(|l| l.starts_with(prefix)).count()
}

/// The `totals` line the agent logs at shutdown, for one component: (accepted, dropped, sent).
fn totals(stderr: &str, kind: &str, component: &str) -> (u64, u64, u64) {
    let line = stderr
        .lines()
        .find(|l| {
            l.contains("totals")
                && l.contains(&format!("kind={kind}"))
                && l.contains(&format!("component={component}"))
        })
        .unwrap_or_else(|| panic!("no totals line for {kind} {component} in:\n{stderr}"));
    let field = |name: &str| -> u64 {
        let start = line.find(&format!("{name}=")).unwrap() + name.len() + 1;
        line[start..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    (field("accepted"), field("dropped"), field("sent"))
}

#[test]
fn synthetic_through_a_processor_to_debug_gives_exact_counts() {
    let cfg = config(
        "
receivers:
  synthetic:
    interval: 20ms
    points_per_batch: 7
    spans_per_batch: 3
    batches: 5
processors:
  attributes:
    actions:
      - { key: env, value: test, action: insert }
      - { key: http.request.method, action: delete }
exporters:
  debug:
    verbosity: detailed
service:
  pipelines:
    metrics:
      receivers: [synthetic]
      processors: [attributes]
      exporters: [debug]
    traces:
      receivers: [synthetic]
      exporters: [debug]
  telemetry:
    metrics: { endpoint: null }
    logs: { level: info, format: text }
",
    );
    let every_batch = |out: &str| {
        lines_starting(out, "debug metrics: 7 data points in 1 metrics") == 5
            && lines_starting(out, "debug traces: 3 spans") == 5
    };
    let out = run_then_signal(
        cfg.path(),
        ("the five metric and five trace batches", every_batch),
        libc::SIGTERM,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr:\n{stderr}");
    let metric_lines = stdout
        .lines()
        .filter(|l| l.starts_with("debug metrics: 7 data points in 1 metrics"))
        .count();
    let trace_lines = stdout
        .lines()
        .filter(|l| l.starts_with("debug traces: 3 spans"))
        .count();
    assert_eq!(metric_lines, 5, "{stdout}");
    assert_eq!(trace_lines, 5, "{stdout}");
    // The processor ran on metrics only: every point gained env=test and lost the method.
    let points: Vec<&str> = stdout.lines().filter(|l| l.starts_with("    {")).collect();
    assert_eq!(points.len(), 35);
    assert!(points
        .iter()
        .all(|l| l.contains("env=test") && !l.contains("http.request.method")));
    let spans: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("  span "))
        .collect();
    assert_eq!(spans.len(), 15);
    assert!(spans
        .iter()
        .all(|l| l.contains("http.request.method=GET") && !l.contains("env=test")));
    assert_eq!(totals(&stderr, "exporter", "debug"), (35 + 15, 0, 35 + 15));
    assert_eq!(totals(&stderr, "processor", "attributes"), (35, 0, 35));
}

#[test]
fn sigterm_drains_everything_accepted() {
    // A fast source, stopped mid-stream: what the receiver accepted must all be written out.
    let cfg = config(
        "
receivers:
  synthetic: { interval: 1ms, points_per_batch: 50, series: 5 }
exporters:
  debug: { verbosity: basic, queue: { size: 100000 } }
service:
  pipelines:
    metrics: { receivers: [synthetic], exporters: [debug] }
  telemetry:
    metrics: { endpoint: null }
",
    );
    for signal in [libc::SIGTERM, libc::SIGINT] {
        // Mid-stream: the source never stops on its own, and a few hundred batches are out.
        let streaming = |out: &str| lines_starting(out, "debug metrics: ") >= 300;
        let out = run_then_signal(cfg.path(), ("300 batches printed", streaming), signal);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "stderr:\n{stderr}");
        let printed: u64 = stdout
            .lines()
            .filter_map(|l| l.strip_prefix("debug metrics: "))
            .map(|l| l.split(' ').next().unwrap().parse::<u64>().unwrap())
            .sum();
        let (accepted, _, _) = totals(&stderr, "receiver", "synthetic");
        assert!(accepted > 0);
        assert_eq!(printed, accepted, "every accepted point is exported");
        assert_eq!(
            totals(&stderr, "exporter", "debug"),
            (accepted, 0, accepted)
        );
    }
}

#[test]
fn validate_reports_every_error_with_places_and_exit_code_2() {
    let cfg = config(
        "receivers:
  synthetc: {}
  synthetic:
    interval: 5 parsecs
processors:
  attributes:
    actions:
      - { key: a, action: upsert }
exporters:
  debug:
    verbosity: loud
  nop: {}
service:
  pipelines:
    metrics:
      receivers: [synthetic, missing]
      processors: [attributes]
      exporters: [debug, dbug]
    logs:
      receivers: [synthetic]
      exporters: [debug]
",
    );
    let out = Command::new(bin())
        .args(["validate", "--config"])
        .arg(cfg.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let file = cfg.path().display().to_string();
    for expected in [
        format!("error: receivers.synthetc ({file}:2): unknown receiver type \"synthetc\" (did you mean \"synthetic\"?)"),
        format!("error: receivers.synthetic.interval ({file}:4): invalid duration \"5 parsecs\""),
        format!("error: processors.attributes ({file}:6): actions[0]: action Upsert on \"a\" needs a value"),
        format!("error: exporters.debug.verbosity ({file}:11): unknown variant `loud`"),
        format!("warning: exporters.nop ({file}:12): exporter \"nop\" is used by no pipeline"),
        format!("error: service.pipelines.metrics.receivers[1] ({file}:16): receiver \"missing\" is not declared under receivers"),
        format!("error: service.pipelines.metrics.exporters[1] ({file}:18): exporter \"dbug\" is not declared under exporters (did you mean \"debug\"?)"),
        format!("error: service.pipelines.logs ({file}:19): unknown pipeline signal \"logs\""),
        "7 errors found".to_string(),
    ] {
        assert!(stderr.contains(&expected), "missing {expected:?} in:\n{stderr}");
    }
}

#[test]
fn validate_accepts_a_good_config_and_run_refuses_a_bad_one() {
    let good = config("receivers: { synthetic: {} }\nexporters: { nop: {} }\nservice: { pipelines: { traces: { receivers: [synthetic], exporters: [nop] } } }\n");
    let out = Command::new(bin())
        .args(["validate", "--config"])
        .arg(good.path())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("configuration is valid"));
    // A signal the component does not support.
    let bad = config("receivers: { synthetic: {} }\nprocessors: {}\nexporters: { nop: {} }\nservice: { pipelines: { metrics: { receivers: [synthetic], exporters: [nop] } } }\n");
    let out = Command::new(bin())
        .args(["run", "--config"])
        .arg(bad.path())
        .args(["--set", "service.pipelines.metrics.receivers=[nothing]"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("receiver \"nothing\" is not declared"));
}

#[test]
fn embedded_default_validates_and_components_lists_types() {
    let out = Command::new(bin()).arg("validate").output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(bin()).arg("components").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text
        .lines()
        .any(|l| l.starts_with("exporter") && l.contains("debug") && l.contains("metrics,traces")));
    assert!(
        !text.contains("synthetic"),
        "test-support components stay hidden"
    );
    let out = Command::new(bin()).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("tapline "));
}

/// `tapline run --config <config>` with its stdout and stderr in files of `dir`: (the process,
/// stdout's path, stderr's path).
fn run_logged(
    dir: &std::path::Path,
    config: &std::path::Path,
) -> (ChildGuard, std::path::PathBuf, std::path::PathBuf) {
    let (out_path, err_path) = (dir.join("stdout"), dir.join("stderr"));
    let tapline = ChildGuard::spawn(
        "tapline",
        Command::new(bin())
            .args(["run", "--config"])
            .arg(config)
            .stdout(std::fs::File::create(&out_path).unwrap())
            .stderr(std::fs::File::create(&err_path).unwrap()),
    );
    (tapline, out_path, err_path)
}

#[test]
fn sighup_reloads_and_a_bad_reload_keeps_the_old_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    let cfg = |points: u32| {
        format!(
            "receivers: {{ synthetic: {{ interval: 50ms, points_per_batch: {points} }} }}\nexporters: {{ debug: {{}} }}\nservice: {{ pipelines: {{ metrics: {{ receivers: [synthetic], exporters: [debug] }} }}, telemetry: {{ metrics: {{ endpoint: null }} }} }}\n"
        )
    };
    std::fs::write(&path, cfg(3)).unwrap();
    let (mut tapline, out_path, err_path) = run_logged(dir.path(), &path);
    let pid = tapline.id() as i32;
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
    let batches_of_3 = || lines_starting(&read(&out_path), "debug metrics: 3 ");
    // Running (and so listening for SIGHUP) once the first batch is out.
    eventually(
        "the first configuration to run",
        Duration::from_secs(10),
        || batches_of_3() > 0,
    );
    std::fs::write(&path, "receivers: { synthetic: { bogus: 1 } }\n").unwrap();
    unsafe { libc::kill(pid, libc::SIGHUP) };
    eventually(
        "the bad reload to be refused",
        Duration::from_secs(10),
        || read(&err_path).contains("reload refused"),
    );
    // The old pipeline goes on after the refusal.
    let refused_at = batches_of_3();
    eventually(
        "15 more batches of the running configuration",
        Duration::from_secs(10),
        || batches_of_3() >= refused_at + 15,
    );
    std::fs::write(&path, cfg(4)).unwrap();
    unsafe { libc::kill(pid, libc::SIGHUP) };
    eventually(
        "a batch of the reloaded configuration",
        Duration::from_secs(10),
        || lines_starting(&read(&out_path), "debug metrics: 4 ") > 0,
    );
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let status = eventually(
        "tapline to exit after SIGTERM",
        Duration::from_secs(20),
        || tapline.exited(),
    );
    let (stdout, stderr) = (read(&out_path), read(&err_path));
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(
            "reload refused, keeping the running configuration: error: receivers.synthetic.bogus"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("configuration reloaded"), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    let first4 = lines
        .iter()
        .position(|l| l.starts_with("debug metrics: 4 "))
        .expect("new config ran");
    assert!(
        lines[..first4]
            .iter()
            .all(|l| l.starts_with("debug metrics: 3 ")),
        "old config ran until the good reload"
    );
    assert!(
        first4 >= 15,
        "the bad reload did not interrupt the old pipeline: {first4} batches before"
    );
    assert!(lines[first4..]
        .iter()
        .all(|l| l.starts_with("debug metrics: 4 ")));
}

/// A reloaded configuration that cannot start (an exporter's port is taken) or whose receiver
/// fails before it is ready (its listener's port is taken) gives way to the configuration that
/// ran before: tapline keeps running it and says so.
#[test]
fn a_reload_that_fails_to_start_gives_way_to_the_previous_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let good = "receivers: { synthetic: { interval: 50ms, points_per_batch: 3 } }\nexporters: { debug: {} }\nservice: { pipelines: { metrics: { receivers: [synthetic], exporters: [debug] } }, telemetry: { metrics: { endpoint: null } } }\n";
    let exporter_cannot_start = format!(
        "receivers: {{ synthetic: {{ interval: 50ms, points_per_batch: 4 }} }}\nexporters: {{ prometheus: {{ endpoint: \"127.0.0.1:{port}\" }} }}\nservice: {{ pipelines: {{ metrics: {{ receivers: [synthetic], exporters: [prometheus] }} }}, telemetry: {{ metrics: {{ endpoint: null }} }} }}\n"
    );
    let receiver_fails = format!(
        "receivers: {{ synthetic: {{ interval: 50ms, points_per_batch: 4 }}, otlp: {{ protocols: {{ grpc: {{ endpoint: \"127.0.0.1:{port}\" }} }} }} }}\nexporters: {{ debug: {{}} }}\nservice: {{ pipelines: {{ metrics: {{ receivers: [synthetic, otlp], exporters: [debug] }} }}, telemetry: {{ metrics: {{ endpoint: null }} }} }}\n"
    );
    std::fs::write(&path, good).unwrap();
    let (mut tapline, out_path, err_path) = run_logged(dir.path(), &path);
    let pid = tapline.id() as i32;
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
    let batches_of_3 = || lines_starting(&read(&out_path), "debug metrics: 3 ");
    eventually(
        "the first configuration to run",
        Duration::from_secs(10),
        || batches_of_3() > 0,
    );
    for (i, bad) in [exporter_cannot_start, receiver_fails].iter().enumerate() {
        std::fs::write(&path, bad).unwrap();
        unsafe { libc::kill(pid, libc::SIGHUP) };
        eventually(
            "the previous configuration to be restored",
            Duration::from_secs(10),
            || {
                read(&err_path)
                    .matches("previous configuration restored")
                    .count()
                    == i + 1
            },
        );
        let restored_at = batches_of_3();
        eventually(
            "15 more batches of the previous configuration",
            Duration::from_secs(10),
            || batches_of_3() >= restored_at + 15,
        );
    }
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let status = eventually(
        "tapline to exit after SIGTERM",
        Duration::from_secs(20),
        || tapline.exited(),
    );
    let stderr = read(&err_path);
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("reloaded configuration failed to start")
            && stderr.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{stderr}"
    );
    assert!(
        stderr.contains("the reloaded configuration failed before it was ready"),
        "{stderr}"
    );
    drop(taken);
}

#[test]
fn default_run_adds_otlp_when_the_standard_endpoint_variable_is_set() {
    use tapline::core::config::{self, LoadOptions};
    let load = |env: Vec<(String, String)>| {
        let sources = tapline::DEFAULT_CONFIG.sources(&env);
        config::load(&LoadOptions {
            sources,
            env,
            ..Default::default()
        })
        .unwrap()
    };
    let plain = load(vec![]);
    assert!(!plain.exporters.contains_key("otlp"));
    assert!(!plain.service.pipelines.contains_key("traces"));
    let with = load(vec![(
        "OTEL_EXPORTER_OTLP_ENDPOINT".into(),
        "http://127.0.0.1:4317".into(),
    )]);
    assert!(with.exporters.contains_key("otlp"));
    assert_eq!(
        with.service.pipelines["metrics"].exporters,
        ["prometheus", "otlp"]
    );
    assert_eq!(with.service.pipelines["traces"].receivers, ["app"]);
    // And the result is a valid graph.
    let out = Command::new(bin())
        .arg("validate")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
