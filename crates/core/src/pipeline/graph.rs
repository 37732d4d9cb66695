//! Builds the whole component graph from a loaded configuration, without starting anything.
//! `validate` stops here; `run` hands the result to the runtime.
//!
//! [`build`] runs named steps in order: declare every component, check the pipelines' and
//! `service.extensions`' references, build the extensions, then the exporters, the
//! processors (once per id), the pipelines, and the receivers. Every step records what it
//! finds wrong and goes on, so one run reports every problem of a configuration.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tokio::sync::mpsc;
use tower::Layer;

use super::exporter_helper::{workers, ExporterSettings, RetryingExporter};
use super::output::PipelineInput;
use super::queue::{ExporterQueue, FanOut};
use super::{PipelineService, ProcessorLayer, ReceiverOutput};
use crate::component::*;
use crate::config::{closest, ComponentConfig, Diagnostics, LoadedConfig, PipelineConfig};
use crate::data::{Signal, SignalKind};
use crate::registry::Registry;
use crate::telemetry::Telemetry;

/// Batches a pipeline's input channel holds before receivers wait (or refuse).
pub const PIPELINE_CHANNEL_BATCHES: usize = 64;

pub struct BuiltReceiver {
    pub id: ComponentId,
    pub receiver: Box<dyn Receiver>,
    pub output: ReceiverOutput,
}

pub struct BuiltPipeline {
    pub name: String,
    pub signal: SignalKind,
    pub service: PipelineService,
    pub input: mpsc::Receiver<Signal>,
}

pub struct BuiltExporter {
    pub id: ComponentId,
    /// One per unit of `queue.concurrency`; the first is the original, the rest its forks.
    pub workers: Vec<RetryingExporter>,
    pub queue: Arc<ExporterQueue>,
}

/// Everything a configuration describes, built and wired, nothing running.
pub struct Graph {
    pub receivers: Vec<BuiltReceiver>,
    pub pipelines: Vec<BuiltPipeline>,
    pub exporters: Vec<BuiltExporter>,
    /// The enabled extensions' tasks, started before anything else.
    pub extension_background: Vec<(String, BackgroundTask)>,
    pub background: Vec<(String, BackgroundTask)>,
    /// Problems that do not stop the graph (an unused component).
    pub warnings: Diagnostics,
    /// Where the running graph registers its components' readiness.
    pub telemetry: Telemetry,
}

/// Builds every component. Returns every error found, not just the first.
pub fn build(
    config: &LoadedConfig,
    registry: &Registry,
    telemetry: &Telemetry,
) -> Result<Graph, Diagnostics> {
    let mut b = Builder {
        config,
        registry,
        telemetry,
        shared: SharedState::default(),
        extensions: Extensions::default(),
        diags: Diagnostics::default(),
        extension_background: Vec::new(),
        background: Vec::new(),
    };
    let declared = b.declare_all();
    let plan = b.check_pipelines();
    b.check_service_extensions();
    b.warn_unused(&declared, &plan);
    b.build_extensions(&declared.extensions);
    let exporters = b.build_exporters(&declared.exporters, &plan);
    let processors = b.build_processors(&declared.processors, &plan);
    let (pipelines, inputs) = b.assemble_pipelines(&plan, &processors, &exporters);
    let receivers = b.build_receivers(&declared.receivers, &plan, &inputs);

    let mut diags = b.diags;
    diags.locate(&config.locations);
    if diags.has_errors() {
        return Err(diags);
    }
    Ok(Graph {
        receivers,
        pipelines,
        exporters: exporters.into_values().collect(),
        extension_background: b.extension_background,
        background: b.background,
        warnings: diags,
        telemetry: telemetry.clone(),
    })
}

/// One entry of a config section whose type is registered.
struct Declared {
    id: ComponentId,
    config: ComponentConfig,
}

/// Each section's entries by id, as written.
#[derive(Default)]
struct DeclaredAll {
    extensions: BTreeMap<String, Declared>,
    receivers: BTreeMap<String, Declared>,
    processors: BTreeMap<String, Declared>,
    exporters: BTreeMap<String, Declared>,
}

/// The pipelines' references, checked.
#[derive(Default)]
struct Plan<'a> {
    /// Every (kind, id) some pipeline lists.
    used: BTreeSet<(ComponentKind, String)>,
    /// Receiver id → the pipelines it feeds.
    receiver_pipelines: BTreeMap<String, Vec<String>>,
    /// Pipelines with a signal, in order; `false` when a reference was wrong.
    pipelines: Vec<(String, SignalKind, &'a PipelineConfig, bool)>,
}

struct Builder<'a> {
    config: &'a LoadedConfig,
    registry: &'a Registry,
    telemetry: &'a Telemetry,
    shared: SharedState,
    extensions: Extensions,
    diags: Diagnostics,
    extension_background: Vec<(String, BackgroundTask)>,
    background: Vec<(String, BackgroundTask)>,
}

impl<'a> Builder<'a> {
    fn section(&self, kind: ComponentKind) -> &'a BTreeMap<String, serde_json::Value> {
        let config = self.config;
        match kind {
            ComponentKind::Extension => &config.extensions,
            ComponentKind::Receiver => &config.receivers,
            ComponentKind::Processor => &config.processors,
            ComponentKind::Exporter => &config.exporters,
        }
    }

    fn context(&self, d: &Declared) -> BuildContext {
        BuildContext::new(d.id.clone(), self.telemetry.clone(), self.shared.clone())
            .at(d.config.path.clone())
            .with_extensions(self.extensions.clone())
    }

    /// Adds `e`, leaving out problems already reported (a component built twice).
    fn report(&mut self, e: Diagnostics) {
        for item in e.items {
            if !self.diags.items.contains(&item) {
                self.diags.items.push(item);
            }
        }
    }

    /// Step 1: parses the ids of every section and checks their types exist.
    fn declare_all(&mut self) -> DeclaredAll {
        DeclaredAll {
            extensions: self.declare(ComponentKind::Extension),
            receivers: self.declare(ComponentKind::Receiver),
            processors: self.declare(ComponentKind::Processor),
            exporters: self.declare(ComponentKind::Exporter),
        }
    }

    fn declare(&mut self, kind: ComponentKind) -> BTreeMap<String, Declared> {
        let mut out = BTreeMap::new();
        let known = self.registry.type_names(kind);
        for (raw_id, value) in self.section(kind) {
            let path = format!("{}.{raw_id}", kind.section());
            let id = match ComponentId::parse(raw_id) {
                Ok(id) => id,
                Err(e) => {
                    self.diags.error(path, e);
                    continue;
                }
            };
            if !known.contains(&id.type_name.as_str()) {
                let hint = closest(&id.type_name, known.iter().copied())
                    .map(|c| format!(" (did you mean {c:?}?)"))
                    .unwrap_or_default();
                self.diags.error(
                    path,
                    format!(
                        "unknown {} type {:?}{hint}; known: {}",
                        kind.as_str(),
                        id.type_name,
                        known.join(", ")
                    ),
                );
                continue;
            }
            out.insert(
                raw_id.clone(),
                Declared {
                    id,
                    config: ComponentConfig::new(path, value.clone()),
                },
            );
        }
        out
    }

    /// An error for a reference at `path` to an id that `kind`'s section does not declare.
    fn undeclared(&mut self, kind: ComponentKind, id: &str, path: String) {
        let hint = closest(id, self.section(kind).keys().map(String::as_str))
            .map(|c| format!(" (did you mean {c:?}?)"))
            .unwrap_or_default();
        self.diags.error(
            path,
            format!(
                "{} {id:?} is not declared under {}{hint}",
                kind.as_str(),
                kind.section()
            ),
        );
    }

    /// Step 2: every pipeline's signal, references, and the signals its components support.
    fn check_pipelines(&mut self) -> Plan<'a> {
        let config = self.config;
        let mut plan = Plan::default();
        if config.service.pipelines.is_empty() {
            self.diags.error(
                "service.pipelines",
                "no pipeline is defined: nothing would run",
            );
        }
        for (pname, p) in &config.service.pipelines {
            let ppath = format!("service.pipelines.{pname}");
            let signal = match signal_of_pipeline(pname) {
                Ok(s) => s,
                Err(e) => {
                    self.diags.error(ppath, e);
                    continue;
                }
            };
            if p.receivers.is_empty() {
                self.diags.error(
                    format!("{ppath}.receivers"),
                    "a pipeline needs at least one receiver",
                );
            }
            if p.exporters.is_empty() {
                self.diags.error(
                    format!("{ppath}.exporters"),
                    "a pipeline needs at least one exporter",
                );
            }
            let mut ok = true;
            for (kind, list, field) in [
                (ComponentKind::Receiver, &p.receivers, "receivers"),
                (ComponentKind::Processor, &p.processors, "processors"),
                (ComponentKind::Exporter, &p.exporters, "exporters"),
            ] {
                for (i, id) in list.iter().enumerate() {
                    let path = format!("{ppath}.{field}[{i}]");
                    if self.check_reference(kind, list, i, signal, path) {
                        plan.used.insert((kind, id.clone()));
                    } else {
                        ok = false;
                    }
                }
            }
            if ok {
                for r in &p.receivers {
                    plan.receiver_pipelines
                        .entry(r.clone())
                        .or_default()
                        .push(pname.clone());
                }
            }
            plan.pipelines.push((pname.clone(), signal, p, ok));
        }
        plan
    }

    /// Checks `list[i]` of a pipeline: listed once, declared, supports the signal.
    fn check_reference(
        &mut self,
        kind: ComponentKind,
        list: &[String],
        i: usize,
        signal: SignalKind,
        path: String,
    ) -> bool {
        let id = &list[i];
        if list[..i].contains(id) {
            self.diags
                .error(path, format!("{} {id:?} is listed twice", kind.as_str()));
            return false;
        }
        // Ids that failed to declare still exist as far as references are concerned: their
        // error is already reported, and "undeclared" would only add noise.
        if !self.section(kind).contains_key(id) {
            self.undeclared(kind, id, path);
            return false;
        }
        let type_name = id.split('/').next().unwrap_or(id);
        if let Some(signals) = self.registry.signals_of(kind, type_name) {
            if !signals.contains(&signal) {
                self.diags.error(
                    path,
                    format!(
                        "{} {id:?} does not support {signal} (it supports: {})",
                        kind.as_str(),
                        signals
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
                return false;
            }
        }
        true
    }

    /// Step 3: `service.extensions` lists declared extensions, each once.
    fn check_service_extensions(&mut self) {
        let config = self.config;
        let list = &config.service.extensions;
        for (i, id) in list.iter().enumerate() {
            let path = format!("service.extensions[{i}]");
            if list[..i].contains(id) {
                self.diags
                    .error(path, format!("extension {id:?} is listed twice"));
            } else if !config.extensions.contains_key(id) {
                self.undeclared(ComponentKind::Extension, id, path);
            }
        }
    }

    /// Step 4: a warning for every component nothing uses.
    fn warn_unused(&mut self, declared: &DeclaredAll, plan: &Plan) {
        let config = self.config;
        for (kind, map) in [
            (ComponentKind::Receiver, &declared.receivers),
            (ComponentKind::Processor, &declared.processors),
            (ComponentKind::Exporter, &declared.exporters),
        ] {
            for (raw, d) in map {
                if !plan.used.contains(&(kind, raw.clone())) {
                    self.diags.warning(
                        d.config.path.clone(),
                        format!("{} {raw:?} is used by no pipeline", kind.as_str()),
                    );
                }
            }
        }
        for (raw, d) in &declared.extensions {
            if !config.service.extensions.contains(raw) {
                self.diags.warning(
                    d.config.path.clone(),
                    format!("extension {raw:?} is not enabled: list it in service.extensions"),
                );
            }
        }
    }

    /// Step 5: every declared extension is built (so `validate` reports its errors); the
    /// enabled ones become visible to every component built after.
    fn build_extensions(&mut self, declared: &BTreeMap<String, Declared>) {
        let registry = self.registry;
        self.extensions.declared = self.config.extensions.keys().cloned().collect();
        let mut built = BTreeMap::new();
        for (raw, d) in declared {
            let ctx = self.context(d);
            let factory = &registry.extensions[d.id.type_name.as_str()];
            match factory.build(&d.config, &ctx) {
                Ok(_) if !self.config.service.extensions.contains(raw) => {}
                Ok(value) => {
                    self.extension_background.extend(ctx.take_background());
                    built.insert(
                        raw.clone(),
                        BuiltExtension {
                            type_name: factory.type_name(),
                            value,
                        },
                    );
                }
                Err(e) => self.diags.extend(e),
            }
        }
        self.extensions.built = built;
    }

    /// Step 6: exporters, once each (shared by every pipeline that lists them), with the
    /// helper's queue and retry around them. They are built before receivers because, without
    /// a `histogram_buckets` extension, the `prometheus` exporter publishes its bucket rules
    /// for receivers to record into.
    fn build_exporters(
        &mut self,
        declared: &BTreeMap<String, Declared>,
        plan: &Plan,
    ) -> BTreeMap<String, BuiltExporter> {
        let registry = self.registry;
        let mut built = BTreeMap::new();
        // Every declared component is built, used or not, so that `validate` reports its errors.
        for (raw, d) in declared {
            let mut config = d.config.clone();
            let settings = match ExporterSettings::take_from(&mut config) {
                Ok(s) => s,
                Err(e) => {
                    self.diags.extend(e);
                    continue;
                }
            };
            let ctx = self.context(d);
            let factory = &registry.exporters[d.id.type_name.as_str()];
            let exporter = match factory.build(&config, &ctx) {
                Ok(e) => e,
                Err(e) => {
                    self.diags.extend(e);
                    continue;
                }
            };
            let handles = match workers(exporter, settings.queue.concurrency) {
                Ok(w) => w,
                Err(e) => {
                    self.diags
                        .error(format!("{}.queue.concurrency", d.config.path), e);
                    continue;
                }
            };
            if !plan.used.contains(&(ComponentKind::Exporter, raw.clone())) {
                continue;
            }
            self.background.extend(ctx.take_background());
            built.insert(raw.clone(), self.exporter_helper(&d.id, settings, handles));
        }
        built
    }

    /// The queue, its gauges and the retrying workers of one exporter.
    fn exporter_helper(
        &self,
        id: &ComponentId,
        settings: ExporterSettings,
        handles: Vec<Box<dyn Exporter>>,
    ) -> BuiltExporter {
        let id_s = id.to_string();
        let labels = [("component", id_s.as_str())];
        let queue = ExporterQueue::new(
            settings.queue,
            self.telemetry.component(ComponentKind::Exporter, id),
            self.telemetry.gauge(
                "tapline_exporter_queue_size",
                "Batches waiting in an exporter's queue.",
                &labels,
            ),
        );
        self.telemetry
            .gauge(
                "tapline_exporter_queue_capacity",
                "Batches an exporter's queue holds.",
                &labels,
            )
            .set(settings.queue.size as i64);
        let retries = self.telemetry.counter(
            "tapline_exporter_retries_total",
            "Export attempts that failed in a retryable way and were retried.",
            &labels,
        );
        BuiltExporter {
            id: id.clone(),
            workers: handles
                .into_iter()
                .map(|h| RetryingExporter::new(h, settings.retry.clone(), retries.clone()))
                .collect(),
            queue,
        }
    }

    /// Step 7: every processor, once per id; pipelines listing it share the layer.
    fn build_processors(
        &mut self,
        declared: &BTreeMap<String, Declared>,
        plan: &Plan,
    ) -> BTreeMap<String, ProcessorLayer> {
        let registry = self.registry;
        let mut built = BTreeMap::new();
        for (raw, d) in declared {
            let ctx = self.context(d);
            let factory = &registry.processors[d.id.type_name.as_str()];
            match factory.build(&d.config, &ctx) {
                Ok(_) if !plan.used.contains(&(ComponentKind::Processor, raw.clone())) => {}
                Ok(layer) => {
                    self.background.extend(ctx.take_background());
                    built.insert(raw.clone(), layer);
                }
                Err(e) => self.report(e),
            }
        }
        built
    }

    /// Step 8: each pipeline: channel → processors → fan-out to its exporters' queues.
    fn assemble_pipelines(
        &mut self,
        plan: &Plan,
        processors: &BTreeMap<String, ProcessorLayer>,
        exporters: &BTreeMap<String, BuiltExporter>,
    ) -> (Vec<BuiltPipeline>, BTreeMap<String, PipelineInput>) {
        let mut pipelines = Vec::new();
        let mut inputs = BTreeMap::new();
        for (pname, signal, p, ok) in &plan.pipelines {
            if !ok {
                continue;
            }
            let queues = p
                .exporters
                .iter()
                .filter_map(|e| exporters.get(e).map(|b| b.queue.clone()))
                .collect();
            let mut service = PipelineService::new(FanOut::new(queues));
            for id in p.processors.iter().rev() {
                if let Some(layer) = processors.get(id) {
                    service = layer.layer(service);
                }
            }
            let (tx, rx) = mpsc::channel(PIPELINE_CHANNEL_BATCHES);
            inputs.insert(
                pname.clone(),
                PipelineInput {
                    signal: *signal,
                    tx,
                },
            );
            pipelines.push(BuiltPipeline {
                name: pname.clone(),
                signal: *signal,
                service,
                input: rx,
            });
        }
        (pipelines, inputs)
    }

    /// Step 9: receivers, wired to the inputs of the pipelines they feed.
    fn build_receivers(
        &mut self,
        declared: &BTreeMap<String, Declared>,
        plan: &Plan,
        inputs: &BTreeMap<String, PipelineInput>,
    ) -> Vec<BuiltReceiver> {
        let registry = self.registry;
        let mut built = Vec::new();
        for (raw, d) in declared {
            let ctx = self.context(d);
            let factory = &registry.receivers[d.id.type_name.as_str()];
            let receiver = match factory.build(&d.config, &ctx) {
                Ok(r) => r,
                Err(e) => {
                    self.diags.extend(e);
                    continue;
                }
            };
            let Some(feeds) = plan.receiver_pipelines.get(raw) else {
                continue;
            };
            self.background.extend(ctx.take_background());
            built.push(BuiltReceiver {
                id: d.id.clone(),
                receiver,
                output: ReceiverOutput {
                    inputs: feeds
                        .iter()
                        .filter_map(|p| inputs.get(p).cloned())
                        .collect(),
                    counters: self.telemetry.component(ComponentKind::Receiver, &d.id),
                },
            });
        }
        built
    }
}

fn signal_of_pipeline(id: &str) -> Result<SignalKind, String> {
    let ty = id.split('/').next().unwrap_or(id);
    match ty {
        "metrics" => Ok(SignalKind::Metrics),
        "traces" => Ok(SignalKind::Traces),
        other => Err(format!(
            "unknown pipeline signal {other:?}: pipelines are named metrics[/<name>] or traces[/<name>]"
        )),
    }
}

#[cfg(test)]
mod tests;
