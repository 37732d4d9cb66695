//! The typed component traits and the one generic adapter behind them.
//!
//! A component author writes a config struct (`Default` + `Deserialize`, with
//! `#[serde(deny_unknown_fields)]`), implements [`Component`] (type name, description,
//! signals) and one of [`ReceiverComponent`], [`ProcessorComponent`], [`ExporterComponent`],
//! [`ExtensionComponent`]. The blanket impls here turn that into the registry's factory:
//! they parse the config (errors carry the exact field path), call `build`, and prefix the
//! problems `build` reports ([`ConfigErrors`], by field) with the component's config path.

use std::any::Any;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use super::{
    BuildContext, Exporter, ExporterFactory, ExtensionFactory, FactoryInfo, ProcessorFactory,
    Receiver, ReceiverFactory,
};
use crate::config::{ComponentConfig, Diagnostics};
use crate::data::SignalKind;
use crate::pipeline::ProcessorLayer;

/// What every typed component declares about itself.
pub trait Component: Send + Sync + 'static {
    /// The component's config. A missing or empty config block parses as `Default`.
    type Config: DeserializeOwned + Default + Send + 'static;
    /// The name written in the config (`k8s`, `otlp`).
    const TYPE_NAME: &'static str;
    /// One line for `tapline components`.
    const DESCRIPTION: &'static str;
    /// The signals it handles; empty for extensions.
    const SIGNALS: &'static [SignalKind];
    /// Test-support components stay out of `tapline components`.
    const HIDDEN: bool = false;
}

pub trait ReceiverComponent: Component {
    fn build(
        &self,
        config: Self::Config,
        ctx: &BuildContext,
    ) -> Result<Box<dyn Receiver>, ConfigErrors>;
}

/// A processor is built once per component id; every pipeline listing the id gets a clone of
/// the returned layer, so state kept in it (a cache, a watcher started through
/// [`BuildContext::spawn_on_start`]) exists once.
pub trait ProcessorComponent: Component {
    fn build(
        &self,
        config: Self::Config,
        ctx: &BuildContext,
    ) -> Result<ProcessorLayer, ConfigErrors>;
}

pub trait ExporterComponent: Component {
    fn build(
        &self,
        config: Self::Config,
        ctx: &BuildContext,
    ) -> Result<Box<dyn Exporter>, ConfigErrors>;
}

/// Something components share, declared under `extensions:` and enabled by
/// `service.extensions`. Extensions are built before every other component, and their
/// background tasks start before anything else; components find them by id through
/// [`BuildContext::extension`].
pub trait ExtensionComponent: Component {
    /// What components referencing the extension get.
    type Extension: Send + Sync + 'static;
    fn build(
        &self,
        config: Self::Config,
        ctx: &BuildContext,
    ) -> Result<Self::Extension, ConfigErrors>;
}

/// Problems a component finds in its own config, each by field path relative to the
/// component (`""` for the whole component, `interfaces[2]`, `tls.ca_file`).
#[derive(Debug, Default)]
pub struct ConfigErrors {
    items: Vec<(String, String)>,
    /// Problems already placed at a full config path (from a nested parse).
    placed: Diagnostics,
}

impl ConfigErrors {
    pub fn new() -> Self {
        Self::default()
    }
    /// One problem with `field` (relative to the component; `""` for the whole of it).
    pub fn at(field: impl Into<String>, message: impl Into<String>) -> Self {
        let mut e = Self::new();
        e.push(field, message);
        e
    }
    pub fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.items.push((field.into(), message.into()));
    }
    /// Adds every problem of `other`.
    pub fn extend(&mut self, other: ConfigErrors) {
        self.items.extend(other.items);
        self.placed.extend(other.placed);
    }
    pub fn is_empty(&self) -> bool {
        self.items.is_empty() && self.placed.items.is_empty()
    }
    /// `Ok(value)` when nothing was reported.
    pub fn or_ok<T>(self, value: T) -> Result<T, ConfigErrors> {
        if self.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }
    /// Every problem, placed under the component's config path.
    pub fn into_diagnostics(self, path: &str) -> Diagnostics {
        let mut d = self.placed;
        for (field, message) in self.items {
            let full = match field.as_str() {
                "" => path.to_string(),
                f if f.starts_with('[') => format!("{path}{f}"),
                f => format!("{path}.{f}"),
            };
            d.error(full, message);
        }
        d
    }
}

/// A message about the whole component.
impl From<String> for ConfigErrors {
    fn from(message: String) -> Self {
        ConfigErrors::at("", message)
    }
}

/// `(field, message)`, the shape the components' own checks return.
impl From<(String, String)> for ConfigErrors {
    fn from((field, message): (String, String)) -> Self {
        ConfigErrors::at(field, message)
    }
}

impl From<(&str, String)> for ConfigErrors {
    fn from((field, message): (&str, String)) -> Self {
        ConfigErrors::at(field, message)
    }
}

/// Problems that already carry their full config path.
impl From<Diagnostics> for ConfigErrors {
    fn from(placed: Diagnostics) -> Self {
        ConfigErrors {
            items: Vec::new(),
            placed,
        }
    }
}

/// Parses the component's config and runs `build`, placing every problem at its config path.
fn parse_and_build<C: Component, T>(
    config: &ComponentConfig,
    build: impl FnOnce(C::Config) -> Result<T, ConfigErrors>,
) -> Result<T, Diagnostics> {
    let parsed: C::Config = config.parse()?;
    build(parsed).map_err(|e| e.into_diagnostics(&config.path))
}

impl<C: Component> FactoryInfo for C {
    fn type_name(&self) -> &'static str {
        C::TYPE_NAME
    }
    fn description(&self) -> &'static str {
        C::DESCRIPTION
    }
    fn signals(&self) -> &'static [SignalKind] {
        C::SIGNALS
    }
    fn hidden(&self) -> bool {
        C::HIDDEN
    }
}

impl<C: ReceiverComponent> ReceiverFactory for C {
    fn build(
        &self,
        config: &ComponentConfig,
        ctx: &BuildContext,
    ) -> Result<Box<dyn Receiver>, Diagnostics> {
        parse_and_build::<C, _>(config, |c| ReceiverComponent::build(self, c, ctx))
    }
}

impl<C: ProcessorComponent> ProcessorFactory for C {
    fn build(
        &self,
        config: &ComponentConfig,
        ctx: &BuildContext,
    ) -> Result<ProcessorLayer, Diagnostics> {
        parse_and_build::<C, _>(config, |c| ProcessorComponent::build(self, c, ctx))
    }
}

impl<C: ExporterComponent> ExporterFactory for C {
    fn build(
        &self,
        config: &ComponentConfig,
        ctx: &BuildContext,
    ) -> Result<Box<dyn Exporter>, Diagnostics> {
        parse_and_build::<C, _>(config, |c| ExporterComponent::build(self, c, ctx))
    }
}

impl<C: ExtensionComponent> ExtensionFactory for C {
    fn build(
        &self,
        config: &ComponentConfig,
        ctx: &BuildContext,
    ) -> Result<Arc<dyn Any + Send + Sync>, Diagnostics> {
        parse_and_build::<C, _>(config, |c| {
            ExtensionComponent::build(self, c, ctx)
                .map(|e| Arc::new(e) as Arc<dyn Any + Send + Sync>)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_are_placed_under_the_component_path() {
        let mut e = ConfigErrors::at("", "whole");
        e.push("interfaces[2]", "bad");
        e.push("[0]", "first");
        let d = e.into_diagnostics("receivers.flows/east");
        let paths: Vec<_> = d.items.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "receivers.flows/east",
                "receivers.flows/east.interfaces[2]",
                "receivers.flows/east[0]"
            ]
        );
    }
}
