//! Builds the whole component graph from a loaded configuration, without starting anything.
//! `validate` stops here; `run` hands the result to the runtime.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tokio::sync::mpsc;
use tower::Layer;

use super::output::PipelineInput;
use super::queue::{ExporterQueue, FanOut, QueueConfig};
use super::{PipelineService, ReceiverOutput};
use crate::component::*;
use crate::config::{closest, ComponentConfig, Diagnostics, LoadedConfig};
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
    pub exporter: Box<dyn Exporter>,
    pub queue: Arc<ExporterQueue>,
}

/// Everything a configuration describes, built and wired, nothing running.
pub struct Graph {
    pub receivers: Vec<BuiltReceiver>,
    pub pipelines: Vec<BuiltPipeline>,
    pub exporters: Vec<BuiltExporter>,
    pub background: Vec<(String, BackgroundTask)>,
    /// Problems that do not stop the graph (an unused component).
    pub warnings: Diagnostics,
}

struct Declared {
    id: ComponentId,
    path: String,
    config: ComponentConfig,
}

/// Parses the ids of one config section and checks their types exist.
fn declare(
    kind: ComponentKind,
    section: &BTreeMap<String, serde_json::Value>,
    registry: &Registry,
    diags: &mut Diagnostics,
) -> BTreeMap<String, Declared> {
    let mut out = BTreeMap::new();
    let known = registry.type_names(kind);
    for (raw_id, value) in section {
        let path = format!("{}.{raw_id}", kind.section());
        let id = match ComponentId::parse(raw_id) {
            Ok(id) => id,
            Err(e) => {
                diags.error(path, e);
                continue;
            }
        };
        if !known.contains(&id.type_name.as_str()) {
            let hint = closest(&id.type_name, known.iter().copied())
                .map(|c| format!(" (did you mean {c:?}?)"))
                .unwrap_or_default();
            diags.error(
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
                config: ComponentConfig::new(path.clone(), value.clone()),
                path,
            },
        );
    }
    out
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

/// Builds every component. Returns every error found, not just the first.
pub fn build(
    config: &LoadedConfig,
    registry: &Registry,
    telemetry: &Telemetry,
) -> Result<Graph, Diagnostics> {
    let mut diags = Diagnostics::default();
    let shared = SharedState::default();
    let receivers = declare(
        ComponentKind::Receiver,
        &config.receivers,
        registry,
        &mut diags,
    );
    let processors = declare(
        ComponentKind::Processor,
        &config.processors,
        registry,
        &mut diags,
    );
    let exporters = declare(
        ComponentKind::Exporter,
        &config.exporters,
        registry,
        &mut diags,
    );
    // Ids that failed to declare still exist as far as references are concerned: their error
    // is already reported, and "undeclared" would only add noise.
    let exists = |kind: ComponentKind, id: &str| match kind {
        ComponentKind::Receiver => config.receivers.contains_key(id),
        ComponentKind::Processor => config.processors.contains_key(id),
        ComponentKind::Exporter => config.exporters.contains_key(id),
    };

    if config.service.pipelines.is_empty() {
        diags.error(
            "service.pipelines",
            "no pipeline is defined: nothing would run",
        );
    }

    // Check every pipeline's references and signals.
    let mut used: BTreeSet<(ComponentKind, String)> = BTreeSet::new();
    let mut receiver_signals: BTreeMap<String, Vec<(String, SignalKind)>> = BTreeMap::new();
    let mut exporter_pipelines: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut valid_pipelines = Vec::new();
    for (pname, p) in &config.service.pipelines {
        let ppath = format!("service.pipelines.{pname}");
        let signal = match signal_of_pipeline(pname) {
            Ok(s) => s,
            Err(e) => {
                diags.error(ppath, e);
                continue;
            }
        };
        if p.receivers.is_empty() {
            diags.error(
                format!("{ppath}.receivers"),
                "a pipeline needs at least one receiver",
            );
        }
        if p.exporters.is_empty() {
            diags.error(
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
            let mut seen = BTreeSet::new();
            for (i, id) in list.iter().enumerate() {
                let path = format!("{ppath}.{field}[{i}]");
                if !seen.insert(id) {
                    diags.error(path, format!("{} {id:?} is listed twice", kind.as_str()));
                    ok = false;
                    continue;
                }
                if !exists(kind, id) {
                    let declared: Vec<&str> = match kind {
                        ComponentKind::Receiver => {
                            config.receivers.keys().map(String::as_str).collect()
                        }
                        ComponentKind::Processor => {
                            config.processors.keys().map(String::as_str).collect()
                        }
                        ComponentKind::Exporter => {
                            config.exporters.keys().map(String::as_str).collect()
                        }
                    };
                    let hint = closest(id, declared.iter().copied())
                        .map(|c| format!(" (did you mean {c:?}?)"))
                        .unwrap_or_default();
                    diags.error(
                        path,
                        format!(
                            "{} {id:?} is not declared under {}{hint}",
                            kind.as_str(),
                            kind.section()
                        ),
                    );
                    ok = false;
                    continue;
                }
                used.insert((kind, id.clone()));
                let type_name = id.split('/').next().unwrap_or(id);
                if let Some(signals) = registry.signals_of(kind, type_name) {
                    if !signals.contains(&signal) {
                        diags.error(
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
                        ok = false;
                    }
                }
            }
        }
        if ok {
            for r in &p.receivers {
                receiver_signals
                    .entry(r.clone())
                    .or_default()
                    .push((pname.clone(), signal));
            }
            for e in &p.exporters {
                exporter_pipelines
                    .entry(e.clone())
                    .or_default()
                    .push(pname.clone());
            }
        }
        valid_pipelines.push((pname.clone(), signal, p, ok));
    }

    for (kind, map) in [
        (ComponentKind::Receiver, &receivers),
        (ComponentKind::Processor, &processors),
        (ComponentKind::Exporter, &exporters),
    ] {
        for (raw, d) in map {
            if !used.contains(&(kind, raw.clone())) {
                diags.warning(
                    d.path.clone(),
                    format!("{} {raw:?} is used by no pipeline", kind.as_str()),
                );
            }
        }
    }

    // Build exporters once each (shared by every pipeline that lists them).
    let mut built_exporters = BTreeMap::new();
    let mut background = Vec::new();
    // Every declared component is built, used or not, so that `validate` reports its errors.
    for (raw, d) in &exporters {
        let mut cfg = d.config.clone();
        let queue_cfg = match cfg.take("queue") {
            None => QueueConfig::default(),
            Some(v) => {
                match ComponentConfig::new(format!("{}.queue", d.path), v).parse::<QueueConfig>() {
                    Ok(q) => q,
                    Err(e) => {
                        diags.extend(e);
                        continue;
                    }
                }
            }
        };
        let ctx = BuildContext::new(d.id.clone(), telemetry.clone(), shared.clone());
        let factory = &registry.exporters[d.id.type_name.as_str()];
        match factory.build(&cfg, &ctx) {
            Ok(_) if !used.contains(&(ComponentKind::Exporter, raw.clone())) => {}
            Ok(exporter) => {
                let id_s = d.id.to_string();
                let queue = ExporterQueue::new(
                    queue_cfg,
                    telemetry.component(ComponentKind::Exporter, &d.id),
                    telemetry.gauge(
                        "tapline_exporter_queue_size",
                        "Batches waiting in an exporter's queue.",
                        &[("component", id_s.as_str())],
                    ),
                );
                telemetry
                    .gauge(
                        "tapline_exporter_queue_capacity",
                        "Batches an exporter's queue holds.",
                        &[("component", id_s.as_str())],
                    )
                    .set(queue_cfg.size as i64);
                background.extend(ctx.take_background());
                built_exporters.insert(raw.clone(), (d.id.clone(), exporter, queue));
            }
            Err(e) => diags.extend(e),
        }
    }

    // Pipelines: channel → processors (one instance per pipeline) → fan-out.
    let mut built_pipelines = Vec::new();
    let mut inputs: BTreeMap<String, PipelineInput> = BTreeMap::new();
    let mut built_processors = BTreeSet::new();
    for (pname, signal, p, ok) in valid_pipelines {
        let mut layers = Vec::new();
        for id in &p.processors {
            let Some(d) = processors.get(id) else {
                continue;
            };
            if !registry
                .signals_of(ComponentKind::Processor, &d.id.type_name)
                .is_some_and(|s| s.contains(&signal))
            {
                continue;
            }
            built_processors.insert(id.clone());
            let ctx = BuildContext::new(d.id.clone(), telemetry.clone(), shared.clone());
            let factory = &registry.processors[d.id.type_name.as_str()];
            match factory.build(&d.config, signal, &ctx) {
                Ok(l) => {
                    background.extend(ctx.take_background());
                    layers.push(l);
                }
                Err(e) => {
                    // The same processor in several pipelines would repeat its error.
                    for item in e.items {
                        if !diags.items.contains(&item) {
                            diags.items.push(item);
                        }
                    }
                }
            }
        }
        if !ok {
            continue;
        }
        let queues: Vec<_> = p
            .exporters
            .iter()
            .filter_map(|e| built_exporters.get(e).map(|(_, _, q)| q.clone()))
            .collect();
        let mut service = PipelineService::new(FanOut::new(queues));
        for layer in layers.into_iter().rev() {
            service = layer.layer(service);
        }
        let (tx, rx) = mpsc::channel(PIPELINE_CHANNEL_BATCHES);
        inputs.insert(pname.clone(), PipelineInput { signal, tx });
        built_pipelines.push(BuiltPipeline {
            name: pname,
            signal,
            service,
            input: rx,
        });
    }

    for (raw, d) in &processors {
        if built_processors.contains(raw) {
            continue;
        }
        let factory = &registry.processors[d.id.type_name.as_str()];
        let ctx = BuildContext::new(d.id.clone(), telemetry.clone(), shared.clone());
        if let Some(signal) = factory.signals().first() {
            if let Err(e) = factory.build(&d.config, *signal, &ctx) {
                diags.extend(e);
            }
        }
    }

    let mut built_receivers = Vec::new();
    for (raw, d) in &receivers {
        let feeds = receiver_signals.get(raw);
        let ctx = BuildContext::new(d.id.clone(), telemetry.clone(), shared.clone());
        let factory = &registry.receivers[d.id.type_name.as_str()];
        match factory.build(&d.config, &ctx) {
            Ok(_) if feeds.is_none() => {}
            Ok(receiver) => {
                let feeds = feeds.expect("checked above");
                background.extend(ctx.take_background());
                built_receivers.push(BuiltReceiver {
                    id: d.id.clone(),
                    receiver,
                    output: ReceiverOutput {
                        inputs: feeds
                            .iter()
                            .filter_map(|(p, _)| inputs.get(p).cloned())
                            .collect(),
                        counters: telemetry.component(ComponentKind::Receiver, &d.id),
                    },
                });
            }
            Err(e) => diags.extend(e),
        }
    }

    diags.locate(&config.locations);
    if diags.has_errors() {
        return Err(diags);
    }
    Ok(Graph {
        receivers: built_receivers,
        pipelines: built_pipelines,
        exporters: built_exporters
            .into_values()
            .map(|(id, exporter, queue)| BuiltExporter {
                id,
                exporter,
                queue,
            })
            .collect(),
        background,
        warnings: diags,
    })
}
