//! The two exposition formats: Prometheus text 0.0.4 and OpenMetrics 1.0.

use std::fmt::Write as _;
use std::time::Instant;

use tapline_core::data::Number;

use super::store::{SeriesValue, Store};
use tapline_semconv::prometheus::NameKind;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    OpenMetrics,
}

impl Format {
    /// Picks OpenMetrics when the scraper's `Accept` header asks for it.
    pub fn negotiate(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Text,
        }
    }
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// A float as both formats write it; whole numbers keep a `.0` so they read as floats.
pub(crate) fn float(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        let _ = write!(out, "{v:.1}");
    } else {
        let _ = write!(out, "{v}");
    }
}

fn number(out: &mut String, n: Number) {
    match n {
        Number::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Number::Double(d) => float(out, d),
    }
}

fn escape_help(h: &str) -> String {
    h.replace('\\', "\\\\").replace('\n', "\\n")
}

fn sample(out: &mut String, name: &str, suffix: &str, body: &str, extra: Option<(&str, &str)>) {
    out.push_str(name);
    out.push_str(suffix);
    if !body.is_empty() || extra.is_some() {
        out.push('{');
        out.push_str(body);
        if let Some((k, v)) = extra {
            if !body.is_empty() {
                out.push(',');
            }
            let _ = write!(out, "{k}=\"{v}\"");
        }
        out.push('}');
    }
    out.push(' ');
}

/// Renders every live series. Series older than the store's ttl are left out.
pub(crate) fn render(store: &Store, format: Format, now: Instant) -> String {
    let mut out = String::with_capacity(store.series_count() * 96 + 256);
    let ttl = store.ttl;
    let mut names: Vec<&String> = store.families.keys().collect();
    names.sort();
    let mut le = String::new();
    for name in names {
        let family = &store.families[name];
        let live: Vec<_> = family
            .series
            .iter()
            .filter(|(_, s)| now.duration_since(s.last_seen) < ttl)
            .collect();
        if live.is_empty() {
            continue;
        }
        // OpenMetrics names a counter family without `_total`; its samples carry it.
        let (family_name, sample_suffix) = match (family.kind, format) {
            (NameKind::Counter, Format::OpenMetrics) => {
                (name.strip_suffix("_total").unwrap_or(name), "_total")
            }
            _ => (name.as_str(), ""),
        };
        let type_word = match family.kind {
            NameKind::Counter => "counter",
            NameKind::Gauge => "gauge",
            NameKind::Histogram => "histogram",
        };
        let _ = writeln!(out, "# HELP {family_name} {}", escape_help(&family.help));
        let _ = writeln!(out, "# TYPE {family_name} {type_word}");
        if format == Format::OpenMetrics {
            if let Some(unit) = &family.unit {
                if family_name.ends_with(&format!("_{unit}")) {
                    let _ = writeln!(out, "# UNIT {family_name} {unit}");
                }
            }
        }
        for (body, series) in live {
            match &series.value {
                SeriesValue::Number(n) => {
                    sample(&mut out, family_name, sample_suffix, body, None);
                    number(&mut out, *n);
                    out.push('\n');
                }
                SeriesValue::Histogram {
                    bounds,
                    counts,
                    sum,
                    count,
                } => {
                    let mut cumulative = 0u64;
                    for (i, c) in counts.iter().enumerate() {
                        cumulative += c;
                        le.clear();
                        match bounds.get(i) {
                            Some(b) => float(&mut le, *b),
                            None => le.push_str("+Inf"),
                        }
                        sample(&mut out, family_name, "_bucket", body, Some(("le", &le)));
                        let _ = writeln!(out, "{cumulative}");
                    }
                    sample(&mut out, family_name, "_sum", body, None);
                    float(&mut out, *sum);
                    out.push('\n');
                    sample(&mut out, family_name, "_count", body, None);
                    let _ = writeln!(out, "{count}");
                }
            }
        }
    }
    let targets: Vec<_> = store
        .targets
        .values()
        .filter(|(_, seen)| now.duration_since(*seen) < ttl)
        .collect();
    if !targets.is_empty() {
        out.push_str("# HELP target_info Target metadata\n");
        out.push_str(match format {
            Format::Text => "# TYPE target_info gauge\n",
            Format::OpenMetrics => "# TYPE target info\n",
        });
        for (body, _) in targets {
            sample(&mut out, "target_info", "", body, None);
            out.push_str("1\n");
        }
    }
    if format == Format::OpenMetrics {
        out.push_str("# EOF\n");
    }
    out
}
