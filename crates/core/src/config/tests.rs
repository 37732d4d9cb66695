use std::io::Write;

use super::*;

fn file(text: &str) -> (tempfile::NamedTempFile, ConfigSource) {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    let src = ConfigSource::File(f.path().to_path_buf());
    (f, src)
}

fn opts(sources: Vec<ConfigSource>) -> LoadOptions {
    LoadOptions {
        sources,
        ..Default::default()
    }
}

const BASE: &str = "\
receivers:
  synthetic:
    interval: 1s
exporters:
  debug: {}
service:
  pipelines:
    metrics:
      receivers: [synthetic]
      exporters: [debug]
";

#[test]
fn files_merge_in_order_maps_deeply_lists_replaced() {
    let (_a, a) = file(BASE);
    let (_b, b) = file(
        "receivers:\n  synthetic:\n    batches: 3\nservice:\n  pipelines:\n    metrics:\n      exporters: [nop]\n",
    );
    let cfg = load(&opts(vec![a, b])).unwrap();
    assert_eq!(
        cfg.receivers["synthetic"],
        serde_json::json!({"interval": "1s", "batches": 3})
    );
    let p = &cfg.service.pipelines["metrics"];
    assert_eq!(p.receivers, vec!["synthetic"]);
    assert_eq!(p.exporters, vec!["nop"]);
}

#[test]
fn set_overrides_with_typed_scalars() {
    let (_a, a) = file(BASE);
    let mut o = opts(vec![a]);
    o.sets = vec![
        "receivers.synthetic.batches=7".into(),
        "receivers.synthetic.interval=250ms".into(),
        "service.telemetry.logs.format=json".into(),
    ];
    let cfg = load(&o).unwrap();
    assert_eq!(cfg.receivers["synthetic"]["batches"], serde_json::json!(7));
    assert_eq!(
        cfg.receivers["synthetic"]["interval"],
        serde_json::json!("250ms")
    );
    assert_eq!(cfg.service.telemetry.logs.format, LogFormat::Json);
}

#[test]
fn malformed_set_is_an_error() {
    let (_a, a) = file(BASE);
    let mut o = opts(vec![a]);
    o.sets = vec!["no-equals-sign".into()];
    let err = load(&o).unwrap_err().to_string();
    assert!(
        err.contains("--set \"no-equals-sign\": expected path.to.key=value"),
        "{err}"
    );
}

#[test]
fn env_overrides_with_double_underscore_paths() {
    let (_a, a) = file(BASE);
    let mut o = opts(vec![a]);
    o.env = vec![
        ("TAPLINE_RECEIVERS__SYNTHETIC__BATCHES".into(), "11".into()),
        (
            "TAPLINE_SERVICE__TELEMETRY__LOGS__LEVEL".into(),
            "debug".into(),
        ),
        ("UNRELATED".into(), "x".into()),
        // The log filter variable is not a config key.
        ("TAPLINE_LOG".into(), "debug".into()),
    ];
    let cfg = load(&o).unwrap();
    assert_eq!(cfg.receivers["synthetic"]["batches"], serde_json::json!(11));
    assert_eq!(cfg.service.telemetry.logs.level, "debug");
}

#[test]
fn set_wins_over_env_which_wins_over_files() {
    let (_a, a) = file(BASE);
    let mut o = opts(vec![a]);
    o.env = vec![("TAPLINE_RECEIVERS__SYNTHETIC__BATCHES".into(), "11".into())];
    o.sets = vec!["receivers.synthetic.batches=12".into()];
    assert_eq!(
        load(&o).unwrap().receivers["synthetic"]["batches"],
        serde_json::json!(12)
    );
}

#[test]
fn env_expansion() {
    let env = |n: &str| match n {
        "PORT" => Some("9400".to_string()),
        _ => None,
    };
    assert_eq!(expand_env("a: ${env:PORT}\n", &env).unwrap(), "a: 9400\n");
    assert_eq!(
        expand_env("a: ${env:MISSING:-x y}\n", &env).unwrap(),
        "a: x y\n"
    );
    assert_eq!(
        expand_env("a: ${env:PORT:-1}\n", &env).unwrap(),
        "a: 9400\n"
    );
    assert_eq!(
        expand_env("a: $${env:PORT}\n", &env).unwrap(),
        "a: ${env:PORT}\n"
    );
    let (line, msg) = expand_env("x: 1\na: ${env:MISSING}\n", &env).unwrap_err();
    assert_eq!(line, 2);
    assert!(msg.contains("MISSING is not set"), "{msg}");
    let (_, msg) = expand_env("a: ${file:/etc/passwd}", &env).unwrap_err();
    assert!(msg.contains("unsupported expression"), "{msg}");
    let (_, msg) = expand_env("a: ${env:BAD-NAME}", &env).unwrap_err();
    assert!(msg.contains("invalid environment variable name"), "{msg}");
    assert!(expand_env("a: ${env:PORT", &env)
        .unwrap_err()
        .1
        .contains("unterminated"));
}

#[test]
fn env_expansion_inside_files() {
    let (_a, a) = file("receivers:\n  synthetic:\n    batches: ${env:N:-5}\n");
    let mut o = opts(vec![a]);
    o.env = vec![("N".into(), "8".into())];
    assert_eq!(
        load(&o).unwrap().receivers["synthetic"]["batches"],
        serde_json::json!(8)
    );
}

#[test]
fn yaml_syntax_error_names_file_and_line() {
    let (f, a) = file("receivers:\n  synthetic:\n    interval: [1s\n");
    let err = load(&opts(vec![a])).unwrap_err();
    let d = &err.items[0];
    assert!(d.message.starts_with("invalid YAML"), "{d}");
    let loc = d.location.as_ref().unwrap();
    assert_eq!(loc.file, f.path().display().to_string());
    assert!(loc.line >= 3, "{d}");
}

#[test]
fn missing_file_is_reported_and_other_files_still_checked() {
    let (_b, b) = file("receivers:\n  synthetic:\n    interval: ${env:NOPE}\n");
    let err = load(&opts(vec![
        ConfigSource::File("/nonexistent/tapline.yaml".into()),
        b,
    ]))
    .unwrap_err();
    assert_eq!(err.errors().count(), 2, "{err}");
    assert!(err
        .to_string()
        .contains("cannot read config file /nonexistent/tapline.yaml"));
    assert!(err.to_string().contains("NOPE is not set"));
}

#[test]
fn unknown_top_level_and_service_fields() {
    let (_a, a) = file("receiver:\n  x: {}\n");
    let err = load(&opts(vec![a])).unwrap_err().to_string();
    assert!(
        err.contains("receiver") && err.contains("unknown field"),
        "{err}"
    );
    let (_b, b) = file("service:\n  pipelnes: {}\n");
    let err = load(&opts(vec![b])).unwrap_err().to_string();
    assert!(
        err.contains("service.pipelnes") && err.contains("unknown field"),
        "{err}"
    );
    assert!(err.contains(":2)"), "line of the unknown field: {err}");
}

#[test]
fn bad_telemetry_address_and_duration() {
    let (_a, a) = file("service:\n  telemetry:\n    metrics:\n      endpoint: 'localhost:port'\n");
    let err = load(&opts(vec![a])).unwrap_err().to_string();
    assert!(err.contains("service.telemetry.metrics.endpoint"), "{err}");
    assert!(err.contains(":4)"), "{err}");
    let (_b, b) = file("service:\n  shutdown_timeout: 10 fortnights\n");
    let err = load(&opts(vec![b])).unwrap_err().to_string();
    assert!(
        err.contains("service.shutdown_timeout") && err.contains("invalid duration"),
        "{err}"
    );
}

#[test]
fn component_config_errors_carry_full_path() {
    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct C {
        nested: Vec<Inner>,
    }
    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        size: types::ByteSize,
    }
    let c = ComponentConfig::new(
        "receivers.x",
        serde_json::json!({"nested": [{"size": "1KiB"}, {"size": "9 furlongs"}]}),
    );
    let err = c.parse::<C>().unwrap_err();
    assert_eq!(err.items[0].path, "receivers.x.nested[1].size");
    assert!(err.items[0].message.contains("unknown unit"), "{err}");
    // A bare `x:` (null) means all defaults.
    #[derive(Debug, serde::Deserialize, PartialEq)]
    struct D {
        #[serde(default)]
        a: u32,
    }
    assert_eq!(
        ComponentConfig::new("p", serde_json::Value::Null)
            .parse::<D>()
            .unwrap(),
        D { a: 0 }
    );
}

#[test]
fn defaults() {
    let cfg = load(&opts(vec![ConfigSource::Embedded {
        name: "e".into(),
        text: "{}".into(),
    }]))
    .unwrap();
    assert_eq!(
        cfg.service.telemetry.metrics.endpoint,
        Some(([127, 0, 0, 1], 9401).into())
    );
    assert_eq!(
        cfg.service.shutdown_timeout,
        std::time::Duration::from_secs(10)
    );
    assert_eq!(cfg.service.telemetry.logs.level, "info");
}
