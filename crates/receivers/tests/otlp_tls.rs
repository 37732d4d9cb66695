//! TLS between tapline's own OTLP exporter and OTLP receiver (gateway chains): CA files,
//! mutual TLS with client certificates, `insecure_skip_verify`, and refusals when trust is
//! missing. Certificates are made by the test (rcgen): a CA, a server and a client cert.

use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use tapline_core::config::ComponentConfig;
use tapline_core::data::*;
use tapline_core::pipeline::{ExporterSettings, RetryingExporter};
use tapline_core::telemetry::Telemetry;
use tapline_core::Registry;
use tapline_exporters::otlp::{OtlpConfig, OtlpExporter};
use tapline_receivers::otlp::OtlpReceiverFactory;
use tapline_test_support::harness::load_config;
use tapline_test_support::{build_context, eventually_async, free_port, start_graph, Collect};

struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "tapline test CA");
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issue = |name: &str, sans: Vec<String>, client: bool| {
            let key = rcgen::KeyPair::generate().unwrap();
            let mut p = rcgen::CertificateParams::new(sans).unwrap();
            p.extended_key_usages = vec![if client {
                rcgen::ExtendedKeyUsagePurpose::ClientAuth
            } else {
                rcgen::ExtendedKeyUsagePurpose::ServerAuth
            }];
            let cert = p.signed_by(&key, &ca_cert, &ca_key).unwrap();
            std::fs::write(dir.path().join(format!("{name}.pem")), cert.pem()).unwrap();
            std::fs::write(
                dir.path().join(format!("{name}-key.pem")),
                key.serialize_pem(),
            )
            .unwrap();
        };
        issue("server", vec!["localhost".into()], false);
        issue("client", vec!["tapline-client".into()], true);
        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).unwrap();
        Pki { dir }
    }
    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

fn spans(tag: &'static str) -> SharedSignal {
    Arc::new(Signal::Traces(Traces {
        resource_spans: vec![ResourceSpans {
            resource: Resource::new([("service.name", "gw")].into_iter().collect()),
            scope: "s".into(),
            spans: vec![Span {
                trace_id: [7; 16],
                span_id: [8; 8],
                parent_span_id: [0; 8],
                name: tag.into(),
                kind: SpanKind::Client,
                start_time_ns: 1,
                end_time_ns: 2,
                attributes: Attributes::new(),
                status: StatusCode::Ok,
                status_message: Str::default(),
            }],
        }],
    }))
}

/// The OTLP exporter behind the framework's exporter helper, which owns the `retry:` block.
fn exporter(yaml: &str) -> RetryingExporter {
    let mut config = ComponentConfig::new("exporters.otlp", serde_yaml_to_json(yaml));
    let settings = ExporterSettings::take_from(&mut config).unwrap();
    let cfg: OtlpConfig = config.parse().unwrap();
    let otlp =
        OtlpExporter::new(&cfg, "exporters.otlp", &build_context("otlp"), &|_| None).unwrap();
    let retries = Telemetry::new().counter("tapline_exporter_retries_total", "retries", &[]);
    RetryingExporter::new(Box::new(otlp), settings.retry, retries)
}

fn serde_yaml_to_json(yaml: &str) -> serde_json::Value {
    // The config loader reads YAML; reuse it for the exporter's block alone.
    let text = format!(
        "exporters:\n  otlp:\n{}",
        yaml.lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    );
    load_config(&text).unwrap().exporters["otlp"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exporter_and_receiver_speak_tls_and_mutual_tls() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let pki = Pki::new();
        let (grpc, http) = (free_port(), free_port());
        let capture = Collect::new();
        let mut registry = Registry::new();
        registry.register_receiver(OtlpReceiverFactory).register_exporter(capture.clone());
        // gRPC requires client certificates signed by the CA; HTTP is server-TLS only.
        let yaml = format!(
            r#"
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{grpc}
        tls: {{cert_file: {s}, key_file: {sk}, client_ca_file: {ca}}}
      http:
        endpoint: 127.0.0.1:{http}
        tls: {{cert_file: {s}, key_file: {sk}}}
exporters: {{collect: {{}}}}
service:
  pipelines:
    traces: {{receivers: [otlp], exporters: [collect]}}
"#,
            s = pki.path("server.pem"),
            sk = pki.path("server-key.pem"),
            ca = pki.path("ca.pem"),
        );
        let running = start_graph(&yaml, &registry, &Telemetry::new()).await.unwrap();
        eventually_async("the otlp receiver to listen on both ports", Duration::from_secs(10), || {
            TcpStream::connect(("127.0.0.1", grpc)).is_ok() && TcpStream::connect(("127.0.0.1", http)).is_ok()
        })
        .await;

        let (ca, cert, key) = (pki.path("ca.pem"), pki.path("client.pem"), pki.path("client-key.pem"));
        let fast_fail = "retry: {initial_interval: 50ms, max_interval: 100ms, max_elapsed_time: 500ms}";

        // mTLS over gRPC with the CA and a client certificate.
        exporter(&format!("protocol: grpc\nendpoint: https://localhost:{grpc}\ntls: {{ca_file: {ca}, cert_file: {cert}, key_file: {key}}}"))
            .export(spans("mtls-grpc"))
            .await
            .unwrap();
        // No client certificate: the server refuses the handshake.
        let err = exporter(&format!("protocol: grpc\nendpoint: https://localhost:{grpc}\ntls: {{ca_file: {ca}}}\n{fast_fail}"))
            .export(spans("no-client-cert"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("gave up"), "{err}");
        // HTTP/protobuf with the CA.
        exporter(&format!("protocol: http/protobuf\nendpoint: https://localhost:{http}\ntls: {{ca_file: {ca}}}"))
            .export(spans("tls-http"))
            .await
            .unwrap();
        // Without the CA the server is not trusted...
        let err = exporter(&format!("protocol: http/protobuf\nendpoint: https://localhost:{http}\n{fast_fail}"))
            .export(spans("untrusted"))
            .await
            .unwrap_err();
        assert!(err.to_string().to_lowercase().contains("certificate"), "{err}");
        // ...unless verification is skipped on purpose.
        exporter(&format!("protocol: http/protobuf\nendpoint: https://localhost:{http}\ntls: {{insecure_skip_verify: true}}"))
            .export(spans("insecure-http"))
            .await
            .unwrap();
        exporter(&format!("protocol: grpc\nendpoint: https://localhost:{grpc}\ntls: {{insecure_skip_verify: true, cert_file: {cert}, key_file: {key}}}"))
            .export(spans("insecure-grpc"))
            .await
            .unwrap();

        running.shutdown(Duration::from_secs(5)).await;
        let mut names: Vec<String> = capture
            .batches()
            .iter()
            .flat_map(|b| match &**b {
                Signal::Traces(t) => t.resource_spans[0].spans.iter().map(|s| s.name.to_string()).collect(),
                _ => Vec::new(),
            })
            .collect();
        names.sort();
        assert_eq!(names, ["insecure-grpc", "insecure-http", "mtls-grpc", "tls-http"]);
    })
    .await
    .unwrap();
}
