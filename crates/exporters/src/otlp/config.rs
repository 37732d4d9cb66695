//! The `otlp` exporter's configuration and the standard `OTEL_EXPORTER_OTLP_*` environment
//! variables, which apply wherever the configuration leaves a setting out.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use tapline_core::data::SignalKind;

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
pub enum Protocol {
    #[serde(rename = "grpc")]
    Grpc,
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
}

impl Protocol {
    fn parse(s: &str) -> Result<Protocol, String> {
        match s.trim() {
            "grpc" => Ok(Protocol::Grpc),
            "http/protobuf" => Ok(Protocol::HttpProtobuf),
            other => Err(format!(
                "protocol {other:?} is not supported (use grpc or http/protobuf)"
            )),
        }
    }
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    Gzip,
    None,
}

impl Compression {
    fn parse(s: &str) -> Result<Compression, String> {
        match s.trim() {
            "gzip" => Ok(Compression::Gzip),
            "none" | "" => Ok(Compression::None),
            other => Err(format!(
                "compression {other:?} is not supported (use gzip or none)"
            )),
        }
    }
}

/// How sums and histograms leave the exporter.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TemporalityPreference {
    /// Delta series are accumulated per series (resource, scope, metric, attributes).
    #[default]
    Cumulative,
    /// Everything is sent as produced (tapline's receivers produce delta).
    Delta,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsClientConfig {
    /// CA certificates (PEM) to verify the server with, instead of the system's roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key (PEM) for mutual TLS.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Accepts any server certificate. For tests only.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

impl TlsClientConfig {
    pub fn is_set(&self) -> bool {
        self.ca_file.is_some() || self.cert_file.is_some() || self.insecure_skip_verify
    }
}

/// An optional humantime duration (`5s`), parsed like every other duration in the config.
mod opt_duration {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;
    use tapline_core::config::types::duration;

    #[derive(Deserialize)]
    struct D(#[serde(with = "duration")] Duration);

    pub fn deserialize<'de, De: Deserializer<'de>>(d: De) -> Result<Option<Duration>, De::Error> {
        Ok(Option::<D>::deserialize(d)?.map(|D(x)| x))
    }
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OtlpConfig {
    #[serde(default)]
    pub protocol: Option<Protocol>,
    /// gRPC: `host:port` or a URL. HTTP: the base URL; `/v1/metrics` and `/v1/traces` are
    /// appended.
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub compression: Option<Compression>,
    #[serde(default, with = "opt_duration")]
    pub timeout: Option<Duration>,
    #[serde(default)]
    pub tls: TlsClientConfig,
    #[serde(default)]
    pub temporality: TemporalityPreference,
}

/// Everything one signal's client needs, after config and environment are combined.
#[derive(Clone, Debug, PartialEq)]
pub struct SignalSettings {
    pub protocol: Protocol,
    /// gRPC: the server URL. HTTP: the full URL to POST to.
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub compression: Compression,
    pub timeout: Duration,
    pub tls: bool,
}

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

fn signal_word(signal: SignalKind) -> (&'static str, &'static str) {
    match signal {
        SignalKind::Metrics => ("METRICS", "metrics"),
        SignalKind::Traces => ("TRACES", "traces"),
    }
}

/// `k=v,k2=v2`, values percent-decoded, as `OTEL_EXPORTER_OTLP_HEADERS` is written.
fn parse_env_headers(s: &str, var: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| format!("{var}: {pair:?} is not key=value"))?;
        out.push((k.trim().to_string(), percent_decode(v.trim())));
    }
    Ok(out)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl OtlpConfig {
    /// Combines the config with the environment for one signal. `path` is the component's
    /// config path, for errors; `env` looks a variable up.
    pub fn resolve(
        &self,
        signal: SignalKind,
        path: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<SignalSettings, String> {
        let (upper, lower) = signal_word(signal);
        // The signal's own variable wins over the general one.
        let var = |name: &str| -> Option<(String, String)> {
            let specific = format!("OTEL_EXPORTER_OTLP_{upper}_{name}");
            if let Some(v) = env(&specific).filter(|v| !v.trim().is_empty()) {
                return Some((specific, v));
            }
            let general = format!("OTEL_EXPORTER_OTLP_{name}");
            env(&general)
                .filter(|v| !v.trim().is_empty())
                .map(|v| (general, v))
        };
        let protocol = match self.protocol {
            Some(p) => p,
            None => match var("PROTOCOL") {
                Some((name, v)) => Protocol::parse(&v).map_err(|e| format!("{name}: {e}"))?,
                None => Protocol::Grpc,
            },
        };
        let compression = match self.compression {
            Some(c) => c,
            None => match var("COMPRESSION") {
                Some((name, v)) => Compression::parse(&v).map_err(|e| format!("{name}: {e}"))?,
                None => Compression::None,
            },
        };
        let timeout = match self.timeout {
            Some(t) => t,
            None => match var("TIMEOUT") {
                Some((name, v)) => Duration::from_millis(
                    v.trim()
                        .parse()
                        .map_err(|_| format!("{name}: {v:?} is not a number of milliseconds"))?,
                ),
                None => DEFAULT_TIMEOUT,
            },
        };
        let mut headers = match var("HEADERS") {
            Some((name, v)) => parse_env_headers(&v, &name)?,
            None => Vec::new(),
        };
        for (k, v) in &self.headers {
            headers.retain(|(hk, _)| !hk.eq_ignore_ascii_case(k));
            headers.push((k.clone(), v.clone()));
        }
        for (k, v) in &headers {
            if k.is_empty()
                || !k
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(&c))
            {
                return Err(format!("{path}.headers: {k:?} is not a valid header name"));
            }
            if v.bytes().any(|c| c < 0x20 && c != b'\t' || c == 0x7f) {
                return Err(format!(
                    "{path}.headers.{k}: the value holds control characters"
                ));
            }
        }

        let with_scheme = |s: &str| -> String {
            if s.contains("://") {
                s.to_string()
            } else if self.tls.is_set() {
                format!("https://{s}")
            } else {
                format!("http://{s}")
            }
        };
        let url = match (&self.endpoint, protocol) {
            (Some(e), Protocol::Grpc) => with_scheme(e),
            (Some(e), Protocol::HttpProtobuf) => {
                format!("{}/v1/{lower}", with_scheme(e).trim_end_matches('/'))
            }
            (None, _) => {
                let specific = format!("OTEL_EXPORTER_OTLP_{upper}_ENDPOINT");
                match (
                    env(&specific).filter(|v| !v.trim().is_empty()),
                    env("OTEL_EXPORTER_OTLP_ENDPOINT").filter(|v| !v.trim().is_empty()),
                    protocol,
                ) {
                    // A signal's own endpoint is used as it is written.
                    (Some(e), _, _) => with_scheme(e.trim()),
                    (None, Some(e), Protocol::Grpc) => with_scheme(e.trim()),
                    (None, Some(e), Protocol::HttpProtobuf) => {
                        format!("{}/v1/{lower}", with_scheme(e.trim()).trim_end_matches('/'))
                    }
                    (None, None, Protocol::Grpc) => "http://localhost:4317".into(),
                    (None, None, Protocol::HttpProtobuf) => {
                        format!("http://localhost:4318/v1/{lower}")
                    }
                }
            }
        };
        let uri: hyper::Uri = url
            .parse()
            .map_err(|e| format!("{path}.endpoint: {url:?} is not a valid URL: {e}"))?;
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            other => {
                return Err(format!(
                    "{path}.endpoint: scheme {:?} of {url:?} is neither http nor https",
                    other.unwrap_or("")
                ))
            }
        };
        if uri.host().is_none() {
            return Err(format!("{path}.endpoint: {url:?} names no host"));
        }
        Ok(SignalSettings {
            protocol,
            url,
            headers,
            compression,
            timeout,
            tls,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    #[test]
    fn config_wins_then_signal_env_then_general_env() {
        let e = env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://traces:9999/custom",
            ),
            ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=a%20b,x=1"),
            ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "2500"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
        ]);
        let cfg = OtlpConfig::default();
        let m = cfg
            .resolve(SignalKind::Metrics, "exporters.otlp", &e)
            .unwrap();
        assert_eq!(m.protocol, Protocol::HttpProtobuf);
        assert_eq!(m.url, "http://collector:4318/v1/metrics");
        assert_eq!(m.timeout, Duration::from_millis(2500));
        assert_eq!(m.compression, Compression::Gzip);
        assert_eq!(
            m.headers,
            vec![("api-key".into(), "a b".into()), ("x".into(), "1".into())]
        );
        let t = cfg
            .resolve(SignalKind::Traces, "exporters.otlp", &e)
            .unwrap();
        assert_eq!(t.url, "http://traces:9999/custom");
        assert_eq!(t.timeout, DEFAULT_TIMEOUT);

        let cfg = OtlpConfig {
            protocol: Some(Protocol::Grpc),
            endpoint: Some("127.0.0.1:4317".into()),
            headers: [("x".to_string(), "2".to_string())].into_iter().collect(),
            compression: Some(Compression::None),
            ..Default::default()
        };
        let m = cfg
            .resolve(SignalKind::Metrics, "exporters.otlp", &e)
            .unwrap();
        assert_eq!(m.protocol, Protocol::Grpc);
        assert_eq!(m.url, "http://127.0.0.1:4317");
        assert_eq!(m.compression, Compression::None);
        assert_eq!(
            m.headers,
            vec![("api-key".into(), "a b".into()), ("x".into(), "2".into())]
        );
        assert!(!m.tls);
    }

    #[test]
    fn bad_values_name_their_source() {
        let e = env(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")]);
        let err = OtlpConfig::default()
            .resolve(SignalKind::Metrics, "exporters.otlp", &e)
            .unwrap_err();
        assert!(err.contains("OTEL_EXPORTER_OTLP_PROTOCOL"), "{err}");
        let cfg = OtlpConfig {
            endpoint: Some("ftp://x".into()),
            ..Default::default()
        };
        let err = cfg
            .resolve(SignalKind::Traces, "exporters.otlp", &env(&[]))
            .unwrap_err();
        assert!(err.contains("exporters.otlp.endpoint"), "{err}");
    }
}
