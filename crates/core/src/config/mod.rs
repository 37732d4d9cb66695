//! Loading the user's configuration: YAML files merged in order, `${env:VAR}` expansion,
//! `TAPLINE_<PATH>` environment overrides and `--set path=value`, all through figment.
//!
//! The result is still untyped per component: each component's factory parses its own typed
//! config (see [`ComponentConfig`]), so one bad component does not hide the errors of another.

mod diagnostics;
mod location;
pub mod types;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use figment::providers::{Format, Yaml};
use figment::Figment;
use serde::de::DeserializeOwned;
use serde::Deserialize;

pub use diagnostics::{closest, Diagnostic, Diagnostics, Location, Severity};
pub use location::LocationIndex;

/// Where a piece of configuration comes from.
#[derive(Clone, Debug)]
pub enum ConfigSource {
    File(PathBuf),
    /// Text compiled into the binary (the default configuration), under a display name.
    Embedded {
        name: String,
        text: String,
    },
}

/// One component's raw configuration, with the config path it sits at.
#[derive(Clone, Debug)]
pub struct ComponentConfig {
    /// `receivers.flows/east`
    pub path: String,
    pub value: serde_json::Value,
}

impl ComponentConfig {
    pub fn new(path: impl Into<String>, value: serde_json::Value) -> Self {
        ComponentConfig {
            path: path.into(),
            value,
        }
    }

    /// Parses into the component's typed config. A missing or empty body means "all defaults".
    /// Errors carry the exact path of the offending field.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, Diagnostics> {
        let value = match &self.value {
            serde_json::Value::Null => serde_json::Value::Object(Default::default()),
            v => v.clone(),
        };
        serde_path_to_error::deserialize(value).map_err(|e| {
            let inner = e.path().to_string();
            let path = if inner == "." || inner.is_empty() {
                self.path.clone()
            } else {
                format!("{}.{}", self.path, inner)
            };
            let mut d = Diagnostics::default();
            d.error(path, e.into_inner().to_string());
            d
        })
    }

    /// Removes and returns a key shared by every component of a kind (an exporter's `queue`),
    /// so that the component's own typed config never sees it.
    pub fn take(&mut self, key: &str) -> Option<serde_json::Value> {
        self.value.as_object_mut().and_then(|m| m.remove(key))
    }
}

/// A config struct with every field at its serde default: what an empty config block parses
/// to, and the usual `Default` of a component's config.
///
/// Panics when a field has no serde default: a mistake in that struct, not in user input.
pub fn all_defaults<T: DeserializeOwned>() -> T {
    serde_json::from_value(serde_json::Value::Object(Default::default())).unwrap_or_else(|e| {
        panic!(
            "{}: a field has no default: {e}",
            std::any::type_name::<T>()
        )
    })
}

/// `service.pipelines.<signal>[/<name>]`
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    #[serde(default)]
    pub receivers: Vec<String>,
    #[serde(default)]
    pub processors: Vec<String>,
    #[serde(default)]
    pub exporters: Vec<String>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// The extensions to build and start, by id (declared under `extensions:`).
    #[serde(default)]
    pub extensions: Vec<String>,
    #[serde(default)]
    pub pipelines: BTreeMap<String, PipelineConfig>,
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// How long receivers-stopped-to-exporters-flushed may take at shutdown or reload.
    #[serde(default = "default_drain", with = "types::duration")]
    pub shutdown_timeout: Duration,
}

fn default_drain() -> Duration {
    Duration::from_secs(10)
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    #[serde(default)]
    pub metrics: TelemetryMetricsConfig,
    #[serde(default)]
    pub logs: LogsConfig,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TelemetryMetricsConfig {
    /// Serves `/metrics`, `/healthz` and `/readyz`. `null` turns it off.
    #[serde(default = "default_telemetry_endpoint")]
    pub endpoint: Option<SocketAddr>,
}

impl Default for TelemetryMetricsConfig {
    fn default() -> Self {
        TelemetryMetricsConfig {
            endpoint: default_telemetry_endpoint(),
        }
    }
}

fn default_telemetry_endpoint() -> Option<SocketAddr> {
    Some(([127, 0, 0, 1], 9401).into())
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LogsConfig {
    #[serde(default = "default_level")]
    pub level: String,
    #[serde(default)]
    pub format: LogFormat,
}

impl Default for LogsConfig {
    fn default() -> Self {
        LogsConfig {
            level: default_level(),
            format: LogFormat::Text,
        }
    }
}

fn default_level() -> String {
    "info".into()
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The merged configuration, before components parse their own parts.
#[derive(Clone, Debug)]
pub struct LoadedConfig {
    pub extensions: BTreeMap<String, serde_json::Value>,
    pub receivers: BTreeMap<String, serde_json::Value>,
    pub processors: BTreeMap<String, serde_json::Value>,
    pub exporters: BTreeMap<String, serde_json::Value>,
    pub service: ServiceConfig,
    pub locations: LocationIndex,
}

/// Everything that makes up one configuration load.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    pub sources: Vec<ConfigSource>,
    /// `path.to.key=value`, applied last.
    pub sets: Vec<String>,
    /// The process environment (passed in so tests stay hermetic).
    pub env: Vec<(String, String)>,
}

pub const ENV_PREFIX: &str = "TAPLINE_";

/// `TAPLINE_*` variables that are not configuration overrides.
pub const ENV_NOT_CONFIG: &[&str] = &["TAPLINE_LOG"];

/// Loads and merges every source. On failure, returns every problem found.
pub fn load(opts: &LoadOptions) -> Result<LoadedConfig, Diagnostics> {
    let mut diags = Diagnostics::default();
    let mut locations = LocationIndex::default();
    let mut figment = Figment::new();
    let env_lookup = |name: &str| {
        opts.env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };

    for source in &opts.sources {
        let (name, text) = match source {
            ConfigSource::File(p) => match std::fs::read_to_string(p) {
                Ok(t) => (p.display().to_string(), t),
                Err(e) => {
                    diags.error("", format!("cannot read config file {}: {e}", p.display()));
                    continue;
                }
            },
            ConfigSource::Embedded { name, text } => (name.clone(), text.clone()),
        };
        let text = match expand_env(&text, &env_lookup) {
            Ok(t) => t,
            Err((line, msg)) => {
                diags.items.push(Diagnostic {
                    severity: Severity::Error,
                    path: String::new(),
                    message: msg,
                    location: Some(Location { file: name, line }),
                });
                continue;
            }
        };
        // Check the syntax here, where the YAML parser can still say which line is wrong.
        if let Err(e) = serde_yaml::from_str::<serde_yaml::Value>(&text) {
            diags.items.push(Diagnostic {
                severity: Severity::Error,
                path: String::new(),
                message: format!("invalid YAML: {e}"),
                location: e.location().map(|l| Location {
                    file: name.clone(),
                    line: l.line(),
                }),
            });
            continue;
        }
        locations.add_file(&name, &text);
        figment = figment.merge(Yaml::string(&text));
    }

    for (key, value) in &opts.env {
        if ENV_NOT_CONFIG.contains(&key.as_str()) {
            continue;
        }
        if let Some(rest) = key.strip_prefix(ENV_PREFIX) {
            let path = rest
                .split("__")
                .map(|s| s.to_ascii_lowercase())
                .collect::<Vec<_>>()
                .join(".");
            figment = figment.merge((path, scalar(value)));
        }
    }
    for set in &opts.sets {
        match set.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                figment = figment.merge((k.trim().to_string(), scalar(v)));
            }
            _ => diags.error("", format!("--set {set:?}: expected path.to.key=value")),
        }
    }
    if diags.has_errors() {
        return Err(diags);
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Root {
        #[serde(default)]
        extensions: BTreeMap<String, serde_json::Value>,
        #[serde(default)]
        receivers: BTreeMap<String, serde_json::Value>,
        #[serde(default)]
        processors: BTreeMap<String, serde_json::Value>,
        #[serde(default)]
        exporters: BTreeMap<String, serde_json::Value>,
        #[serde(default)]
        service: Option<serde_json::Value>,
    }
    let merged: serde_json::Value = match figment.extract() {
        Ok(v) => v,
        Err(e) => {
            for e in e {
                diags.error(e.path.join("."), e.kind.to_string());
            }
            diags.locate(&locations);
            return Err(diags);
        }
    };
    let root = ComponentConfig::new("", merged);
    let root: Root = match root.parse() {
        Ok(r) => r,
        Err(mut d) => {
            for item in &mut d.items {
                item.path = item.path.trim_start_matches('.').to_string();
            }
            d.locate(&locations);
            return Err(d);
        }
    };
    let service = ComponentConfig::new("service", root.service.unwrap_or_default());
    let service: ServiceConfig = match service.parse() {
        Ok(s) => s,
        Err(mut d) => {
            d.locate(&locations);
            return Err(d);
        }
    };
    Ok(LoadedConfig {
        extensions: root.extensions,
        receivers: root.receivers,
        processors: root.processors,
        exporters: root.exporters,
        service,
        locations,
    })
}

/// `--set` and environment values are YAML scalars: `10` is a number, `true` a bool.
fn scalar(v: &str) -> serde_json::Value {
    serde_yaml::from_str::<serde_json::Value>(v)
        .unwrap_or_else(|_| serde_json::Value::String(v.to_string()))
}

/// Replaces `${env:VAR}` and `${env:VAR:-default}`; `$${` stays a literal `${`.
/// An unset variable without a default is an error naming the variable and line.
pub fn expand_env(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, (usize, String)> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("${") {
        if rest[..pos].ends_with('$') {
            out.push_str(&rest[..pos - 1]);
            out.push_str("${");
            rest = &rest[pos + 2..];
            continue;
        }
        out.push_str(&rest[..pos]);
        let line = text.len() - rest.len() + pos;
        let line = text[..line].matches('\n').count() + 1;
        let after = &rest[pos + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| (line, "unterminated ${...} expression".to_string()))?;
        let expr = &after[..end];
        let Some(spec) = expr.strip_prefix("env:") else {
            return Err((line, format!("unsupported expression ${{{expr}}}: only ${{env:VAR}} and ${{env:VAR:-default}} are understood")));
        };
        let (name, default) = match spec.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (spec, None),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err((line, format!("invalid environment variable name {name:?}")));
        }
        match (lookup(name), default) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => {
                return Err((
                    line,
                    format!("environment variable {name} is not set (write ${{env:{name}:-default}} to give a default)"),
                ))
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests;
