//! tapline's own metrics (`tapline_*`); `tapline-service` serves them with `/healthz` and
//! `/readyz`.
//!
//! Every component gets the same four counters (accepted, refused, dropped, sent items) so an
//! operator can follow data through any pipeline and see exactly where it was lost.
//! The registry outlives configuration reloads: counters keep counting across them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::component::{ComponentId, ComponentKind};
use crate::readiness::{Readiness, ReadyHandle};

#[derive(Clone, Debug, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
    /// For counters mirrored from elsewhere (a kernel map): sets the absolute value.
    pub fn set(&self, n: u64) {
        self.0.store(n, Ordering::Relaxed);
    }
}

#[derive(Clone, Debug, Default)]
pub struct Gauge(Arc<AtomicI64>);

impl Gauge {
    pub fn set(&self, n: i64) {
        self.0.store(n, Ordering::Relaxed);
    }
    pub fn add(&self, n: i64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Clone, Debug)]
enum Cell {
    Counter(Counter),
    Gauge(Gauge),
}

#[derive(Default)]
struct Family {
    help: &'static str,
    is_counter: bool,
    /// Rendered label set → value.
    series: BTreeMap<String, Cell>,
}

#[derive(Clone, Default)]
pub struct Telemetry {
    families: Arc<Mutex<BTreeMap<&'static str, Family>>>,
    readiness: Readiness,
}

/// The counters every component exposes. Items are data points for metrics, spans for traces.
#[derive(Clone, Debug)]
pub struct ComponentCounters {
    /// Taken in by the component.
    pub accepted: Counter,
    /// Turned away (the sender was told to retry).
    pub refused: Counter,
    /// Lost after being accepted: a full queue, a failed export.
    pub dropped: Counter,
    /// Handed on (processors) or delivered (exporters).
    pub sent: Counter,
}

impl Telemetry {
    pub fn new() -> Self {
        Self::default()
    }

    fn cell(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&str, &str)],
        counter: bool,
    ) -> Cell {
        let mut families = self.families.lock().unwrap_or_else(|e| e.into_inner());
        let family = families.entry(name).or_insert_with(|| Family {
            help,
            is_counter: counter,
            series: BTreeMap::new(),
        });
        let key = render_labels(labels);
        family
            .series
            .entry(key)
            .or_insert_with(|| {
                if counter {
                    Cell::Counter(Counter::default())
                } else {
                    Cell::Gauge(Gauge::default())
                }
            })
            .clone()
    }

    /// A counter; `name` must end in `_total`. The same name and labels give the same counter.
    pub fn counter(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&str, &str)],
    ) -> Counter {
        match self.cell(name, help, labels, true) {
            Cell::Counter(c) => c,
            Cell::Gauge(_) => panic!("telemetry metric {name} registered as a gauge and a counter"),
        }
    }

    pub fn gauge(&self, name: &'static str, help: &'static str, labels: &[(&str, &str)]) -> Gauge {
        match self.cell(name, help, labels, false) {
            Cell::Gauge(g) => g,
            Cell::Counter(_) => {
                panic!("telemetry metric {name} registered as a counter and a gauge")
            }
        }
    }

    pub fn component(&self, kind: ComponentKind, id: &ComponentId) -> ComponentCounters {
        let id = id.to_string();
        let labels = [("kind", kind.as_str()), ("component", id.as_str())];
        ComponentCounters {
            accepted: self.counter(
                "tapline_items_accepted_total",
                "Items a component took in.",
                &labels,
            ),
            refused: self.counter(
                "tapline_items_refused_total",
                "Items a component turned away so that the sender retries.",
                &labels,
            ),
            dropped: self.counter(
                "tapline_items_dropped_total",
                "Items lost after being accepted (full queue, failed export).",
                &labels,
            ),
            sent: self.counter(
                "tapline_items_sent_total",
                "Items a component handed on or delivered.",
                &labels,
            ),
        }
    }

    /// Readiness of the running graph's components, for `/readyz`.
    pub fn readiness(&self) -> &Readiness {
        &self.readiness
    }

    /// Registers `kind` `id` in readiness as not ready yet; it is also exposed as
    /// `tapline_component_ready{kind,component}` (1 ready, 0 not).
    pub fn ready_handle(&self, kind: ComponentKind, id: &ComponentId) -> ReadyHandle {
        let name = id.to_string();
        let gauge = self.gauge(
            "tapline_component_ready",
            "1 when the component does its job (a receiver captures, an exporter serves), else 0.",
            &[("kind", kind.as_str()), ("component", name.as_str())],
        );
        self.readiness.register(kind, id, gauge)
    }

    /// Prometheus text exposition format 0.0.4.
    pub fn render(&self) -> String {
        let families = self.families.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        for (name, fam) in families.iter() {
            let _ = writeln!(out, "# HELP {name} {}", fam.help);
            let _ = writeln!(
                out,
                "# TYPE {name} {}",
                if fam.is_counter { "counter" } else { "gauge" }
            );
            for (labels, cell) in &fam.series {
                let v = match cell {
                    Cell::Counter(c) => c.get() as i64,
                    Cell::Gauge(g) => g.get(),
                };
                let _ = writeln!(out, "{name}{labels} {v}");
            }
        }
        out
    }

    /// Per component: (kind, id, accepted, refused, dropped, sent), for the shutdown summary.
    pub fn component_totals(&self) -> Vec<(String, String, u64, u64, u64, u64)> {
        let get = |name: &str, labels: &str| {
            let families = self.families.lock().unwrap_or_else(|e| e.into_inner());
            match families.get(name).and_then(|f| f.series.get(labels)) {
                Some(Cell::Counter(c)) => c.get(),
                _ => 0,
            }
        };
        let keys: Vec<String> = {
            let families = self.families.lock().unwrap_or_else(|e| e.into_inner());
            families
                .get("tapline_items_accepted_total")
                .map(|f| f.series.keys().cloned().collect())
                .unwrap_or_default()
        };
        keys.into_iter()
            .map(|labels| {
                let field = |k: &str| {
                    let start = labels
                        .find(&format!("{k}=\""))
                        .map(|i| i + k.len() + 2)
                        .unwrap_or(0);
                    labels[start..].split('"').next().unwrap_or("").to_string()
                };
                (
                    field("kind"),
                    field("component"),
                    get("tapline_items_accepted_total", &labels),
                    get("tapline_items_refused_total", &labels),
                    get("tapline_items_dropped_total", &labels),
                    get("tapline_items_sent_total", &labels),
                )
            })
            .collect()
    }

    /// The value of one series, for tests and summaries.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<i64> {
        let families = self.families.lock().unwrap_or_else(|e| e.into_inner());
        let cell = families
            .get(name)?
            .series
            .get(&render_labels(labels))?
            .clone();
        Some(match cell {
            Cell::Counter(c) => c.get() as i64,
            Cell::Gauge(g) => g.get(),
        })
    }
}

fn render_labels(labels: &[(&str, &str)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let mut s = String::from("{");
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{k}=\"{}\"", escape_label(v));
    }
    s.push('}');
    s
}

/// Escapes a Prometheus label value.
pub fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_reuses_series() {
        let t = Telemetry::new();
        let id = ComponentId::parse("debug/x").unwrap();
        let c = t.component(ComponentKind::Exporter, &id);
        c.sent.add(5);
        t.component(ComponentKind::Exporter, &id).sent.add(2);
        let text = t.render();
        assert!(
            text.contains("tapline_items_sent_total{kind=\"exporter\",component=\"debug/x\"} 7"),
            "{text}"
        );
        assert!(text.contains("# TYPE tapline_items_dropped_total counter"));
        assert_eq!(
            t.value(
                "tapline_items_sent_total",
                &[("kind", "exporter"), ("component", "debug/x")]
            ),
            Some(7)
        );
    }
}
