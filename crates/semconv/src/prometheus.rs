//! OpenTelemetry → Prometheus names, following the OpenTelemetry specification's
//! "Prometheus and OpenMetrics Compatibility" rules: invalid characters become `_`, the UCUM
//! unit becomes a suffix (`s` → `_seconds`, `By` → `_bytes`, annotations like `{packet}` are
//! dropped), monotonic counters end in `_total`, gauges of unit `1` end in `_ratio`.

/// What kind of Prometheus metric a name is made for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NameKind {
    Counter,
    Gauge,
    Histogram,
}

/// Replaces every character outside `[a-zA-Z0-9_:]` (or `[a-zA-Z0-9_]` for labels) by `_`,
/// collapses runs of `_`, and prefixes `_` when the first character is a digit.
fn sanitize(s: &str, allow_colon: bool) -> String {
    let mut out = String::with_capacity(s.len() + 1);
    for c in s.chars() {
        let ok = c.is_ascii_alphanumeric() || c == '_' || (allow_colon && c == ':');
        let c = if ok { c } else { '_' };
        if c == '_' && out.ends_with('_') {
            continue;
        }
        out.push(c);
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// A label name from an attribute key (`http.request.method` → `http_request_method`).
pub fn label_name(key: &str) -> String {
    let s = sanitize(key, false);
    if s.is_empty() {
        return "_".into();
    }
    // A leading digit becomes `key_` rather than a bare `_`, as the specification says.
    match s.strip_prefix('_') {
        Some(rest) if rest.starts_with(|c: char| c.is_ascii_digit()) && !key.starts_with('_') => {
            format!("key_{rest}")
        }
        _ => s,
    }
}

fn unit_word(u: &str) -> Option<&'static str> {
    Some(match u {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tebibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        "bit" => "bits",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "%" => "percent",
        _ => return None,
    })
}

fn per_unit_word(u: &str) -> Option<&'static str> {
    Some(match u {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        _ => return None,
    })
}

/// The suffix a UCUM unit gives a metric name, without the leading `_` (`None` for no unit).
pub fn unit_suffix(unit: &str, kind: NameKind) -> Option<String> {
    // Annotations in braces carry no unit (`{packet}`, `{request}/s` → `/s`).
    let mut stripped = String::with_capacity(unit.len());
    let mut depth = 0;
    for c in unit.chars() {
        match c {
            '{' => depth += 1,
            '}' if depth > 0 => depth -= 1,
            c if depth == 0 => stripped.push(c),
            _ => {}
        }
    }
    let unit = stripped.trim();
    if unit.is_empty() {
        return None;
    }
    if unit == "1" {
        return (kind == NameKind::Gauge).then(|| "ratio".to_string());
    }
    let word = |u: &str, per: bool| -> String {
        let known = if per { per_unit_word(u) } else { unit_word(u) };
        known
            .map(str::to_string)
            .unwrap_or_else(|| sanitize(u, false))
    };
    let suffix = match unit.split_once('/') {
        Some((a, b)) => {
            let a = a.trim();
            let b = word(b.trim(), true);
            if a.is_empty() || a == "1" {
                format!("per_{b}")
            } else {
                format!("{}_per_{b}", word(a, false))
            }
        }
        None => word(unit, false),
    };
    let suffix = suffix.trim_matches('_').to_string();
    (!suffix.is_empty()).then_some(suffix)
}

/// The Prometheus metric family name (for counters, including `_total`).
pub fn metric_name(name: &str, unit: &str, kind: NameKind) -> String {
    let mut out = sanitize(name, true);
    if out.is_empty() {
        out.push('_');
    }
    if kind == NameKind::Counter {
        // `_total` goes last, after the unit, even when the instrument's name has it already.
        if let Some(stripped) = out.strip_suffix("_total") {
            out.truncate(stripped.len());
        }
    }
    if let Some(suffix) = unit_suffix(unit, kind) {
        if !out.ends_with(&format!("_{suffix}")) && out != suffix {
            out.push('_');
            out.push_str(&suffix);
        }
    }
    if kind == NameKind::Counter {
        out.push_str("_total");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_specification() {
        assert_eq!(
            metric_name("http.server.request.duration", "s", NameKind::Histogram),
            "http_server_request_duration_seconds"
        );
        assert_eq!(
            metric_name("tapline.network.flow.bytes", "By", NameKind::Counter),
            "tapline_network_flow_bytes_total"
        );
        assert_eq!(
            metric_name(
                "tapline.network.flow.packets",
                "{packet}",
                NameKind::Counter
            ),
            "tapline_network_flow_packets_total"
        );
        assert_eq!(
            metric_name("requests_total", "{request}", NameKind::Counter),
            "requests_total"
        );
        assert_eq!(
            metric_name("cpu.utilization", "1", NameKind::Gauge),
            "cpu_utilization_ratio"
        );
        assert_eq!(
            metric_name("cpu.time", "1", NameKind::Counter),
            "cpu_time_total"
        );
        assert_eq!(
            metric_name("throughput", "By/s", NameKind::Gauge),
            "throughput_bytes_per_second"
        );
        assert_eq!(
            metric_name("rate", "{request}/s", NameKind::Gauge),
            "rate_per_second"
        );
        assert_eq!(metric_name("9lives", "", NameKind::Gauge), "_9lives");
        assert_eq!(metric_name("a..b--c", "", NameKind::Gauge), "a_b_c");
        assert_eq!(metric_name("x", "furlong", NameKind::Gauge), "x_furlong");
    }

    #[test]
    fn labels_are_sanitised() {
        assert_eq!(label_name("http.request.method"), "http_request_method");
        assert_eq!(label_name("0day"), "key_0day");
        assert_eq!(label_name("a/b:c"), "a_b_c");
        assert_eq!(label_name("_private"), "_private");
    }
}
