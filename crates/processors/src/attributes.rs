//! `attributes`: sets or deletes attributes on every data point and span.
//!
//! ```yaml
//! processors:
//!   attributes/env:
//!     actions:
//!       - { key: deployment.environment, value: prod, action: upsert }
//!       - { key: client.address, action: delete }
//! ```

use serde::Deserialize;
use tapline_core::data::{Signal, SignalKind, Str, Value};
use tapline_core::pipeline::BatchFn;

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Adds the key where it is missing.
    Insert,
    /// Changes the key where it exists.
    Update,
    /// Sets the key everywhere.
    Upsert,
    Delete,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionConfig {
    pub key: String,
    #[serde(default)]
    pub value: Option<serde_yaml_value::Scalar>,
    pub action: Action,
}

/// Attribute values as YAML scalars.
pub mod serde_yaml_value {
    use serde::Deserialize;

    #[derive(Clone, Debug, Deserialize, PartialEq)]
    #[serde(untagged)]
    pub enum Scalar {
        Bool(bool),
        Int(i64),
        Double(f64),
        Str(String),
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributesConfig {
    pub actions: Vec<ActionConfig>,
}

pub struct AttributesProcessor {
    actions: Vec<(Str, Option<Value>, Action)>,
}

impl AttributesProcessor {
    pub fn new(cfg: AttributesConfig) -> Result<Self, String> {
        use serde_yaml_value::Scalar;
        let mut actions = Vec::new();
        for (i, a) in cfg.actions.into_iter().enumerate() {
            let value = a.value.map(|v| match v {
                Scalar::Bool(b) => Value::Bool(b),
                Scalar::Int(n) => Value::Int(n),
                Scalar::Double(d) => Value::Double(d),
                Scalar::Str(s) => Value::from(s),
            });
            if a.action != Action::Delete && value.is_none() {
                return Err(format!(
                    "actions[{i}]: action {:?} on {:?} needs a value",
                    a.action, a.key
                ));
            }
            actions.push((Str::from(a.key), value, a.action));
        }
        Ok(AttributesProcessor { actions })
    }

    fn apply_to(&self, attrs: &mut tapline_core::data::Attributes) {
        for (key, value, action) in &self.actions {
            let present = attrs.get(key).is_some();
            match (action, value) {
                (Action::Delete, _) => {
                    attrs.remove(key);
                }
                (Action::Insert, Some(v)) if !present => attrs.push(key.clone(), v.clone()),
                (Action::Update, Some(v)) if present => attrs.set(key.clone(), v.clone()),
                (Action::Upsert, Some(v)) => attrs.set(key.clone(), v.clone()),
                _ => {}
            }
        }
    }
}

impl BatchFn for AttributesProcessor {
    fn apply(&self, batch: &mut Signal) {
        match batch {
            Signal::Metrics(m) => m
                .metrics_mut()
                .for_each(|metric| metric.data.for_each_attributes(|a| self.apply_to(a))),
            Signal::Traces(t) => t.spans_mut().for_each(|s| self.apply_to(&mut s.attributes)),
        }
    }
}

pub const SIGNALS: &[SignalKind] = &[SignalKind::Metrics, SignalKind::Traces];
