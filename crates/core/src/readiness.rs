//! Readiness: whether tapline is doing its job yet, component by component.
//!
//! `/readyz` answers ready only while a graph is running and every component in it says so: a
//! receiver once it captures (the flows receiver attached to every matching interface, the app
//! receiver's programs attached, the OTLP receiver's listeners bound), an exporter once it
//! started. A component that stops doing its job (a program detached by someone else, and
//! not put back) says so again, with a reason, and readiness falls back to not ready.
//!
//! Each component holds a [`ReadyHandle`]; the runtime registers it when the graph starts
//! and forgets it when the graph stops, so a reload never leaves a stale entry behind.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use crate::component::{ComponentId, ComponentKind};
use crate::telemetry::Gauge;

/// One component's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ComponentState {
    /// Doing its job; the text says how (`attached to eth0, lo`).
    Ready(String),
    /// Not (yet, or no longer) doing its job, and why.
    NotReady(String),
}

#[derive(Default)]
struct Inner {
    /// A graph is running (false while starting, reloading and stopping).
    running: bool,
    /// `kind component` → state; ordered so `/readyz` lists components the same way each time.
    components: BTreeMap<(ComponentKind, String), ComponentState>,
}

/// The readiness of every component of the running graph. Cheap to clone; clones share state.
#[derive(Clone, Default)]
pub struct Readiness {
    inner: Arc<Mutex<Inner>>,
}

/// What `/readyz` answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadinessReport {
    pub ready: bool,
    /// One line per component (`receiver flows: ready: attached to va`), after a first line
    /// saying `ready` or why not.
    pub text: String,
}

impl Readiness {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a graph is running. Components are only ready inside a running graph.
    pub fn set_running(&self, running: bool) {
        self.lock().running = running;
    }

    pub(crate) fn register(
        &self,
        kind: ComponentKind,
        id: &ComponentId,
        gauge: Gauge,
    ) -> ReadyHandle {
        let key = (kind, id.to_string());
        self.lock()
            .components
            .insert(key.clone(), ComponentState::NotReady("starting".to_owned()));
        gauge.set(0);
        ReadyHandle {
            readiness: self.clone(),
            key: Arc::new(key),
            gauge,
        }
    }

    /// Forgets a component of a graph that stopped.
    pub fn forget(&self, handle: &ReadyHandle) {
        self.lock().components.remove(&*handle.key);
        handle.gauge.set(0);
    }

    /// The state of `kind` `id`, if the running graph has it.
    pub fn state(&self, kind: ComponentKind, id: &str) -> Option<ComponentState> {
        self.lock().components.get(&(kind, id.to_owned())).cloned()
    }

    pub fn report(&self) -> ReadinessReport {
        let inner = self.lock();
        let waiting: Vec<&(ComponentKind, String)> = inner
            .components
            .iter()
            .filter(|(_, s)| matches!(s, ComponentState::NotReady(_)))
            .map(|(k, _)| k)
            .collect();
        let ready = inner.running && waiting.is_empty();
        let mut text = if ready {
            "ready\n".to_owned()
        } else if !inner.running {
            "not ready: no pipeline graph is running (starting, reloading or stopping)\n".to_owned()
        } else {
            let names: Vec<String> = waiting
                .iter()
                .map(|(k, id)| format!("{} {id}", k.as_str()))
                .collect();
            format!("not ready: waiting for {}\n", names.join(", "))
        };
        for ((kind, id), state) in &inner.components {
            let (word, detail) = match state {
                ComponentState::Ready(d) => ("ready", d),
                ComponentState::NotReady(d) => ("not ready", d),
            };
            let _ = write!(text, "{} {id}: {word}", kind.as_str());
            if !detail.is_empty() {
                let _ = write!(text, ": {detail}");
            }
            text.push('\n');
        }
        ReadinessReport { ready, text }
    }
}

/// One component's say in readiness. Clones share it.
#[derive(Clone)]
pub struct ReadyHandle {
    readiness: Readiness,
    key: Arc<(ComponentKind, String)>,
    gauge: Gauge,
}

impl ReadyHandle {
    /// A handle on no registry, for components run outside a graph (tests, benchmarks).
    pub fn detached(kind: ComponentKind, id: &ComponentId) -> ReadyHandle {
        Readiness::default().register(kind, id, Gauge::default())
    }

    /// The component does its job; `how` says how, for `/readyz` (`attached to eth0`).
    pub fn ready(&self, how: impl Into<String>) {
        self.set(ComponentState::Ready(how.into()));
    }

    /// The component does not do its job, and `why`.
    pub fn not_ready(&self, why: impl Into<String>) {
        self.set(ComponentState::NotReady(why.into()));
    }

    pub fn is_ready(&self) -> bool {
        matches!(
            self.readiness.state(self.key.0, &self.key.1),
            Some(ComponentState::Ready(_))
        )
    }

    fn set(&self, state: ComponentState) {
        let ready = matches!(state, ComponentState::Ready(_));
        let mut inner = self.readiness.lock();
        // A forgotten handle (its graph stopped) no longer speaks for anything.
        if let Some(slot) = inner.components.get_mut(&*self.key) {
            *slot = state;
            self.gauge.set(ready as i64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> ComponentId {
        ComponentId::parse(s).unwrap()
    }

    #[test]
    fn ready_only_when_running_and_every_component_is() {
        let r = Readiness::default();
        let flows = r.register(ComponentKind::Receiver, &id("flows"), Gauge::default());
        let prom = r.register(ComponentKind::Exporter, &id("prometheus"), Gauge::default());
        let report = r.report();
        assert!(!report.ready);
        assert!(
            report
                .text
                .starts_with("not ready: no pipeline graph is running"),
            "{}",
            report.text
        );

        r.set_running(true);
        prom.ready("serving");
        let report = r.report();
        assert!(!report.ready);
        assert_eq!(
            report.text,
            "not ready: waiting for receiver flows\n\
             receiver flows: not ready: starting\n\
             exporter prometheus: ready: serving\n"
        );

        flows.ready("attached to va");
        let report = r.report();
        assert!(report.ready, "{}", report.text);
        assert!(report
            .text
            .starts_with("ready\nreceiver flows: ready: attached to va\n"));

        flows.not_ready("va ingress: program detached by someone else");
        assert!(!r.report().ready);
        assert!(!flows.is_ready());
    }

    #[test]
    fn a_forgotten_component_neither_blocks_nor_comes_back() {
        let r = Readiness::default();
        r.set_running(true);
        let gauge = Gauge::default();
        let old = r.register(ComponentKind::Receiver, &id("app"), gauge.clone());
        old.ready("attached");
        assert_eq!(gauge.get(), 1);
        r.forget(&old);
        assert_eq!(gauge.get(), 0);
        old.not_ready("late news from a stopped graph");
        let report = r.report();
        assert!(report.ready, "{}", report.text);
        assert_eq!(report.text, "ready\n");
    }
}
