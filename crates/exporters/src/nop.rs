//! `nop`: accepts and discards everything. For benchmarks and for pipelines under construction.

use async_trait::async_trait;
use serde::Deserialize;
use tapline_core::data::{SharedSignal, SignalKind};
use tapline_core::{
    BuildContext, Component, ConfigErrors, ExportError, Exporter, ExporterComponent,
};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NopConfig {}

pub struct NopFactory;

impl Component for NopFactory {
    type Config = NopConfig;
    const TYPE_NAME: &'static str = "nop";
    const DESCRIPTION: &'static str =
        "Discards everything (benchmarks, pipelines under construction)";
    const SIGNALS: &'static [SignalKind] = &[SignalKind::Metrics, SignalKind::Traces];
}

impl ExporterComponent for NopFactory {
    fn build(
        &self,
        _cfg: NopConfig,
        _ctx: &BuildContext,
    ) -> Result<Box<dyn Exporter>, ConfigErrors> {
        Ok(Box::new(NopExporter))
    }
}

pub struct NopExporter;

#[async_trait]
impl Exporter for NopExporter {
    async fn export(&mut self, _batch: SharedSignal) -> Result<(), ExportError> {
        Ok(())
    }
}
