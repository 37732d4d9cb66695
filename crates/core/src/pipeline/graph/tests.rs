//! The graph builder with test components: extensions are shared by id, components naming
//! none share the default one, and processors are built once per id.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;
use serde::Deserialize;

use super::*;
use crate::config::{load, ConfigSource, LoadOptions};
use crate::pipeline::BatchLayer;

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CounterConfig {
    #[serde(default)]
    start: u64,
}

/// An extension holding a number.
struct CounterExtension;

impl Component for CounterExtension {
    type Config = CounterConfig;
    const TYPE_NAME: &'static str = "counter";
    const DESCRIPTION: &'static str = "a shared number";
    const SIGNALS: &'static [SignalKind] = &[];
}

impl ExtensionComponent for CounterExtension {
    type Extension = AtomicU64;
    fn build(&self, c: CounterConfig, _ctx: &BuildContext) -> Result<AtomicU64, ConfigErrors> {
        Ok(AtomicU64::new(c.start))
    }
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TallyConfig {
    #[serde(default)]
    extension: Option<String>,
}

/// Per build: the processor id and the counter it was given.
type Builds = Vec<(String, Arc<AtomicU64>)>;

/// A processor noting each of its builds.
#[derive(Clone, Default)]
struct Tally {
    built: Arc<Mutex<Builds>>,
}

impl Component for Tally {
    type Config = TallyConfig;
    const TYPE_NAME: &'static str = "tally";
    const DESCRIPTION: &'static str = "notes its counter";
    const SIGNALS: &'static [SignalKind] = &[SignalKind::Metrics, SignalKind::Traces];
}

impl ProcessorComponent for Tally {
    fn build(&self, c: TallyConfig, ctx: &BuildContext) -> Result<ProcessorLayer, ConfigErrors> {
        let counter = ctx.extension_or_default::<CounterExtension>(
            "extension",
            c.extension.as_deref(),
            || AtomicU64::new(0),
        )?;
        self.built
            .lock()
            .unwrap()
            .push((ctx.id.to_string(), counter));
        Ok(BatchLayer::boxed(
            |_: &mut Signal| {},
            &ctx.id,
            &ctx.telemetry,
        ))
    }
}

struct Idle;

#[async_trait]
impl Receiver for Idle {
    async fn run(self: Box<Self>, ctx: ReceiverContext) -> anyhow::Result<()> {
        ctx.shutdown.cancelled().await;
        Ok(())
    }
}

impl Component for Idle {
    type Config = TallyConfig;
    const TYPE_NAME: &'static str = "idle";
    const DESCRIPTION: &'static str = "sends nothing";
    const SIGNALS: &'static [SignalKind] = &[SignalKind::Metrics, SignalKind::Traces];
}

impl ReceiverComponent for Idle {
    fn build(&self, _: TallyConfig, _: &BuildContext) -> Result<Box<dyn Receiver>, ConfigErrors> {
        Ok(Box::new(Idle))
    }
}

struct Discard;

#[async_trait]
impl Exporter for Discard {
    async fn export(&mut self, _: crate::data::SharedSignal) -> Result<(), ExportError> {
        Ok(())
    }
}

impl Component for Discard {
    type Config = CounterConfig;
    const TYPE_NAME: &'static str = "drop";
    const DESCRIPTION: &'static str = "drops everything";
    const SIGNALS: &'static [SignalKind] = &[SignalKind::Metrics, SignalKind::Traces];
}

impl ExporterComponent for Discard {
    fn build(&self, _: CounterConfig, _: &BuildContext) -> Result<Box<dyn Exporter>, ConfigErrors> {
        Ok(Box::new(Discard))
    }
}

fn build_yaml(yaml: &str, tally: &Tally) -> Result<Graph, Diagnostics> {
    let mut registry = Registry::new();
    registry
        .register_extension(CounterExtension)
        .register_receiver(Idle)
        .register_processor(tally.clone())
        .register_exporter(Discard);
    let config = load(&LoadOptions {
        sources: vec![ConfigSource::Embedded {
            name: "test.yaml".into(),
            text: yaml.into(),
        }],
        ..Default::default()
    })?;
    build(&config, &registry, &Telemetry::new())
}

#[test]
fn extensions_are_shared_by_id_and_processors_built_once_per_id() {
    let tally = Tally::default();
    let graph = build_yaml(
        r#"
extensions:
  counter/shared: { start: 7 }
receivers:
  idle: {}
processors:
  tally/a: { extension: counter/shared }
  tally/b: { extension: counter/shared }
  tally/c: {}
  tally/d: {}
exporters:
  drop: {}
service:
  extensions: [counter/shared]
  pipelines:
    metrics:
      receivers: [idle]
      processors: [tally/a, tally/b, tally/c, tally/d]
      exporters: [drop]
    traces:
      receivers: [idle]
      processors: [tally/a, tally/c]
      exporters: [drop]
"#,
        &tally,
    )
    .unwrap();
    assert_eq!(graph.pipelines.len(), 2);
    let built = tally.built.lock().unwrap();
    let ids: Vec<&str> = built.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(
        ids,
        ["tally/a", "tally/b", "tally/c", "tally/d"],
        "one build per id, however many pipelines list it"
    );
    let counter = |id: &str| built.iter().find(|(i, _)| i == id).unwrap().1.clone();
    assert!(Arc::ptr_eq(&counter("tally/a"), &counter("tally/b")));
    assert_eq!(counter("tally/a").load(Ordering::SeqCst), 7);
    // Naming no extension: the one default instance, created by the component.
    assert!(Arc::ptr_eq(&counter("tally/c"), &counter("tally/d")));
    assert!(!Arc::ptr_eq(&counter("tally/a"), &counter("tally/c")));
    assert_eq!(counter("tally/c").load(Ordering::SeqCst), 0);
}

#[test]
fn extension_references_are_checked() {
    let tally = Tally::default();
    let err = build_yaml(
        r#"
extensions:
  counter: {}
  counter/off: {}
receivers: { idle: {} }
processors:
  tally/a: { extension: counter/off }
  tally/b: { extension: countr }
exporters: { drop: {} }
service:
  extensions: [counter, counter, nothing]
  pipelines:
    metrics: { receivers: [idle], processors: [tally/a, tally/b], exporters: [drop] }
"#,
        &tally,
    )
    .err()
    .unwrap();
    let text = err.to_string();
    for expected in [
        "error: service.extensions[1] (test.yaml:11): extension \"counter\" is listed twice",
        "error: service.extensions[2] (test.yaml:11): extension \"nothing\" is not declared under extensions",
        "error: processors.tally/a.extension (test.yaml:7): extension \"counter/off\" is declared but not enabled",
        "error: processors.tally/b.extension (test.yaml:8): extension \"countr\" is not declared under extensions (did you mean \"counter\"?)",
        "warning: extensions.counter/off (test.yaml:4): extension \"counter/off\" is not enabled",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

/// A receiver that reports readiness, and is ready once the test opens its gate.
#[derive(Clone, Default)]
struct Gated {
    gate: Arc<tokio::sync::Notify>,
}

#[async_trait]
impl Receiver for Gated {
    fn reports_readiness(&self) -> bool {
        true
    }
    async fn run(self: Box<Self>, ctx: ReceiverContext) -> anyhow::Result<()> {
        self.gate.notified().await;
        ctx.readiness.ready("gate open");
        ctx.shutdown.cancelled().await;
        Ok(())
    }
}

impl Component for Gated {
    type Config = TallyConfig;
    const TYPE_NAME: &'static str = "gated";
    const DESCRIPTION: &'static str = "ready when told";
    const SIGNALS: &'static [SignalKind] = &[SignalKind::Metrics];
}

impl ReceiverComponent for Gated {
    fn build(&self, _: TallyConfig, _: &BuildContext) -> Result<Box<dyn Receiver>, ConfigErrors> {
        Ok(Box::new(self.clone()))
    }
}

#[tokio::test]
async fn readiness_waits_for_receivers_that_report_it_and_forgets_a_stopped_graph() {
    let gated = Gated::default();
    let mut registry = Registry::new();
    registry
        .register_receiver(Idle)
        .register_receiver(gated.clone())
        .register_exporter(Discard);
    let config = load(&LoadOptions {
        sources: vec![ConfigSource::Embedded {
            name: "test.yaml".into(),
            text: r#"
receivers: { idle: {}, gated: {} }
exporters: { drop: {} }
service:
  pipelines: { metrics: { receivers: [idle, gated], exporters: [drop] } }
"#
            .into(),
        }],
        ..Default::default()
    })
    .unwrap();
    let telemetry = Telemetry::new();
    let graph = build(&config, &registry, &telemetry).unwrap();
    let running = crate::pipeline::start(graph).await.unwrap();
    let readiness = telemetry.readiness();
    readiness.set_running(true);
    let report = readiness.report();
    assert!(!report.ready);
    assert_eq!(
        report.text,
        "not ready: waiting for receiver gated\n\
         receiver gated: not ready: starting\n\
         receiver idle: ready: started\n\
         exporter drop: ready: started\n"
    );
    let gauge = |id: &str| {
        telemetry.value(
            "tapline_component_ready",
            &[("kind", "receiver"), ("component", id)],
        )
    };
    assert_eq!((gauge("gated"), gauge("idle")), (Some(0), Some(1)));

    gated.gate.notify_one();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !readiness.report().ready {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            readiness.report().text
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(readiness
        .report()
        .text
        .contains("receiver gated: ready: gate open\n"));
    assert_eq!(gauge("gated"), Some(1));

    running.shutdown(std::time::Duration::from_secs(5)).await;
    assert_eq!(
        readiness.report().text,
        "ready\n",
        "nothing of the stopped graph is left"
    );
    assert_eq!(gauge("gated"), Some(0));
}
