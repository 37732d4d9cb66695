//! `nop`: accepts and discards everything. For benchmarks and for pipelines under construction.

use async_trait::async_trait;
use serde::Deserialize;
use tapline_core::config::{ComponentConfig, Diagnostics};
use tapline_core::data::{SharedSignal, SignalKind};
use tapline_core::{BuildContext, ExportError, Exporter, ExporterFactory, FactoryInfo};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NopConfig {}

pub struct NopFactory;

impl FactoryInfo for NopFactory {
    fn type_name(&self) -> &'static str {
        "nop"
    }
    fn description(&self) -> &'static str {
        "Discards everything (benchmarks, pipelines under construction)"
    }
    fn signals(&self) -> &'static [SignalKind] {
        &[SignalKind::Metrics, SignalKind::Traces]
    }
}

impl ExporterFactory for NopFactory {
    fn build(
        &self,
        config: &ComponentConfig,
        _ctx: &BuildContext,
    ) -> Result<Box<dyn Exporter>, Diagnostics> {
        let _: NopConfig = config.parse()?;
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
