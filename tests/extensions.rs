//! Extensions through the `tapline` binary: declared under `extensions:`, enabled by
//! `service.extensions`, named by components; `validate` reports bad references at their
//! config paths, and `components` lists the extension types.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output};

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tapline"))
}

fn validate(text: &str) -> Output {
    let mut f = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    Command::new(bin())
        .args(["validate", "--config"])
        .arg(f.path())
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .unwrap()
}

/// A flows → k8s/zones/rdns → prometheus graph, with `extra` processors' and exporters' fields.
fn graph(extensions: &str, enabled: &str, k8s: &str, zones: &str, prometheus: &str) -> String {
    format!(
        r#"
extensions:
{extensions}
receivers:
  synthetic: {{}}
processors:
  k8s: {k8s}
  zones: {zones}
exporters:
  prometheus: {prometheus}
service:
  extensions: {enabled}
  pipelines:
    metrics:
      receivers: [synthetic]
      processors: [k8s, zones]
      exporters: [prometheus]
"#
    )
}

#[test]
fn declared_extensions_are_referenced_by_id() {
    let text = graph(
        "  k8s_metadata/cluster: { enable: false }\n  histogram_buckets: { histograms: [{ metrics: \"http.*\", buckets: [0.1, 1] }] }\n  dns_names: { cache_size: 10 }",
        "[k8s_metadata/cluster, histogram_buckets, dns_names]",
        "{ extension: k8s_metadata/cluster }",
        "{ extension: k8s_metadata/cluster }",
        "{ extension: histogram_buckets }",
    );
    let out = validate(&text);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        !stderr.contains("warning"),
        "every declared extension is enabled: {stderr}"
    );
}

#[test]
fn bad_references_are_errors_at_their_config_paths() {
    let text = graph(
        "  k8s_metadata: { enable: false }\n  dns_names: {}\n  histogram_buckets/unused: {}",
        "[k8s_metadata, dns_names, k8s_metadta]",
        "{ extension: dns_names }",
        "{ extension: k8s_meta }",
        "{ extension: k8s_metadata, histograms: [] }",
    );
    let out = validate(&text);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for expected in [
        // Not declared, with the likely typo named.
        "error: service.extensions[2]",
        "extension \"k8s_metadta\" is not declared under extensions (did you mean \"k8s_metadata\"?)",
        // The wrong type.
        "error: processors.k8s.extension",
        "extension \"dns_names\" is a dns_names extension; this needs a k8s_metadata extension",
        "error: exporters.prometheus.extension",
        "extension \"k8s_metadata\" is a k8s_metadata extension; this needs a histogram_buckets extension",
        // Unknown to the component.
        "error: processors.zones.extension",
        "extension \"k8s_meta\" is not declared under extensions",
        // Declared but not enabled: a warning, not an error.
        "warning: extensions.histogram_buckets/unused",
    ] {
        assert!(stderr.contains(expected), "missing {expected:?} in:\n{stderr}");
    }
}

#[test]
fn a_declared_but_disabled_extension_cannot_be_used_and_extension_settings_stay_there() {
    let text = graph(
        "  k8s_metadata: { enable: false }",
        "[]",
        "{ extension: k8s_metadata, enable: true }",
        "{ extension: k8s_metadata }",
        "{}",
    );
    let out = validate(&text);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("processors.zones.extension")
            && stderr.contains("is declared but not enabled: list it in service.extensions"),
        "{stderr}"
    );
    assert!(
        stderr.contains("processors.k8s.extension") && stderr.contains("belong to the extension"),
        "{stderr}"
    );
}

#[test]
fn components_lists_extension_types() {
    let out = Command::new(bin()).arg("components").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for name in ["k8s_metadata", "dns_names", "histogram_buckets"] {
        assert!(
            text.lines()
                .any(|l| l.starts_with("extension") && l.contains(name)),
            "{name} missing from:\n{text}"
        );
    }
}
