//! Type name → factory. The `tapline` binary registers the built-in components; a library user
//! registers their own next to them and runs the same CLI (see `examples/custom_processor.rs`).

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::component::*;
use crate::config::{ComponentConfig, Diagnostics};
use crate::data::{Signal, SignalKind};
use crate::pipeline::{BatchFn, BatchLayer, ExporterSettings, ProcessorLayer};

#[derive(Clone, Default)]
pub struct Registry {
    pub(crate) receivers: BTreeMap<&'static str, Arc<dyn ReceiverFactory>>,
    pub(crate) processors: BTreeMap<&'static str, Arc<dyn ProcessorFactory>>,
    pub(crate) exporters: BTreeMap<&'static str, Arc<dyn ExporterFactory>>,
    pub(crate) extensions: BTreeMap<&'static str, Arc<dyn ExtensionFactory>>,
}

/// One line of `tapline components`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComponentListing {
    pub kind: ComponentKind,
    pub type_name: &'static str,
    pub signals: &'static [SignalKind],
    pub description: &'static str,
    pub hidden: bool,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn register_receiver(&mut self, f: impl ReceiverFactory + 'static) -> &mut Self {
        self.receivers.insert(f.type_name(), Arc::new(f));
        self
    }
    pub fn register_processor(&mut self, f: impl ProcessorFactory + 'static) -> &mut Self {
        self.processors.insert(f.type_name(), Arc::new(f));
        self
    }
    pub fn register_exporter(&mut self, f: impl ExporterFactory + 'static) -> &mut Self {
        self.exporters.insert(f.type_name(), Arc::new(f));
        self
    }
    pub fn register_extension(&mut self, f: impl ExtensionFactory + 'static) -> &mut Self {
        self.extensions.insert(f.type_name(), Arc::new(f));
        self
    }

    /// Registers a processor written as a plain function: `make` turns the typed config `C`
    /// into a batch function, which the generic adapter lifts into a tower layer. `make` runs
    /// once per component id; pipelines listing the id share the function.
    pub fn register_fn_processor<C, F, M>(
        &mut self,
        type_name: &'static str,
        description: &'static str,
        signals: &'static [SignalKind],
        make: M,
    ) -> &mut Self
    where
        C: DeserializeOwned + 'static,
        F: BatchFn,
        M: Fn(C) -> Result<F, String> + Send + Sync + 'static,
    {
        self.register_processor(FnProcessorFactory {
            type_name,
            description,
            signals,
            make,
            _config: PhantomData,
        })
    }

    pub fn listings(&self) -> Vec<ComponentListing> {
        fn list<F: FactoryInfo + ?Sized>(kind: ComponentKind, f: &F) -> ComponentListing {
            ComponentListing {
                kind,
                type_name: f.type_name(),
                signals: f.signals(),
                description: f.description(),
                hidden: f.hidden(),
            }
        }
        let mut out = Vec::new();
        out.extend(
            self.extensions
                .values()
                .map(|f| list(ComponentKind::Extension, &**f)),
        );
        out.extend(
            self.receivers
                .values()
                .map(|f| list(ComponentKind::Receiver, &**f)),
        );
        out.extend(
            self.processors
                .values()
                .map(|f| list(ComponentKind::Processor, &**f)),
        );
        out.extend(
            self.exporters
                .values()
                .map(|f| list(ComponentKind::Exporter, &**f)),
        );
        out
    }

    /// Builds one component from `config` and throws it away: what `validate` does for a
    /// single component. Used to check documentation against the real config structs.
    pub fn check_config(
        &self,
        kind: ComponentKind,
        type_name: &str,
        config: &ComponentConfig,
    ) -> Result<(), Diagnostics> {
        let id = ComponentId::parse(type_name).map_err(|e| {
            let mut d = Diagnostics::default();
            d.error(config.path.clone(), e);
            d
        })?;
        let ctx = BuildContext::new(id, crate::telemetry::Telemetry::new(), Default::default())
            .at(config.path.clone());
        let missing = || {
            let mut d = Diagnostics::default();
            d.error(
                config.path.clone(),
                format!("unknown {} type {type_name:?}", kind.as_str()),
            );
            d
        };
        match kind {
            ComponentKind::Extension => self
                .extensions
                .get(type_name)
                .ok_or_else(missing)?
                .build(config, &ctx)
                .map(drop),
            ComponentKind::Receiver => self
                .receivers
                .get(type_name)
                .ok_or_else(missing)?
                .build(config, &ctx)
                .map(drop),
            ComponentKind::Exporter => {
                let mut config = config.clone();
                // The queue and retry blocks belong to the exporter helper; checked the same way.
                ExporterSettings::take_from(&mut config)?;
                self.exporters
                    .get(type_name)
                    .ok_or_else(missing)?
                    .build(&config, &ctx)
                    .map(drop)
            }
            ComponentKind::Processor => self
                .processors
                .get(type_name)
                .ok_or_else(missing)?
                .build(config, &ctx)
                .map(drop),
        }
    }

    pub(crate) fn type_names(&self, kind: ComponentKind) -> Vec<&'static str> {
        match kind {
            ComponentKind::Receiver => self.receivers.keys().copied().collect(),
            ComponentKind::Processor => self.processors.keys().copied().collect(),
            ComponentKind::Exporter => self.exporters.keys().copied().collect(),
            ComponentKind::Extension => self.extensions.keys().copied().collect(),
        }
    }

    pub(crate) fn signals_of(
        &self,
        kind: ComponentKind,
        type_name: &str,
    ) -> Option<&'static [SignalKind]> {
        match kind {
            ComponentKind::Receiver => self.receivers.get(type_name).map(|f| f.signals()),
            ComponentKind::Processor => self.processors.get(type_name).map(|f| f.signals()),
            ComponentKind::Exporter => self.exporters.get(type_name).map(|f| f.signals()),
            ComponentKind::Extension => self.extensions.get(type_name).map(|f| f.signals()),
        }
    }
}

struct FnProcessorFactory<C, M> {
    type_name: &'static str,
    description: &'static str,
    signals: &'static [SignalKind],
    make: M,
    _config: PhantomData<fn() -> C>,
}

impl<C, M> FactoryInfo for FnProcessorFactory<C, M>
where
    C: 'static,
    M: Send + Sync,
{
    fn type_name(&self) -> &'static str {
        self.type_name
    }
    fn description(&self) -> &'static str {
        self.description
    }
    fn signals(&self) -> &'static [SignalKind] {
        self.signals
    }
}

impl<C, F, M> ProcessorFactory for FnProcessorFactory<C, M>
where
    C: DeserializeOwned + 'static,
    F: BatchFn,
    M: Fn(C) -> Result<F, String> + Send + Sync + 'static,
{
    fn build(
        &self,
        config: &ComponentConfig,
        ctx: &BuildContext,
    ) -> Result<ProcessorLayer, Diagnostics> {
        let cfg: C = config.parse()?;
        let f = (self.make)(cfg).map_err(|e| {
            let mut d = Diagnostics::default();
            d.error(config.path.clone(), e);
            d
        })?;
        Ok(BatchLayer::boxed(f, &ctx.id, &ctx.telemetry))
    }
}

/// Lets a plain closure be a batch function.
impl<T> BatchFn for T
where
    T: Fn(&mut Signal) + Send + Sync + 'static,
{
    fn apply(&self, batch: &mut Signal) {
        self(batch)
    }
}
